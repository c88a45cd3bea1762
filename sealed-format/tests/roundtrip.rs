//! Sealing then opening: plaintext, encrypted for two recipients, co-signed.

mod common;

use common::{address, assemble, custom, fixture, key, opts, split};
use k256::PublicKey;
use sealed_format::{Address, B256, Check, Limits, Metering, open, product_id, seal};
use sha2::{Digest, Sha256};

fn sha256(bytes: &[u8]) -> B256 {
    B256::from(<[u8; 32]>::from(Sha256::digest(bytes)))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

const MARKER: &[u8] = b"SEALBOX-FIXTURE-MARKER";

#[test]
fn plain_round_trip_keeps_module_and_fills_manifest() {
    let module = fixture("echo.wat");
    let vendor = key();
    let mut o = opts();
    o.unit = "tls_handshake".into();
    o.metering = Metering::KernelPreferred;
    o.limits = Limits {
        max_memory_pages: Some(16),
        fuel: Some(1_000_000),
        deadline_ms: None,
    };
    let sealed = seal(&module, &o, &vendor, &[]).unwrap();
    wasmparser::Validator::new()
        .validate_all(&sealed)
        .expect("sealed output is valid Wasm");

    let opened = open(&sealed).unwrap();
    let m = &opened.manifest;
    assert_eq!(m.format, 1);
    assert_eq!(m.name, "echo");
    assert_eq!(m.version, "1.0.0");
    assert_eq!(m.vendor, address(&vendor));
    assert_eq!(m.vendor_pubkey, PublicKey::from(vendor.verifying_key()));
    assert_eq!(m.product_id, product_id(address(&vendor), "echo"));
    assert_eq!(m.code_hash, sha256(&module));
    assert_eq!(m.chain_id, 31337);
    assert_eq!(m.registry, Address::repeat_byte(0x42));
    assert_eq!(m.unit, "tls_handshake");
    assert_eq!(m.metering, Metering::KernelPreferred);
    assert_eq!(m.limits, o.limits);
    assert_eq!(
        m.entry,
        vec!["echo".to_string()],
        "only (i32,i32)->i64 exports are entries"
    );
    assert!(m.encryption.is_none());
    assert_eq!(opened.signers, vec![address(&vendor)]);
    assert!(opened.cosigners().is_empty());
    assert!(!opened.is_encrypted());
    assert_eq!(opened.sealed_len, sealed.len());
    assert_eq!(opened.body_len(), module.len() - 8);
    assert!(
        contains(&sealed, MARKER),
        "plaintext sealing keeps the code readable"
    );
    assert_eq!(opened.plaintext(None).unwrap(), module);
    assert_eq!(
        opened.plaintext(Some(&key())).unwrap(),
        module,
        "key ignored when plain"
    );

    let json: serde_json::Value = serde_json::from_slice(&opened.manifest_bytes).unwrap();
    assert_eq!(json["metering"], "kernel-preferred");
    assert_eq!(json["encryption"], serde_json::Value::Null);
    assert_eq!(
        json["limits"],
        serde_json::json!({"max_memory_pages": 16, "fuel": 1000000})
    );
    assert_eq!(
        json["vendor"],
        format!("0x{}", hex::encode(address(&vendor)))
    );
}

#[test]
fn encrypted_for_two_recipients_each_decrypts_others_cannot() {
    let module = fixture("echo.wat");
    let vendor = key();
    let (alice, bob, mallory) = (key(), key(), key());
    let mut o = opts();
    o.recipients = vec![alice.verifying_key().into(), bob.verifying_key().into()];
    let sealed = seal(&module, &o, &vendor, &[]).unwrap();
    wasmparser::Validator::new()
        .validate_all(&sealed)
        .expect("sealed output is valid Wasm");
    assert!(
        !contains(&sealed, MARKER),
        "encrypted module leaks plaintext"
    );

    let opened = open(&sealed).unwrap();
    assert!(opened.is_encrypted());
    assert_eq!(
        opened.body_len(),
        module.len() + 16,
        "ciphertext = plaintext + GCM tag"
    );
    let enc = opened.manifest.encryption.as_ref().unwrap();
    assert_eq!(enc.recipients.len(), 2);
    assert_eq!(enc.recipients[0].address(), address(&alice));
    assert_eq!(enc.recipients[1].address(), address(&bob));
    assert_ne!(
        enc.recipients[0].ephemeral_pubkey,
        enc.recipients[1].ephemeral_pubkey
    );

    assert_eq!(opened.plaintext(Some(&alice)).unwrap(), module);
    assert_eq!(opened.plaintext(Some(&bob)).unwrap(), module);
    let err = opened.plaintext(Some(&mallory)).unwrap_err();
    assert_eq!(err.check(), Check::NotRecipient, "{err}");
    assert!(err.to_string().contains(&address(&mallory).to_string()));
    let err = opened.plaintext(None).unwrap_err();
    assert_eq!(err.check(), Check::NotRecipient, "{err}");
}

#[test]
fn two_seals_of_one_module_differ_only_where_randomness_is_used() {
    let module = fixture("echo.wat");
    let vendor = key();
    let mut o = opts();
    o.recipients = vec![key().verifying_key().into()];
    let (sealed_a, sealed_b) = (
        seal(&module, &o, &vendor, &[]).unwrap(),
        seal(&module, &o, &vendor, &[]).unwrap(),
    );
    let (a, b) = (open(&sealed_a).unwrap(), open(&sealed_b).unwrap());
    assert_eq!(a.manifest.code_hash, b.manifest.code_hash);
    let (ea, eb) = (
        a.manifest.encryption.unwrap(),
        b.manifest.encryption.unwrap(),
    );
    assert_ne!(ea.nonce, eb.nonce);
    assert_ne!(ea.recipients[0].wrapped_key, eb.recipients[0].wrapped_key);
}

#[test]
fn cosignature_shows_two_signers() {
    let module = fixture("echo.wat");
    let (vendor, platform) = (key(), key());
    let sealed = seal(&module, &opts(), &vendor, &[&platform]).unwrap();
    let opened = open(&sealed).unwrap();
    assert_eq!(opened.signers, vec![address(&vendor), address(&platform)]);
    assert_eq!(opened.cosigners(), vec![address(&platform)]);
    assert_eq!(opened.vendor(), address(&vendor));
}

#[test]
fn entries_detected_across_imports_or_given() {
    let module = fixture("two_entries.wat");
    let vendor = key();
    let sealed = seal(&module, &opts(), &vendor, &[]).unwrap();
    let opened = open(&sealed).unwrap();
    assert_eq!(opened.manifest.entry, vec!["score", "rank"]);

    let mut o = opts();
    o.entry = Some(vec!["rank".into()]);
    let sealed = seal(&module, &o, &vendor, &[]).unwrap();
    let opened = open(&sealed).unwrap();
    assert_eq!(opened.manifest.entry, vec!["rank"]);
}

#[test]
fn product_id_matches_solidity_abi_encode() {
    // Expected values from Foundry: cast keccak $(cast abi-encode "f(address,string)" A N)
    let cases = [
        (
            "0x1111111111111111111111111111111111111111",
            "demo-algorithm",
            "0x15027a4157b4b6b7ce7deed8e87d239d439b84cb6a747782c7be824fa12a2db0",
        ),
        (
            "0x00000000000000000000000000000000DeaDBeef",
            "a name that is longer than thirty-two bytes, for padding",
            "0xcb28e6e021b59839d966143780624a00d314c31d4e7095e0d7bd2434bb360bb8",
        ),
        (
            "0x1111111111111111111111111111111111111111",
            "",
            "0x611cd04f21bc10cb4bc1fa0562aa04d3539d90fb56e9f4d75c06178dc192a614",
        ),
    ];
    for (vendor, name, expected) in cases {
        let vendor: Address = vendor.parse().unwrap();
        assert_eq!(product_id(vendor, name).to_string(), expected, "{name}");
        // And alloy-sol-types' encoder agrees.
        use alloy_sol_types::SolValue;
        let enc = (vendor, name.to_string()).abi_encode_params();
        assert_eq!(product_id(vendor, name), alloy_primitives_keccak(&enc));
    }
}

fn alloy_primitives_keccak(bytes: &[u8]) -> B256 {
    use sha3::{Digest as _, Keccak256};
    B256::from(<[u8; 32]>::from(Keccak256::digest(bytes)))
}

#[test]
fn exit_codes_are_distinct_and_above_usage_codes() {
    let mut codes: Vec<u8> = Check::ALL.iter().map(|c| c.exit_code()).collect();
    assert!(codes.iter().all(|&c| c >= 10));
    codes.sort();
    codes.dedup();
    assert_eq!(codes.len(), Check::ALL.len());
}

/// Code of 1 MiB and more is hashed on two threads (signed hash and code hash at once, and at
/// seal the code hash while the module is validated): the same hashes, the same refusals.
#[test]
fn large_modules_hash_on_two_threads_with_the_same_results() {
    let vendor = key();
    let mut module = fixture("echo.wat");
    // A 2 MiB custom section: still the same valid module to wasmparser.
    let pad: Vec<u8> = (0..2 << 20).map(|i: u32| (i * 31 + 7) as u8).collect();
    module.extend_from_slice(&custom("e2e.pad", &pad));
    let sealed = seal(&module, &opts(), &vendor, &[]).unwrap();
    let opened = open(&sealed).unwrap();
    assert_eq!(opened.manifest.code_hash, sha256(&module));
    assert_eq!(
        opened.plaintext(None).unwrap().as_slice(),
        module.as_slice()
    );

    // One byte of the pad altered: the signature no longer holds…
    let mut flipped = sealed.clone();
    let at = flipped.len() - 1000;
    flipped[at] ^= 1;
    assert_eq!(open(&flipped).unwrap_err().check(), Check::Hash);
    // …and re-signed over the altered code, the code hash does not.
    let parts = split(&sealed);
    let mut rest = parts.rest.clone();
    let at = rest.len() - 1000;
    rest[at] ^= 1;
    let tampered = assemble(&parts.manifest, &rest, &[&vendor]);
    let err = open(&tampered).unwrap().plaintext(None).unwrap_err();
    assert_eq!(err.check(), Check::CodeHash, "{err}");
}

#[test]
fn a_prepared_module_signs_into_a_head_of_the_announced_length() {
    let module = fixture("echo.wat");
    let recipient = key();
    for (signers, recipients) in [(1, vec![]), (3, vec![]), (16, vec![recipient.clone()])] {
        let keys: Vec<_> = (0..signers).map(|_| key()).collect();
        let cosigners: Vec<_> = keys[1..].iter().collect();
        let mut options = opts();
        options.recipients = recipients
            .iter()
            .map(|k| PublicKey::from(k.verifying_key()))
            .collect();
        let (unsigned, placed) =
            sealed_format::prepare_with(&module, &options, &keys[0], &cosigners, |p| {
                (p.offset, p.code.to_vec())
            })
            .unwrap();
        let head = unsigned.sign().unwrap();
        assert_eq!(head.len(), unsigned.head_len(), "{signers} signers");
        let mut sealed = head;
        unsigned
            .signed_parts()
            .iter()
            .for_each(|part| sealed.extend_from_slice(part));
        assert_eq!(sealed.len(), unsigned.sealed_len());
        if recipients.is_empty() {
            // Deterministic signatures (RFC 6979), no encryption: exactly what `seal` writes.
            assert_eq!(
                sealed,
                seal(&module, &options, &keys[0], &cosigners).unwrap()
            );
        }
        match placed {
            // The placement announced before the code hash is where the code ends up.
            Some((offset, code)) => {
                assert!(recipients.is_empty());
                assert_eq!(&sealed[offset..], code.as_slice());
                assert_eq!(code, module[8..]);
            }
            None => assert!(!recipients.is_empty(), "a plaintext seal is placed"),
        }
        let opened = open(&sealed).unwrap();
        assert_eq!(opened.signers.len(), signers);
        assert_eq!(opened.signers[0], address(&keys[0]));
        assert_eq!(opened.plaintext(recipients.first()).unwrap(), module);
    }
}

#[test]
fn signing_stored_bytes_refuses_code_that_changed_after_it_was_hashed() {
    let module = fixture("echo.wat");
    let vendor = key();
    let unsigned = sealed_format::prepare(&module, &opts(), &vendor, &[]).unwrap();
    let stored: Vec<u8> = unsigned.signed_parts().concat();

    // As stored: signs, and the result opens.
    let mut sealed = unsigned.sign_stored(&stored).unwrap();
    sealed.extend_from_slice(&stored);
    assert_eq!(open(&sealed).unwrap().signers, vec![address(&vendor)]);

    // The plaintext rewritten after `prepare` hashed it: the code no longer has its hash.
    let mut changed = stored.clone();
    *changed.last_mut().unwrap() ^= 1;
    let err = unsigned.sign_stored(&changed).unwrap_err();
    assert_eq!(err.check(), Check::CodeHash, "{err}");

    // Not the length of the parts: a short or long write.
    let err = unsigned.sign_stored(&stored[1..]).unwrap_err();
    assert_eq!(err.check(), Check::Layout, "{err}");

    // A manifest that is not the one prepared (a byte of its JSON changed).
    let mut manifest_changed = stored.clone();
    manifest_changed[unsigned.signed_parts()[0].len() / 2] ^= 1;
    let err = unsigned.sign_stored(&manifest_changed).unwrap_err();
    assert_eq!(err.check(), Check::Layout, "{err}");

    // Encrypted: the stored ciphertext must be the one written.
    let recipient = key();
    let mut options = opts();
    options.recipients = vec![PublicKey::from(recipient.verifying_key())];
    let unsigned = sealed_format::prepare(&module, &options, &vendor, &[]).unwrap();
    let mut stored: Vec<u8> = unsigned.signed_parts().concat();
    assert!(unsigned.sign_stored(&stored).is_ok());
    *stored.last_mut().unwrap() ^= 1;
    let err = unsigned.sign_stored(&stored).unwrap_err();
    assert_eq!(err.check(), Check::Layout, "{err}");
}
