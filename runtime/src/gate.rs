//! The on-chain license gate: one `licenseStatus` and one `signerStatus`
//! call decide whether a (product, customer, release, signer) may run, and
//! their answer becomes the [`Lease`] the runtime runs on until the next check.

use std::time::{SystemTime, UNIX_EPOCH};

use alloy::primitives::{Address, B256, U256};
use license_contract::{LicenseStatus, RegistryClient, SignerStatus};

use crate::error::RuntimeError;
use crate::lease::Lease;

/// Who runs: the customer whose escrow pays and the runtime key that signs its receipts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    /// The licensed customer.
    pub customer: Address,
    /// The runtime's signer key (the customer itself or a key it authorized).
    pub signer: Address,
}

/// The chain's answer for one holder and release.
#[derive(Debug, Clone)]
pub struct LicenseCheck {
    /// The customer's license.
    pub license: LicenseStatus,
    /// The runtime signer's standing.
    pub signer: SignerStatus,
    /// The lease this answer grants (when the license is active).
    pub lease: Lease,
}

/// Reads the license of `holder` for `product_id` running `code_hash` and turns
/// it into a lease; an inactive license or an unauthorized signer is an error
/// naming the contract's reason.
pub async fn check_license(
    client: &RegistryClient,
    product_id: B256,
    code_hash: Option<B256>,
    holder: Holder,
) -> Result<LicenseCheck, RuntimeError> {
    let license = client
        .license_status(product_id, holder.customer, code_hash)
        .await?;
    if !license.active {
        return Err(RuntimeError::Unlicensed {
            reason: license.reason,
            customer: holder.customer,
        });
    }
    let signer = client
        .signer_status(product_id, holder.customer, holder.signer)
        .await?;
    if !signer.authorized {
        return Err(RuntimeError::SignerNotAuthorized {
            signer: holder.signer,
            customer: holder.customer,
        });
    }
    let lease = Lease {
        checked_at: unix_now(),
        block: license.block_number,
        balance_wei: saturating_u128(license.available),
        price_wei: saturating_u128(license.price),
        settled_units: signer.settled_units,
        inactive: None,
    };
    Ok(LicenseCheck {
        license,
        signer,
        lease,
    })
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn saturating_u128(v: U256) -> u128 {
    u128::try_from(v).unwrap_or(u128::MAX)
}
