//! `runtime serve`: loaded products behind an HTTP API, with a license
//! refresh loop, a buying loop and Prometheus metrics.
//!
//! * [`http`]: `POST /v1/products/{product_id}/invoke/{export}` (raw bytes in,
//!   raw bytes out), `GET /metrics`, `GET /healthz`; errors are JSON
//!   `{"error": kind, "message": …}` with a status code per kind.
//! * [`guard`]: the outermost check: no request from a web page (`Origin`,
//!   `Sec-Fetch-Site`) and, on TCP, no `Host` but this server's (DNS
//!   rebinding); 403 before the token, the routes or any billing.
//! * [`auth`]: loopback or a Unix socket by default; any other address needs
//!   a bearer token, which then guards every route except `/healthz`.
//! * [`Listen`]: a TCP address, or `unix:PATH` (a socket created 0600 and
//!   removed at shutdown, guarded by its file permissions).
//! * [`refresh`]: re-checks each product's license (and release) on chain
//!   every R seconds; a lapsed license or a deauthorized signer makes that
//!   product (only) answer 402; an unreachable RPC keeps the stored lease,
//!   and calls run on the units already bought.
//! * [`buy_loop`]: buys each product's next block of units while the current
//!   one is partly used (pay before use); a call that finds no bought unit
//!   left gets 402 with `Retry-After` and wakes the loop.
//!
//! * [`pool`]: guest calls are synchronous CPU work; they run on a fixed set
//!   of worker threads (`--call-workers`, default four per core) fed by a
//!   bounded queue (`--call-queue`); a call that finds the queue full gets 503
//!   with `Retry-After`, unbilled.

mod auth;
mod buy_loop;
mod chain;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod guard;
mod http;
pub(crate) mod metrics;
mod pool;
mod refresh;
mod state;

use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::B256;
use alloy::signers::local::PrivateKeySigner;
use tokio::net::{TcpListener, UnixListener, UnixSocket};
use tokio::sync::watch;

use crate::journal::Journal;
use crate::product::Product;
use crate::purchase::PrepayPolicy;

pub use auth::{BearerToken, TokenError, TokenFileError, check_bind};
pub use chain::ChainLink;
pub use guard::{AllowedHost, AllowedHostError};
pub use pool::{DEFAULT_CALL_QUEUE, default_call_workers};

use guard::{Guard, HostRule};
use state::{App, Served};

/// Where `runtime serve` listens: `--listen 127.0.0.1:8080` or `--listen unix:PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A TCP address (port 0 picks a free port).
    Tcp(SocketAddr),
    /// A Unix domain socket, created with mode 0600 at this path.
    Unix(PathBuf),
}

/// Why a `--listen` value is neither an address nor `unix:PATH`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is neither IP:PORT (127.0.0.1:8080, [::1]:8080) nor unix:PATH (unix:/run/sealbox/http.sock)"
)]
pub struct ListenParseError(String);

impl FromStr for Listen {
    type Err = ListenParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(ListenParseError(s.to_string()));
            }
            return Ok(Listen::Unix(PathBuf::from(path)));
        }
        s.parse()
            .map(Listen::Tcp)
            .map_err(|_| ListenParseError(s.to_string()))
    }
}

