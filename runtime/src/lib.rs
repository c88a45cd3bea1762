//! Sealbox customer runtime: runs sealed WebAssembly algorithms on-prem,
//! licensed on-chain and metered in the kernel.
#![deny(missing_docs)]

pub mod sandbox;

pub mod error;
pub mod gate;
pub mod journal;
pub mod lease;
pub mod load;
pub mod metering;
pub mod product;
pub mod serve;
pub mod settle;

pub use error::RuntimeError;
pub use product::Product;
