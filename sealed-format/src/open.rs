//! Opening: verify a sealed module in the v1 check order; decrypt only when asked.

use std::fmt;

use alloy_primitives::{Address, B256};
use k256::ecdsa::SigningKey;
use sha2::{Digest, Sha256};

use crate::manifest::{self, Manifest};
use crate::seal::sha256;
use crate::signature::{self, SignatureData};
use crate::wasm::{self, Layer, MODULE_HEADER, Scan};
use crate::{FormatError, component, module, payload};

/// A sealed module whose signature, signers, vendor and manifest have been verified.
///
/// It borrows the code from the sealed bytes given to [`open`], as it is in the file
/// (plaintext sections or ciphertext), until [`Opened::plaintext`] is called: the runtime does
/// so only after the on-chain license check. Nothing of the code is copied before.
#[derive(Clone)]
pub struct Opened<'a> {
    /// The validated manifest.
    pub manifest: Manifest,
    /// The manifest JSON exactly as signed.
    pub manifest_bytes: Vec<u8>,
    /// Addresses recovered from the signatures, in section order (the vendor is among them).
    pub signers: Vec<Address>,
    /// The signed SHA-256 of everything after the signature section.
    pub signed_hash: B256,
    /// Size of the sealed file in bytes.
    pub sealed_len: usize,
    layer: Layer,
    body: Body<'a>,
}

#[derive(Clone)]
enum Body<'a> {
    /// The plaintext module's sections (everything after its 8-byte header), and the SHA-256
    /// of the plaintext module (header and these sections), computed by [`open`] in the same
    /// sweep over the bytes as the signed hash.
    Plain { sections: &'a [u8], sha256: B256 },
    /// The AES-256-GCM ciphertext of the whole plaintext module.
    Encrypted(&'a [u8]),
}

impl fmt::Debug for Opened<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened")
            .field("manifest", &self.manifest)
            .field("signers", &self.signers)
            .field("signed_hash", &self.signed_hash)
            .field("sealed_len", &self.sealed_len)
            .field("encrypted", &self.is_encrypted())
            .field("body_len", &self.body_len())
            .finish()
    }
}

/// Verifies a sealed module, stopping at the first failing check, in this order:
/// parse → signature section first and well-formed → hash → recover signers →
/// a signer is `manifest.vendor` → manifest schema → layout of the code sections.
///
/// The bytes are read once, and never copied but for the manifest: the signed hash and, when
/// the code is plaintext, the code hash are computed in one sweep over them; the returned
/// [`Opened`] borrows the code.
pub fn open(bytes: &[u8]) -> Result<Opened<'_>, FormatError> {
    let Scan { layer, sections } = wasm::scan(bytes)?;

    let first = sections
        .first()
        .filter(|s| s.is_custom(signature::SECTION_NAME))
        .ok_or_else(|| {
            FormatError::SignatureSection(
                "the first section is not a `signature` custom section (not a sealed module?)"
                    .into(),
            )
        })?;
    let signatures = SignatureData::decode(first.payload)?;

    // The code hash is only worth computing when the layout can pass as plaintext code: a
    // manifest section second, and not exactly one `sealbox.payload` section after it.
    let plain_code = sections
        .get(1)
        .filter(|s| s.is_custom(manifest::SECTION_NAME))
        .filter(|_| !matches!(&sections[2..], [only] if only.is_custom(payload::SECTION_NAME)))
        .map(|manifest| manifest.range.end);
    let (actual, code_hash) =
        hash_signed_and_code(bytes, first.range.end, plain_code, &layer.header());
    if actual != signatures.hash {
        return Err(FormatError::Hash {
            signed: signatures.hash,
            actual,
        });
    }

    let signers = signatures.recover_signers()?;
    for (index, signer) in signers.iter().enumerate() {
        if signers[..index].contains(signer) {
            return Err(FormatError::Signer {
                index,
                reason: format!("{signer} signed twice"),
            });
        }
    }

    let manifest_section = sections
        .get(1)
        .filter(|s| s.is_custom(manifest::SECTION_NAME))
        .ok_or_else(|| {
            FormatError::Manifest(format!(
                "the second section is not the `{}` custom section",
                manifest::SECTION_NAME
            ))
        })?;
    let vendor = manifest::vendor_of(manifest_section.payload)?;
    if !signers.contains(&vendor) {
        return Err(FormatError::VendorMismatch { vendor, signers });
    }

    let manifest = Manifest::from_json(manifest_section.payload)?;
    match (layer, &manifest.component) {
        (Layer::Module, None) | (Layer::Component, Some(_)) => {}
        (Layer::Module, Some(_)) => {
            return Err(FormatError::Layout(
                "the manifest describes a component but the file is a core module".into(),
            ));
        }
        (Layer::Component, None) => {
            return Err(FormatError::Layout(
                "the file is a component but the manifest names no WIT world".into(),
            ));
        }
    }

    let code = &sections[2..];
    let body = match &manifest.encryption {
        None => {
            if let Some(name) = code.iter().filter_map(|s| s.name).find(|n| is_reserved(n)) {
                return Err(FormatError::Layout(format!(
                    "unexpected `{name}` section among the code sections"
                )));
            }
            // No reserved section follows the manifest, so the sweep above hashed the code.
            let sha256 = code_hash.ok_or_else(|| {
                FormatError::Layout("plaintext code without its code hash".into())
            })?;
            Body::Plain {
                sections: &bytes[manifest_section.range.end..],
                sha256,
            }
        }
        Some(_) => match code {
            [only] if only.is_custom(payload::SECTION_NAME) => Body::Encrypted(only.payload),
            _ => {
                return Err(FormatError::Layout(format!(
                    "an encrypted module must end with exactly one `{}` section, found {} section(s)",
                    payload::SECTION_NAME,
                    code.len()
                )));
            }
        },
    };

    Ok(Opened {
        manifest,
        manifest_bytes: manifest_section.payload.to_vec(),
        signers,
        signed_hash: signatures.hash,
        sealed_len: bytes.len(),
        layer,
        body,
    })
}

