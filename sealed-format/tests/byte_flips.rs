//! Every single-byte change of a small sealed module is refused, by the check that owns the
//! region the byte is in.

mod common;

use common::{fixture, key, opts};
use sealed_format::{Check, open, seal};

/// Byte regions of a sealed module and the checks allowed to catch a change inside them.
fn expected_checks(sealed: &[u8], signed_hash: &[u8], pos: usize) -> &'static [Check] {
    // Section id at 8, then the LEB128 size, then the name (length byte + "signature").
    let (mut sig_size, mut size_len) = (0usize, 0usize);
    while {
        let b = sealed[9 + size_len];
        sig_size |= usize::from(b & 0x7f) << (7 * size_len);
        size_len += 1;
        b & 0x80 != 0
    } {}
    let sig_end = 9 + size_len + sig_size;
    let sig_payload_start = 9 + size_len + 1 + "signature".len();
    let hash_start = sealed[..sig_end]
        .windows(32)
        .position(|w| w == signed_hash)
        .expect("hash inside the signature section");
    match pos {
        p if p < 8 => &[Check::NotWasm],
        p if p < sig_payload_start => &[Check::Parse, Check::SignatureSection],
        p if p < hash_start => &[Check::SignatureSection],
        p if p < hash_start + 32 => &[Check::Hash],
        p if p < sig_end => &[Check::SignatureSection, Check::Signer],
        _ => &[Check::Parse, Check::Hash],
    }
}

fn flip_every_byte(sealed: &[u8]) {
    let signed_hash = open(sealed).unwrap().signed_hash;
    let mut failures = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for pos in 0..sealed.len() {
        for mask in [0x01u8, 0x80] {
            let mut bad = sealed.to_vec();
            bad[pos] ^= mask;
            let expected = expected_checks(sealed, signed_hash.as_slice(), pos);
            match open(&bad) {
                Ok(_) => failures.push(format!("byte {pos} ^ {mask:#04x}: accepted")),
                Err(e) if !expected.contains(&e.check()) => failures.push(format!(
                    "byte {pos} ^ {mask:#04x}: {} (expected one of {expected:?}): {e}",
                    e.check()
                )),
                Err(e) => {
                    seen.insert(e.check());
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Each region's own check really fires (the regions above are not vacuous).
    for check in [
        Check::NotWasm,
        Check::Parse,
        Check::SignatureSection,
        Check::Hash,
        Check::Signer,
    ] {
        assert!(
            seen.contains(&check),
            "no flip was caught by {check}: {seen:?}"
        );
    }
}

#[test]
fn every_byte_flip_of_a_plain_module_is_refused() {
    let sealed = seal(&fixture("echo.wat"), &opts(), &key(), &[]).unwrap();
    flip_every_byte(&sealed);
}

#[test]
fn every_byte_flip_of_an_encrypted_cosigned_module_is_refused() {
    let mut o = opts();
    o.recipients = vec![key().verifying_key().into()];
    let sealed = seal(&fixture("echo.wat"), &o, &key(), &[&key()]).unwrap();
    flip_every_byte(&sealed);
}
