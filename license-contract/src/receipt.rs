//! EIP-712 purchase receipts: the domain, the `Usage` type, signing and recovery, and product ids.
//!
//! A receipt states that one buyer (a runtime state directory) of a runtime signer has BOUGHT
//! `cumulative_units` units of a product for a customer in total, at no more than `max_price` wei
//! per unit, and that it is valid until `expires_at`. Receipts are cumulative, so a lost or
//! replayed one never loses or double-charges a purchase: the registry charges only what exceeds
//! the buyer's counter, all or nothing.

use alloy::primitives::{Address, B256, FixedBytes, Signature, keccak256};
use alloy::signers::SignerSync;
use alloy::sol_types::{Eip712Domain, SolStruct, SolValue, eip712_domain};
use serde::{Deserialize, Serialize};

use crate::bindings::LicenseRegistry;
use crate::error::RegistryError;

/// EIP-712 domain name of the registry.
pub const DOMAIN_NAME: &str = "Sealbox LicenseRegistry";
/// EIP-712 domain version of the registry.
pub const DOMAIN_VERSION: &str = "2";
/// EIP-712 type string of a purchase receipt.
pub const USAGE_TYPE: &str = "Usage(bytes32 productId,address customer,bytes32 buyer,uint64 cumulativeUnits,uint128 maxPrice,uint64 expiresAt)";

/// The EIP-712 domain of the registry at `registry` on `chain_id`, whose deployment salt
/// (`deploymentSalt()`, fixed at deployment) is `salt`.
pub fn usage_domain(chain_id: u64, registry: Address, salt: B256) -> Eip712Domain {
    eip712_domain! {
        name: DOMAIN_NAME,
        version: DOMAIN_VERSION,
        chain_id: chain_id,
        verifying_contract: registry,
        salt: salt,
    }
}

/// productId = keccak256(abi.encode(vendor, name)), as the contract computes it.
pub fn product_id(vendor: Address, name: &str) -> B256 {
    keccak256((vendor, name.to_owned()).abi_encode_params())
}

/// A cumulative purchase receipt (unsigned).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UsageReceipt {
    /// Product bought.
    pub product_id: B256,
    /// Customer whose escrow pays.
    pub customer: Address,
    /// The buyer: an id one runtime state directory chose. The registry keeps one counter per
    /// (product, customer, signer, buyer), so two state directories sharing a signer key never
    /// share a purchase.
    pub buyer: B256,
    /// Units this (signer, buyer) has bought in total (monotonic per buyer).
    pub cumulative_units: u64,
    /// Highest price per unit (wei) the signer accepts; a higher current price makes `settle`
    /// revert `PriceAboveCap`. The current price (≤ this) is what is charged.
    pub max_price: u128,
    /// Unix time after which the receipt no longer settles (`ReceiptExpired`).
    pub expires_at: u64,
}

impl UsageReceipt {
    /// The Solidity struct the contract takes.
    pub fn to_sol(&self) -> LicenseRegistry::Usage {
        LicenseRegistry::Usage {
            productId: self.product_id,
            customer: self.customer,
            buyer: self.buyer,
            cumulativeUnits: self.cumulative_units,
            maxPrice: self.max_price,
            expiresAt: self.expires_at,
        }
    }

    /// The EIP-712 digest a signer signs, under `domain`.
    pub fn signing_hash(&self, domain: &Eip712Domain) -> B256 {
        self.to_sol().eip712_signing_hash(domain)
    }

    /// Signs the receipt with a runtime signer key.
    pub fn sign<S: SignerSync>(
        &self,
        signer: &S,
        domain: &Eip712Domain,
    ) -> Result<SignedUsage, RegistryError> {
        let sig = signer
            .sign_hash_sync(&self.signing_hash(domain))
            .map_err(RegistryError::Signing)?;
        Ok(SignedUsage {
            receipt: *self,
            signature: FixedBytes(sig.as_bytes()),
        })
    }
}

/// A receipt with its 65-byte signature r ‖ s ‖ v (v = 27/28), as `settle` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SignedUsage {
    /// The receipt.
    pub receipt: UsageReceipt,
    /// r ‖ s ‖ v.
    pub signature: FixedBytes<65>,
}

impl SignedUsage {
    /// The address the signature recovers to under `domain` (the contract refuses high-s signatures;
    /// alloy/k256 only make low-s ones).
    pub fn recover_signer(&self, domain: &Eip712Domain) -> Result<Address, RegistryError> {
        let sig =
            Signature::from_raw(self.signature.as_slice()).map_err(RegistryError::BadSignature)?;
        sig.recover_address_from_prehash(&self.receipt.signing_hash(domain))
            .map_err(RegistryError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::signers::local::PrivateKeySigner;

    #[test]
    fn usage_type_string_is_what_the_contract_hashes() {
        assert_eq!(LicenseRegistry::Usage::eip712_encode_type(), USAGE_TYPE);
    }

    #[test]
    fn signature_recovers_only_under_its_own_domain() {
        let signer = PrivateKeySigner::random();
        let r = UsageReceipt {
            product_id: B256::repeat_byte(7),
            customer: Address::repeat_byte(9),
            buyer: B256::repeat_byte(3),
            cumulative_units: 42,
            max_price: 1_000_000_000,
            expires_at: 1_700_000_000,
        };
        let salt = B256::repeat_byte(5);
        let domain = usage_domain(31337, Address::repeat_byte(1), salt);
        let signed = r.sign(&signer, &domain).unwrap();
        assert_eq!(signed.recover_signer(&domain).unwrap(), signer.address());
        for other in [
            usage_domain(1, Address::repeat_byte(1), salt),
            usage_domain(31337, Address::repeat_byte(2), salt),
            usage_domain(31337, Address::repeat_byte(1), B256::repeat_byte(6)),
        ] {
            assert_ne!(signed.recover_signer(&other).unwrap(), signer.address());
        }
        assert!(matches!(signed.signature[64], 27 | 28));
    }

    #[test]
    fn every_field_is_signed() {
        let r = UsageReceipt {
            product_id: B256::repeat_byte(7),
            customer: Address::repeat_byte(9),
            buyer: B256::repeat_byte(3),
            cumulative_units: 42,
            max_price: 10,
            expires_at: 1_700_000_000,
        };
        let domain = usage_domain(31337, Address::repeat_byte(1), B256::repeat_byte(5));
        let base = r.signing_hash(&domain);
        let variants = [
            UsageReceipt {
                product_id: B256::repeat_byte(8),
                ..r
            },
            UsageReceipt {
                customer: Address::repeat_byte(8),
                ..r
            },
            UsageReceipt {
                buyer: B256::repeat_byte(4),
                ..r
            },
            UsageReceipt {
                cumulative_units: 43,
                ..r
            },
            UsageReceipt { max_price: 11, ..r },
            UsageReceipt {
                expires_at: 1_700_000_001,
                ..r
            },
        ];
        for v in variants {
            assert_ne!(v.signing_hash(&domain), base, "{v:?}");
        }
    }
}
