//! {{name}}: a Sealbox algorithm, JSON in and JSON out.
//!
//! `sealbox_guest::entry!` exports [`run`] on the Sealbox invocation ABI v1
//! (bytes in, bytes out). Everything else is ordinary Rust: `std`, `serde`,
//! and any library from crates.io that builds for `wasm32-unknown-unknown`.

