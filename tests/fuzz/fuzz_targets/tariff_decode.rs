//! The tariff answer decoder (`sealbox_runtime::event_meter::tariff::decode`,
//! compiled in from `runtime/src/event_meter/tariff/abi.rs`) on arbitrary
//! answers to arbitrary batches: no panic, and an accepted bill has exactly
//! one line per tenant of the batch, nothing charged for no events, and only
//! known flag bits. Half the inputs start from the well-formed answer to the
//! batch, so the checks past the layout are reached.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sealbox_fuzz::tariff_abi::{
    Batch, EventRecord, FLAG_OVERAGE, TARIFF_ABI_VERSION, TenantCount, decode, encode,
};

#[derive(Debug, Arbitrary)]
struct Input {
    tenants: Vec<(u64, u64, u64)>,
    events: Vec<(u64, u64, u64)>,
    well_formed: bool,
    flags: u32,
    owed: Vec<u64>,
    /// Byte edits applied to the answer: (position, xor).
    edits: Vec<(u16, u8)>,
    answer: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let batch = Batch {
        tenants: input
            .tenants
            .iter()
            .map(|&(tenant, before, count)| TenantCount {
                tenant,
                before,
                count,
            })
            .collect(),
        events: input
            .events
            .iter()
            .map(|&(tenant, seq, ts_ns)| EventRecord { tenant, seq, ts_ns })
            .collect(),
    };
    let _ = encode(&batch);
    let mut answer = if input.well_formed {
        let mut a = Vec::new();
        a.extend_from_slice(&TARIFF_ABI_VERSION.to_le_bytes());
        a.extend_from_slice(&(input.flags & 3).to_le_bytes());
        a.extend_from_slice(&(batch.tenants.len() as u32).to_le_bytes());
        a.extend_from_slice(&0u32.to_le_bytes());
        for (i, t) in batch.tenants.iter().enumerate() {
            let owed = input.owed.get(i).copied().unwrap_or(0);
            a.extend_from_slice(&t.tenant.to_le_bytes());
            a.extend_from_slice(&owed.to_le_bytes());
        }
        a
    } else {
        input.answer.clone()
    };
    for &(at, x) in &input.edits {
        if !answer.is_empty() {
            let at = usize::from(at) % answer.len();
            answer[at] ^= x;
        }
    }
    if let Ok(bill) = decode(&answer, &batch) {
        assert_eq!(bill.flags & !FLAG_OVERAGE, 0);
        let mut tenants: Vec<u64> = batch.tenants.iter().map(|t| t.tenant).collect();
        tenants.sort_unstable();
        tenants.dedup();
        assert_eq!(bill.units.keys().copied().collect::<Vec<_>>(), tenants);
        for t in &batch.tenants {
            if t.count == 0 {
                // The last line of a tenant listed twice is the one kept.
                let last = batch.tenants.iter().rev().find(|o| o.tenant == t.tenant);
                if last.is_some_and(|l| l.count == 0) {
                    assert_eq!(bill.units[&t.tenant], 0, "charged for no events");
                }
            }
        }
        let _ = bill.total();
    }
});
