//! `packager withdraw`: pay out the revenue a key has accrued in a registry — a vendor's share
//! of settled usage, or the platform fee for the treasury key.

use std::path::PathBuf;

use alloy::primitives::U256;
use license_contract::bindings::LicenseRegistry::LicenseRegistryErrors;
use license_contract::{RegistryClient, RegistryError};
use sealed_format::Address;
use serde_json::json;

use crate::chain::{self, SentTx};
use crate::keys;

/// Arguments of `packager withdraw`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// JSON-RPC endpoint (http or https).
    #[arg(long, value_name = "URL")]
    rpc: String,
    /// The LicenseRegistry address.
    #[arg(long, value_name = "ADDR", value_parser = keys::parse_address)]
    registry: Address,
    /// The key whose revenue to withdraw (vendor or treasury; pays the gas and receives the
    /// revenue): keystore v3 JSON, 0600 raw hex file, or env:VARNAME.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Refuse unless the endpoint serves this chain id.
    #[arg(long, value_name = "ID")]
    chain_id: Option<u64>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Withdraws the key's pending revenue; having none is reported, not an error.
pub fn run(args: Args) -> anyhow::Result<()> {
    let signer = keys::load(&args.key, "withdrawing")?;
    let account = keys::address(signer.credential());
    let (chain_id, outcome) = chain::block_on(async {
        let client =
            RegistryClient::connect(&args.rpc, args.registry, args.chain_id, Some(signer)).await?;
        let outcome = withdraw(&client, account).await?;
        Ok::<_, RegistryError>((client.chain_id(), outcome))
    })??;
    if args.json {
        let value = json!({
            "account": account.to_string(),
            "registry": args.registry.to_string(),
            "chain_id": chain_id,
            "withdrawn": outcome.is_some(),
            "amount_wei": outcome.map_or(U256::ZERO, |(amount, _)| amount).to_string(),
            "transactions": outcome.iter().map(|(_, tx)| tx.to_json()).collect::<Vec<_>>(),
            "gas_used": outcome.map_or(0, |(_, tx)| tx.info.gas_used),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    match outcome {
        Some((amount, tx)) => {
            println!("withdrew   {} to {account}", chain::wei_text(amount));
            println!("registry   {} on chain {chain_id}", args.registry);
            tx.print();
        }
        None => println!(
            "nothing to withdraw: {account} has no pending revenue in registry {} on chain \
             {chain_id} (revenue accrues when customers' usage receipts are settled)",
            args.registry
        ),
    }
    Ok(())
}

/// Withdraws everything pending; `None` when nothing is.
async fn withdraw(
    client: &RegistryClient,
    account: Address,
) -> Result<Option<(U256, SentTx)>, RegistryError> {
    if client.pending_revenue(account).await?.is_zero() {
        return Ok(None);
    }
    match client.withdraw_revenue().await {
        Ok((amount, info)) => Ok(Some((
            amount,
            SentTx {
                action: "withdraw",
                info,
            },
        ))),
        // Withdrawn by a concurrent run between our read and our transaction.
        Err(e)
            if matches!(
                e.revert().map(|r| &r.error),
                Some(LicenseRegistryErrors::NothingToWithdraw(_))
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}
