//! [`TlsMeter`]: loads `bpf/tls.bpf.c`, reuses or pins its maps, writes the
//! configuration and attaches the programs to the target cgroup.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use aya::maps::{Array, HashMap, MapData};
use aya::programs::{CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSockAddr};
use aya::{Ebpf, EbpfError, EbpfLoader};

use crate::bpffs::{PinDirLock, ensure_pin_dir};
use crate::error::is_permission_error;
use crate::layout::pin_path;
use crate::privilege::{missing_tls_capabilities, raise_memlock};
use crate::tls::cgroup::{cgroup_id, cgroup_level, check_cgroup2_dir};
use crate::tls::maps::{
    CFG_ALL_PORTS, CFG_EGRESS_TYPE, CFG_ENFORCE, CFG_INGRESS_TYPE, CFG_TENANT_LEVEL, CONFIG,
    EVENTS, LAYOUT, PORTS, QUOTA, STATS, TOTALS, TlsMaps, stamp_layout, validate_pins,
};
use crate::{Ports, Quota, ServerHook, Side, Tenancy, TlsConfig, TlsError, TlsEvents, TlsStats};

/// The BPF object built from `bpf/tls.bpf.c` by build.rs.
static TLS_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tls.bpf.o"));

/// The compiled TLS BPF object (ELF), for tools and benchmarks that load it themselves.
pub fn tls_bpf_object() -> &'static [u8] {
    TLS_OBJECT
}

const EGRESS: &str = "tls_egress";
const INGRESS: &str = "tls_ingress";
const CONNECT4: &str = "tls_connect4";
const CONNECT6: &str = "tls_connect6";

/// TLS handshake types.
const CLIENT_HELLO: u64 = 1;
const SERVER_HELLO: u64 = 2;

/// The error text of `e` and all its sources.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

fn not_permitted(detail: String) -> TlsError {
    TlsError::NotPermitted {
        missing: missing_tls_capabilities(),
        detail,
    }
}

fn load_error(what: &str, e: &(dyn std::error::Error + 'static)) -> TlsError {
    let detail = format!("{what}: {}", chain(e));
    if is_permission_error(e) {
        not_permitted(detail)
    } else {
        TlsError::Load { detail }
    }
}

fn object_error(e: EbpfError) -> TlsError {
    match e {
        EbpfError::BtfError(_) | EbpfError::BtfRelocationError(_) | EbpfError::NoBTF => {
            crate::MeterError::BtfMissing { detail: chain(&e) }.into()
        }
        e => load_error("loading the TLS BPF object", &e),
    }
}

/// An attached TLS handshake meter. While it lives, the kernel counts the
/// target cgroup's TLS handshakes per tenant into pinned maps, sends one
/// event per counted handshake to the ring buffer ([`TlsMeter::take_events`]),
/// and (client side) takes one from the allowance per connect to a metered
/// port, refusing connects when it is empty if enforcement is on.
///
/// Dropping it detaches the programs: from then on nothing is counted and
/// nothing is refused. The pinned maps (totals, stats, allowance, the ring
/// buffer with what it still holds) stay for the next attach with the same
/// pin directory, or for a [`PinnedTls`](crate::PinnedTls) reader.
pub struct TlsMeter {
    /// Owns the programs and their links: dropped first (fields drop in
    /// order), which closes the links and so detaches the programs before the
    /// pin directory lock is released.
    _bpf: Ebpf,
    maps: TlsMaps,
    config: Array<MapData, u64>,
    events: Option<TlsEvents>,
    target: PathBuf,
    target_id: u64,
    side: Side,
    pin_dir: PathBuf,
    _lock: PinDirLock,
}

impl std::fmt::Debug for TlsMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMeter")
            .field("target", &self.target)
            .field("target_id", &self.target_id)
            .field("side", &self.side)
            .field("pin_dir", &self.pin_dir)
            .finish_non_exhaustive()
    }
}

