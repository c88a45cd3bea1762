//! The license refresh loop: every R seconds, each product's license is
//! checked on chain again — for the release being served — and the answer
//! stored as its lease; the signer's ETH balance is read for `/metrics`.
//!
//! * licensed → a fresh lease (price, available escrow, bought units);
//! * lapsed (customer or release revoked, product inactive), or the
//!   runtime's signer deauthorized → the lease is marked inactive and that
//!   product answers 402 until a later check finds it active again; units
//!   it bought and did not use are reported in the log and `/metrics`;
//! * RPC failure → the stored lease stays, and calls run on the units
//!   already bought.

use std::sync::Arc;
use std::time::Duration;

use alloy::providers::Provider;
use tokio::sync::watch;

use super::Ledger;
use super::metrics::CheckResult;
use super::state::{App, Served};
use crate::error::RuntimeError;
use crate::gate::check_and_record;
use crate::journal::off_worker;

/// Re-checks every product each `every` until `stop` turns true.
pub(crate) async fn run(
    app: Arc<App>,
    ledger: Ledger,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // The first tick is immediate: the products were checked when they
        // were loaded, but the signer's balance was not read.
        tokio::select! {
            _ = ticker.tick() => {}
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return;
                }
                continue;
            }
        }
        read_signer_balance(&app, &ledger).await;
        for served in &app.products {
            let result = refresh_one(served, &ledger).await;
            served.stats.license_checked(result);
        }
    }
}

async fn read_signer_balance(app: &App, ledger: &Ledger) {
    let Ok(client) = ledger.chain.client().await else {
        return;
    };
    match client.provider().get_balance(ledger.signer.address()).await {
        Ok(wei) => app.set_signer_balance(wei),
        Err(e) => tracing::warn!("reading the signer's balance failed: {e}"),
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
    match check_and_record(&client, &ledger.journal, key, served.product.code_hash()).await {
        Ok(_) => CheckResult::Active,
        Err(e @ (RuntimeError::Unlicensed { .. } | RuntimeError::SignerNotAuthorized { .. })) => {
            let key = *key;
            let unused = off_worker(&ledger.journal, move |j| j.usage(&key))
                .await
                .map(|u| u.unused_units())
                .unwrap_or(0);
            tracing::warn!(
                product = %served.id,
                unused_bought_units = unused,
                "license lapsed, refusing its calls: {e}"
            );
            CheckResult::Inactive
        }
        Err(e) => {
            tracing::warn!(product = %served.id, "license re-check failed: {e}; keeping the stored lease");
            CheckResult::Error
        }
    }
}
