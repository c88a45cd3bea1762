//! Sealing: plaintext module + options + keys → signed (optionally encrypted) sealed module.

use std::borrow::Cow;

use alloy_primitives::{Address, B256};
use k256::PublicKey;
use k256::ecdsa::SigningKey;
use sha2::{Digest, Sha256};

use crate::manifest::{
    self, ComponentInfo, FORMAT_VERSION, Limits, Manifest, Metering, product_id,
};
use crate::open::PARALLEL_HASH_MIN;
use crate::signature::{self, MAX_SIGNATURES, SignatureData};
use crate::wasm::{self, COMPONENT_HEADER, MODULE_HEADER};
use crate::{FormatError, payload};
use crate::{component, module};

/// What [`seal`] writes into the manifest besides what it derives from the module and the keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealOptions {
    /// Product name; with the vendor address it determines the product id.
    pub name: String,
    /// Release version label.
    pub version: String,
    /// Chain id of the license registry.
    pub chain_id: u64,
    /// Address of the `LicenseRegistry` contract.
    pub registry: Address,
    /// Billing unit: `call` or a kernel event unit such as `tls_handshake`.
    pub unit: String,
    /// Metering policy.
    pub metering: Metering,
    /// Per-call resource limits.
    pub limits: Limits,
    /// Entry functions; `None` lists every exported function of type `(i32, i32) -> i64`.
    pub entry: Option<Vec<String>>,
    /// Public keys to encrypt the module for; empty leaves the code in plaintext.
    pub recipients: Vec<PublicKey>,
    /// For a component: the WIT world it implements (required for components, refused for
    /// core modules).
    pub component: Option<WorldSource>,
}

/// The WIT world a component is sealed against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorldSource {
    /// The WIT source of the package that defines the world.
    pub wit: String,
    /// The world's name; `None` when the package has exactly one world.
    pub world: Option<String>,
}

impl SealOptions {
    /// Options with unit `call`, metering `kernel-required`, no limits, detected entries and no
    /// encryption.
    pub fn new(name: &str, version: &str, chain_id: u64, registry: Address) -> Self {
        Self {
            name: name.to_string(),
            version: version.to_string(),
            chain_id,
            registry,
            unit: "call".to_string(),
            metering: Metering::KernelRequired,
            limits: Limits::default(),
            entry: None,
            recipients: Vec::new(),
            component: None,
        }
    }
}

