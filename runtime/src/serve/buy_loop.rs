//! The buying loop: keeps every served product ahead of its calls.
//!
//! A call runs only on a unit already bought (see [`crate::purchase`]). This
//! loop buys the next block while the current one is partly used — when the
//! unused bought units fall below half a block — so serving rarely waits for
//! a purchase. The block is about a minute of calls at the rate measured
//! here, within `--prepay-min-units..=--prepay-max-units` and what the escrow
//! can pay. A call that finds every bought unit used is answered 402 with
//! `Retry-After` and wakes this loop at once.
//!
//! Failed purchases are retried with exponential backoff while the failure
//! looks transient (RPC down); a refusal (price above the cap, escrow short,
//! license lapsed) waits for the next round, which starts from a fresh
//! license check.

use std::sync::Arc;
use std::time::{Duration, Instant};

use license_contract::RegistryError;
use tokio::sync::watch;

use super::Ledger;
use super::state::{App, Served};
use crate::error::RuntimeError;
use crate::purchase::{Bought, Buyer, PrepayPolicy};

/// How often the loop looks at every product when nothing wakes it.
const TICK: Duration = Duration::from_millis(500);
/// How often the journal's counters are flushed to the disk.
const SYNC_EVERY: Duration = Duration::from_secs(10);
/// Shortest window the call rate is measured over, in seconds.
const RATE_WINDOW_SECS: f64 = 0.25;
/// First delay after a failed purchase; doubled up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Per-product state of the loop: the measured call rate and the backoff.
struct Track {
    /// Whether the rate has a first sample to measure from.
    started: bool,
    last_used: u64,
    last_at: Instant,
    /// Calls per second, smoothed.
    rate: f64,
    retry_at: Option<Instant>,
    backoff: Duration,
    /// The last block bought: a product found starved buys at least 4× it.
    last_block: u64,
}

/// Runs until `stop` turns true; then flushes the journal once more.
pub(crate) async fn run(
    app: Arc<App>,
    ledger: Ledger,
    policy: PrepayPolicy,
    mut stop: watch::Receiver<bool>,
) {
    let mut tracks: Vec<Track> = app
        .products
        .iter()
        .map(|_| Track {
            started: false,
            last_used: 0,
            last_at: Instant::now(),
            rate: 0.0,
            retry_at: None,
            backoff: FIRST_BACKOFF,
            last_block: 0,
        })
        .collect();
    let mut last_sync = Instant::now();
    loop {
        for (served, track) in app.products.iter().zip(tracks.iter_mut()) {
            round(served, track, &ledger, &policy).await;
        }
        if last_sync.elapsed() >= SYNC_EVERY {
            sync(&ledger).await;
            last_sync = Instant::now();
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = app.buy_wake.notified() => {}
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
        }
    }
    sync(&ledger).await;
}

/// Flushes every counter to the disk, off the async workers.
async fn sync(ledger: &Ledger) {
    let journal = Arc::clone(&ledger.journal);
    match tokio::task::spawn_blocking(move || journal.sync()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("flushing the usage journal failed: {e}"),
        Err(e) => tracing::warn!("flushing the usage journal failed: {e}"),
    }
}

/// Looks at one product and buys its next block when the current one is
/// half used.
async fn round(served: &Arc<Served>, track: &mut Track, ledger: &Ledger, policy: &PrepayPolicy) {
    let product = Arc::clone(&served.product);
    let usage = match tokio::task::spawn_blocking(move || product.refresh_usage()).await {
        Ok(Ok(usage)) => usage,
        Ok(Err(e)) => {
            tracing::warn!(product = %served.id, "reading usage failed: {e}");
            return;
        }
        Err(e) => {
            tracing::warn!(product = %served.id, "reading usage failed: {e}");
            return;
        }
    };
    let used = usage.used_units();
    let now = Instant::now();
    // The rate is measured from this process's first look on, over at least a
    // quarter second: units used before a restart are not calls of the last
    // instant.
    if !track.started {
        track.started = true;
        track.last_used = used;
        track.last_at = now;
    } else {
        let dt = now.duration_since(track.last_at).as_secs_f64();
        if dt >= RATE_WINDOW_SECS {
            let measured = used.saturating_sub(track.last_used) as f64 / dt;
            track.rate = 0.5 * track.rate + 0.5 * measured;
            track.last_used = used;
            track.last_at = now;
        }
    }
    let mut block = policy.block_units(track.rate);
    if usage.unused_units() == 0 && track.last_block > 0 {
        // Calls are being refused while the rate is still being measured (a
        // burst, a cold start): ramp up geometrically instead of waiting.
        block = block
            .max(track.last_block.saturating_mul(4))
            .min(policy.max_units.max(policy.min_units));
    }
    let low_water = block / 2;
    served
        .product
        .buy_when_used(usage.bought_units.saturating_sub(low_water));
    // The flag only woke this round early; cleared on every round, since
    // calls made before this look are answered by it.
    served.product.take_wants_units();
    if usage.unused_units() > low_water {
        return;
    }
    if track.retry_at.is_some_and(|at| now < at) {
        return;
    }
    match buy(served, ledger, policy, block).await {
        Ok(bought) => {
            served.stats.bought(bought.settlement.tx.gas_used);
            served
                .product
                .buy_when_used(bought.cumulative.saturating_sub(low_water));
            // Calls made while the purchase was mined asked against the old mark.
            served.product.take_wants_units();
            track.retry_at = None;
            track.backoff = FIRST_BACKOFF;
            track.last_block = block;
        }
        Err(e) => {
            served.stats.purchase_failed();
            let delay = if transient(&e) {
                track.backoff
            } else {
                // A refusal changes only with the chain (a deposit, a new price):
                // look again at the next license refresh's pace.
                MAX_BACKOFF.min(Duration::from_secs(5))
            };
            tracing::warn!(
                product = %served.id,
                retry_in_ms = delay.as_millis() as u64,
                "buying units failed: {e}"
            );
            track.retry_at = Some(now + delay);
            track.backoff = (track.backoff * 2).min(MAX_BACKOFF);
        }
    }
}

async fn buy(
    served: &Served,
    ledger: &Ledger,
    policy: &PrepayPolicy,
    block: u64,
) -> Result<Bought, RuntimeError> {
    let client = ledger.chain.client().await?;
    let buyer = Buyer {
        client: &client,
        signer: &ledger.signer,
        journal: &ledger.journal,
        policy,
    };
    buyer
        .buy(
            served.product.usage_key(),
            served.product.code_hash(),
            block,
        )
        .await
}

/// Failures a retry may fix.
fn transient(e: &RuntimeError) -> bool {
    match e {
        RuntimeError::Chain(r) | RuntimeError::Purchase(r) => matches!(
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
