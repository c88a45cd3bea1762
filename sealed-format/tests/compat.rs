//! Byte compatibility: modules sealed by the v1 code as of commit d406540 (hand-written section
//! scanner and LEB128 writer) are committed under `tests/fixtures/v1/` and must keep opening
//! and verifying, with byte for byte the same manifest, hashes and signers; the plaintext
//! ones must still seal to exactly the same bytes.
//!
//! The fixtures were written once by `write_v1_fixtures` (ignored) with that code. Do not
//! regenerate them to make this test pass: a difference here is a format break.

mod common;

use std::path::PathBuf;

use k256::ecdsa::SigningKey;
use sealed_format::{Address, B256, Limits, Metering, SealOptions, open, seal};
use sha2::{Digest, Sha256};

/// Deterministic test keys (never used for anything but these fixtures).
fn test_key(byte: u8) -> SigningKey {
    SigningKey::from_slice(&[byte; 32]).unwrap()
}

const VENDOR: u8 = 0x11;
const PLATFORM: u8 = 0x22;
const AUDITOR: u8 = 0x23;
const ALICE: u8 = 0x33;
const BOB: u8 = 0x44;
const NOT_A_RECIPIENT: u8 = 0x55;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1")
}

struct Case {
    file: &'static str,
    module: &'static str,
    cosigners: &'static [u8],
    recipients: &'static [u8],
}

const CASES: [Case; 3] = [
    Case {
        file: "plain",
        module: "echo.wat",
        cosigners: &[],
        recipients: &[],
    },
    Case {
        file: "encrypted-2-recipients",
        module: "echo.wat",
        cosigners: &[],
        recipients: &[ALICE, BOB],
    },
    Case {
        file: "cosigned",
        module: "two_entries.wat",
        cosigners: &[PLATFORM, AUDITOR],
        recipients: &[],
    },
];

fn options(case: &Case) -> SealOptions {
    let mut o = SealOptions::new("echo", "1.2.3", 31337, Address::repeat_byte(0x42));
    o.metering = Metering::KernelPreferred;
    o.limits = Limits {
        max_memory_pages: Some(16),
        fuel: Some(1_000_000),
        deadline_ms: Some(250),
    };
    o.recipients = case
        .recipients
        .iter()
        .map(|b| test_key(*b).verifying_key().into())
        .collect();
    o
}

fn seal_case(case: &Case) -> Vec<u8> {
    let cosigners: Vec<SigningKey> = case.cosigners.iter().map(|b| test_key(*b)).collect();
    let refs: Vec<&SigningKey> = cosigners.iter().collect();
    seal(
        &common::fixture(case.module),
        &options(case),
        &test_key(VENDOR),
        &refs,
    )
    .unwrap()
}

fn sha256(bytes: &[u8]) -> B256 {
    B256::from(<[u8; 32]>::from(Sha256::digest(bytes)))
}

/// What the v1 code reported for a fixture when it was written.
fn expected(file: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(dir().join(format!("{file}.expected.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
#[ignore = "writes the v1 fixtures; run only with the code that defines them (see the header)"]
fn write_v1_fixtures() {
    std::fs::create_dir_all(dir()).unwrap();
    for case in &CASES {
        let sealed = seal_case(case);
        let opened = open(&sealed).unwrap();
        let plaintext = opened
            .plaintext(case.recipients.first().map(|b| test_key(*b)).as_ref())
            .unwrap();
        let expected = serde_json::json!({
            "sealed_sha256": sha256(&sealed).to_string(),
            "sealed_len": opened.sealed_len,
            "body_len": opened.body_len(),
            "signed_hash": opened.signed_hash.to_string(),
            "signers": opened.signers.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "manifest": String::from_utf8(opened.manifest_bytes.clone()).unwrap(),
            "code_hash": sha256(&plaintext).to_string(),
            "encrypted": opened.is_encrypted(),
        });
        std::fs::write(dir().join(format!("{}.wasm", case.file)), &sealed).unwrap();
        std::fs::write(
            dir().join(format!("{}.expected.json", case.file)),
            serde_json::to_string_pretty(&expected).unwrap() + "\n",
        )
        .unwrap();
    }
}

#[test]
fn v1_fixtures_open_with_the_same_manifest_hashes_and_signers() {
    for case in &CASES {
        let what = case.file;
        let sealed = std::fs::read(dir().join(format!("{what}.wasm"))).unwrap();
        let want = expected(what);
        assert_eq!(
            sha256(&sealed).to_string(),
            want["sealed_sha256"],
            "{what}: fixture file changed"
        );
        let opened = open(&sealed).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(opened.sealed_len, sealed.len(), "{what}");
        assert_eq!(opened.sealed_len, want["sealed_len"], "{what}");
        assert_eq!(opened.body_len(), want["body_len"], "{what}");
        assert_eq!(
            opened.signed_hash.to_string(),
            want["signed_hash"],
            "{what}"
        );
        assert_eq!(
            opened.manifest_bytes,
            want["manifest"].as_str().unwrap().as_bytes(),
            "{what}: manifest bytes"
        );
        assert_eq!(
            opened.manifest.code_hash.to_string(),
            want["code_hash"],
            "{what}"
        );
        assert_eq!(opened.is_encrypted(), want["encrypted"], "{what}");
        let signers: Vec<String> = opened.signers.iter().map(|a| a.to_string()).collect();
        assert_eq!(serde_json::json!(signers), want["signers"], "{what}");
        let mut keys = vec![test_key(VENDOR)];
        keys.extend(case.cosigners.iter().map(|b| test_key(*b)));
        let addresses: Vec<Address> = keys
            .iter()
            .map(|k| Address::from_public_key(k.verifying_key()))
            .collect();
        assert_eq!(opened.signers, addresses, "{what}");

        // The plaintext is the original module, whoever of the recipients decrypts it.
        let module = common::fixture(case.module);
        if case.recipients.is_empty() {
            assert_eq!(opened.plaintext(None).unwrap(), module, "{what}");
        } else {
            for recipient in case.recipients {
                let plain = opened.plaintext(Some(&test_key(*recipient))).unwrap();
                assert_eq!(plain, module, "{what}");
            }
            let err = opened
                .plaintext(Some(&test_key(NOT_A_RECIPIENT)))
                .unwrap_err();
            assert_eq!(err.check(), sealed_format::Check::NotRecipient, "{what}");
        }
        assert_eq!(sha256(&module), opened.manifest.code_hash, "{what}");
    }
}

#[test]
fn plaintext_fixtures_seal_to_the_same_bytes() {
    // ECDSA nonces are RFC 6979 (deterministic): without encryption, sealing is a function of
    // the module, the options and the keys, so the writer must reproduce the v1 bytes exactly.
    for case in CASES.iter().filter(|c| c.recipients.is_empty()) {
        let committed = std::fs::read(dir().join(format!("{}.wasm", case.file))).unwrap();
        assert!(
            seal_case(case) == committed,
            "{}: seal output changed",
            case.file
        );
    }
}

#[test]
fn encrypted_fixture_layout_is_reproduced() {
    // Encryption is randomised; the section framing around it is not.
    let case = &CASES[1];
    let committed = std::fs::read(dir().join(format!("{}.wasm", case.file))).unwrap();
    let fresh = seal_case(case);
    assert_eq!(fresh.len(), committed.len());
    let opened = open(&fresh).unwrap();
    let old = open(&committed).unwrap();
    assert_eq!(opened.body_len(), old.body_len());
    assert_eq!(opened.manifest_bytes.len(), old.manifest_bytes.len());
    assert_eq!(opened.manifest.code_hash, old.manifest.code_hash);
}