/// Bytes hashed by both hashers before either moves on: small enough to stay in the L2 cache
/// between the two, large enough that the per-call overhead does not count.
const SWEEP_CHUNK: usize = 64 * 1024;

/// Code at least this large has its two hashes computed on two threads at once: one SHA-256
/// pass is ~7 ms per 10 MB here, a thread costs ~20 µs.
pub(crate) const PARALLEL_HASH_MIN: usize = 1 << 20;

/// SHA-256 of `bytes[signed_from..]` (the signed hash) and, when `code_from` is given, of
/// `header ‖ bytes[code_from..]` (the plaintext's code hash). Large code is hashed by both
/// hashers on two threads at once; small code in one sweep, chunk by chunk by one hasher then
/// the other while in cache.
pub(crate) fn hash_signed_and_code(
    bytes: &[u8],
    signed_from: usize,
    code_from: Option<usize>,
    header: &[u8; 8],
) -> (B256, Option<B256>) {
    let mut signed = Sha256::new();
    let Some(code_from) = code_from.filter(|&c| c >= signed_from && c <= bytes.len()) else {
        signed.update(&bytes[signed_from..]);
        return (finish(signed), None);
    };
    let code_bytes = &bytes[code_from..];
    if code_bytes.len() >= PARALLEL_HASH_MIN {
        return std::thread::scope(|scope| {
            let code = scope.spawn(|| {
                let mut code = Sha256::new();
                code.update(header);
                code.update(code_bytes);
                finish(code)
            });
            signed.update(&bytes[signed_from..]);
            let signed = finish(signed);
            let code = code
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (signed, Some(code))
        });
    }
    signed.update(&bytes[signed_from..code_from]);
    let mut code = Sha256::new();
    code.update(header);
    for chunk in code_bytes.chunks(SWEEP_CHUNK) {
        signed.update(chunk);
        code.update(chunk);
    }
    (finish(signed), Some(finish(code)))
}

fn finish(hasher: Sha256) -> B256 {
    B256::from(<[u8; 32]>::from(hasher.finalize()))
}

fn is_reserved(name: &str) -> bool {
    name == signature::SECTION_NAME || name.starts_with("sealbox.")
}

