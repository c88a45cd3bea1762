//! Test-side builder of sealed modules, written from docs/FORMAT.md independently of the
//! library, so tests can produce validly signed modules with chosen defects.

#![allow(dead_code)]

use k256::ecdsa::SigningKey;
use sealed_format::{Address, SealOptions};
use sha2::{Digest, Sha256};

pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    wat::parse_file(path).unwrap()
}

pub fn key() -> SigningKey {
    SigningKey::random(&mut rand::thread_rng())
}

pub fn address(key: &SigningKey) -> Address {
    Address::from_public_key(key.verifying_key())
}

pub fn opts() -> SealOptions {
    SealOptions::new("echo", "1.0.0", 31337, Address::repeat_byte(0x42))
}

pub fn leb(out: &mut Vec<u8>, mut v: u32) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn read_leb(bytes: &[u8], pos: &mut usize) -> usize {
    let (mut v, mut shift) = (0usize, 0);
    loop {
        let b = bytes[*pos];
        *pos += 1;
        v |= ((b & 0x7f) as usize) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return v;
        }
    }
}

pub fn custom(name: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    leb(&mut body, name.len() as u32);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(payload);
    let mut out = vec![0u8];
    leb(&mut out, body.len() as u32);
    out.extend_from_slice(&body);
    out
}

/// A sealed module cut into: the signature section's byte range, the manifest JSON, and
/// everything after the manifest section.
pub struct Parts {
    pub sig_range: std::ops::Range<usize>,
    pub manifest: Vec<u8>,
    pub rest: Vec<u8>,
}

/// Returns (section start, payload start after the name, section end) of the section at `pos`.
fn section_at(bytes: &[u8], pos: usize) -> (usize, usize, usize) {
    let mut p = pos + 1;
    let size = read_leb(bytes, &mut p);
    let end = p + size;
    let name_len = read_leb(bytes, &mut p);
    (pos, p + name_len, end)
}

pub fn split(sealed: &[u8]) -> Parts {
    let (_, _, sig_end) = section_at(sealed, 8);
    let (_, man_payload, man_end) = section_at(sealed, sig_end);
    Parts {
        sig_range: 8..sig_end,
        manifest: sealed[man_payload..man_end].to_vec(),
        rest: sealed[man_end..].to_vec(),
    }
}

/// Builds a sealed module from manifest JSON and code sections, signed by `keys` in order.
pub fn assemble(manifest: &[u8], rest: &[u8], keys: &[&SigningKey]) -> Vec<u8> {
    let mut signed = custom("sealbox.manifest", manifest);
    signed.extend_from_slice(rest);
    assemble_signed(&signed, keys)
}

/// Builds a module of a `signature` section over `signed` (every byte after it), signed by
/// `keys` in order, then `signed`.
pub fn assemble_signed(signed: &[u8], keys: &[&SigningKey]) -> Vec<u8> {
    let hash: [u8; 32] = Sha256::digest(signed).into();
    let mut message = b"wasmsig\x01\x01\x01".to_vec();
    message.extend_from_slice(&hash);
    let digest: [u8; 32] = Sha256::digest(&message).into();

    let mut set = vec![1u8];
    set.extend_from_slice(&hash);
    leb(&mut set, keys.len() as u32);
    for key in keys {
        let (sig, recid) = key.sign_prehash_recoverable(&digest).unwrap();
        let mut record = vec![20u8];
        record.extend_from_slice(address(key).as_slice());
        record.push(0xEC);
        record.push(65);
        record.extend_from_slice(&sig.to_bytes());
        record.push(recid.to_byte());
        leb(&mut set, record.len() as u32);
        set.extend_from_slice(&record);
    }
    let mut payload = vec![1u8, 1, 1, 1];
    leb(&mut payload, set.len() as u32);
    payload.extend_from_slice(&set);

    let mut out = b"\0asm\x01\0\0\0".to_vec();
    out.extend_from_slice(&custom("signature", &payload));
    out.extend_from_slice(signed);
    out
}

/// Re-signs `sealed` with its manifest JSON replaced by `edit(manifest as JSON value)`.
pub fn with_manifest(
    sealed: &[u8],
    keys: &[&SigningKey],
    edit: impl FnOnce(&mut serde_json::Value),
) -> Vec<u8> {
    let parts = split(sealed);
    let mut json: serde_json::Value = serde_json::from_slice(&parts.manifest).unwrap();
    edit(&mut json);
    assemble(&serde_json::to_vec(&json).unwrap(), &parts.rest, keys)
}
