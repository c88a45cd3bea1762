//! Errors, each naming the check that failed.

use std::fmt;

use alloy_primitives::{Address, B256};

/// The check a sealed module failed, in the order [`crate::open`] and
/// [`crate::Opened::plaintext`] run them (plus the checks [`crate::seal`] runs on its input).
///
/// Binaries map each check to its own exit code with [`Check::exit_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    /// The bytes are not a core Wasm module (magic, version, or validation of seal input).
    NotWasm,
    /// The section framing is broken (sizes, ids, names): truncated or corrupted file.
    Parse,
    /// The `signature` section is missing, not first, or malformed.
    SignatureSection,
    /// The SHA-256 of everything after the signature section differs from the signed hash.
    Hash,
    /// A signature does not recover to the key id it claims.
    Signer,
    /// No signature was made by the manifest's `vendor`.
    VendorMismatch,
    /// The `sealbox.manifest` section is missing or its JSON breaks the v1 schema.
    Manifest,
    /// The sections after the manifest do not match it (payload missing, extra sections).
    Layout,
    /// The given key is not one of the module's recipients (or no key was given).
    NotRecipient,
    /// The content key or the payload failed to decrypt (AES-GCM authentication).
    Decrypt,
    /// The plaintext module's SHA-256 differs from the manifest's `code_hash`.
    CodeHash,
    /// [`crate::seal`] was given a module that is already sealed or signed.
    AlreadySealed,
    /// [`crate::seal`] was given options that cannot make a valid manifest.
    Options,
    /// [`crate::seal`] was given a module whose exports break the invocation ABI v1 for the
    /// entries it would list (no entry, no `sealbox_alloc`, no `memory`, an entry of the
    /// wrong type): the runtime would refuse it.
    Abi,
    /// [`crate::seal`] was given a component that does not export what its WIT world says,
    /// with the same types.
    World,
}

impl Check {
    /// Every check, in check order.
    pub const ALL: [Check; 15] = [
        Check::NotWasm,
        Check::Parse,
        Check::SignatureSection,
        Check::Hash,
        Check::Signer,
        Check::VendorMismatch,
        Check::Manifest,
        Check::Layout,
        Check::NotRecipient,
        Check::Decrypt,
        Check::CodeHash,
        Check::AlreadySealed,
        Check::Options,
        Check::Abi,
        Check::World,
    ];

    /// Stable kebab-case name of the check, for messages and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Check::NotWasm => "not-wasm",
            Check::Parse => "parse",
            Check::SignatureSection => "signature-section",
            Check::Hash => "hash",
            Check::Signer => "signer",
            Check::VendorMismatch => "vendor-mismatch",
            Check::Manifest => "manifest",
            Check::Layout => "layout",
            Check::NotRecipient => "not-recipient",
            Check::Decrypt => "decrypt",
            Check::CodeHash => "code-hash",
            Check::AlreadySealed => "already-sealed",
            Check::Options => "options",
            Check::Abi => "abi",
            Check::World => "world",
        }
    }

    /// Process exit code for this check: 10 + its position in [`Check::ALL`] (10..=23).
    ///
    /// Codes below 10 stay free for generic failures (1) and usage errors (2).
    pub fn exit_code(self) -> u8 {
        let index = Check::ALL.iter().position(|c| *c == self).unwrap_or(0);
        10 + index as u8
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why sealing or opening a module failed. [`FormatError::check`] names the failed check.
///
/// Messages never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// See [`Check::NotWasm`].
    #[error("not a Wasm module: {0}")]
    NotWasm(String),
    /// See [`Check::Parse`].
    #[error("malformed module: {0}")]
    Parse(String),
    /// See [`Check::SignatureSection`].
    #[error("signature section: {0}")]
    SignatureSection(String),
    /// See [`Check::Hash`].
    #[error("hash mismatch: the signature covers {signed} but the module hashes to {actual}")]
    Hash {
        /// The hash stored in (and signed by) the signature section.
        signed: B256,
        /// SHA-256 of the bytes after the signature section.
        actual: B256,
    },
    /// See [`Check::Signer`].
    #[error("signature #{index}: {reason}")]
    Signer {
        /// Position of the failing signature in the section (0 = vendor).
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// See [`Check::VendorMismatch`].
    #[error(
        "not signed by the manifest's vendor {vendor} (signers: {})",
        list(signers)
    )]
    VendorMismatch {
        /// The manifest's `vendor`.
        vendor: Address,
        /// Addresses the signatures recover to.
        signers: Vec<Address>,
    },
    /// See [`Check::Manifest`].
    #[error("manifest: {0}")]
    Manifest(String),
    /// See [`Check::Layout`].
    #[error("layout: {0}")]
    Layout(String),
    /// See [`Check::NotRecipient`].
    #[error("not a recipient: {0}")]
    NotRecipient(String),
    /// See [`Check::Decrypt`].
    #[error("decryption failed: {0}")]
    Decrypt(String),
    /// See [`Check::CodeHash`].
    #[error(
        "code hash mismatch: the manifest says {expected} but the plaintext hashes to {actual}"
    )]
    CodeHash {
        /// The manifest's `code_hash`.
        expected: B256,
        /// SHA-256 of the plaintext module.
        actual: B256,
    },
    /// See [`Check::AlreadySealed`].
    #[error("already sealed: {0}")]
    AlreadySealed(String),
    /// See [`Check::Options`].
    #[error("invalid seal options: {0}")]
    Options(String),
    /// See [`Check::Abi`].
    #[error("not a Sealbox module: {0}")]
    Abi(String),
    /// See [`Check::World`].
    #[error("component does not implement its WIT world: {0}")]
    World(String),
}

fn list(addresses: &[Address]) -> String {
    let items: Vec<String> = addresses.iter().map(|a| a.to_string()).collect();
    items.join(", ")
}

impl FormatError {
    /// The check that failed.
    pub fn check(&self) -> Check {
        match self {
            FormatError::NotWasm(_) => Check::NotWasm,
            FormatError::Parse(_) => Check::Parse,
            FormatError::SignatureSection(_) => Check::SignatureSection,
            FormatError::Hash { .. } => Check::Hash,
            FormatError::Signer { .. } => Check::Signer,
            FormatError::VendorMismatch { .. } => Check::VendorMismatch,
            FormatError::Manifest(_) => Check::Manifest,
            FormatError::Layout(_) => Check::Layout,
            FormatError::NotRecipient(_) => Check::NotRecipient,
            FormatError::Decrypt(_) => Check::Decrypt,
            FormatError::CodeHash { .. } => Check::CodeHash,
            FormatError::AlreadySealed(_) => Check::AlreadySealed,
            FormatError::Options(_) => Check::Options,
            FormatError::Abi(_) => Check::Abi,
            FormatError::World(_) => Check::World,
        }
    }
}
