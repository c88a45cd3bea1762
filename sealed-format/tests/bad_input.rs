//! Refusals: not Wasm, truncated, already sealed, appended sections, wrong signer, bad options,
//! and validly signed modules with defects only a later check can see.

mod common;

use common::{address, assemble, custom, fixture, key, opts, split, with_manifest};
use sealed_format::{Address, Check, FormatError, open, seal};

fn check_of<T: std::fmt::Debug>(result: Result<T, FormatError>) -> Check {
    result.expect_err("must be refused").check()
}

#[test]
fn not_wasm_is_refused_by_seal_and_open() {
    let vendor = key();
    let cases: [(&str, Vec<u8>); 4] = [
        ("empty", vec![]),
        ("text", b"hello, this is not wasm".to_vec()),
        ("short magic", b"\0as".to_vec()),
        ("elf", b"\x7fELF\x02\x01\x01\0\0\0\0\0".to_vec()),
    ];
    for (what, bytes) in cases {
        assert_eq!(
            check_of(seal(&bytes, &opts(), &vendor, &[])),
            Check::NotWasm,
            "{what}"
        );
        assert_eq!(check_of(open(&bytes)), Check::NotWasm, "{what}");
    }
    // An (empty) component is Wasm: seal wants its WIT world, open its signature.
    let component = b"\0asm\x0d\0\x01\0".to_vec();
    assert_eq!(
        check_of(seal(&component, &opts(), &vendor, &[])),
        Check::Options
    );
    assert_eq!(check_of(open(&component)), Check::SignatureSection);
}

#[test]
fn invalid_module_bodies_are_not_wasm_for_seal() {
    let vendor = key();
    // Well-framed but invalid: a function section declaring a function with no code section.
    let bad = b"\0asm\x01\0\0\0\x01\x04\x01\x60\0\0\x03\x02\x01\0".to_vec();
    let err = seal(&bad, &opts(), &vendor, &[]).unwrap_err();
    assert_eq!(err.check(), Check::NotWasm, "{err}");
    // A section running past the end of the file.
    let mut cut = fixture("echo.wat");
    cut.truncate(cut.len() - 3);
    assert_eq!(check_of(seal(&cut, &opts(), &vendor, &[])), Check::NotWasm);
}

#[test]
fn every_truncation_is_refused() {
    let sealed = seal(&fixture("echo.wat"), &opts(), &key(), &[]).unwrap();
    for len in 0..sealed.len() {
        let check = check_of(open(&sealed[..len]));
        let expected: &[Check] = if len < 8 {
            &[Check::NotWasm]
        } else if len == 8 {
            &[Check::SignatureSection]
        } else {
            &[Check::Parse, Check::Hash]
        };
        assert!(expected.contains(&check), "truncated to {len}: {check}");
    }
}

#[test]
fn unsealed_module_has_no_signature_section() {
    let err = open(&fixture("echo.wat")).unwrap_err();
    assert_eq!(err.check(), Check::SignatureSection, "{err}");
    assert!(err.to_string().contains("not a sealed module"), "{err}");
}

#[test]
fn sealing_a_sealed_module_is_refused() {
    let vendor = key();
    let sealed = seal(&fixture("echo.wat"), &opts(), &vendor, &[]).unwrap();
    let err = seal(&sealed, &opts(), &vendor, &[]).unwrap_err();
    assert_eq!(err.check(), Check::AlreadySealed, "{err}");
    // A module carrying any sealbox.* section is refused too, wherever it sits.
    let mut tagged = fixture("echo.wat");
    tagged.extend_from_slice(&custom("sealbox.payload", b"x"));
    assert_eq!(
        check_of(seal(&tagged, &opts(), &vendor, &[])),
        Check::AlreadySealed
    );
}

