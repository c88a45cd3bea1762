//! `packager inspect`: show what a sealed module contains.

use std::path::PathBuf;

use anyhow::Context;
use sealed_format::{Opened, open};
use serde_json::json;

/// Arguments of `packager inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The sealed module.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Verifies `FILE` (signature, signers, vendor, manifest) and prints its contents.
pub fn run(args: Args) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let opened =
        open(&bytes).with_context(|| format!("{} does not verify", args.file.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&as_json(&opened)?)?);
    } else {
        print_text(&opened);
    }
    Ok(())
}

fn role(opened: &Opened, signer: &sealed_format::Address) -> &'static str {
    if *signer == opened.manifest.vendor {
        "vendor"
    } else {
        "co-signer"
    }
}

fn as_json(opened: &Opened) -> anyhow::Result<serde_json::Value> {
    let manifest: serde_json::Value = serde_json::from_slice(&opened.manifest_bytes)?;
    let signers: Vec<_> = opened
        .signers
        .iter()
        .map(|s| json!({ "address": s.to_string(), "role": role(opened, s) }))
        .collect();
    Ok(json!({
        "format": "sealbox-sealed-module",
        "signed_hash": opened.signed_hash.to_string(),
        "signers": signers,
        "encrypted": opened.is_encrypted(),
        "kind": if opened.is_component() { "component" } else { "module" },
        "exports": opened.manifest.component.as_ref().map(|c| {
            sealed_format::component::world_functions(c)
                .map(|fs| fs.into_iter().map(|(n, s)| json!({"name": n, "signature": s})).collect::<Vec<_>>())
                .unwrap_or_default()
        }),
        "sizes": {
            "sealed": opened.sealed_len,
            "manifest": opened.manifest_bytes.len(),
            "code": opened.body_len(),
        },
        "manifest": manifest,
    }))
}

fn print_text(opened: &Opened) {
    let m = &opened.manifest;
    println!("format       sealbox v{}", m.format);
    println!("product      {} {}", m.name, m.version);
    println!("product_id   {}", m.product_id);
    println!("vendor       {}", m.vendor);
    println!(
        "vendor key   0x{}",
        hex::encode(m.vendor_pubkey.to_sec1_bytes())
    );
    for (i, signer) in opened.signers.iter().enumerate() {
        println!("signer #{i}    {signer} ({})", role(opened, signer));
    }
    println!(
        "signed hash  {} (SHA-256 after the signature section)",
        opened.signed_hash
    );
    println!(
        "code_hash    {} (SHA-256 of the plaintext module)",
        m.code_hash
    );
    println!("chain        {} registry {}", m.chain_id, m.registry);
    println!("unit         {} ({})", m.unit, m.metering.as_str());
    let limit = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    println!(
        "limits       memory pages {}, fuel {}, deadline ms {}",
        limit(m.limits.max_memory_pages.map(u64::from)),
        limit(m.limits.fuel),
        limit(m.limits.deadline_ms)
    );
    match &m.component {
        None => println!("entry        {}", m.entry.join(", ")),
        Some(c) => {
            println!("kind         component, world {}", c.world_name());
            match sealed_format::component::world_functions(c) {
                Ok(functions) => {
                    for (name, sig) in functions {
                        let entry = if m.entry.contains(&name) {
                            ""
                        } else {
                            " (not an entry)"
                        };
                        println!("  export     {name}: {sig}{entry}");
                    }
                }
                Err(e) => println!("  exports    unreadable: {e}"),
            }
        }
    }
    match &m.encryption {
        None => println!("encryption   none"),
        Some(e) => {
            println!(
                "encryption   {} for {} recipient(s)",
                e.algorithm,
                e.recipients.len()
            );
            for r in &e.recipients {
                println!(
                    "  recipient  {} (0x{})",
                    r.address(),
                    hex::encode(r.pubkey.to_sec1_bytes())
                );
            }
        }
    }
    let code = if opened.is_encrypted() {
        "payload (encrypted)"
    } else {
        "code (plaintext)"
    };
    println!(
        "sizes        sealed {} B, manifest {} B, {code} {} B",
        opened.sealed_len,
        opened.manifest_bytes.len(),
        opened.body_len()
    );
}
