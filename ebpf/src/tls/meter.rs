//! [`TlsMeter`]: loads `bpf/tls.bpf.c`, reuses or pins its maps, writes the
//! configuration and attaches the programs to the target cgroup.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use aya::maps::{Array, HashMap, MapData};
use aya::programs::links::{FdLink, LinkError};
use aya::programs::{CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSockAddr};
use aya::{Ebpf, EbpfError, EbpfLoader};

use crate::bpffs::{PinDirLock, ensure_pin_dir};
use crate::error::is_permission_error;
use crate::layout::pin_path;
use crate::privilege::{missing_tls_capabilities, raise_memlock};
use crate::tls::cgroup::{cgroup_id, cgroup_level, check_cgroup2_dir};
use crate::tls::links::{self, Hook, PinnedHook};
use crate::tls::maps::{
    CFG_ALL_PORTS, CFG_EGRESS_TYPE, CFG_ENFORCE, CFG_INGRESS_TYPE, CFG_TENANT_LEVEL, CONFIG,
    EVENTS, LAYOUT, PINNED_MAPS, PORTS, QUOTA, STATS, TOTALS, TlsMaps, stamp_layout, validate_pins,
};
use crate::{Ports, Quota, ServerHook, Side, Tenancy, TlsConfig, TlsError, TlsEvents, TlsStats};

/// The BPF object built from `bpf/tls.bpf.c` by build.rs.
static TLS_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tls.bpf.o"));

/// The compiled TLS BPF object (ELF), for tools and benchmarks that load it themselves.
pub fn tls_bpf_object() -> &'static [u8] {
    TLS_OBJECT
}

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

/// An attached TLS handshake meter. The kernel counts the target cgroup's TLS
/// handshakes per tenant into pinned maps, sends one event per counted
/// handshake to the pinned ring buffer ([`TlsMeter::take_events`]), and
/// (client side) takes one from the allowance per connect to a metered port,
/// refusing connects when it is empty if enforcement is on.
///
/// **The attachments outlive the meter.** The programs are attached as BPF
/// links pinned in the pin directory, next to the maps. Dropping a
/// `TlsMeter`, or the process exiting or being killed (SIGKILL included),
/// does **not** detach them: while no meter runs the kernel keeps counting
/// handshakes into the pinned totals, keeps writing events into the pinned
/// ring buffer (what does not fit is counted in
/// [`TlsStats::dropped`](crate::TlsStats::dropped)), and keeps enforcing the
/// allowance as last set: with enforcement on, connects past it are refused
/// (the allowance only shrinks until a meter grants more); with enforcement
/// off (overage), it stays off and connects past it go through, counted in
/// [`TlsStats::over_allowance`](crate::TlsStats::over_allowance). The next
/// [`TlsMeter::attach`] with the same pin directory, target and side takes
/// the pinned links over instead of attaching again (which would count each
/// handshake twice). Only [`TlsMeter::detach_and_unpin`] or
/// [`TlsMeter::remove_pinned`] (what an uninstall does) detach the programs.
pub struct TlsMeter {
    maps: TlsMaps,
    config: Array<MapData, u64>,
    events: Option<TlsEvents>,
    target: PathBuf,
    target_id: u64,
    side: Side,
    pin_dir: PathBuf,
    reused_links: bool,
    /// Held for the meter's life; dropped last (fields drop in order).
    _lock: PinDirLock,
}

impl std::fmt::Debug for TlsMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMeter")
            .field("target", &self.target)
            .field("target_id", &self.target_id)
            .field("side", &self.side)
            .field("pin_dir", &self.pin_dir)
            .field("reused_links", &self.reused_links)
            .finish_non_exhaustive()
    }
}

/// The hooks a configuration attaches, and the handshake types written to
/// `CFG_EGRESS_TYPE` and `CFG_INGRESS_TYPE`.
fn hooks_for(side: Side, server_hook: ServerHook) -> (Vec<Hook>, u64, u64) {
    match (side, server_hook) {
        (Side::Client, _) => (
            vec![links::EGRESS, links::CONNECT4, links::CONNECT6],
            CLIENT_HELLO,
            0,
        ),
        (Side::Server, ServerHook::EgressServerHello) => (vec![links::EGRESS], SERVER_HELLO, 0),
        (Side::Server, ServerHook::IngressClientHello) => (vec![links::INGRESS], 0, CLIENT_HELLO),
    }
}

