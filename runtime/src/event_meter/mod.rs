//! Kernel-event billing (`runtime meter`): events counted in the kernel
//! (TLS handshakes, [`sealbox_ebpf::TlsMeter`]) are priced by the vendor's
//! sealed [`tariff`], charged to the tariff's usage counter, bought on chain
//! with the same receipts as calls, and exported to Prometheus ([`metrics`]).
//!
//! The kernel's pinned per-tenant counter is the total of record. The
//! journal keeps, per tenant, how many events are billed, in the same
//! transaction as the units charged for them ([`Biller`]); a restart bills
//! `total − billed` again from the same counts, so a crash neither loses nor
//! repeats an event. Ring-buffer events (with their sequence numbers) are
//! handed to the tariff as detail; a dropped event is still billed, from the
//! counter.

pub mod metrics;
pub mod tariff;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::RuntimeError;
use crate::journal::{Journal, Usage};
use tariff::{Batch, EventRecord, Tariff, TenantCount};

/// What one billing round charged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Charged {
    /// New events billed, per tenant.
    pub events: BTreeMap<u64, u64>,
    /// Units charged for them, per tenant.
    pub units: BTreeMap<u64, u64>,
    /// The tariff counter's usage after the charge.
    pub usage: Usage,
}

/// Bills the events the kernel counted since the last round.
#[derive(Debug)]
pub struct Biller {
    journal: Arc<Journal>,
    epoch: u64,
    billed: BTreeMap<u64, u64>,
}

impl Biller {
    /// Picks up where the journal left off for the meter's map set `epoch`.
    pub fn open(journal: Arc<Journal>, epoch: u64) -> Result<Self, RuntimeError> {
        let billed = journal.events_billed(epoch)?;
        Ok(Self {
            journal,
            epoch,
            billed,
        })
    }

    /// The journal the charges go to.
    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    /// Events billed so far, per tenant.
    pub fn billed(&self) -> &BTreeMap<u64, u64> {
        &self.billed
    }

    /// Events billed so far for `tenant`.
    pub fn billed_for(&self, tenant: u64) -> u64 {
        self.billed.get(&tenant).copied().unwrap_or(0)
    }

    /// Bills every tenant whose kernel total is above what is billed, with
    /// `events` (drained from the ring buffer before `totals` was read) as
    /// detail; events already billed (a restart re-reading the pinned ring
    /// buffer) are left out. `None` when nothing new was counted.
    pub fn bill(
        &mut self,
        tariff: &Tariff,
        totals: &BTreeMap<u64, u64>,
        events: &[EventRecord],
    ) -> Result<Option<Charged>, RuntimeError> {
        let tenants: Vec<TenantCount> = totals
            .iter()
            .filter_map(|(&tenant, &total)| {
                let before = self.billed_for(tenant);
                (total > before).then_some(TenantCount {
                    tenant,
                    before,
                    count: total - before,
                })
            })
            .collect();
        if tenants.is_empty() {
            return Ok(None);
        }
        let events: Vec<EventRecord> = events
            .iter()
            .filter(|e| {
                let before = self.billed_for(e.tenant);
                e.seq > before && totals.get(&e.tenant).is_some_and(|t| e.seq <= *t)
            })
            .copied()
            .collect();
        let batch = Batch { tenants, events };
        let bill = tariff.bill(&batch)?;
        let progress: BTreeMap<u64, u64> = batch
            .tenants
            .iter()
            .map(|t| (t.tenant, t.before + t.count))
            .collect();
        let key = *tariff.product().usage_key();
        let usage = self
            .journal
            .charge_events(&key, self.epoch, &progress, bill.total())?;
        self.billed.extend(progress);
        Ok(Some(Charged {
            events: batch.tenants.iter().map(|t| (t.tenant, t.count)).collect(),
            units: bill.units,
            usage,
        }))
    }
}

/// The allowance of events the kernel lets through, kept in step with the
/// units bought: `granted` is the cumulative number of events the bought
/// units pay for (events billed + what the unused units buy at the tariff's
/// next prices), and the kernel's allowance grows by its increase.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    /// Cumulative events granted to the kernel so far (this process).
    pub granted: u64,
}

/// Largest allowance the host asks the tariff about, per look.
pub const MAX_ALLOWANCE_EVENTS: u64 = 1 << 40;

impl Allowance {
    /// The cumulative events that `usage`'s unused units pay for, given
    /// `billed` events billed so far for the tenant.
    pub fn affordable(tariff: &Tariff, billed: u64, usage: &Usage) -> Result<u64, RuntimeError> {
        let more = tariff.events_for(billed, usage.unused_units(), MAX_ALLOWANCE_EVENTS)?;
        Ok(billed.saturating_add(more))
    }
}
