//! Options shared by the subcommands and the wiring they have in common:
//! key, chain connection, journal, sandbox and kernel meter.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context as _, bail};
use license_contract::{RegistryClient, RegistryError};
use sealbox_ebpf::MeterOptions;
use sealbox_runtime::gate::Holder;
use sealbox_runtime::journal::Journal;
use sealbox_runtime::lease::LeasePolicy;
use sealbox_runtime::load::{ChainAccess, Loader};
use sealbox_runtime::metering::{self, KernelMeter};
use sealbox_runtime::sandbox::{Sandbox, SandboxConfig};

/// Where the chain is and which registry the customer trusts.
#[derive(Debug, Clone, clap::Args)]
pub struct ChainArgs {
    /// Ethereum JSON-RPC endpoint.
    #[arg(long, env = "SEALBOX_RPC", default_value = "http://127.0.0.1:8545")]
    pub rpc: String,
    /// Address of the LicenseRegistry this runtime trusts; modules naming another are refused.
    #[arg(long, env = "SEALBOX_REGISTRY")]
    pub registry: Address,
    /// Key file: keystore v3 JSON (password from SEALBOX_PASSWORD or a prompt), a 0600 file
    /// holding a 0x-hex key, or env:VAR.
    #[arg(long, env = "SEALBOX_KEY")]
    pub key: PathBuf,
}

impl ChainArgs {
    /// Loads the key file.
    pub fn signer(&self) -> anyhow::Result<PrivateKeySigner> {
        sealbox_keyfile::load_signer(&self.key)
            .with_context(|| format!("cannot load the key {}", self.key.display()))
    }

    /// Connects with `wallet` paying for transactions.
    pub async fn connect(
        &self,
        wallet: Option<PrivateKeySigner>,
    ) -> Result<RegistryClient, RegistryError> {
        RegistryClient::connect(&self.rpc, self.registry, None, wallet).await
    }
}

/// Where the runtime keeps its state, and the limits it enforces.
#[derive(Debug, Clone, clap::Args)]
pub struct RuntimeArgs {
    /// State directory: usage journal and leases (default: /var/lib/sealbox as root,
    /// else ~/.local/state/sealbox).
    #[arg(long, env = "SEALBOX_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Compiled-module cache (default: <state-dir>/modules). Entries are authenticated.
    #[arg(long, env = "SEALBOX_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// How long the last successful license check lets modules run while the RPC is unreachable.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub lease_max_age: u64,
    /// Do not attach the eBPF meter (kernel-required modules then refuse to run).
    #[arg(long)]
    pub no_kernel_meter: bool,
    /// bpffs directory of the pinned meter maps.
    #[arg(long, env = "SEALBOX_METER_PIN_DIR", default_value = sealbox_ebpf::DEFAULT_PIN_DIR)]
    pub meter_pin_dir: PathBuf,
    /// Cap on guest memory in 64 KiB pages (the manifest may ask for less).
    #[arg(long, default_value_t = SandboxConfig::default().max_memory_pages)]
    pub max_memory_pages: u64,
    /// Cap on fuel (≈ instructions) per call.
    #[arg(long, default_value_t = SandboxConfig::default().max_fuel)]
    pub max_fuel: u64,
    /// Cap on the wall-clock time of one call, in milliseconds.
    #[arg(long, default_value_t = SandboxConfig::default().max_deadline_ms)]
    pub max_deadline_ms: u64,
    /// Key that decrypts modules encrypted to the customer (default: --key). Same formats as --key.
    #[arg(long, env = "SEALBOX_DECRYPT_KEY")]
    pub decrypt_key: Option<PathBuf>,
    /// Largest input accepted for one call, in bytes.
    #[arg(long, default_value_t = SandboxConfig::default().max_input_bytes)]
    pub max_input_bytes: usize,
}

