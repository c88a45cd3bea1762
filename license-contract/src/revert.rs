//! Turns `LicenseRegistry` custom errors into a sentence saying what went wrong and what to do.

use std::fmt;

use alloy::primitives::{Address, B256, U256};

use crate::bindings::LicenseRegistry::LicenseRegistryErrors as E;

/// A decoded `LicenseRegistry` custom error; `Display` explains it and says what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractRevert {
    /// The typed custom error, for callers that branch on it.
    pub error: E,
}

impl ContractRevert {
    /// Name of the Solidity custom error (e.g. `"ThawNotOver"`).
    pub fn name(&self) -> &'static str {
        match &self.error {
            E::FeeTooHigh(_) => "FeeTooHigh",
            E::ZeroTreasury(_) => "ZeroTreasury",
            E::ThawTooLong(_) => "ThawTooLong",
            E::EmptyName(_) => "EmptyName",
            E::ProductExists(_) => "ProductExists",
            E::UnknownProduct(_) => "UnknownProduct",
            E::NotVendor(_) => "NotVendor",
            E::PriceTooHigh(_) => "PriceTooHigh",
            E::ZeroCodeHash(_) => "ZeroCodeHash",
            E::ReleaseExists(_) => "ReleaseExists",
            E::UnknownRelease(_) => "UnknownRelease",
            E::ReleaseAlreadyRevoked(_) => "ReleaseAlreadyRevoked",
            E::ZeroAddress(_) => "ZeroAddress",
            E::CustomerAlreadyRevoked(_) => "CustomerAlreadyRevoked",
            E::CustomerNotRevoked(_) => "CustomerNotRevoked",
            E::ZeroDeposit(_) => "ZeroDeposit",
            E::BalanceOverflow(_) => "BalanceOverflow",
            E::ZeroWithdrawal(_) => "ZeroWithdrawal",
            E::WithdrawalExceedsBalance(_) => "WithdrawalExceedsBalance",
            E::NoWithdrawalPending(_) => "NoWithdrawalPending",
            E::ThawNotOver(_) => "ThawNotOver",
            E::SignerAlreadyAuthorized(_) => "SignerAlreadyAuthorized",
            E::SignerNotAuthorized(_) => "SignerNotAuthorized",
            E::ReceiptExpired(_) => "ReceiptExpired",
            E::PriceAboveCap(_) => "PriceAboveCap",
            E::InsufficientEscrow(_) => "InsufficientEscrow",
            E::InvalidSignatureLength(_) => "InvalidSignatureLength",
            E::InvalidSignatureV(_) => "InvalidSignatureV",
            E::SignatureSMalleable(_) => "SignatureSMalleable",
            E::InvalidSignature(_) => "InvalidSignature",
            E::NothingToWithdraw(_) => "NothingToWithdraw",
            E::TransferFailed(_) => "TransferFailed",
            E::Reentrancy(_) => "Reentrancy",
        }
    }

    /// What went wrong, in words.
    pub fn problem(&self) -> String {
        match &self.error {
            E::FeeTooHigh(e) => {
                format!("a fee of {} basis points is above 10000 (100 %)", e.feeBps)
            }
            E::ZeroTreasury(_) => "the treasury address is zero".into(),
            E::ThawTooLong(e) => format!(
                "a thaw of {} s is longer than the maximum {} s",
                e.thawSeconds, e.max
            ),
            E::EmptyName(_) => "the product name is empty".into(),
            E::ProductExists(e) => format!("product {} is already registered", e.productId),
            E::UnknownProduct(e) => {
                format!("product {} is not registered in this registry", e.productId)
            }
            E::NotVendor(e) => format!(
                "{} is not the vendor of product {} (its vendor is {})",
                e.caller, e.productId, e.vendor
            ),
            E::PriceTooHigh(e) => format!(
                "a price of {} wei per unit is above the maximum {}",
                e.price, e.max
            ),
            E::ZeroCodeHash(_) => "the release code hash is zero".into(),
            E::ReleaseExists(e) => format!(
                "release {} of product {} is already published",
                e.codeHash, e.productId
            ),
            E::UnknownRelease(e) => format!(
                "release {} is not published for product {}",
                e.codeHash, e.productId
            ),
            E::ReleaseAlreadyRevoked(e) => format!(
                "release {} of product {} is already revoked",
                e.codeHash, e.productId
            ),
            E::ZeroAddress(_) => "an address argument is the zero address".into(),
            E::CustomerAlreadyRevoked(e) => {
                format!(
                    "customer {} is already revoked for product {}",
                    e.customer, e.productId
                )
            }
            E::CustomerNotRevoked(e) => {
                format!(
                    "customer {} is not revoked for product {}",
                    e.customer, e.productId
                )
            }
            E::ZeroDeposit(_) => "the deposit is 0 wei".into(),
            E::BalanceOverflow(e) => format!(
                "depositing {} wei onto a balance of {} wei exceeds the largest escrow (2^96 - 1 wei)",
                e.deposit, e.balance
            ),
            E::ZeroWithdrawal(_) => "the withdrawal amount is 0 wei".into(),
            E::WithdrawalExceedsBalance(e) => format!(
                "a withdrawal of {} wei exceeds the escrow balance of {} wei",
                e.amount, e.balance
            ),
            E::NoWithdrawalPending(e) => format!(
                "customer {} has no pending withdrawal for product {}",
                e.customer, e.productId
            ),
            E::ThawNotOver(e) => format!(
                "the withdrawal is still thawing: it can complete at unix time {} ({} s after the current block)",
                e.thawEnd,
                e.thawEnd.saturating_sub(e.nowTs)
            ),
            E::SignerAlreadyAuthorized(e) => format!(
                "signer {} is already authorized by {} for product {}",
                e.signer, e.customer, e.productId
            ),
            E::SignerNotAuthorized(e) => format!(
                "signer {} is not authorized by customer {} for product {}",
                e.signer, e.customer, e.productId
            ),
            E::ReceiptExpired(e) => format!(
                "the receipt expired at unix time {} (the current block is at {})",
                e.expiresAt, e.now
            ),
            E::PriceAboveCap(e) => format!(
                "the vendor raised the price above the signer's cap: the product costs {} wei per \
                 unit, the receipt accepts at most {}",
                e.price, e.maxPrice
            ),
            E::InsufficientEscrow(e) => format!(
                "the purchase costs {} wei but the escrow holds only {} wei (nothing was bought)",
                e.amount, e.balance
            ),
            E::InvalidSignatureLength(e) => format!("the signature is {} bytes, not 65", e.length),
            E::InvalidSignatureV(e) => {
                format!("the signature's v byte is {}, not 27/28 (or 0/1)", e.v)
            }
            E::SignatureSMalleable(_) => {
                "the signature has a high s value (a malleable copy)".into()
            }
            E::InvalidSignature(_) => "the signature does not recover to any address".into(),
            E::NothingToWithdraw(e) => format!("{} has no revenue to withdraw", e.account),
            E::TransferFailed(e) => format!(
                "paying {} wei to {} failed: the recipient rejected it",
                e.amount, e.to
            ),
            E::Reentrancy(_) => "a payout re-entered the registry".into(),
        }
    }

    /// What the caller can do about it.
    pub fn remedy(&self) -> &'static str {
        match &self.error {
            E::FeeTooHigh(_) => "pass a fee between 0 and 10000 basis points",
            E::ZeroTreasury(_) => "pass a real treasury address",
            E::ThawTooLong(_) => "pass a shorter thaw period",
            E::EmptyName(_) => "give the product a name",
            E::ProductExists(_) => {
                "this vendor already registered a product with this name: use another name or manage the existing product"
            }
            E::UnknownProduct(_) => {
                "check the product id and the registry address; the vendor must register (publish) the product first"
            }
            E::NotVendor(_) => "sign the transaction with the product vendor's key",
            E::PriceTooHigh(_) => "use a lower price per unit",
            E::ZeroCodeHash(_) => "pass the SHA-256 of the plaintext Wasm module",
            E::ReleaseExists(_) => {
                "nothing to do: this product already published this code hash (a revoked release stays revoked: \
                 seal a new build)"
            }
            E::UnknownRelease(_) => {
                "check the product id and code hash; the vendor must publish the release first"
            }
            E::ReleaseAlreadyRevoked(_) => "nothing to do: the release is already pulled",
            E::ZeroAddress(_) => "pass a non-zero address",
            E::CustomerAlreadyRevoked(_) => "nothing to do",
            E::CustomerNotRevoked(_) => "nothing to do: the customer is not revoked",
            E::ZeroDeposit(_) => "deposit a positive amount",
            E::BalanceOverflow(_) => "deposit less",
            E::ZeroWithdrawal(_) => "request a positive amount",
            E::WithdrawalExceedsBalance(_) => "request at most the escrow balance",
            E::NoWithdrawalPending(_) => {
                "request a withdrawal first, then complete it after the thaw period"
            }
            E::ThawNotOver(_) => {
                "wait until the thaw period has passed, then complete the withdrawal again"
            }
            E::SignerAlreadyAuthorized(_) => "nothing to do: the signer is already authorized",
            E::SignerNotAuthorized(_) => {
                "the customer must authorize this runtime key for this product (a receipt signed for another chain, \
                 registry or deployment also recovers an unrelated signer: check chain id and registry address, and \
                 connect again to read the deployment salt)"
            }
            E::ReceiptExpired(_) => {
                "sign a new receipt with a later expiry (and settle it promptly)"
            }
            E::PriceAboveCap(_) => {
                "nothing was charged; check the new price, and sign a new receipt with a higher cap if you accept it"
            }
            E::InsufficientEscrow(_) => {
                "deposit more into the escrow for this product (or buy fewer units), then sign and settle again"
            }
            E::InvalidSignatureLength(_) | E::InvalidSignatureV(_) | E::InvalidSignature(_) => {
                "sign the receipt again with the runtime key (65-byte r||s||v)"
            }
            E::SignatureSMalleable(_) => {
                "use a signer that produces low-s signatures (alloy and k256 do)"
            }
            E::NothingToWithdraw(_) => "wait until receipts have been settled",
            E::TransferFailed(_) => "withdraw from an account that can receive ETH",
            E::Reentrancy(_) => "do not call back into the registry while receiving a payout",
        }
    }

    /// The product the error names, if any.
    pub fn product_id(&self) -> Option<B256> {
        match &self.error {
            E::ProductExists(e) => Some(e.productId),
            E::UnknownProduct(e) => Some(e.productId),
            E::NotVendor(e) => Some(e.productId),
            E::NoWithdrawalPending(e) => Some(e.productId),
            E::SignerNotAuthorized(e) => Some(e.productId),
            E::SignerAlreadyAuthorized(e) => Some(e.productId),
            E::ReleaseExists(e) => Some(e.productId),
            E::UnknownRelease(e) => Some(e.productId),
            E::ReleaseAlreadyRevoked(e) => Some(e.productId),
            E::CustomerAlreadyRevoked(e) => Some(e.productId),
            E::CustomerNotRevoked(e) => Some(e.productId),
            _ => None,
        }
    }

    /// The signer the error names, if any (e.g. the address a bad receipt recovered to).
    pub fn signer(&self) -> Option<Address> {
        match &self.error {
            E::SignerNotAuthorized(e) => Some(e.signer),
            E::SignerAlreadyAuthorized(e) => Some(e.signer),
            _ => None,
        }
    }

    /// The balance the error names, if any.
    pub fn balance(&self) -> Option<U256> {
        match &self.error {
            E::WithdrawalExceedsBalance(e) => Some(e.balance),
            E::BalanceOverflow(e) => Some(e.balance),
            E::InsufficientEscrow(e) => Some(e.balance),
            _ => None,
        }
    }
}

impl fmt::Display for ContractRevert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}); {}", self.problem(), self.name(), self.remedy())
    }
}
