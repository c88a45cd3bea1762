//! Options shared by the subcommands and the wiring they have in common:
//! key, chain connection, state directory, journal, sandbox and kernel meter.
//!
//! The one-shot subcommands (`run`, `settle`, `license status`) call the
//! usage journal directly from their async code: each runs a single future
//! on the thread that blocks on it (`main`), with no other task to delay, so
//! a blocking SQLite write there stalls nothing. `serve` keeps its journal
//! work off the async workers (see `sealbox_runtime::journal::off_worker`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;
use anyhow::Context as _;
use license_contract::{RegistryClient, RegistryError};
use sealbox_ebpf::MeterOptions;
use sealbox_runtime::deployment::Deployment;
use sealbox_runtime::gate::Holder;
use sealbox_runtime::journal::{Journal, LastDeployment};
use sealbox_runtime::load::{ChainAccess, Loader};
use sealbox_runtime::metering::{self, KernelMeter, MeterUnavailable};
use sealbox_runtime::purchase::PrepayPolicy;
use sealbox_runtime::state_dir::StateDir;
use sealbox_sandbox::{Sandbox, SandboxConfig};

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

/// Where the runtime keeps its state: the usage journal, leases, the buyer id,
/// and where the kernel meter's maps are pinned.
#[derive(Debug, Clone, clap::Args)]
pub struct StateArgs {
    /// State directory: usage journal, leases, the buyer id of its purchases (default:
    /// /var/lib/sealbox as root, else ~/.local/state/sealbox). One running process per
    /// directory; each directory buys its own units.
    #[arg(long, env = "SEALBOX_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// bpffs directory of the pinned meter maps.
    #[arg(long, env = "SEALBOX_METER_PIN_DIR", default_value = sealbox_ebpf::DEFAULT_PIN_DIR)]
    pub meter_pin_dir: PathBuf,
}

/// How sealed modules are opened and run: the module cache, the decryption
/// key, the kernel meter and the caps the sandbox enforces.
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxArgs {
    /// Compiled-module cache (default: <state-dir>/modules). Entries are authenticated.
    #[arg(long, env = "SEALBOX_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Do not attach the eBPF meter (kernel-required modules then refuse to run).
    #[arg(long)]
    pub no_kernel_meter: bool,
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

/// How units are bought ahead (pay before use).
#[derive(Debug, Clone, clap::Args)]
pub struct PrepayArgs {
    /// Smallest block of units bought at once (also what one `runtime run` buys when no
    /// bought unit is left). Units bought and not used when a state directory is dropped
    /// are lost, so this bounds what an honest customer can forfeit.
    #[arg(long, value_name = "UNITS", default_value_t = PrepayPolicy::default().min_units,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub prepay_min_units: u64,
    /// Largest block of units bought at once (a block is about a minute of calls at the
    /// current rate, within these bounds and what the escrow can pay).
    #[arg(long, value_name = "UNITS", default_value_t = PrepayPolicy::default().max_units,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub prepay_max_units: u64,
    /// Highest price per unit (wei) this runtime may pay; a purchase at a higher price is
    /// refused (default: the price read when buying, which the receipt then caps).
    #[arg(long, value_name = "WEI")]
    pub max_price: Option<u128>,
}

impl PrepayArgs {
    /// The policy, or an error when the bounds contradict each other.
    pub fn policy(&self) -> anyhow::Result<PrepayPolicy> {
        anyhow::ensure!(
            self.prepay_min_units <= self.prepay_max_units,
            "--prepay-min-units ({}) is larger than --prepay-max-units ({})",
            self.prepay_min_units,
            self.prepay_max_units
        );
        Ok(PrepayPolicy {
            min_units: self.prepay_min_units,
            max_units: self.prepay_max_units,
            max_price: self.max_price,
            ..PrepayPolicy::default()
        })
    }
}

impl StateArgs {
    /// The state directory's path.
    pub fn state_path(&self) -> PathBuf {
        match &self.state_dir {
            Some(dir) => dir.clone(),
            None if is_root() => PathBuf::from("/var/lib/sealbox"),
            None => std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".local/state/sealbox"))
                .unwrap_or_else(|| PathBuf::from(".sealbox-state")),
        }
    }

    /// Opens the state directory: locked for a process that runs or buys,
    /// unlocked for one that only reads.
    pub fn open_state(&self, lock: bool) -> anyhow::Result<StateDir> {
        let path = self.state_path();
        let state = if lock {
            StateDir::lock(&path)
        } else {
            StateDir::open(&path)
        };
        // Through `RuntimeError`, so the exit code says "state directory" (37).
        Ok(state.map_err(sealbox_runtime::RuntimeError::from)?)
    }

    /// Opens the usage journal of `registry` in `state`.
    pub fn journal(&self, state: &StateDir, registry: Address) -> anyhow::Result<Arc<Journal>> {
        let old = state.path().join(format!("journal-{registry}.db"));
        if old.exists() {
            tracing::warn!(
                "{} is a journal of an earlier, post-paid version; it is not read (its \
                 unsettled usage is not carried over)",
                old.display()
            );
        }
        let path = state.path().join(format!("journal-v2-{registry}.db"));
        let journal = Journal::open(&path).map_err(sealbox_runtime::RuntimeError::from)?;
        Ok(Arc::new(journal))
    }
}

