//! Which deployment of the registry a count belongs to.
//!
//! A registry's address and chain id do not name it uniquely: a restarted
//! development chain deploys the same contract at the same address on the
//! same chain id, and a second registry may list the same vendor's product
//! under the same id. Every count the runtime keeps (journal rows, counter
//! files, kernel meter keys, leases) is keyed by the deployment id below, so
//! usage recorded under one deployment is never read, admitted against or
//! bought under another.

use alloy::primitives::{Address, B256, keccak256};
use license_contract::{RegistryClient, RegistryError};

/// One deployment of the `LicenseRegistry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deployment {
    /// The chain id.
    pub chain_id: u64,
    /// The registry's address.
    pub registry: Address,
    /// Hash of the chain's genesis block (a fresh development chain gets a new one).
    pub genesis: B256,
    /// The registry's own per-deployment salt (part of its EIP-712 domain).
    pub salt: B256,
}

impl Deployment {
    /// Reads the deployment behind a connected client (one RPC call for the
    /// genesis block; the salt was read on connect).
    pub async fn of(client: &RegistryClient) -> Result<Self, RegistryError> {
        Ok(Self {
            chain_id: client.chain_id(),
            registry: client.address(),
            genesis: client.genesis_hash().await?,
            salt: client.deployment_salt(),
        })
    }

    /// keccak256(chain id ‖ registry ‖ genesis hash ‖ salt): the key of every
    /// count of this deployment.
    pub fn id(&self) -> [u8; 32] {
        let mut bytes = Vec::with_capacity(8 + 20 + 32 + 32);
        bytes.extend_from_slice(&self.chain_id.to_be_bytes());
        bytes.extend_from_slice(self.registry.as_slice());
        bytes.extend_from_slice(self.genesis.as_slice());
        bytes.extend_from_slice(self.salt.as_slice());
        keccak256(bytes).0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_changes_the_id() {
        let base = Deployment {
            chain_id: 31337,
            registry: Address::repeat_byte(1),
            genesis: B256::repeat_byte(2),
            salt: B256::repeat_byte(3),
        };
        let variants = [
            Deployment {
                chain_id: 1,
                ..base
            },
            Deployment {
                registry: Address::repeat_byte(9),
                ..base
            },
            Deployment {
                genesis: B256::repeat_byte(9),
                ..base
            },
            Deployment {
                salt: B256::repeat_byte(9),
                ..base
            },
        ];
        for v in variants {
            assert_ne!(v.id(), base.id(), "{v:?}");
        }
        assert_eq!(base.id(), base.clone().id());
    }
}
