//! Guest side of the Sealbox invocation ABI v1, shared by the example algorithms.
//!
//! The ABI (see `DESIGN.md`, "Runtime") is bytes in, bytes out:
//!
//! 1. the host calls the exported `sealbox_alloc(len: i32) -> i32` and writes the
//!    `len` input bytes at the returned address of the exported `memory`;
//! 2. the host calls an entry export `(ptr: i32, len: i32) -> i64` with that
//!    address and length;
//! 3. the entry returns `(out_ptr << 32) | out_len`, and the host reads the output
//!    bytes from `memory`.
//!
//! Memory is a bump arena ([`arena::Arena`]) that every `sealbox_alloc` resets: an
//! input, and the output of the call that reads it, stay valid until the host's
//! next `sealbox_alloc`. A module can therefore serve any number of calls on one
//! instance without growing, as long as the host reads each output before it
//! allocates the next input. `sealbox_alloc` returns 0 when memory cannot grow.
//!
//! On `wasm32` this crate also provides the global allocator and the panic handler
//! (a panic traps with `unreachable`), so a guest crate needs neither `std` nor any
//! import. On the host it provides only the portable pieces, so that the
//! algorithms' logic can be unit-tested with `cargo test`.
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]

extern crate alloc;

pub mod abi;
pub mod arena;

#[cfg(target_arch = "wasm32")]
mod wasm;

/// Defines an ABI v1 entry export `name(ptr: i32, len: i32) -> i64` that runs
/// `handler: fn(&[u8]) -> Vec<u8>` on the input bytes and returns its output.
///
/// The export exists only when building for `wasm32`; on the host the handler is
/// an ordinary function for tests.
///
/// ```ignore
/// sealbox_guest::entry!(
///     /// Scores an applicant (JSON in, JSON out).
///     score => crate::score_json
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