/// Names the side that the handshake types in `tls_config` stand for.
fn describe_side(egress_type: u64, ingress_type: u64) -> String {
    match (egress_type, ingress_type) {
        (CLIENT_HELLO, 0) => "the client side".into(),
        (SERVER_HELLO, 0) => "the server side (egress ServerHello)".into(),
        (0, CLIENT_HELLO) => "the server side (ingress ClientHello)".into(),
        (e, i) => format!("an unknown side (egress type {e}, ingress type {i})"),
    }
}

/// Whether every pinned link's program uses only maps pinned in the pin
/// directory now, whose ids are `pinned_maps` (false when the maps were
/// removed and re-created under live links: those programs would count into,
/// and take the allowance from, maps no one can read or write any more).
fn programs_use_pinned_maps(pinned: &[PinnedHook], pinned_maps: &[u32]) -> bool {
    let mut wanted: Vec<u32> = pinned.iter().map(|p| p.prog_id).collect();
    for info in aya::programs::loaded_programs().flatten() {
        if let Some(at) = wanted.iter().position(|id| *id == info.id()) {
            match info.map_ids() {
                Ok(Some(ids)) if !ids.iter().all(|id| pinned_maps.contains(id)) => return false,
                // Ok(None): a kernel that does not say; trust the pins.
                _ => {}
            }
            wanted.swap_remove(at);
        }
    }
    true
}

