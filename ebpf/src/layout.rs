//! The pinned maps' layout, and the check that refuses to reuse a pinned map
//! whose layout differs from this build's (an older build's map would be
//! misread, or miscounted into, without it).

use std::path::{Path, PathBuf};

use aya::maps::{Array, HashMap, Map, MapData, MapType, PerCpuArray};

use crate::MeterError;
use crate::bpffs::PinDirLock;
use crate::entry::Slot;
use crate::error::{is_permission_error, os_code};

/// Name (and pin file name) of the counter map: u32 slot → u64 calls per CPU.
pub(crate) const COUNTS: &str = "meter_counts";
/// Name of the slot table: u64 meter key → u32 slot (written by loaders only).
pub(crate) const SLOTS: &str = "meter_slots";
/// Name of the stats array (u32 index → u64), see `STAT_*`.
pub(crate) const STATS: &str = "meter_stats";
/// Name of the one-slot layout marker array.
pub(crate) const LAYOUT: &str = "meter_layout";

/// Version of the map layout in `bpf/meter.bpf.c`. Bump it whenever a map there changes.
///
/// v1: `meter_counts` was a hash map of u64 meter key → u64 calls.
/// v2: `meter_counts` is a per-CPU array of slots, `meter_slots` maps keys to slots.
pub const LAYOUT_VERSION: u32 = 2;
/// The value the loader stores in `meter_layout[0]`: "SBXM" then the version.
pub(crate) const LAYOUT_MARKER: u64 = 0x5342_584d_0000_0000 | LAYOUT_VERSION as u64;
/// `meter_layout` index of the marker.
const LAYOUT_MARKER_SLOT: u32 = 0;
/// `meter_layout` index of the epoch: a random nonzero u64 chosen when the maps
/// were created, so a reader can tell the counters restarted from zero.
const LAYOUT_EPOCH_SLOT: u32 = 1;
/// `meter_layout` index of the next free counter slot (slots are handed out
/// densely from 0 and never freed).
const LAYOUT_NEXT_SLOT: u32 = 2;
/// Number of `meter_layout` slots.
const LAYOUT_SLOTS: u32 = 3;

/// `meter_stats` index of hits that could not be counted (a slot out of range).
pub(crate) const STAT_DROPPED: u32 = 0;
/// `meter_stats` index of self-test hits.
pub(crate) const STAT_SELFTEST: u32 = 1;
/// Number of `meter_stats` slots.
const STAT_SLOTS: u32 = 8;
/// Argument the BPF program counts into `STAT_SELFTEST` instead of `meter_counts`;
/// also the one meter key that cannot be registered.
pub(crate) const SELFTEST_KEY: u64 = u64::MAX;

/// Default capacity of the counter map.
pub const DEFAULT_MAX_ENTRIES: u32 = 4096;

/// What one pinned map must look like.
pub(crate) struct MapSpec {
    pub(crate) name: &'static str,
    pub(crate) kind: MapType,
    pub(crate) key_size: u32,
    pub(crate) value_size: u32,
    /// `None`: any capacity is acceptable (readers do not care).
    pub(crate) max_entries: Option<u32>,
    /// The map flags it was created with (`BPF_F_*`).
    pub(crate) flags: u32,
}

impl MapSpec {
    fn describe(&self) -> String {
        let entries = self
            .max_entries
            .map_or_else(|| "any".to_string(), |n| n.to_string());
        format!(
            "{:?} map, key {} B, value {} B, max_entries {entries}, flags {:#x}",
            self.kind, self.key_size, self.value_size, self.flags
        )
    }
}

fn specs(counts_max_entries: Option<u32>) -> [MapSpec; 4] {
    [
        MapSpec {
            name: COUNTS,
            kind: MapType::PerCpuArray,
            key_size: 4,
            value_size: 8,
            max_entries: counts_max_entries,
            flags: 0,
        },
        MapSpec {
            name: SLOTS,
            kind: MapType::Hash,
            key_size: 8,
            value_size: 4,
            max_entries: counts_max_entries,
            flags: 0,
        },
        MapSpec {
            name: STATS,
            kind: MapType::Array,
            key_size: 4,
            value_size: 8,
            max_entries: Some(STAT_SLOTS),
            flags: 0,
        },
        MapSpec {
            name: LAYOUT,
            kind: MapType::Array,
            key_size: 4,
            value_size: 8,
            max_entries: Some(LAYOUT_SLOTS),
            flags: 0,
        },
    ]
}

