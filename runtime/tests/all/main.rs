//! The runtime's integration tests, linked into one test binary: each
//! binary links wasmtime, alloy and the runtime, so one binary instead of
//! ten saves minutes of linking and gigabytes of disk (as wasmtime's own
//! `tests/all` does).
//!
//! `sandbox_*`: the wasmtime sandbox on `.wat` fixtures, no chain.
//! `serve_*`: the real `runtime serve` binary against a real anvil.

mod sandbox_support;
mod serve_support;

mod sandbox_cache;
mod sandbox_calls;
mod sandbox_concurrency;
mod sandbox_load;
mod serve_crash;
mod serve_gating;
mod serve_http;
mod serve_outage;
mod serve_prepay;
mod serve_prometheus;
