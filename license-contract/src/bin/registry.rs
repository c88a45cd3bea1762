//! `registry`: deploy a Sealbox LicenseRegistry and inspect its state.

use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

use alloy::primitives::{Address, B256, U256};
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use license_contract::{
    DEFAULT_FEE_BPS, DEFAULT_THAW_SECONDS, DeployParams, LicenseStatus, RegistryClient,
};
use sealbox_report::Exit;
use serde_json::json;

/// Deploy and inspect the Sealbox LicenseRegistry (on-chain licenses, escrow and prepaid units).
#[derive(Parser)]
#[command(name = "registry", version, after_long_help = sealbox_report::help(EXIT_CODES))]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Deploy a new LicenseRegistry; prints its address (only that) on stdout.
    ///
    /// Example: `REG=$(registry deploy --rpc http://127.0.0.1:8545 --key platform.key)`
    Deploy(DeployArgs),
    /// Show the registry's parameters, a product, one of its releases, and a customer's license status.
    ///
    /// Example: `registry status --rpc URL --registry 0x.. --product 0x.. --code-hash 0x.. --customer 0x..`
    Status(StatusArgs),
}

#[derive(Args)]
struct DeployArgs {
    /// JSON-RPC endpoint (http or https).
    #[arg(long, value_name = "URL")]
    rpc: String,
    /// Deployer key: keystore v3 JSON (password from SEALBOX_PASSWORD or a prompt) or a 0600 file with a 0x-hex key.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Platform fee in basis points of every purchase (3000 = 30 % treasury, 70 % vendor); 0..=10000.
    #[arg(long, default_value_t = DEFAULT_FEE_BPS, value_parser = clap::value_parser!(u16).range(0..=10_000))]
    fee_bps: u16,
    /// Receives the platform fee [default: the deployer's address].
    #[arg(long, value_name = "ADDR", value_parser = parse_address)]
    treasury: Option<Address>,
    /// Delay before a customer withdrawal can complete.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_THAW_SECONDS)]
    thaw_seconds: u64,
    /// Refuse to deploy unless the endpoint serves this chain id.
    #[arg(long, value_name = "ID")]
    chain_id: Option<u64>,
}

