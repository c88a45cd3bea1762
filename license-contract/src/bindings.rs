//! `sol!` bindings generated from the committed artifact `artifacts/LicenseRegistry.json`
//! (ABI + creation bytecode), so the Rust side always matches the compiled contract.

#![allow(missing_docs, clippy::too_many_arguments)]

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    LicenseRegistry,
    "artifacts/LicenseRegistry.json"
);
