//! Shared fixtures of the `runtime serve` tests: a real anvil with a deployed
//! registry, products sealed from the example modules and published, and the
//! real `runtime` binary serving them on a loopback port.
//!
//! Pay before use: a server runs a call only on a unit its state directory
//! (the buyer) has already bought on chain, so the tests read what was
//! bought with `signerStatus` for that buyer ([`Chain::bought`]) and what was
//! used from the server's `/metrics` or its journal ([`Chain::journal_usage`]).
//!
//! Anvil, the registry deploy, keys, the `runtime` binary and the scrubbed
//! child environment come from `sealbox-testkit`; what is here is `serve`'s.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use license_contract::RegistryClient;
use sealbox_runtime::journal::{Journal, Usage, UsageKey};
use sealbox_runtime::state_dir::StateDir;
use sealbox_testkit::{Anvil, CHAIN_ID, Deploy, dev_key, key_file, repo_root};
use sealed_format::{Metering, SealOptions};
use tempfile::TempDir;

/// Price per unit of the test products: 1 gwei.
pub const PRICE: u64 = 1_000_000_000;

/// A token good enough for the server (≥ 16 characters).
pub const TOKEN: &str = "test-token-0123456789abcdef";

/// Reads a file of `examples/`.
pub fn example(rel: &str) -> Vec<u8> {
    std::fs::read(repo_root().join("examples").join(rel)).unwrap()
}

/// A sealed, published product.
#[derive(Debug, Clone)]
pub struct Sealed {
    /// The sealed module file, for `--module`.
    pub path: PathBuf,
    /// Its product id on chain.
    pub product_id: B256,
}

/// How `runtime serve` buys units and refreshes its licenses: its
/// `--prepay-min-units`, `--prepay-max-units` and `--refresh-secs`.
#[derive(Debug, Clone, Copy)]
pub struct Cadence {
    /// Smallest block of units bought at once.
    pub min_units: u64,
    /// Largest block of units bought at once.
    pub max_units: u64,
    /// Re-read the licenses this often, in seconds.
    pub refresh_secs: u64,
}

impl Cadence {
    /// Blocks of exactly 100 units (the default `--prepay-min-units`,
    /// whatever the call rate) and a refresh every hour: only purchases
    /// re-read a license within a test.
    pub const QUIET: Cadence = Cadence::blocks(100);

    /// Blocks of exactly `units` (whatever the call rate), refresh every hour.
    pub const fn blocks(units: u64) -> Cadence {
        Cadence {
            min_units: units,
            max_units: units,
            refresh_secs: 3600,
        }
    }

    /// The command-line arguments.
    pub fn args(self) -> Vec<String> {
        vec![
            "--prepay-min-units".into(),
            self.min_units.to_string(),
            "--prepay-max-units".into(),
            self.max_units.to_string(),
            "--refresh-secs".into(),
            self.refresh_secs.to_string(),
        ]
    }
}

/// A registry on its own anvil: dev account 0 deploys (and is the treasury),
/// 1 is the vendor, 2 the customer, 3 the runtime's receipt signer (funded:
/// it pays the gas of every purchase).
pub struct Chain {
    /// The anvil node (killed on drop).
    pub anvil: Anvil,
    /// Its RPC endpoint.
    pub url: String,
    /// The deployed registry.
    pub registry: Address,
    /// A client signing as the vendor.
    pub vendor: RegistryClient,
    /// A client signing as the customer.
    pub customer: RegistryClient,
    /// The runtime's receipt signer.
    pub runtime_key: PrivateKeySigner,
    vendor_key: PrivateKeySigner,
    /// Key file, sealed modules, state and cache directories, logs.
    pub dir: TempDir,
}

impl Chain {
    /// Starts anvil and deploys the registry (default fee, thaw 1 h).
    pub async fn new() -> Chain {
        let anvil = Anvil::spawn();
        let url = anvil.endpoint();
        let registry = anvil.deploy(Deploy::default()).await.address();
        let vendor = anvil.client(registry, Some(dev_key(1))).await;
        let customer = anvil.client(registry, Some(dev_key(2))).await;
        let runtime_key = dev_key(3);
        let dir = tempfile::tempdir().unwrap();
        key_file(dir.path(), "runtime.key", &runtime_key);
        // The runtime key pays the gas of every purchase.
        anvil.fund(runtime_key.address()).await;
        Chain {
            vendor_key: dev_key(1),
            anvil,
            url,
            registry,
            vendor,
            customer,
            runtime_key,
            dir,
        }
    }

