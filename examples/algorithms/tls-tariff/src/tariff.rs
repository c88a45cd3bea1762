//! The price list: two tiers per tenant, counted over the tenant's whole
//! history, so a bill does not depend on how the events were cut into batches.
//!
//! `f(n)`, the units owed for a tenant's first `n` handshakes, is
//! `2 · min(n, 10 000) + max(n − 10 000, 0)`. A batch of `count` handshakes
//! after `before` already billed owes `f(before + count) − f(before)`.
//!
//! Nothing wraps: `before + count` and `f` saturate at `u64::MAX`. Saturating
//! addition of non-negative numbers is associative and `f` stays
//! non-decreasing, so batches still add up exactly to one batch and the units
//! never decrease as `count` grows, even at the clamp (which no real tenant
//! reaches: it is about 1.8 · 10¹⁹ handshakes).

/// Handshakes per tenant in the first tier.
pub const FIRST_TIER: u64 = 10_000;
/// Units per handshake in the first tier.
pub const FIRST_TIER_RATE: u64 = 2;
/// Units per handshake after the first tier.
pub const LATER_RATE: u64 = 1;

/// `f(n)`: the units owed for a tenant's first `n` handshakes, clamped at
/// `u64::MAX`.
pub fn cumulative(n: u64) -> u64 {
    let first = n.min(FIRST_TIER);
    let later = n - first;
    // first ≤ 10 000, so first × 2 cannot overflow; later × 1 neither, but the
    // rate is a constant that could change, so both products saturate.
    FIRST_TIER_RATE
        .saturating_mul(first)
        .saturating_add(LATER_RATE.saturating_mul(later))
}

/// Units owed for handshakes `before + 1 ..= before + count` of one tenant.
pub fn units(before: u64, count: u64) -> u64 {
    // f is non-decreasing, so the difference never underflows.
    cumulative(before.saturating_add(count)) - cumulative(before)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift64*) for the property tests:
    /// no dependency, the same cases on every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn cumulative_by_hand() {
        assert_eq!(cumulative(0), 0);
        assert_eq!(cumulative(1), 2);
        assert_eq!(cumulative(9_999), 19_998);
        assert_eq!(cumulative(10_000), 20_000);
        assert_eq!(cumulative(10_001), 20_001);
        assert_eq!(cumulative(25_000), 35_000);
    }

    #[test]
    fn tier_boundary() {
        // Handshakes 10 000 (2 units) and 10 001 (1 unit).
        assert_eq!(units(9_999, 2), 3);
        assert_eq!(units(9_999, 1), 2);
        assert_eq!(units(10_000, 1), 1);
        assert_eq!(units(0, 10_000), 20_000);
        assert_eq!(units(0, 10_001), 20_001);
    }

    #[test]
    fn zero_count_owes_nothing() {
        for before in [0, 1, 9_999, 10_000, 10_001, u64::MAX - 1, u64::MAX] {
            assert_eq!(units(before, 0), 0, "before {before}");
        }
    }

    #[test]
    fn nothing_wraps_near_the_top() {
        // f(n) = n + 10 000 past the first tier, which reaches u64::MAX at
        // n = u64::MAX − 10 000 and stays there.
        assert_eq!(cumulative(u64::MAX - 10_000), u64::MAX);
        assert_eq!(cumulative(u64::MAX - 10_001), u64::MAX - 1);
        assert_eq!(cumulative(u64::MAX), u64::MAX);
        assert_eq!(units(u64::MAX - 10_002, 1), 1);
        assert_eq!(units(u64::MAX - 10_001, 5), 1);
        assert_eq!(units(u64::MAX - 5, 10), 0);
        assert_eq!(units(u64::MAX, u64::MAX), 0);
        assert_eq!(units(0, u64::MAX), u64::MAX);
        assert_eq!(units(1, u64::MAX), u64::MAX - 2);
    }

    /// Splits `total` handshakes after `before` into random batches and checks
    /// that they owe exactly what one batch does.
    fn check_splits(rng: &mut Rng, before: u64, total: u64) {
        let whole = units(before, total);
        let mut billed = before;
        let mut left = total;
        let mut sum = 0u64;
        while left > 0 {
            // Mostly small batches, sometimes large, sometimes empty.
            let cap = match rng.below(4) {
                0 => 3,
                1 => 50,
                2 => left,
                _ => 1_000,
            };
            let count = rng.below(cap.min(left) + 1);
            sum += units(billed, count);
            billed = billed.saturating_add(count);
            left -= count;
        }
        assert_eq!(sum, whole, "before {before}, total {total}");
    }

    #[test]
    fn batch_splitting_gives_the_same_total_as_one_batch() {
        let mut rng = Rng(0x5ea1_b0c5);
        for _ in 0..2_000 {
            // Around the tier boundary, where a batch can straddle it.
            let before = rng.below(12_000);
            let total = rng.below(4_000);
            check_splits(&mut rng, before, total);
        }
        for _ in 0..200 {
            // At the clamp.
            let before = u64::MAX - rng.below(30_000);
            let total = rng.below(30_000);
            check_splits(&mut rng, before, total);
        }
        check_splits(&mut rng, 0, 50_000);
    }

    #[test]
    fn units_never_decrease_as_count_grows() {
        let mut rng = Rng(0x7a21ff);
        for _ in 0..2_000 {
            let before = match rng.below(3) {
                0 => rng.below(20_000),
                1 => u64::MAX - rng.below(20_000),
                _ => rng.next(),
            };
            let a = rng.below(20_000);
            let b = a + rng.below(20_000);
            assert!(
                units(before, a) <= units(before, b),
                "before {before}, {a} ≤ {b}"
            );
        }
    }
}
