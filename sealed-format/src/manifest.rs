//! The `sealbox.manifest` section: what the module is, who made it, how it is licensed and run.

use alloy_primitives::{Address, B256, keccak256};
use k256::PublicKey;
use serde::{Deserialize, Serialize};

use crate::FormatError;
use crate::hexfield;

/// Name of the custom section holding the manifest JSON (second section of a sealed module).
pub const SECTION_NAME: &str = "sealbox.manifest";
/// The manifest format version this crate reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// `encryption.algorithm` of v1: AES-256-GCM payload, key wrapped by ECIES on secp256k1.
pub const ENCRYPTION_ALGORITHM: &str = "aes-256-gcm+ecies-secp256k1-hkdf-sha256";
/// Largest manifest accepted, in bytes.
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024;
/// Most recipients one encrypted module may have.
pub const MAX_RECIPIENTS: usize = 1024;
/// Wasm's limit on 64 KiB memory pages for a 32-bit memory.
pub const MAX_MEMORY_PAGES: u32 = 65_536;

const MAX_NAME_LEN: usize = 64;
const MAX_VERSION_LEN: usize = 64;
const MAX_UNIT_LEN: usize = 32;
const MAX_ENTRY_LEN: usize = 256;

/// The signed description of a sealed module (field order is the JSON order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Manifest format version; always [`FORMAT_VERSION`].
    pub format: u32,
    /// `keccak256(abi.encode(vendor, name))`, the product's id in the license registry.
    #[serde(with = "hexfield::b256")]
    pub product_id: B256,
    /// Product name (1–64 characters, no control characters, no surrounding spaces).
    pub name: String,
    /// Release version label (1–64 characters, no whitespace or control characters).
    pub version: String,
    /// The vendor's Ethereum address; must be `address(vendor_pubkey)` and a signer.
    #[serde(with = "hexfield::address")]
    pub vendor: Address,
    /// The vendor's public key (JSON: compressed SEC1 hex).
    #[serde(with = "hexfield::pubkey")]
    pub vendor_pubkey: PublicKey,
    /// SHA-256 of the plaintext module: the release id on chain.
    #[serde(with = "hexfield::b256")]
    pub code_hash: B256,
    /// Chain id of the license registry.
    pub chain_id: u64,
    /// Address of the `LicenseRegistry` contract.
    #[serde(with = "hexfield::address")]
    pub registry: Address,
    /// What one billed unit is: `call`, or a kernel event unit such as `tls_handshake`.
    pub unit: String,
    /// Whether the module may run without the kernel meter.
    pub metering: Metering,
    /// Resource limits the runtime enforces per call.
    pub limits: Limits,
    /// Exported entry functions: for a core module, bytes-ABI v1 entries `(ptr: i32, len: i32)
    /// -> i64` (or numeric functions); for a component, the world's exported functions
    /// (`name`, or `interface#name`).
    pub entry: Vec<String>,
    /// Present for a component: the WIT world it implements. Absent (not `null`) for a core
    /// module, so manifests of core modules are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<ComponentInfo>,
    /// `None` (JSON `null`) for a plaintext module, else how its payload is encrypted.
    #[serde(deserialize_with = "hexfield::required_option")]
    pub encryption: Option<Encryption>,
}

/// The WIT world a sealed component implements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentInfo {
    /// WIT package, `namespace:name` (e.g. `sealbox:credit-score`).
    pub package: String,
    /// World name within the package (e.g. `scorer`).
    pub world: String,
    /// Package version (e.g. `0.1.0`); `null` when the package has none.
    #[serde(deserialize_with = "hexfield::required_option")]
    pub version: Option<String>,
    /// The WIT source of the package, as the vendor wrote it and [`crate::seal`] checked the
    /// component against: what `runtime serve` answers for the product's interface.
    pub wit: String,
}

impl ComponentInfo {
    /// `package/world@version`, e.g. `sealbox:credit-score/scorer@0.1.0`.
    pub fn world_name(&self) -> String {
        match &self.version {
            Some(v) => format!("{}/{}@{v}", self.package, self.world),
            None => format!("{}/{}", self.package, self.world),
        }
    }
}

/// Metering policy of a module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metering {
    /// Refuse to run unless the kernel (eBPF) meter is attached.
    KernelRequired,
    /// Prefer the kernel meter; fall back to userspace counting with a warning.
    KernelPreferred,
}

impl Metering {
    /// The JSON spelling (`kernel-required` / `kernel-preferred`).
    pub fn as_str(self) -> &'static str {
        match self {
            Metering::KernelRequired => "kernel-required",
            Metering::KernelPreferred => "kernel-preferred",
        }
    }
}