impl TlsMeter {
    /// Attaches the meter to `config.target`, or takes over the attachments
    /// an earlier meter pinned in `config.pin_dir` for the same target and
    /// side.
    ///
    /// In order: checks CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN (naming what
    /// is missing), the configuration and the target (a cgroup v2
    /// directory); raises RLIMIT_MEMLOCK; makes sure the pin directory is on
    /// bpffs; takes the pin directory for this meter's life
    /// ([`TlsError::Busy`] if another meter has it); checks any maps pinned
    /// there against this build's layout and ring size; loads the object
    /// reusing (or creating and pinning) the maps; checks the links pinned
    /// there: links whose cgroup was removed are detached and unpinned, live
    /// links of another target cgroup, side or server hook are refused
    /// ([`TlsError::PinnedElsewhere`], nothing changed); writes the
    /// configuration (enforcement, tenancy) and the port set, which apply to
    /// pinned links at once; then attaches what is not attached yet:
    /// `tls_egress` (client, or server with [`ServerHook::EgressServerHello`])
    /// or `tls_ingress`, and on the client side `tls_connect4` and
    /// `tls_connect6`, to the target cgroup as BPF links, each pinned in the
    /// pin directory (`tls_egress_link`, …) so that it stays attached after
    /// this process ends. The kernel makes cgroup links multi-attach by
    /// itself: other programs on the cgroup and its ancestors keep running
    /// (asking for `BPF_F_ALLOW_MULTI` explicitly is refused with EINVAL).
    /// A program already attached through a pinned link is never attached a
    /// second time: [`TlsMeter::reused_links`] says whether this attach took
    /// links over.
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
            path: pin_path(&pin_dir, name),
            operation,
            detail: e.to_string(),
        };
        let mut cfg: Array<MapData, u64> =
            Array::try_from(config_map).map_err(|e| map_err(CONFIG, "opening", &e))?;
        let (wanted, egress_type, ingress_type) = hooks_for(config.side, config.server_hook);

        // The links an earlier meter pinned here.
        let mut pinned = links::pinned_hooks(&pin_dir)?;
        // A link whose cgroup was removed is attached to nothing: drop it.
        for stale in pinned.iter().filter(|p| p.cgroup_id == 0) {
            links::unpin_hook(&pin_dir, stale.hook)?;
        }
        pinned.retain(|p| p.cgroup_id != 0);
        if !pinned.is_empty() {
            // Maps removed and re-created under live links: those programs
            // count into maps no one reads (and enforce an allowance no one can
            // grant). Detach them and attach anew.
            let mut map_ids = Vec::new();
            for name in PINNED_MAPS {
                if let Some(map) = crate::layout::open_pinned(&pin_path(&pin_dir, name))? {
                    let info = map
                        .info()
                        .map_err(|e| map_err(name, "reading map info", &e))?;
                    map_ids.push(info.id());
                }
            }
            if !programs_use_pinned_maps(&pinned, &map_ids) {
                for p in pinned.drain(..) {
                    links::unpin_hook(&pin_dir, p.hook)?;
                }
            }
        }
        if !pinned.is_empty() {
            let read = |slot| {
                cfg.get(&slot, 0)
                    .map_err(|e| map_err(CONFIG, "reading the configuration", &e))
            };
            let pinned_types = (read(CFG_EGRESS_TYPE)?, read(CFG_INGRESS_TYPE)?);
            let elsewhere = pinned.iter().find(|p| p.cgroup_id != target_id);
            let other_hook = pinned.iter().any(|p| !wanted.contains(&p.hook));
            if elsewhere.is_some() || other_hook || pinned_types != (egress_type, ingress_type) {
                let pinned_side = describe_side(pinned_types.0, pinned_types.1);
                let requested_side = describe_side(egress_type, ingress_type);
                let pinned_cgroup = elsewhere.unwrap_or(&pinned[0]).cgroup_id;
                let programs: Vec<&str> = pinned.iter().map(|p| p.hook.program).collect();
                return Err(TlsError::PinnedElsewhere {
                    pin_dir: pin_dir.clone(),
                    pinned: format!(
                        "cgroup id {pinned_cgroup} on {pinned_side} ({})",
                        programs.join(", ")
                    ),
                    requested: format!(
                        "{} (cgroup id {target_id}) on {requested_side}",
                        target.display()
                    ),
                });
            }
        }

        // The configuration: read by the pinned programs at once.
        let all_ports = matches!(config.ports, Ports::All);
        let mut ports: HashMap<MapData, u16, u8> =
            HashMap::try_from(ports_map).map_err(|e| map_err(PORTS, "opening", &e))?;
        let metered: Vec<u16> = match &config.ports {
            Ports::Only(list) => list.clone(),
            Ports::All => Vec::new(),
        };
        // New ports first, stale ones last: while this runs a port may be
        // metered a moment too long, never a moment too short.
        for port in &metered {
            ports
                .insert(port, 1, 0)
                .map_err(|e| map_err(PORTS, "writing the port set", &e))?;
        }
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
        let stale: Vec<u16> = ports
            .keys()
            .filter_map(Result::ok)
            .filter(|p| !metered.contains(p))
            .collect();
        for port in stale {
            match ports.remove(&port) {
                Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
                Err(e) => return Err(map_err(PORTS, "writing the port set", &e)),
            }
        }

        let cgroup = File::open(&target).map_err(|e| TlsError::NotCgroup2 {
            path: target.clone(),
            reason: e.to_string(),
        })?;
        let reused_links = !pinned.is_empty();
        let mut attached = Vec::new();
        for hook in wanted {
            if pinned.iter().any(|p| p.hook == hook) {
                continue;
            }
            if let Err(e) = attach_and_pin(&mut bpf, hook, &cgroup, &target, &pin_dir) {
                // Leave what was pinned before this attach, nothing of its own.
                for done in attached {
                    let _ = links::unpin_hook(&pin_dir, done);
                }
                return Err(e);
            }
            attached.push(hook);
        }

        Ok(TlsMeter {
            maps,
            config: cfg,
            events: Some(events),
            target,
            target_id,
            side: config.side,
            pin_dir,
            reused_links,
            _lock: lock,
        })
    }

    /// Detaches the programs and removes everything the TLS meter pinned in
    /// `pin_dir`: its links, then its maps (totals, allowance, ring buffer
    /// and the events still in it), then the directory unless something
    /// else is in it. What an uninstall does: from then on nothing is
    /// counted and nothing is refused, and the next attach starts from zero
    /// with a new epoch. Record or settle the totals first.
    ///
    /// A pin directory that does not exist is fine. Fails with
    /// [`TlsError::Busy`] while a meter (in this or another process) holds
    /// the directory: stop it, or call [`TlsMeter::detach_and_unpin`] on it.
    pub fn remove_pinned(pin_dir: &Path) -> Result<(), TlsError> {
        match std::fs::symlink_metadata(pin_dir) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(crate::MeterError::Io {
                    operation: "inspecting pin directory",
                    path: pin_dir.to_owned(),
                    source,
                }
                .into());
            }
        }
        let _lock = PinDirLock::try_acquire(pin_dir)?.ok_or_else(|| TlsError::Busy {
            pin_dir: pin_dir.to_owned(),
        })?;
        remove_pins(pin_dir)
    }

    /// [`TlsMeter::remove_pinned`] for this meter's pin directory, while it
    /// still holds it: detaches the programs and removes the pins.
    pub fn detach_and_unpin(self) -> Result<(), TlsError> {
        let TlsMeter {
            maps,
            config,
            events,
            pin_dir,
            _lock,
            ..
        } = self;
        drop((maps, config, events));
        remove_pins(&pin_dir)
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
    /// counted in [`TlsStats::over_allowance`], to bill afterwards. The switch
    /// is in the pinned configuration: it stays as set after this meter is
    /// dropped or its process ends, until a meter attaches again (which
    /// writes [`TlsConfig::enforce`]).
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

    /// Whether this attach found the programs already attached by an earlier
    /// meter (pinned links of the same target and side) and took them over
    /// instead of attaching them again.
    pub fn reused_links(&self) -> bool {
        self.reused_links
    }
}

