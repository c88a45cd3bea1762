//! {{name}}: a Sealbox algorithm, JSON in and JSON out, without `std`.
//!
//! `sealbox_guest::entry!` exports [`run`] on the Sealbox invocation ABI v1
//! (bytes in, bytes out). On wasm32 the crate is `no_std`: `alloc` only, with
//! the allocator and panic handler of `sealbox-guest`'s `no-std` feature. On
//! the host it links `std`, so `cargo test` works as usual.
#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::string::ToString;
use alloc::vec::Vec;