impl Opened<'_> {
    /// Whether the code is a component (the manifest names its WIT world) rather than a core
    /// module.
    pub fn is_component(&self) -> bool {
        self.layer == Layer::Component
    }

    /// Whether the code is encrypted (a `sealbox.payload` section).
    pub fn is_encrypted(&self) -> bool {
        matches!(self.body, Body::Encrypted(_))
    }

    /// Size in bytes of the code as stored: plaintext sections, or ciphertext with its tag.
    pub fn body_len(&self) -> usize {
        match &self.body {
            Body::Plain { sections: b, .. } | Body::Encrypted(b) => b.len(),
        }
    }

    /// The manifest's vendor (one of [`Opened::signers`]).
    pub fn vendor(&self) -> Address {
        self.manifest.vendor
    }

    /// The signers other than the vendor.
    pub fn cosigners(&self) -> Vec<Address> {
        self.signers
            .iter()
            .copied()
            .filter(|s| *s != self.manifest.vendor)
            .collect()
    }

    /// The plaintext module, decrypted with `recipient` if it is encrypted, after checking that
    /// its SHA-256 equals the manifest's `code_hash` and that it is a module [`crate::seal`]
    /// accepts: valid Wasm ([`crate::Check::NotWasm`]) and not sealed
    /// ([`crate::Check::AlreadySealed`]). The manifest's entries are not checked against the
    /// module's exports here: the runtime does so when it compiles the module.
    ///
    /// `recipient` is ignored for plaintext modules. For encrypted ones, `None` or a key that is
    /// not on the recipient list fails with [`crate::Check::NotRecipient`].
    pub fn plaintext(&self, recipient: Option<&SigningKey>) -> Result<Vec<u8>, FormatError> {
        match self.body {
            Body::Plain { sections, sha256 } => {
                self.check_code_hash(sha256)?;
                let mut module = Vec::with_capacity(MODULE_HEADER.len() + sections.len());
                module.extend_from_slice(&self.layer.header());
                module.extend_from_slice(sections);
                valid_code(module, self.layer)
            }
            Body::Encrypted(ciphertext) => {
                let module = self.decrypt(ciphertext, recipient)?;
                self.check_code_hash(sha256(&module))?;
                valid_code(module, self.layer)
            }
        }
    }

    /// Runs the checks of [`Opened::plaintext`] (decryption with `recipient` if the module is
    /// encrypted, then the code hash) without keeping the plaintext: for a plaintext module this
    /// only compares the code hash [`open`] computed, with no copy and no second pass.
    pub fn verify_code(&self, recipient: Option<&SigningKey>) -> Result<(), FormatError> {
        match self.body {
            Body::Plain { sha256, .. } => self.check_code_hash(sha256),
            Body::Encrypted(_) => self.plaintext(recipient).map(drop),
        }
    }

    fn decrypt(
        &self,
        ciphertext: &[u8],
        recipient: Option<&SigningKey>,
    ) -> Result<Vec<u8>, FormatError> {
        let Some(encryption) = &self.manifest.encryption else {
            return Err(FormatError::Layout(
                "encrypted payload without an encryption entry".into(),
            ));
        };
        let key = recipient.ok_or_else(|| {
            FormatError::NotRecipient(format!(
                "the module is encrypted; the private key of one of its {} recipient(s) is needed",
                encryption.recipients.len()
            ))
        })?;
        payload::decrypt(ciphertext, &self.manifest.code_hash, encryption, key)
    }

    fn check_code_hash(&self, actual: B256) -> Result<(), FormatError> {
        if actual != self.manifest.code_hash {
            return Err(FormatError::CodeHash {
                expected: self.manifest.code_hash,
                actual,
            });
        }
        Ok(())
    }
}

/// The signature only proves who wrote the code, not that it is code: a module that the vendor's
/// own `seal` would have refused (invalid Wasm, sealed twice) fails here rather than after the
/// caller has acted on it. Its entries are the runtime's to check.
/// The plaintext must be of the kind the (signed) manifest and file say.
fn valid_code(module: Vec<u8>, layer: Layer) -> Result<Vec<u8>, FormatError> {
    match layer {
        Layer::Module => {
            module::check_plaintext(&module)?;
        }
        Layer::Component => component::check_plaintext(&module)?,
    }
    Ok(module)
}
