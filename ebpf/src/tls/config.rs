//! [`TlsConfig`]: what to meter (target cgroup, side, ports, tenancy), where
//! to pin, and the quota switch.

use std::path::PathBuf;

use crate::TlsError;

/// Default pin directory of the TLS meter's maps.
pub const DEFAULT_TLS_PIN_DIR: &str = "/sys/fs/bpf/sealbox-tls";
/// Default ring buffer size in bytes (a power of two, a multiple of the page
/// size): room for 3,276 events of [`TLS_EVENT_SIZE`](crate::TLS_EVENT_SIZE)
/// bytes plus the kernel's 8-byte record header.
pub const DEFAULT_RING_BYTES: u32 = 256 * 1024;
/// Default capacity of the per-tenant counter map.
pub const DEFAULT_MAX_TENANTS: u32 = 1024;
/// Most ports [`Ports::Only`] may list (the kernel port set's capacity).
pub const MAX_PORTS: usize = 256;

/// Which end of the TLS connections the target's processes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The target makes TLS connections: its outgoing ClientHellos are
    /// counted, and its connects to metered ports take from the allowance.
    Client,
    /// The target serves TLS (a gateway): its served handshakes are counted
    /// (see [`ServerHook`]). Nothing is refused: the kernel cannot refuse a
    /// customer's incoming connection immediately (see docs/METERING.md).
    Server,
}

impl Side {
    /// `"client"` or `"server"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Side {
    type Err = TlsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "client" => Ok(Side::Client),
            "server" => Ok(Side::Server),
            other => Err(TlsError::Config {
                detail: format!("side must be `client` or `server`, not `{other}`"),
            }),
        }
    }
}

/// What counts as a served handshake on the server side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ServerHook {
    /// A ServerHello (handshake type 2) leaving the server (`cgroup_skb`
    /// egress): only handshakes the server answered. The default.
    #[default]
    EgressServerHello,
    /// A ClientHello (handshake type 1) arriving at the server
    /// (`cgroup_skb` ingress): every handshake attempt, answered or not.
    IngressClientHello,
}

/// The metered ports: the server's port, i.e. the remote port of a client's
/// connection and the local port of a server's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Ports {
    /// Every TCP port. With enforcement on, *every* TCP connect of the target
    /// then takes from the allowance.
    All,
    /// These ports only (at most [`MAX_PORTS`]); an empty list meters nothing.
    Only(Vec<u16>),
}

impl Default for Ports {
    /// Port 443 only.
    fn default() -> Self {
        Ports::Only(vec![443])
    }
}

/// Who a handshake is billed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Tenancy {
    /// The target cgroup: one tenant, whose id is the target's cgroup id
    /// ([`TlsMeter::target_id`](crate::TlsMeter::target_id)). The default.
    #[default]
    Target,
    /// The cgroup the socket was created in (the target or any cgroup below
    /// it): each child cgroup of the target is a tenant of its own.
    PerCgroup,
}

/// Settings for [`TlsMeter::attach`](crate::TlsMeter::attach).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// The target: a cgroup v2 directory (e.g. under `/sys/fs/cgroup/unified`).
    /// Processes in it and in every cgroup below it are metered; a socket
    /// belongs to the cgroup its creator was in when it created it. See
    /// [`CgroupDir`](crate::CgroupDir) to make one for a pid.
    pub target: PathBuf,
    /// Which end of the connections the target is.
    pub side: Side,
    /// What counts on the server side (ignored for [`Side::Client`]).
    pub server_hook: ServerHook,
    /// The metered ports.
    pub ports: Ports,
    /// Who a handshake is billed to.
    pub tenancy: Tenancy,
    /// Refuse connects past the allowance (client side). Off: let them
    /// through and count them ([`TlsStats::over_allowance`](crate::TlsStats)),
    /// to bill afterwards. Switch later with
    /// [`TlsMeter::set_enforcement`](crate::TlsMeter::set_enforcement).
    pub enforce: bool,
    /// Directory on bpffs for the pinned maps (default [`DEFAULT_TLS_PIN_DIR`]).
    /// One meter per directory at a time.
    pub pin_dir: PathBuf,
    /// Ring buffer size in bytes: a power of two and a multiple of the page
    /// size (4096 is the smallest). A ring buffer already pinned must have
    /// this size ([`TlsError::RingSize`]).
    pub ring_bytes: u32,
    /// Capacity of the per-tenant counter map. A pinned map keeps the
    /// capacity it was created with.
    pub max_tenants: u32,
    /// Whether bpffs may be mounted at /sys/fs/bpf when it is missing there.
    pub mount_bpffs: bool,
}

impl TlsConfig {
    /// Defaults for `target` and `side`: port 443, one tenant (the target),
    /// enforcement on, pins under [`DEFAULT_TLS_PIN_DIR`].
    pub fn new(target: impl Into<PathBuf>, side: Side) -> Self {
        Self {
            target: target.into(),
            side,
            server_hook: ServerHook::default(),
            ports: Ports::default(),
            tenancy: Tenancy::default(),
            enforce: true,
            pin_dir: PathBuf::from(DEFAULT_TLS_PIN_DIR),
            ring_bytes: DEFAULT_RING_BYTES,
            max_tenants: DEFAULT_MAX_TENANTS,
            mount_bpffs: true,
        }
    }

    /// Checks what can be checked without the kernel.
    pub(crate) fn validate(&self) -> Result<(), TlsError> {
        let bad = |detail: String| Err(TlsError::Config { detail });
        // SAFETY: sysconf has no preconditions.
        let page = u32::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        if !self.ring_bytes.is_power_of_two() || self.ring_bytes < page {
            return bad(format!(
                "ring_bytes must be a power of two of at least the page size ({page}), not {}",
                self.ring_bytes
            ));
        }
        if self.max_tenants == 0 {
            return bad("max_tenants must be at least 1".into());
        }
        if let Ports::Only(ports) = &self.ports
            && ports.len() > MAX_PORTS
        {
            return bad(format!(
                "at most {MAX_PORTS} metered ports, not {}",
                ports.len()
            ));
        }
        Ok(())
    }
}
