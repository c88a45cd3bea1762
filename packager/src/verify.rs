//! `packager verify`: run every check a runtime runs before the license check, and the
//! decryption and code-hash checks when possible.

use std::path::PathBuf;

use anyhow::Context;
use sealed_format::Address;

use crate::exit::VendorPinError;
use crate::keys;
use crate::mapped::MappedFile;

/// Arguments of `packager verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The sealed module.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Also require that the module's vendor is this address.
    #[arg(long, value_name = "ADDR", value_parser = keys::parse_address)]
    vendor: Option<Address>,
    /// A recipient's key, to decrypt an encrypted module and check its code hash.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
}

/// Verifies `FILE`; any failure is reported with the failed check and its exit code.
pub fn run(args: Args) -> anyhow::Result<()> {
    let bytes = MappedFile::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let opened = sealed_format::open(&bytes)?;
    if let Some(expected) = args.vendor
        && expected != opened.manifest.vendor
    {
        return Err(VendorPinError {
            expected,
            actual: opened.manifest.vendor,
        }
        .into());
    }
    let recipient = match &args.key {
        Some(path) => Some(keys::load(path, "recipient")?),
        None => None,
    };
    let code_hash = if opened.is_encrypted() && recipient.is_none() {
        "not checked: the module is encrypted (pass --key with a recipient's key)".to_string()
    } else {
        opened.verify_code(recipient.as_ref().map(|s| s.credential()))?;
        if opened.is_encrypted() {
            "ok (decrypted with the recipient key)".to_string()
        } else {
            "ok".to_string()
        }
    };

    let m = &opened.manifest;
    println!("OK {}", args.file.display());
    println!("signature  ok, {} signer(s)", opened.signers.len());
    println!("vendor     {} ({} {})", m.vendor, m.name, m.version);
    for cosigner in opened.cosigners() {
        println!("cosigner   {cosigner}");
    }
    println!(
        "manifest   ok (format {}, product {})",
        m.format, m.product_id
    );
    println!("code_hash  {} {code_hash}", m.code_hash);
    Ok(())
}
