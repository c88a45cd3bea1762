//! [`Meter`]: loads the BPF program, reuses or pins its maps, attaches the
//! uprobe to this process's entry function, and reads the counts.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use aya::programs::UProbe;
use aya::programs::uprobe::{UProbeLinkId, UProbeScope};
use aya::{Ebpf, EbpfError, EbpfLoader};

use crate::MeterError;
use crate::bpffs::{PinDirLock, ensure_pin_dir};
use crate::entry::{ENTRY_SYMBOL, Slot, enter};
use crate::error::is_permission_error;
use crate::layout::{
    COUNTS, CounterMaps, DEFAULT_MAX_ENTRIES, LAYOUT, SELFTEST_KEY, SLOTS, STATS, stamp_layout,
    validate_pins,
};
use crate::locate::locate_entry;
use crate::multi::{self, MultiError, MultiLink};
use crate::privilege::{check_capabilities, raise_memlock};

/// The BPF object built from `bpf/meter.bpf.c` by build.rs.
static BPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/meter.bpf.o"));

/// Name of the uprobe program in the object.
const PROGRAM: &str = "meter_hit";

/// Default pin directory of the meter's maps.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/sealbox";

/// The compiled BPF object (ELF), for tools and benchmarks that load it themselves.
pub fn bpf_object() -> &'static [u8] {
    BPF_OBJECT
}

/// How the probe finds [`sealbox_meter_entry`](crate::sealbox_meter_entry), and which kind
/// of kernel link runs the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttachMode {
    /// A `uprobe_multi` link at the entry's file offset (the cheaper hit, Linux 6.6+); when
    /// the kernel cannot make one, a perf-event uprobe by symbol from the executable's symbol
    /// table, or by file offset when the binary is stripped.
    #[default]
    Auto,
    /// A perf-event uprobe by symbol only.
    Symbol,
    /// A perf-event uprobe by file offset only, computed from the function's runtime address
    /// (what a stripped binary needs).
    Offset,
    /// A `uprobe_multi` link at the entry's file offset only.
    UprobeMulti,
}

/// Where the probe ended up, and by which kind of link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachPoint {
    /// A perf-event uprobe by symbol in `/proc/self/exe`.
    Symbol,
    /// A perf-event uprobe by file offset in `target`.
    FileOffset {
        /// The probed file.
        target: PathBuf,
        /// Offset of the entry's first instruction in it.
        offset: u64,
    },
    /// A `uprobe_multi` BPF link at a file offset in `target`: the program runs straight
    /// from the uprobe, without the perf-event layer (see docs/METERING.md).
    UprobeMulti {
        /// The probed file.
        target: PathBuf,
        /// Offset of the entry's first instruction in it.
        offset: u64,
    },
}

/// Settings for [`Meter::attach`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterOptions {
    /// Directory on bpffs holding the pinned maps (default [`DEFAULT_PIN_DIR`]).
    pub pin_dir: PathBuf,
    /// Capacity of the counter map in keys: its slots (default
    /// [`DEFAULT_MAX_ENTRIES`]). An existing pinned map must have exactly this capacity.
    pub max_entries: u32,
    /// How to find the entry function.
    pub attach: AttachMode,
    /// Whether bpffs may be mounted at /sys/fs/bpf when it is missing there.
    pub mount_bpffs: bool,
}

impl Default for MeterOptions {
    fn default() -> Self {
        Self {
            pin_dir: PathBuf::from(DEFAULT_PIN_DIR),
            max_entries: DEFAULT_MAX_ENTRIES,
            attach: AttachMode::Auto,
            mount_bpffs: true,
        }
    }
}

/// Pin directories that have a meter attached in this process: a second probe
/// on the same entry would count every call into the same map twice.
static ATTACHED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// This process's claim on a pin directory, released on drop.
struct Claim(PathBuf);

impl Claim {
    fn take(pin_dir: &Path) -> Result<Self, MeterError> {
        let mut attached = ATTACHED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if attached.iter().any(|p| p == pin_dir) {
            return Err(MeterError::AlreadyAttached {
                pin_dir: pin_dir.to_owned(),
            });
        }
        attached.push(pin_dir.to_owned());
        Ok(Self(pin_dir.to_owned()))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut attached = ATTACHED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        attached.retain(|p| *p != self.0);
    }
}

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

