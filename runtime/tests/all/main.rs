//! The runtime's integration tests, linked into one test binary: each
//! binary links wasmtime, alloy and the runtime, so one binary instead of
//! ten saves minutes of linking and gigabytes of disk (as wasmtime's own
//! `tests/all` does).
//!
//! `serve_*`: the real `runtime serve` binary against a real anvil. The
//! sandbox's own tests (`.wat` fixtures, no chain) are in
//! `runtime/sandbox/tests/all/` (`cargo test -p sealbox-sandbox`).
//!
//! `serve_fuzz_corpus`: the seeds of the `serve_request` fuzz target
//! replayed through the in-process harness (no anvil).

mod serve_support;

mod serve_crash;
mod serve_fuzz_corpus;
mod serve_gating;
mod serve_http;
mod serve_outage;
mod serve_pool;
mod serve_prepay;
mod serve_prometheus;
