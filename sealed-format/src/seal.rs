//! Sealing: plaintext module + options + keys → signed (optionally encrypted) sealed module.

use std::borrow::Cow;

use alloy_primitives::{Address, B256};
use k256::PublicKey;
use k256::ecdsa::SigningKey;
use sha2::{Digest, Sha256};

use crate::manifest::{
    self, ComponentInfo, FORMAT_VERSION, Limits, Manifest, Metering, product_id,
};
use crate::open::{PARALLEL_HASH_MIN, hash_signed_and_code};
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
/// co-signer. The same as [`prepare`], then [`Unsigned::sign`], then the head and the signed
/// parts one after the other.
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
    let unsigned = prepare(plaintext, opts, vendor, cosigners)?;
    let head = unsigned.sign()?;
    let mut out = Vec::with_capacity(unsigned.sealed_len());
    out.extend_from_slice(&head);
    unsigned
        .signed_parts()
        .iter()
        .for_each(|part| out.extend_from_slice(part));
    Ok(out)
}

/// A module being sealed, final but for its signature: the manifest and the code the signature
/// covers (borrowed from the plaintext unless it is encrypted), and the keys that will sign.
///
/// Why [`seal`] is split in two: where the signed bytes go in the sealed file is known before
/// they are hashed (the head — the plaintext's 8-byte preamble and the `signature` section —
/// has a length fixed by the number of signers), so a caller can write them to a file on one
/// thread while [`Unsigned::sign`] hashes them on another, then write the head in front.
pub struct Unsigned<'a> {
    preamble: &'a [u8],
    manifest: Manifest,
    manifest_section: Vec<u8>,
    code_header: Vec<u8>,
    code: Cow<'a, [u8]>,
    keys: Vec<&'a SigningKey>,
    head_len: usize,
}

impl std::fmt::Debug for Unsigned<'_> {
    // Not derived: the signing keys are secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unsigned")
            .field("head_len", &self.head_len)
            .field("manifest_section_len", &self.manifest_section.len())
            .field("code_header_len", &self.code_header.len())
            .field("code_len", &self.code.len())
            .field("signers", &self.keys.len())
            .finish()
    }
}

impl Unsigned<'_> {
    /// The bytes the signature covers, in file order: the manifest section, then the code (the
    /// plaintext's sections, or the `sealbox.payload` section's header and the ciphertext).
    /// In the sealed file they start at [`Unsigned::head_len`].
    pub fn signed_parts(&self) -> [&[u8]; 3] {
        [&self.manifest_section, &self.code_header, &self.code]
    }

    /// Length in bytes of the head that [`Unsigned::sign`] returns: the offset of the signed
    /// bytes in the sealed file.
    pub fn head_len(&self) -> usize {
        self.head_len
    }

    /// Length in bytes of the sealed module: the head and the signed parts.
    pub fn sealed_len(&self) -> usize {
        self.head_len + self.signed_parts().iter().map(|p| p.len()).sum::<usize>()
    }

    /// The manifest the signature will cover.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The addresses of the signing keys, vendor first.
    pub fn signers(&self) -> Vec<Address> {
        self.keys
            .iter()
            .map(|k| Address::from_public_key(k.verifying_key()))
            .collect()
    }

    /// Hashes the signed parts and signs the hash with each key (vendor first). Returns the
    /// head of the sealed file: the plaintext's preamble (a sealed component stays a
    /// component) and the `signature` section, exactly [`Unsigned::head_len`] bytes long.
    pub fn sign(&self) -> Result<Vec<u8>, FormatError> {
        let mut hasher = Sha256::new();
        self.signed_parts()
            .iter()
            .for_each(|part| hasher.update(part));
        self.sign_hash(B256::from(<[u8; 32]>::from(hasher.finalize())))
    }

    /// Like [`Unsigned::sign`], but hashes `stored`: the signed parts as they were stored,
    /// e.g. mapped back from the file they were written to. For plaintext code it also checks,
    /// in the same sweep (on two threads for large code), that the stored code still hashes to
    /// the manifest's `code_hash`.
    ///
    /// Why: what is signed is then exactly what was stored, and a plaintext that changed after
    /// [`prepare`] hashed it (a file rewritten while it was sealed) is refused with
    /// [`FormatError::CodeHash`] instead of being sealed under a code hash it does not have.
    /// Stored bytes of another length than the parts, or whose manifest, payload header or
    /// ciphertext differ from the parts, are refused with [`FormatError::Layout`].
    pub fn sign_stored(&self, stored: &[u8]) -> Result<Vec<u8>, FormatError> {
        let expected_len = self.sealed_len() - self.head_len;
        if stored.len() != expected_len {
            return Err(FormatError::Layout(format!(
                "the stored signed bytes are {} bytes long; the manifest and code are {expected_len}",
                stored.len()
            )));
        }
        // Everything but plaintext code is this process's own bytes: stored as they are, or
        // refused. Plaintext code is the caller's, and is checked against its hash below.
        let framing = self.manifest_section.len() + self.code_header.len();
        let encrypted = self.manifest.encryption.is_some();
        if stored[..self.manifest_section.len()] != self.manifest_section[..]
            || stored[self.manifest_section.len()..framing] != self.code_header[..]
            || (encrypted && stored[framing..] != self.code[..])
        {
            return Err(FormatError::Layout(
                "the stored signed bytes differ from the manifest, the payload header or the \
                 ciphertext that were written"
                    .into(),
            ));
        }
        let code_from = (!encrypted).then_some(framing);
        let preamble: &[u8; 8] = self
            .preamble
            .try_into()
            .map_err(|_| FormatError::NotWasm("no 8-byte preamble".into()))?;
        let (signed, code) = hash_signed_and_code(stored, 0, code_from, preamble);
        if let Some(actual) = code
            && actual != self.manifest.code_hash
        {
            return Err(FormatError::CodeHash {
                expected: self.manifest.code_hash,
                actual,
            });
        }
        self.sign_hash(signed)
    }

    fn sign_hash(&self, hash: B256) -> Result<Vec<u8>, FormatError> {
        let head = head(self.preamble, &SignatureData::sign(hash, &self.keys)?);
        debug_assert_eq!(head.len(), self.head_len);
        Ok(head)
    }
}

