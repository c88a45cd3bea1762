//! The tariff ABI v1 layout (docs/METERING.md, "Tariff ABI v1"): decoding the
//! batch the host sends and encoding the answer. All integers little-endian.
//!
//! Input, `16 + 24·T + 24·E` bytes: `u32 version = 1, u32 T, u32 E,
//! u32 reserved = 0`, then `T` × `{u64 tenant, u64 before, u64 count}` with the
//! tenants strictly ascending, then `E` × `{u64 tenant, u64 seq, u64 ts_ns}`.
//!
//! Output, `16 + 16·T` bytes: `u32 version = 1, u32 flags, u32 T,
//! u32 reserved = 0`, then `T` × `{u64 tenant, u64 units}` in the input's
//! order.
//!
//! The functions here are pure and return [`Malformed`] for an input that
//! breaks the layout; only the wasm entry turns that into a trap.

use alloc::vec::Vec;

/// The only layout version this tariff speaks.
pub const VERSION: u32 = 1;
/// Bytes of the input and output headers.
pub const HEADER_LEN: usize = 16;
/// Bytes of one input tenant record `{tenant, before, count}`.
pub const TENANT_LEN: usize = 24;
/// Bytes of one event record `{tenant, seq, ts_ns}`.
pub const EVENT_LEN: usize = 24;
/// Bytes of one output record `{tenant, units}`.
pub const BILL_LEN: usize = 16;

/// One tenant of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantCount {
    /// The tenant's id (the cgroup id).
    pub tenant: u64,
    /// Events of this tenant billed before this batch.
    pub before: u64,
    /// New events of this tenant in this batch (authoritative: the events
    /// section can hold fewer when the ring buffer dropped some).
    pub count: u64,
}

/// Why an input is not a tariff ABI v1 batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Fewer than 16 bytes: no header.
    NoHeader {
        /// The input's length.
        len: usize,
    },
    /// The header's version is not 1.
    Version(u32),
    /// The header's reserved word is not 0.
    Reserved(u32),
    /// The length is not `16 + 24·T + 24·E`.
    Length {
        /// `16 + 24·T + 24·E` for the header's `T` and `E`.
        expected: u64,
        /// The input's length.
        actual: usize,
    },
    /// The tenant at this index is not greater than the one before it.
    TenantOrder {
        /// Index of the offending tenant record (≥ 1).
        index: usize,
    },
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// Decodes a batch and returns its tenants, in order. The events are checked
/// for their length only: this tariff prices the authoritative counts, and an
/// event's `seq` and `ts_ns` do not change a price.
pub fn decode(input: &[u8]) -> Result<Vec<TenantCount>, Malformed> {
    if input.len() < HEADER_LEN {
        return Err(Malformed::NoHeader { len: input.len() });
    }
    let version = u32_at(input, 0);
    if version != VERSION {
        return Err(Malformed::Version(version));
    }
    let tenants = u32_at(input, 4);
    let events = u32_at(input, 8);
    let reserved = u32_at(input, 12);
    if reserved != 0 {
        return Err(Malformed::Reserved(reserved));
    }
    // In u64: T and E are u32, so this is below 2^38 and cannot overflow, even
    // where usize is 32 bits wide.
    let expected = HEADER_LEN as u64
        + TENANT_LEN as u64 * u64::from(tenants)
        + EVENT_LEN as u64 * u64::from(events);
    if expected != input.len() as u64 {
        return Err(Malformed::Length {
            expected,
            actual: input.len(),
        });
    }
    // The length matched, so T records fit in memory.
    let mut out: Vec<TenantCount> = Vec::with_capacity(tenants as usize);
    for (index, record) in input[HEADER_LEN..]
        .chunks_exact(TENANT_LEN)
        .take(tenants as usize)
        .enumerate()
    {
        let t = TenantCount {
            tenant: u64_at(record, 0),
            before: u64_at(record, 8),
            count: u64_at(record, 16),
        };
        if let Some(previous) = out.last()
            && t.tenant <= previous.tenant
        {
            return Err(Malformed::TenantOrder { index });
        }
        out.push(t);
    }
    Ok(out)
}

