//! The load pipeline: from sealed bytes to a runnable [`Product`], in the
//! order of the design and stopping at the first failure:
//!
//! parse → signature section → hash → signers → signer == vendor → manifest
//! schema (all in [`sealed_format::open`]) → chain id and registry match the
//! customer's configuration → on-chain license (or, offline, the stored
//! lease) and at least one unit bought or buyable → kernel meter if required
//! → decrypt → plaintext hash == `code_hash` → compile.
//!
//! Nothing is decrypted or compiled before the license holds.

use std::sync::Arc;

use alloy::primitives::{Address, B256};
use k256::ecdsa::SigningKey;
use license_contract::RegistryClient;
use sealbox_sandbox::{GuestLimits, Sandbox};
use sealed_format::{Metering, Opened};

use crate::error::RuntimeError;
use crate::gate::{Holder, check_and_record};
use crate::journal::{Journal, LastDeployment, UsageKey};
use crate::lease::LeaseRefusal;
use crate::metering::{KernelMeter, MeterUnavailable};
use crate::product::{Guest, Product};

/// How the chain is reached for this load.
#[derive(Debug, Clone, Copy)]
pub enum ChainAccess<'a> {
    /// Connected: the license is checked now and the lease renewed.
    Online(&'a RegistryClient),
    /// The RPC is unreachable: the stored lease decides, and only units
    /// already bought can run.
    Offline,
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
    /// Who runs, who signs receipts, which state directory buys.
    pub holder: Holder,
    /// The registry deployment every count is keyed by (read from the chain
    /// online; the last one recorded in the journal offline).
    pub deployment: LastDeployment,
    /// Key that decrypts modules encrypted to the customer.
    pub decrypt_key: Option<&'a SigningKey>,
    /// The kernel meter, when attached; `Err` holds why it is not.
    pub meter: Result<&'a Arc<KernelMeter>, &'a MeterUnavailable>,
    /// The billing unit the command meters, which the manifest's `unit` must
    /// name: [`CALL_UNIT`] for `run` and `serve`.
    pub unit: &'a str,
    /// The subcommand loading, for errors.
    pub command: &'static str,
    /// The product's units are kernel events another meter counts (the TLS
    /// meter of `runtime meter`): the call meter is neither needed nor used.
    pub kernel_events: bool,
}

/// The unit of products billed per call into the sandbox (`run`, `serve`).
pub const CALL_UNIT: &str = "call";

impl Loader<'_> {
    /// Runs the whole pipeline on `sealed`.
    ///
    /// Besides the license check (whose journal writes go to the blocking
    /// pool), the journal is read here and written by [`Product::new`]
    /// directly, and the module is compiled, on the calling thread: loading
    /// happens before anything is served (`runtime run`, and `runtime serve`
    /// before it binds, both on the thread blocking on the main future), so
    /// no other task waits on it.
    pub async fn load(&self, sealed: &[u8]) -> Result<Product, RuntimeError> {
        let opened = sealed_format::open(sealed)?;
        self.check_trust(&opened)?;
        self.check_unit(&opened)?;
        let manifest = &opened.manifest;
        let key = UsageKey {
            deployment: self.deployment.id,
            buyer: self.holder.buyer.0,
            product: manifest.product_id.0,
            customer: self.holder.customer.into_array(),
            signer: self.holder.signer.into_array(),
        };
        self.check_license(&opened, &key).await?;

        let meter = match (self.meter, manifest.metering) {
            _ if self.kernel_events => None,
            (Ok(meter), _) => Some(Arc::clone(meter)),
            (Err(why), Metering::KernelRequired) => {
                return Err(RuntimeError::MeterRequired(why.clone()));
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
        let guest = if opened.is_component() {
            let component = self
                .sandbox
                .compile_component(manifest.code_hash.0, &plaintext, &limits)?
                .only(&manifest.entry)?;
            Guest::Component(component)
        } else {
            let program = self
                .sandbox
                .compile(manifest.code_hash.0, &plaintext, &limits)?;
            if !manifest.entry.is_empty() {
                program.require_entries(&manifest.entry)?;
            }
            Guest::Module(program)
        };
        Product::new(
            opened.manifest.clone(),
            guest,
            key,
            Arc::clone(self.journal),
            meter,
        )
    }

    /// The manifest must name the chain and registry the customer trusts.
    fn check_trust(&self, opened: &Opened<'_>) -> Result<(), RuntimeError> {
        let manifest = &opened.manifest;
        let configured = self.deployment.chain_id;
        if configured != manifest.chain_id {
            return Err(RuntimeError::ChainMismatch {
                manifest: manifest.chain_id,
                configured,
            });
        }
        if manifest.registry != self.registry {
            return Err(RuntimeError::RegistryMismatch {
                manifest: manifest.registry,
                configured: self.registry,
            });
        }
        Ok(())
    }

    /// The manifest's unit must be what this command meters: a module billed
    /// per kernel event never runs per call, and the reverse.
    fn check_unit(&self, opened: &Opened<'_>) -> Result<(), RuntimeError> {
        let unit = &opened.manifest.unit;
        if unit == self.unit {
            return Ok(());
        }
        Err(RuntimeError::WrongUnit {
            unit: unit.clone(),
            expected: self.unit.to_string(),
            command: self.command,
            hint: if self.unit == CALL_UNIT && unit == "tls_handshake" {
                "; a TLS-handshake tariff runs under `runtime meter --tls --billing FILE`"
            } else if self.unit == CALL_UNIT {
                ""
            } else {
                "; a module billed per call runs under `runtime run` or `runtime serve`"
            },
        })
    }

    /// Online: ask the chain and store the lease. Offline: the stored lease.
    /// Either way, refuse before compiling when no bought unit is left and
    /// none can be bought.
    async fn check_license(&self, opened: &Opened<'_>, key: &UsageKey) -> Result<(), RuntimeError> {
        let manifest = &opened.manifest;
        let lease = match self.chain {
            ChainAccess::Online(client) => {
                check_and_record(client, self.journal, key, B256::from(manifest.code_hash.0))
                    .await?
            }
            ChainAccess::Offline => {
                let mut lease = self.journal.lease(key)?.ok_or_else(|| {
                    RuntimeError::Offline(
                        "no license check is on record for this product, customer and state \
                         directory"
                            .into(),
                    )
                })?;
                lease.cannot_buy = Some("the chain cannot be reached to buy more".into());
                tracing::warn!(
                    product = %manifest.name,
                    "RPC unreachable: running on units bought by block {}",
                    lease.bought_block
                );
                lease
            }
        };
        let usage = self.journal.usage(key)?;
        if let Some(reason) = lease.inactive {
            return Err(LeaseRefusal::Inactive(reason).into());
        }
        let buyable = lease.cannot_buy.is_none() && lease.affordable_units() > 0;
        if usage.unused_units() == 0 && !buyable {
            return Err(LeaseRefusal::NotBought {
                used: usage.used_units() + 1,
                bought: usage.bought_units,
                cannot_buy: Some(lease.cannot_buy.unwrap_or_else(|| {
                    format!(
                        "the available escrow ({} wei) does not pay for one unit at {} wei",
                        lease.available_wei, lease.price_wei
                    )
                })),
            }
            .into());
        }
        Ok(())
    }
}
