//! Shared fixtures of the end-to-end tests: a real anvil with a deployed
//! `LicenseRegistry`, funded vendor and customer keys in 0600 files, the real
//! `packager` and `runtime` binaries, and one "customer machine" (state and
//! cache directories) per scenario.
//!
//! Anvil, the registry deploy, funding, the binaries under test (built before
//! their first use, never stale), child-process scrubbing and bpffs pin
//! directories come from `sealbox-testkit`; what is here is end-to-end only.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use k256::ecdsa::SigningKey;
use license_contract::{LicenseStatus, RegistryClient};
use sealbox_runtime::journal::{Journal, Usage, UsageKey};
use sealbox_testkit::{Anvil, Deploy, command_line, key_file};
use sha2::{Digest, Sha256};

pub use sealbox_testkit::bpf::PinDir;
pub use sealbox_testkit::{CHAIN_ID, Out, bin, command, run};

/// Price per call of the test products, in wei.
pub const PRICE_WEI: u64 = 1_000;
/// What the runtime logs (at info level) right before it compiles a module
/// whose license holds. Its absence, together with an untouched module cache,
/// proves nothing was compiled.
pub const COMPILING: &str = "license holds; compiling";

/// Whether the runtime logged (in `out`) that it was about to compile.
pub fn logged_compiling(out: &Out) -> bool {
    out.stderr.contains(COMPILING)
}

// ---------------------------------------------------------------- paths

/// A file under `examples/`.
pub fn example(rel: &str) -> PathBuf {
    sealbox_testkit::repo_root().join("examples").join(rel)
}

/// A file under `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

// ---------------------------------------------------------------- chain

/// A real anvil with a freshly deployed registry (fee 3000 bps, treasury =
/// deployer = dev account 0, thaw 1 h, bound to [`CHAIN_ID`]). Dropping it
/// kills anvil.
pub struct Chain {
    anvil: Anvil,
    /// JSON-RPC endpoint.
    pub url: String,
    /// The registry's address.
    pub registry: Address,
}

impl Chain {
    /// Deploys the registry on `anvil`.
    async fn on(anvil: Anvil) -> Chain {
        let params = Deploy {
            fee_bps: 3000,
            treasury: None,
            thaw_seconds: 3600,
        };
        Chain {
            registry: anvil.deploy(params).await.address(),
            url: anvil.endpoint(),
            anvil,
        }
    }

    /// Spawns anvil and deploys a registry on it.
    pub async fn start() -> Chain {
        Chain::on(Anvil::spawn()).await
    }

    /// As [`Chain::start`], with extra anvil arguments (e.g. `--timestamp T`).
    pub async fn start_with(args: &[&str]) -> Chain {
        Chain::on(Anvil::spawn_with(args)).await
    }

    /// As [`Chain::start`], on an anvil run with `--state FILE` (it dumps its
    /// state there on SIGTERM and loads it at start), so that [`Chain::halt`]
    /// and [`Chain::resume`] can stop and restart the same chain on the same
    /// URL (its port stays reserved meanwhile).
    pub async fn start_persistent() -> Chain {
        Chain::on(Anvil::persistent()).await
    }

    /// Stops a [`Chain::start_persistent`] anvil with SIGTERM (it saves its
    /// state) and waits for it to exit: the RPC becomes unreachable.
    pub fn halt(&self) {
        self.anvil.halt();
    }

    /// Restarts a halted [`Chain::start_persistent`] anvil on the same port
    /// from its saved state.
    pub fn resume(&self) {
        self.anvil.resume();
    }

    /// The chain shared by the tests of one test binary that are running at
    /// the same time; anvil stops when the last of them drops its handle.
    /// Tests on it use their own fresh accounts and their own releases, so
    /// they never see each other's state.
    pub async fn shared() -> Arc<Chain> {
        static SHARED: tokio::sync::Mutex<Weak<Chain>> = tokio::sync::Mutex::const_new(Weak::new());
        let mut slot = SHARED.lock().await;
        if let Some(chain) = slot.upgrade() {
            return chain;
        }
        let chain = Arc::new(Chain::start().await);
        *slot = Arc::downgrade(&chain);
        chain
    }

    /// Kills anvil: the RPC becomes unreachable.
    pub fn stop(self) {
        drop(self.anvil);
    }

