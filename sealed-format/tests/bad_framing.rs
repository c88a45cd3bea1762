//! Broken framing, each refused by the same named check as the hand-written scanner refused it
//! before the scan moved to `wasmparser` (these tests pass unchanged on commit d406540): overlong
//! LEB128, a section size past the end, a custom section name past its section, two
//! `signature` sections, a component header on a module sealed as a core module.

mod common;

use common::{assemble, assemble_signed, custom, fixture, key, leb, opts, split};
use sealed_format::{Check, FormatError, open, seal};

fn check_of<T: std::fmt::Debug>(result: Result<T, FormatError>) -> Check {
    result.expect_err("must be refused").check()
}

fn sealed() -> Vec<u8> {
    seal(&fixture("echo.wat"), &opts(), &key(), &[]).unwrap()
}

/// The signature section of `sealed` as (size field range, payload after the name).
fn signature_size_field(sealed: &[u8]) -> std::ops::Range<usize> {
    let mut end = 9;
    while sealed[end] & 0x80 != 0 {
        end += 1;
    }
    9..end + 1
}

/// `sealed` with the signature section's size field written as `size_field`.
fn with_signature_size(sealed: &[u8], size_field: &[u8]) -> Vec<u8> {
    let field = signature_size_field(sealed);
    let mut out = sealed[..field.start].to_vec();
    out.extend_from_slice(size_field);
    out.extend_from_slice(&sealed[field.end..]);
    out
}

fn signature_size(sealed: &[u8]) -> u32 {
    let parts = split(sealed);
    let field = signature_size_field(sealed);
    (parts.sig_range.end - field.end) as u32
}

#[test]
fn padded_leb128_within_five_bytes_is_still_read() {
    // Padding a LEB128 with 0x80 bytes up to 5 bytes is valid Wasm; the signature section is
    // not hashed, so the module still opens.
    let sealed = sealed();
    let size = signature_size(&sealed);
    let padded = [
        (size & 0x7f) as u8 | 0x80,
        (size >> 7) as u8 & 0x7f | 0x80,
        0x80,
        0x80,
        0x00,
    ];
    let bytes = with_signature_size(&sealed, &padded);
    assert_eq!(bytes.len(), sealed.len() + 3);
    open(&bytes).expect("a padded 5-byte size is valid");
}

#[test]
fn overlong_leb128_is_a_parse_error() {
    let sealed = sealed();
    let size = signature_size(&sealed);
    // Six bytes: one continuation too many.
    let six = [
        (size & 0x7f) as u8 | 0x80,
        (size >> 7) as u8 & 0x7f | 0x80,
        0x80,
        0x80,
        0x80,
        0x00,
    ];
    let err = open(&with_signature_size(&sealed, &six)).unwrap_err();
    assert_eq!(err.check(), Check::Parse, "{err}");
    // Five bytes with bits past 32 set in the last one.
    let excess = [
        (size & 0x7f) as u8 | 0x80,
        (size >> 7) as u8 & 0x7f | 0x80,
        0x80,
        0x80,
        0x10,
    ];
    let err = open(&with_signature_size(&sealed, &excess)).unwrap_err();
    assert_eq!(err.check(), Check::Parse, "{err}");
    // The same in a code section's size (after the manifest: caught before the hash).
    let parts = split(&sealed);
    let mut rest = parts.rest.clone();
    let size_at = 1; // first code section: id, then its size
    assert!(rest[size_at] < 0x80, "a small section");
    rest.splice(
        size_at..size_at + 1,
        [rest[size_at] | 0x80, 0x80, 0x80, 0x80, 0x80, 0x00],
    );
    let mut bytes = sealed[..sealed.len() - parts.rest.len()].to_vec();
    bytes.extend_from_slice(&rest);
    assert_eq!(check_of(open(&bytes)), Check::Parse);
    // Seal refuses such input as not Wasm.
    let mut module = fixture("echo.wat");
    module.splice(9..10, [module[9] | 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]);
    assert_eq!(
        check_of(seal(&module, &opts(), &key(), &[])),
        Check::NotWasm
    );
}

#[test]
fn overlong_leb128_inside_the_signature_payload_is_a_signature_section_error() {
    let sealed = sealed();
    let parts = split(&sealed);
    // Payload after the name: 01 01 01 | signed_hashes_count 01 | ...: write the count in 6.
    let name_end = signature_size_field(&sealed).end + 1 + "signature".len();
    assert_eq!(&sealed[name_end..name_end + 4], [1, 1, 1, 1]);
    let mut payload = sealed[name_end..parts.sig_range.end].to_vec();
    payload.splice(3..4, [0x81, 0x80, 0x80, 0x80, 0x80, 0x00]);
    let mut bytes = b"\0asm\x01\0\0\0".to_vec();
    bytes.extend_from_slice(&custom("signature", &payload));
    bytes.extend_from_slice(&sealed[parts.sig_range.end..]);
    let err = open(&bytes).unwrap_err();
    assert_eq!(err.check(), Check::SignatureSection, "{err}");
}