impl std::fmt::Display for Listen {
    /// The `--listen` form: `127.0.0.1:8080` or `unix:/path`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Tcp(addr) => write!(f, "{addr}"),
            Listen::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl Listen {
    /// Where clients reach it: `http://127.0.0.1:8080` or `unix:/path`.
    pub fn url(&self) -> String {
        match self {
            Listen::Tcp(addr) => format!("http://{addr}"),
            Listen::Unix(_) => self.to_string(),
        }
    }
}

/// How `runtime serve` listens, guards and buys units ahead.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where to listen.
    pub listen: Listen,
    /// Bearer token every route except `/healthz` requires (mandatory on a
    /// non-loopback TCP address; honoured on every listener when set).
    pub token: Option<BearerToken>,
    /// Host names answered on TCP besides `localhost` and the server's own
    /// addresses (`--allow-host`; see [`guard`]).
    pub allow_hosts: Vec<AllowedHost>,
    /// Largest request body accepted for one call, in bytes (larger bodies get 413).
    pub max_input_bytes: usize,
    /// Worker threads guest calls run on: the most calls running at once
    /// (at most the sandbox's instance slots).
    pub call_workers: usize,
    /// Calls that may wait for a worker; one more is refused with 503.
    pub call_queue: usize,
    /// How units are bought ahead.
    pub prepay: PrepayPolicy,
    /// Period of the on-chain license re-check.
    pub refresh_every: Duration,
}

/// The chain-facing side shared by the serving loops.
#[derive(Debug, Clone)]
pub struct Ledger {
    /// The usage journal every product counts into.
    pub journal: Arc<Journal>,
    /// The runtime's receipt-signing key (the products' counters belong to it);
    /// its wallet pays the gas of every purchase.
    pub signer: PrivateKeySigner,
    /// The chain, connected lazily and reconnected after an outage.
    pub chain: Arc<ChainLink>,
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A non-loopback address was asked for without a bearer token.
    #[error(
        "refusing to listen on {addr} without a bearer token: only loopback addresses may be \
         served without one; pass --token-file (or set SEALBOX_TOKEN), or listen on 127.0.0.1 \
         or a unix: socket"
    )]
    TokenRequired {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// Nothing to serve.
    #[error("no product to serve: pass at least one --module")]
    NoProducts,
    /// Two modules are releases of the same product.
    #[error(
        "two modules are releases of the same product {product_id} ({first} and {second}); serve \
         one release per product"
    )]
    DuplicateProduct {
        /// The product id.
        product_id: B256,
        /// `name version` of the first module.
        first: String,
        /// `name version` of the second module.
        second: String,
    },
    /// The product's signer is not the ledger's signer, so its receipts could not be signed.
    #[error(
        "product {product_id} counts usage for signer 0x{}, but this server signs receipts as {signer}",
        hex::encode(.product_signer)
    )]
    SignerMismatch {
        /// The product id.
        product_id: B256,
        /// The signer of the product's usage counter.
        product_signer: [u8; 20],
        /// The ledger's signer.
        signer: alloy::primitives::Address,
    },
    /// The listening socket could not be opened.
    #[error("cannot listen on {listen}: {source}")]
    Bind {
        /// Where.
        listen: Listen,
        /// The OS error.
        source: std::io::Error,
    },
    /// Something other than a socket is in the way of `--listen unix:PATH`.
    #[error(
        "cannot listen on unix:{path}: it exists and is not a socket (it is left alone; remove \
         it or choose another path)"
    )]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// Another server already accepts connections on the socket.
    #[error("cannot listen on unix:{path}: another process is accepting connections on it")]
    SocketInUse {
        /// The path.
        path: PathBuf,
    },
    /// The call workers could not be started.
    #[error("cannot start {workers} call worker thread(s): {source}")]
    Workers {
        /// How many were asked for.
        workers: usize,
        /// The OS error.
        source: std::io::Error,
    },
    /// The HTTP server failed while running.
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// What a server did before it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServeSummary {
    /// Calls answered with the guest's output.
    pub calls_ok: u64,
    /// Invoke requests refused or failed.
    pub calls_failed: u64,
}

/// The listening socket.
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, SocketFile),
}

/// A Unix socket file this server created; removed when dropped (at
/// shutdown, or when the server never ran), unless something else has
/// replaced it meanwhile.
struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.file_type().is_socket() && m.dev() == self.dev && m.ino() == self.ino);
        if ours && let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!("cannot remove the socket {}: {e}", self.path.display());
        }
    }
}