impl RuntimeArgs {
    /// The state directory, created 0700 if missing.
    pub fn state_dir(&self) -> anyhow::Result<PathBuf> {
        let dir = match &self.state_dir {
            Some(dir) => dir.clone(),
            None if is_root() => PathBuf::from("/var/lib/sealbox"),
            None => std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".local/state/sealbox"))
                .unwrap_or_else(|| PathBuf::from(".sealbox-state")),
        };
        create_private_dir(&dir)?;
        Ok(dir)
    }

    /// Opens the usage journal of `registry`.
    pub fn journal(&self, registry: Address) -> anyhow::Result<Arc<Journal>> {
        let path = self.state_dir()?.join(format!("journal-{registry}.db"));
        Ok(Arc::new(Journal::open(&path)?))
    }

    /// The lease policy.
    pub fn lease_policy(&self) -> LeasePolicy {
        LeasePolicy {
            max_age: Duration::from_secs(self.lease_max_age),
        }
    }

    /// Creates the sandbox with the customer's caps.
    pub fn sandbox(&self) -> anyhow::Result<Sandbox> {
        let cache_dir = match &self.cache_dir {
            Some(dir) => dir.clone(),
            None => self.state_dir()?.join("modules"),
        };
        let cfg = SandboxConfig {
            cache_dir: Some(cache_dir),
            max_memory_pages: self.max_memory_pages,
            max_fuel: self.max_fuel,
            max_deadline_ms: self.max_deadline_ms,
            max_input_bytes: self.max_input_bytes,
            ..SandboxConfig::default()
        };
        Ok(Sandbox::new(cfg)?)
    }

    /// Attaches the kernel meter unless disabled; `Err` says why it is not attached.
    pub fn kernel_meter(&self) -> Result<Arc<KernelMeter>, String> {
        if self.no_kernel_meter {
            return Err("disabled with --no-kernel-meter".into());
        }
        let opts = MeterOptions {
            pin_dir: self.meter_pin_dir.clone(),
            ..MeterOptions::default()
        };
        metering::attach(&opts).map_err(|e| e.to_string())
    }
}

/// Everything needed to load sealed modules for one holder.
pub struct Session {
    /// The runtime's key (signs receipts, pays gas).
    pub signer: PrivateKeySigner,
    /// The key that decrypts modules encrypted to the customer.
    pub decrypt: PrivateKeySigner,
    /// Who runs.
    pub holder: Holder,
    /// The chain, when reachable.
    pub client: Option<RegistryClient>,
    /// The usage journal.
    pub journal: Arc<Journal>,
    /// The sandbox.
    pub sandbox: Sandbox,
    /// The kernel meter or why there is none.
    pub meter: Result<Arc<KernelMeter>, String>,
    /// The trusted registry.
    pub registry: Address,
    /// Lease policy.
    pub policy: LeasePolicy,
}

impl Session {
    /// Loads the key, connects (tolerating an unreachable RPC), opens the journal,
    /// creates the sandbox and attaches the meter.
    pub async fn open(
        chain: &ChainArgs,
        runtime: &RuntimeArgs,
        customer: Option<Address>,
    ) -> anyhow::Result<Self> {
        let signer = chain.signer()?;
        let decrypt = match &runtime.decrypt_key {
            Some(path) => sealbox_keyfile::load_signer(path)
                .with_context(|| format!("cannot load the decryption key {}", path.display()))?,
            None => signer.clone(),
        };
        let holder = Holder {
            customer: customer.unwrap_or(signer.address()),
            signer: signer.address(),
        };
        let journal = runtime.journal(chain.registry)?;
        let client = match chain.connect(Some(signer.clone())).await {
            Ok(client) => {
                journal.set_chain_id(client.chain_id())?;
                Some(client)
            }
            Err(e @ RegistryError::Unreachable { .. }) => {
                tracing::warn!("{e}; trying the stored license lease");
                None
            }
            Err(e) => return Err(e.into()),
        };
        let sandbox = runtime.sandbox()?;
        let meter = runtime.kernel_meter();
        if let Err(why) = &meter {
            tracing::warn!("kernel meter not attached: {why}");
        }
        Ok(Self {
            signer,
            decrypt,
            holder,
            client,
            journal,
            sandbox,
            meter,
            registry: chain.registry,
            policy: runtime.lease_policy(),
        })
    }

    /// The load pipeline for this session.
    pub fn loader(&self) -> anyhow::Result<Loader<'_>> {
        let chain = match &self.client {
            Some(client) => ChainAccess::Online(client),
            None => ChainAccess::Offline {
                chain_id: self.journal.chain_id()?,
            },
        };
        Ok(Loader {
            sandbox: &self.sandbox,
            journal: &self.journal,
            registry: self.registry,
            chain,
            holder: self.holder,
            decrypt_key: Some(self.decrypt.credential()),
            policy: self.policy,
            meter: self.meter.as_ref().map_err(String::as_str),
        })
    }
}

/// A product given as a 0x product id or as a sealed module whose manifest names it.
pub fn product_id(spec: &str) -> anyhow::Result<B256> {
    if spec.starts_with("0x") && spec.len() == 66 {
        return spec
            .parse()
            .with_context(|| format!("invalid product id {spec}"));
    }
    let bytes = read_file(Path::new(spec))?;
    let opened = sealed_format::open(&bytes)
        .with_context(|| format!("{spec} is neither a 0x product id nor a valid sealed module"))?;
    Ok(opened.manifest.product_id)
}

/// Reads a file, naming it in the error.
pub fn read_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    if dir.exists() {
        bail!(
            "state directory {} exists and is not a directory",
            dir.display()
        );
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create the state directory {}", dir.display()))
}
