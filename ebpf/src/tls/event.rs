//! [`TlsEvent`]: one counted handshake, as the kernel writes it into the ring
//! buffer (`struct tls_event` in `bpf/tls.bpf.c`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::{Side, TlsError};

/// Size in bytes of one event record in the ring buffer.
///
/// Layout (little-endian, no padding), offsets in bytes:
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 8 | `seq`: the tenant's total right after this handshake's increment |
/// | 8 | 8 | `cgroup_id`: the tenant |
/// | 16 | 8 | `ts_ns`: `CLOCK_BOOTTIME` nanoseconds |
/// | 24 | 8 | `cookie`: socket cookie |
/// | 32 | 1 | `side`: 0 client, 1 server |
/// | 33 | 1 | `family`: 4 or 6 |
/// | 34 | 1 | `hs_type`: 1 ClientHello, 2 ServerHello |
/// | 35 | 1 | `ingress`: 1 when seen on ingress |
/// | 36 | 2 | `local_port` |
/// | 38 | 2 | `remote_port` |
/// | 40 | 16 | `local_addr` (IPv4: first 4 bytes, network order) |
/// | 56 | 16 | `remote_addr` |
pub const TLS_EVENT_SIZE: usize = 72;

/// One counted handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TlsEvent {
    /// The tenant's total right after this handshake was counted: 1, 2, 3, …
    /// per tenant, without gaps in the kernel. A consumer that recorded the
    /// last `seq` it processed skips events at or below it after a restart;
    /// the tenant's total minus the last `seq` processed is what it has not
    /// seen (still in the ring buffer, or dropped).
    pub seq: u64,
    /// The tenant: a cgroup id (see [`Tenancy`](crate::Tenancy)).
    pub tenant: u64,
    /// When the record was seen, `CLOCK_BOOTTIME` nanoseconds.
    pub ts_ns: u64,
    /// The socket's cookie (unique per socket while the system runs).
    pub cookie: u64,
    /// Which end of the connection the target was.
    pub side: Side,
    /// The handshake message: 1 ClientHello, 2 ServerHello.
    pub handshake_type: u8,
    /// Whether the record was seen arriving (ingress) rather than leaving.
    pub ingress: bool,
    /// The target's end of the connection.
    pub local: SocketAddr,
    /// The peer's end of the connection.
    pub remote: SocketAddr,
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn addr_at(bytes: &[u8], at: usize, family: u8, port: u16) -> Option<SocketAddr> {
    let raw: [u8; 16] = bytes.get(at..at + 16)?.try_into().ok()?;
    let ip = match family {
        4 => IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3])),
        _ => IpAddr::V6(Ipv6Addr::from(raw)),
    };
    Some(SocketAddr::new(ip, port))
}

impl TlsEvent {
    /// Decodes one ring buffer record.
    pub fn decode(bytes: &[u8]) -> Result<TlsEvent, TlsError> {
        let bad = |detail: String| TlsError::BadEvent { detail };
        if bytes.len() != TLS_EVENT_SIZE {
            return Err(bad(format!(
                "{} bytes, expected {TLS_EVENT_SIZE}",
                bytes.len()
            )));
        }
        let short = || bad("truncated".into());
        let side = match bytes[32] {
            0 => Side::Client,
            1 => Side::Server,
            other => return Err(bad(format!("side {other}"))),
        };
        let family = bytes[33];
        if family != 4 && family != 6 {
            return Err(bad(format!("address family {family}")));
        }
        let local_port = u16_at(bytes, 36).ok_or_else(short)?;
        let remote_port = u16_at(bytes, 38).ok_or_else(short)?;
        Ok(TlsEvent {
            seq: u64_at(bytes, 0).ok_or_else(short)?,
            tenant: u64_at(bytes, 8).ok_or_else(short)?,
            ts_ns: u64_at(bytes, 16).ok_or_else(short)?,
            cookie: u64_at(bytes, 24).ok_or_else(short)?,
            side,
            handshake_type: bytes[34],
            ingress: bytes[35] != 0,
            local: addr_at(bytes, 40, family, local_port).ok_or_else(short)?,
            remote: addr_at(bytes, 56, family, remote_port).ok_or_else(short)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_documented_layout() {
        let mut b = [0u8; TLS_EVENT_SIZE];
        b[0..8].copy_from_slice(&7u64.to_le_bytes());
        b[8..16].copy_from_slice(&1234u64.to_le_bytes());
        b[16..24].copy_from_slice(&99u64.to_le_bytes());
        b[24..32].copy_from_slice(&5u64.to_le_bytes());
        b[32] = 1;
        b[33] = 4;
        b[34] = 2;
        b[36..38].copy_from_slice(&8443u16.to_le_bytes());
        b[38..40].copy_from_slice(&50000u16.to_le_bytes());
        b[40..44].copy_from_slice(&[127, 0, 0, 1]);
        b[56..60].copy_from_slice(&[10, 0, 0, 2]);
        let e = TlsEvent::decode(&b).unwrap();
        assert_eq!((e.seq, e.tenant, e.ts_ns, e.cookie), (7, 1234, 99, 5));
        assert_eq!(
            (e.side, e.handshake_type, e.ingress),
            (Side::Server, 2, false)
        );
        assert_eq!(e.local, "127.0.0.1:8443".parse().unwrap());
        assert_eq!(e.remote, "10.0.0.2:50000".parse().unwrap());
    }

    #[test]
    fn refuses_other_sizes_and_fields() {
        assert!(TlsEvent::decode(&[0u8; TLS_EVENT_SIZE - 1]).is_err());
        let mut b = [0u8; TLS_EVENT_SIZE];
        b[33] = 5;
        assert!(TlsEvent::decode(&b).is_err());
        b[33] = 6;
        b[32] = 2;
        assert!(TlsEvent::decode(&b).is_err());
    }
}
