//! Buying units ahead: pay before use.
//!
//! A runtime runs a unit only once it is bought on chain for its state
//! directory (the buyer). Units are bought in blocks with the cumulative
//! EIP-712 receipts of the registry: a receipt now says "this buyer has
//! bought N units in total, at no more than P wei each, if mined before T".
//! The contract charges the escrow for the units above the buyer's counter,
//! all or nothing, at the current price if it is within the cap.
//!
//! * **Block size**: about [`PrepayPolicy::ahead`] of calls at the current
//!   rate, clamped to `min_units..=max_units`, and capped by what the escrow
//!   can pay (`available`).
//! * **Paid** means mined in one block: the client waits for the receipt of
//!   the `settle` transaction. The receipt stays in the journal until a later
//!   license check reads a bought count at or above it, so a purchase a
//!   reorg dropped is sent again (the same receipt, while it has not
//!   expired), and a crash between signing and mining re-sends it instead of
//!   signing another.
//! * **Refused** purchases (price above the cap, escrow short, receipt
//!   expired, signer deauthorized) change nothing on chain; the receipt is
//!   dropped and the next attempt starts from a fresh license check.

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;
use license_contract::{RegistryClient, Settlement, SignedUsage};

use crate::error::RuntimeError;
use crate::gate::check_and_record;
use crate::journal::{Journal, UsageKey, off_worker};
use crate::lease::Lease;

/// How many units to buy at a time, and at what price.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrepayPolicy {
    /// Smallest block bought (also the block of one-shot `runtime run`).
    pub min_units: u64,
    /// Largest block bought.
    pub max_units: u64,
    /// Highest price per unit (wei) the customer accepts; `None` = the
    /// price read at the moment of buying, whatever it is.
    pub max_price: Option<u128>,
    /// How far ahead to buy, in time of calls at the current rate.
    pub ahead: Duration,
    /// How long a signed receipt may wait to be mined (by the chain's clock).
    pub receipt_ttl: Duration,
}

impl Default for PrepayPolicy {
    fn default() -> Self {
        Self {
            min_units: 100,
            max_units: 1_000_000,
            max_price: None,
            ahead: Duration::from_secs(60),
            receipt_ttl: Duration::from_secs(600),
        }
    }
}

impl PrepayPolicy {
    /// The next block for a call rate of `calls_per_sec`: `ahead` of calls,
    /// clamped to `min_units..=max_units`.
    pub fn block_units(&self, calls_per_sec: f64) -> u64 {
        let min = self.min_units.max(1);
        let max = self.max_units.max(min);
        let want = (calls_per_sec * self.ahead.as_secs_f64()).ceil();
        let want = if want.is_finite() && want > 0.0 {
            // `as` saturates for floats beyond u64::MAX.
            want as u64
        } else {
            0
        };
        want.clamp(min, max)
    }
}

/// A purchase that the chain confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bought {
    /// The counter the units were bought for.
    pub key: UsageKey,
    /// The buyer's cumulative bought units after it.
    pub cumulative: u64,
    /// The transaction's outcome.
    pub settlement: Settlement,
}

impl Bought {
    /// Units this purchase added (0 when the receipt had been mined before).
    pub fn units(&self) -> u64 {
        self.settlement.units_charged
    }
}

/// Buys units for the counters of one signer key, which also pays the gas.
#[derive(Debug, Clone, Copy)]
pub struct Buyer<'a> {
    /// The registry, connected with the signer's wallet.
    pub client: &'a RegistryClient,
    /// The receipt-signing key.
    pub signer: &'a PrivateKeySigner,
    /// The state directory's journal (written on the blocking pool, off the
    /// async workers).
    pub journal: &'a Arc<Journal>,
    /// Block size and price cap.
    pub policy: &'a PrepayPolicy,
}

/// Seconds a pending receipt must still have before it expires to be re-sent.
const RESEND_MARGIN_SECS: u64 = 30;

