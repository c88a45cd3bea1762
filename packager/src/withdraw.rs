//! `packager withdraw`: pay out the revenue a key has accrued in a registry — a vendor's share
//! of the units customers bought, or the platform fee for the treasury key. The fee accrues in
//! each vendor's revenue slot; for the treasury key this first collects it (`collectFees`) from
//! every vendor that owes some (vendors are found in the registry's `ProductRegistered` logs).

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

/// What a withdraw run did.
#[derive(Debug, Default)]
struct Outcome {
    /// Fee moved to the treasury (treasury key only): amount, vendors it came from, transaction.
    collected: Option<(U256, usize, SentTx)>,
    /// Revenue paid out: amount and transaction.
    withdrawn: Option<(U256, SentTx)>,
}

impl Outcome {
    fn txs(&self) -> Vec<SentTx> {
        let collect = self.collected.as_ref().map(|(_, _, tx)| *tx);
        let withdraw = self.withdrawn.as_ref().map(|(_, tx)| *tx);
        collect.into_iter().chain(withdraw).collect()
    }
}

/// Withdraws the key's pending revenue (collecting the fee first for the treasury key); having
/// none is reported, not an error.
pub fn run(args: Args) -> anyhow::Result<()> {
    let signer = keys::load(&args.key, "withdrawing")?;
    let account = keys::address(signer.credential());
    let (chain_id, outcome) = chain::block_on(async {
        let client =
            RegistryClient::connect(&args.rpc, args.registry, args.chain_id, Some(signer)).await?;
        let outcome = withdraw(&client, account).await?;
        Ok::<_, RegistryError>((client.chain_id(), outcome))
    })??;
    let txs = outcome.txs();
    if args.json {
        let value = json!({
            "account": account.to_string(),
            "registry": args.registry.to_string(),
            "chain_id": chain_id,
            "fee_collected_wei": outcome
                .collected
                .as_ref()
                .map_or(U256::ZERO, |(amount, _, _)| *amount)
                .to_string(),
            "withdrawn": outcome.withdrawn.is_some(),
            "amount_wei": outcome
                .withdrawn
                .as_ref()
                .map_or(U256::ZERO, |(amount, _)| *amount)
                .to_string(),
            "transactions": txs.iter().map(|t| t.to_json()).collect::<Vec<_>>(),
            "gas_used": chain::total_gas(&txs),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    if let Some((amount, vendors, _)) = &outcome.collected {
        println!(
            "collected  {} of platform fee from {vendors} vendor(s)",
            chain::wei_text(*amount)
        );
    }
    match &outcome.withdrawn {
        Some((amount, _)) => {
            println!("withdrew   {} to {account}", chain::wei_text(*amount));
            println!("registry   {} on chain {chain_id}", args.registry);
        }
        None => println!(
            "nothing to withdraw: {account} has no pending revenue in registry {} on chain \
             {chain_id} (revenue accrues when customers' runtimes buy units)",
            args.registry
        ),
    }
    for tx in txs {
        tx.print();
    }
    Ok(())
}

/// For the treasury: collects the fee every vendor owes. Then withdraws everything pending.
async fn withdraw(client: &RegistryClient, account: Address) -> Result<Outcome, RegistryError> {
    let mut outcome = Outcome::default();
    if client.info().await?.treasury == account {
        let mut owing = Vec::new();
        for vendor in client.vendors().await? {
            if !client.fee_owed(vendor).await?.is_zero() {
                owing.push(vendor);
            }
        }
        if !owing.is_empty() {
            let (amount, info) = client.collect_fees(&owing).await?;
            outcome.collected = Some((
                amount,
                owing.len(),
                SentTx {
                    action: "collect-fees",
                    info,
                },
            ));
        }
    }
    if client.pending_revenue(account).await?.is_zero() {
        return Ok(outcome);
    }
    match client.withdraw_revenue().await {
        Ok((amount, info)) => {
            outcome.withdrawn = Some((
                amount,
                SentTx {
                    action: "withdraw",
                    info,
                },
            ));
        }
        // Withdrawn by a concurrent run between our read and our transaction.
        Err(e)
            if matches!(
                e.revert().map(|r| &r.error),
                Some(LicenseRegistryErrors::NothingToWithdraw(_))
            ) => {}
        Err(e) => return Err(e),
    }
    Ok(outcome)
}