fn load_error(what: &str, e: &(dyn std::error::Error + 'static)) -> MeterError {
    let detail = format!("{what}: {}", chain(e));
    if is_permission_error(e) {
        MeterError::NotPermitted { detail }
    } else {
        MeterError::Load { detail }
    }
}

fn object_error(e: EbpfError) -> MeterError {
    match e {
        EbpfError::BtfError(_) | EbpfError::BtfRelocationError(_) | EbpfError::NoBTF => {
            MeterError::BtfMissing { detail: chain(&e) }
        }
        e => load_error("loading the BPF object", &e),
    }
}

/// An attached kernel meter: while it lives, every [`meter_call`](crate::meter_call)
/// in this process adds 1 to its slot's counter in the pinned map. Dropping it detaches
/// the probe; the pinned map and its counts stay for the next attach (or a
/// [`PinnedCounts`](crate::PinnedCounts) reader).
///
/// A process needs exactly one. A second meter on the same pin directory is
/// refused ([`MeterError::AlreadyAttached`]); meters on different pin
/// directories in one process would each count every call.
pub struct Meter {
    bpf: Ebpf,
    link: Option<Link>,
    maps: CounterMaps,
    pin_dir: PathBuf,
    attach_point: AttachPoint,
    /// Why [`AttachMode::Auto`] fell back to a perf-event uprobe.
    multi_refused: Option<String>,
    _claim: Claim,
}

/// The kernel link that runs the program on every hit.
enum Link {
    PerfEvent(UProbeLinkId),
    Multi(MultiLink),
}

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meter")
            .field("pin_dir", &self.pin_dir)
            .field("attach_point", &self.attach_point)
            .field("capacity", &self.maps.capacity())
            .finish_non_exhaustive()
    }
}

impl Meter {
    /// Attaches the meter: checks privileges, raises RLIMIT_MEMLOCK, makes sure
    /// the pin directory is on bpffs (mounting /sys/fs/bpf if allowed), checks
    /// any maps already pinned there against this build's layout, loads the
    /// program reusing (or creating and pinning) the maps, attaches the uprobe
    /// to `sealbox_meter_entry` in this process only, and proves it fires with
    /// one self-test call.
    pub fn attach(opts: &MeterOptions) -> Result<Meter, MeterError> {
        if opts.max_entries == 0 {
            return Err(MeterError::Load {
                detail: "MeterOptions::max_entries must be at least 1".into(),
            });
        }
        check_capabilities()?;
        raise_memlock();
        ensure_pin_dir(&opts.pin_dir, opts.mount_bpffs)?;
        let pin_dir = std::fs::canonicalize(&opts.pin_dir).map_err(|source| MeterError::Io {
            operation: "resolving pin directory",
            path: opts.pin_dir.clone(),
            source,
        })?;
        let claim = Claim::take(&pin_dir)?;

        let lock = PinDirLock::acquire(&pin_dir)?;
        validate_pins(&pin_dir, Some(opts.max_entries))?;
        let mut bpf = EbpfLoader::new()
            // No CO-RE relocations in this object: skip parsing the kernel's BTF.
            .btf(None)
            .default_map_pin_directory(&pin_dir)
            .map_max_entries(COUNTS, opts.max_entries)
            .map_max_entries(SLOTS, opts.max_entries)
            .load(BPF_OBJECT)
            .map_err(object_error)?;
        let take = |bpf: &mut Ebpf, name: &str| {
            bpf.take_map(name).ok_or_else(|| MeterError::Load {
                detail: format!("the BPF object has no map `{name}`"),
            })
        };
        let epoch = stamp_layout(&pin_dir, take(&mut bpf, LAYOUT)?)?;
        let maps = CounterMaps::new(
            &pin_dir,
            take(&mut bpf, COUNTS)?,
            take(&mut bpf, SLOTS)?,
            take(&mut bpf, STATS)?,
            epoch,
        )?;
        drop(lock);

        let (link, attach_point, multi_refused) = match opts.attach {
            AttachMode::Auto => match attach_multi(&pin_dir) {
                Ok((link, point)) => (link, point, None),
                Err(MeterError::NotPermitted { detail }) => {
                    return Err(MeterError::NotPermitted { detail });
                }
                Err(refused) => {
                    let (link, point) = attach_perf_event(&mut bpf, AttachMode::Auto)?;
                    (link, point, Some(refused.to_string()))
                }
            },
            AttachMode::UprobeMulti => {
                let (link, point) = attach_multi(&pin_dir)?;
                (link, point, None)
            }
            mode @ (AttachMode::Symbol | AttachMode::Offset) => {
                let (link, point) = attach_perf_event(&mut bpf, mode)?;
                (link, point, None)
            }
        };

        let mut meter = Meter {
            bpf,
            link: Some(link),
            maps,
            pin_dir,
            attach_point,
            multi_refused,
            _claim: claim,
        };
        meter.self_test()?;
        Ok(meter)
    }