    /// A client of the registry that sends transactions from `key`.
    pub async fn client(&self, key: &PrivateKeySigner) -> RegistryClient {
        self.anvil.client(self.registry, Some(key.clone())).await
    }

    /// A read-only client of the registry.
    pub async fn reader(&self) -> RegistryClient {
        self.anvil.client(self.registry, None).await
    }

    /// The license of `customer` for `product` (no release check).
    pub async fn license_of(&self, product: B256, customer: Address) -> LicenseStatus {
        self.reader()
            .await
            .license_status(product, customer, None)
            .await
            .expect("read the license")
    }

    /// What `vendor`'s sales earned on this registry: its own share (70 %)
    /// and the platform fee it accrued for the treasury (30 %, held in the
    /// vendor's slot until collected). Each test has a vendor of its own, so
    /// this is exact on a shared chain.
    pub async fn revenue(&self, vendor: Address) -> Revenue {
        let reader = self.reader().await;
        Revenue {
            vendor: reader.pending_revenue(vendor).await.expect("read revenue"),
            fee: reader.fee_owed(vendor).await.expect("read the fee owed"),
        }
    }

    /// Asserts that the vendor's sales came to exactly `units` units at
    /// [`PRICE_WEI`], split 70 / 30 between vendor and treasury.
    #[track_caller]
    pub fn assert_paid(revenue: Revenue, units: u64) {
        let total = U256::from(units * PRICE_WEI);
        assert_eq!(
            revenue.total(),
            total,
            "vendor + treasury revenue is not {units} unit(s) × {PRICE_WEI} wei: {revenue:?}"
        );
        assert_eq!(revenue.vendor, U256::from(units * PRICE_WEI * 7 / 10));
        assert_eq!(revenue.fee, U256::from(units * PRICE_WEI * 3 / 10));
    }

    /// Moves the chain's clock `seconds` ahead and mines a block.
    pub async fn advance_time(&self, seconds: u64) {
        self.anvil.advance_time(seconds).await;
    }

    /// Transactions `who` has sent (its nonce).
    pub async fn nonce(&self, who: Address) -> u64 {
        self.reader()
            .await
            .provider()
            .get_transaction_count(who)
            .await
            .expect("read the nonce")
    }

    /// Gives `who` 100 ETH (anvil_setBalance: no transaction, so no nonce
    /// races between tests sharing the chain).
    pub async fn fund(&self, who: Address) {
        self.anvil.fund(who).await;
    }
}

/// A vendor's revenue on one registry (see [`Chain::revenue`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revenue {
    /// The vendor's withdrawable share.
    pub vendor: U256,
    /// The platform fee its sales accrued for the treasury.
    pub fee: U256,
}

impl Revenue {
    /// Vendor share + treasury fee: everything the customers paid.
    pub fn total(&self) -> U256 {
        self.vendor + self.fee
    }
}

// ---------------------------------------------------------------- keys

/// A key and the 0600 raw-hex file holding it.
pub struct Party {
    /// The key.
    pub signer: PrivateKeySigner,
    /// Its key file.
    pub key: PathBuf,
}

impl Party {
    /// A random key written to `dir/<name>.key`.
    pub fn new(dir: &Path, name: &str) -> Party {
        let signer = PrivateKeySigner::random();
        let key = key_file(dir, &format!("{name}.key"), &signer);
        Party { signer, key }
    }

    /// Its Ethereum address.
    pub fn address(&self) -> Address {
        self.signer.address()
    }

    /// Its k256 signing key.
    pub fn signing_key(&self) -> &SigningKey {
        self.signer.credential()
    }
}

/// The people of one scenario: a vendor, a customer and the runtime's own
/// receipt-signing key (the customer authorizes it; it pays the gas of the
/// purchases it signs), all three funded.
pub struct Actors {
    /// Holds the key files and the scenario's modules.
    pub dir: tempfile::TempDir,
    /// Seals and publishes.
    pub vendor: Party,
    /// Deposits and authorizes the runtime key.
    pub customer: Party,
    /// The key `runtime run --key` uses.
    pub runtime: Party,
}

