//! `packager publish`: put a sealed module's release on chain, in the registry its manifest
//! names — register the product if it is new (or update its price), then publish the release
//! (the module's code hash, under the module's product: releases are keyed by (product, code
//! hash), so nobody else publishing the same hash under another product gets in the way).
//! Running it again changes nothing and says so.

use std::path::PathBuf;

use alloy::primitives::U256;
use anyhow::Context;
use license_contract::bindings::LicenseRegistry::LicenseRegistryErrors;
use license_contract::{RegistryClient, RegistryError};
use sealed_format::{Address, B256, Manifest};
use serde_json::{Value, json};

use crate::chain::{self, SentTx};
use crate::{keys, vendor_module};

/// Arguments of `packager publish`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The sealed module.
    #[arg(value_name = "SEALED")]
    file: PathBuf,
    /// JSON-RPC endpoint (http or https) of the chain the module is sealed for.
    #[arg(long, value_name = "URL")]
    rpc: String,
    /// The vendor's key (pays the gas): keystore v3 JSON, 0600 raw hex file, or env:VARNAME.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Price per unit in wei. Needed to register a new product; for a registered product a
    /// different price updates it, and leaving it out keeps the on-chain price.
    #[arg(long, value_name = "WEI", value_parser = chain::parse_price)]
    price: Option<U256>,
    /// The registry address; if given it must equal the manifest's (a guard against publishing
    /// to another deployment than intended).
    #[arg(long, value_name = "ADDR", value_parser = keys::parse_address)]
    registry: Option<Address>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// What happened to the product.
#[derive(Debug, Clone, Copy)]
enum ProductOutcome {
    /// It was new and is now registered at `price`.
    Registered { price: U256 },
    /// It was registered already; its price stays.
    Unchanged { price: U256, active: bool },
    /// It was registered already at another price; now `to`.
    Repriced { from: U256, to: U256, active: bool },
}

/// What happened to the release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReleaseOutcome {
    /// Published by this run.
    Published,
    /// It was published already (by an earlier run): nothing to do.
    AlreadyPublished,
}

/// The result of a publish run.
struct Report {
    chain_id: u64,
    product: ProductOutcome,
    release: ReleaseOutcome,
    txs: Vec<SentTx>,
}

/// Verifies `SEALED`, checks the key is its vendor's, then registers the product (if new) and
/// publishes the release in the manifest's registry.
pub fn run(args: Args) -> anyhow::Result<()> {
    let module = vendor_module::open(&args.file, &args.key)?;
    let manifest = &module.manifest;
    chain::manifest_registry(manifest.registry, args.registry)?;
    let report = chain::block_on(async {
        let client = chain::connect_for_module(&args.rpc, manifest, module.vendor.clone()).await?;
        publish(&client, manifest, args.price).await
    })??;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&as_json(manifest, &report))?
        );
    } else {
        print_text(manifest, &report);
    }
    if let ProductOutcome::Unchanged { active: false, .. }
    | ProductOutcome::Repriced { active: false, .. } = report.product
    {
        eprintln!(
            "warning: product {} is deactivated on chain: no customer license is active until \
             the vendor reactivates it",
            manifest.product_id
        );
    }
    Ok(())
}