    /// One call with the reserved self-test key must show up in the stats map.
    fn self_test(&mut self) -> Result<(), MeterError> {
        let before = self.maps.selftest_hits()?;
        enter(SELFTEST_KEY);
        if self.maps.selftest_hits()? > before {
            return Ok(());
        }
        let (location, target) = describe(&self.attach_point);
        self.detach();
        Err(MeterError::SelfTestFailed { location, target })
    }

    /// The counter slot of `key`: the one it owns in the pinned maps (kept
    /// across processes and restarts, with its count), or a fresh one at 0.
    /// Call it when a product is loaded, then [`meter_call`](crate::meter_call)
    /// with the slot once per call.
    ///
    /// Fails with [`MeterError::MapFull`] when no slot is left (nothing changes),
    /// and [`MeterError::ReservedKey`] for the self-test key `u64::MAX`.
    pub fn register(&self, key: u64) -> Result<Slot, MeterError> {
        self.maps.register(key)
    }

    /// Calls counted for `key` in the pinned map, by every process that used
    /// this pin directory (0 when the key has never been registered nor hit).
    pub fn count(&self, key: u64) -> Result<u64, MeterError> {
        self.maps.count(key)
    }

    /// Hits that could not be counted because their slot was out of range
    /// (all processes, since the map was created; a slot comes from
    /// [`Meter::register`], so this stays 0). Nonzero means the counts are
    /// short by that many calls.
    pub fn dropped(&self) -> Result<u64, MeterError> {
        self.maps.dropped()
    }

    /// Capacity of the counter map in keys.
    pub fn capacity(&self) -> u32 {
        self.maps.capacity()
    }

    /// A random nonzero id chosen when the pinned maps were created. Counts
    /// only ever grow within one epoch; a different epoch than the one recorded
    /// with an earlier count means the maps were re-created (a reboot — bpffs
    /// lives in memory — or someone removed the pins) and counting restarted
    /// from zero, so the caller must add its recorded count as a base.
    pub fn epoch(&self) -> u64 {
        self.maps.epoch()
    }

    /// The pin directory (canonical path) holding the maps.
    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// Where the probe is attached, and by which kind of link.
    pub fn attach_point(&self) -> &AttachPoint {
        &self.attach_point
    }

    /// Why [`AttachMode::Auto`] used a perf-event uprobe rather than a `uprobe_multi` link
    /// (e.g. a kernel older than 6.6); `None` when it did not fall back.
    pub fn multi_refused(&self) -> Option<&str> {
        self.multi_refused.as_deref()
    }

