//! The ECIES recipient unwrap and payload decryption (`sealed_format::payload`,
//! reached through the public API: a module signed by the test vendor whose
//! manifest carries the input's `encryption` entry and `code_hash`, and whose
//! payload is the input's ciphertext), opened with each test recipient key.
//!
//! Input layout (what `gen-corpus` writes from real encrypted seals): code
//! hash (32) ‖ nonce (12) ‖ key selector (1) ‖ recipient count (1) ‖ per
//! recipient: pubkey (33) ‖ ephemeral pubkey (33) ‖ wrapped key (48) ‖ the
//! ciphertext. Public keys that are not curve points are not a manifest the
//! schema accepts, so such inputs stop early.
#![no_main]

use k256::PublicKey;
use libfuzzer_sys::fuzz_target;
use sealbox_fuzz::{OTHER_RECIPIENT, RECIPIENT, STRANGER, VENDOR, custom_section, test_key};
use sealed_format::manifest::ENCRYPTION_ALGORITHM;
use sealed_format::{Address, B256, Encryption, Limits, Manifest, Metering, Recipient};

fn parse(data: &[u8]) -> Option<(B256, Encryption, u8, &[u8])> {
    let hash = B256::from_slice(data.get(..32)?);
    let nonce: [u8; 12] = data.get(32..44)?.try_into().ok()?;
    let selector = *data.get(44)?;
    let count = usize::from(*data.get(45)?);
    let mut at = 46;
    let mut recipients = Vec::new();
    for _ in 0..count {
        let r = data.get(at..at + 114)?;
        recipients.push(Recipient {
            pubkey: PublicKey::from_sec1_bytes(&r[..33]).ok()?,
            ephemeral_pubkey: PublicKey::from_sec1_bytes(&r[33..66]).ok()?,
            wrapped_key: r[66..114].try_into().ok()?,
        });
        at += 114;
    }
    let encryption = Encryption {
        algorithm: ENCRYPTION_ALGORITHM.to_string(),
        nonce,
        recipients,
    };
    Some((hash, encryption, selector, &data[at..]))
}

fuzz_target!(|data: &[u8]| {
    let Some((code_hash, encryption, selector, ciphertext)) = parse(data) else {
        return;
    };
    let vendor_key = test_key(VENDOR);
    let vendor = Address::from_public_key(vendor_key.verifying_key());
    let name = "fuzz";
    let manifest = Manifest {
        format: 1,
        product_id: sealed_format::product_id(vendor, name),
        name: name.into(),
        version: "1.0.0".into(),
        vendor,
        vendor_pubkey: PublicKey::from(vendor_key.verifying_key()),
        code_hash,
        chain_id: 31337,
        registry: Address::repeat_byte(0x11),
        unit: "call".into(),
        metering: Metering::KernelPreferred,
        limits: Limits::default(),
        entry: vec!["run".into()],
        component: None,
        encryption: Some(encryption),
    };
    let Ok(json) = manifest.to_json() else { return };
    let mut body = custom_section("sealbox.manifest", &json);
    body.extend_from_slice(&custom_section("sealbox.payload", ciphertext));
    let mut unsigned = sealbox_fuzz::HEADER.to_vec();
    unsigned.extend_from_slice(&body);
    let sealed = sealbox_fuzz::resign(&unsigned, std::slice::from_ref(vendor_key));
    // A manifest the schema refuses (no recipient, a recipient twice) stops here.
    let Ok(opened) = sealed_format::open(&sealed) else {
        return;
    };
    let key = [RECIPIENT, OTHER_RECIPIENT, STRANGER][usize::from(selector) % 3];
    if let Ok(module) = opened.plaintext(Some(test_key(key))) {
        use sha2::Digest;
        assert_eq!(B256::from_slice(&sha2::Sha256::digest(&module)), code_hash);
        assert_ne!(key, STRANGER, "a key that is no recipient decrypted");
    }
});