/// Path of the pinned map `name` in `pin_dir`.
pub(crate) fn pin_path(pin_dir: &Path, name: &str) -> PathBuf {
    pin_dir.join(name)
}

/// Opens the pinned map at `path`, or `None` when nothing is pinned there.
pub(crate) fn open_pinned(path: &Path) -> Result<Option<MapData>, MeterError> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(MeterError::Io {
                operation: "inspecting",
                path: path.to_owned(),
                source,
            });
        }
    }
    MapData::from_pin(path).map(Some).map_err(|e| {
        if is_permission_error(&e) {
            MeterError::NotPermitted {
                detail: format!("opening pinned map {}: {e}", path.display()),
            }
        } else {
            MeterError::StaleLayout {
                path: path.to_owned(),
                found: format!("something that is not a BPF map ({e})"),
                expected: "a BPF map".to_string(),
            }
        }
    })
}

pub(crate) fn check_spec(path: &Path, map: &MapData, spec: &MapSpec) -> Result<(), MeterError> {
    let info = map.info().map_err(|e| MeterError::Map {
        path: path.to_owned(),
        operation: "reading map info",
        detail: e.to_string(),
    })?;
    let kind = info.map_type();
    let matches = kind.as_ref().is_ok_and(|k| *k == spec.kind)
        && info.key_size() == spec.key_size
        && info.value_size() == spec.value_size
        && spec.max_entries.is_none_or(|n| n == info.max_entries())
        && info.map_flags() == spec.flags;
    if matches {
        return Ok(());
    }
    let kind = kind.map_or_else(|e| format!("unknown type ({e})"), |k| format!("{k:?}"));
    Err(MeterError::StaleLayout {
        path: path.to_owned(),
        found: format!(
            "{kind} map, key {} B, value {} B, max_entries {}, flags {:#x}",
            info.key_size(),
            info.value_size(),
            info.max_entries(),
            info.map_flags()
        ),
        expected: spec.describe(),
    })
}

/// (marker, epoch) from an already spec-checked layout map.
fn read_layout(path: &Path, map: Map) -> Result<(u64, u64), MeterError> {
    let map_err = |e: &dyn std::fmt::Display| MeterError::Map {
        path: path.to_owned(),
        operation: "reading the layout marker",
        detail: e.to_string(),
    };
    let array: Array<MapData, u64> = Array::try_from(map).map_err(|e| map_err(&e))?;
    let marker = array.get(&LAYOUT_MARKER_SLOT, 0).map_err(|e| map_err(&e))?;
    let epoch = array.get(&LAYOUT_EPOCH_SLOT, 0).map_err(|e| map_err(&e))?;
    Ok((marker, epoch))
}

pub(crate) fn to_map(path: &Path, data: MapData) -> Result<Map, MeterError> {
    Map::from_map_data(data).map_err(|e| MeterError::Map {
        path: path.to_owned(),
        operation: "opening",
        detail: e.to_string(),
    })
}

fn check_marker(path: &Path, marker: u64) -> Result<(), MeterError> {
    // 0: created by a loader that stopped before writing the marker (it writes it
    // right after creating the maps, under the pin directory lock).
    if marker == 0 || marker == LAYOUT_MARKER {
        return Ok(());
    }
    let found = if marker & !0xffff_ffff == LAYOUT_MARKER & !0xffff_ffff {
        let version = marker & 0xffff_ffff;
        let what = match version {
            1 => " (hashed keys in one hash map; its counts are read by a layout v1 build)",
            v if v > u64::from(LAYOUT_VERSION) => " (a newer build's)",
            _ => "",
        };
        format!("layout marker {marker:#018x}: layout v{version}{what}")
    } else {
        format!("layout marker {marker:#018x}")
    };
    Err(MeterError::StaleLayout {
        path: path.to_owned(),
        found,
        expected: format!(
            "layout marker {LAYOUT_MARKER:#018x} (layout v{LAYOUT_VERSION}: per-CPU slots)"
        ),
    })
}

