//! Sealbox customer runtime: runs sealed WebAssembly algorithms on-prem,
//! licensed on-chain, paid before use, metered in the kernel.
//!
//! The path of a sealed module through this crate:
//!
//! - [`load`]: the load pipeline — verify the sealed file
//!   ([`sealed_format::open`]), check it names the trusted chain and
//!   registry, check the license on chain ([`gate`]) or, offline, the stored
//!   [`lease`], require the kernel meter if the manifest does, decrypt, then
//!   compile in the sandbox ([`sealbox_sandbox`], a crate of its own: the
//!   security boundary the vendor's code runs in). Nothing is decrypted or
//!   compiled before the license holds.
//! - [`product`]: a loaded [`Product`]; each call is admitted in the usage
//!   [`journal`] only on a unit already bought, entered in the kernel meter
//!   ([`metering`]), then run in a fresh sandbox instance.
//! - [`purchase`]: units are bought ahead, in blocks, with cumulative EIP-712
//!   receipts sent to the contract; each [`state_dir`] is its own buyer, and
//!   every count belongs to one registry [`deployment`].
//! - [`serve`]: the HTTP server with license refresh, a buying loop and
//!   Prometheus metrics.
//! - [`event_meter`]: kernel events (TLS handshakes) priced by a sealed
//!   tariff, charged, bought on chain and exported (`runtime meter`).
//! - [`error`]: one [`RuntimeError`] naming the failed step, with an exit code.
#![deny(missing_docs)]

pub mod clock;
pub mod deployment;
pub mod error;
pub mod event_meter;
pub mod gate;
pub mod journal;
pub mod lease;
pub mod load;
pub mod metering;
pub mod product;
pub mod purchase;
pub mod serve;
pub mod state_dir;

pub use error::{RuntimeError, exit_codes};
pub use product::Product;
