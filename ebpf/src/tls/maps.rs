//! The TLS meter's pinned maps: their layout (checked before a pinned map is
//! reused), and [`TlsMaps`], the counters shared by an attached
//! [`TlsMeter`](crate::TlsMeter) and a read-only [`PinnedTls`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use aya::maps::{Array, HashMap, Map, MapData, MapType};

use crate::layout::{MapSpec, check_spec, open_pinned, pin_path, random_epoch, to_map};
use crate::{MeterError, TlsError};

/// Per-tenant totals: u64 cgroup id → u64 handshakes (pinned).
pub(crate) const TOTALS: &str = "tls_totals";
/// Stats array, see `STAT_*` (pinned).
pub(crate) const STATS: &str = "tls_stats";
/// Quota array: [0] granted, [1] admitted (pinned).
pub(crate) const QUOTA: &str = "tls_quota";
/// Layout marker and epoch (pinned).
pub(crate) const LAYOUT: &str = "tls_layout";
/// The event ring buffer (pinned).
pub(crate) const EVENTS: &str = "tls_events";
/// Per-socket "counted" marks (pinned socket storage).
pub(crate) const CONNS: &str = "tls_conns";
/// Configuration array, see `CFG_*` (pinned: the attached programs read it
/// while no meter runs).
pub(crate) const CONFIG: &str = "tls_config";
/// Metered port set (pinned, like the configuration).
pub(crate) const PORTS: &str = "tls_ports";
/// Every map the meter pins, for removal.
pub(crate) const PINNED_MAPS: [&str; 8] =
    [TOTALS, STATS, QUOTA, LAYOUT, EVENTS, CONNS, CONFIG, PORTS];

/// Version of the map layout in `bpf/tls.bpf.c`. Bump it whenever a pinned map
/// there (or the event layout) changes.
///
/// 2: `tls_config` and `tls_ports` are pinned, and so are the programs' links
/// (they stay attached while no meter runs). A version 1 directory (which has
/// neither) is taken over and re-stamped 2, keeping its totals and epoch; a
/// version 1 build refuses a version 2 directory, so it never attaches its
/// programs a second time beside the pinned ones.
pub const TLS_LAYOUT_VERSION: u32 = 2;
/// `tls_layout[0]`: "SBXT" then the version.
const LAYOUT_MARKER: u64 = 0x5342_5854_0000_0000 | TLS_LAYOUT_VERSION as u64;
/// The marker of layout version 1, whose maps are a subset of version 2's.
const LAYOUT_MARKER_V1: u64 = 0x5342_5854_0000_0001;
const LAYOUT_MARKER_SLOT: u32 = 0;
const LAYOUT_EPOCH_SLOT: u32 = 1;

pub(crate) const STAT_DROPPED: u32 = 0;
pub(crate) const STAT_REFUSED: u32 = 1;
pub(crate) const STAT_OVER: u32 = 2;
pub(crate) const STAT_UNCOUNTED: u32 = 3;
pub(crate) const STAT_NODEDUP: u32 = 4;
pub(crate) const STAT_CONTENDED: u32 = 5;
const STAT_SLOTS: u32 = 8;

const QUOTA_GRANTED: u32 = 0;
const QUOTA_ADMITTED: u32 = 1;

pub(crate) const CFG_ENFORCE: u32 = 0;
pub(crate) const CFG_ALL_PORTS: u32 = 1;
pub(crate) const CFG_EGRESS_TYPE: u32 = 2;
pub(crate) const CFG_INGRESS_TYPE: u32 = 3;
pub(crate) const CFG_TENANT_LEVEL: u32 = 4;
/// Slots of `tls_config` (`CFG_SLOTS` in the BPF source).
const CFG_SLOTS: u32 = 8;

/// `BPF_F_NO_PREALLOC`, which socket storage requires.
const BPF_F_NO_PREALLOC: u32 = 1;

/// The pinned maps' expected shapes; `None` capacities are not checked.
fn specs(max_tenants: Option<u32>, ring_bytes: Option<u32>) -> [MapSpec; 8] {
    let array = |name, slots| MapSpec {
        name,
        kind: MapType::Array,
        key_size: 4,
        value_size: 8,
        max_entries: Some(slots),
        flags: 0,
    };
    [
        MapSpec {
            name: TOTALS,
            kind: MapType::Hash,
            key_size: 8,
            value_size: 8,
            max_entries: max_tenants,
            flags: 0,
        },
        array(STATS, STAT_SLOTS),
        array(QUOTA, 2),
        array(LAYOUT, 2),
        MapSpec {
            name: EVENTS,
            kind: MapType::RingBuf,
            key_size: 0,
            value_size: 0,
            max_entries: ring_bytes,
            flags: 0,
        },
        MapSpec {
            name: CONNS,
            kind: MapType::SkStorage,
            key_size: 4,
            value_size: 4,
            max_entries: Some(0),
            flags: BPF_F_NO_PREALLOC,
        },
        array(CONFIG, CFG_SLOTS),
        MapSpec {
            name: PORTS,
            kind: MapType::Hash,
            key_size: 2,
            value_size: 1,
            max_entries: Some(crate::MAX_PORTS as u32),
            flags: 0,
        },
    ]
}

