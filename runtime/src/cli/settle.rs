//! `runtime settle`: one settlement round by hand.

use alloy::primitives::Address;
use sealbox_runtime::journal::UsageKey;
use sealbox_runtime::settle::settle_counter;

use super::context::{ChainArgs, RuntimeArgs, product_id};

/// Arguments of `runtime settle`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Settle only these products (sealed modules or 0x product ids; default: every
    /// counter of this key in the journal).
    #[arg(long = "module", value_name = "SEALED|ID")]
    pub modules: Vec<String>,
    /// Customer whose usage to settle (default: every customer in the journal).
    #[arg(long)]
    pub customer: Option<Address>,
    #[command(flatten)]
    pub chain: ChainArgs,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// Runs `runtime settle`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let signer = args.chain.signer()?;
    let me = signer.address().into_array();
    let client = args.chain.connect(Some(signer.clone())).await?;
    let journal = args.runtime.journal(args.chain.registry)?;
    let products = args
        .modules
        .iter()
        .map(|m| product_id(m))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let keys: Vec<UsageKey> = journal
        .keys()?
        .into_iter()
        .filter(|k| k.signer == me)
        .filter(|k| products.is_empty() || products.iter().any(|p| p.0 == k.product))
        .filter(|k| args.customer.is_none_or(|c| c.into_array() == k.customer))
        .collect();
    if keys.is_empty() {
        println!(
            "nothing to settle: no usage of signer {} in the journal",
            signer.address()
        );
        return Ok(());
    }
    for key in keys {
        let kernel_key = sealbox_runtime::metering::kernel_key(&key);
        if let Ok(k) =
            sealbox_runtime::metering::read_pinned(&args.runtime.meter_pin_dir, kernel_key)
        {
            journal.record_kernel_units(&key, k.epoch, k.count)?;
        }
        let outcome = settle_counter(&client, &signer, &journal, &key).await?;
        let product = alloy::primitives::B256::from(key.product);
        match outcome.settlement {
            None => println!(
                "product {product}: nothing new to settle ({} unit(s) settled)",
                outcome.cumulative_units
            ),
            Some(s) if s.ignored => println!(
                "product {product}: receipt for {} unit(s) was already settled (gas {})",
                outcome.cumulative_units, s.tx.gas_used
            ),
            Some(s) => println!(
                "product {product}: settled {} unit(s) for {} wei, cumulative {}, gas {}{}",
                s.units_charged,
                s.wei_charged,
                s.signer_settled,
                s.tx.gas_used,
                if s.unpaid_units > 0 {
                    format!(
                        " — SHORTFALL: {} unit(s) unpaid, license now inactive",
                        s.unpaid_units
                    )
                } else {
                    String::new()
                }
            ),
        }
    }
    Ok(())
}