/// The preamble, then the `signature` section holding `signatures`.
fn head(preamble: &[u8], signatures: &SignatureData) -> Vec<u8> {
    let mut out = preamble.to_vec();
    wasm::write_custom_section(&mut out, signature::SECTION_NAME, &signatures.encode());
    out
}

/// Everything [`seal`] does but signing: checks `plaintext` against `opts` (the same refusals
/// as [`seal`]), hashes it, writes the manifest and encrypts the code if `opts` has recipients.
pub fn prepare<'a>(
    plaintext: &'a [u8],
    opts: &SealOptions,
    vendor: &'a SigningKey,
    cosigners: &[&'a SigningKey],
) -> Result<Unsigned<'a>, FormatError> {
    prepare_with(plaintext, opts, vendor, cosigners, |_| ()).map(|(unsigned, _)| unsigned)
}

/// Where a plaintext module's code will sit in its sealed file: `code` at byte `offset`.
/// Known once the module passed its checks, before its code hash is (see [`prepare_with`]).
#[derive(Debug, Clone, Copy)]
pub struct Placement<'p> {
    /// Offset of the code in the sealed file: [`Unsigned::head_len`] plus the manifest
    /// section's length.
    pub offset: usize,
    /// The code: the plaintext's sections, everything after its 8-byte preamble.
    pub code: &'p [u8],
}

/// [`prepare`], calling `place` with where a plaintext module's code will sit in the sealed
/// file while the code is being hashed (on another thread for a large module). Returns what
/// `place` returned, or `None` when it was not called: the code is encrypted (its ciphertext
/// exists only after the hash), or a check failed first.
///
/// Why: a caller writing the sealed module to a file can write the code, the bulk of it, at
/// its place while it is hashed, since the manifest's length does not depend on the hash
/// (`code_hash` is always 64 hex digits). The offset is a promise the returned [`Unsigned`]
/// keeps: `head_len() + signed_parts()[0].len()` equals it.
pub fn prepare_with<'a, R>(
    plaintext: &'a [u8],
    opts: &SealOptions,
    vendor: &'a SigningKey,
    cosigners: &[&'a SigningKey],
    place: impl FnOnce(Placement<'_>) -> R,
) -> Result<(Unsigned<'a>, Option<R>), FormatError> {
    let preamble = &plaintext[..MODULE_HEADER.len().min(plaintext.len())];
    let mut keys = vec![vendor];
    keys.extend_from_slice(cosigners);
    // A signature's encoding has one length per number of signers: the head of any hash is as
    // long as the head of a placeholder.
    let head_len = head(preamble, &SignatureData::placeholder(keys.len())).len();
    // The checks, then the placement; the code hash does not depend on them and runs meanwhile.
    let (checked, code_hash) = hashed_while(plaintext, || {
        let (entry, component) = entries_of(plaintext, opts)?;
        check_keys(&keys)?;
        let draft = manifest_of(opts, vendor, entry, component, B256::ZERO, None)?;
        let offset = head_len + manifest_section(&draft)?.len();
        let placed = opts.recipients.is_empty().then(|| {
            place(Placement {
                offset,
                code: &plaintext[MODULE_HEADER.len()..],
            })
        });
        Ok::<_, FormatError>((draft, placed))
    });
    let (draft, placed) = checked?;
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
        code_hash,
        encryption,
        ..draft
    };
    manifest.validate().map_err(as_options)?;
    let manifest_section = manifest_section(&manifest)?;
    Ok((
        Unsigned {
            preamble,
            manifest,
            manifest_section,
            code_header,
            code,
            keys,
            head_len,
        },
        placed,
    ))
}

/// Runs `work` while `bytes` are hashed: on another thread for 1 MiB and more.
fn hashed_while<T>(bytes: &[u8], work: impl FnOnce() -> T) -> (T, B256) {
    if bytes.len() < PARALLEL_HASH_MIN {
        return (work(), sha256(bytes));
    }
    std::thread::scope(|scope| {
        let hash = scope.spawn(|| sha256(bytes));
        let done = work();
        let hash = hash
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (done, hash)
    })
}

/// The manifest of a seal with these options, signer, entries, code hash and encryption;
/// validated (a failure is the options' fault).
fn manifest_of(
    opts: &SealOptions,
    vendor: &SigningKey,
    entry: Vec<String>,
    component: Option<ComponentInfo>,
    code_hash: B256,
    encryption: Option<manifest::Encryption>,
) -> Result<Manifest, FormatError> {
    let vendor_address = Address::from_public_key(vendor.verifying_key());
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
    manifest.validate().map_err(as_options)?;
    Ok(manifest)
}

/// The `sealbox.manifest` section holding `manifest`'s JSON.
fn manifest_section(manifest: &Manifest) -> Result<Vec<u8>, FormatError> {
    let mut section = Vec::new();
    wasm::write_custom_section(&mut section, manifest::SECTION_NAME, &manifest.to_json()?);
    Ok(section)
}

/// A manifest that fails validation at seal time is the options' fault.
fn as_options(e: FormatError) -> FormatError {
    match e {
        FormatError::Manifest(what) => FormatError::Options(what),
        other => other,
    }
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
