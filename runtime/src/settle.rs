//! Settlement: turning journaled usage into EIP-712 cumulative receipts and
//! `settle` transactions.
//!
//! Receipts are cumulative per signer, so settlement is idempotent by
//! construction: re-sending a receipt after a crash, a timeout or an RPC
//! outage charges nothing twice, and a later receipt covers every unit before
//! it. The journal is synced to disk before a receipt is signed, so a signed
//! receipt never claims units the journal could forget.

use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use license_contract::{RegistryClient, Settlement};

use crate::error::RuntimeError;
use crate::gate::{Holder, check_license, unix_now};
use crate::journal::{Journal, UsageKey};

/// What one settlement of one counter did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettleOutcome {
    /// The counter settled.
    pub key: UsageKey,
    /// Cumulative units the receipt claimed.
    pub cumulative_units: u64,
    /// The contract's answer (`None` when there was nothing new to settle).
    pub settlement: Option<Settlement>,
}

impl SettleOutcome {
    /// Units charged by this round.
    pub fn units_charged(&self) -> u64 {
        self.settlement.map(|s| s.units_charged).unwrap_or(0)
    }

    /// Wei charged by this round.
    pub fn wei_charged(&self) -> U256 {
        self.settlement.map(|s| s.wei_charged).unwrap_or_default()
    }

    /// Gas used by this round's transaction (0 when none was sent).
    pub fn gas_used(&self) -> u64 {
        self.settlement.map(|s| s.tx.gas_used).unwrap_or(0)
    }
}

/// Settles one counter: signs a receipt for its billable units (the larger of
/// the runtime's and the kernel's counts) when they exceed what is settled,
/// sends it, and records the result and a renewed lease in the journal.
///
/// `signer` must be the key the counter belongs to (`key.signer`); the
/// client's wallet pays the gas.
pub async fn settle_counter(
    client: &RegistryClient,
    signer: &PrivateKeySigner,
    journal: &Journal,
    key: &UsageKey,
) -> Result<SettleOutcome, RuntimeError> {
    debug_assert_eq!(signer.address().into_array(), key.signer);
    let usage = journal.usage(key)?;
    let cumulative = usage.billable_units();
    if cumulative <= usage.settled_units {
        return Ok(SettleOutcome {
            key: *key,
            cumulative_units: cumulative,
            settlement: None,
        });
    }
    let product_id = B256::from(key.product);
    let customer = Address::from(key.customer);
    // The chain may be ahead of the journal: a transaction mined after its
    // receipt was lost (an RPC outage between send and receipt), or a journal
    // restored from a backup. A stale receipt would charge nothing but still
    // cost gas, so ask first (one eth_call).
    let on_chain = client
        .signer_settled(product_id, customer, signer.address())
        .await?;
    if on_chain > usage.settled_units {
        journal.record_settled(key, on_chain)?;
    }
    if cumulative <= on_chain {
        return Ok(SettleOutcome {
            key: *key,
            cumulative_units: cumulative,
            settlement: None,
        });
    }
    journal.sync()?;
    let signed = client.sign_usage(signer, product_id, customer, cumulative, unix_now())?;
    let settlement = client.settle(&signed).await?;
    journal.record_settled(key, settlement.signer_settled)?;
    tracing::info!(
        product = %product_id,
        cumulative,
        units = settlement.units_charged,
        wei = %settlement.wei_charged,
        gas = settlement.tx.gas_used,
        ignored = settlement.ignored,
        "settled"
    );
    renew_lease(client, journal, key).await;
    Ok(SettleOutcome {
        key: *key,
        cumulative_units: cumulative,
        settlement: Some(settlement),
    })
}

/// Best-effort lease renewal after a settlement: the balance has changed.
async fn renew_lease(client: &RegistryClient, journal: &Journal, key: &UsageKey) {
    let holder = Holder {
        customer: Address::from(key.customer),
        signer: Address::from(key.signer),
    };
    match check_license(client, B256::from(key.product), None, holder).await {
        Ok(check) => {
            if let Err(e) = journal.store_lease(key, &check.lease) {
                tracing::warn!("storing the renewed lease failed: {e}");
            }
        }
        Err(RuntimeError::Unlicensed { reason, .. }) => {
            tracing::warn!("license inactive after settlement: {reason}");
            if let Err(e) = journal.deactivate_lease(key, &reason.to_string()) {
                tracing::warn!("recording the inactive license failed: {e}");
            }
        }
        Err(e) => tracing::warn!("license after settlement: {e}"),
    }
}