/// Per-call resource limits; each is optional (absent = the runtime's configured default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Maximum linear memory, in 64 KiB pages (1..=65536).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory_pages: Option<u32>,
    /// Fuel (wasmtime instruction budget) per call (> 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// Wall-clock deadline per call in milliseconds (> 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
}

/// How the payload is encrypted and to whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encryption {
    /// Always [`ENCRYPTION_ALGORITHM`].
    pub algorithm: String,
    /// AES-256-GCM nonce of the payload (JSON: 12 bytes hex).
    #[serde(with = "hexfield::bytes")]
    pub nonce: [u8; 12],
    /// One wrapped copy of the content key per recipient.
    pub recipients: Vec<Recipient>,
}

/// The content key wrapped for one recipient (ECIES on secp256k1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipient {
    /// The recipient's public key (JSON: compressed SEC1 hex).
    #[serde(with = "hexfield::pubkey")]
    pub pubkey: PublicKey,
    /// The sender's one-time ECDH public key (JSON: compressed SEC1 hex).
    #[serde(with = "hexfield::pubkey")]
    pub ephemeral_pubkey: PublicKey,
    /// AES-256-GCM of the 32-byte content key, with its 16-byte tag (JSON: 48 bytes hex).
    #[serde(with = "hexfield::bytes")]
    pub wrapped_key: [u8; 48],
}

impl Recipient {
    /// The recipient's Ethereum address.
    pub fn address(&self) -> Address {
        Address::from_public_key(&self.pubkey.into())
    }
}

/// `keccak256(abi.encode(vendor, name))`, computed as Solidity's `abi.encode(address, string)`.
pub fn product_id(vendor: Address, name: &str) -> B256 {
    let padded = name.len().div_ceil(32) * 32;
    let mut enc = Vec::with_capacity(96 + padded);
    enc.extend_from_slice(&[0u8; 12]);
    enc.extend_from_slice(vendor.as_slice());
    enc.extend_from_slice(&word(0x40)); // offset of the string's tail
    enc.extend_from_slice(&word(name.len() as u64));
    enc.extend_from_slice(name.as_bytes());
    enc.resize(96 + padded, 0);
    keccak256(enc)
}

fn word(value: u64) -> [u8; 32] {
    let mut w = [0u8; 32];
    w[24..].copy_from_slice(&value.to_be_bytes());
    w
}

impl Manifest {
    /// Serializes to the compact JSON that is signed.
    pub fn to_json(&self) -> Result<Vec<u8>, FormatError> {
        serde_json::to_vec(self).map_err(|e| bad(format!("cannot serialize: {e}")))
    }

    /// Parses and validates manifest JSON strictly: format version first, then unknown or
    /// duplicate fields, hex shapes, then the cross-field rules of [`Manifest::validate`].
    pub fn from_json(bytes: &[u8]) -> Result<Self, FormatError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(bad(format!(
                "{} bytes, more than the {MAX_MANIFEST_BYTES} allowed",
                bytes.len()
            )));
        }
        #[derive(Deserialize)]
        struct FormatProbe {
            format: serde_json::Value,
        }
        let probe: FormatProbe =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("no format version: {e}")))?;
        if probe.format != serde_json::json!(FORMAT_VERSION) {
            return Err(bad(format!(
                "unsupported format {} (this build reads format {FORMAT_VERSION})",
                probe.format
            )));
        }
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("schema: {e}")))?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Checks the rules JSON shapes cannot express: the product id and vendor address are
    /// derived correctly, strings are well-formed, limits are in range, lists have no duplicates.
    pub fn validate(&self) -> Result<(), FormatError> {
        if self.format != FORMAT_VERSION {
            return Err(bad(format!("unsupported format {}", self.format)));
        }
        check_text("name", &self.name, MAX_NAME_LEN, false)?;
        check_text("version", &self.version, MAX_VERSION_LEN, true)?;
        let derived = Address::from_public_key(&self.vendor_pubkey.into());
        if derived != self.vendor {
            return Err(bad(format!(
                "vendor {} is not the address of vendor_pubkey ({derived})",
                self.vendor
            )));
        }
        let expected = product_id(self.vendor, &self.name);
        if expected != self.product_id {
            return Err(bad(format!(
                "product_id {} is not keccak256(abi.encode(vendor, name)) = {expected}",
                self.product_id
            )));
        }
        if self.chain_id == 0 {
            return Err(bad("chain_id must not be 0"));
        }
        if self.registry == Address::ZERO {
            return Err(bad("registry must not be the zero address"));
        }
        check_unit(&self.unit)?;
        check_limits(&self.limits)?;
        check_entries(&self.entry)?;
        if let Some(component) = &self.component {
            check_component(component)?;
        }
        if let Some(enc) = &self.encryption {
            check_encryption(enc)?;
        }
        Ok(())
    }
}

