//! The `runtime` command line.

mod context;
mod license;
mod meter;
mod run;
mod serve;
mod settle;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use license_contract::RegistryError;
use sealbox_runtime::RuntimeError;

/// Run sealed Wasm algorithms on-prem: verified, licensed on-chain, metered in the kernel.
#[derive(Debug, Parser)]
#[command(name = "runtime", version, after_long_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// More log output on stderr (-v: info, -vv: debug). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one call of a sealed module: verify, check the license, decrypt, compile, buy units
    /// ahead if none is left, invoke.
    Run(Box<run::Args>),
    /// The customer's license: deposit, status, authorize or deauthorize a runtime signer,
    /// withdraw.
    #[command(subcommand)]
    License(license::Command),
    /// Finish purchases an earlier process left in flight and report bought / used / unused
    /// units (nothing is owed after a call: units are bought before they run).
    Settle(Box<settle::Args>),
    /// Serve sealed modules over HTTP, buying units ahead, with license refresh and /metrics.
    Serve(Box<serve::Args>),
    /// Meter TLS handshakes of a cgroup (or pid tree) in the kernel, price them with a sealed
    /// tariff (hot-reloaded when its file changes), buy the units on chain ahead (the kernel
    /// refuses connects past them unless the tariff allows overage), serve /metrics.
    Meter(Box<meter::Args>),
}

impl Command {
    /// Runs the subcommand.
    pub async fn run(self) -> anyhow::Result<()> {
        match self {
            Command::Run(args) => run::run(*args).await,
            Command::License(cmd) => license::run(cmd).await,
            Command::Settle(args) => settle::run(*args).await,
            Command::Serve(args) => serve::run(*args).await,
            Command::Meter(args) => meter::run(*args).await,
        }
    }
}

const EXIT_CODES_HELP: &str = "\
Exit codes:
  0       success
  1       other error (I/O, bad key file, …)
  2       usage error
  10-23   the sealed file failed a check (same codes as `packager verify`)
  30      chain or deployment mismatch        31  registry mismatch
  32      chain unreachable / cannot run offline
  33      not licensed          34  signer not authorized by the customer
  35      no bought unit left and none can be bought (escrow, price above --max-price)
  36      kernel meter required but not attached
  37      usage journal or state directory error (e.g. in use by another process)
  38      a purchase transaction failed or was refused by the contract
  39      the module bills another unit than this command meters (e.g. a tls_handshake
          tariff given to `run` or `serve`: it runs under `runtime meter`)
  40      sandbox refused the module (imports, ABI, limits)
  41      the guest call failed (trap, runaway loop, memory limit, missing export)";

/// Sets up logging to stderr.
pub fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// Prints the error chain and picks the exit code of the step that failed.
pub fn report(err: &anyhow::Error) -> ExitCode {
    let top = err.to_string();
    eprintln!("error: {top}");
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !top.contains(&text) {
            eprintln!("  caused by: {text}");
        }
    }
    let code = err
        .chain()
        .find_map(|e| {
            if let Some(e) = e.downcast_ref::<RuntimeError>() {
                return Some(e.exit_code());
            }
            match e.downcast_ref::<RegistryError>()? {
                RegistryError::Unreachable { .. } => Some(32),
                RegistryError::WrongChain { .. } => Some(30),
                _ => None,
            }
        })
        .unwrap_or(1);
    ExitCode::from(code)
}
