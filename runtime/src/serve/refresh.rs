//! The license refresh loop: every R seconds, each product's license is
//! checked on chain again and the answer stored as its lease.
//!
//! * active → a fresh lease (new balance, new settled count);
//! * not licensed, or the runtime's signer no longer authorized → the lease
//!   is marked inactive and that product answers 402 until a later check
//!   finds it active again; the other products are not affected;
//! * RPC failure → the stored lease stays; the journal admits each call only
//!   while it is fresh enough and the escrow covers the unsettled units.

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, B256};
use tokio::sync::watch;

use super::Ledger;
use super::metrics::CheckResult;
use super::state::{App, Served};
use crate::error::RuntimeError;
use crate::gate::{Holder, check_license};

/// Re-checks every product each `every` until `stop` turns true.
pub(crate) async fn run(
    app: Arc<App>,
    ledger: Ledger,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await; // the products were checked when they were loaded
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return;
                }
                continue;
            }
        }
        for served in &app.products {
            let result = refresh_one(served, &ledger).await;
            served.stats.license_checked(result);
        }
    }
}

async fn refresh_one(served: &Served, ledger: &Ledger) -> CheckResult {
    let key = served.product.usage_key();
    let client = match ledger.chain.client().await {
        Ok(client) => client,
        Err(e) => {
            tracing::warn!(product = %served.id, "license re-check: {e}; keeping the stored lease");
            return CheckResult::Error;
        }
    };
    let holder = Holder {
        customer: Address::from(key.customer),
        signer: Address::from(key.signer),
    };
    let code_hash = Some(B256::from(served.product.manifest().code_hash.0));
    match check_license(&client, served.id, code_hash, holder).await {
        Ok(check) => match ledger.journal.store_lease(key, &check.lease) {
            Ok(()) => CheckResult::Active,
            Err(e) => {
                tracing::warn!(product = %served.id, "storing the renewed lease failed: {e}");
                CheckResult::Error
            }
        },
        Err(e @ (RuntimeError::Unlicensed { .. } | RuntimeError::SignerNotAuthorized { .. })) => {
            tracing::warn!(product = %served.id, "license lapsed, refusing its calls: {e}");
            if let Err(je) = ledger.journal.deactivate_lease(key, &e.to_string()) {
                tracing::warn!(product = %served.id, "recording the lapsed license failed: {je}");
            }
            CheckResult::Inactive
        }
        Err(e) => {
            tracing::warn!(product = %served.id, "license re-check failed: {e}; keeping the stored lease");
            CheckResult::Error
        }
    }
}
