//! `seal` refuses, naming the fix, a module whose exports break the invocation ABI v1 for the
//! entries it would list: the runtime would refuse it at load.

mod common;

use common::{key, opts};
use sealed_format::{Check, FormatError, seal};

const ALLOC: &str = r#"(func (export "sealbox_alloc") (param i32) (result i32) i32.const 0)"#;
const ENTRY: &str = r#"(func (export "score") (param i32 i32) (result i64) i64.const 0)"#;
const MEMORY: &str = r#"(memory (export "memory") 1)"#;

fn module(parts: &[&str]) -> Vec<u8> {
    wat::parse_str(format!("(module {})", parts.join(" "))).expect("valid WAT")
}

fn seal_with(module: &[u8], entries: Option<&[&str]>) -> Result<Vec<String>, FormatError> {
    let mut o = opts();
    o.entry = entries.map(|e| e.iter().map(|s| s.to_string()).collect());
    let sealed = seal(module, &o, &key(), &[])?;
    Ok(sealed_format::open(&sealed).unwrap().manifest.entry)
}

fn refused(module: &[u8], entries: Option<&[&str]>, needles: &[&str]) {
    let err = seal_with(module, entries).expect_err("sealed a module the runtime would refuse");
    assert_eq!(err.check(), Check::Abi, "{err}");
    let text = err.to_string();
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} missing from: {text}");
    }
}

#[test]
fn a_module_on_the_abi_lists_its_entries() {
    let m = module(&[MEMORY, ALLOC, ENTRY]);
    assert_eq!(seal_with(&m, None).unwrap(), ["score"]);
}

#[test]
fn a_module_without_any_entry_is_refused_with_the_fix() {
    // What a vendor gets from `pub fn score(input: &[u8]) -> Vec<u8>` without `entry!`:
    // the exports of a cdylib that exports nothing of the ABI.
    let m = module(&[
        MEMORY,
        r#"(func (export "helper") (param i32) (result i32) local.get 0)"#,
    ]);
    refused(
        &m,
        None,
        &[
            "exports no entry",
            "(i32, i32) -> i64",
            "`helper` (i32) -> i32",
            "sealbox_guest::entry!",
            "--entry",
        ],
    );
    assert_eq!(Check::Abi.exit_code(), 23);
}

#[test]
fn entries_without_sealbox_alloc_are_refused_unless_named_as_numeric() {
    let m = module(&[MEMORY, ENTRY]);
    refused(
        &m,
        None,
        &["`score`", "does not export `sealbox_alloc`", "--entry"],
    );
    // Named explicitly, a function of that type is a plain numeric entry.
    assert_eq!(seal_with(&m, Some(&["score"])).unwrap(), ["score"]);
}

#[test]
fn sealbox_alloc_of_the_wrong_type_is_refused() {
    let m = module(&[
        MEMORY,
        r#"(func (export "sealbox_alloc") (param i64) (result i32) i32.const 0)"#,
        ENTRY,
    ]);
    refused(
        &m,
        None,
        &["`sealbox_alloc` has type (i64) -> i32", "(i32) -> i32"],
    );
}

#[test]
fn sealbox_alloc_without_an_exported_memory_is_refused() {
    let m = module(&["(memory 1)", ALLOC, ENTRY]);
    refused(&m, None, &["no memory named `memory`"]);
    let renamed = module(&[r#"(memory (export "mem") 1)"#, ALLOC, ENTRY]);
    refused(&renamed, None, &["no memory named `memory`"]);
}

#[test]
fn a_named_entry_of_another_type_beside_sealbox_alloc_is_refused() {
    let m = module(&[
        MEMORY,
        ALLOC,
        ENTRY,
        r#"(func (export "version") (result i32) i32.const 1)"#,
    ]);
    refused(
        &m,
        Some(&["version"]),
        &["entry `version` has type () -> i32", "(i32, i32) -> i64"],
    );
    refused(&m, Some(&["sealbox_alloc"]), &["allocator, not an entry"]);
}

#[test]
fn a_named_entry_that_takes_no_numbers_is_refused() {
    let m = module(&[r#"(func (export "f") (param externref) (result i32) i32.const 0)"#]);
    refused(&m, Some(&["f"]), &["entry `f` has type (externref) -> i32"]);
}

#[test]
fn a_named_entry_that_is_not_exported_is_an_options_error() {
    let m = module(&[MEMORY, ALLOC, ENTRY]);
    let err = seal_with(&m, Some(&["nope"])).unwrap_err();
    assert_eq!(err.check(), Check::Options);
    assert!(
        err.to_string().contains("`score` (i32, i32) -> i64"),
        "{err}"
    );
}