/// Encodes the answer: the header with `flags`, then `{tenant, units}` per
/// tenant in the order given.
pub fn encode(flags: u32, bills: &[(u64, u64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + BILL_LEN * bills.len());
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    // T came from a u32 header field, so it fits.
    out.extend_from_slice(&(bills.len() as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    for &(tenant, units) in bills {
        out.extend_from_slice(&tenant.to_le_bytes());
        out.extend_from_slice(&units.to_le_bytes());
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::vec;

    /// Builds an input from its fields (header words given explicitly so tests
    /// can break them).
    pub(crate) fn input(
        header: [u32; 4],
        tenants: &[(u64, u64, u64)],
        events: &[(u64, u64, u64)],
    ) -> Vec<u8> {
        let mut bytes = Vec::new();
        for word in header {
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        for &(a, b, c) in tenants.iter().chain(events) {
            for v in [a, b, c] {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
        }
        bytes
    }

    /// A well-formed batch.
    pub(crate) fn batch(tenants: &[(u64, u64, u64)], events: &[(u64, u64, u64)]) -> Vec<u8> {
        input(
            [1, tenants.len() as u32, events.len() as u32, 0],
            tenants,
            events,
        )
    }

    #[test]
    fn decodes_tenants_in_order_and_reads_past_the_events() {
        let bytes = batch(
            &[(7, 0, 3), (4242, 9_999, 2)],
            &[(7, 1, 100), (7, 2, 150), (4242, 10_001, 170)],
        );
        assert_eq!(bytes.len(), 16 + 2 * 24 + 3 * 24);
        assert_eq!(
            decode(&bytes),
            Ok(vec![
                TenantCount {
                    tenant: 7,
                    before: 0,
                    count: 3
                },
                TenantCount {
                    tenant: 4242,
                    before: 9_999,
                    count: 2
                },
            ])
        );
    }

    #[test]
    fn empty_batches_decode() {
        assert_eq!(decode(&batch(&[], &[])), Ok(vec![]));
        assert_eq!(decode(&batch(&[(1, 5, 0)], &[])).unwrap().len(), 1);
    }

    #[test]
    fn byte_order_is_little_endian() {
        let bytes = batch(&[(0x0102_0304_0506_0708, 0x10, 0x20)], &[]);
        assert_eq!(
            &bytes[..16],
            &[1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(&bytes[16..24], &[8, 7, 6, 5, 4, 3, 2, 1]);
        let t = decode(&bytes).unwrap()[0];
        assert_eq!(
            (t.tenant, t.before, t.count),
            (0x0102_0304_0506_0708, 0x10, 0x20)
        );
    }

    #[test]
    fn encodes_header_and_records() {
        let out = encode(0, &[(7, 6), (4242, 3)]);
        let mut expected = vec![1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0];
        for v in [7u64, 6, 4242, 3] {
            expected.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(out, expected);
        assert_eq!(
            encode(0, &[]),
            [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(&encode(1, &[])[4..8], &[1, 0, 0, 0]);
    }

    #[test]
    fn short_inputs_have_no_header() {
        for len in 0..16 {
            assert_eq!(decode(&vec![0; len]), Err(Malformed::NoHeader { len }));
        }
    }

    #[test]
    fn wrong_version_or_reserved_is_malformed() {
        for version in [0, 2, u32::MAX] {
            let bytes = input([version, 0, 0, 0], &[], &[]);
            assert_eq!(decode(&bytes), Err(Malformed::Version(version)));
        }
        let bytes = input([1, 1, 0, 9], &[(1, 0, 1)], &[]);
        assert_eq!(decode(&bytes), Err(Malformed::Reserved(9)));
    }

    #[test]
    fn length_must_match_t_and_e() {
        let good = batch(&[(1, 0, 2), (2, 0, 1)], &[(1, 1, 0)]);
        let expected = good.len() as u64;
        // One byte short, one byte long, one record short.
        for actual in [good.len() - 1, good.len() - 24] {
            assert_eq!(
                decode(&good[..actual]),
                Err(Malformed::Length { expected, actual })
            );
        }
        let mut long = good.clone();
        long.push(0);
        assert_eq!(
            decode(&long),
            Err(Malformed::Length {
                expected,
                actual: long.len()
            })
        );
        // T and E as big as they go: no overflow, just a mismatch.
        let huge = input([1, u32::MAX, u32::MAX, 0], &[], &[]);
        assert_eq!(
            decode(&huge),
            Err(Malformed::Length {
                expected: 16 + 48 * u64::from(u32::MAX),
                actual: 16
            })
        );
    }

    #[test]
    fn tenants_must_be_strictly_ascending() {
        let repeated = batch(&[(5, 0, 1), (5, 0, 1)], &[]);
        assert_eq!(decode(&repeated), Err(Malformed::TenantOrder { index: 1 }));
        let descending = batch(&[(1, 0, 1), (9, 0, 1), (3, 0, 1)], &[]);
        assert_eq!(
            decode(&descending),
            Err(Malformed::TenantOrder { index: 2 })
        );
    }
}
