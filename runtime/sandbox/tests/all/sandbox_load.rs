//! Loading: what the sandbox refuses before (or instead of) running a
//! module, and that a refusal compiles nothing.

use sealbox_sandbox::{GuestLimits, Program, Sandbox, SandboxConfig, SandboxError};

use crate::sandbox_support::*;

#[test]
fn any_import_is_refused_with_its_name_and_nothing_is_compiled() {
    let sb = sandbox();
    let err = try_load(&sb, "wasi_import", GuestLimits::default()).unwrap_err();
    match &err {
        SandboxError::ImportsNotAllowed { imports } => assert_eq!(
            imports,
            &[
                "wasi_snapshot_preview1::fd_write",
                "wasi_snapshot_preview1::clock_time_get"
            ]
            .map(String::from)
        ),
        other => panic!("expected ImportsNotAllowed, got {other}"),
    }
    assert!(
        err.to_string()
            .contains("`wasi_snapshot_preview1::fd_write`"),
        "{err}"
    );
    let err = try_load(&sb, "memory_import", GuestLimits::default()).unwrap_err();
    assert!(err.to_string().contains("`env::memory`"), "{err}");
    assert_eq!(sb.compilations(), 0);
}

#[test]
fn code_hash_must_match_the_bytes() {
    let sb = sandbox();
    let wasm = fixture("numeric");
    let mut wrong = code_hash(&wasm);
    wrong[0] ^= 1;
    let err = sb
        .compile(wrong, &wasm, &GuestLimits::default())
        .unwrap_err();
    assert!(
        matches!(err, SandboxError::CodeHashMismatch { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains(&hex::encode(code_hash(&wasm))),
        "{err}"
    );
    assert_eq!(sb.compilations(), 0);
}

#[test]
fn invalid_bytes_are_refused() {
    let sb = sandbox();
    let junk = b"\0asm\x01\0\0\0\x99garbage".to_vec();
    let err = sb
        .compile(code_hash(&junk), &junk, &GuestLimits::default())
        .unwrap_err();
    assert!(matches!(err, SandboxError::InvalidModule(_)), "{err}");
}

#[test]
fn broken_bytes_abi_is_refused_at_load() {
    let sb = sandbox();
    let err = try_load(&sb, "bad_alloc", GuestLimits::default()).unwrap_err();
    assert!(matches!(err, SandboxError::BadAbi(_)), "{err}");
    assert!(
        err.to_string()
            .contains("`sealbox_alloc` has type (i64) -> (i64)"),
        "{err}"
    );
    let err = try_load(&sb, "no_memory", GuestLimits::default()).unwrap_err();
    assert!(
        err.to_string().contains("no memory named `memory`"),
        "{err}"
    );
}

#[test]
fn zero_limits_are_refused() {
    let sb = sandbox();
    for (field, limits) in [
        ("fuel", limit_fuel(0)),
        ("deadline_ms", limit_deadline_ms(0)),
        ("max_memory_pages", limit_memory_pages(0)),
    ] {
        let err = try_load(&sb, "numeric", limits).unwrap_err();
        assert!(
            matches!(err, SandboxError::InvalidLimit { field: f, .. } if f == field),
            "{err}"
        );
    }
    assert_eq!(sb.compilations(), 0);
}

#[test]
fn initial_memory_above_the_limit_is_refused() {
    let sb = sandbox();
    let err = try_load(&sb, "big_memory", limit_memory_pages(10)).unwrap_err();
    assert!(
        matches!(
            err,
            SandboxError::MemoryTooLarge {
                initial_pages: 100,
                limit_pages: 10
            }
        ),
        "{err}"
    );
    // Within the limit it loads and runs.
    let p = load(&sb, "big_memory", limit_memory_pages(100));
    assert_eq!(
        p.call_numeric("add", &["2", "2"]).unwrap()[0].to_string(),
        "4"
    );
}

#[test]
fn required_entries_are_checked() {
    let sb = sandbox();
    let p = load(&sb, "bytes_abi", GuestLimits::default());
    p.require_entries(&["echo", "upper"]).unwrap();
    let err = p.require_entries(&["echo", "score"]).unwrap_err();
    match &err {
        SandboxError::MissingEntry { name, available } => {
            assert_eq!(name, "score");
            assert_eq!(available, &["echo", "upper"].map(String::from));
        }
        other => panic!("expected MissingEntry, got {other}"),
    }
}

#[test]
fn bad_config_is_refused() {
    for (cfg, needle) in [
        (
            SandboxConfig {
                max_memory_pages: 70_000,
                ..SandboxConfig::default()
            },
            "max_memory_pages",
        ),
        (
            SandboxConfig {
                pool_instances: 0,
                ..SandboxConfig::default()
            },
            "pool_instances",
        ),
        (
            SandboxConfig {
                max_input_bytes: usize::MAX,
                ..SandboxConfig::default()
            },
            "max_input_bytes",
        ),
    ] {
        let err = Sandbox::new(SandboxConfig {
            cache_dir: None,
            ..cfg
        })
        .unwrap_err();
        assert!(matches!(err, SandboxError::Config(_)), "{err}");
        assert!(err.to_string().contains(needle), "{err}");
    }
}

#[test]
fn program_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Program>();
    assert_send_sync::<Sandbox>();
}