fn map_err(path: &Path, operation: &'static str, e: &dyn std::fmt::Display) -> TlsError {
    TlsError::Map {
        path: path.to_owned(),
        operation,
        detail: e.to_string(),
    }
}

/// Checks whatever is pinned in `pin_dir` against this build's layout:
/// nothing pinned is fine; a map of another shape, or maps without this
/// build's marker, are refused ([`MeterError::StaleLayout`]), and a ring
/// buffer of another size than `ring_bytes` with [`TlsError::RingSize`].
pub(crate) fn validate_pins(pin_dir: &Path, ring_bytes: Option<u32>) -> Result<(), TlsError> {
    let mut present = Vec::new();
    for spec in specs(None, None) {
        let path = pin_path(pin_dir, spec.name);
        if let Some(map) = open_pinned(&path)? {
            check_spec(&path, &map, &spec)?;
            if spec.name == EVENTS
                && let Some(expected) = ring_bytes
            {
                let found = map
                    .info()
                    .map_err(|e| map_err(&path, "reading map info", &e))?
                    .max_entries();
                if found != expected {
                    return Err(TlsError::RingSize {
                        path,
                        found,
                        expected,
                    });
                }
            }
            present.push((spec.name, path, map));
        }
    }
    if present.is_empty() {
        return Ok(());
    }
    match present.into_iter().find(|(name, _, _)| *name == LAYOUT) {
        Some((_, path, map)) => {
            let (marker, _) = read_layout(&path, to_map(&path, map)?)?;
            check_marker(&path, marker)
        }
        None => Err(MeterError::StaleLayout {
            path: pin_path(pin_dir, LAYOUT),
            found: "TLS meter maps pinned without a layout marker".to_string(),
            expected: format!("layout marker {LAYOUT_MARKER:#018x}"),
        }
        .into()),
    }
}

fn check_marker(path: &Path, marker: u64) -> Result<(), TlsError> {
    // 0: created by a loader that stopped before stamping (it stamps right after
    // creating the maps, holding the pin directory lock). Version 1: a subset of
    // this layout, taken over (and re-stamped by `stamp_layout`).
    if marker == 0 || marker == LAYOUT_MARKER || marker == LAYOUT_MARKER_V1 {
        return Ok(());
    }
    Err(MeterError::StaleLayout {
        path: path.to_owned(),
        found: format!("layout marker {marker:#018x}"),
        expected: format!("layout marker {LAYOUT_MARKER:#018x} (TLS layout v{TLS_LAYOUT_VERSION})"),
    }
    .into())
}

fn read_layout(path: &Path, map: Map) -> Result<(u64, u64), TlsError> {
    let array: Array<MapData, u64> =
        Array::try_from(map).map_err(|e| map_err(path, "opening the layout marker", &e))?;
    let get = |slot| {
        array
            .get(&slot, 0)
            .map_err(|e| map_err(path, "reading the layout marker", &e))
    };
    Ok((get(LAYOUT_MARKER_SLOT)?, get(LAYOUT_EPOCH_SLOT)?))
}

/// Stamps a freshly created layout map (epoch, then marker), or checks the
/// marker of an existing one (re-stamping a version 1 marker with this
/// version: the maps it lacked were just created); returns the epoch.
pub(crate) fn stamp_layout(pin_dir: &Path, map: Map) -> Result<u64, TlsError> {
    let path = pin_path(pin_dir, LAYOUT);
    let mut array: Array<MapData, u64> =
        Array::try_from(map).map_err(|e| map_err(&path, "opening the layout marker", &e))?;
    let marker = array
        .get(&LAYOUT_MARKER_SLOT, 0)
        .map_err(|e| map_err(&path, "reading the layout marker", &e))?;
    check_marker(&path, marker)?;
    if marker == LAYOUT_MARKER_V1 {
        array
            .set(LAYOUT_MARKER_SLOT, LAYOUT_MARKER, 0)
            .map_err(|e| map_err(&path, "upgrading the layout marker", &e))?;
    }
    if marker != 0 {
        return array
            .get(&LAYOUT_EPOCH_SLOT, 0)
            .map_err(|e| map_err(&path, "reading the epoch", &e));
    }
    let epoch = random_epoch()?;
    array
        .set(LAYOUT_EPOCH_SLOT, epoch, 0)
        .map_err(|e| map_err(&path, "writing the epoch", &e))?;
    array
        .set(LAYOUT_MARKER_SLOT, LAYOUT_MARKER, 0)
        .map_err(|e| map_err(&path, "writing the layout marker", &e))?;
    Ok(epoch)
}

