//! `runtime serve`: sealed modules behind an HTTP API, with license refresh,
//! periodic settlement and Prometheus metrics.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::Address;
use anyhow::Context as _;
use sealbox_runtime::serve::{
    BearerToken, ChainLink, Ledger, ServeConfig, Server, SettlePolicy, check_bind,
};

use super::context::{ChainArgs, RuntimeArgs, Session, read_file};

/// Arguments of `runtime serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A sealed module to serve (repeatable; one release per product).
    #[arg(long = "module", value_name = "SEALED", required = true)]
    pub modules: Vec<PathBuf>,
    /// Address to listen on. Anything but a loopback address requires --token.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Bearer token required by every route except /healthz (at least 16 characters).
    #[arg(long, env = "SEALBOX_TOKEN", hide_env_values = true)]
    pub token: Option<BearerToken>,
    /// Settle a product once it has run this many units since its last settlement. A repeat
    /// settle costs ~57,000 gas whatever it covers: the default, 100,000, costs ~0.6 gas per
    /// unit, and the escrow still bounds what can go unsettled.
    #[arg(long, value_name = "N", default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub settle_every_units: u64,
    /// Settle at least this often (seconds) while there are unsettled units.
    #[arg(long, value_name = "T", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub settle_every_secs: u64,
    /// Re-check every product's license on chain this often (seconds).
    #[arg(long, value_name = "R", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub refresh_secs: u64,
    /// Customer whose licenses are used (default: the key's own address; the key must be a
    /// signer the customer authorized).
    #[arg(long)]
    pub customer: Option<Address>,
    #[command(flatten)]
    pub chain: ChainArgs,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// Runs `runtime serve` until SIGTERM or SIGINT.
pub async fn run(args: Args) -> anyhow::Result<()> {
    // Refuse an unguarded public address before touching keys or the chain.
    check_bind(args.listen, args.token.as_ref())?;
    let sealed = args
        .modules
        .iter()
        .map(|path| read_file(path).map(|bytes| (path, bytes)))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let session = Session::open(&args.chain, &args.runtime, args.customer).await?;
    let loader = session.loader()?;
    let mut products = Vec::with_capacity(sealed.len());
    for (path, bytes) in &sealed {
        let product = loader
            .load(bytes)
            .await
            .with_context(|| format!("cannot serve {}", path.display()))?;
        products.push(product);
    }

    let chain = ChainLink::new(
        args.chain.rpc.clone(),
        args.chain.registry,
        session.journal.chain_id()?,
        session.signer.clone(),
        session.client.clone(),
    );
    let ledger = Ledger {
        journal: Arc::clone(&session.journal),
        signer: session.signer.clone(),
        chain: Arc::new(chain),
    };
    let config = ServeConfig {
        listen: args.listen,
        token: args.token.clone(),
        max_input_bytes: args.runtime.max_input_bytes,
        max_concurrent_calls: session.sandbox.config().pool_instances as usize,
        settle: SettlePolicy {
            every_units: args.settle_every_units,
            every: Duration::from_secs(args.settle_every_secs),
            ..SettlePolicy::default()
        },
        refresh_every: Duration::from_secs(args.refresh_secs),
    };
    let server = Server::bind(config, products, ledger).await?;
    let addr = server.local_addr()?;
    for (id, name, version, entries) in server.products() {
        println!(
            "serving {name} {version} as {id} (entries: {})",
            entries.join(", ")
        );
    }
    // Scripts and tests wait for this line; with port 0 it names the port.
    println!("listening on http://{addr}");

    let summary = server.run(shutdown_signal()).await?;
    println!(
        "stopped: {} call(s) answered, {} refused or failed",
        summary.calls_ok, summary.calls_failed
    );
    if summary.final_settle_failures > 0 {
        eprintln!(
            "warning: {} product(s) could not be settled at shutdown; their units are kept in \
             the journal and settle at the next start or with `runtime settle`",
            summary.final_settle_failures
        );
    }
    Ok(())
}

/// Completes on the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => Some(term),
        Err(e) => {
            tracing::warn!("cannot listen for SIGTERM ({e}); stop the server with SIGINT");
            None
        }
    };
    let sigterm = async {
        match term.as_mut() {
            Some(term) => {
                term.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = sigterm => {}
    }
    tracing::info!("shutdown requested");
}