    /// The customer's address.
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
        let wasm = wat::parse_file(repo_root().join("examples/wat").join(wat)).unwrap();
        self.publish_wasm(&wasm, name, price, deposit).await
    }

    /// [`Chain::publish`] for a module given as bytes.
    pub async fn publish_wasm(&self, wasm: &[u8], name: &str, price: u64, deposit: U256) -> Sealed {
        let mut opts = SealOptions::new(name, "1.0.0", CHAIN_ID, self.registry);
        opts.metering = Metering::KernelPreferred;
        let sealed = sealed_format::seal(wasm, &opts, self.vendor_key.credential(), &[]).unwrap();
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

    /// Publishes `text-redact` (`redact`: e-mail addresses and phone numbers
    /// become `[EMAIL]` and `[PHONE]`) at [`PRICE`], with an escrow that pays
    /// for `units` calls.
    pub async fn publish_text_redact(&self, units: u64) -> Sealed {
        let escrow = U256::from(units * PRICE);
        self.publish("text_redact.wat", "text-redact", PRICE, escrow)
            .await
    }

    /// Publishes `credit-score` (`score`: an applicant's JSON to a score
    /// document) at [`PRICE`], with an escrow that pays for `units` calls.
    pub async fn publish_credit_score(&self, units: u64) -> Sealed {
        let escrow = U256::from(units * PRICE);
        self.publish("credit_score.wat", "credit-score", PRICE, escrow)
            .await
    }

    /// Units bought on chain for `product` by the runtime key for the buyer
    /// of this chain's state directory ([`Chain::state_dir`]).
    pub async fn bought(&self, product: &Sealed) -> u64 {
        self.bought_by(product, &self.state_dir()).await
    }

    /// Units bought on chain for `product` by the runtime key for the buyer
    /// of the state directory `state_dir`.
    pub async fn bought_by(&self, product: &Sealed, state_dir: &Path) -> u64 {
        let status = self
            .customer
            .signer_status(
                product.product_id,
                self.customer_address(),
                self.runtime_key.address(),
                buyer_of(state_dir),
            )
            .await
            .unwrap();
        status.bought_units
    }

    /// Waits (polling, at most `limit`) until the units bought for `product`
    /// satisfy `done`, and returns them.
    pub async fn wait_bought(
        &self,
        product: &Sealed,
        limit: Duration,
        what: &str,
        done: impl Fn(u64) -> bool,
    ) -> u64 {
        let done = &done;
        eventually(limit, what, move || async move {
            let bought = self.bought(product).await;
            done(bought).then_some(bought)
        })
        .await
    }

    /// The vendor's revenue waiting to be withdrawn, in wei.
    pub async fn vendor_revenue(&self) -> U256 {
        self.vendor
            .pending_revenue(self.vendor.sender().unwrap())
            .await
            .unwrap()
    }

    /// A file holding [`TOKEN`] (and a newline), mode 0600, for `--token-file`.
    pub fn token_file(&self) -> String {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.path().join("token");
        std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path.display().to_string()
    }

    /// The platform fee the vendor's sales accrued for the treasury, in wei
    /// (nobody collects it in these tests).
    pub async fn treasury_revenue(&self) -> U256 {
        self.vendor
            .fee_owed(self.vendor.sender().unwrap())
            .await
            .unwrap()
    }

    /// Asserts that the vendor and the treasury together earned exactly
    /// `units` × [`PRICE`], split 70/30 (the default fee, 3000 bps).
    pub async fn assert_revenue(&self, units: u64) {
        let (vendor, treasury) = (self.vendor_revenue().await, self.treasury_revenue().await);
        assert_eq!(
            vendor + treasury,
            U256::from(units * PRICE),
            "revenue must be the {units} units bought at {PRICE} wei"
        );
        assert_eq!(vendor, U256::from(units * PRICE * 7 / 10), "vendor share");
        assert_eq!(treasury, U256::from(units * PRICE * 3 / 10), "treasury fee");
    }

    /// The state directory of this chain's servers: one buyer, locked by the
    /// server running on it (run them one after the other, or give each its
    /// own directory with `set_flag(&mut args, "--state-dir", …)`).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The journal of `state_dir` for this registry (`journal-v2-<registry>.db`).
    pub fn journal(&self, state_dir: &Path) -> Journal {
        Journal::open(&state_dir.join(format!("journal-v2-{}.db", self.registry))).unwrap()
    }

    /// What the journal of this chain's state directory records for
    /// `product`: used (runtime and kernel counts) and bought units. Read it
    /// while no server runs.
    pub fn journal_usage(&self, product: &Sealed) -> Usage {
        let state_dir = self.state_dir();
        let journal = self.journal(&state_dir);
        let deployment = journal
            .last_deployment()
            .unwrap()
            .expect("the journal has connected to a deployment");
        journal
            .usage(&UsageKey {
                deployment: deployment.id,
                buyer: buyer_of(&state_dir).0,
                product: product.product_id.0,
                customer: self.customer_address().into_array(),
                signer: self.runtime_key.address().into_array(),
            })
            .unwrap()
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
        self.spawn_serve(&args)
    }

    /// Starts `runtime serve` for `modules`, buying and refreshing at `cadence`.
    pub fn serve_with(&self, modules: &[&Sealed], cadence: Cadence) -> Serve {
        let mut args = self.serve_args(modules);
        args.extend(cadence.args());
        self.spawn_serve(&args)
    }

    /// Starts `runtime` with exactly `args` (from [`Chain::serve_args`]),
    /// logging to a fresh file of this chain's directory; panics if it does
    /// not come up.
    pub fn spawn_serve(&self, args: &[String]) -> Serve {
        let log = self.dir.path().join(format!("serve-{}.log", unique()));
        Serve::start(args, &log).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The buyer id of the state directory `dir` (created if missing).
pub fn buyer_of(dir: &Path) -> B256 {
    B256::from(StateDir::open(dir).unwrap().buyer())
}

/// Sets the value that follows `flag` in `args` (as made by [`Chain::serve_args`]).
#[track_caller]
pub fn set_flag(args: &mut [String], flag: &str, value: impl Into<String>) {
    let at = args
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("no {flag} in {args:?}"));
    args[at + 1] = value.into();
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
    /// `http://ADDR` (or `unix:PATH`) it listens on.
    pub base: String,
    /// Its stderr file.
    pub log: PathBuf,
    lines: mpsc::Receiver<String>,
}

impl Serve {
    /// Spawns the real binary and waits for its `listening on` line; `Err`
    /// holds the exit status and stderr if it stops first.
    pub fn start(args: &[String], log: &Path) -> Result<Serve, String> {
        Serve::start_env(args, log, &[])
    }

    /// [`Serve::start`] with `env` set (the `SEALBOX_*` variables are otherwise cleared).
    pub fn start_env(args: &[String], log: &Path, env: &[(&str, &str)]) -> Result<Serve, String> {
        let stderr = std::fs::File::create(log).unwrap();
        let mut child = sealbox_testkit::command(sealbox_testkit::bin("runtime"))
            .arg("-v")
            .args(args)
            .envs(env.iter().copied())
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

    /// Its process id.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The URL of `path` on it.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The URL that invokes `export` of `product`.
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

    /// Sends SIGTERM and asserts a clean exit (in-flight calls and any
    /// purchase in flight finished; nothing is owed at shutdown).
    #[track_caller]
    pub fn shutdown(self) {
        let log = self.log.clone();
        let (status, lines) = self.terminate();
        assert!(
            status.success(),
            "runtime serve exited with {status}; stdout {lines:?}; stderr:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
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

/// POSTs `body`, asserts the answer is 200 and returns its body as text.
pub async fn post_ok(
    client: &reqwest::Client,
    url: &str,
    body: impl Into<reqwest::Body>,
) -> String {
    let (status, out) = post(client, url, body).await;
    assert_eq!(status, 200, "POST {url}: {}", String::from_utf8_lossy(&out));
    String::from_utf8(out).unwrap()
}

/// POSTs `body` and asserts the answer is a JSON error with `status` and
/// error kind `kind`: refused, not run.
pub async fn assert_refused(
    client: &reqwest::Client,
    url: &str,
    body: impl Into<reqwest::Body>,
    status: u16,
    kind: &str,
) {
    let (got, out) = post(client, url, body).await;
    assert_eq!(got, status, "POST {url}: {}", String::from_utf8_lossy(&out));
    assert_eq!(error_kind(&out), kind, "POST {url}");
}

/// POSTs `body` until it is not refused for want of a bought unit — 402
/// `prepaying`, which must carry `Retry-After: 1` — asserts the answer is
/// 200, and returns its body as text and how many `prepaying` refusals came
/// first (refused calls are not run, so not counted).
pub async fn post_paid(
    client: &reqwest::Client,
    url: &str,
    body: impl Into<reqwest::Body> + Clone,
) -> (String, u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut refused = 0;
    loop {
        let resp = client.post(url).body(body.clone()).send().await.unwrap();
        let status = resp.status().as_u16();
        let retry_after = resp.headers().get("retry-after").cloned();
        let out = resp.bytes().await.unwrap();
        if status == 200 {
            return (String::from_utf8(out.to_vec()).unwrap(), refused);
        }
        assert_eq!(status, 402, "POST {url}: {}", String::from_utf8_lossy(&out));
        assert_eq!(error_kind(&out), "prepaying", "POST {url}");
        assert_eq!(
            retry_after.as_ref().map(|v| v.to_str().unwrap()),
            Some("1"),
            "a prepaying refusal says when to retry"
        );
        refused += 1;
        assert!(
            Instant::now() < deadline,
            "POST {url}: still prepaying after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The answers to [`post_until`]: the ones before the status changed, and the first after.
pub struct Switch {
    /// The bodies of the answers that still had the old status, in order.
    pub before: Vec<Vec<u8>>,
    /// The body of the first answer with the new status.
    pub after: Vec<u8>,
}

/// POSTs `body` every 200 ms while the answer has status `from`, until it has
/// status `to` (any other status fails), for at most `limit`.
pub async fn post_until<B: Into<reqwest::Body> + Clone>(
    client: &reqwest::Client,
    url: &str,
    body: B,
    (from, to): (u16, u16),
    limit: Duration,
    what: &str,
) -> Switch {
    let deadline = Instant::now() + limit;
    let mut before = Vec::new();
    loop {
        let (status, out) = post(client, url, body.clone()).await;
        if status == to {
            return Switch { before, after: out };
        }
        assert_eq!(
            status,
            from,
            "unexpected answer while waiting for {what}: {}",
            String::from_utf8_lossy(&out)
        );
        before.push(out);
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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

/// `sealbox_calls_total` of product `name` as counted by the runtime (units admitted).
pub fn runtime_calls(text: &str, name: &str) -> Option<f64> {
    sample(
        text,
        "sealbox_calls_total",
        &[("name", name), ("counter", "runtime")],
    )
}

/// `sealbox_bought_units_total` of product `name`: units its buyer bought, as the runtime recorded.
pub fn bought_units(text: &str, name: &str) -> Option<f64> {
    sample(text, "sealbox_bought_units_total", &[("name", name)])
}

/// `sealbox_prepaid_units` of product `name`: bought units not yet used.
pub fn prepaid_units(text: &str, name: &str) -> Option<f64> {
    sample(text, "sealbox_prepaid_units", &[("name", name)])
}

/// Waits until the server has recorded a bought unit of each product `names`
/// (its first block is bought at start): calls on that block need no retry.
pub async fn wait_prepaid(
    client: &reqwest::Client,
    serve: &Serve,
    token: Option<&str>,
    names: &[&str],
) {
    eventually(
        Duration::from_secs(60),
        "the first block of units to be bought",
        || async {
            let text = metrics(client, serve, token).await;
            names
                .iter()
                .all(|n| prepaid_units(&text, n).is_some_and(|u| u > 0.0))
                .then_some(())
        },
    )
    .await;
}

/// `sealbox_call_errors_total` of product `name` for error `kind`.
pub fn call_errors(text: &str, name: &str, kind: &str) -> Option<f64> {
    sample(
        text,
        "sealbox_call_errors_total",
        &[("name", name), ("kind", kind)],
    )
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
