//! Shared fixtures of the `runtime serve` tests: a real anvil with a deployed
//! registry, products sealed from the example modules and published, and the
//! real `runtime` binary serving them on a loopback port.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use alloy::node_bindings::{Anvil, AnvilInstance};
use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use license_contract::{DeployParams, RegistryClient};
use sealed_format::{Metering, SealOptions};
use tempfile::TempDir;

/// Price per unit of the test products: 1 gwei.
pub const PRICE: u64 = 1_000_000_000;

/// A token good enough for the server (≥ 16 characters).
pub const TOKEN: &str = "test-token-0123456789abcdef";

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Reads a file of `examples/`.
pub fn example(rel: &str) -> Vec<u8> {
    std::fs::read(repo().join("examples").join(rel)).unwrap()
}

/// Path of the anvil binary: $SEALBOX_ANVIL, else license-contract/node_modules/.bin/anvil.
pub fn anvil_path() -> PathBuf {
    if let Some(p) = std::env::var_os("SEALBOX_ANVIL") {
        return PathBuf::from(p);
    }
    let p = repo().join("license-contract/node_modules/.bin/anvil");
    assert!(
        p.exists(),
        "anvil not found at {}: run scripts/setup (npm ci in license-contract/) or set SEALBOX_ANVIL",
        p.display()
    );
    p
}

/// A sealed, published product.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub path: PathBuf,
    pub product_id: B256,
}

/// A registry on its own anvil: dev account 0 deploys, 1 is the vendor, 2 the
/// customer, 3 the runtime's receipt signer (funded, so it pays settlement gas).
pub struct Chain {
    pub anvil: AnvilInstance,
    pub url: String,
    pub registry: Address,
    pub vendor: RegistryClient,
    pub customer: RegistryClient,
    pub runtime_key: PrivateKeySigner,
    vendor_key: PrivateKeySigner,
    pub dir: TempDir,
}

impl Chain {
    pub async fn new() -> Chain {
        let path = anvil_path();
        let anvil = Anvil::at(&path)
            .try_spawn()
            .unwrap_or_else(|e| panic!("cannot start anvil at {}: {e}", path.display()));
        let url = anvil.endpoint();
        let key = |i: usize| -> PrivateKeySigner { anvil.keys()[i].clone().into() };
        let params = DeployParams {
            thaw_seconds: 3600,
            expected_chain_id: Some(anvil.chain_id()),
            ..DeployParams::default()
        };
        let (platform, _) = RegistryClient::deploy(&url, key(0), params).await.unwrap();
        let registry = platform.address();
        let vendor = RegistryClient::connect(&url, registry, Some(31337), Some(key(1)))
            .await
            .unwrap();
        let customer = RegistryClient::connect(&url, registry, Some(31337), Some(key(2)))
            .await
            .unwrap();
        let runtime_key = key(3);
        let dir = tempfile::tempdir().unwrap();
        sealbox_keyfile::write_raw(&dir.path().join("runtime.key"), &runtime_key).unwrap();
        Chain {
            vendor_key: key(1),
            anvil,
            url,
            registry,
            vendor,
            customer,
            runtime_key,
            dir,
        }
    }

    pub fn customer_address(&self) -> Address {
        self.customer.sender().unwrap()
    }