/// Attaches `hook`'s program to `cgroup` as a BPF link and pins the link in
/// `pin_dir`. On any failure the link is dropped, which detaches it.
fn attach_and_pin(
    bpf: &mut Ebpf,
    hook: Hook,
    cgroup: &File,
    target: &Path,
    pin_dir: &Path,
) -> Result<(), TlsError> {
    let name = hook.program;
    let program = bpf.program_mut(name).ok_or_else(|| TlsError::Load {
        detail: format!("the TLS BPF object has no program `{name}`"),
    })?;
    let not_a_link = |e: LinkError| TlsError::Attach {
        program: name,
        cgroup: target.to_owned(),
        detail: format!(
            "the kernel attached it without a BPF link (before Linux 5.7?), which cannot be \
             pinned: {e}"
        ),
    };
    let link: FdLink = if hook == links::CONNECT4 || hook == links::CONNECT6 {
        let program: &mut CgroupSockAddr = program.try_into().map_err(|e| load_error(name, &e))?;
        program
            .load()
            .map_err(|e| load_error(&format!("loading {name}"), &e))?;
        let id = program
            .attach(cgroup, CgroupAttachMode::Single)
            .map_err(|e| attach_error(name, target, &e))?;
        let link = program
            .take_link(id)
            .map_err(|e| attach_error(name, target, &e))?;
        FdLink::try_from(link).map_err(not_a_link)?
    } else {
        let program: &mut CgroupSkb = program.try_into().map_err(|e| load_error(name, &e))?;
        program
            .load()
            .map_err(|e| load_error(&format!("loading {name}"), &e))?;
        let kind = if hook == links::INGRESS {
            CgroupSkbAttachType::Ingress
        } else {
            CgroupSkbAttachType::Egress
        };
        let id = program
            .attach(cgroup, kind, CgroupAttachMode::Single)
            .map_err(|e| attach_error(name, target, &e))?;
        let link = program
            .take_link(id)
            .map_err(|e| attach_error(name, target, &e))?;
        FdLink::try_from(link).map_err(not_a_link)?
    };
    let path = links::hook_pin(pin_dir, hook);
    // Dropping the returned PinnedLink closes this process's fd; the pin keeps
    // the link (and so the attachment) alive.
    link.pin(&path).map(drop).map_err(|e| TlsError::PinnedLink {
        path,
        operation: "pinning",
        source: std::io::Error::other(chain(&e)),
    })
}

/// Detaches and unpins every link in `pin_dir`, removes the map pins, then the
/// directory if nothing else is in it. The caller holds the pin directory lock.
fn remove_pins(pin_dir: &Path) -> Result<(), TlsError> {
    for hook in links::HOOKS {
        links::unpin_hook(pin_dir, hook)?;
    }
    let io_err = |operation, path: PathBuf, source| -> TlsError {
        crate::MeterError::Io {
            operation,
            path,
            source,
        }
        .into()
    };
    for name in PINNED_MAPS {
        let path = pin_path(pin_dir, name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("unpinning", path, e)),
        }
    }
    match std::fs::remove_dir(pin_dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        // Something that is not the meter's is pinned there: leave it.
        Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => Ok(()),
        Err(e) => Err(io_err("removing pin directory", pin_dir.to_owned(), e)),
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
