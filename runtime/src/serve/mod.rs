//! `runtime serve`: loaded products behind an HTTP API, with a license
//! refresh loop, a settle loop and Prometheus metrics.
//!
//! * [`http`]: `POST /v1/products/{product_id}/invoke/{export}` (raw bytes in,
//!   raw bytes out), `GET /metrics`, `GET /healthz`; errors are JSON
//!   `{"error": kind, "message": …}` with a status code per kind.
//! * [`auth`]: loopback by default; any other address needs a bearer token,
//!   which then guards every route except `/healthz`.
//! * [`refresh`]: re-checks each product's license on chain every R seconds;
//!   a lapsed license makes that product (only) answer 402, an unreachable
//!   RPC keeps the stored lease, whose rules then decide each call.
//! * [`settle_loop`]: every N units or T seconds, signs a cumulative receipt
//!   per product and settles it, retrying RPC failures with exponential
//!   backoff; one last round after a graceful shutdown.
//!
//! Guest calls are synchronous CPU work and run on the blocking pool, at most
//! as many at once as the sandbox has instance slots.

mod auth;
mod chain;
mod http;
mod metrics;
mod refresh;
mod settle_loop;
mod state;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::B256;
use alloy::signers::local::PrivateKeySigner;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::journal::Journal;
use crate::product::Product;

pub use auth::{BearerToken, TokenError, check_bind};
pub use chain::ChainLink;
pub use settle_loop::SettlePolicy;

use state::{App, Served};

/// How `runtime serve` listens, guards and settles.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to bind.
    pub listen: SocketAddr,
    /// Bearer token every route except `/healthz` requires (mandatory off loopback).
    pub token: Option<BearerToken>,
    /// Largest request body accepted for one call, in bytes (larger bodies get 413).
    pub max_input_bytes: usize,
    /// Most guest calls running at once (further requests wait for a slot).
    pub max_concurrent_calls: usize,
    /// When usage is settled on chain.
    pub settle: SettlePolicy,
    /// Period of the on-chain license re-check.
    pub refresh_every: Duration,
}

/// The chain-facing side shared by the serving loops.
#[derive(Debug, Clone)]
pub struct Ledger {
    /// The usage journal every product counts into.
    pub journal: Arc<Journal>,
    /// The runtime's receipt-signing key (the products' counters belong to it).
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
         served without one; pass --token (or set SEALBOX_TOKEN), or listen on 127.0.0.1"
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
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
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
    /// Products whose final settlement round failed (their units stay in the
    /// journal for the next start or `runtime settle`).
    pub final_settle_failures: u64,
}

/// A bound server, not yet accepting.
pub struct Server {
    listener: TcpListener,
    app: Arc<App>,
    ledger: Ledger,
    config: ServeConfig,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.listener.local_addr().ok())
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
        check_bind(config.listen, config.token.as_ref())?;
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
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServeError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let app = Arc::new(App::new(
            served,
            Arc::clone(&ledger.journal),
            config.token.clone(),
            config.max_input_bytes,
            config.max_concurrent_calls,
            config.settle.every_units,
        ));
        Ok(Server {
            listener,
            app,
            ledger,
            config,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, ServeError> {
        self.listener.local_addr().map_err(ServeError::Serve)
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
    /// calls finish, stops the loops and runs one last settlement round.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<ServeSummary, ServeError> {
        let Server {
            listener,
            app,
            ledger,
            config,
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let settle = tokio::spawn(settle_loop::run(
            Arc::clone(&app),
            ledger.clone(),
            config.settle,
            stop_rx.clone(),
        ));
        let refresh = tokio::spawn(refresh::run(
            Arc::clone(&app),
            ledger.clone(),
            config.refresh_every,
            stop_rx,
        ));

        let router = http::router(Arc::clone(&app));
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await;
        tracing::info!("stopped accepting; waiting for in-flight calls");
        // Handlers whose client went away leave their blocking call running:
        // wait for every call slot to come back before the last settlement.
        app.drain_calls().await;
        let _ = stop_tx.send(true);
        if let Err(e) = refresh.await {
            tracing::warn!("the license refresh loop ended abnormally: {e}");
        }
        let final_settle_failures = match settle.await {
            Ok(failures) => failures,
            Err(e) => {
                tracing::warn!("the settle loop ended abnormally: {e}");
                app.products.len() as u64
            }
        };
        served.map_err(ServeError::Serve)?;
        let (calls_ok, calls_failed) = app.call_totals();
        Ok(ServeSummary {
            calls_ok,
            calls_failed,
            final_settle_failures,
        })
    }
}
