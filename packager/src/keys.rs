//! Key loading and public key formatting shared by the subcommands.

use std::path::Path;

use anyhow::Context;
use k256::ecdsa::SigningKey;
use sealbox_keyfile::PrivateKeySigner;
use sealed_format::Address;

/// Loads a `--key` argument (keystore, 0600 raw hex file, or `env:VAR`).
pub fn load(path: &Path, role: &str) -> anyhow::Result<PrivateKeySigner> {
    sealbox_keyfile::load_signer(path).with_context(|| format!("cannot load the {role} key"))
}

/// The compressed SEC1 public key of `key` as `0x`-hex (what `--recipient` takes).
pub fn pubkey_hex(key: &SigningKey) -> String {
    format!(
        "0x{}",
        hex::encode(key.verifying_key().to_encoded_point(true).as_bytes())
    )
}

/// The Ethereum address of `key`.
pub fn address(key: &SigningKey) -> Address {
    Address::from_public_key(key.verifying_key())
}

/// Parses an address; mixed-case input must carry a valid EIP-55 checksum.
pub fn parse_address(text: &str) -> Result<Address, String> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    let mixed = digits.chars().any(|c| c.is_ascii_uppercase())
        && digits.chars().any(|c| c.is_ascii_lowercase());
    let parsed = if mixed {
        Address::parse_checksummed(text, None).map_err(|e| e.to_string())
    } else {
        text.parse::<Address>().map_err(|e| e.to_string())
    };
    parsed.map_err(|e| format!("{text:?} is not an Ethereum address (0x + 40 hex digits): {e}"))
}

/// Parses a secp256k1 public key given as SEC1 hex (33-byte compressed or 65-byte uncompressed).
pub fn parse_pubkey(text: &str) -> Result<k256::PublicKey, String> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    hex::decode(digits)
        .ok()
        .and_then(|bytes| k256::PublicKey::from_sec1_bytes(&bytes).ok())
        .ok_or_else(|| {
            format!(
                "{text:?} is not a secp256k1 public key (SEC1 hex, 33 or 65 bytes; \
                 the customer prints it with `packager pubkey --key FILE`)"
            )
        })
}
