//! Helpers shared by the sandbox tests: fixtures are `.wat`
//! files in `tests/fixtures/`, turned into Wasm with the `wat` crate.

use std::path::{Path, PathBuf};

use sealbox_runtime::sandbox::{GuestLimits, Program, Sandbox, SandboxConfig};
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
    Sandbox::new(config(None)).unwrap()
}

/// Compiles fixture `name` with `limits`.
pub fn load(sandbox: &Sandbox, name: &str, limits: GuestLimits) -> Program {
    let wasm = fixture(name);
    sandbox
        .compile(code_hash(&wasm), &wasm, &limits)
        .unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}