    /// The runtime's key file (0600 raw hex).
    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join("runtime.key")
    }

    /// Seals `examples/wat/{wat}` as product `name` (kernel-preferred, so it
    /// runs with `--no-kernel-meter`), registers and publishes it at `price`,
    /// deposits `deposit` wei for the customer and authorizes the runtime key.
    pub async fn publish(&self, wat: &str, name: &str, price: u64, deposit: U256) -> Sealed {
        let wasm = wat::parse_file(repo().join("examples/wat").join(wat)).unwrap();
        let mut opts = SealOptions::new(name, "1.0.0", 31337, self.registry);
        opts.metering = Metering::KernelPreferred;
        let sealed = sealed_format::seal(&wasm, &opts, self.vendor_key.credential(), &[]).unwrap();
        let manifest = sealed_format::open(&sealed).unwrap().manifest;
        let path = self.dir.path().join(format!("{name}.sealed.wasm"));
        std::fs::write(&path, &sealed).unwrap();

        let (product_id, _) = self
            .vendor
            .register_product(name, U256::from(price))
            .await
            .unwrap();
        assert_eq!(product_id, manifest.product_id);
        let code_hash = B256::from(manifest.code_hash.0);
        self.vendor
            .publish_release(product_id, code_hash)
            .await
            .unwrap();
        self.customer
            .deposit(product_id, None, deposit)
            .await
            .unwrap();
        self.customer
            .authorize_signer(product_id, self.runtime_key.address())
            .await
            .unwrap();
        Sealed { path, product_id }
    }

    /// Units of the runtime key settled on chain for `product`.
    pub async fn settled(&self, product: &Sealed) -> u64 {
        self.customer
            .signer_settled(
                product.product_id,
                self.customer_address(),
                self.runtime_key.address(),
            )
            .await
            .unwrap()
    }

    /// The state directory all servers of this chain share (one journal).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// `runtime serve` arguments for `modules` on this chain, on a free loopback port.
    pub fn serve_args(&self, modules: &[&Sealed]) -> Vec<String> {
        let mut args: Vec<String> = vec!["serve".into()];
        for m in modules {
            args.push("--module".into());
            args.push(m.path.display().to_string());
        }
        let more = [
            "--listen",
            "127.0.0.1:0",
            "--rpc",
            &self.url,
            "--registry",
            &self.registry.to_string(),
            "--key",
            &self.key_file().display().to_string(),
            "--customer",
            &self.customer_address().to_string(),
            "--state-dir",
            &self.state_dir().display().to_string(),
            "--cache-dir",
            &self.dir.path().join("cache").display().to_string(),
            "--no-kernel-meter",
        ]
        .map(String::from);
        args.extend(more);
        args
    }

    /// Starts `runtime serve` for `modules` with `extra` arguments; panics if it does not come up.
    pub fn serve(&self, modules: &[&Sealed], extra: &[&str]) -> Serve {
        let mut args = self.serve_args(modules);
        args.extend(extra.iter().map(|s| s.to_string()));
        Serve::start(
            &args,
            &self.dir.path().join(format!("serve-{}.log", unique())),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }
}

fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// A running `runtime serve` process (killed on drop).
pub struct Serve {
    child: Child,
    pub base: String,
    pub log: PathBuf,
    lines: mpsc::Receiver<String>,
}

impl Serve {
    /// Spawns the real binary and waits for its `listening on` line; `Err`
    /// holds the exit status and stderr if it stops first.
    pub fn start(args: &[String], log: &Path) -> Result<Serve, String> {
        let stderr = std::fs::File::create(log).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_runtime"))
            .arg("-v")
            .args(args)
            .env_remove("SEALBOX_TOKEN")
            .env_remove("SEALBOX_RPC")
            .env_remove("SEALBOX_REGISTRY")
            .env_remove("SEALBOX_KEY")
            .env_remove("SEALBOX_STATE_DIR")
            .env_remove("SEALBOX_CACHE_DIR")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix("listening on ") {
                        return Ok(Serve {
                            child,
                            base: addr.trim().to_string(),
                            log: log.to_path_buf(),
                            lines: rx,
                        });
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().unwrap();
                    let stderr = std::fs::read_to_string(log).unwrap_or_default();
                    return Err(format!("runtime serve exited with {status}:\n{stderr}"));
                }
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let stderr = std::fs::read_to_string(log).unwrap_or_default();
                return Err(format!(
                    "runtime serve did not start within 120 s:\n{stderr}"
                ));
            }
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn invoke_url(&self, product: &Sealed, export: &str) -> String {
        self.url(&format!(
            "/v1/products/{}/invoke/{export}",
            product.product_id
        ))
    }

    /// Its stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits (up to 60 s) for it to exit; returns its status
    /// and the stdout lines after `listening on`.
    pub fn terminate(mut self) -> (ExitStatus, Vec<String>) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let status = self.wait(Duration::from_secs(60));
        let lines = self.lines.try_iter().collect();
        (status, lines)
    }

    /// Kills it with SIGKILL and reaps it.
    pub fn kill9(mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid(), libc::SIGKILL) };
        self.wait(Duration::from_secs(30));
    }

    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "runtime serve did not exit within {limit:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client with timeouts.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// POSTs `body` and returns the status and body.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, Vec<u8>) {
    let resp = client.post(url).body(body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.bytes().await.unwrap().to_vec())
}

/// The `error` kind of a JSON error body.
pub fn error_kind(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not a JSON error ({e}): {}", String::from_utf8_lossy(body)));
    v["error"].as_str().unwrap().to_string()
}

/// GETs /metrics (with `token` if given) and returns the text.
pub async fn metrics(client: &reqwest::Client, serve: &Serve, token: Option<&str>) -> String {
    let mut req = client.get(serve.url("/metrics"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    resp.text().await.unwrap()
}

/// The value of the sample `name{labels}` whose labels include every `want` pair.
pub fn sample(text: &str, name: &str, want: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, labels) = match series.split_once('{') {
                Some((m, rest)) => (m, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let all = want
                .iter()
                .all(|(k, v)| labels.split(',').any(|kv| kv == format!("{k}=\"{v}\"")));
            all.then(|| value.parse().unwrap())
        })
}

/// Polls `f` every 200 ms until it returns `Some`, for at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
