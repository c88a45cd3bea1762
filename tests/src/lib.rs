//! End-to-end tests of Sealbox: the real `packager` and `runtime` binaries,
//! the `license-contract` client and a real anvil, in `tests/tests/all/`.
//!
//! The tests run the binaries of their own target directory, so build them
//! first: `cargo build --workspace --bins && cargo test -p sealbox-e2e`
//! (scripts/test does both). Anvil comes from
//! `license-contract/node_modules/.bin/anvil` or `$SEALBOX_ANVIL`.