#[test]
fn section_appended_after_sealing_breaks_the_hash() {
    for recipients in [vec![], vec![key().verifying_key().into()]] {
        let mut o = opts();
        o.recipients = recipients;
        let mut sealed = seal(&fixture("echo.wat"), &o, &key(), &[]).unwrap();
        sealed.extend_from_slice(&custom("name", b"\0\x04evil"));
        let err = open(&sealed).unwrap_err();
        assert_eq!(err.check(), Check::Hash, "{err}");
    }
}

#[test]
fn module_signed_by_someone_else_is_a_vendor_mismatch() {
    let (vendor, other) = (key(), key());
    let sealed = seal(&fixture("echo.wat"), &opts(), &vendor, &[]).unwrap();
    let parts = split(&sealed);
    // Same manifest (naming `vendor`), signed only by `other`.
    let forged = assemble(&parts.manifest, &parts.rest, &[&other]);
    let err = open(&forged).unwrap_err();
    assert_eq!(err.check(), Check::VendorMismatch, "{err}");
    let FormatError::VendorMismatch { vendor: v, signers } = err else {
        unreachable!()
    };
    assert_eq!(v, address(&vendor));
    assert_eq!(signers, vec![address(&other)]);

    // The test-side builder is faithful: the vendor's own signature opens.
    assert!(open(&assemble(&parts.manifest, &parts.rest, &[&vendor])).is_ok());
    // The vendor may sign after a co-signer: any signer position counts.
    let both = assemble(&parts.manifest, &parts.rest, &[&other, &vendor]);
    let opened = open(&both).unwrap();
    assert_eq!(opened.cosigners(), vec![address(&other)]);
    // The same signer twice is refused.
    let err = open(&assemble(&parts.manifest, &parts.rest, &[&vendor, &vendor])).unwrap_err();
    assert_eq!(err.check(), Check::Signer, "{err}");
}

#[test]
fn schema_violations_in_a_validly_signed_manifest() {
    let vendor = key();
    let sealed = seal(&fixture("echo.wat"), &opts(), &vendor, &[]).unwrap();
    let other = key();
    let other_pub = format!(
        "0x{}",
        hex::encode(k256::PublicKey::from(other.verifying_key()).to_sec1_bytes())
    );
    type Edit = Box<dyn FnOnce(&mut serde_json::Value)>;
    let cases: Vec<(&str, &str, Edit)> = vec![
        (
            "format 2",
            "unsupported format 2",
            Box::new(|m| m["format"] = 2.into()),
        ),
        (
            "format string",
            "unsupported format",
            Box::new(|m| m["format"] = "1".into()),
        ),
        (
            "unknown field",
            "unknown field",
            Box::new(|m| m["extra"] = true.into()),
        ),
        (
            "missing entry",
            "missing field",
            Box::new(|m| {
                m.as_object_mut().unwrap().remove("entry");
            }),
        ),
        (
            "missing encryption",
            "missing field",
            Box::new(|m| {
                m.as_object_mut().unwrap().remove("encryption");
            }),
        ),
        (
            "product id",
            "product_id",
            Box::new(|m| m["product_id"] = format!("0x{}", "ab".repeat(32)).into()),
        ),
        (
            "uppercase registry",
            "lowercase",
            Box::new(|m| m["registry"] = format!("0x{}", "AB".repeat(20)).into()),
        ),
        (
            "short code hash",
            "hex digits",
            Box::new(|m| m["code_hash"] = "0x1234".into()),
        ),
        (
            "pubkey of another key",
            "vendor_pubkey",
            Box::new(move |m| m["vendor_pubkey"] = other_pub.into()),
        ),
        ("unit", "unit", Box::new(|m| m["unit"] = "Bad Unit".into())),
        (
            "metering",
            "unknown variant",
            Box::new(|m| m["metering"] = "none".into()),
        ),
        (
            "zero pages",
            "max_memory_pages",
            Box::new(|m| m["limits"] = serde_json::json!({"max_memory_pages": 0})),
        ),
        (
            "chain 0",
            "chain_id",
            Box::new(|m| m["chain_id"] = 0.into()),
        ),
        (
            "duplicate entry",
            "twice",
            Box::new(|m| m["entry"] = serde_json::json!(["echo", "echo"])),
        ),
        (
            "name spaces",
            "whitespace",
            Box::new(|m| m["name"] = " echo".into()),
        ),
    ];
    for (what, needle, edit) in cases {
        let bad = with_manifest(&sealed, &[&vendor], edit);
        let err = open(&bad).unwrap_err();
        assert_eq!(err.check(), Check::Manifest, "{what}: {err}");
        assert!(err.to_string().contains(needle), "{what}: {err}");
    }
}