/// Binds a Unix socket at `path`, mode 0600 before it accepts anything.
///
/// A socket file left by a server that is gone is replaced; anything else at
/// `path` (a regular file, a directory, a live server's socket) is an error.
fn bind_unix(path: &Path) -> Result<(UnixListener, SocketFile), ServeError> {
    let bind_error = |source| ServeError::Bind {
        listen: Listen::Unix(path.to_path_buf()),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => {
                    return Err(ServeError::SocketInUse {
                        path: path.to_path_buf(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    tracing::info!("removing the stale socket {}", path.display());
                    std::fs::remove_file(path).map_err(bind_error)?;
                }
                Err(e) => return Err(bind_error(e)),
            }
        }
        Ok(_) => {
            return Err(ServeError::NotASocket {
                path: path.to_path_buf(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(bind_error(e)),
    }
    let socket = UnixSocket::new_stream().map_err(bind_error)?;
    socket.bind(path).map_err(bind_error)?;
    // bind(2) created the file with the umask's mode; until listen(2) every
    // connection is refused, so no one gets in before the chmod.
    let meta = std::fs::symlink_metadata(path).map_err(bind_error)?;
    let file = SocketFile {
        path: path.to_path_buf(),
        dev: meta.dev(),
        ino: meta.ino(),
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(bind_error)?;
    let listener = socket.listen(1024).map_err(bind_error)?;
    Ok((listener, file))
}

/// A bound server, not yet accepting.
pub struct Server {
    listener: Listener,
    app: Arc<App>,
    guard: Arc<Guard>,
    ledger: Ledger,
    config: ServeConfig,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listen", &self.local_addr().ok())
            .field("products", &self.app.products.len())
            .field("config", &self.config)
            .finish()
    }
}

impl Server {
    /// Checks the bind policy, the products (one release per product, all
    /// counting for the ledger's signer) and binds the socket.
    pub async fn bind(
        config: ServeConfig,
        products: Vec<Product>,
        ledger: Ledger,
    ) -> Result<Server, ServeError> {
        check_bind(&config.listen, config.token.as_ref())?;
        if products.is_empty() {
            return Err(ServeError::NoProducts);
        }
        let signer = ledger.signer.address();
        let mut served: Vec<Arc<Served>> = Vec::with_capacity(products.len());
        for product in products {
            let entry = Served::new(product);
            if entry.product.usage_key().signer != signer.into_array() {
                return Err(ServeError::SignerMismatch {
                    product_id: entry.id,
                    product_signer: entry.product.usage_key().signer,
                    signer,
                });
            }
            if let Some(first) = served.iter().find(|s| s.id == entry.id) {
                return Err(ServeError::DuplicateProduct {
                    product_id: entry.id,
                    first: first.label(),
                    second: entry.label(),
                });
            }
            served.push(Arc::new(entry));
        }
        let (listener, rule) = match &config.listen {
            Listen::Tcp(addr) => {
                let bind_error = |source| ServeError::Bind {
                    listen: config.listen.clone(),
                    source,
                };
                let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
                let bound = listener.local_addr().map_err(bind_error)?;
                let rule = HostRule::Tcp {
                    bound: bound.ip(),
                    allowed: config.allow_hosts.clone(),
                };
                (Listener::Tcp(listener), rule)
            }
            Listen::Unix(path) => {
                let (listener, file) = bind_unix(path)?;
                (Listener::Unix(listener, file), HostRule::Any)
            }
        };
        let pool = pool::CallPool::for_calls(config.call_workers, config.call_queue).map_err(
            |source| ServeError::Workers {
                workers: config.call_workers,
                source,
            },
        )?;
        let app = Arc::new(App::new(
            served,
            Arc::clone(&ledger.journal),
            config.token.clone(),
            config.max_input_bytes,
            pool,
        ));
        Ok(Server {
            listener,
            app,
            guard: Guard::new(rule),
            ledger,
            config,
        })
    }

    /// Where the server actually listens (with port 0, the port picked).
    pub fn local_addr(&self) -> Result<Listen, ServeError> {
        match &self.listener {
            Listener::Tcp(listener) => listener
                .local_addr()
                .map(Listen::Tcp)
                .map_err(ServeError::Serve),
            Listener::Unix(_, file) => Ok(Listen::Unix(file.path.clone())),
        }
    }

    /// `(product id, name, version, entries)` of each served product, in load order.
    pub fn products(&self) -> Vec<(B256, String, String, Vec<String>)> {
        self.app
            .products
            .iter()
            .map(|s| (s.id, s.name.clone(), s.version.clone(), s.entries.clone()))
            .collect()
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight
    /// calls finish and stops the loops (a purchase in flight completes; its
    /// receipt is kept and re-sent by the next start if it was not mined). A
    /// Unix socket file is removed once the server stops accepting.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<ServeSummary, ServeError> {
        let Server {
            listener,
            app,
            guard,
            ledger,
            config,
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let buying = tokio::spawn(buy_loop::run(
            Arc::clone(&app),
            ledger.clone(),
            config.prepay,
            stop_rx.clone(),
        ));
        let refresh = tokio::spawn(refresh::run(
            Arc::clone(&app),
            ledger.clone(),
            config.refresh_every,
            stop_rx,
        ));

        let router = http::router(Arc::clone(&app), guard);
        let served = match listener {
            Listener::Tcp(listener) => {
                axum::serve(listener, router)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
            Listener::Unix(listener, file) => {
                let served = axum::serve(listener, router)
                    .with_graceful_shutdown(shutdown)
                    .await;
                drop(file);
                served
            }
        };
        tracing::info!("stopped accepting; waiting for in-flight calls");
        // Handlers whose client went away leave their call queued or running:
        // let the workers finish every one before the last flush.
        app.drain_calls().await;
        let _ = stop_tx.send(true);
        if let Err(e) = refresh.await {
            tracing::warn!("the license refresh loop ended abnormally: {e}");
        }
        if let Err(e) = buying.await {
            tracing::warn!("the buying loop ended abnormally: {e}");
        }
        served.map_err(ServeError::Serve)?;
        let (calls_ok, calls_failed) = app.call_totals();
        Ok(ServeSummary {
            calls_ok,
            calls_failed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_parses_addresses_and_unix_paths() {
        assert_eq!(
            "127.0.0.1:8080".parse::<Listen>().unwrap(),
            Listen::Tcp("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(
            "unix:/run/sealbox/http.sock".parse::<Listen>().unwrap(),
            Listen::Unix("/run/sealbox/http.sock".into())
        );
        assert_eq!(
            "unix:/run/s.sock".parse::<Listen>().unwrap().to_string(),
            "unix:/run/s.sock"
        );
        assert_eq!("[::1]:0".parse::<Listen>().unwrap().url(), "http://[::1]:0");
        for bad in ["unix:", "localhost:8080", "8080", "/run/s.sock"] {
            assert!(bad.parse::<Listen>().is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_unix_socket_is_private_and_never_replaces_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("http.sock");
        let (listener, file) = bind_unix(&path).unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        // A live server's socket is not taken over.
        assert!(matches!(
            bind_unix(&path),
            Err(ServeError::SocketInUse { .. })
        ));
        // A stale one (its server gone, the file left) is replaced.
        drop(listener);
        std::mem::forget(file);
        let (_listener, file) = bind_unix(&path).unwrap();
        drop(file);
        assert!(!path.exists(), "the socket is removed with its server");

        let regular = dir.path().join("notes.txt");
        std::fs::write(&regular, "keep me").unwrap();
        assert!(matches!(
            bind_unix(&regular),
            Err(ServeError::NotASocket { .. })
        ));
        assert_eq!(std::fs::read_to_string(&regular).unwrap(), "keep me");
    }
}
