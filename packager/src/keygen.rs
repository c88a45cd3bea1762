//! `packager keygen`: create a new signing key file.

use std::path::PathBuf;

use anyhow::Context;
use sealbox_keyfile::PrivateKeySigner;

use crate::keys;

/// Arguments of `packager keygen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// File to create (refused if it exists).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Write a raw 0x-hex key (mode 0600) instead of a password-protected keystore v3 JSON.
    /// The keystore password comes from SEALBOX_PASSWORD, else it is asked twice.
    #[arg(long)]
    raw: bool,
}

/// Generates a random key and writes it to `--out`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let signer = PrivateKeySigner::random();
    if args.raw {
        sealbox_keyfile::write_raw(&args.out, &signer)
    } else {
        let password = sealbox_keyfile::new_password(&args.out)?;
        sealbox_keyfile::write_keystore(&args.out, &signer, &password)
    }
    .context("cannot write the new key")?;
    let key = signer.credential();
    println!("wrote {}", args.out.display());
    println!("address {}", keys::address(key));
    println!("pubkey  {}", keys::pubkey_hex(key));
    Ok(())
}