#[derive(Args)]
struct StatusArgs {
    /// JSON-RPC endpoint (http or https).
    #[arg(long, value_name = "URL")]
    rpc: String,
    /// LicenseRegistry address.
    #[arg(long, value_name = "ADDR", value_parser = parse_address)]
    registry: Address,
    /// Refuse unless the endpoint serves this chain id.
    #[arg(long, value_name = "ID")]
    chain_id: Option<u64>,
    /// Product id (bytes32, 0x-hex).
    #[arg(long, value_name = "ID", value_parser = parse_b256)]
    product: Option<B256>,
    /// Customer whose license to check (needs --product).
    #[arg(long, value_name = "ADDR", value_parser = parse_address, requires = "product")]
    customer: Option<Address>,
    /// A release of the product: SHA-256 of the plaintext Wasm (needs --product). Shows whether
    /// the product published (or revoked) it; with --customer the license is checked against it.
    #[arg(long, value_name = "H", value_parser = parse_b256, requires = "product")]
    code_hash: Option<B256>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// The exit codes `registry` uses (rows of the shared table), for `--help`.
const EXIT_CODES: &[Exit] = &[Exit::Success, Exit::Failure, Exit::Usage];

fn parse_address(s: &str) -> Result<Address, String> {
    Address::from_str(s).map_err(|e| format!("not a 20-byte 0x-hex address: {e}"))
}

fn parse_b256(s: &str) -> Result<B256, String> {
    B256::from_str(s).map_err(|e| format!("not a 32-byte 0x-hex value: {e}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Deploy(a) => deploy(a).await,
        Command::Status(a) => status(a).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => sealbox_report::report("registry", e.as_ref(), Exit::Failure),
    }
}

async fn deploy(a: DeployArgs) -> Result<()> {
    let wallet = sealbox_keyfile::load_signer(&a.key)
        .with_context(|| format!("loading --key {}", a.key.display()))?;
    let params = DeployParams {
        fee_bps: a.fee_bps,
        treasury: a.treasury,
        thaw_seconds: a.thaw_seconds,
        expected_chain_id: a.chain_id,
    };
    let (client, tx) = RegistryClient::deploy(&a.rpc, wallet, params).await?;
    eprintln!(
        "deployed LicenseRegistry on chain {} in tx {} (gas {}); fee {} bps, thaw {} s",
        client.chain_id(),
        tx.hash,
        tx.gas_used,
        a.fee_bps,
        a.thaw_seconds
    );
    println!("{}", client.address());
    Ok(())
}

async fn status(a: StatusArgs) -> Result<()> {
    let client = RegistryClient::connect(&a.rpc, a.registry, a.chain_id, None).await?;
    let info = client.info().await?;
    let product = match a.product {
        Some(id) => Some((id, client.product(id).await?)),
        None => None,
    };
    let release = match (a.product, a.code_hash) {
        (Some(p), Some(h)) => Some((h, client.release(p, h).await?)),
        _ => None,
    };
    let license = match (a.product, a.customer) {
        (Some(p), Some(c)) => Some((c, client.license_status(p, c, a.code_hash).await?)),
        _ => None,
    };

    if a.json {
        let mut out = json!({ "registry": info });
        if let Some((id, p)) = &product {
            out["product_id"] = json!(id);
            out["product"] = json!(p);
        }
        if let Some((h, r)) = &release {
            out["code_hash"] = json!(h);
            out["release"] = json!(r);
        }
        if let Some((c, s)) = &license {
            out["customer"] = json!(c);
            out["license"] = json!(s);
            out["license"]["reason_text"] = json!(s.reason.to_string());
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }

    println!("registry {} on chain {}", info.address, info.chain_id);
    println!(
        "  fee {} bps ({}.{:02} % to treasury {}), thaw {} s",
        info.fee_bps,
        info.fee_bps / 100,
        info.fee_bps % 100,
        info.treasury,
        info.thaw_seconds
    );
    println!("  EIP-712 deployment salt {}", info.deployment_salt);
    if let Some((id, p)) = product {
        match p {
            None => println!("product {id}: not registered"),
            Some(p) => println!(
                "product {id}\n  vendor {}, price {} wei/unit, {}",
                p.vendor,
                p.price,
                if p.active { "active" } else { "INACTIVE" }
            ),
        }
    }
    if let Some((h, r)) = release {
        match r {
            None => println!("release {h}: not published for this product"),
            Some(r) if r.revoked => println!("release {h}: REVOKED by the vendor"),
            Some(_) => println!("release {h}: published"),
        }
    }
    if let Some((customer, s)) = license {
        print_license(customer, a.code_hash, &s);
    }
    Ok(())
}

fn print_license(customer: Address, code_hash: Option<B256>, s: &LicenseStatus) {
    match code_hash {
        Some(h) => println!("license of {customer} for release {h}"),
        None => println!("license of {customer} (release not checked)"),
    }
    if s.active {
        println!("  ACTIVE");
    } else if s.reason.is_funding() {
        println!(
            "  LICENSED, but cannot buy more units: {} — {}",
            s.reason,
            s.reason.remedy()
        );
    } else {
        println!("  INACTIVE: {} — {}", s.reason, s.reason.remedy());
    }
    println!("  balance {} wei, available {} wei", s.balance, s.available);
    if s.thawing > U256::ZERO {
        println!(
            "  withdrawal of {} wei pending until unix time {}",
            s.thawing, s.thaw_end
        );
    }
    let affordable = if s.price.is_zero() {
        "unlimited (free product)".to_string()
    } else {
        s.affordable_units().to_string()
    };
    println!(
        "  bought {} units so far, available balance buys {affordable} more",
        s.bought_units
    );
    println!(
        "  as of block {} (unix time {})",
        s.block_number, s.block_timestamp
    );
}
