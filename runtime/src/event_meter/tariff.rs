//! The tariff: a sealed Wasm billing script that turns counted kernel events
//! into billed units (tariff ABI v1, `docs/METERING.md`, "The tariff").
//!
//! The host owns every count: each call gets, per tenant, the events billed
//! before and the new ones, and answers the units owed for the new ones. The
//! tariff is stateless (a fresh instance per call), so it can be replaced
//! between two batches without losing or repeating an event.

mod abi;

use alloy::primitives::B256;

pub use self::abi::{
    BILL_EXPORT, Batch, Bill, EventRecord, FLAG_OVERAGE, TARIFF_ABI_VERSION, TariffError,
    TenantCount, decode, encode,
};
use crate::error::RuntimeError;
use crate::product::Product;

/// A loaded tariff: a licensed sealed module with a `bill` entry whose
/// flags are known.
#[derive(Debug)]
pub struct Tariff {
    product: Product,
    flags: u32,
}

impl Tariff {
    /// Wraps a loaded product and asks it for the price of nothing, to learn
    /// its flags and check that it answers in the tariff ABI at all.
    pub fn new(product: Product) -> Result<Self, RuntimeError> {
        let entries = product.program()?.entries();
        if !entries.iter().any(|e| e == BILL_EXPORT) {
            return Err(RuntimeError::Tariff(TariffError::Layout(format!(
                "the module has no `{BILL_EXPORT}` entry (entries: {})",
                entries.join(", ")
            ))));
        }
        let probe = Batch {
            tenants: vec![TenantCount {
                tenant: 0,
                before: 0,
                count: 0,
            }],
            events: Vec::new(),
        };
        let mut tariff = Self { product, flags: 0 };
        tariff.flags = tariff.call(&probe)?.flags;
        Ok(tariff)
    }

    /// The loaded product (manifest, usage key).
    pub fn product(&self) -> &Product {
        &self.product
    }

    /// The release (code hash) being billed with.
    pub fn code_hash(&self) -> B256 {
        self.product.code_hash()
    }

    /// Whether the vendor lets events past the bought allowance through,
    /// to be billed afterwards.
    pub fn overage(&self) -> bool {
        self.flags & FLAG_OVERAGE != 0
    }

    /// Prices `batch`. The units are not charged here (the caller records
    /// them with the tenants' progress in one journal transaction).
    pub fn bill(&self, batch: &Batch) -> Result<Bill, RuntimeError> {
        let bill = self.call(batch)?;
        if bill.flags != self.flags {
            return Err(RuntimeError::Tariff(TariffError::FlagsChanged {
                before: self.flags,
                after: bill.flags,
            }));
        }
        Ok(bill)
    }

    fn call(&self, batch: &Batch) -> Result<Bill, RuntimeError> {
        let answer = self
            .product
            .program()?
            .bytes_call(BILL_EXPORT, &encode(batch))?
            .run()?;
        decode(&answer, batch).map_err(RuntimeError::Tariff)
    }

    /// Units owed for `count` events of one tenant after `before`.
    pub fn units_for(&self, before: u64, count: u64) -> Result<u64, RuntimeError> {
        let batch = Batch {
            tenants: vec![TenantCount {
                tenant: 0,
                before,
                count,
            }],
            events: Vec::new(),
        };
        Ok(self.bill(&batch)?.total())
    }