/// The kernel's side counters (all since the pinned maps were created).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TlsStats {
    /// Counted handshakes whose event did not fit in the ring buffer: they are
    /// in the totals but were never delivered as events.
    pub dropped: u64,
    /// Connects refused because the allowance was empty (enforcement on).
    pub refused: u64,
    /// Connects let through past the allowance because enforcement was off
    /// (to bill afterwards).
    pub over_allowance: u64,
    /// Handshakes seen but not counted because the tenant map was full.
    /// Nonzero means the totals are short by that many.
    pub uncounted: u64,
    /// Handshakes counted without a per-connection mark (the kernel could not
    /// allocate socket storage): a retransmit of one of them may have been
    /// counted again.
    pub undeduplicated: u64,
    /// Connects decided without taking from the allowance because the atomic
    /// take kept losing races (refused when enforcing).
    pub contended: u64,
}

/// The allowance state: connects granted (written by user space) and
/// admitted (counted by the kernel), both cumulative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Quota {
    /// Connects granted so far, cumulative.
    pub granted: u64,
    /// Connects to metered ports let through so far, cumulative (past the
    /// grant only when enforcement was off).
    pub admitted: u64,
}

impl Quota {
    /// Connects still allowed: granted − admitted, at least 0.
    pub fn remaining(&self) -> u64 {
        self.granted.saturating_sub(self.admitted)
    }
}

/// The totals, stats and quota maps, shared by an attached meter and a
/// read-only view.
pub(crate) struct TlsMaps {
    pin_dir: PathBuf,
    totals: HashMap<MapData, u64, u64>,
    stats: Array<MapData, u64>,
    /// Writes go through the lock: one writer of `granted` per process.
    quota: Mutex<Array<MapData, u64>>,
    epoch: u64,
}

impl std::fmt::Debug for TlsMaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaps")
            .field("pin_dir", &self.pin_dir)
            .field("epoch", &format_args!("{:#018x}", self.epoch))
            .finish_non_exhaustive()
    }
}

impl TlsMaps {
    /// Wraps the maps (taken from a loaded object, or opened from pins).
    pub(crate) fn new(
        pin_dir: &Path,
        totals: Map,
        stats: Map,
        quota: Map,
        epoch: u64,
    ) -> Result<Self, TlsError> {
        let open_err =
            |name, e: &dyn std::fmt::Display| map_err(&pin_path(pin_dir, name), "opening", e);
        Ok(Self {
            pin_dir: pin_dir.to_owned(),
            totals: HashMap::try_from(totals).map_err(|e| open_err(TOTALS, &e))?,
            stats: Array::try_from(stats).map_err(|e| open_err(STATS, &e))?,
            quota: Mutex::new(Array::try_from(quota).map_err(|e| open_err(QUOTA, &e))?),
            epoch,
        })
    }

    /// Opens the maps pinned in `pin_dir` after checking their layout.
    pub(crate) fn open_pinned(pin_dir: &Path) -> Result<Self, TlsError> {
        validate_pins(pin_dir, None)?;
        let open = |name: &str| -> Result<Map, TlsError> {
            let path = pin_path(pin_dir, name);
            let data = open_pinned(&path)?.ok_or(MeterError::NotPinned { path: path.clone() })?;
            Ok(to_map(&path, data)?)
        };
        let (_, epoch) = read_layout(&pin_path(pin_dir, LAYOUT), open(LAYOUT)?)?;
        Self::new(pin_dir, open(TOTALS)?, open(STATS)?, open(QUOTA)?, epoch)
    }

    pub(crate) fn total(&self, tenant: u64) -> Result<u64, TlsError> {
        match self.totals.get(&tenant, 0) {
            Ok(n) => Ok(n),
            Err(aya::maps::MapError::KeyNotFound) => Ok(0),
            Err(e) => Err(map_err(&pin_path(&self.pin_dir, TOTALS), "lookup", &e)),
        }
    }