#[test]
fn duplicate_json_keys_are_refused() {
    let vendor = key();
    let sealed = seal(&fixture("echo.wat"), &opts(), &vendor, &[]).unwrap();
    let parts = split(&sealed);
    let text = String::from_utf8(parts.manifest.clone()).unwrap();
    let dup = text.replacen(
        "\"name\":\"echo\"",
        "\"name\":\"echo\",\"name\":\"other\"",
        1,
    );
    assert_ne!(dup, text);
    let err = open(&assemble(dup.as_bytes(), &parts.rest, &[&vendor])).unwrap_err();
    assert_eq!(err.check(), Check::Manifest, "{err}");
    assert!(err.to_string().contains("duplicate"), "{err}");
}

#[test]
fn vendor_field_that_is_not_an_address_is_a_manifest_error() {
    let vendor = key();
    let sealed = seal(&fixture("echo.wat"), &opts(), &vendor, &[]).unwrap();
    let bad = with_manifest(&sealed, &[&vendor], |m| m["vendor"] = "vendor".into());
    assert_eq!(check_of(open(&bad)), Check::Manifest);
}

#[test]
fn layout_must_match_encryption() {
    let vendor = key();
    let plain = seal(&fixture("echo.wat"), &opts(), &vendor, &[]).unwrap();
    let mut o = opts();
    o.recipients = vec![key().verifying_key().into()];
    let encrypted = seal(&fixture("echo.wat"), &o, &vendor, &[]).unwrap();
    let (p, e) = (split(&plain), split(&encrypted));

    // Encrypted manifest over plaintext code sections.
    let err = open(&assemble(&e.manifest, &p.rest, &[&vendor])).unwrap_err();
    assert_eq!(err.check(), Check::Layout, "{err}");
    // Encrypted manifest with a second section after the payload.
    let mut rest = e.rest.clone();
    rest.extend_from_slice(&custom("producers", b"\0"));
    assert_eq!(
        check_of(open(&assemble(&e.manifest, &rest, &[&vendor]))),
        Check::Layout
    );
    // Plaintext manifest followed by a payload section.
    let err = open(&assemble(&p.manifest, &e.rest, &[&vendor])).unwrap_err();
    assert_eq!(err.check(), Check::Layout, "{err}");
}

