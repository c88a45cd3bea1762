//! Sealbox customer runtime: runs sealed WebAssembly algorithms on-prem,
//! licensed on-chain and metered in the kernel.
//!
//! The path of a sealed module through this crate:
//!
//! - [`load`]: the load pipeline — verify the sealed file
//!   ([`sealed_format::open`]), check it names the trusted chain and
//!   registry, check the license on chain ([`gate`]) or, offline, the stored
//!   [`lease`], require the kernel meter if the manifest does, decrypt, then
//!   compile in the [`sandbox`]. Nothing is decrypted or compiled before the
//!   license holds.
//! - [`product`]: a loaded [`Product`]; each call is checked, admitted in the
//!   usage [`journal`] under the lease, entered in the kernel meter
//!   ([`metering`]), then run in a fresh sandbox instance.
//! - [`settle`]: cumulative EIP-712 receipts from the journal, sent to the
//!   contract; [`serve`]: the HTTP server with license refresh, a settle loop
//!   and Prometheus metrics.
//! - [`error`]: one [`RuntimeError`] naming the failed step, with an exit code.
#![deny(missing_docs)]

pub mod error;
pub mod gate;
pub mod journal;
pub mod lease;
pub mod load;
pub mod metering;
pub mod product;
pub mod sandbox;
pub mod serve;
pub mod settle;

pub use error::RuntimeError;
pub use product::Product;
