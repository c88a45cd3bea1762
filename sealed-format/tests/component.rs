//! Sealing and opening components: the manifest names the WIT world, the
//! sealed file stays a component, plaintext and encrypted bodies round-trip,
//! and a component without its world (or a module with one) is refused.

mod common;

use common::*;
use sealed_format::{COMPONENT_HEADER, Check, FormatError, WorldSource, open, seal};

fn wit() -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/area.wit",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn component_opts() -> sealed_format::SealOptions {
    let mut o = opts();
    o.component = Some(WorldSource {
        wit: wit(),
        world: None,
    });
    o
}

#[test]
fn a_sealed_component_names_its_world_and_round_trips() {
    let component = fixture("area_component.wat");
    let vendor = key();
    let sealed = seal(&component, &component_opts(), &vendor, &[]).unwrap();
    assert!(
        sealed.starts_with(&COMPONENT_HEADER),
        "a sealed component is a component"
    );
    let opened = open(&sealed).unwrap();
    assert!(opened.is_component());
    let info = opened.manifest.component.as_ref().unwrap();
    assert_eq!(info.world_name(), "acme:calc/calc@1.0.0");
    assert_eq!(info.wit, wit());
    assert_eq!(opened.manifest.entry, ["area"]);
    assert_eq!(opened.plaintext(None).unwrap(), component);
}

#[test]
fn an_encrypted_component_decrypts_for_its_recipient() {
    let component = fixture("area_component.wat");
    let (vendor, customer) = (key(), key());
    let mut o = component_opts();
    o.recipients = vec![customer.verifying_key().into()];
    let sealed = seal(&component, &o, &vendor, &[]).unwrap();
    assert!(sealed.starts_with(&COMPONENT_HEADER));
    let opened = open(&sealed).unwrap();
    assert!(opened.is_component() && opened.is_encrypted());
    assert_eq!(opened.plaintext(Some(&customer)).unwrap(), component);
    let err = opened.plaintext(Some(&key())).unwrap_err();
    assert_eq!(err.check(), Check::NotRecipient);
}

#[test]
fn a_component_needs_its_world_and_a_module_takes_none() {
    let vendor = key();
    let err = seal(&fixture("area_component.wat"), &opts(), &vendor, &[]).unwrap_err();
    assert!(matches!(err, FormatError::Options(_)), "{err}");
    assert!(err.to_string().contains("WIT world"), "{err}");
    let err = seal(&fixture("echo.wat"), &component_opts(), &vendor, &[]).unwrap_err();
    assert!(matches!(err, FormatError::Options(_)), "{err}");
}

#[test]
fn a_component_that_does_not_implement_the_world_is_refused() {
    let mut o = component_opts();
    o.component = Some(WorldSource {
        wit: wit().replace("-> u64", "-> u32"),
        world: Some("calc".into()),
    });
    let err = seal(&fixture("area_component.wat"), &o, &key(), &[]).unwrap_err();
    assert_eq!(err.check(), Check::World, "{err}");
    assert!(err.to_string().contains("`area`"), "{err}");
}

#[test]
fn a_component_header_swapped_for_a_module_header_is_refused() {
    let sealed = seal(
        &fixture("area_component.wat"),
        &component_opts(),
        &key(),
        &[],
    )
    .unwrap();
    let mut swapped = sealed.clone();
    swapped[..8].copy_from_slice(&sealed_format::MODULE_HEADER);
    let err = open(&swapped).unwrap_err();
    assert!(
        matches!(err.check(), Check::Layout | Check::Parse | Check::NotWasm),
        "{err}"
    );
}