impl Actors {
    /// Fresh keys, all three funded on `chain`.
    pub async fn new(chain: &Chain) -> Actors {
        let dir = tempfile::tempdir().expect("tempdir");
        let vendor = Party::new(dir.path(), "vendor");
        let customer = Party::new(dir.path(), "customer");
        let runtime = Party::new(dir.path(), "runtime");
        chain.fund(vendor.address()).await;
        chain.fund(customer.address()).await;
        // The runtime key signs the purchase receipts and pays their gas.
        chain.fund(runtime.address()).await;
        Actors {
            dir,
            vendor,
            customer,
            runtime,
        }
    }

    /// The scenario's directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

// ---------------------------------------------------------------- modules

/// Writes `src` (.wat or .wasm) as binary Wasm into `dir`, with an extra
/// custom section `e2e.variant` holding `variant`. The code hash is the
/// release id and binds to one product only, so each test seals its own
/// variant of a shared example.
pub fn variant(src: &Path, variant: &str, dir: &Path) -> PathBuf {
    let mut wasm =
        wat::parse_file(src).unwrap_or_else(|e| panic!("cannot read {}: {e}", src.display()));
    let name = b"e2e.variant";
    let mut contents = leb(name.len());
    contents.extend_from_slice(name);
    contents.extend_from_slice(variant.as_bytes());
    wasm.push(0);
    wasm.extend(leb(contents.len()));
    wasm.extend(contents);
    let stem = src.file_stem().and_then(OsStr::to_str).unwrap_or("module");
    let out = dir.join(format!("{stem}-{variant}.wasm"));
    std::fs::write(&out, wasm).expect("write the module");
    out
}

/// Unsigned LEB128.
pub fn leb(mut value: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// `packager seal IN --key VENDOR --name NAME --version 1.0.0 --chain-id … --registry …
/// -o OUT EXTRA…`; adds `--metering kernel-preferred` unless `extra` names a metering
/// policy (the tests run the runtime without the kernel meter unless they say otherwise).
pub fn seal(
    input: &Path,
    vendor: &Party,
    name: &str,
    chain_id: u64,
    registry: Address,
    out: &Path,
    extra: &[&str],
) -> PathBuf {
    let mut args: Vec<String> = vec![
        "seal".into(),
        input.display().to_string(),
        "--key".into(),
        vendor.key.display().to_string(),
        "--name".into(),
        name.into(),
        "--version".into(),
        "1.0.0".into(),
        "--chain-id".into(),
        chain_id.to_string(),
        "--registry".into(),
        registry.to_string(),
        "-o".into(),
        out.display().to_string(),
    ];
    if !extra.contains(&"--metering") {
        args.extend(["--metering".into(), "kernel-preferred".into()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    run(&bin("packager"), &args).ok();
    out.to_path_buf()
}

/// The manifest of a sealed file (after every format check).
pub fn manifest(sealed: &Path) -> sealed_format::Manifest {
    let bytes = std::fs::read(sealed).expect("read the sealed module");
    sealed_format::open(&bytes)
        .expect("the sealed module verifies")
        .manifest
}

/// Replaces the signature section of `sealed` by one signed with `key`:
/// what an attacker who re-signs a vendor's module with their own key
/// produces. Every other byte (manifest naming the real vendor, code) stays.
pub fn resign(sealed: &[u8], key: &SigningKey) -> Vec<u8> {
    use sealed_format::signature as sig;
    let header = &sealed[..8];
    assert_eq!(sealed[8], 0, "a sealed module starts with a custom section");
    let mut pos = 9;
    let size = read_leb(sealed, &mut pos);
    let rest = &sealed[pos + size..];
    let hash: [u8; 32] = Sha256::digest(rest).into();
    let mut msg = Sha256::new();
    msg.update(sig::SIGNATURE_DOMAIN);
    msg.update([
        sig::SPEC_VERSION,
        sig::CONTENT_TYPE_MODULE,
        sig::HASH_SHA256,
    ]);
    msg.update(hash);
    let digest: [u8; 32] = msg.finalize().into();
    let (signature, recid) = key
        .sign_prehash_recoverable(&digest)
        .expect("sign the module hash");
    let address = Address::from_public_key(key.verifying_key());

    let mut record = leb(20);
    record.extend_from_slice(address.as_slice());
    record.push(sig::ALG_SECP256K1_SHA256_RECOVERABLE);
    record.extend(leb(65));
    record.extend_from_slice(&signature.to_bytes());
    record.push(recid.to_byte());
    let mut set = leb(1);
    set.extend_from_slice(&hash);
    set.extend(leb(1));
    set.extend(leb(record.len()));
    set.extend(record);
    let mut payload = vec![
        sig::SPEC_VERSION,
        sig::CONTENT_TYPE_MODULE,
        sig::HASH_SHA256,
    ];
    payload.extend(leb(1));
    payload.extend(leb(set.len()));
    payload.extend(set);
    let mut contents = leb(sig::SECTION_NAME.len());
    contents.extend_from_slice(sig::SECTION_NAME.as_bytes());
    contents.extend(payload);

    let mut out = header.to_vec();
    out.push(0);
    out.extend(leb(contents.len()));
    out.extend(contents);
    out.extend_from_slice(rest);
    out
}

/// Replaces the manifest of `sealed` (a plaintext module) by `edit`ed copy and
/// signs the result with `vendor`'s key: what a vendor who bypasses the
/// packager's checks ships. The code sections stay as they are.
pub fn rewrite_manifest(
    sealed: &[u8],
    vendor: &SigningKey,
    edit: impl FnOnce(&mut sealed_format::Manifest),
) -> Vec<u8> {
    let name = sealed_format::manifest::SECTION_NAME;
    // header, signature section, then the manifest section.
    let mut pos = 9;
    let size = read_leb(sealed, &mut pos);
    let manifest_start = pos + size;
    assert_eq!(
        sealed[manifest_start], 0,
        "the manifest is a custom section"
    );
    let mut pos = manifest_start + 1;
    let size = read_leb(sealed, &mut pos);
    let section_end = pos + size;
    let name_len = read_leb(sealed, &mut pos);
    assert_eq!(&sealed[pos..pos + name_len], name.as_bytes());
    let json = &sealed[pos + name_len..section_end];
    let mut manifest = sealed_format::Manifest::from_json(json).expect("parse the manifest");
    edit(&mut manifest);
    let json = manifest.to_json().expect("serialize the manifest");
    let mut contents = leb(name.len());
    contents.extend_from_slice(name.as_bytes());
    contents.extend(json);
    let mut out = sealed[..manifest_start].to_vec();
    out.push(0);
    out.extend(leb(contents.len()));
    out.extend(contents);
    out.extend_from_slice(&sealed[section_end..]);
    resign(&out, vendor)
}

fn read_leb(bytes: &[u8], pos: &mut usize) -> usize {
    let mut value = 0usize;
    let mut shift = 0;
    loop {
        let byte = bytes[*pos];
        *pos += 1;
        value |= usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return value;
        }
        shift += 7;
    }
}

// ---------------------------------------------------------------- registry

/// A published release.
#[derive(Debug, Clone, Copy)]
pub struct Release {
    /// The product.
    pub product_id: B256,
    /// The release (SHA-256 of the plaintext module).
    pub code_hash: B256,
}

/// Registers the sealed module's product (if new) at `price` wei per call and
/// publishes its release, as the vendor.
pub async fn publish(vendor: &RegistryClient, sealed: &Path, price: u64) -> Release {
    let m = manifest(sealed);
    if vendor.product(m.product_id).await.unwrap().is_none() {
        let (id, _) = vendor
            .register_product(&m.name, U256::from(price))
            .await
            .expect("register the product");
        assert_eq!(
            id, m.product_id,
            "the chain computes the manifest's product id"
        );
    }
    vendor
        .publish_release(m.product_id, m.code_hash)
        .await
        .expect("publish the release");
    Release {
        product_id: m.product_id,
        code_hash: m.code_hash,
    }
}

/// As the customer: deposits `deposit` wei for `product` and authorizes the runtime key.
pub async fn license(customer: &RegistryClient, product: B256, deposit: u64, runtime: Address) {
    if deposit > 0 {
        customer
            .deposit(product, None, U256::from(deposit))
            .await
            .expect("deposit");
    }
    customer
        .authorize_signer(product, runtime)
        .await
        .expect("authorize the runtime signer");
}

/// The usual scenario: seal `module` as `name` with `extra` options, publish it
/// at [`PRICE_WEI`], deposit `deposit` wei and authorize the runtime key.
pub async fn licensed(
    chain: &Chain,
    actors: &Actors,
    module: &Path,
    name: &str,
    deposit: u64,
    extra: &[&str],
) -> (PathBuf, Release) {
    let sealed = seal(
        module,
        &actors.vendor,
        name,
        CHAIN_ID,
        chain.registry,
        &actors.path().join(format!("{name}.sealed.wasm")),
        extra,
    );
    let vendor = chain.client(&actors.vendor.signer).await;
    let release = publish(&vendor, &sealed, PRICE_WEI).await;
    let customer = chain.client(&actors.customer.signer).await;
    license(
        &customer,
        release.product_id,
        deposit,
        actors.runtime.address(),
    )
    .await;
    (sealed, release)
}

// ---------------------------------------------------------------- customer machine

/// One customer machine: its own state directory (buyer id, journal, leases)
/// and module cache, running the `runtime` binary with the runtime key on
/// behalf of the customer.
pub struct Machine {
    dir: tempfile::TempDir,
    /// `--rpc`: the chain this machine talks to (see [`Machine::point_at`]).
    pub rpc: String,
    registry: Address,
    key: PathBuf,
    customer: Address,
    signer: Address,
    /// `--decrypt-key`, when not the runtime key.
    pub decrypt_key: Option<PathBuf>,
    /// `--meter-pin-dir` with the kernel meter attached; `None` = `--no-kernel-meter`.
    pub kernel_meter: Option<PathBuf>,
}

impl Machine {
    /// A fresh machine of `actors.customer` with the runtime key.
    pub fn new(chain: &Chain, actors: &Actors) -> Machine {
        Machine::with_key(chain, actors, &actors.runtime)
    }

    /// A fresh machine of `actors.customer` running with `runtime` as its key
    /// (each machine of a fleet has its own, with its own counter on chain).
    pub fn with_key(chain: &Chain, actors: &Actors, runtime: &Party) -> Machine {
        Machine {
            dir: tempfile::tempdir().expect("tempdir"),
            rpc: chain.url.clone(),
            registry: chain.registry,
            key: runtime.key.clone(),
            customer: actors.customer.address(),
            signer: runtime.address(),
            decrypt_key: None,
            kernel_meter: None,
        }
    }

    /// Points this machine (same state directory, cache and key) at another
    /// chain's registry: what a customer does when the RPC URL changes.
    pub fn point_at(&mut self, chain: &Chain) {
        self.rpc = chain.url.clone();
        self.registry = chain.registry;
    }

    /// Runs this machine (same state directory and cache) with `runtime` as
    /// its key from now on: a rotated signer.
    pub fn rekey(&mut self, runtime: &Party) {
        self.key = runtime.key.clone();
        self.signer = runtime.address();
    }

    /// This state directory's buyer id, as the runtime derives it (creates
    /// the directory and its secret when missing, as the runtime would).
    pub fn buyer(&self) -> B256 {
        B256::from(
            sealbox_runtime::state_dir::StateDir::open(&self.state_dir())
                .expect("open the state directory")
                .buyer(),
        )
    }

    /// Units this state directory has bought on `chain` (its buyer's counter
    /// under this machine's key), read from the chain.
    pub async fn bought_on(&self, chain: &Chain, product: B256) -> u64 {
        chain
            .reader()
            .await
            .signer_status(product, self.customer, self.signer, self.buyer())
            .await
            .expect("read the signer status")
            .bought_units
    }

    /// `runtime -v serve --module SEALED… --listen 127.0.0.1:0 <chain, state,
    /// cache, meter args> --customer C ARGS…`, started and waited for until it
    /// listens. Stopped (SIGTERM, then SIGKILL) when the handle drops.
    pub fn serve(&self, modules: &[&Path], args: &[&str]) -> Serving {
        self.serve_on("127.0.0.1:0", modules, args)
    }

    /// As [`Machine::serve`], listening on `listen` (a fixed address, so a
    /// restarted server is found where the clients left it).
    pub fn serve_on(&self, listen: &str, modules: &[&Path], args: &[&str]) -> Serving {
        let mut all: Vec<String> = vec!["-v".into(), "serve".into()];
        for module in modules {
            all.extend(["--module".into(), module.display().to_string()]);
        }
        all.extend(["--listen".into(), listen.into()]);
        all.extend(self.common_args());
        all.extend(["--customer".into(), self.customer.to_string()]);
        all.extend(args.iter().map(|s| s.to_string()));
        spawn_listening("serve", all)
    }

    /// `runtime -v meter --tls --billing TARIFF --listen 127.0.0.1:0 <chain, state,
    /// cache args> --customer C ARGS…` (ARGS name the target and the TLS pin
    /// directory), started and waited for until its /metrics listens.
    pub fn meter(&self, tariff: &Path, args: &[&str]) -> Serving {
        spawn_listening("meter", self.meter_args(tariff, args))
    }

    /// The same command as [`Machine::meter`], run to its end (for refusals).
    pub fn meter_refused(&self, tariff: &Path, args: &[&str]) -> Out {
        run(&bin("runtime"), self.meter_args(tariff, args))
    }

    /// `runtime meter --tls --uninstall --tls-pin-dir DIR <chain and state args>`.
    pub fn meter_uninstall(&self, pin_dir: &Path) -> Out {
        let mut all: Vec<String> = vec![
            "meter".into(),
            "--tls".into(),
            "--uninstall".into(),
            "--tls-pin-dir".into(),
            pin_dir.display().to_string(),
        ];
        all.extend(self.state_args());
        run(&bin("runtime"), all)
    }

    fn meter_args(&self, tariff: &Path, args: &[&str]) -> Vec<String> {
        let mut all: Vec<String> = vec![
            "-v".into(),
            "meter".into(),
            "--tls".into(),
            "--billing".into(),
            tariff.display().to_string(),
            "--listen".into(),
            "127.0.0.1:0".into(),
        ];
        all.extend(self.state_args());
        all.extend(["--cache-dir".into(), self.cache_dir().display().to_string()]);
        all.extend(["--customer".into(), self.customer.to_string()]);
        all.extend(args.iter().map(|s| s.to_string()));
        all
    }
    /// The state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The compiled-module cache directory.
    pub fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// Chain and state arguments, taken by every subcommand that opens the
    /// state directory (`run`, `serve`, `settle`, `license status`).
    fn state_args(&self) -> Vec<String> {
        let mut args = vec![
            "--rpc".into(),
            self.rpc.clone(),
            "--registry".into(),
            self.registry.to_string(),
            "--key".into(),
            self.key.display().to_string(),
            "--state-dir".into(),
            self.state_dir().display().to_string(),
        ];
        if let Some(pin_dir) = &self.kernel_meter {
            args.extend(["--meter-pin-dir".into(), pin_dir.display().to_string()]);
        }
        args
    }

    /// [`Machine::state_args`] plus the cache and meter arguments of the
    /// subcommands that run modules (`run`, `serve`).
    fn common_args(&self) -> Vec<String> {
        let mut args = self.state_args();
        args.extend(["--cache-dir".into(), self.cache_dir().display().to_string()]);
        if self.kernel_meter.is_none() {
            args.push("--no-kernel-meter".into());
        }
        args
    }

    /// `runtime -v run SEALED <chain, state, cache, meter args> --customer C [--decrypt-key K] ARGS…`
    /// (`ARGS` last: `--invoke` takes everything after it).
    pub fn run(&self, sealed: &Path, args: &[&str]) -> Out {
        run(&bin("runtime"), self.run_args(sealed, args))
    }

    /// Starts the same command as [`Machine::run`] without waiting for it
    /// (stdout and stderr piped), e.g. to kill it mid-call.
    pub fn spawn_run(&self, sealed: &Path, args: &[&str]) -> std::process::Child {
        let mut cmd = command(bin("runtime"));
        cmd.args(self.run_args(sealed, args));
        let line = command_line(&cmd);
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {line}: {e}"))
    }

    fn run_args(&self, sealed: &Path, args: &[&str]) -> Vec<String> {
        let mut all: Vec<String> = vec!["-v".into(), "run".into(), sealed.display().to_string()];
        all.extend(self.common_args());
        all.extend(["--customer".into(), self.customer.to_string()]);
        if let Some(key) = &self.decrypt_key {
            all.extend(["--decrypt-key".into(), key.display().to_string()]);
        }
        all.extend(args.iter().map(|s| s.to_string()));
        all
    }

    /// `runtime -v settle <chain, state args> ARGS…`: finishes a
    /// purchase this state directory left in flight (re-sent with the runtime
    /// key, which pays the gas) and reports bought / used / unused units.
    pub fn settle(&self, args: &[&str]) -> Out {
        let mut all: Vec<String> = vec!["-v".into(), "settle".into()];
        all.extend(self.state_args());
        all.extend(args.iter().map(|s| s.to_string()));
        run(&bin("runtime"), &all)
    }

    /// `runtime license status SEALED --json` for the customer, as the runtime key.
    pub fn status(&self, sealed: &Path) -> serde_json::Value {
        let mut all: Vec<String> = vec![
            "license".into(),
            "status".into(),
            sealed.display().to_string(),
            "--json".into(),
            "--customer".into(),
            self.customer.to_string(),
        ];
        all.extend(self.state_args());
        if self.kernel_meter.is_none() {
            // Point the status reader at a pin directory that never exists.
            all.extend([
                "--meter-pin-dir".into(),
                self.dir.path().join("no-meter").display().to_string(),
            ]);
        }
        let out = run(&bin("runtime"), &all);
        out.ok();
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("status --json is not JSON ({e}):\n{}", out.stdout))
    }

    /// The journal's counter for `product`, read directly (works with the chain
    /// down): this state directory's (buyer's) counter under the deployment it
    /// last connected to.
    pub fn usage(&self, product: B256) -> Usage {
        let path = self
            .state_dir()
            .join(format!("journal-v2-{}.db", self.registry));
        assert!(path.is_file(), "no journal at {}", path.display());
        let journal = Journal::open(&path).expect("open the journal");
        let deployment = journal
            .last_deployment()
            .expect("read the journal")
            .expect("the journal records its deployment")
            .id;
        let buyer = self.buyer().0;
        let keys: Vec<UsageKey> = journal
            .keys()
            .expect("read the journal")
            .into_iter()
            .filter(|k| {
                k.deployment == deployment
                    && k.buyer == buyer
                    && k.product == product.0
                    && k.customer == self.customer.into_array()
                    && k.signer == self.signer.into_array()
            })
            .collect();
        match keys.as_slice() {
            [] => Usage::default(),
            [key] => journal.usage(key).expect("read the journal"),
            more => panic!(
                "{} counters for one product in one state directory",
                more.len()
            ),
        }
    }

    /// The compiled modules in the cache, with the identity of each file.
    pub fn cache(&self) -> CacheSnapshot {
        let mut entries = BTreeMap::new();
        if let Ok(dir) = std::fs::read_dir(self.cache_dir()) {
            for entry in dir.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name == "cache.key" {
                    continue;
                }
                let meta = entry.metadata().expect("stat a cache entry");
                entries.insert(name, (meta.ino(), meta.mtime(), meta.mtime_nsec()));
            }
        }
        CacheSnapshot(entries)
    }

    /// Asserts the refused run `out` compiled nothing: no "compiling" log line
    /// and the module cache exactly as `before`.
    #[track_caller]
    pub fn assert_nothing_compiled(&self, out: &Out, before: &CacheSnapshot) {
        assert!(
            !logged_compiling(out),
            "the runtime compiled although it refused:\n{}",
            out.stderr
        );
        assert_eq!(
            &self.cache(),
            before,
            "the module cache changed although the run was refused"
        );
    }
}

/// A running `runtime serve` (see [`Machine::serve`]).
pub struct Serving {
    child: Option<std::process::Child>,
    line: String,
    out_reader: Option<std::thread::JoinHandle<String>>,
    err_reader: Option<std::thread::JoinHandle<String>>,
    /// `http://127.0.0.1:PORT`, as it printed.
    pub url: String,
}

impl Serving {
    /// Whether the server is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().expect("wait for serve").is_none())
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    /// SIGKILL: no chance to finish anything. Returns what it printed.
    pub fn kill(&mut self) -> Out {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
        }
        self.stop()
    }

    /// SIGTERM, waits up to 30 s (then SIGKILL), and returns what it printed.
    pub fn stop(&mut self) -> Out {
        let started = Instant::now();
        let mut code = None;
        if let Some(mut child) = self.child.take() {
            let pid = libc::pid_t::try_from(child.id()).expect("a pid fits pid_t");
            if child.try_wait().expect("wait for serve").is_none() {
                // SAFETY: kill(2) on the pid of our own child, not reaped yet.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            let status = loop {
                if let Some(status) = child.try_wait().expect("wait for serve") {
                    break status;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    break child.wait().expect("wait for serve");
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            code = status.code();
        }
        let stdout = self
            .out_reader
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        let stderr = self
            .err_reader
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        Out {
            command: self.line.clone(),
            code,
            stdout,
            stderr,
            elapsed: started.elapsed(),
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
    }
}

/// Files of a module cache (other than its key): name → (inode, mtime s, mtime ns).
/// An entry is written to a temp file and renamed into place, so a
/// recompilation always shows up as a new inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSnapshot(pub BTreeMap<String, (u64, i64, i64)>);

impl CacheSnapshot {
    /// Number of files.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No files.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the cache holds the compiled module of `code_hash`.
    pub fn has(&self, code_hash: B256) -> bool {
        self.0.contains_key(&format!(
            "{}.cwasm",
            alloy::primitives::hex::encode(code_hash)
        ))
    }
}

/// The customer's compressed public key as `packager pubkey` prints it.
pub fn pubkey(party: &Party) -> String {
    let out = run(
        &bin("packager"),
        ["pubkey", "--key", &party.key.display().to_string()],
    );
    out.ok();
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("pubkey"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| panic!("no pubkey line in:\n{}", out.stdout))
}

/// Starts `runtime ALL…` and waits until it prints `listening on URL`.
/// Stopped (SIGTERM, then SIGKILL) when the handle drops.
fn spawn_listening(what: &str, all: Vec<String>) -> Serving {
    let mut cmd = command(bin("runtime"));
    cmd.args(&all);
    spawn_listening_command(what, cmd)
}

/// POSTs `body` to `url` (as JSON), retrying for up to 60 s while `runtime
/// serve` answers 402 with `Retry-After` (it is buying a block of units);
/// the final status and body.
pub async fn post_retrying(url: &str, body: &str) -> (u16, String) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let response = client
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let status = response.status().as_u16();
        let retry = response.headers().contains_key("retry-after");
        let text = response.text().await.expect("read the answer");
        if status == 402 && retry && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        return (status, text);
    }
}

// ---------------------------------------------------------------- fleet nodes

impl Machine {
    /// `ip netns exec NETNS runtime -v serve --module SEALED… --listen LISTEN
    /// <chain, state, cache, meter args> --customer C ARGS…`: the same server
    /// as [`Machine::serve`], run inside the network namespace `netns` (a
    /// fleet node), listening on `listen`. Stopped (SIGTERM, then SIGKILL)
    /// when the handle drops; `ip netns exec` execs the runtime, so the
    /// handle's pid is the server's.
    pub fn serve_in(&self, netns: &str, listen: &str, modules: &[&Path], args: &[&str]) -> Serving {
        let mut all: Vec<String> = vec![
            "netns".into(),
            "exec".into(),
            netns.into(),
            bin("runtime").display().to_string(),
            "-v".into(),
            "serve".into(),
        ];
        for module in modules {
            all.extend(["--module".into(), module.display().to_string()]);
        }
        all.extend(["--listen".into(), listen.into()]);
        all.extend(self.common_args());
        all.extend(["--customer".into(), self.customer.to_string()]);
        all.extend(args.iter().map(|s| s.to_string()));
        let mut cmd = command(ip_path());
        cmd.args(&all);
        spawn_listening_command("serve", cmd)
    }
}

/// Where the `ip` tool (iproute2) is.
pub fn ip_path() -> PathBuf {
    ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("ip"))
}

/// Starts `cmd` (the runtime, directly or through `ip netns exec`) and waits
/// up to 60 s for it to print `listening on URL`.
fn spawn_listening_command(what: &str, mut cmd: std::process::Command) -> Serving {
    let line = command_line(&cmd);
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {line}: {e}"));
    // Read both pipes on threads so that the server never blocks on a full pipe.
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let out_reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for l in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(l.clone());
            all.push_str(&l);
            all.push('\n');
        }
        all
    });
    let err_reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut all = String::new();
        let _ = std::io::BufReader::new(stderr).read_to_string(&mut all);
        all
    });
    let mut serving = Serving {
        child: Some(child),
        line,
        out_reader: Some(out_reader),
        err_reader: Some(err_reader),
        url: String::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(l) => {
                if let Some(url) = l.strip_prefix("listening on ") {
                    serving.url = url.trim().to_string();
                    return serving;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let out = serving.stop();
                panic!("runtime {what} ended before listening\n{}", out.dump());
            }
        }
        if Instant::now() > deadline {
            let out = serving.stop();
            panic!("runtime {what} did not listen within 60 s\n{}", out.dump());
        }
    }
}
