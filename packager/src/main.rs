//! `packager`: the Sealbox vendor CLI.
//!
//! Each subcommand lives in its own module exposing `Args` (clap) and `run(Args)`. To add one,
//! write the module, then add its variant to [`Command`] and its arm to [`Command::run`].

mod chain;
mod customer;
mod exit;
mod inspect;
mod keygen;
mod keys;
mod mapped;
mod new;
mod pubkey;
mod publish;
mod revoke;
mod seal;
mod sealed_output;
mod vendor_module;
mod verify;
mod withdraw;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Seal Wasm algorithms for Sealbox: sign them, bind them to an on-chain product and
/// optionally encrypt them to named customers; publish them and withdraw revenue.
#[derive(Debug, Parser)]
#[command(name = "packager", version, after_long_help = exit::help())]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a vendor project: a Rust crate (JSON in, JSON out, with a host test) that builds
    /// to a module `seal` accepts, with the guest crate sealbox-guest beside it.
    New(new::Args),
    /// Generate a new secp256k1 (Ethereum) key: keystore v3 JSON, or raw hex with --raw.
    Keygen(keygen::Args),
    /// Print the public key and address of a key file (customers give vendors their pubkey).
    Pubkey(pubkey::Args),
    /// Seal a Wasm module (.wasm or .wat): manifest, signature(s), optional encryption.
    Seal(Box<seal::Args>),
    /// Show a sealed module's manifest, signers, hashes and sizes (after verifying it).
    Inspect(inspect::Args),
    /// Verify a sealed module; exit 0 only when every check passes.
    #[command(after_long_help = exit::help())]
    Verify(verify::Args),
    /// Publish a sealed module's release in the registry its manifest names (registering the
    /// product if it is new); running it again changes nothing.
    Publish(publish::Args),
    /// Revoke a sealed module's published release of its product (runtimes then refuse to run it).
    Revoke(revoke::Args),
    /// Revoke or reinstate a customer's license of the module's product (`revoke` stops its
    /// runtimes at their next license check, bought units included).
    Customer(customer::Args),
    /// Withdraw the key's revenue from a registry: a vendor's share, or for the treasury key the
    /// platform fee (collected from every vendor that owes some first).
    Withdraw(withdraw::Args),
}

impl Command {
    fn run(self) -> anyhow::Result<()> {
        match self {
            Command::New(args) => new::run(args),
            Command::Keygen(args) => keygen::run(args),
            Command::Pubkey(args) => pubkey::run(args),
            Command::Seal(args) => seal::run(*args),
            Command::Inspect(args) => inspect::run(args),
            Command::Verify(args) => verify::run(args),
            Command::Publish(args) => publish::run(args),
            Command::Revoke(args) => revoke::run(args),
            Command::Customer(args) => customer::run(args),
            Command::Withdraw(args) => withdraw::run(args),
        }
    }
}

fn main() -> ExitCode {
    match Cli::parse().command.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => exit::report(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