    fn detach(&mut self) {
        match self.link.take() {
            Some(Link::PerfEvent(link)) => {
                if let Some(program) = self.bpf.program_mut(PROGRAM)
                    && let Ok(uprobe) = <&mut UProbe>::try_from(program)
                {
                    // Failure means the link is already gone; dropping `bpf` closes it anyway.
                    let _ = uprobe.detach(link);
                }
            }
            // Closing the link's descriptor detaches it.
            Some(Link::Multi(link)) => drop(link),
            None => {}
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.detach();
    }
}

fn describe(point: &AttachPoint) -> (String, PathBuf) {
    match point {
        AttachPoint::Symbol => (
            format!("symbol {ENTRY_SYMBOL}"),
            PathBuf::from("/proc/self/exe"),
        ),
        AttachPoint::FileOffset { target, offset } => {
            (format!("file offset {offset:#x}"), target.clone())
        }
        AttachPoint::UprobeMulti { target, offset } => (
            format!("file offset {offset:#x} (uprobe_multi link)"),
            target.clone(),
        ),
    }
}

fn attach_error(point: &AttachPoint, e: &(dyn std::error::Error + 'static)) -> MeterError {
    let (location, target) = describe(point);
    if is_permission_error(e) {
        return MeterError::NotPermitted {
            detail: format!(
                "attaching the uprobe at {location} in {}: {}",
                target.display(),
                chain(e)
            ),
        };
    }
    MeterError::Attach {
        location,
        target,
        detail: chain(e),
    }
}

fn attach_by_symbol(program: &mut UProbe) -> Result<(UProbeLinkId, AttachPoint), MeterError> {
    let point = AttachPoint::Symbol;
    program
        .attach(ENTRY_SYMBOL, "/proc/self/exe", UProbeScope::CallingProcess)
        .map(|link| (link, point.clone()))
        .map_err(|e| attach_error(&point, &e))
}

fn attach_by_offset(program: &mut UProbe) -> Result<(UProbeLinkId, AttachPoint), MeterError> {
    let location = locate_entry()?;
    let point = AttachPoint::FileOffset {
        target: location.target.clone(),
        offset: location.file_offset,
    };
    program
        .attach(
            location.file_offset,
            &location.target,
            UProbeScope::CallingProcess,
        )
        .map(|link| (link, point.clone()))
        .map_err(|e| attach_error(&point, &e))
}

/// Loads the program through aya and attaches it as a perf-event uprobe.
fn attach_perf_event(bpf: &mut Ebpf, mode: AttachMode) -> Result<(Link, AttachPoint), MeterError> {
    let program: &mut UProbe = bpf
        .program_mut(PROGRAM)
        .ok_or_else(|| MeterError::Load {
            detail: format!("the BPF object has no program `{PROGRAM}`"),
        })?
        .try_into()
        .map_err(|e| load_error("the meter program is not a uprobe", &e))?;
    program
        .load()
        .map_err(|e| load_error("loading the uprobe program", &e))?;
    let (link, point) = attach_probe(program, mode)?;
    Ok((Link::PerfEvent(link), point))
}

/// Loads the program for, and makes, a `uprobe_multi` link at the entry's file offset.
fn attach_multi(pin_dir: &Path) -> Result<(Link, AttachPoint), MeterError> {
    let location = locate_entry()?;
    let point = AttachPoint::UprobeMulti {
        target: location.target.clone(),
        offset: location.file_offset,
    };
    match multi::attach(
        BPF_OBJECT,
        PROGRAM,
        pin_dir,
        &location.target,
        location.file_offset,
    ) {
        Ok(link) => Ok((Link::Multi(link), point)),
        Err(MultiError::NotPermitted(detail)) => Err(MeterError::NotPermitted { detail }),
        Err(MultiError::Failed(detail)) => {
            let (location, target) = describe(&point);
            Err(MeterError::Attach {
                location,
                target,
                detail,
            })
        }
    }
}

fn attach_probe(
    program: &mut UProbe,
    mode: AttachMode,
) -> Result<(UProbeLinkId, AttachPoint), MeterError> {
    match mode {
        AttachMode::Symbol => attach_by_symbol(program),
        AttachMode::Offset => attach_by_offset(program),
        AttachMode::Auto | AttachMode::UprobeMulti => match attach_by_symbol(program) {
            Ok(attached) => Ok(attached),
            Err(MeterError::NotPermitted { detail }) => Err(MeterError::NotPermitted { detail }),
            Err(by_symbol) => attach_by_offset(program).map_err(|by_offset| match by_offset {
                MeterError::Attach {
                    location,
                    target,
                    detail,
                } => MeterError::Attach {
                    location,
                    target,
                    detail: format!("{detail} (after attach by symbol failed: {by_symbol})"),
                },
                other => other,
            }),
        },
    }
}
