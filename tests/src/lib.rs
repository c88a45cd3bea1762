//! End-to-end tests of Sealbox: the real `packager` and `runtime` binaries,
//! the `license-contract` client and a real anvil, in `tests/tests/all/`.
//!
//! The tests run the binaries of their own target directory, which the
//! test harness (`sealbox-testkit`, in `tests/testkit/`) brings up to date
//! with cargo before their first use: `cargo test -p sealbox-e2e` never runs
//! a stale `runtime`. Anvil comes from
//! `license-contract/node_modules/.bin/anvil` or `$SEALBOX_ANVIL`.
