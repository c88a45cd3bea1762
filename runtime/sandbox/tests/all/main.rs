//! The sandbox's integration tests, linked into one test binary (as
//! wasmtime's own `tests/all` does). They link only this crate and wasmtime:
//! no chain, HTTP, database or kernel code.
//!
//! Guests are the `.wat` fixtures of `tests/fixtures/`.
//!
//! `sandbox_load`: what is refused before (or instead of) running a module.
//! `sandbox_calls`: the bytes ABI, numeric exports, every kind of guest fault.
//! `sandbox_cache`: the authenticated compiled-module cache.
//! `sandbox_concurrency`: one program called from many threads.
//! `sandbox_components`: components — granted imports, typed calls, limits.

mod sandbox_support;

mod sandbox_cache;
mod sandbox_calls;
mod sandbox_components;
mod sandbox_concurrency;
mod sandbox_load;
