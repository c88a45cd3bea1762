//! `packager pubkey`: print the public key and address of a key file.

use std::path::PathBuf;

use crate::keys;

/// Arguments of `packager pubkey`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Key file: keystore v3 JSON, 0600 raw hex file, or env:VARNAME.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
}

/// Prints `address 0x…` and `pubkey 0x…` (compressed SEC1, what `seal --recipient` takes).
pub fn run(args: Args) -> anyhow::Result<()> {
    let signer = keys::load(&args.key, "given")?;
    let key = signer.credential();
    println!("address {}", keys::address(key));
    println!("pubkey  {}", keys::pubkey_hex(key));
    Ok(())
}
