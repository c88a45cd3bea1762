//! A real anvil per test (or per test binary), and what the tests do with
//! it: control RPCs, funded keys, a deployed `LicenseRegistry`.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use license_contract::{DEFAULT_FEE_BPS, DeployParams, RegistryClient};
use socket2::{Domain, Socket, Type};

use crate::keys::dev_key;
use crate::process::command;

/// Anvil's chain id.
pub const CHAIN_ID: u64 = 31337;

/// How long anvil may take to listen, or to exit on SIGTERM.
const ANVIL_WAIT: Duration = Duration::from_secs(15);

/// The anvil binary: `$SEALBOX_ANVIL`, else `license-contract/node_modules/.bin/anvil`.
pub fn anvil_path() -> PathBuf {
    if let Some(p) = std::env::var_os("SEALBOX_ANVIL") {
        return PathBuf::from(p);
    }
    let p = crate::repo_root().join("license-contract/node_modules/.bin/anvil");
    assert!(
        p.exists(),
        "anvil not found at {}: run scripts/setup (npm ci in license-contract/), or point \
         SEALBOX_ANVIL at an anvil 1.7.1 binary",
        p.display()
    );
    p
}

/// A loopback TCP port held for as long as this value lives: a socket bound
/// to `127.0.0.1:P` with `SO_REUSEADDR` that never listens. The kernel never
/// hands the port out for a bind to port 0 (what alloy's anvil, other tests'
/// servers and outgoing connections get) and refuses a bind to it without
/// `SO_REUSEADDR`, while the one server told `--port P` binds and listens
/// alongside (anvil sets `SO_REUSEADDR`, as every tokio listener does). A
/// connection while nobody listens is refused at once.
#[derive(Debug)]
pub struct Port {
    _socket: Socket,
    port: u16,
}

impl Port {
    /// Reserves a port the OS picks.
    pub fn reserve() -> Port {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a TCP socket");
        socket
            .set_reuse_address(true)
            .expect("SO_REUSEADDR on the port reservation");
        let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        socket.bind(&any.into()).expect("bind a loopback port");
        let port = socket
            .local_addr()
            .expect("the reservation's address")
            .as_socket()
            .expect("an inet address")
            .port();
        Port {
            _socket: socket,
            port,
        }
    }