#[test]
fn section_size_past_the_end_is_a_parse_error() {
    let sealed = sealed();
    // The signature section claims one byte more than the whole file holds.
    let size = signature_size(&sealed) + (sealed.len() as u32);
    let mut field = Vec::new();
    leb(&mut field, size);
    assert_eq!(
        check_of(open(&with_signature_size(&sealed, &field))),
        Check::Parse
    );
    // The largest size a u32 holds.
    let mut field = Vec::new();
    leb(&mut field, u32::MAX);
    assert_eq!(
        check_of(open(&with_signature_size(&sealed, &field))),
        Check::Parse
    );
    // The last section one byte short (a truncated file).
    assert_eq!(check_of(open(&sealed[..sealed.len() - 1])), Check::Parse);
    // Another module appended after the sealed one.
    let mut twice = sealed.clone();
    twice.extend_from_slice(b"\0asm\x01\0\0\0");
    assert_eq!(check_of(open(&twice)), Check::Parse);
}

#[test]
fn custom_section_name_past_its_section_is_a_parse_error() {
    let sealed = sealed();
    // The signature section's name length byte (right after its size) claims more bytes than
    // the section has.
    let name_len_at = signature_size_field(&sealed).end;
    assert_eq!(sealed[name_len_at] as usize, "signature".len());
    let mut bytes = sealed.clone();
    let size = signature_size(&sealed) as usize;
    let mut long = Vec::new();
    leb(&mut long, (size + 1) as u32);
    bytes.splice(name_len_at..name_len_at + 1, long);
    assert_eq!(check_of(open(&bytes)), Check::Parse);
    // A custom section after the manifest whose name runs past it (caught before the hash).
    let mut bytes = sealed.clone();
    bytes.extend_from_slice(&[0x00, 0x03, 0x0a, b'a', b'b']);
    assert_eq!(check_of(open(&bytes)), Check::Parse);
    // A name that is not UTF-8.
    let mut bytes = sealed.clone();
    bytes.extend_from_slice(&[0x00, 0x03, 0x02, 0xff, 0xfe]);
    assert_eq!(check_of(open(&bytes)), Check::Parse);
}

#[test]
fn two_signature_sections_are_refused() {
    let vendor = key();
    let sealed = seal(&fixture("echo.wat"), &opts(), &vendor, &[]).unwrap();
    let parts = split(&sealed);
    let signature = sealed[parts.sig_range.clone()].to_vec();

    // A second signature section appended: not covered by the signed hash.
    let mut appended = sealed.clone();
    appended.extend_from_slice(&signature);
    assert_eq!(check_of(open(&appended)), Check::Hash);

    // Signed over, between the signature and the manifest: the manifest is not second.
    let mut signed = signature.clone();
    signed.extend_from_slice(&custom("sealbox.manifest", &parts.manifest));
    signed.extend_from_slice(&parts.rest);
    let err = open(&assemble_signed(&signed, &[&vendor])).unwrap_err();
    assert_eq!(err.check(), Check::Manifest, "{err}");

    // Signed over, among the plaintext code sections: the layout is refused.
    let mut rest = parts.rest.clone();
    rest.extend_from_slice(&signature);
    let err = open(&assemble(&parts.manifest, &rest, &[&vendor])).unwrap_err();
    assert_eq!(err.check(), Check::Layout, "{err}");
    assert!(err.to_string().contains("`signature`"), "{err}");

    // Seal refuses a module that carries one.
    let mut module = fixture("echo.wat");
    module.extend_from_slice(&signature);
    assert_eq!(
        check_of(seal(&module, &opts(), &vendor, &[])),
        Check::AlreadySealed
    );
}

#[test]
fn component_header_on_a_module_sealed_as_core_is_refused() {
    // The header says component (version 0x0d, layer 1) but the signed manifest names no WIT
    // world: the header is not signed, the manifest is, and they must agree.
    let mut bytes = sealed();
    bytes[4..8].copy_from_slice(&[0x0d, 0x00, 0x01, 0x00]);
    let err = open(&bytes).unwrap_err();
    assert!(matches!(err.check(), Check::Layout | Check::Parse), "{err}");
    // An unknown version or layer too.
    for header in [[0x02, 0, 0, 0], [0x0d, 0, 0x02, 0], [0x01, 0, 0x01, 0]] {
        let mut bytes = sealed();
        bytes[4..8].copy_from_slice(&header);
        assert_eq!(check_of(open(&bytes)), Check::NotWasm, "{header:?}");
    }
    // A component is sealed only against a WIT world (tests/component.rs); an unsealed one
    // does not open.
    let component = b"\0asm\x0d\0\x01\0\0\x05\x01c12\x33".to_vec();
    assert_eq!(
        check_of(seal(&component, &opts(), &key(), &[])),
        Check::Options
    );
    assert_eq!(check_of(open(&component)), Check::SignatureSection);
}