impl Buyer<'_> {
    /// Buys up to `units` more units for `key`, running release `code_hash`:
    /// re-checks the license (and records the lease), re-sends a receipt in
    /// flight if there is one, else signs and sends a new one, and records
    /// the confirmed purchase. Buys fewer units when the escrow cannot pay
    /// for `units`; fails when it cannot pay for one.
    pub async fn buy(
        &self,
        key: &UsageKey,
        code_hash: B256,
        units: u64,
    ) -> Result<Bought, RuntimeError> {
        let lease = self.check(key, code_hash).await?;
        if let Some(pending) = self.resendable(key, &lease).await? {
            return self.send(key, &pending).await;
        }
        if let Some(why) = &lease.cannot_buy {
            return Err(RuntimeError::CannotBuy(why.clone()));
        }
        if let Some(cap) = self.policy.max_price
            && lease.price_wei > cap
        {
            return Err(RuntimeError::PriceAboveCap {
                price: lease.price_wei,
                cap,
            });
        }
        let units = units.min(lease.affordable_units());
        if units == 0 {
            return Err(RuntimeError::CannotBuy(format!(
                "the available escrow ({} wei) does not pay for one unit at {} wei; deposit more \
                 (`runtime license deposit`)",
                lease.available_wei, lease.price_wei
            )));
        }
        let cumulative = lease.bought_units.saturating_add(units);
        let expires_at = lease
            .block_timestamp
            .saturating_add(self.policy.receipt_ttl.as_secs());
        let signed = self
            .client
            .sign_usage(
                self.signer,
                B256::from(key.product),
                Address::from(key.customer),
                B256::from(key.buyer),
                cumulative,
                lease.price_wei,
                expires_at,
            )
            .map_err(RuntimeError::Purchase)?;
        // Kept before sending: a crash from here on re-sends this receipt.
        let k = *key;
        off_worker(self.journal, move |j| j.store_pending(&k, &signed)).await?;
        self.send(key, &signed).await
    }

    /// Finishes what an earlier process left: re-checks the license of the
    /// release last run (recording what the chain says was bought) and
    /// re-sends a receipt in flight that the chain has not yet mined.
    /// Buys nothing new. `None` when there was nothing to re-send.
    pub async fn reconcile(&self, key: &UsageKey) -> Result<Option<Bought>, RuntimeError> {
        let k = *key;
        let release = off_worker(self.journal, move |j| j.lease(&k))
            .await?
            .map(|l| B256::from(l.release))
            .ok_or(crate::journal::JournalError::NoLease)?;
        let lease = self.check(key, release).await?;
        match self.resendable(key, &lease).await? {
            Some(pending) => self.send(key, &pending).await.map(Some),
            None => Ok(None),
        }
    }

    /// Checks the license on chain and stores the lease; a lapsed license
    /// deactivates the stored one.
    async fn check(&self, key: &UsageKey, code_hash: B256) -> Result<Lease, RuntimeError> {
        debug_assert_eq!(self.signer.address().into_array(), key.signer);
        check_and_record(self.client, self.journal, key, code_hash).await
    }

    /// The receipt in flight, when the chain (as `lease` read it) has not
    /// bought up to it yet and it can still be mined; any other receipt in
    /// flight is dropped (mined, expired or priced out).
    async fn resendable(
        &self,
        key: &UsageKey,
        lease: &Lease,
    ) -> Result<Option<SignedUsage>, RuntimeError> {
        let k = *key;
        let Some(pending) = off_worker(self.journal, move |j| j.pending(&k)).await? else {
            return Ok(None);
        };
        let r = pending.receipt;
        let unexpired = r.expires_at > lease.block_timestamp.saturating_add(RESEND_MARGIN_SECS);
        if r.cumulative_units > lease.bought_units && unexpired && r.max_price >= lease.price_wei {
            tracing::info!(
                product = %B256::from(key.product),
                cumulative = r.cumulative_units,
                "re-sending the purchase receipt in flight"
            );
            return Ok(Some(pending));
        }
        off_worker(self.journal, move |j| j.clear_pending(&k)).await?;
        Ok(None)
    }

    async fn send(&self, key: &UsageKey, signed: &SignedUsage) -> Result<Bought, RuntimeError> {
        match self.client.settle(signed).await {
            Ok(settlement) => {
                let k = *key;
                off_worker(self.journal, move |j| {
                    j.record_bought(&k, settlement.buyer_cumulative, settlement.tx.block_number)
                })
                .await?;
                tracing::info!(
                    product = %B256::from(key.product),
                    units = settlement.units_charged,
                    cumulative = settlement.buyer_cumulative,
                    wei = %settlement.wei_charged,
                    gas = settlement.tx.gas_used,
                    "bought units"
                );
                Ok(Bought {
                    key: *key,
                    cumulative: settlement.buyer_cumulative,
                    settlement,
                })
            }
            Err(e) => {
                if e.revert().is_some() {
                    // The chain refused it: it will never buy anything as it is.
                    let k = *key;
                    off_worker(self.journal, move |j| j.clear_pending(&k)).await?;
                }
                Err(RuntimeError::Purchase(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_follow_the_call_rate_within_bounds() {
        let p = PrepayPolicy {
            min_units: 100,
            max_units: 10_000,
            ..PrepayPolicy::default()
        };
        assert_eq!(p.block_units(0.0), 100);
        assert_eq!(p.block_units(f64::NAN), 100);
        assert_eq!(p.block_units(10.0), 600);
        assert_eq!(p.block_units(1e9), 10_000);
        assert_eq!(p.block_units(f64::INFINITY), 100);
        let odd = PrepayPolicy {
            min_units: 0,
            max_units: 0,
            ..p
        };
        assert_eq!(odd.block_units(5.0), 1, "never a zero block");
    }
}
