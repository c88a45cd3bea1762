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
use sealbox_report::Exit;
use sealbox_runtime::{RuntimeError, exit_codes};

/// The binary's name, as errors and `--help` show it.
pub const BIN: &str = "runtime";

/// Run sealed Wasm algorithms on-prem: verified, licensed on-chain, metered in the kernel.
#[derive(Debug, Parser)]
#[command(name = BIN, version, after_long_help = sealbox_report::help(&exit_codes()))]
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

/// Prints the error and its distinct causes, and picks the exit code of the step that failed.
pub fn report(err: &anyhow::Error) -> ExitCode {
    let exit = err
        .chain()
        .find_map(|e| {
            if let Some(e) = e.downcast_ref::<RuntimeError>() {
                return Some(e.exit_code());
            }
            match e.downcast_ref::<RegistryError>()? {
                RegistryError::Unreachable { .. } => Some(Exit::ChainUnreachable),
                RegistryError::WrongChain { .. } => Some(Exit::ChainMismatch),
                _ => None,
            }
        })
        .unwrap_or(Exit::Failure);
    sealbox_report::report(BIN, err.as_ref(), exit)
}
