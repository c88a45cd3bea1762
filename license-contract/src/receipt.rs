//! EIP-712 usage receipts: the domain, the `Usage` type, signing and recovery, and product ids.
//!
//! A receipt states that a runtime signer has seen `cumulative_units` units of a product used by a
//! customer since it was first authorized. Receipts are cumulative, so a lost or replayed one never
//! loses or double-charges usage: the registry charges only what exceeds the signer's settled counter.

use alloy::primitives::{Address, B256, FixedBytes, Signature, keccak256};
use alloy::signers::SignerSync;
use alloy::sol_types::{Eip712Domain, SolStruct, SolValue, eip712_domain};
use serde::{Deserialize, Serialize};

use crate::bindings::LicenseRegistry;
use crate::error::RegistryError;

/// EIP-712 domain name of the registry.
pub const DOMAIN_NAME: &str = "Sealbox LicenseRegistry";
/// EIP-712 domain version of the registry.
pub const DOMAIN_VERSION: &str = "1";
/// EIP-712 type string of a usage receipt.
pub const USAGE_TYPE: &str =
    "Usage(bytes32 productId,address customer,uint64 cumulativeUnits,uint64 timestamp)";

/// The EIP-712 domain of the registry at `registry` on `chain_id`.
pub fn usage_domain(chain_id: u64, registry: Address) -> Eip712Domain {
    eip712_domain! {
        name: DOMAIN_NAME,
        version: DOMAIN_VERSION,
        chain_id: chain_id,
        verifying_contract: registry,
    }
}

/// productId = keccak256(abi.encode(vendor, name)), as the contract computes it.
pub fn product_id(vendor: Address, name: &str) -> B256 {
    keccak256((vendor, name.to_owned()).abi_encode_params())
}

/// A cumulative usage receipt (unsigned).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UsageReceipt {
    /// Product used.
    pub product_id: B256,
    /// Customer whose escrow pays.
    pub customer: Address,
    /// Units used since the signer was first authorized (monotonic per signer).
    pub cumulative_units: u64,
    /// Unix time the receipt was made (informational; the contract does not check it).
    pub timestamp: u64,
}

impl UsageReceipt {
    /// The Solidity struct the contract takes.
    pub fn to_sol(&self) -> LicenseRegistry::Usage {
        LicenseRegistry::Usage {
            productId: self.product_id,
            customer: self.customer,
            cumulativeUnits: self.cumulative_units,
            timestamp: self.timestamp,
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
            cumulative_units: 42,
            timestamp: 1_700_000_000,
        };
        let domain = usage_domain(31337, Address::repeat_byte(1));
        let signed = r.sign(&signer, &domain).unwrap();
        assert_eq!(signed.recover_signer(&domain).unwrap(), signer.address());
        let other_chain = usage_domain(1, Address::repeat_byte(1));
        assert_ne!(
            signed.recover_signer(&other_chain).unwrap(),
            signer.address()
        );
        let other_registry = usage_domain(31337, Address::repeat_byte(2));
        assert_ne!(
            signed.recover_signer(&other_registry).unwrap(),
            signer.address()
        );
        assert!(matches!(signed.signature[64], 27 | 28));
    }
}