/// Checks whatever is pinned in `pin_dir` against this build's layout.
///
/// Nothing pinned is fine (the loader creates the maps). Maps pinned without a
/// layout marker, with another marker, or with another type, key size, value
/// size, capacity (when `counts_max_entries` is given) or flags are refused
/// with [`MeterError::StaleLayout`]; nothing is changed.
pub(crate) fn validate_pins(
    pin_dir: &Path,
    counts_max_entries: Option<u32>,
) -> Result<(), MeterError> {
    // The marker first: maps of another layout version are named as such
    // (say "layout v1: hashed keys"), rather than by the first map whose shape
    // differs. Any u64 array with a first slot can carry a marker.
    let layout_path = pin_path(pin_dir, LAYOUT);
    if let Some(map) = open_pinned(&layout_path)?
        && let Ok(info) = map.info()
        && info.map_type().is_ok_and(|k| k == MapType::Array)
        && info.key_size() == 4
        && info.value_size() == 8
        && info.max_entries() >= 1
    {
        let map = to_map(&layout_path, map)?;
        let array: Array<MapData, u64> = Array::try_from(map).map_err(|e| MeterError::Map {
            path: layout_path.clone(),
            operation: "reading the layout marker",
            detail: e.to_string(),
        })?;
        let marker = array
            .get(&LAYOUT_MARKER_SLOT, 0)
            .map_err(|e| MeterError::Map {
                path: layout_path.clone(),
                operation: "reading the layout marker",
                detail: e.to_string(),
            })?;
        check_marker(&layout_path, marker)?;
    }
    let mut present = Vec::new();
    for spec in specs(counts_max_entries) {
        let path = pin_path(pin_dir, spec.name);
        if let Some(map) = open_pinned(&path)? {
            check_spec(&path, &map, &spec)?;
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
            found: "meter maps pinned without a layout marker (an older layout)".to_string(),
            expected: format!("layout marker {LAYOUT_MARKER:#018x} (layout v{LAYOUT_VERSION})"),
        }),
    }
}

/// A random nonzero u64 from the kernel.
pub(crate) fn random_epoch() -> Result<u64, MeterError> {
    loop {
        let mut bytes = [0u8; 8];
        // SAFETY: writes at most 8 bytes into `bytes`.
        let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
        if n == 8 {
            let epoch = u64::from_ne_bytes(bytes);
            if epoch != 0 {
                return Ok(epoch);
            }
            continue;
        }
        let source = std::io::Error::last_os_error();
        if n < 0 && source.kind() != std::io::ErrorKind::Interrupted {
            return Err(MeterError::Io {
                operation: "getrandom for the meter epoch",
                path: PathBuf::new(),
                source,
            });
        }
    }
}

/// Stamps a freshly created layout map (epoch first, then the marker), or
/// checks the existing marker; returns the epoch.
pub(crate) fn stamp_layout(pin_dir: &Path, map: Map) -> Result<u64, MeterError> {
    let path = pin_path(pin_dir, LAYOUT);
    let map_err = |operation: &'static str, e: &dyn std::fmt::Display| MeterError::Map {
        path: path.clone(),
        operation,
        detail: e.to_string(),
    };
    let mut array: Array<MapData, u64> =
        Array::try_from(map).map_err(|e| map_err("opening the layout marker", &e))?;
    let read = |array: &Array<MapData, u64>, slot| {
        array
            .get(&slot, 0)
            .map_err(|e| map_err("reading the layout marker", &e))
    };
    let marker = read(&array, LAYOUT_MARKER_SLOT)?;
    check_marker(&path, marker)?;
    if marker != 0 {
        return read(&array, LAYOUT_EPOCH_SLOT);
    }
    let epoch = random_epoch()?;
    array
        .set(LAYOUT_EPOCH_SLOT, epoch, 0)
        .map_err(|e| map_err("writing the meter epoch", &e))?;
    array
        .set(LAYOUT_MARKER_SLOT, LAYOUT_MARKER, 0)
        .map_err(|e| map_err("writing the layout marker", &e))?;
    Ok(epoch)
}