impl SandboxArgs {
    /// Creates the sandbox with the customer's caps; the module cache defaults
    /// to a directory of `state`.
    pub fn sandbox(&self, state: &StateArgs) -> anyhow::Result<Sandbox> {
        let cache_dir = match &self.cache_dir {
            Some(dir) => dir.clone(),
            None => state.state_path().join("modules"),
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

    /// Attaches the kernel meter (maps pinned under `pin_dir`) unless disabled;
    /// `Err` says why it is not attached.
    pub fn kernel_meter(&self, pin_dir: &Path) -> Result<Arc<KernelMeter>, MeterUnavailable> {
        if self.no_kernel_meter {
            return Err(MeterUnavailable::Disabled);
        }
        let opts = MeterOptions {
            pin_dir: pin_dir.to_path_buf(),
            ..MeterOptions::default()
        };
        Ok(metering::attach(&opts)?)
    }
}

/// One holder's connection to the chain and its state: enough to buy, settle
/// and report (no sandbox, no kernel meter).
pub struct Session {
    /// The runtime's key (signs receipts, pays gas).
    pub signer: PrivateKeySigner,
    /// Who runs.
    pub holder: Holder,
    /// The chain, when reachable.
    pub client: Option<RegistryClient>,
    /// The registry deployment (read from the chain, or the last on record offline).
    pub deployment: LastDeployment,
    /// The state directory, locked by this process for as long as the session lives.
    pub _state: StateDir,
    /// The usage journal.
    pub journal: Arc<Journal>,
    /// The trusted registry.
    pub registry: Address,
}

impl Session {
    /// Locks the state directory, loads the key, opens the journal and
    /// connects (tolerating an unreachable RPC).
    pub async fn open(
        chain: &ChainArgs,
        state: &StateArgs,
        customer: Option<Address>,
    ) -> anyhow::Result<Self> {
        Ok(Self::open_with(chain, state, customer, None).await?.0)
    }

    /// [`Session::open`], loading the decryption key `decrypt_key` (default:
    /// the signer) right after the signer so a bad key fails before the chain
    /// is contacted.
    async fn open_with(
        chain: &ChainArgs,
        state_args: &StateArgs,
        customer: Option<Address>,
        decrypt_key: Option<&Path>,
    ) -> anyhow::Result<(Self, PrivateKeySigner)> {
        let state = state_args.open_state(true)?;
        let signer = chain.signer()?;
        let decrypt = match decrypt_key {
            Some(path) => sealbox_keyfile::load_signer(path)
                .with_context(|| format!("cannot load the decryption key {}", path.display()))?,
            None => signer.clone(),
        };
        let holder = Holder {
            customer: customer.unwrap_or(signer.address()),
            signer: signer.address(),
            buyer: B256::from(state.buyer()),
        };
        let journal = state_args.journal(&state, chain.registry)?;
        let (client, deployment) = match chain.connect(Some(signer.clone())).await {
            Ok(client) => {
                let deployment = Deployment::of(&client).await?;
                let last = LastDeployment {
                    id: deployment.id(),
                    chain_id: deployment.chain_id,
                };
                journal.set_last_deployment(last)?;
                (Some(client), last)
            }
            Err(e @ RegistryError::Unreachable { .. }) => {
                tracing::warn!("{e}; running on the units already bought");
                let last = journal.last_deployment()?.ok_or_else(|| {
                    sealbox_runtime::RuntimeError::Offline(format!(
                        "{e}; and no successful connection to this registry is on record in \
                         this state directory, so nothing was bought here to run on"
                    ))
                })?;
                (None, last)
            }
            Err(e) => return Err(e.into()),
        };
        let session = Self {
            signer,
            holder,
            client,
            deployment,
            _state: state,
            journal,
            registry: chain.registry,
        };
        Ok((session, decrypt))
    }
}

/// A [`Session`] that also loads and runs sealed modules: the decryption key,
/// the sandbox and the kernel meter.
pub struct RunSession {
    /// The holder's session.
    pub session: Session,
    /// The key that decrypts modules encrypted to the customer.
    pub decrypt: PrivateKeySigner,
    /// The sandbox.
    pub sandbox: Sandbox,
    /// The kernel meter or why there is none.
    pub meter: Result<Arc<KernelMeter>, MeterUnavailable>,
}

impl RunSession {
    /// Opens the [`Session`] (loading the decryption key too), creates the
    /// sandbox and attaches the meter.
    pub async fn open(
        chain: &ChainArgs,
        state: &StateArgs,
        sandbox: &SandboxArgs,
        customer: Option<Address>,
    ) -> anyhow::Result<Self> {
        let (session, decrypt) =
            Session::open_with(chain, state, customer, sandbox.decrypt_key.as_deref()).await?;
        let meter_args = sandbox;
        let sandbox = sandbox.sandbox(state)?;
        let meter = meter_args.kernel_meter(&state.meter_pin_dir);
        if let Err(why) = &meter {
            tracing::warn!("kernel meter not attached: {why}");
        }
        Ok(Self {
            session,
            decrypt,
            sandbox,
            meter,
        })
    }

    /// The load pipeline for this session, for products billed per call
    /// (`command` names the subcommand in errors).
    pub fn loader(&self, command: &'static str) -> Loader<'_> {
        let chain = match &self.session.client {
            Some(client) => ChainAccess::Online(client),
            None => ChainAccess::Offline,
        };
        Loader {
            sandbox: &self.sandbox,
            journal: &self.session.journal,
            registry: self.session.registry,
            chain,
            holder: self.session.holder,
            deployment: self.session.deployment,
            decrypt_key: Some(self.decrypt.credential()),
            meter: self.meter.as_ref(),
            unit: sealbox_runtime::load::CALL_UNIT,
            command,
            kernel_events: false,
        }
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