/// Reads everything first and refuses before sending any transaction; then registers or
/// reprices the product and publishes the release.
async fn publish(
    client: &RegistryClient,
    m: &Manifest,
    price: Option<U256>,
) -> anyhow::Result<Report> {
    let on_chain_id = client.contract_product_id(m.vendor, &m.name).await?;
    if on_chain_id != m.product_id {
        anyhow::bail!(
            "the manifest's product id {} is not the registry's id {on_chain_id} of (vendor {}, \
             name {:?}): the module is inconsistent, re-seal it",
            m.product_id,
            m.vendor,
            m.name
        );
    }
    let existing = client.product(m.product_id).await?;
    let release = client.release(m.product_id, m.code_hash).await?;
    if let Some(r) = &release
        && r.revoked
    {
        anyhow::bail!(
            "release {} of {:?} was published and then revoked; a revoked release stays \
             revoked: seal a new build (new code, new code hash) and publish that",
            m.code_hash,
            m.name
        );
    }
    if let Some(p) = &existing
        && p.vendor != m.vendor
    {
        anyhow::bail!(
            "product {} belongs to {} on chain, not to the module's vendor {}",
            m.product_id,
            p.vendor,
            m.vendor
        );
    }

    let mut txs = Vec::new();
    let product = match existing {
        None => {
            let Some(price) = price else {
                anyhow::bail!(
                    "product {:?} ({}) is not registered yet: pass --price WEI (the price per \
                     unit) to register it",
                    m.name,
                    m.product_id
                );
            };
            let (id, tx) = client
                .register_product(&m.name, price)
                .await
                .with_context(|| sent_so_far(&txs))?;
            txs.push(SentTx {
                action: "register-product",
                info: tx,
            });
            if id != m.product_id {
                anyhow::bail!(
                    "the registry registered product {id}, not the manifest's {} (tx {})",
                    m.product_id,
                    tx.hash
                );
            }
            ProductOutcome::Registered { price }
        }
        Some(p) => match price {
            Some(to) if to != p.price => {
                let tx = client
                    .set_price(m.product_id, to)
                    .await
                    .with_context(|| sent_so_far(&txs))?;
                txs.push(SentTx {
                    action: "set-price",
                    info: tx,
                });
                ProductOutcome::Repriced {
                    from: p.price,
                    to,
                    active: p.active,
                }
            }
            _ => ProductOutcome::Unchanged {
                price: p.price,
                active: p.active,
            },
        },
    };

    let release = if release.is_some() {
        ReleaseOutcome::AlreadyPublished
    } else {
        match client.publish_release(m.product_id, m.code_hash).await {
            Ok(tx) => {
                txs.push(SentTx {
                    action: "publish-release",
                    info: tx,
                });
                ReleaseOutcome::Published
            }
            // Published by a concurrent run between our read and our transaction.
            Err(e) if is_release_of(&e, m.product_id, m.code_hash) => {
                ReleaseOutcome::AlreadyPublished
            }
            Err(e) => return Err(e).with_context(|| sent_so_far(&txs)),
        }
    };
    Ok(Report {
        chain_id: client.chain_id(),
        product,
        release,
        txs,
    })
}

/// Whether `err` is the contract's `ReleaseExists` for `code_hash` of `product_id`.
fn is_release_of(err: &RegistryError, product_id: B256, code_hash: B256) -> bool {
    matches!(
        err.revert().map(|r| &r.error),
        Some(LicenseRegistryErrors::ReleaseExists(e))
            if e.productId == product_id && e.codeHash == code_hash
    )
}

/// Context for a failure after some transactions went through, so the vendor knows what did.
fn sent_so_far(txs: &[SentTx]) -> String {
    if txs.is_empty() {
        return "nothing was changed on chain".into();
    }
    let done: Vec<String> = txs
        .iter()
        .map(|t| format!("{} (tx {})", t.action, t.info.hash))
        .collect();
    format!(
        "{} went through; run publish again to finish",
        done.join(", ")
    )
}

fn as_json(m: &Manifest, report: &Report) -> Value {
    let product = match report.product {
        ProductOutcome::Registered { price } => {
            json!({ "status": "registered", "price": price.to_string(), "active": true })
        }
        ProductOutcome::Unchanged { price, active } => {
            json!({ "status": "unchanged", "price": price.to_string(), "active": active })
        }
        ProductOutcome::Repriced { from, to, active } => json!({
            "status": "repriced",
            "price": to.to_string(),
            "previous_price": from.to_string(),
            "active": active,
        }),
    };
    let release = match report.release {
        ReleaseOutcome::Published => "published",
        ReleaseOutcome::AlreadyPublished => "already-published",
    };
    json!({
        "product_id": m.product_id.to_string(),
        "code_hash": m.code_hash.to_string(),
        "name": m.name,
        "version": m.version,
        "vendor": m.vendor.to_string(),
        "registry": m.registry.to_string(),
        "chain_id": report.chain_id,
        "product": product,
        "release": { "status": release },
        "transactions": report.txs.iter().map(|t| t.to_json()).collect::<Vec<_>>(),
        "gas_used": chain::total_gas(&report.txs),
    })
}

fn print_text(m: &Manifest, report: &Report) {
    let product = match report.product {
        ProductOutcome::Registered { price } => format!("registered, {price} wei per unit"),
        ProductOutcome::Unchanged { price, .. } => {
            format!("already registered, {price} wei per unit (unchanged)")
        }
        ProductOutcome::Repriced { from, to, .. } => {
            format!("already registered, price updated from {from} to {to} wei per unit")
        }
    };
    let release = match report.release {
        ReleaseOutcome::Published => "published",
        ReleaseOutcome::AlreadyPublished => "already published, nothing to do",
    };
    println!("registry   {} on chain {}", m.registry, report.chain_id);
    println!("vendor     {}", m.vendor);
    println!("product    {} {:?}: {product}", m.product_id, m.name);
    println!("release    {} ({}): {release}", m.code_hash, m.version);
    for tx in &report.txs {
        tx.print();
    }
    println!(
        "gas        {} in {} transaction(s)",
        chain::total_gas(&report.txs),
        report.txs.len()
    );
}
