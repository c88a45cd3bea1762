//! Helpers shared by the sandbox tests: fixtures are `.wat`
//! files in `tests/fixtures/`, turned into Wasm with the `wat` crate.

use std::path::{Path, PathBuf};

use sealbox_sandbox::{CallError, GuestLimits, Program, Sandbox, SandboxConfig, SandboxError};
use sha2::{Digest, Sha256};

/// The Wasm bytes of `tests/fixtures/<name>.wat`.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.wat"));
    wat::parse_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// SHA-256 of the bytes: the code hash.
pub fn code_hash(wasm: &[u8]) -> [u8; 32] {
    Sha256::digest(wasm).into()
}

/// Config with the disk cache in `dir` (or disabled).
pub fn config(cache_dir: Option<PathBuf>) -> SandboxConfig {
    SandboxConfig {
        cache_dir,
        ..SandboxConfig::default()
    }
}

/// A sandbox without a disk cache.
pub fn sandbox() -> Sandbox {
    sandbox_with(|_| {})
}

/// A sandbox without a disk cache, its default config changed by `tweak`.
pub fn sandbox_with(tweak: impl FnOnce(&mut SandboxConfig)) -> Sandbox {
    let mut cfg = config(None);
    tweak(&mut cfg);
    Sandbox::new(cfg).unwrap()
}

/// Default limits but `fuel` per call.
pub fn limit_fuel(fuel: u64) -> GuestLimits {
    GuestLimits {
        fuel: Some(fuel),
        ..GuestLimits::default()
    }
}

/// Default limits but a wall-clock deadline of `ms` per call.
pub fn limit_deadline_ms(ms: u64) -> GuestLimits {
    GuestLimits {
        deadline_ms: Some(ms),
        ..GuestLimits::default()
    }
}

/// Default limits but at most `pages` 64 KiB pages of memory.
pub fn limit_memory_pages(pages: u64) -> GuestLimits {
    GuestLimits {
        max_memory_pages: Some(pages),
        ..GuestLimits::default()
    }
}

/// Compiles fixture `name` with `limits`, or says why not.
pub fn try_load(
    sandbox: &Sandbox,
    name: &str,
    limits: GuestLimits,
) -> Result<Program, SandboxError> {
    let wasm = fixture(name);
    sandbox.compile(code_hash(&wasm), &wasm, &limits)
}

/// Compiles fixture `name` with `limits`.
pub fn load(sandbox: &Sandbox, name: &str, limits: GuestLimits) -> Program {
    try_load(sandbox, name, limits).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// Calls the bytes entry `export` with an empty input; it must fail.
#[track_caller]
pub fn call_fails(program: &Program, export: &str) -> CallError {
    match program.call_bytes(export, b"") {
        Ok(out) => panic!(
            "`{export}` returned {:?}, expected an error",
            String::from_utf8_lossy(&out)
        ),
        Err(err) => err,
    }
}

/// The program is still fine: a good call (its `echo` entry) right after a
/// bad one succeeds.
#[track_caller]
pub fn assert_still_serves(program: &Program) {
    let out = program.call_bytes("echo", b"still here").unwrap();
    assert_eq!(out, b"still here");
}

/// The deadline of a [`CallError::DeadlineExceeded`]; any other error fails the test.
#[track_caller]
pub fn exceeded_deadline_ms(err: &CallError) -> u64 {
    match err {
        CallError::DeadlineExceeded { deadline_ms, .. } => *deadline_ms,
        other => panic!("expected DeadlineExceeded, got {other}"),
    }
}

/// Compiles fixture `name` with `limits` on a sandbox of its own (no disk
/// cache); the program keeps what it needs of the sandbox alive.
pub fn program(name: &str, limits: GuestLimits) -> Program {
    load(&sandbox(), name, limits)
}
