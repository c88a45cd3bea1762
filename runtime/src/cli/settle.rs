//! `runtime settle`: finish what an earlier process left, and report.
//!
//! With pay before use nothing is ever owed after a call: every unit was
//! bought before it ran. What can be left is a purchase in flight — a
//! receipt signed and sent but not known to be mined when the process
//! stopped (killed, RPC outage). `settle` re-checks each license of this
//! state directory, records what the chain says was bought, re-sends such a
//! receipt while it can still be mined, and prints bought, used and unused
//! units per product. It buys nothing new.

use alloy::primitives::{Address, B256};
use sealbox_runtime::purchase::Buyer;

use super::context::{ChainArgs, PrepayArgs, Session, StateArgs, product_id};

/// Arguments of `runtime settle`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only these products (sealed modules or 0x product ids; default: every counter of
    /// this key in this state directory).
    #[arg(long = "module", value_name = "SEALED|ID")]
    pub modules: Vec<String>,
    /// Customer whose counters to finish (default: every customer in the journal).
    #[arg(long)]
    pub customer: Option<Address>,
    #[command(flatten)]
    pub chain: ChainArgs,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub prepay: PrepayArgs,
}

/// Runs `runtime settle`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let policy = args.prepay.policy()?;
    let products = args
        .modules
        .iter()
        .map(|m| product_id(m))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let session = Session::open(&args.chain, &args.state, args.customer).await?;
    let Some(client) = &session.client else {
        anyhow::bail!(
            "the chain cannot be reached ({}): nothing can be finished offline",
            args.chain.rpc
        );
    };
    let me = session.signer.address().into_array();
    let keys: Vec<_> = session
        .journal
        .keys()?
        .into_iter()
        .filter(|k| k.signer == me && k.deployment == session.deployment.id)
        .filter(|k| k.buyer == session.holder.buyer.0)
        .filter(|k| products.is_empty() || products.iter().any(|p| p.0 == k.product))
        .filter(|k| args.customer.is_none_or(|c| c.into_array() == k.customer))
        .collect();
    if keys.is_empty() {
        println!(
            "nothing to finish: no counter of signer {} in this state directory",
            session.signer.address()
        );
        return Ok(());
    }
    let buyer = Buyer {
        client,
        signer: &session.signer,
        journal: &session.journal,
        policy: &policy,
    };
    for key in keys {
        let kernel_key = sealbox_runtime::metering::kernel_key(&key);
        if let Ok(k) = sealbox_runtime::metering::read_pinned(&args.state.meter_pin_dir, kernel_key)
        {
            session
                .journal
                .record_kernel_units(&key, k.epoch, k.count)?;
        }
        let product = B256::from(key.product);
        match buyer.reconcile(&key).await {
            Ok(Some(bought)) => println!(
                "product {product}: a purchase in flight was mined: {} unit(s) for {} wei, gas {}",
                bought.units(),
                bought.settlement.wei_charged,
                bought.settlement.tx.gas_used
            ),
            Ok(None) => {}
            Err(e) => println!("product {product}: {e}"),
        }
        let usage = session.journal.usage(&key)?;
        println!(
            "product {product}: bought {} / used {} (runtime {}, kernel {}) / unused {}",
            usage.bought_units,
            usage.used_units(),
            usage.runtime_units,
            usage.kernel_units,
            usage.unused_units()
        );
    }
    session.journal.sync()?;
    Ok(())
}
