//! The settle loop: every N units or T seconds, whichever comes first, one
//! round settles every product with unsettled units; a last round runs
//! after shutdown.
//!
//! Receipts are cumulative, so a round that failed, a transaction whose
//! receipt was lost, or a restart after a kill never charges a unit twice:
//! the next receipt simply claims the journal's cumulative count again.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use license_contract::RegistryError;
use tokio::sync::watch;
use tokio::time::Instant;

use super::Ledger;
use super::state::{App, Served};
use crate::error::RuntimeError;
use crate::settle::{SettleOutcome, settle_counter};

/// When and how hard to settle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettlePolicy {
    /// Settle once a product has run this many units since its last round.
    pub every_units: u64,
    /// Settle at least this often while there are unsettled units.
    pub every: Duration,
    /// Attempts per product and round when the RPC fails.
    pub max_attempts: u32,
    /// Delay before the first retry; doubled after each failure.
    pub first_backoff: Duration,
    /// Longest delay between two attempts.
    pub max_backoff: Duration,
    /// Attempts per product in the last round after shutdown (kept small so
    /// that an unreachable RPC does not hold the shutdown for long).
    pub final_attempts: u32,
}

impl Default for SettlePolicy {
    fn default() -> Self {
        Self {
            every_units: 1000,
            every: Duration::from_secs(60),
            max_attempts: 6,
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            final_attempts: 3,
        }
    }
}

/// Runs rounds until `stop` turns true, then one last round; returns how
/// many products the last round could not settle.
pub(crate) async fn run(
    app: Arc<App>,
    ledger: Ledger,
    policy: SettlePolicy,
    mut stop: watch::Receiver<bool>,
) -> u64 {
    // Units left unsettled by an earlier run (a kill, an outage) go first.
    let backlog = app.products.iter().any(|s| {
        s.product
            .usage()
            .map(|u| u.unsettled_units() > 0)
            .unwrap_or(false)
    });
    if backlog {
        round(&app, &ledger, &policy, Some(&stop), policy.max_attempts).await;
    }
    let mut next = Instant::now() + policy.every;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = app.settle_wake.notified() => {}
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
                continue;
            }
        }
        round(&app, &ledger, &policy, Some(&stop), policy.max_attempts).await;
        next = Instant::now() + policy.every;
    }
    tracing::info!("final settlement round");
    round(&app, &ledger, &policy, None, policy.final_attempts).await
}

/// Settles every product with unsettled units; returns the number that failed.
async fn round(
    app: &App,
    ledger: &Ledger,
    policy: &SettlePolicy,
    stop: Option<&watch::Receiver<bool>>,
    attempts: u32,
) -> u64 {
    let mut failed = 0;
    for served in &app.products {
        // Units admitted from here on count towards the next round.
        served.stats.pending_settle.store(0, Ordering::Relaxed);
        match settle_with_retry(served, ledger, policy, stop, attempts).await {
            Ok(outcome) => {
                if let Some(s) = outcome.settlement {
                    served.stats.settled(s.tx.gas_used);
                    if s.unpaid_units > 0 {
                        tracing::warn!(
                            product = %served.id,
                            unpaid = s.unpaid_units,
                            "the escrow did not cover the settled units; the license is now inactive"
                        );
                    }
                }
            }
            Err(e) => {
                failed += 1;
                served.stats.settle_failed();
                tracing::warn!(
                    product = %served.id,
                    "settlement failed, the units stay in the journal for the next round: {e}"
                );
            }
        }
    }
    failed
}

/// One product's settlement, retried with exponential backoff while the
/// failure looks transient (RPC unreachable or erroring, journal busy).
async fn settle_with_retry(
    served: &Served,
    ledger: &Ledger,
    policy: &SettlePolicy,
    stop: Option<&watch::Receiver<bool>>,
    attempts: u32,
) -> Result<SettleOutcome, RuntimeError> {
    let mut delay = policy.first_backoff;
    let mut attempt = 1;
    loop {
        let result = settle_once(served, ledger).await;
        match result {
            Err(e) if transient(&e) && attempt < attempts.max(1) => {
                tracing::info!(
                    product = %served.id,
                    attempt,
                    retry_in_ms = delay.as_millis() as u64,
                    "settlement attempt failed: {e}"
                );
                if !backoff(delay, stop).await {
                    return Err(e);
                }
                delay = (delay * 2).min(policy.max_backoff);
                attempt += 1;
            }
            other => return other,
        }
    }
}

async fn settle_once(served: &Served, ledger: &Ledger) -> Result<SettleOutcome, RuntimeError> {
    // Refresh the kernel count first: the receipt bills the larger count.
    let usage = served.product.usage()?;
    let key = served.product.usage_key();
    if usage.unsettled_units() == 0 {
        return Ok(SettleOutcome {
            key: *key,
            cumulative_units: usage.billable_units(),
            settlement: None,
        });
    }
    let client = ledger.chain.client().await?;
    settle_counter(&client, &ledger.signer, &ledger.journal, key).await
}

/// Sleeps `delay`; false when a stop request cut it short.
async fn backoff(delay: Duration, stop: Option<&watch::Receiver<bool>>) -> bool {
    let Some(stop) = stop else {
        tokio::time::sleep(delay).await;
        return true;
    };
    let mut stop = stop.clone();
    if *stop.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = stop.changed() => false,
    }
}

/// Failures a retry may fix.
fn transient(e: &RuntimeError) -> bool {
    match e {
        RuntimeError::Chain(r) => matches!(
            r,
            RegistryError::Unreachable { .. }
                | RegistryError::Rpc { .. }
                | RegistryError::TxFailed { .. }
                | RegistryError::MissingEvent { .. }
        ),
        RuntimeError::Journal(_) => true,
        _ => false,
    }
}
