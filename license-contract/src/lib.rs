//! Bindings and a typed async client for the Sealbox `LicenseRegistry` contract.
//!
//! - [`bindings`]: `sol!` bindings generated from the committed artifact
//!   `artifacts/LicenseRegistry.json` (compiled with solc-js by `scripts/compile.js`).
//! - [`RegistryClient`]: connect (chain id, code and EIP-712 domain verified), deploy, and every
//!   vendor, customer and settlement operation, with reverts decoded into [`ContractRevert`].
//! - [`UsageReceipt`] / [`SignedUsage`]: EIP-712 cumulative purchase receipts a runtime signs to
//!   buy units before it runs them (per buyer, with a price cap and an expiry; the domain carries
//!   the deployment's salt).
//! - [`LicenseStatus`] / [`Reason`]: the one-call license check the runtime makes
//!   ([`Reason::is_funding`] tells "cannot buy more" from "license lapsed").
//!
//! The contract's model is described in `docs/CONTRACT.md`.
#![deny(missing_docs)]

pub mod bindings;
mod client;
mod error;
mod receipt;
mod revert;
mod status;

pub use client::{
    DEFAULT_FEE_BPS, DEFAULT_THAW_SECONDS, DeployParams, RegistryClient, Settlement, TxInfo,
};
pub use error::RegistryError;
pub use receipt::{
    DOMAIN_NAME, DOMAIN_VERSION, SignedUsage, USAGE_TYPE, UsageReceipt, product_id, usage_domain,
};
pub use revert::ContractRevert;
pub use status::{LicenseStatus, ProductRecord, Reason, RegistryInfo, Release, SignerStatus};