/// The counter, slot and stats maps, shared by an attached
/// [`Meter`](crate::Meter) and a read-only [`PinnedCounts`](crate::PinnedCounts).
pub(crate) struct CounterMaps {
    pin_dir: PathBuf,
    counts_path: PathBuf,
    counts: std::sync::Mutex<PerCpuArray<MapData, u64>>,
    slots: std::sync::Mutex<HashMap<MapData, u64, u32>>,
    stats: Array<MapData, u64>,
    capacity: u32,
    epoch: u64,
}

impl std::fmt::Debug for CounterMaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CounterMaps")
            .field("counts_path", &self.counts_path)
            .field("capacity", &self.capacity)
            .field("epoch", &format_args!("{:#018x}", self.epoch))
            .finish_non_exhaustive()
    }
}

impl CounterMaps {
    /// Wraps the maps (taken from a loaded object, or opened from pins).
    pub(crate) fn new(
        pin_dir: &Path,
        counts: Map,
        slots: Map,
        stats: Map,
        epoch: u64,
    ) -> Result<Self, MeterError> {
        let counts_path = pin_path(pin_dir, COUNTS);
        let open_error = |name: &str, e: &dyn std::fmt::Display| MeterError::Map {
            path: pin_path(pin_dir, name),
            operation: "opening",
            detail: e.to_string(),
        };
        let counts: PerCpuArray<MapData, u64> =
            PerCpuArray::try_from(counts).map_err(|e| open_error(COUNTS, &e))?;
        let slots: HashMap<MapData, u64, u32> =
            HashMap::try_from(slots).map_err(|e| open_error(SLOTS, &e))?;
        let stats: Array<MapData, u64> =
            Array::try_from(stats).map_err(|e| open_error(STATS, &e))?;
        let capacity = counts.len();

        Ok(Self {
            pin_dir: pin_dir.to_owned(),
            counts_path,
            counts: std::sync::Mutex::new(counts),
            slots: std::sync::Mutex::new(slots),
            stats,
            capacity,
            epoch,
        })
    }

