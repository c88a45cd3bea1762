//! `packager customer revoke|reinstate`: the vendor's standing over one customer of the module's
//! product. A revoked customer's runtimes refuse every call (units already bought included) from
//! their next license check; reinstating lets them run again. Doing either twice changes nothing
//! and says so.

use std::path::PathBuf;

use anyhow::Context;
use license_contract::{Reason, RegistryClient};
use sealed_format::{Address, Manifest};
use serde_json::json;

use crate::chain::{self, SentTx, VendorTxArgs};
use crate::{keys, vendor_module};

/// What to do with the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Action {
    /// Revoke the customer's license of the product.
    Revoke,
    /// Lift an earlier revocation.
    Reinstate,
}

/// Arguments of `packager customer`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `revoke` or `reinstate`.
    #[arg(value_enum)]
    action: Action,
    /// A sealed module of the product.
    #[arg(value_name = "SEALED")]
    file: PathBuf,
    /// The customer's address.
    #[arg(long, value_name = "ADDR", value_parser = keys::parse_address)]
    customer: Address,
    #[command(flatten)]
    tx: VendorTxArgs,
}

/// Verifies `SEALED`, checks the key is its vendor's, and changes the customer's standing.
pub fn run(args: Args) -> anyhow::Result<()> {
    let module = vendor_module::open(&args.file, &args.tx.key)?;
    let manifest = &module.manifest;
    chain::manifest_registry(manifest.registry, args.tx.registry)?;
    let tx = chain::block_on(async {
        let client =
            chain::connect_for_module(&args.tx.rpc, manifest, module.vendor.clone()).await?;
        apply(&client, manifest, args.customer, args.action).await
    })??;
    let (done, already) = match args.action {
        Action::Revoke => ("revoked", "already-revoked"),
        Action::Reinstate => ("reinstated", "not-revoked"),
    };
    if args.tx.json {
        let value = json!({
            "product_id": manifest.product_id.to_string(),
            "customer": args.customer.to_string(),
            "status": if tx.is_some() { done } else { already },
            "transactions": tx.iter().map(|t| t.to_json()).collect::<Vec<_>>(),
            "gas_used": tx.map_or(0, |t| t.info.gas_used),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("product    {} {:?}", manifest.product_id, manifest.name);
        match tx {
            Some(tx) => {
                println!("customer   {}: {done}", args.customer);
                tx.print();
            }
            None => println!(
                "customer   {}: {}, nothing to do",
                args.customer,
                already.replace('-', " ")
            ),
        }
    }
    Ok(())
}

/// Revokes or reinstates `customer`; `None` when it already stands that way.
async fn apply(
    client: &RegistryClient,
    m: &Manifest,
    customer: Address,
    action: Action,
) -> anyhow::Result<Option<SentTx>> {
    let status = client.license_status(m.product_id, customer, None).await?;
    if status.vendor == Address::ZERO {
        anyhow::bail!(
            "product {} ({:?}) is not registered in registry {}: publish it first",
            m.product_id,
            m.name,
            m.registry
        );
    }
    let revoked = status.reason == Reason::CustomerRevoked;
    let tx = match (action, revoked) {
        (Action::Revoke, true) | (Action::Reinstate, false) => return Ok(None),
        (Action::Revoke, false) => SentTx {
            action: "revoke-customer",
            info: client
                .revoke_customer(m.product_id, customer)
                .await
                .context("nothing was changed on chain")?,
        },
        (Action::Reinstate, true) => SentTx {
            action: "reinstate-customer",
            info: client
                .reinstate_customer(m.product_id, customer)
                .await
                .context("nothing was changed on chain")?,
        },
    };
    Ok(Some(tx))
}