    pub(crate) fn totals(&self) -> Result<BTreeMap<u64, u64>, TlsError> {
        let path = pin_path(&self.pin_dir, TOTALS);
        let mut out = BTreeMap::new();
        for entry in self.totals.iter() {
            match entry {
                Ok((tenant, n)) => {
                    out.insert(tenant, n);
                }
                // A tenant removed between the key walk and its lookup.
                Err(aya::maps::MapError::KeyNotFound) => {}
                Err(e) => return Err(map_err(&path, "iterating", &e)),
            }
        }
        Ok(out)
    }

    fn stat(&self, index: u32) -> Result<u64, TlsError> {
        self.stats
            .get(&index, 0)
            .map_err(|e| map_err(&pin_path(&self.pin_dir, STATS), "reading a stat", &e))
    }

    pub(crate) fn stats(&self) -> Result<TlsStats, TlsError> {
        Ok(TlsStats {
            dropped: self.stat(STAT_DROPPED)?,
            refused: self.stat(STAT_REFUSED)?,
            over_allowance: self.stat(STAT_OVER)?,
            uncounted: self.stat(STAT_UNCOUNTED)?,
            undeduplicated: self.stat(STAT_NODEDUP)?,
            contended: self.stat(STAT_CONTENDED)?,
        })
    }

    pub(crate) fn dropped(&self) -> Result<u64, TlsError> {
        self.stat(STAT_DROPPED)
    }

    pub(crate) fn refused(&self) -> Result<u64, TlsError> {
        self.stat(STAT_REFUSED)
    }

    fn quota_lock(&self) -> std::sync::MutexGuard<'_, Array<MapData, u64>> {
        self.quota
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn quota_get(&self, array: &Array<MapData, u64>, slot: u32) -> Result<u64, TlsError> {
        array
            .get(&slot, 0)
            .map_err(|e| map_err(&pin_path(&self.pin_dir, QUOTA), "reading the quota", &e))
    }

    pub(crate) fn quota(&self) -> Result<Quota, TlsError> {
        let array = self.quota_lock();
        // admitted first: read the other way round, a connect admitted in between
        // could make admitted > granted appear although it never was.
        let admitted = self.quota_get(&array, QUOTA_ADMITTED)?;
        let granted = self.quota_get(&array, QUOTA_GRANTED)?;
        Ok(Quota { granted, admitted })
    }

    /// granted = f(granted, admitted), written while holding the lock.
    fn update_granted(&self, f: impl FnOnce(u64, u64) -> Option<u64>) -> Result<(), TlsError> {
        let mut array = self.quota_lock();
        let granted = self.quota_get(&array, QUOTA_GRANTED)?;
        let admitted = self.quota_get(&array, QUOTA_ADMITTED)?;
        let path = pin_path(&self.pin_dir, QUOTA);
        let new = f(granted, admitted).ok_or_else(|| TlsError::Config {
            detail: "the allowance would overflow u64".into(),
        })?;
        array
            .set(QUOTA_GRANTED, new, 0)
            .map_err(|e| map_err(&path, "writing the allowance", &e))
    }

    pub(crate) fn set_allowance(&self, n: u64) -> Result<(), TlsError> {
        self.update_granted(|_, admitted| admitted.checked_add(n))
    }

    pub(crate) fn add_allowance(&self, n: u64) -> Result<(), TlsError> {
        self.update_granted(|granted, admitted| granted.max(admitted).checked_add(n))
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }
}

/// Read-only view of the TLS meter's maps pinned in a directory, without
/// attaching (status commands, settlement after a crash).
#[derive(Debug)]
pub struct PinnedTls {
    maps: TlsMaps,
}

impl PinnedTls {
    /// Opens the maps pinned in `pin_dir` after checking their layout.
    /// Fails with [`MeterError::NotPinned`] (inside [`TlsError::Pins`]) when
    /// no TLS meter ever pinned there.
    pub fn open(pin_dir: &Path) -> Result<Self, TlsError> {
        Ok(Self {
            maps: TlsMaps::open_pinned(pin_dir)?,
        })
    }

    /// Handshakes counted for `tenant` (0 when none).
    pub fn total(&self, tenant: u64) -> Result<u64, TlsError> {
        self.maps.total(tenant)
    }

    /// Handshakes counted per tenant.
    pub fn totals(&self) -> Result<BTreeMap<u64, u64>, TlsError> {
        self.maps.totals()
    }

    /// All side counters.
    pub fn stats(&self) -> Result<TlsStats, TlsError> {
        self.maps.stats()
    }

    /// The allowance state.
    pub fn quota(&self) -> Result<Quota, TlsError> {
        self.maps.quota()
    }

    /// The maps' epoch, see [`TlsMeter::epoch`](crate::TlsMeter::epoch).
    pub fn epoch(&self) -> u64 {
        self.maps.epoch()
    }
}
