//! The tariff ABI v1 without the tariff: the batch a tariff is asked to
//! price, its answer, and their encoding (`docs/METERING.md`, "The tariff").
//!
//! Plain data and byte layout only (std and `thiserror`), so that the answer
//! decoder can be fuzzed without building the runtime (`tests/fuzz`, target
//! `tariff_decode`, includes this file).

use std::collections::BTreeMap;

/// The entry a tariff exports.
pub const BILL_EXPORT: &str = "bill";
/// Layout version of the tariff ABI.
pub const TARIFF_ABI_VERSION: u32 = 1;
/// Flag bit: events past the bought allowance are let through and billed afterwards.
pub const FLAG_OVERAGE: u32 = 1;

/// One tenant's line of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantCount {
    /// The tenant (a cgroup id).
    pub tenant: u64,
    /// Events of this tenant billed before this batch.
    pub before: u64,
    /// New events in this batch.
    pub count: u64,
}

/// One event as the ring buffer delivered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRecord {
    /// The tenant.
    pub tenant: u64,
    /// The tenant's count after this event.
    pub seq: u64,
    /// Kernel monotonic time, in nanoseconds.
    pub ts_ns: u64,
}

/// What a tariff is asked to price.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// Per tenant, in ascending tenant order, each once.
    pub tenants: Vec<TenantCount>,
    /// The events seen (fewer than the counts when the ring buffer dropped some).
    pub events: Vec<EventRecord>,
}

/// A tariff's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bill {
    /// The tariff's flags ([`FLAG_OVERAGE`]).
    pub flags: u32,
    /// Units owed per tenant for the batch's new events.
    pub units: BTreeMap<u64, u64>,
}

impl Bill {
    /// Units owed over every tenant (saturating).
    pub fn total(&self) -> u64 {
        self.units.values().fold(0u64, |a, u| a.saturating_add(*u))
    }
}

/// Why a tariff's answer is not a bill.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TariffError {
    /// The answer breaks the layout (length, version, tenants, reserved field).
    #[error("the tariff's answer breaks the tariff ABI v1: {0}")]
    Layout(String),
    /// The tariff charged units for no events.
    #[error("the tariff charged {units} units for no events of tenant {tenant}")]
    ChargedNothing {
        /// The tenant.
        tenant: u64,
        /// What it charged.
        units: u64,
    },
    /// The tariff's flags changed from one call to the next.
    #[error("the tariff's flags changed from {before:#x} to {after:#x} between two calls")]
    FlagsChanged {
        /// Flags of the first answer.
        before: u32,
        /// Flags now.
        after: u32,
    },
    /// Units owed do not grow with the events (needed to invert the tariff).
    #[error(
        "the tariff is not monotone: {more} events after {before} cost {more_units} units, \
         fewer than the {less_units} units of {less} events"
    )]
    NotMonotone {
        /// Events billed before.
        before: u64,
        /// Fewer events.
        less: u64,
        /// Their units.
        less_units: u64,
        /// More events.
        more: u64,
        /// Their units.
        more_units: u64,
    },
}

/// Encodes a batch as the tariff's input.
pub fn encode(batch: &Batch) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 24 * (batch.tenants.len() + batch.events.len()));
    out.extend_from_slice(&TARIFF_ABI_VERSION.to_le_bytes());
    out.extend_from_slice(&(batch.tenants.len() as u32).to_le_bytes());
    out.extend_from_slice(&(batch.events.len() as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    for t in &batch.tenants {
        for v in [t.tenant, t.before, t.count] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    for e in &batch.events {
        for v in [e.tenant, e.seq, e.ts_ns] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

/// Decodes and checks a tariff's answer to `batch`.
pub fn decode(answer: &[u8], batch: &Batch) -> Result<Bill, TariffError> {
    let bad = |what: String| TariffError::Layout(what);
    let expected = 16 + 16 * batch.tenants.len();
    if answer.len() != expected {
        return Err(bad(format!(
            "{} bytes for {} tenants, expected {expected}",
            answer.len(),
            batch.tenants.len()
        )));
    }
    let u32_at = |at: usize| u32::from_le_bytes(answer[at..at + 4].try_into().unwrap_or([0; 4]));
    let u64_at = |at: usize| u64::from_le_bytes(answer[at..at + 8].try_into().unwrap_or([0; 8]));
    if u32_at(0) != TARIFF_ABI_VERSION {
        return Err(bad(format!("version {}, expected 1", u32_at(0))));
    }
    let flags = u32_at(4);
    if flags & !FLAG_OVERAGE != 0 {
        return Err(bad(format!("unknown flag bits {flags:#x}")));
    }
    if u32_at(8) as usize != batch.tenants.len() || u32_at(12) != 0 {
        return Err(bad(format!(
            "header says {} tenants (reserved {}), the batch has {}",
            u32_at(8),
            u32_at(12),
            batch.tenants.len()
        )));
    }
    let mut units = BTreeMap::new();
    for (i, line) in batch.tenants.iter().enumerate() {
        let tenant = u64_at(16 + 16 * i);
        let owed = u64_at(24 + 16 * i);
        if tenant != line.tenant {
            return Err(bad(format!(
                "line {i} is for tenant {tenant}, the batch's is {}",
                line.tenant
            )));
        }
        if line.count == 0 && owed != 0 {
            return Err(TariffError::ChargedNothing {
                tenant,
                units: owed,
            });
        }
        units.insert(tenant, owed);
    }
    Ok(Bill { flags, units })
}
