//! `runtime serve`'s request path (method, path, headers, body) through the
//! real router in-process: every input is decoded into a request, answered,
//! and checked against http.rs's table (status, JSON errors, billing, token,
//! browser guard) by `sealbox_runtime::serve::fuzzing::Harness::check`, which
//! the replay test of the seed corpus (runtime/tests/all/serve_fuzz_corpus.rs)
//! calls too. Built without a sanitizer (see Cargo.toml).
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sealbox_runtime::serve::fuzzing::Harness;

/// Sealing and compiling the products takes a while: once per process.
static HARNESS: LazyLock<Harness> = LazyLock::new(Harness::new);

fuzz_target!(|data: &[u8]| {
    HARNESS.check(data);
});
