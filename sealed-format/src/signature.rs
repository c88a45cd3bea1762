//! The `signature` custom section, in the layout of the WebAssembly tool-conventions
//! *Signatures* proposal, with secp256k1 recoverable ECDSA signatures.

use alloy_primitives::{Address, B256};
use k256::ecdsa::{RecoveryId, Signature, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::FormatError;
use wasm_encoder::Encode;
use wasmparser::BinaryReader;

/// Name of the custom section holding the signatures (must be the module's first section).
pub const SECTION_NAME: &str = "signature";
/// Specification version byte of the Signatures proposal.
pub const SPEC_VERSION: u8 = 0x01;
/// Content type byte: a WebAssembly module.
pub const CONTENT_TYPE_MODULE: u8 = 0x01;
/// Hash function byte: SHA-256.
pub const HASH_SHA256: u8 = 0x01;
/// Signature algorithm id used by Sealbox: secp256k1 ECDSA over SHA-256, 65-byte recoverable
/// `r ‖ s ‖ v` (v ∈ {0, 1}, low s). The proposal only assigns `0x01` (Ed25519); `0xEC` is ours.
pub const ALG_SECP256K1_SHA256_RECOVERABLE: u8 = 0xEC;
/// Domain separation prefix of the signed message, from the proposal.
pub const SIGNATURE_DOMAIN: &[u8] = b"wasmsig";
/// Most signatures accepted in one module (vendor plus co-signers).
pub const MAX_SIGNATURES: usize = 16;

const KEY_ID_LEN: usize = 20;
const SIGNATURE_LEN: usize = 65;

/// One signature record: the signer's Ethereum address as key id, and the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SignatureEntry {
    pub key_id: Address,
    pub signature: [u8; SIGNATURE_LEN],
}

/// Decoded contents of the `signature` section: one hash, one or more signatures of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SignatureData {
    pub hash: B256,
    pub entries: Vec<SignatureEntry>,
}

impl SignatureData {
    /// Signs `hash` with the vendor key then each co-signer key, in that order.
    pub fn sign(hash: B256, keys: &[&SigningKey]) -> Result<Self, FormatError> {
        let digest = message_digest(&hash);
        let entries = keys
            .iter()
            .map(|key| {
                let (sig, recid) = key.sign_prehash_recoverable(&digest).map_err(|_| {
                    FormatError::Options("secp256k1 signing failed for a signing key".into())
                })?;
                let mut signature = [0u8; SIGNATURE_LEN];
                signature[..64].copy_from_slice(&sig.to_bytes());
                signature[64] = recid.to_byte();
                Ok(SignatureEntry {
                    key_id: Address::from_public_key(key.verifying_key()),
                    signature,
                })
            })
            .collect::<Result<Vec<_>, FormatError>>()?;
        Ok(Self { hash, entries })
    }

    /// A signature set of `signers` zeroed records: encodes to exactly as many bytes as any
    /// real set with that many signatures (every field has a fixed length).
    pub fn placeholder(signers: usize) -> Self {
        let entry = SignatureEntry {
            key_id: Address::ZERO,
            signature: [0u8; SIGNATURE_LEN],
        };
        Self {
            hash: B256::ZERO,
            entries: vec![entry; signers],
        }
    }

    /// Serializes to the section payload (see `docs/FORMAT.md`); every `leb(u32)` is written by
    /// `wasm-encoder`.
    pub fn encode(&self) -> Vec<u8> {
        let mut set = Vec::new();
        1u32.encode(&mut set); // hashes_count
        set.extend_from_slice(self.hash.as_slice());
        self.entries.len().encode(&mut set);
        for entry in &self.entries {
            let mut record = Vec::with_capacity(1 + KEY_ID_LEN + 2 + SIGNATURE_LEN);
            entry.key_id.as_slice().encode(&mut record); // key_id_len ‖ key_id
            record.push(ALG_SECP256K1_SHA256_RECOVERABLE);
            entry.signature.as_slice().encode(&mut record); // signature_len ‖ signature
            record.as_slice().encode(&mut set);
        }
        let mut out = vec![SPEC_VERSION, CONTENT_TYPE_MODULE, HASH_SHA256];
        1u32.encode(&mut out); // signed_hashes_count
        set.as_slice().encode(&mut out);
        out
    }

    /// Parses a section payload strictly: exactly the shapes [`Self::encode`] writes.
    pub fn decode(payload: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader::new(payload);
        r.expect_byte(SPEC_VERSION, "specification version")?;
        r.expect_byte(CONTENT_TYPE_MODULE, "content type")?;
        r.expect_byte(HASH_SHA256, "hash function (only SHA-256 = 0x01)")?;
        r.expect_u32(1, "signed hash set count")?;
        let mut set = Reader::new(r.slice("signed hash set")?);
        r.finish("section payload")?;

        set.expect_u32(1, "hash count (one hash of the whole module)")?;
        let hash = B256::from_slice(set.take(32, "hash")?);
        let count = set.u32("signature count")? as usize;
        if count == 0 || count > MAX_SIGNATURES {
            return Err(malformed(format!(
                "{count} signatures (expected 1 to {MAX_SIGNATURES})"
            )));
        }
        let mut entries = Vec::with_capacity(count);
        for index in 0..count {
            let mut rec = Reader::new(set.slice("signature record")?);
            rec.expect_u32(KEY_ID_LEN as u32, "key id length (20-byte address)")?;
            let key_id = Address::from_slice(rec.take(KEY_ID_LEN, "key id")?);
            rec.expect_byte(ALG_SECP256K1_SHA256_RECOVERABLE, "signature algorithm id")?;
            rec.expect_u32(SIGNATURE_LEN as u32, "signature length")?;
            let mut signature = [0u8; SIGNATURE_LEN];
            signature.copy_from_slice(rec.take(SIGNATURE_LEN, "signature")?);
            if signature[64] > 1 {
                return Err(malformed(format!(
                    "signature #{index} has recovery byte {} (expected 0 or 1)",
                    signature[64]
                )));
            }
            rec.finish("signature record")?;
            entries.push(SignatureEntry { key_id, signature });
        }
        set.finish("signed hash set")?;
        Ok(Self { hash, entries })
    }