/// Seals `plaintext` (a core Wasm module or a component): writes the manifest, encrypts the
/// code when `opts.recipients` is not empty, and signs everything with `vendor` then each
/// co-signer.
///
/// Refuses invalid Wasm ([`crate::Check::NotWasm`]), a module that is already sealed
/// ([`crate::Check::AlreadySealed`]), options that make an invalid manifest
/// ([`crate::Check::Options`]), a core module off the ABI ([`crate::Check::Abi`]) and a
/// component that does not implement `opts.component`'s world ([`crate::Check::World`]).
pub fn seal(
    plaintext: &[u8],
    opts: &SealOptions,
    vendor: &SigningKey,
    cosigners: &[&SigningKey],
) -> Result<Vec<u8>, FormatError> {
    // The code hash does not depend on the checks: a large module is hashed while it is
    // validated.
    let (checked, code_hash) = if plaintext.len() >= PARALLEL_HASH_MIN {
        std::thread::scope(|scope| {
            let hash = scope.spawn(|| sha256(plaintext));
            let checked = entries_of(plaintext, opts);
            let hash = hash
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (checked, hash)
        })
    } else {
        (entries_of(plaintext, opts), sha256(plaintext))
    };
    let (entry, component) = checked?;
    let mut keys = vec![vendor];
    keys.extend_from_slice(cosigners);
    check_keys(&keys)?;
    let vendor_address = Address::from_public_key(vendor.verifying_key());
    // The code after the manifest, as (section header, section bytes): the plaintext module's
    // own sections, or one `sealbox.payload` section holding the ciphertext.
    let (code_header, code, encryption) = if opts.recipients.is_empty() {
        let sections = &plaintext[MODULE_HEADER.len()..];
        (Vec::new(), Cow::Borrowed(sections), None)
    } else {
        let (ciphertext, encryption) = payload::encrypt(plaintext, &code_hash, &opts.recipients)?;
        if ciphertext.len() > u32::MAX as usize - 64 {
            return Err(FormatError::Options(
                "the module is too large to encrypt".into(),
            ));
        }
        let header = wasm::custom_section_header(payload::SECTION_NAME, ciphertext.len());
        (header, Cow::Owned(ciphertext), Some(encryption))
    };
    let manifest = Manifest {
        format: FORMAT_VERSION,
        product_id: product_id(vendor_address, &opts.name),
        name: opts.name.clone(),
        version: opts.version.clone(),
        vendor: vendor_address,
        vendor_pubkey: PublicKey::from(vendor.verifying_key()),
        code_hash,
        chain_id: opts.chain_id,
        registry: opts.registry,
        unit: opts.unit.clone(),
        metering: opts.metering,
        limits: opts.limits,
        entry,
        component,
        encryption,
    };
    manifest.validate().map_err(|e| match e {
        FormatError::Manifest(what) => FormatError::Options(what),
        other => other,
    })?;
    let mut manifest_section = Vec::new();
    wasm::write_custom_section(
        &mut manifest_section,
        manifest::SECTION_NAME,
        &manifest.to_json()?,
    );

    let signed_parts = [manifest_section.as_slice(), &code_header, &code];
    let mut hasher = Sha256::new();
    signed_parts.iter().for_each(|part| hasher.update(part));
    let hash = B256::from(<[u8; 32]>::from(hasher.finalize()));
    let signatures = SignatureData::sign(hash, &keys)?;

    let mut out = Vec::with_capacity(signed_parts.iter().map(|p| p.len()).sum::<usize>() + 512);
    // The sealed file keeps the plaintext's preamble: a sealed component is a component.
    out.extend_from_slice(&plaintext[..MODULE_HEADER.len()]);
    wasm::write_custom_section(&mut out, signature::SECTION_NAME, &signatures.encode());
    signed_parts
        .iter()
        .for_each(|part| out.extend_from_slice(part));
    Ok(out)
}

/// The manifest's entries and, for a component, its world, after the checks of the kind of
/// code `plaintext` is.
fn entries_of(
    plaintext: &[u8],
    opts: &SealOptions,
) -> Result<(Vec<String>, Option<ComponentInfo>), FormatError> {
    if !plaintext.starts_with(&COMPONENT_HEADER) {
        if opts.component.is_some() {
            return Err(FormatError::Options(
                "a WIT world is for components; the input is a core module".into(),
            ));
        }
        let exports = module::check_plaintext(plaintext)?;
        return Ok((
            module::resolve_entries(&exports, opts.entry.as_deref())?,
            None,
        ));
    }
    let Some(source) = &opts.component else {
        component::check_plaintext(plaintext)?;
        return Err(FormatError::Options(
            "the input is a component: name the WIT world it implements (the WIT package source \
             and, if it has several, the world)"
                .into(),
        ));
    };
    let checked = component::check(plaintext, &source.wit, source.world.as_deref())?;
    let entry = match &opts.entry {
        None => checked.functions,
        Some(given) => {
            if let Some(missing) = given.iter().find(|g| !checked.functions.contains(g)) {
                return Err(FormatError::Options(format!(
                    "entry {missing:?} is not a function of world `{}` (its functions: {})",
                    checked.info.world_name(),
                    checked.functions.join(", ")
                )));
            }
            given.clone()
        }
    };
    Ok((entry, Some(checked.info)))
}

/// SHA-256 as a [`B256`].
pub(crate) fn sha256(bytes: &[u8]) -> B256 {
    B256::from(<[u8; 32]>::from(Sha256::digest(bytes)))
}

fn check_keys(keys: &[&SigningKey]) -> Result<(), FormatError> {
    if keys.len() > MAX_SIGNATURES {
        return Err(FormatError::Options(format!(
            "{} signing keys, at most {MAX_SIGNATURES} allowed",
            keys.len()
        )));
    }
    let addresses: Vec<Address> = keys
        .iter()
        .map(|k| Address::from_public_key(k.verifying_key()))
        .collect();
    for (i, a) in addresses.iter().enumerate() {
        if addresses[..i].contains(a) {
            return Err(FormatError::Options(format!(
                "{a} is given twice as a signer (vendor and co-signers must differ)"
            )));
        }
    }
    Ok(())
}
