//! The Sealbox sealed Wasm module format, version 1.
//!
//! A sealed module is still a valid Wasm binary. Its sections, in order:
//!
//! 1. `signature`: the WebAssembly tool-conventions *Signatures* layout, SHA-256 of every byte
//!    after this section, signed with secp256k1 recoverable ECDSA (vendor, then co-signers);
//! 2. `sealbox.manifest`: JSON [`Manifest`], signed as is;
//! 3. either the plaintext module's own sections, or one `sealbox.payload` section holding the
//!    whole module under AES-256-GCM, its key wrapped per recipient with ECIES on secp256k1.
//!
//! [`seal`] builds one; [`open`] verifies one (without decrypting) and [`Opened::plaintext`]
//! decrypts and checks the code hash. `docs/FORMAT.md` describes the bytes.
//!
//! ```
//! # fn main() -> Result<(), sealed_format::FormatError> {
//! use sealed_format::{Address, SealOptions, open, seal};
//! // The smallest module on the invocation ABI v1: `memory`, `sealbox_alloc`, one entry.
//! let module = wat::parse_str(
//!     r#"(module (memory (export "memory") 1)
//!          (func (export "sealbox_alloc") (param i32) (result i32) i32.const 0)
//!          (func (export "echo") (param i32 i32) (result i64)
//!            (i64.or (i64.shl (i64.extend_i32_u (local.get 0)) (i64.const 32))
//!                    (i64.extend_i32_u (local.get 1)))))"#,
//! )
//! .unwrap();
//! let vendor = k256::ecdsa::SigningKey::random(&mut rand::thread_rng());
//! let opts = SealOptions::new("demo", "1.0.0", 31337, Address::repeat_byte(0x11));
//! let sealed = seal(&module, &opts, &vendor, &[])?;
//! let opened = open(&sealed)?;
//! assert_eq!(opened.manifest.entry, ["echo"]);
//! assert_eq!(opened.plaintext(None)?, module);
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

pub mod component;
mod error;
mod hexfield;
pub mod manifest;
mod module;
mod open;
pub mod payload;
mod seal;
pub mod signature;
mod wasm;

pub use alloy_primitives::{Address, B256};
pub use error::{Check, FormatError};
pub use manifest::{ComponentInfo, Encryption, Limits, Manifest, Metering, Recipient, product_id};
pub use open::{Opened, open};
pub use seal::{Placement, SealOptions, Unsigned, WorldSource, prepare, prepare_with, seal};
pub use wasm::{COMPONENT_HEADER, MODULE_HEADER};
