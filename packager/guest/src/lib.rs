//! The vendor's side of the Sealbox invocation ABI v1: write an ordinary Rust
//! function from bytes to bytes, and [`entry!`] exports it the way the Sealbox
//! runtime calls it.
//!
//! # The ABI
//!
//! Bytes in, bytes out, no imports:
//!
//! 1. the host calls the exported `sealbox_alloc(len: i32) -> i32` and writes
//!    the `len` input bytes at the returned address of the exported `memory`
//!    (0 means the guest could not find room);
//! 2. the host calls an entry export `(ptr: i32, len: i32) -> i64` with that
//!    address and length;
//! 3. the entry returns `(out_ptr << 32) | out_len`, and the host copies the
//!    output bytes out of `memory`.
//!
//! # Memory rules
//!
//! An input, and the output of the call that read it, stay valid until the
//! host's next `sealbox_alloc`, which frees both. One instance can therefore
//! serve any number of calls without growing, as long as the host reads each
//! output before it allocates the next input (the Sealbox runtime does).
//!
//! # With or without `std`
//!
//! - **`std` guests** (the default; any crates.io library, `serde_json`, …):
//!   this crate adds only the ABI — `sealbox_alloc`, input and output
//!   handling and [`entry!`]. Memory comes from the standard library's
//!   allocator, and a panic traps (build with `panic = "abort"`).
//! - **`#![no_std]` guests** enable the feature `no-std`: the crate then also
//!   provides the global allocator (a bump arena that every `sealbox_alloc`
//!   resets, see [`arena`]) and the panic handler (a panic traps with
//!   `unreachable`). Enabling it in a `std` guest fails to link with
//!   `error[E0152]: duplicate lang item`; forgetting it in a `no_std` guest
//!   fails with "`#[panic_handler]` function required".
//!
//! On the host (any target but `wasm32`) the crate provides only the portable
//! pieces, so the algorithm's logic is unit-tested with plain `cargo test`.
//!
//! # A complete guest
//!
//! `Cargo.toml`: `crate-type = ["cdylib", "rlib"]`, a dependency on this crate,
//! and a release profile with `panic = "abort"`. `src/lib.rs`:
//!
//! ```
//! /// Counts the words of a UTF-8 text and answers `{"words": N}`.
//! pub fn count_words(input: &[u8]) -> Vec<u8> {
//!     let words = String::from_utf8_lossy(input).split_whitespace().count();
//!     format!("{{\"words\":{words}}}").into_bytes()
//! }
//!
//! sealbox_guest::entry!(
//!     /// ABI v1 entry: counts the words of the input text.
//!     words => count_words
//! );
//!
//! assert_eq!(count_words(b"sealed wasm algorithms"), br#"{"words":3}"#);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-unknown-unknown`; the
//! module exports `memory`, `sealbox_alloc` and `words`, and imports nothing.
//! `packager new NAME` writes such a project (with `serde_json`, a host test and
//! a README) ready to build and seal.
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]

extern crate alloc;

pub mod abi;
pub mod arena;

#[cfg(all(target_arch = "wasm32", feature = "no-std"))]
mod bare;
#[cfg(all(target_arch = "wasm32", not(feature = "no-std")))]
mod hosted;

/// Defines an ABI v1 entry export `name(ptr: i32, len: i32) -> i64` that runs
/// `handler: fn(&[u8]) -> Vec<u8>` on the input bytes and returns its output.
///
/// The export exists only when building for `wasm32`; on the host the handler
/// is an ordinary function for tests. The export may share its name with a
/// Rust item, including the handler itself.
///
/// ```
/// pub fn echo(input: &[u8]) -> Vec<u8> {
///     input.to_vec()
/// }
///
/// sealbox_guest::entry!(
///     /// Answers the input unchanged.
///     echo => crate::echo
/// );
/// ```
#[macro_export]
macro_rules! entry {
    ($(#[$meta:meta])* $name:ident => $handler:path) => {
        // In an anonymous const so the export may share its name with a Rust item.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            $(#[$meta])*
            ///
            /// # Safety
            ///
            /// `ptr..ptr + len` must be the input the host wrote into the block
            /// `sealbox_alloc(len)` returned (ABI v1).
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn $name(ptr: *const u8, len: usize) -> u64 {
                // SAFETY: guaranteed by the caller, see above.
                let input = unsafe { $crate::abi::input(ptr, len) };
                $crate::abi::output($handler(input))
            }
        };
    };
}