    /// Opens the pinned maps in `pin_dir` after checking their layout.
    pub(crate) fn open_pinned(pin_dir: &Path) -> Result<Self, MeterError> {
        validate_pins(pin_dir, None)?;
        let open = |name: &str| -> Result<Map, MeterError> {
            let path = pin_path(pin_dir, name);
            let data = open_pinned(&path)?.ok_or(MeterError::NotPinned { path: path.clone() })?;
            to_map(&path, data)
        };
        let counts = open(COUNTS)?;
        let (_, epoch) = read_layout(&pin_path(pin_dir, LAYOUT), open(LAYOUT)?)?;
        Self::new(pin_dir, counts, open(SLOTS)?, open(STATS)?, epoch)
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<MapData, u64, u32>> {
        // A panic while holding the lock cannot leave the map handle inconsistent.
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, PerCpuArray<MapData, u64>> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn map_error(
        &self,
        name: &str,
        operation: &'static str,
        e: &dyn std::fmt::Display,
    ) -> MeterError {
        MeterError::Map {
            path: pin_path(&self.pin_dir, name),
            operation,
            detail: e.to_string(),
        }
    }

    /// The slot `key` owns, if it has one.
    fn slot_of(&self, key: u64) -> Result<Option<u32>, MeterError> {
        match self.slots().get(&key, 0) {
            Ok(slot) => Ok(Some(slot)),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(self.map_error(SLOTS, "lookup", &e)),
        }
    }

    /// Calls counted in `slot`: the sum over every possible CPU.
    fn slot_count(&self, slot: u32) -> Result<u64, MeterError> {
        let per_cpu = self
            .counts()
            .get(&slot, 0)
            .map_err(|e| self.map_error(COUNTS, "lookup", &e))?;
        Ok(per_cpu.iter().fold(0u64, |sum, n| sum.wrapping_add(*n)))
    }

    /// Calls counted for `key` (0 if the key was never registered).
    pub(crate) fn count(&self, key: u64) -> Result<u64, MeterError> {
        match self.slot_of(key)? {
            Some(slot) => self.slot_count(slot),
            None => Ok(0),
        }
    }

    /// The slot of `key`: the one it owns, or the next free one, taken under
    /// the pin directory's lock (so two processes registering at once never
    /// take the same slot for different keys, nor two slots for one key).
    /// A key already registered keeps its slot and its count.
    pub(crate) fn register(&self, key: u64) -> Result<Slot, MeterError> {
        if key == SELFTEST_KEY {
            return Err(MeterError::ReservedKey { key });
        }
        if let Some(slot) = self.slot_of(key)? {
            return Ok(Slot(slot));
        }
        let _lock = PinDirLock::acquire(&self.pin_dir)?;
        if let Some(slot) = self.slot_of(key)? {
            return Ok(Slot(slot));
        }
        let mut slots = self.slots();
        let layout_path = pin_path(&self.pin_dir, LAYOUT);
        let layout = MapData::from_pin(&layout_path)
            .map_err(|e| self.map_error(LAYOUT, "opening", &e))
            .and_then(|data| to_map(&layout_path, data))?;
        let mut layout: Array<MapData, u64> =
            Array::try_from(layout).map_err(|e| self.map_error(LAYOUT, "opening", &e))?;
        let next = layout
            .get(&LAYOUT_NEXT_SLOT, 0)
            .map_err(|e| self.map_error(LAYOUT, "reading the next free slot", &e))?;
        let taken = u32::try_from(next).unwrap_or(u32::MAX);
        if taken >= self.capacity {
            return Err(MeterError::MapFull {
                path: self.counts_path.clone(),
                capacity: self.capacity,
                key,
            });
        }
        // Advance the free-slot mark before the key takes the slot: a loader
        // that dies in between leaves an unused slot, never one slot for two keys.
        layout
            .set(LAYOUT_NEXT_SLOT, next + 1, 0)
            .map_err(|e| self.map_error(LAYOUT, "taking a slot", &e))?;
        // Hits only ever reach a slot through its key, so a free slot counts 0;
        // a stray hit on it (a slot index not from `register`) is not inherited.
        let zero = aya::maps::PerCpuValues::try_from(vec![0u64; self.counts_cpus()?])
            .map_err(|e| self.map_error(COUNTS, "zeroing a free slot", &e))?;
        self.counts()
            .set(taken, zero, 0)
            .map_err(|e| self.map_error(COUNTS, "zeroing a free slot", &e))?;
        const BPF_NOEXIST: u64 = 1;
        match slots.insert(key, taken, BPF_NOEXIST) {
            Ok(()) => Ok(Slot(taken)),
            Err(e) => match os_code(&e) {
                Some(libc::E2BIG) | Some(libc::ENOSPC) => Err(MeterError::MapFull {
                    path: self.counts_path.clone(),
                    capacity: self.capacity,
                    key,
                }),
                _ => Err(self.map_error(SLOTS, "registering a key", &e)),
            },
        }
    }

    /// Possible CPUs: the length of a per-CPU value.
    fn counts_cpus(&self) -> Result<usize, MeterError> {
        aya::util::nr_cpus().map_err(|(_, e)| self.map_error(COUNTS, "counting possible CPUs", &e))
    }

    fn stat(&self, index: u32) -> Result<u64, MeterError> {
        self.stats
            .get(&index, 0)
            .map_err(|e| self.map_error(STATS, "reading a stat", &e))
    }

    /// Hits that could not be counted (a slot out of range).
    pub(crate) fn dropped(&self) -> Result<u64, MeterError> {
        self.stat(STAT_DROPPED)
    }

    /// Self-test hits so far (all processes using this pin directory).
    pub(crate) fn selftest_hits(&self) -> Result<u64, MeterError> {
        self.stat(STAT_SELFTEST)
    }

    /// Capacity (max_entries) of the counter map: the number of slots.
    pub(crate) fn capacity(&self) -> u32 {
        self.capacity
    }

    /// The maps' epoch (0 only if the creating loader died before stamping it).
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }
}
