//! Typed views of the registry's state: license status with its reason code, signer counters,
//! products, releases and deployment parameters.

use std::fmt;

use alloy::primitives::{Address, B256, U256};
use serde::{Deserialize, Serialize};

use crate::bindings::LicenseRegistry;
use crate::error::RegistryError;

/// Why a license is (in)active: the first failing check, in the contract's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum Reason {
    /// The license is active.
    Ok = 0,
    /// No such product.
    UnknownProduct = 1,
    /// The vendor deactivated the product.
    ProductInactive = 2,
    /// The code hash is not a published release.
    UnknownRelease = 3,
    /// The code hash is a release of another product.
    ReleaseOfOtherProduct = 4,
    /// The vendor revoked this release.
    ReleaseRevoked = 5,
    /// The vendor revoked this customer.
    CustomerRevoked = 6,
    /// A settlement found the escrow short: unpaid usage must be paid first.
    Exhausted = 7,
    /// A pending withdrawal leaves less than one unit's price available.
    WithdrawalPending = 8,
    /// The escrow holds less than one unit's price.
    NoBalance = 9,
}

impl Reason {
    /// Every reason, in code order.
    pub const ALL: [Reason; 10] = [
        Reason::Ok,
        Reason::UnknownProduct,
        Reason::ProductInactive,
        Reason::UnknownRelease,
        Reason::ReleaseOfOtherProduct,
        Reason::ReleaseRevoked,
        Reason::CustomerRevoked,
        Reason::Exhausted,
        Reason::WithdrawalPending,
        Reason::NoBalance,
    ];

    /// What the customer (or vendor) can do about it.
    pub fn remedy(self) -> &'static str {
        match self {
            Reason::Ok => "nothing to do",
            Reason::UnknownProduct => "check the product id, chain and registry address",
            Reason::ProductInactive => "the vendor must reactivate the product",
            Reason::UnknownRelease => {
                "run a release the vendor published (check the module's code hash)"
            }
            Reason::ReleaseOfOtherProduct => {
                "the module belongs to another product: check the manifest"
            }
            Reason::ReleaseRevoked => "the vendor pulled this build: get a newer release",
            Reason::CustomerRevoked => "ask the vendor to reinstate the license",
            Reason::Exhausted => {
                "deposit enough to cover the unpaid units, then settle the latest receipt again"
            }
            Reason::WithdrawalPending => "cancel the withdrawal or deposit more",
            Reason::NoBalance => "deposit funds into the escrow for this product",
        }
    }
}

impl TryFrom<u8> for Reason {
    type Error = RegistryError;

    fn try_from(code: u8) -> Result<Self, Self::Error> {
        Reason::ALL
            .get(usize::from(code))
            .copied()
            .ok_or(RegistryError::UnknownReason(code))
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::Ok => "license active",
            Reason::UnknownProduct => "unknown product",
            Reason::ProductInactive => "product inactive",
            Reason::UnknownRelease => "unknown release (code hash not published)",
            Reason::ReleaseOfOtherProduct => "release belongs to another product",
            Reason::ReleaseRevoked => "release revoked by the vendor",
            Reason::CustomerRevoked => "customer revoked by the vendor",
            Reason::Exhausted => "escrow exhausted: unpaid usage",
            Reason::WithdrawalPending => "withdrawal pending: available balance below one unit",
            Reason::NoBalance => "escrow balance below one unit",
        })
    }
}

/// A customer's license for a product (and optionally a release), as one `eth_call` saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenseStatus {
    /// `reason == Reason::Ok`.
    pub active: bool,
    /// First failing check.
    pub reason: Reason,
    /// Product vendor (zero for an unknown product).
    pub vendor: Address,
    /// Price per unit in wei.
    pub price: U256,
    /// Escrow balance in wei (including any amount thawing).
    pub balance: U256,
    /// Balance minus the pending withdrawal: what usage may still draw on.
    pub available: U256,
    /// Amount of the pending withdrawal (0 if none).
    pub thawing: U256,
    /// Unix time the pending withdrawal can complete (0 if none).
    pub thaw_end: u64,
    /// Units settled so far, over all signers.
    pub settled_units: u64,
    /// Units signed in receipts but not paid (a shortfall); > 0 makes the license inactive.
    pub unpaid_units: u64,
    /// Block the status was read at.
    pub block_number: u64,
    /// Timestamp of that block.
    pub block_timestamp: u64,
}

impl LicenseStatus {
    /// How many more units the available balance pays for (`u64::MAX` for a free product).
    pub fn affordable_units(&self) -> u64 {
        if self.price.is_zero() {
            return u64::MAX;
        }
        u64::try_from(self.available / self.price).unwrap_or(u64::MAX)
    }
}

impl TryFrom<LicenseRegistry::LicenseStatus> for LicenseStatus {
    type Error = RegistryError;

    fn try_from(s: LicenseRegistry::LicenseStatus) -> Result<Self, Self::Error> {
        Ok(LicenseStatus {
            active: s.active,
            reason: Reason::try_from(s.reason)?,
            vendor: s.vendor,
            price: s.price,
            balance: s.balance,
            available: s.available,
            thawing: s.thawing,
            thaw_end: s.thawEnd,
            settled_units: s.settledUnits,
            unpaid_units: s.unpaidUnits,
            block_number: s.blockNumber,
            block_timestamp: s.blockTimestamp,
        })
    }
}

/// A runtime signer's standing for one (product, customer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignerStatus {
    /// Its receipts settle now.
    pub authorized: bool,
    /// 0 = never authorized, `u64::MAX` = authorized, else unix time its deauthorization takes effect.
    pub valid_until: u64,
    /// Its settled cumulative units.
    pub settled_units: u64,
    /// Highest cumulative units seen in its receipts (> settled after a shortfall).
    pub seen_units: u64,
}

impl From<LicenseRegistry::SignerStatus> for SignerStatus {
    fn from(s: LicenseRegistry::SignerStatus) -> Self {
        SignerStatus {
            authorized: s.authorized,
            valid_until: s.validUntil,
            settled_units: s.settledUnits,
            seen_units: s.seenUnits,
        }
    }
}

/// A registered product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// Product id.
    pub id: B256,
    /// Vendor address.
    pub vendor: Address,
    /// Price per unit in wei.
    pub price: U256,
    /// Whether the product licenses anyone.
    pub active: bool,
}

/// A published release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// SHA-256 of the plaintext Wasm.
    pub code_hash: B256,
    /// Product it belongs to.
    pub product_id: B256,
    /// Pulled by the vendor.
    pub revoked: bool,
}

/// Parameters fixed at deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryInfo {
    /// Registry address.
    pub address: Address,
    /// Chain id.
    pub chain_id: u64,
    /// Platform fee in basis points.
    pub fee_bps: u16,
    /// Receives the platform fee.
    pub treasury: Address,
    /// Withdrawal / deauthorization delay in seconds.
    pub thaw_seconds: u64,
}