impl TlsMeter {
    /// Attaches the meter to `config.target`.
    ///
    /// In order: checks CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN (naming what
    /// is missing), the configuration and the target (a cgroup v2
    /// directory); raises RLIMIT_MEMLOCK; makes sure the pin directory is on
    /// bpffs; takes the pin directory for this meter's life
    /// ([`TlsError::Busy`] if another meter has it); checks any maps pinned
    /// there against this build's layout and ring size; loads the programs
    /// reusing (or creating and pinning) the maps; writes the configuration
    /// and the port set; attaches `tls_egress` (client, or server with
    /// [`ServerHook::EgressServerHello`]) or `tls_ingress`, and on the client
    /// side `tls_connect4` and `tls_connect6`, to the target cgroup as BPF
    /// links (the kernel makes cgroup links multi-attach by itself: other
    /// programs on the cgroup and its ancestors keep running; asking for
    /// `BPF_F_ALLOW_MULTI` explicitly is refused with EINVAL).
    pub fn attach(config: &TlsConfig) -> Result<TlsMeter, TlsError> {
        let missing = missing_tls_capabilities();
        if !missing.is_empty() {
            return Err(TlsError::NotPermitted {
                detail: format!(
                    "this process (euid {}) lacks {}",
                    // SAFETY: geteuid has no preconditions.
                    unsafe { libc::geteuid() },
                    missing.join(", ")
                ),
                missing,
            });
        }
        config.validate()?;
        check_cgroup2_dir(&config.target)?;
        let target = std::fs::canonicalize(&config.target).map_err(|e| TlsError::NotCgroup2 {
            path: config.target.clone(),
            reason: e.to_string(),
        })?;
        let target_id = cgroup_id(&target)?;
        let tenant_level = match config.tenancy {
            Tenancy::PerCgroup => 0,
            Tenancy::Target => u64::from(cgroup_level(&target)?) + 1,
        };

        raise_memlock();
        ensure_pin_dir(&config.pin_dir, config.mount_bpffs)?;
        let pin_dir =
            std::fs::canonicalize(&config.pin_dir).map_err(|source| crate::MeterError::Io {
                operation: "resolving pin directory",
                path: config.pin_dir.clone(),
                source,
            })?;
        let lock = PinDirLock::try_acquire(&pin_dir)?.ok_or_else(|| TlsError::Busy {
            pin_dir: pin_dir.clone(),
        })?;
        validate_pins(&pin_dir, Some(config.ring_bytes))?;

        let mut bpf = EbpfLoader::new()
            // No CO-RE relocations in this object: skip parsing the kernel's BTF.
            .btf(None)
            .default_map_pin_directory(&pin_dir)
            .map_max_entries(TOTALS, config.max_tenants)
            .map_max_entries(EVENTS, config.ring_bytes)
            .load(TLS_OBJECT)
            .map_err(object_error)?;
        let mut take = |name: &str| {
            bpf.take_map(name).ok_or_else(|| TlsError::Load {
                detail: format!("the TLS BPF object has no map `{name}`"),
            })
        };
        let epoch = stamp_layout(&pin_dir, take(LAYOUT)?)?;
        let maps = TlsMaps::new(&pin_dir, take(TOTALS)?, take(STATS)?, take(QUOTA)?, epoch)?;
        let events = TlsEvents::new(&pin_path(&pin_dir, EVENTS), take(EVENTS)?)?;
        let config_map = take(CONFIG)?;
        let ports_map = take(PORTS)?;

        let map_err = |name: &str, operation, e: &dyn std::fmt::Display| TlsError::Map {
            path: PathBuf::from(name),
            operation,
            detail: e.to_string(),
        };
        let mut cfg: Array<MapData, u64> =
            Array::try_from(config_map).map_err(|e| map_err(CONFIG, "opening", &e))?;
        let (egress_type, ingress_type) = match (config.side, config.server_hook) {
            (Side::Client, _) => (CLIENT_HELLO, 0),
            (Side::Server, ServerHook::EgressServerHello) => (SERVER_HELLO, 0),
            (Side::Server, ServerHook::IngressClientHello) => (0, CLIENT_HELLO),
        };
        let all_ports = matches!(config.ports, Ports::All);
        for (slot, value) in [
            (CFG_ENFORCE, u64::from(config.enforce)),
            (CFG_ALL_PORTS, u64::from(all_ports)),
            (CFG_EGRESS_TYPE, egress_type),
            (CFG_INGRESS_TYPE, ingress_type),
            (CFG_TENANT_LEVEL, tenant_level),
        ] {
            cfg.set(slot, value, 0)
                .map_err(|e| map_err(CONFIG, "writing the configuration", &e))?;
        }
        let mut ports: HashMap<MapData, u16, u8> =
            HashMap::try_from(ports_map).map_err(|e| map_err(PORTS, "opening", &e))?;
        if let Ports::Only(list) = &config.ports {
            for port in list {
                ports
                    .insert(port, 1, 0)
                    .map_err(|e| map_err(PORTS, "writing the port set", &e))?;
            }
        }

        let cgroup = File::open(&target).map_err(|e| TlsError::NotCgroup2 {
            path: target.clone(),
            reason: e.to_string(),
        })?;
        let mut attach_skb = |name: &'static str, kind: CgroupSkbAttachType| {
            let program: &mut CgroupSkb = bpf
                .program_mut(name)
                .ok_or_else(|| TlsError::Load {
                    detail: format!("the TLS BPF object has no program `{name}`"),
                })?
                .try_into()
                .map_err(|e| load_error(name, &e))?;
            program
                .load()
                .map_err(|e| load_error(&format!("loading {name}"), &e))?;
            program
                .attach(&cgroup, kind, CgroupAttachMode::Single)
                .map(drop)
                .map_err(|e| attach_error(name, &target, &e))
        };
        if egress_type != 0 {
            attach_skb(EGRESS, CgroupSkbAttachType::Egress)?;
        }
        if ingress_type != 0 {
            attach_skb(INGRESS, CgroupSkbAttachType::Ingress)?;
        }
        if config.side == Side::Client {
            for name in [CONNECT4, CONNECT6] {
                let program: &mut CgroupSockAddr = bpf
                    .program_mut(name)
                    .ok_or_else(|| TlsError::Load {
                        detail: format!("the TLS BPF object has no program `{name}`"),
                    })?
                    .try_into()
                    .map_err(|e| load_error(name, &e))?;
                program
                    .load()
                    .map_err(|e| load_error(&format!("loading {name}"), &e))?;
                program
                    .attach(&cgroup, CgroupAttachMode::Single)
                    .map_err(|e| attach_error(name, &target, &e))?;
            }
        }