    /// Recovers each signer's address, checking it equals the record's key id.
    pub fn recover_signers(&self) -> Result<Vec<Address>, FormatError> {
        let digest = message_digest(&self.hash);
        self.entries
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                recover(&digest, entry).map_err(|reason| FormatError::Signer { index, reason })
            })
            .collect()
    }
}

/// SHA-256 of the signed message `"wasmsig" ‖ spec_version ‖ content_type ‖ hash_fn ‖ hash`.
pub(crate) fn message_digest(hash: &B256) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(SIGNATURE_DOMAIN);
    h.update([SPEC_VERSION, CONTENT_TYPE_MODULE, HASH_SHA256]);
    h.update(hash);
    h.finalize().into()
}

fn recover(digest: &[u8; 32], entry: &SignatureEntry) -> Result<Address, String> {
    let sig = Signature::from_slice(&entry.signature[..64])
        .map_err(|_| "r or s is not a valid secp256k1 scalar".to_string())?;
    if sig.normalize_s().is_some() {
        return Err("high-s signature (not canonical)".into());
    }
    let recid =
        RecoveryId::from_byte(entry.signature[64]).ok_or_else(|| "bad recovery id".to_string())?;
    let key = VerifyingKey::recover_from_prehash(digest, &sig, recid)
        .map_err(|_| "the signature does not recover to any public key".to_string())?;
    let address = Address::from_public_key(&key);
    if address != entry.key_id {
        return Err(format!(
            "recovers to {address}, not to its key id {}",
            entry.key_id
        ));
    }
    Ok(address)
}

fn malformed(what: impl Into<String>) -> FormatError {
    FormatError::SignatureSection(what.into())
}

/// A bounds-checked cursor over a byte slice (a `wasmparser` reader), failing with
/// [`FormatError::SignatureSection`].
struct Reader<'a> {
    inner: BinaryReader<'a>,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            inner: BinaryReader::new(bytes, 0),
        }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], FormatError> {
        if n > self.inner.bytes_remaining() {
            return Err(malformed(format!("truncated {what}")));
        }
        self.inner
            .read_bytes(n)
            .map_err(|_| malformed(format!("truncated {what}")))
    }

    /// An unsigned LEB128 `u32`: at most 5 bytes, no bits past 32.
    fn u32(&mut self, what: &str) -> Result<u32, FormatError> {
        self.inner
            .read_var_u32()
            .map_err(|_| malformed(format!("bad {what}")))
    }

    fn slice(&mut self, what: &str) -> Result<&'a [u8], FormatError> {
        let len = self.u32(what)? as usize;
        self.take(len, what)
    }

    fn expect_byte(&mut self, expected: u8, what: &str) -> Result<(), FormatError> {
        let got = self.take(1, what)?[0];
        if got != expected {
            return Err(malformed(format!(
                "unsupported {what} 0x{got:02x} (expected 0x{expected:02x})"
            )));
        }
        Ok(())
    }

    fn expect_u32(&mut self, expected: u32, what: &str) -> Result<(), FormatError> {
        let got = self.u32(what)?;
        if got != expected {
            return Err(malformed(format!("{what} is {got} (expected {expected})")));
        }
        Ok(())
    }

    fn finish(&self, what: &str) -> Result<(), FormatError> {
        if !self.inner.eof() {
            return Err(malformed(format!(
                "{} unexpected trailing bytes in the {what}",
                self.inner.bytes_remaining()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_recover_round_trip() {
        let a = SigningKey::random(&mut rand::thread_rng());
        let b = SigningKey::random(&mut rand::thread_rng());
        let hash = B256::repeat_byte(7);
        let data = SignatureData::sign(hash, &[&a, &b]).unwrap();
        let decoded = SignatureData::decode(&data.encode()).unwrap();
        assert_eq!(decoded, data);
        let signers = decoded.recover_signers().unwrap();
        assert_eq!(
            signers,
            vec![
                Address::from_public_key(a.verifying_key()),
                Address::from_public_key(b.verifying_key())
            ]
        );
    }

    #[test]
    fn trailing_byte_is_malformed() {
        let a = SigningKey::random(&mut rand::thread_rng());
        let mut bytes = SignatureData::sign(B256::ZERO, &[&a]).unwrap().encode();
        bytes.push(0);
        assert!(matches!(
            SignatureData::decode(&bytes),
            Err(FormatError::SignatureSection(_))
        ));
    }

    #[test]
    fn key_id_must_match_recovered_signer() {
        let a = SigningKey::random(&mut rand::thread_rng());
        let mut data = SignatureData::sign(B256::ZERO, &[&a]).unwrap();
        data.entries[0].key_id = Address::repeat_byte(1);
        assert!(matches!(
            data.recover_signers(),
            Err(FormatError::Signer { index: 0, .. })
        ));
    }
}
