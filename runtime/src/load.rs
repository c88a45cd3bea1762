//! The load pipeline: from sealed bytes to a runnable [`Product`], in the
//! order of the design and stopping at the first failure:
//!
//! parse → signature section → hash → signers → signer == vendor → manifest
//! schema (all in [`sealed_format::open`]) → chain id and registry match the
//! customer's configuration → on-chain license (or, offline, a fresh lease)
//! → kernel meter if required → decrypt → plaintext hash == `code_hash` →
//! compile.
//!
//! Nothing is decrypted or compiled before the license holds.

use std::sync::Arc;

use alloy::primitives::{Address, B256};
use k256::ecdsa::SigningKey;
use license_contract::RegistryClient;
use sealed_format::{Metering, Opened};

use crate::error::RuntimeError;
use crate::gate::{Holder, check_license, unix_now};
use crate::journal::{Journal, UsageKey};
use crate::lease::LeasePolicy;
use crate::metering::KernelMeter;
use crate::product::Product;
use crate::sandbox::{GuestLimits, Sandbox};

/// How the chain is reached for this load.
#[derive(Debug, Clone, Copy)]
pub enum ChainAccess<'a> {
    /// Connected: the license is checked now and the lease renewed.
    Online(&'a RegistryClient),
    /// The RPC is unreachable: only a fresh stored lease lets the module load.
    /// The chain id is the one recorded with the journal when it was last online.
    Offline {
        /// Chain id recorded by the last successful connection, if any.
        chain_id: Option<u64>,
    },
}

/// Everything the pipeline needs besides the sealed bytes.
#[derive(Debug, Clone, Copy)]
pub struct Loader<'a> {
    /// The process's sandbox.
    pub sandbox: &'a Sandbox,
    /// The usage journal (leases and counters).
    pub journal: &'a Arc<Journal>,
    /// The registry the customer trusts.
    pub registry: Address,
    /// How the chain is reached.
    pub chain: ChainAccess<'a>,
    /// Who runs and who signs receipts.
    pub holder: Holder,
    /// Key that decrypts modules encrypted to the customer.
    pub decrypt_key: Option<&'a SigningKey>,
    /// Lease freshness policy for offline use.
    pub policy: LeasePolicy,
    /// The kernel meter, when attached; `Err` holds why it is not.
    pub meter: Result<&'a Arc<KernelMeter>, &'a str>,
}

impl Loader<'_> {
    /// Runs the whole pipeline on `sealed`.
    pub async fn load(&self, sealed: &[u8]) -> Result<Product, RuntimeError> {
        let opened = sealed_format::open(sealed)?;
        self.check_trust(&opened)?;
        let manifest = &opened.manifest;
        let key = UsageKey {
            product: manifest.product_id.0,
            customer: self.holder.customer.into_array(),
            signer: self.holder.signer.into_array(),
        };
        self.check_license(&opened, &key).await?;

        let meter = match (self.meter, manifest.metering) {
            (Ok(meter), _) => Some(Arc::clone(meter)),
            (Err(why), Metering::KernelRequired) => {
                return Err(RuntimeError::MeterRequired(why.to_owned()));
            }
            (Err(why), Metering::KernelPreferred) => {
                tracing::warn!(
                    product = %manifest.name,
                    "kernel meter unavailable ({why}); counting calls in the runtime only"
                );
                None
            }
        };

        let plaintext = opened.plaintext(self.decrypt_key)?;
        let limits = GuestLimits {
            max_memory_pages: manifest.limits.max_memory_pages.map(u64::from),
            fuel: manifest.limits.fuel,
            deadline_ms: manifest.limits.deadline_ms,
        };
        tracing::info!(
            product = %manifest.name,
            code_hash = %manifest.code_hash,
            "license holds; compiling"
        );
        let program = self
            .sandbox
            .compile(manifest.code_hash.0, &plaintext, &limits)?;
        if !manifest.entry.is_empty() {
            program.require_entries(&manifest.entry)?;
        }
        Product::new(
            opened.manifest.clone(),
            program,
            key,
            Arc::clone(self.journal),
            meter,
            self.policy,
        )
    }

    /// The manifest must name the chain and registry the customer trusts.
    fn check_trust(&self, opened: &Opened) -> Result<(), RuntimeError> {
        let manifest = &opened.manifest;
        let configured = match self.chain {
            ChainAccess::Online(client) => Some(client.chain_id()),
            ChainAccess::Offline { chain_id } => chain_id,
        };
        match configured {
            Some(configured) if configured != manifest.chain_id => {
                return Err(RuntimeError::ChainMismatch {
                    manifest: manifest.chain_id,
                    configured,
                });
            }
            Some(_) => {}
            None => {
                return Err(RuntimeError::Offline(
                    "no successful connection to this registry is on record, so the chain id \
                     cannot be checked"
                        .into(),
                ));
            }
        }
        if manifest.registry != self.registry {
            return Err(RuntimeError::RegistryMismatch {
                manifest: manifest.registry,
                configured: self.registry,
            });
        }
        Ok(())
    }

    /// Online: ask the chain and store the lease. Offline: require a fresh lease on record.
    async fn check_license(&self, opened: &Opened, key: &UsageKey) -> Result<(), RuntimeError> {
        let manifest = &opened.manifest;
        match self.chain {
            ChainAccess::Online(client) => {
                let check = match check_license(
                    client,
                    manifest.product_id,
                    Some(B256::from(manifest.code_hash.0)),
                    self.holder,
                )
                .await
                {
                    Ok(check) => check,
                    Err(e @ RuntimeError::Unlicensed { .. }) => {
                        self.journal.deactivate_lease(key, &e.to_string())?;
                        return Err(e);
                    }
                    Err(e) => return Err(e),
                };
                self.journal.store_lease(key, &check.lease)?;
                // Refuse before compiling when the escrow cannot pay for one more call.
                let usage = self.journal.usage(key)?;
                check
                    .lease
                    .admit(unix_now(), usage.billable_units() + 1, &self.policy)?;
                Ok(())
            }
            ChainAccess::Offline { .. } => {
                let lease = self.journal.lease(key)?.ok_or_else(|| {
                    RuntimeError::Offline(
                        "no license lease is on record for this product, customer and signer"
                            .into(),
                    )
                })?;
                let usage = self.journal.usage(key)?;
                lease.admit(unix_now(), usage.billable_units() + 1, &self.policy)?;
                tracing::warn!(
                    product = %manifest.name,
                    lease_age_s = unix_now().saturating_sub(lease.checked_at),
                    "RPC unreachable: running on the license lease of block {}",
                    lease.block
                );
                Ok(())
            }
        }
    }
}
