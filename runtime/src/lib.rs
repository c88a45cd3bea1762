//! Sealbox customer runtime: runs sealed WebAssembly algorithms on-prem,
//! licensed on-chain and metered in the kernel.
#![deny(missing_docs)]

pub mod sandbox;