    /// The port number.
    pub fn number(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:P`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// An `http://` URL where nothing listens for the whole test process (a
/// reserved [`Port`] nobody is told about): every connection is refused.
pub fn dead_rpc_url() -> String {
    static DEAD: OnceLock<Port> = OnceLock::new();
    DEAD.get_or_init(Port::reserve).url()
}

/// The `LicenseRegistry` parameters of a test deployment ([`Anvil::deploy`]).
#[derive(Debug, Clone, Copy)]
pub struct Deploy {
    /// Platform fee in basis points.
    pub fee_bps: u16,
    /// Receives the fee; `None` = the deployer (dev account 0).
    pub treasury: Option<Address>,
    /// Withdrawal delay in seconds.
    pub thaw_seconds: u64,
}

impl Default for Deploy {
    /// The contract's default fee (3000 bps), treasury = deployer, thaw 1 h.
    fn default() -> Deploy {
        Deploy {
            fee_bps: DEFAULT_FEE_BPS,
            treasury: None,
            thaw_seconds: 3600,
        }
    }
}

/// A real anvil on a [`Port`] reserved for its whole life, logging to a
/// directory of its own. Dropping it kills anvil.
pub struct Anvil {
    port: Port,
    dir: tempfile::TempDir,
    args: Vec<String>,
    /// `--state FILE`: dumped on SIGTERM, loaded at start.
    persistent: bool,
    run: Mutex<Run>,
}

/// The running process and how many times it was started.
struct Run {
    child: Option<Child>,
    starts: u32,
}

impl Anvil {
    /// A fresh chain. Its genesis block is anvil's for the current second:
    /// two fresh chains started within the same second have the same genesis
    /// hash (the same chain to a deployment id); give one a `--timestamp`
    /// ([`Anvil::spawn_with`]) where a test needs them to differ.
    pub fn spawn() -> Anvil {
        Anvil::start(&[], false)
    }

    /// A fresh chain with extra command-line arguments (e.g. `--timestamp T`).
    pub fn spawn_with(args: &[&str]) -> Anvil {
        Anvil::start(args, false)
    }

    /// A fresh chain run with `--state FILE`, so that [`Anvil::halt`] and
    /// [`Anvil::resume`] can stop it and start it again, same state, same URL
    /// (its port stays reserved while it is down).
    ///
    /// It runs with a fixed `--timestamp`: once a chain holds more than about
    /// a thousand blocks, anvil's state file no longer holds block 0, and the
    /// restarted anvil makes a new genesis block from its start time, so to a
    /// runtime a new chain (a new deployment id), with counters of their own.
    /// A fixed genesis timestamp makes it the same block again (found by the
    /// chaos soak, tests/tests/all/soak.rs, at its third anvil restart).
    pub fn persistent() -> Anvil {
        let genesis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("the clock is past 1970")
            .as_secs()
            .to_string();
        Anvil::start(&["--timestamp", &genesis], true)
    }

    fn start(args: &[&str], persistent: bool) -> Anvil {
        let anvil = Anvil {
            port: Port::reserve(),
            dir: tempfile::tempdir().expect("tempdir"),
            args: args.iter().map(|a| a.to_string()).collect(),
            persistent,
            run: Mutex::new(Run {
                child: None,
                starts: 0,
            }),
        };
        anvil.launch(&mut anvil.lock());
        anvil
    }

    /// The JSON-RPC endpoint, `http://127.0.0.1:P`.
    pub fn endpoint(&self) -> String {
        self.port.url()
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port.number()
    }

    /// The state file of a [persistent](Anvil::persistent) anvil.
    fn state(&self) -> PathBuf {
        self.dir.path().join("state.json")
    }

    fn lock(&self) -> MutexGuard<'_, Run> {
        self.run.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts anvil and waits until its log says it listens on our port.
    fn launch(&self, run: &mut Run) {
        assert!(run.child.is_none(), "anvil is already running");
        run.starts += 1;
        let log = self.dir.path().join(format!("anvil-{}.log", run.starts));
        let file = std::fs::File::create(&log).expect("create the anvil log");
        let err = file.try_clone().expect("clone the log file handle");
        let path = anvil_path();
        let mut cmd = command(&path);
        cmd.args(["--port", &self.port().to_string()])
            .args(&self.args)
            .stdout(file)
            .stderr(Stdio::from(err));
        if self.persistent {
            cmd.arg("--state").arg(self.state());
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start anvil at {}: {e}", path.display()));
        let listening = format!("Listening on 127.0.0.1:{}", self.port());
        let deadline = Instant::now() + ANVIL_WAIT;
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains(&listening) {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let lost = if text.contains("in use") {
                    format!(
                        " (port {} was taken although reserved: something bound it with \
                         SO_REUSEADDR)",
                        self.port()
                    )
                } else {
                    String::new()
                };
                panic!("anvil exited ({status}) before listening{lost}:\n{text}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "anvil did not listen on port {} within {ANVIL_WAIT:?}:\n{text}",
                    self.port()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        run.child = Some(child);
    }

    /// Stops a [persistent](Anvil::persistent) anvil with SIGTERM (it saves
    /// its state) and waits for it to exit: the RPC refuses connections, and
    /// the port stays reserved for [`Anvil::resume`].
    pub fn halt(&self) {
        assert!(
            self.persistent,
            "only an Anvil::persistent anvil can halt and resume"
        );
        let mut run = self.lock();
        let mut child = run.child.take().expect("anvil is running");
        let pid = libc::pid_t::try_from(child.id()).expect("a pid fits pid_t");
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet.
        assert_eq!(
            unsafe { libc::kill(pid, libc::SIGTERM) },
            0,
            "SIGTERM anvil"
        );
        let deadline = Instant::now() + ANVIL_WAIT;
        loop {
            if let Some(status) = child.try_wait().expect("wait for anvil") {
                assert!(status.success(), "anvil exited with {status} on SIGTERM");
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("anvil did not exit within {ANVIL_WAIT:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            self.state().is_file(),
            "anvil saved no state at {}",
            self.state().display()
        );
    }

    /// Restarts a halted [persistent](Anvil::persistent) anvil from its saved
    /// state on the same port.
    pub fn resume(&self) {
        assert!(
            self.persistent,
            "only an Anvil::persistent anvil can halt and resume"
        );
        self.launch(&mut self.lock());
    }

    /// Calls an anvil control method (`evm_mine`, `evm_setAutomine`,
    /// `anvil_setBalance`, …) with `params` (a JSON array).
    pub async fn rpc(&self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let url = self.endpoint().parse().expect("a valid URL");
        ProviderBuilder::new()
            .connect_http(url)
            .raw_request(method.to_string().into(), params)
            .await
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    /// Gives `who` 100 ETH (`anvil_setBalance`: no transaction, so no nonce
    /// races between tests sharing the chain).
    pub async fn fund(&self, who: Address) {
        let amount = U256::from(100u64) * U256::from(10u64).pow(U256::from(18u64));
        self.rpc("anvil_setBalance", serde_json::json!([who, amount]))
            .await;
    }

    /// A random key with 100 ETH.
    pub async fn funded_key(&self) -> PrivateKeySigner {
        let key = PrivateKeySigner::random();
        self.fund(key.address()).await;
        key
    }

    /// Moves the chain's clock `seconds` ahead and mines a block.
    pub async fn advance_time(&self, seconds: u64) {
        self.rpc("evm_increaseTime", serde_json::json!([seconds]))
            .await;
        self.rpc("evm_mine", serde_json::json!([])).await;
    }

    /// Deploys a `LicenseRegistry` with `params` from dev account 0 (refusing
    /// any chain but [`CHAIN_ID`]) and returns the deployer's client.
    pub async fn deploy(&self, params: Deploy) -> RegistryClient {
        let params = DeployParams {
            fee_bps: params.fee_bps,
            treasury: params.treasury,
            thaw_seconds: params.thaw_seconds,
            expected_chain_id: Some(CHAIN_ID),
        };
        let (client, _) = RegistryClient::deploy(&self.endpoint(), dev_key(0), params)
            .await
            .unwrap_or_else(|e| panic!("deploy the registry: {e}"));
        client
    }

    /// A client of `registry` on this chain sending transactions from `key`
    /// (`None`: read-only).
    pub async fn client(&self, registry: Address, key: Option<PrivateKeySigner>) -> RegistryClient {
        RegistryClient::connect(&self.endpoint(), registry, Some(CHAIN_ID), key)
            .await
            .unwrap_or_else(|e| panic!("connect to the registry {registry}: {e}"))
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        if let Some(mut child) = self.lock().child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserved_port_is_refused_to_a_plain_bind_and_to_connections() {
        let port = Port::reserve();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port.number()));
        let plain = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        assert!(
            plain.bind(&addr.into()).is_err(),
            "a reserved port must not be free for others"
        );
        assert!(
            std::net::TcpStream::connect(addr).is_err(),
            "nothing listens on a reservation"
        );
        let dead = dead_rpc_url();
        assert!(std::net::TcpStream::connect(dead.trim_start_matches("http://")).is_err());
    }

    /// Halted, the chain refuses connections and keeps its port; resumed, it
    /// answers on the same URL with the state it had.
    #[tokio::test]
    async fn a_persistent_anvil_resumes_on_its_reserved_port_with_its_state() {
        let anvil = Anvil::persistent();
        let who = anvil.funded_key().await.address();
        let url = anvil.endpoint();
        anvil.halt();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], anvil.port()));
        assert!(std::net::TcpStream::connect(addr).is_err(), "halted");
        let plain = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        assert!(plain.bind(&addr.into()).is_err(), "the port stays reserved");
        anvil.resume();
        assert_eq!(anvil.endpoint(), url);
        let balance = anvil
            .rpc("eth_getBalance", serde_json::json!([who, "latest"]))
            .await;
        let hundred_eth = U256::from(100u64) * U256::from(10u64).pow(U256::from(18u64));
        assert_eq!(balance, serde_json::json!(hundred_eth), "state survived");
    }

    #[tokio::test]
    async fn a_deployed_registry_has_the_asked_fee_and_treasury() {
        let anvil = Anvil::spawn();
        let treasury = crate::dev_key(4).address();
        let registry = anvil
            .deploy(Deploy {
                fee_bps: 1234,
                treasury: Some(treasury),
                ..Deploy::default()
            })
            .await;
        let info = anvil
            .client(registry.address(), None)
            .await
            .info()
            .await
            .unwrap();
        assert_eq!(info.fee_bps, 1234);
        assert_eq!(info.treasury, treasury);
        assert_eq!(info.thaw_seconds, 3600);
        assert_eq!(info.chain_id, CHAIN_ID);
    }
}
