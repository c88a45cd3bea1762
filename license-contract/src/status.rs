//! Typed views of the registry's state: license status with its reason code, a signer's
//! authorization and a buyer's counter, products, releases and deployment parameters.

use std::fmt;

use alloy::primitives::{Address, B256, U256};
use serde::{Deserialize, Serialize};

use crate::bindings::LicenseRegistry;
use crate::error::RegistryError;

/// Why a license is (in)active: the first failing check, in the contract's order. The last two
/// ([`Reason::is_funding`]) mean "licensed, but the escrow cannot buy one more unit".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum Reason {
    /// The license is active.
    Ok = 0,
    /// No such product.
    UnknownProduct = 1,
    /// The vendor deactivated the product.
    ProductInactive = 2,
    /// The code hash is not a published release of this product.
    UnknownRelease = 3,
    /// The vendor revoked this release.
    ReleaseRevoked = 4,
    /// The vendor revoked this customer.
    CustomerRevoked = 5,
    /// Licensed, but a pending withdrawal leaves less than one unit's price available to buy with.
    WithdrawalPending = 6,
    /// Licensed, but the escrow holds less than one unit's price: nothing more can be bought.
    NoBalance = 7,
}

impl Reason {
    /// Every reason, in code order.
    pub const ALL: [Reason; 8] = [
        Reason::Ok,
        Reason::UnknownProduct,
        Reason::ProductInactive,
        Reason::UnknownRelease,
        Reason::ReleaseRevoked,
        Reason::CustomerRevoked,
        Reason::WithdrawalPending,
        Reason::NoBalance,
    ];

    /// Whether this is a funding reason (`WithdrawalPending`, `NoBalance`): the license itself
    /// holds, but the escrow cannot buy one more unit. Units already bought may still run; every
    /// other inactive reason means the license lapsed.
    pub fn is_funding(self) -> bool {
        matches!(self, Reason::WithdrawalPending | Reason::NoBalance)
    }

    /// What the customer (or vendor) can do about it.
    pub fn remedy(self) -> &'static str {
        match self {
            Reason::Ok => "nothing to do",
            Reason::UnknownProduct => "check the product id, chain and registry address",
            Reason::ProductInactive => "the vendor must reactivate the product",
            Reason::UnknownRelease => {
                "run a release the vendor published for this product (check the module's code hash and product id)"
            }
            Reason::ReleaseRevoked => "the vendor pulled this build: get a newer release",
            Reason::CustomerRevoked => "ask the vendor to reinstate the license",
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
            Reason::UnknownRelease => "unknown release (code hash not published for this product)",
            Reason::ReleaseRevoked => "release revoked by the vendor",
            Reason::CustomerRevoked => "customer revoked by the vendor",
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
    /// Balance minus the pending withdrawal: what a runtime should buy with.
    pub available: U256,
    /// Amount of the pending withdrawal (0 if none).
    pub thawing: U256,
    /// Unix time the pending withdrawal can complete (0 if none).
    pub thaw_end: u64,
    /// Units bought so far for this account, over all signers and buyers (saturates at `u64::MAX`).
    pub bought_units: u64,
    /// Block the status was read at.
    pub block_number: u64,
    /// Timestamp of that block.
    pub block_timestamp: u64,
}

impl LicenseStatus {
    /// How many more units the available balance buys at the current price (`u64::MAX` for a
    /// free product).
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
            bought_units: s.boughtUnits,
            block_number: s.blockNumber,
            block_timestamp: s.blockTimestamp,
        })
    }
}

/// A runtime signer's standing for one (product, customer), and one buyer's counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignerStatus {
    /// The customer authorizes the signer now (its receipts settle).
    pub authorized: bool,
    /// Cumulative units the buyer has bought under this signer (kept across re-authorization).
    pub bought_units: u64,
}

impl From<LicenseRegistry::SignerStatus> for SignerStatus {
    fn from(s: LicenseRegistry::SignerStatus) -> Self {
        SignerStatus {
            authorized: s.authorized,
            bought_units: s.boughtUnits,
        }
    }
}

/// A registered product, as the registry stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductRecord {
    /// Product id.
    pub id: B256,
    /// Vendor address.
    pub vendor: Address,
    /// Price per unit in wei.
    pub price: U256,
    /// Whether the product licenses anyone.
    pub active: bool,
}

/// A published release of one product (releases are keyed by product and code hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// Product it is a release of.
    pub product_id: B256,
    /// SHA-256 of the plaintext Wasm.
    pub code_hash: B256,
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
    /// Withdrawal delay in seconds.
    pub thaw_seconds: u64,
    /// EIP-712 domain salt of this deployment.
    pub deployment_salt: B256,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_follow_the_contract_and_funding_reasons_come_last() {
        for (code, reason) in Reason::ALL.iter().enumerate() {
            assert_eq!(*reason as u8 as usize, code);
            assert_eq!(Reason::try_from(code as u8).unwrap(), *reason);
        }
        assert!(matches!(
            Reason::try_from(Reason::ALL.len() as u8),
            Err(RegistryError::UnknownReason(8))
        ));
        let funding: Vec<_> = Reason::ALL.into_iter().filter(|r| r.is_funding()).collect();
        assert_eq!(funding, [Reason::WithdrawalPending, Reason::NoBalance]);
        // every lapse reason sorts before every funding reason
        assert!(
            Reason::ALL
                .iter()
                .filter(|r| !r.is_funding())
                .all(|r| (*r as u8) < Reason::WithdrawalPending as u8)
        );
    }
}