    /// The most events after `before` that `units` pay for: the tariff
    /// inverted by bisection (about 2·log2 calls). At most `cap` events.
    pub fn events_for(&self, before: u64, units: u64, cap: u64) -> Result<u64, RuntimeError> {
        // Grow an upper bound that costs more than `units` (or reach the cap).
        let mut low = 0u64; // affordable
        let mut high = 1u64;
        let mut low_units = 0u64;
        loop {
            if high >= cap {
                high = cap;
                let at_cap = self.units_for(before, cap)?;
                if at_cap <= units {
                    return Ok(cap);
                }
                break;
            }
            let cost = self.units_for(before, high)?;
            self.check_monotone(before, low, low_units, high, cost)?;
            if cost > units {
                break;
            }
            low = high;
            low_units = cost;
            high = high.saturating_mul(2);
        }
        // Invariant: cost(low) <= units < cost(high).
        while high - low > 1 {
            let mid = low + (high - low) / 2;
            let cost = self.units_for(before, mid)?;
            self.check_monotone(before, low, low_units, mid, cost)?;
            if cost <= units {
                low = mid;
                low_units = cost;
            } else {
                high = mid;
            }
        }
        Ok(low)
    }

    fn check_monotone(
        &self,
        before: u64,
        less: u64,
        less_units: u64,
        more: u64,
        more_units: u64,
    ) -> Result<(), RuntimeError> {
        if more_units < less_units {
            return Err(RuntimeError::Tariff(TariffError::NotMonotone {
                before,
                less,
                less_units,
                more,
                more_units,
            }));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> Batch {
        Batch {
            tenants: vec![
                TenantCount {
                    tenant: 7,
                    before: 9_999,
                    count: 2,
                },
                TenantCount {
                    tenant: 9,
                    before: 0,
                    count: 0,
                },
            ],
            events: vec![EventRecord {
                tenant: 7,
                seq: 10_001,
                ts_ns: 5,
            }],
        }
    }

    fn answer(flags: u32, lines: &[(u64, u64)]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&(lines.len() as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        for (t, u) in lines {
            out.extend_from_slice(&t.to_le_bytes());
            out.extend_from_slice(&u.to_le_bytes());
        }
        out
    }

    #[test]
    fn the_input_follows_the_documented_layout() {
        let bytes = encode(&batch());
        assert_eq!(bytes.len(), 16 + 24 * 2 + 24);
        assert_eq!(&bytes[0..4], &1u32.to_le_bytes());
        assert_eq!(&bytes[4..8], &2u32.to_le_bytes());
        assert_eq!(&bytes[8..12], &1u32.to_le_bytes());
        assert_eq!(&bytes[16..24], &7u64.to_le_bytes());
        assert_eq!(&bytes[24..32], &9_999u64.to_le_bytes());
        assert_eq!(&bytes[32..40], &2u64.to_le_bytes());
        // The event after the two tenant lines: tenant, seq, ts.
        assert_eq!(&bytes[64..72], &7u64.to_le_bytes());
        assert_eq!(&bytes[72..80], &10_001u64.to_le_bytes());
    }

    #[test]
    fn a_well_formed_answer_decodes() {
        let bill = decode(&answer(1, &[(7, 3), (9, 0)]), &batch()).unwrap();
        assert_eq!(bill.flags, FLAG_OVERAGE);
        assert_eq!(bill.units[&7], 3);
        assert_eq!(bill.total(), 3);
    }

    #[test]
    fn answers_that_break_the_layout_are_refused() {
        let b = batch();
        let short = &answer(0, &[(7, 3), (9, 0)])[..30];
        assert!(matches!(decode(short, &b), Err(TariffError::Layout(_))));
        let swapped = answer(0, &[(9, 0), (7, 3)]);
        assert!(matches!(decode(&swapped, &b), Err(TariffError::Layout(_))));
        let mut version = answer(0, &[(7, 3), (9, 0)]);
        version[0] = 2;
        assert!(matches!(decode(&version, &b), Err(TariffError::Layout(_))));
        let flags = answer(4, &[(7, 3), (9, 0)]);
        assert!(matches!(decode(&flags, &b), Err(TariffError::Layout(_))));
        let for_nothing = answer(0, &[(7, 3), (9, 1)]);
        assert_eq!(
            decode(&for_nothing, &b),
            Err(TariffError::ChargedNothing {
                tenant: 9,
                units: 1
            })
        );
    }
}