        Ok(TlsMeter {
            _bpf: bpf,
            maps,
            config: cfg,
            events: Some(events),
            target,
            target_id,
            side: config.side,
            pin_dir,
            _lock: lock,
        })
    }

    /// Handshakes counted for `tenant` (a cgroup id; 0 when none), by every
    /// meter that used this pin directory since its maps were created. This is
    /// the total of record.
    pub fn total(&self, tenant: u64) -> Result<u64, TlsError> {
        self.maps.total(tenant)
    }

    /// Handshakes counted per tenant (cgroup id → total).
    pub fn totals(&self) -> Result<BTreeMap<u64, u64>, TlsError> {
        self.maps.totals()
    }

    /// Counted handshakes whose event did not fit in the ring buffer.
    pub fn dropped(&self) -> Result<u64, TlsError> {
        self.maps.dropped()
    }

    /// Connects refused because the allowance was empty.
    pub fn refused(&self) -> Result<u64, TlsError> {
        self.maps.refused()
    }

    /// All side counters.
    pub fn stats(&self) -> Result<TlsStats, TlsError> {
        self.maps.stats()
    }

    /// The event reader, the first time it is asked for (`None` after).
    /// It reads the pinned ring buffer and may outlive the meter.
    pub fn take_events(&mut self) -> Option<TlsEvents> {
        self.events.take()
    }

    /// Makes the allowance `n` connects from now: granted = admitted + n.
    /// Connects admitted while this runs come out of the `n`.
    pub fn set_allowance(&self, n: u64) -> Result<(), TlsError> {
        self.maps.set_allowance(n)
    }

    /// Adds `n` connects to the allowance (to what remains of it; connects
    /// let through over it with enforcement off are not carried as a debt).
    pub fn add_allowance(&self, n: u64) -> Result<(), TlsError> {
        self.maps.add_allowance(n)
    }

    /// Connects still allowed.
    pub fn allowance(&self) -> Result<u64, TlsError> {
        Ok(self.maps.quota()?.remaining())
    }

    /// The allowance state: granted and admitted, cumulative.
    pub fn quota(&self) -> Result<Quota, TlsError> {
        self.maps.quota()
    }

    /// Switches enforcement: on, connects to metered ports are refused
    /// (`EPERM`) once the allowance is empty; off, they go through and are
    /// counted in [`TlsStats::over_allowance`], to bill afterwards.
    pub fn set_enforcement(&mut self, on: bool) -> Result<(), TlsError> {
        self.config
            .set(CFG_ENFORCE, u64::from(on), 0)
            .map_err(|e| TlsError::Map {
                path: PathBuf::from(CONFIG),
                operation: "writing the enforcement switch",
                detail: e.to_string(),
            })
    }

    /// Whether connects past the allowance are refused.
    pub fn enforcing(&self) -> Result<bool, TlsError> {
        self.config
            .get(&CFG_ENFORCE, 0)
            .map(|v| v != 0)
            .map_err(|e| TlsError::Map {
                path: PathBuf::from(CONFIG),
                operation: "reading the enforcement switch",
                detail: e.to_string(),
            })
    }

    /// A random nonzero id chosen when the pinned maps were created: a
    /// different epoch than the one recorded with an earlier total means the
    /// maps were re-created (reboot, or pins removed) and totals restarted
    /// from zero.
    pub fn epoch(&self) -> u64 {
        self.maps.epoch()
    }

    /// The target cgroup directory (canonical path).
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// The target's cgroup id: the one tenant under [`Tenancy::Target`].
    pub fn target_id(&self) -> u64 {
        self.target_id
    }

    /// Which end of the connections the target is.
    pub fn side(&self) -> Side {
        self.side
    }

    /// The pin directory (canonical path).
    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// Detaches now (what dropping does).
    pub fn detach(self) {
        drop(self);
    }
}

fn attach_error(
    program: &'static str,
    cgroup: &Path,
    e: &(dyn std::error::Error + 'static),
) -> TlsError {
    if is_permission_error(e) {
        return not_permitted(format!(
            "attaching {program} to {}: {}",
            cgroup.display(),
            chain(e)
        ));
    }
    TlsError::Attach {
        program,
        cgroup: cgroup.to_owned(),
        detail: chain(e),
    }
}