/// Reads only the `vendor` field, for the vendor check that runs before full schema validation.
pub(crate) fn vendor_of(bytes: &[u8]) -> Result<Address, FormatError> {
    #[derive(Deserialize)]
    struct VendorProbe {
        #[serde(with = "hexfield::address")]
        vendor: Address,
    }
    serde_json::from_slice::<VendorProbe>(bytes)
        .map(|p| p.vendor)
        .map_err(|e| bad(format!("no usable vendor field: {e}")))
}

fn bad(what: impl Into<String>) -> FormatError {
    FormatError::Manifest(what.into())
}

fn check_text(field: &str, value: &str, max: usize, no_space: bool) -> Result<(), FormatError> {
    let len = value.chars().count();
    if len == 0 || len > max {
        return Err(bad(format!(
            "{field} must be 1 to {max} characters, got {len}"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(bad(format!("{field} contains control characters")));
    }
    if value.trim() != value {
        return Err(bad(format!("{field} has leading or trailing whitespace")));
    }
    if no_space && value.chars().any(char::is_whitespace) {
        return Err(bad(format!("{field} contains whitespace")));
    }
    Ok(())
}

fn check_unit(unit: &str) -> Result<(), FormatError> {
    let mut chars = unit.chars();
    let ok = unit.len() <= MAX_UNIT_LEN
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        return Err(bad(format!(
            "unit {unit:?} must be `call` or a kernel event unit like `tls_handshake` \
             ([a-z][a-z0-9_]*, at most {MAX_UNIT_LEN} characters)"
        )));
    }
    Ok(())
}

fn check_limits(limits: &Limits) -> Result<(), FormatError> {
    if let Some(pages) = limits.max_memory_pages
        && (pages == 0 || pages > MAX_MEMORY_PAGES)
    {
        return Err(bad(format!(
            "limits.max_memory_pages {pages} is outside 1..={MAX_MEMORY_PAGES}"
        )));
    }
    if limits.fuel == Some(0) {
        return Err(bad("limits.fuel must be positive"));
    }
    if limits.deadline_ms == Some(0) {
        return Err(bad("limits.deadline_ms must be positive"));
    }
    Ok(())
}

fn check_entries(entries: &[String]) -> Result<(), FormatError> {
    for (i, name) in entries.iter().enumerate() {
        if name.is_empty() || name.len() > MAX_ENTRY_LEN {
            return Err(bad(format!(
                "entry {name:?} must be 1 to {MAX_ENTRY_LEN} bytes"
            )));
        }
        if entries[..i].contains(name) {
            return Err(bad(format!("entry {name:?} is listed twice")));
        }
    }
    Ok(())
}

fn check_component(c: &ComponentInfo) -> Result<(), FormatError> {
    let kebab = |s: &str| {
        !s.is_empty()
            && s.len() <= MAX_NAME_LEN
            && s.split('-').all(|w| {
                w.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                    && w.chars().all(|c| c.is_ascii_alphanumeric())
            })
    };
    let package_ok = c
        .package
        .split_once(':')
        .is_some_and(|(ns, name)| kebab(ns) && kebab(name));
    if !package_ok {
        return Err(bad(format!(
            "component.package {:?} must be `namespace:name` in WIT's kebab-case",
            c.package
        )));
    }
    if !kebab(&c.world) {
        return Err(bad(format!(
            "component.world {:?} must be a WIT kebab-case name",
            c.world
        )));
    }
    if let Some(v) = &c.version {
        check_text("component.version", v, MAX_VERSION_LEN, true)?;
    }
    if c.wit.is_empty() || c.wit.len() > crate::component::MAX_WIT_BYTES {
        return Err(bad(format!(
            "component.wit must be 1 to {} bytes, got {}",
            crate::component::MAX_WIT_BYTES,
            c.wit.len()
        )));
    }
    Ok(())
}

fn check_encryption(enc: &Encryption) -> Result<(), FormatError> {
    if enc.algorithm != ENCRYPTION_ALGORITHM {
        return Err(bad(format!(
            "unsupported encryption.algorithm {:?} (expected {ENCRYPTION_ALGORITHM:?})",
            enc.algorithm
        )));
    }
    if enc.recipients.is_empty() || enc.recipients.len() > MAX_RECIPIENTS {
        return Err(bad(format!(
            "encryption needs 1 to {MAX_RECIPIENTS} recipients, got {}",
            enc.recipients.len()
        )));
    }
    for (i, r) in enc.recipients.iter().enumerate() {
        if enc.recipients[..i].iter().any(|o| o.pubkey == r.pubkey) {
            return Err(bad(format!("recipient {} is listed twice", r.address())));
        }
    }
    Ok(())
}
