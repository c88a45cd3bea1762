//! A sealed module opened by its vendor for an on-chain action (publish, revoke): the module
//! verifies, and the `--key` given is the manifest's vendor key.

use std::path::Path;

use anyhow::Context;
use sealbox_keyfile::PrivateKeySigner;
use sealed_format::Manifest;

use crate::keys;

/// A verified sealed module's manifest and its vendor's signer.
pub struct VendorModule {
    /// The verified module's manifest.
    pub manifest: Manifest,
    /// The vendor key (its address is `opened.manifest.vendor`).
    pub vendor: PrivateKeySigner,
}

/// Reads and verifies `file` (for a plaintext module also its code hash), then loads `key` and
/// refuses unless it is the manifest's vendor. Nothing touches the network.
pub fn open(file: &Path, key: &Path) -> anyhow::Result<VendorModule> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let opened = sealed_format::open(&bytes)
        .with_context(|| format!("{} does not verify", file.display()))?;
    if !opened.is_encrypted() {
        // The code hash becomes the release id: make sure it is the hash of this very code.
        opened
            .verify_code(None)
            .with_context(|| format!("{} does not verify", file.display()))?;
    }
    let vendor = keys::load(key, "vendor")?;
    let address = keys::address(vendor.credential());
    if address != opened.manifest.vendor {
        anyhow::bail!(
            "the key {} is for {address}, but {} belongs to vendor {}: only the vendor's key may \
             manage its releases on chain",
            key.display(),
            file.display(),
            opened.manifest.vendor
        );
    }
    Ok(VendorModule {
        manifest: opened.manifest,
        vendor,
    })
}