#[test]
fn decrypt_and_code_hash_failures_after_a_valid_signature() {
    let vendor = key();
    let alice = key();
    let mut o = opts();
    o.recipients = vec![alice.verifying_key().into()];
    let encrypted = seal(&fixture("echo.wat"), &o, &vendor, &[]).unwrap();

    // Wrapped key altered (and re-signed): the key unwrap fails authentication.
    let bad = with_manifest(&encrypted, &[&vendor], |m| {
        let w = m["encryption"]["recipients"][0]["wrapped_key"]
            .as_str()
            .unwrap()
            .to_string();
        let flipped = if w.ends_with('0') { "1" } else { "0" };
        m["encryption"]["recipients"][0]["wrapped_key"] =
            format!("{}{flipped}", &w[..w.len() - 1]).into();
    });
    let err = open(&bad).unwrap().plaintext(Some(&alice)).unwrap_err();
    assert_eq!(err.check(), Check::Decrypt, "{err}");

    // Payload altered (and re-signed): the payload fails authentication.
    let parts = split(&encrypted);
    let mut rest = parts.rest.clone();
    let last = rest.len() - 1;
    rest[last] ^= 1;
    let err = open(&assemble(&parts.manifest, &rest, &[&vendor]))
        .unwrap()
        .plaintext(Some(&alice))
        .unwrap_err();
    assert_eq!(err.check(), Check::Decrypt, "{err}");

    // Plaintext code altered (and re-signed): the code hash no longer matches.
    let plain = seal(&fixture("echo.wat"), &opts(), &vendor, &[]).unwrap();
    let parts = split(&plain);
    let mut rest = parts.rest.clone();
    let marker = rest.windows(7).position(|w| w == b"SEALBOX").unwrap();
    rest[marker] = b'X';
    let tampered = assemble(&parts.manifest, &rest, &[&vendor]);
    let opened = open(&tampered).unwrap();
    let err = opened.plaintext(None).unwrap_err();
    assert_eq!(err.check(), Check::CodeHash, "{err}");
}

#[test]
fn bad_seal_options_are_refused() {
    let module = fixture("echo.wat");
    let (vendor, co) = (key(), key());
    type Edit = fn(&mut sealed_format::SealOptions);
    let cases: [(&str, Edit); 6] = [
        ("empty name", |o| o.name.clear()),
        ("version with space", |o| o.version = "1 0".into()),
        ("chain 0", |o| o.chain_id = 0),
        ("zero registry", |o| o.registry = Address::ZERO),
        ("entry not exported", |o| {
            o.entry = Some(vec!["missing".into()])
        }),
        ("unit", |o| o.unit = "per-call!".into()),
    ];
    for (what, edit) in cases {
        let mut o = opts();
        edit(&mut o);
        assert_eq!(
            check_of(seal(&module, &o, &vendor, &[])),
            Check::Options,
            "{what}"
        );
    }
    assert_eq!(
        check_of(seal(&module, &opts(), &vendor, &[&vendor])),
        Check::Options
    );
    assert_eq!(
        check_of(seal(&module, &opts(), &vendor, &[&co, &co])),
        Check::Options
    );
}

/// Found by the `differential` fuzz target (tests/fuzz): a vendor signature over code that is
/// not Wasm opened, and `plaintext` handed it out with a matching code hash; the runtime only
/// failed later, when compiling it. `plaintext` now refuses it.
#[test]
fn plaintext_refuses_code_that_is_not_wasm() {
    use sha2::{Digest, Sha256};
    let vendor = key();
    let plain = seal(&fixture("echo.wat"), &opts(), &vendor, &[]).unwrap();
    let parts = split(&plain);
    let resealed = |rest: &[u8], entry: Option<serde_json::Value>| {
        let mut module = b"\0asm\x01\0\0\0".to_vec();
        module.extend_from_slice(rest);
        let hash = format!("0x{}", hex::encode(Sha256::digest(&module)));
        let mut json: serde_json::Value = serde_json::from_slice(&parts.manifest).unwrap();
        json["code_hash"] = hash.into();
        if let Some(entry) = entry {
            json["entry"] = entry;
        }
        assemble(&serde_json::to_vec(&json).unwrap(), rest, &[&vendor])
    };

    // A type section cut short: framed, hashed and signed, but not Wasm.
    let junk = resealed(b"\x01\x01\x60", None);
    let err = open(&junk).unwrap().plaintext(None).unwrap_err();
    assert_eq!(err.check(), Check::NotWasm, "{err}");

    // Valid Wasm whose manifest lists an entry the module does not export: the runtime
    // refuses it when it compiles the module (tests/tests/all/guest_faults.rs), not here.
    let missing = resealed(&parts.rest, Some(serde_json::json!(["missing"])));
    open(&missing).unwrap().plaintext(None).unwrap();

    // The original still opens.
    open(&plain).unwrap().plaintext(None).unwrap();
}
