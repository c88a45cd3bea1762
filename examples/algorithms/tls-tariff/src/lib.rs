//! `tls-tariff`: an example sealed tariff for `runtime meter` — the vendor's
//! price list for TLS handshakes counted in the kernel (issue 10).
//!
//! Export `bill` (ABI v1, see `sealbox-guest`) speaks the **tariff ABI v1** of
//! docs/METERING.md ("The tariff: a sealed Wasm billing script"): a batch in
//! (`{tenant, before, count}` per tenant, then the events), the units owed per
//! tenant out, with `flags = 0` (no overage: the kernel refuses handshakes past
//! the bought allowance).
//!
//! The price is tiered per tenant: 2 units per handshake for a tenant's first
//! 10 000 handshakes, 1 unit per handshake after. The first `n` handshakes of
//! a tenant owe `f(n) = 2·min(n, 10 000) + max(n − 10 000, 0)` units, and a
//! batch owes `f(before + count) − f(before)`, which depends only on the input
//! (every call runs in a fresh instance; the host carries `before`) and adds
//! up exactly across any cut into batches:
//!
//! ```text
//! tenant 7:    before 0,     count 3 → f(3) − f(0)          = 6 − 0         = 6 units
//! tenant 4242: before 9 999, count 2 → f(10 001) − f(9 999) = 20 001 − 19 998 = 3 units
//! ```
//!
//! Nothing wraps: sums and `f` saturate at `u64::MAX` ([`tariff`]).
//!
//! **Malformed input traps.** An input that is not a tariff ABI v1 batch —
//! another version, a reserved word that is not 0, a length other than
//! `16 + 24·T + 24·E`, tenants not strictly ascending — gets no answer: the
//! entry panics, which traps with `sealbox-guest`'s `no-std` panic handler, so
//! the host sees a broken tariff instead of a plausible bill. The pure
//! functions ([`bill`], [`layout::decode`]) return [`layout::Malformed`]
//! instead, for tests.
#![cfg_attr(target_arch = "wasm32", no_std)]
#![deny(missing_docs)]

extern crate alloc;

pub mod layout;
pub mod tariff;

use alloc::vec::Vec;

use layout::Malformed;

/// The answer's flags: no overage (bit 0 clear), every other bit 0.
pub const FLAGS: u32 = 0;

sealbox_guest::entry!(
    /// ABI v1 entry: prices the tariff ABI v1 batch at `ptr..ptr + len`;
    /// traps on a malformed batch.
    bill => crate::bill_or_trap
);

/// Prices a tariff ABI v1 batch: the encoded answer, or why the input is not a
/// batch.
pub fn bill(input: &[u8]) -> Result<Vec<u8>, Malformed> {
    let tenants = layout::decode(input)?;
    let bills: Vec<(u64, u64)> = tenants
        .iter()
        .map(|t| (t.tenant, tariff::units(t.before, t.count)))
        .collect();
    Ok(layout::encode(FLAGS, &bills))
}

/// [`bill`], panicking on a malformed batch: in the wasm module a panic traps
/// (no message is formatted), so a broken input never gets a bill.
pub fn bill_or_trap(input: &[u8]) -> Vec<u8> {
    match bill(input) {
        Ok(answer) => answer,
        Err(_) => panic!("not a tariff ABI v1 batch"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use layout::tests::{batch, input};

    /// The answer's `{tenant, units}` records, after checking its header.
    fn records(answer: &[u8], tenants: u32) -> Vec<(u64, u64)> {
        let word = |at: usize| u32::from_le_bytes(answer[at..at + 4].try_into().unwrap());
        let long = |at: usize| u64::from_le_bytes(answer[at..at + 8].try_into().unwrap());
        assert_eq!(answer.len(), 16 + 16 * tenants as usize);
        assert_eq!(
            [word(0), word(4), word(8), word(12)],
            [1, FLAGS, tenants, 0]
        );
        (0..tenants as usize)
            .map(|i| (long(16 + 16 * i), long(24 + 16 * i)))
            .collect()
    }

    #[test]
    fn worked_example() {
        // README "Worked example": tenant 7 starts, tenant 4242 crosses the
        // tier boundary; one event of tenant 7 was dropped (E = 4 < 5).
        let answer = bill(&batch(
            &[(7, 0, 3), (4242, 9_999, 2)],
            &[
                (7, 1, 1_000),
                (7, 3, 3_000),
                (4242, 10_000, 3_500),
                (4242, 10_001, 4_000),
            ],
        ))
        .unwrap();
        assert_eq!(records(&answer, 2), [(7, 6), (4242, 3)]);
    }

    #[test]
    fn tier_boundary() {
        let answer = bill(&batch(&[(1, 9_999, 2)], &[])).unwrap();
        assert_eq!(records(&answer, 1), [(1, 3)]);
    }

    #[test]
    fn zero_count_is_zero_units() {
        let answer = bill(&batch(&[(1, 0, 0), (2, 9_999, 0), (3, u64::MAX, 0)], &[])).unwrap();
        assert_eq!(records(&answer, 3), [(1, 0), (2, 0), (3, 0)]);
        assert_eq!(records(&bill(&batch(&[], &[])).unwrap(), 0), []);
    }

    #[test]
    fn price_query_without_events() {
        // E = 0: the host asks what 20 000 more handshakes would cost.
        let answer = bill(&batch(&[(9, 5_000, 20_000)], &[])).unwrap();
        // 5 000 at 2 units, then 15 000 at 1.
        assert_eq!(records(&answer, 1), [(9, 25_000)]);
    }

    #[test]
    fn many_tenants_keep_their_order() {
        let tenants: Vec<(u64, u64, u64)> =
            (0..50).map(|i| (i * 1_000 + 3, i * 400, i * 7)).collect();
        let answer = bill(&batch(&tenants, &[])).unwrap();
        let expected: Vec<(u64, u64)> = tenants
            .iter()
            .map(|&(t, before, count)| (t, tariff::units(before, count)))
            .collect();
        assert_eq!(records(&answer, 50), expected);
    }

    #[test]
    fn splitting_a_batch_across_calls_bills_the_same() {
        // Two tenants, 24 000 handshakes each, cut differently into calls.
        let one = records(
            &bill(&batch(&[(1, 0, 24_000), (2, 0, 24_000)], &[])).unwrap(),
            2,
        );
        let cuts = [(0, 9_000), (9_000, 1_001), (10_001, 13_999)];
        let mut sum = [0u64; 2];
        for (before, count) in cuts {
            let r = records(
                &bill(&batch(&[(1, before, count), (2, before, count)], &[])).unwrap(),
                2,
            );
            sum[0] += r[0].1;
            sum[1] += r[1].1;
        }
        assert_eq!(one, [(1, 34_000), (2, 34_000)]);
        assert_eq!(sum, [34_000, 34_000]);
    }

    #[test]
    fn malformed_batches_are_errors_and_panic_in_the_entry() {
        let bad = [
            input([2, 0, 0, 0], &[], &[]),
            input([1, 0, 0, 1], &[], &[]),
            input([1, 1, 0, 0], &[], &[]),
            batch(&[(2, 0, 1), (1, 0, 1)], &[]),
            vec![1, 0, 0],
        ];
        for input in &bad {
            assert!(bill(input).is_err(), "{input:?}");
            let input = input.clone();
            assert!(std::panic::catch_unwind(move || bill_or_trap(&input)).is_err());
        }
    }
}
