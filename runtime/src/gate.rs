//! The on-chain license gate: one `licenseStatus` and one `signerStatus`
//! call decide whether a (product, customer, release, signer, buyer) may run,
//! and their answer becomes the [`Lease`] the runtime runs on until the next
//! check.
//!
//! A license whose only problem is money (no balance, a withdrawal pending)
//! is still a license: units already bought keep running, and the lease
//! records why no more can be bought.

use std::sync::Arc;

use alloy::primitives::{Address, B256, U256};
use license_contract::{LicenseStatus, RegistryClient, SignerStatus};

use crate::clock::unix_now;
use crate::error::RuntimeError;
use crate::journal::{Journal, UsageKey, off_worker};
use crate::lease::Lease;

/// Who runs: the customer whose escrow pays, the runtime key that signs its
/// purchase receipts, and the state directory that buys and uses the units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    /// The licensed customer.
    pub customer: Address,
    /// The runtime's signer key (the customer itself or a key it authorized).
    pub signer: Address,
    /// The buyer id of the state directory ([`crate::state_dir::StateDir::buyer`]).
    pub buyer: B256,
}

/// The chain's answer for one holder and release.
#[derive(Debug, Clone)]
pub struct LicenseCheck {
    /// The customer's license.
    pub license: LicenseStatus,
    /// The runtime signer's standing and this buyer's bought units.
    pub signer: SignerStatus,
    /// The lease this answer grants.
    pub lease: Lease,
}

/// Reads the license of `holder` for `product_id` running `code_hash` and turns
/// it into a lease. A lapsed license or an unauthorized signer (one whose
/// deauthorization has started included) is an error naming the reason; a
/// license that only cannot buy more is a lease with `cannot_buy` set.
pub async fn check_license(
    client: &RegistryClient,
    product_id: B256,
    code_hash: B256,
    holder: Holder,
) -> Result<LicenseCheck, RuntimeError> {
    let license = client
        .license_status(product_id, holder.customer, Some(code_hash))
        .await?;
    if !license.active && !license.reason.is_funding() {
        return Err(RuntimeError::Unlicensed {
            reason: license.reason,
            customer: holder.customer,
        });
    }
    let signer = client
        .signer_status(product_id, holder.customer, holder.signer, holder.buyer)
        .await?;
    if !signer.authorized {
        return Err(RuntimeError::SignerNotAuthorized {
            signer: holder.signer,
            customer: holder.customer,
        });
    }
    let mut lease = Lease {
        checked_at: unix_now(),
        block: license.block_number,
        block_timestamp: license.block_timestamp,
        price_wei: saturating_u128(license.price),
        available_wei: saturating_u128(license.available),
        bought_units: signer.bought_units,
        bought_block: license.block_number,
        inactive: None,
        signer_deauthorized: false,
        cannot_buy: None,
        release: code_hash.0,
    };
    if license.reason.is_funding() {
        lease.cannot_buy = Some(format!("{} ({})", license.reason, license.reason.remedy()));
    }
    Ok(LicenseCheck {
        license,
        signer,
        lease,
    })
}

/// Checks the license of the usage counter `key` running release `code_hash`
/// and records the answer in `journal`: the fresh lease, or — when the
/// license lapsed or the signer was deauthorized — the stored lease marked
/// inactive, so that no call is admitted until a later check succeeds. Any
/// other failure (RPC) leaves the journal as it was. The journal is written
/// on the blocking pool, off the async workers.
pub async fn check_and_record(
    client: &RegistryClient,
    journal: &Arc<Journal>,
    key: &UsageKey,
    code_hash: B256,
) -> Result<Lease, RuntimeError> {
    let holder = Holder {
        customer: Address::from(key.customer),
        signer: Address::from(key.signer),
        buyer: B256::from(key.buyer),
    };
    match check_license(client, B256::from(key.product), code_hash, holder).await {
        Ok(check) => {
            let (key, lease) = (*key, check.lease.clone());
            off_worker(journal, move |j| j.store_lease(&key, &lease)).await?;
            Ok(check.lease)
        }
        Err(e @ (RuntimeError::Unlicensed { .. } | RuntimeError::SignerNotAuthorized { .. })) => {
            let signer = matches!(e, RuntimeError::SignerNotAuthorized { .. });
            let (key, why) = (*key, e.to_string());
            off_worker(journal, move |j| j.deactivate_lease(&key, &why, signer)).await?;
            Err(e)
        }
        Err(e) => Err(e),
    }
}

fn saturating_u128(v: U256) -> u128 {
    u128::try_from(v).unwrap_or(u128::MAX)
}
