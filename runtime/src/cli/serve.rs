//! `runtime serve`: sealed modules behind an HTTP API, with license refresh,
//! units bought ahead and Prometheus metrics.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::Address;
use anyhow::{Context as _, bail};
use sealbox_runtime::serve::{
    AllowedHost, BearerToken, ChainLink, DEFAULT_CALL_QUEUE, Ledger, Listen, ServeConfig, Server,
    check_bind, default_call_workers,
};

use super::context::{ChainArgs, PrepayArgs, RunSession, SandboxArgs, StateArgs, read_file};

/// Arguments of `runtime serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A sealed module to serve (repeatable; one release per product).
    #[arg(long = "module", value_name = "SEALED", required = true)]
    pub modules: Vec<PathBuf>,
    /// Where to listen: IP:PORT, or unix:PATH for a Unix socket (created with mode 0600,
    /// removed at shutdown; no token needed). A TCP address other than loopback requires a
    /// token (--token-file or SEALBOX_TOKEN).
    #[arg(long, value_name = "ADDR|unix:PATH", default_value = "127.0.0.1:8080")]
    pub listen: Listen,
    /// File holding the bearer token required by every route except /healthz (at least 16
    /// characters; one trailing newline is ignored). It must be 0600 or stricter. The token
    /// may instead come from the SEALBOX_TOKEN environment variable; it is never taken from
    /// the command line, where every local user can read it.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Refused with an explanation: use --token-file or SEALBOX_TOKEN.
    #[arg(long = "token", value_name = "TOKEN", hide = true)]
    pub token_on_command_line: Option<String>,
    /// A host name clients reach this server by, e.g. a DNS or service name (repeatable).
    /// Requests over TCP whose Host header names anything but localhost, a loopback
    /// address, the listening address or one of these are refused with 403 (DNS rebinding);
    /// requests carrying an Origin header (sent by web pages) are always refused.
    #[arg(long = "allow-host", value_name = "NAME")]
    pub allow_hosts: Vec<AllowedHost>,
    /// Worker threads guest calls run on (default: four per core): the most calls running at
    /// once. At most the sandbox's instance slots (64).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub call_workers: Option<u32>,
    /// Calls that may wait for a free worker; a call arriving when this many wait is refused
    /// at once with 503 and Retry-After: 1 (not billed), counted in /metrics.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CALL_QUEUE as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub call_queue: u32,
    #[command(flatten)]
    pub prepay: PrepayArgs,
    /// Re-check every product's license (and release, and signer) on chain this often
    /// (seconds); a lapsed license stops its product's calls at the next check.
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
    pub state: StateArgs,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

/// The environment variable that may hold the bearer token.
const TOKEN_ENV: &str = "SEALBOX_TOKEN";

/// The bearer token from `--token-file` or `SEALBOX_TOKEN`; a token on the
/// command line is refused.
fn token(args: &Args) -> anyhow::Result<Option<BearerToken>> {
    if args.token_on_command_line.is_some() {
        bail!(
            "--token is not accepted: a token on the command line is visible to every user of \
             this machine (ps, /proc/PID/cmdline), so consider this one exposed and make a new \
             one. Write it to a file only you can read (umask 077; openssl rand -hex 24 > \
             token) and pass --token-file token, or set {TOKEN_ENV}"
        );
    }
    let env = std::env::var_os(TOKEN_ENV).filter(|v| !v.is_empty());
    match (&args.token_file, env) {
        (Some(path), Some(_)) => bail!(
            "both --token-file {} and {TOKEN_ENV} are set; give the token one way",
            path.display()
        ),
        (Some(path), None) => Ok(Some(BearerToken::from_file(path)?)),
        (None, Some(value)) => {
            let Some(value) = value.to_str() else {
                bail!("{TOKEN_ENV} is not valid UTF-8");
            };
            let token = value
                .parse()
                .with_context(|| format!("{TOKEN_ENV} is not a usable bearer token"))?;
            Ok(Some(token))
        }
        (None, None) => Ok(None),
    }
}

/// Runs `runtime serve` until SIGTERM or SIGINT.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let token = token(&args)?;
    // Refuse an unguarded public address before touching keys or the chain.
    check_bind(&args.listen, token.as_ref())?;
    let prepay = args.prepay.policy()?;
    let sealed = args
        .modules
        .iter()
        .map(|path| read_file(path).map(|bytes| (path, bytes)))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let run = RunSession::open(&args.chain, &args.state, &args.sandbox, args.customer).await?;
    let session = &run.session;
    let loader = run.loader("serve");
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
        session.deployment,
        session.signer.clone(),
        session.client.clone(),
    );
    let ledger = Ledger {
        journal: Arc::clone(&session.journal),
        signer: session.signer.clone(),
        chain: Arc::new(chain),
    };
    let config = ServeConfig {
        listen: args.listen.clone(),
        token,
        allow_hosts: args.allow_hosts.clone(),
        max_input_bytes: args.sandbox.max_input_bytes,
        call_workers: args
            .call_workers
            .map_or_else(default_call_workers, |n| n as usize)
            .min(run.sandbox.config().pool_instances as usize),
        call_queue: args.call_queue as usize,
        prepay,
        refresh_every: Duration::from_secs(args.refresh_secs),
    };
    let server = Server::bind(config, products, ledger).await?;
    let listen = server.local_addr()?;
    for (id, name, version, entries) in server.products() {
        println!(
            "serving {name} {version} as {id} (entries: {})",
            entries.join(", ")
        );
    }
    // Scripts and tests wait for this line; with port 0 it names the port.
    println!("listening on {}", listen.url());

    let summary = server.run(shutdown_signal()).await?;
    println!(
        "stopped: {} call(s) answered, {} refused or failed",
        summary.calls_ok, summary.calls_failed
    );
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
