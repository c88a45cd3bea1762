//! `packager revoke`: pull a published release (a broken build) of the module's product for
//! good. Runtimes refuse a revoked release at their next license check. Revoking twice changes
//! nothing and says so.

use std::path::PathBuf;

use anyhow::Context;
use license_contract::RegistryClient;
use sealed_format::Manifest;
use serde_json::json;

use crate::chain::{self, SentTx, VendorTxArgs};
use crate::vendor_module;

/// Arguments of `packager revoke`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The sealed module whose release to revoke.
    #[arg(value_name = "SEALED")]
    file: PathBuf,
    #[command(flatten)]
    tx: VendorTxArgs,
}

/// Verifies `SEALED`, checks the key is its vendor's, and revokes its release.
pub fn run(args: Args) -> anyhow::Result<()> {
    let module = vendor_module::open(&args.file, &args.tx.key)?;
    let manifest = &module.manifest;
    chain::manifest_registry(manifest.registry, args.tx.registry)?;
    let tx = chain::block_on(async {
        let client =
            chain::connect_for_module(&args.tx.rpc, manifest, module.vendor.clone()).await?;
        revoke(&client, manifest).await
    })??;
    if args.tx.json {
        let value = json!({
            "product_id": manifest.product_id.to_string(),
            "code_hash": manifest.code_hash.to_string(),
            "registry": manifest.registry.to_string(),
            "chain_id": manifest.chain_id,
            "release": { "status": if tx.is_some() { "revoked" } else { "already-revoked" } },
            "transactions": tx.iter().map(|t| t.to_json()).collect::<Vec<_>>(),
            "gas_used": tx.map_or(0, |t| t.info.gas_used),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!(
            "registry   {} on chain {}",
            manifest.registry, manifest.chain_id
        );
        println!("product    {} {:?}", manifest.product_id, manifest.name);
        match tx {
            Some(tx) => {
                println!(
                    "release    {} ({}): revoked",
                    manifest.code_hash, manifest.version
                );
                tx.print();
            }
            None => println!(
                "release    {} ({}): already revoked, nothing to do",
                manifest.code_hash, manifest.version
            ),
        }
    }
    Ok(())
}

/// Revokes the release of the module's product; `None` when it was revoked already.
async fn revoke(client: &RegistryClient, m: &Manifest) -> anyhow::Result<Option<SentTx>> {
    let Some(release) = client.release(m.product_id, m.code_hash).await? else {
        anyhow::bail!(
            "release {} of {:?} is not published for product {} in registry {}: nothing to revoke",
            m.code_hash,
            m.name,
            m.product_id,
            m.registry
        );
    };
    if release.revoked {
        return Ok(None);
    }
    let tx = client
        .revoke_release(m.product_id, m.code_hash)
        .await
        .context("nothing was changed on chain")?;
    Ok(Some(SentTx {
        action: "revoke-release",
        info: tx,
    }))
}
