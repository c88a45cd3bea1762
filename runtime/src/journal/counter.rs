//! Admission counters: one small file per usage counter, mapped `MAP_SHARED`
//! and advanced with a compare-and-swap.
//!
//! Why not a SQLite transaction per call: a committed transaction costs tens
//! of microseconds and serializes every request of every product behind one
//! lock; in `runtime serve` that alone cost a quarter of the throughput of a
//! bare wasmtime server. A CAS on a shared page costs nanoseconds and only
//! contends per counter.
//!
//! Durability is the same as SQLite's WAL with `synchronous=NORMAL`: the CAS
//! writes into the kernel's page cache through the shared mapping, so a unit
//! survives the death of the process (`SIGKILL` included) the instant it is
//! admitted; only an OS crash can lose pages not yet written back, which is
//! why [`super::Journal::sync`] flushes every counter (`runtime serve` every
//! 10 s, `runtime run` before it exits). Processes that share a state
//! directory map the same page, so their admissions add up and never
//! overwrite one another.
//!
//! Layout (16 bytes): the magic `SBXUSE01`, then the cumulative admitted
//! units as a native-endian (little-endian on every supported target) `u64`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::{MmapOptions, MmapRaw};

/// First 8 bytes of every counter file (format version 1).
const MAGIC: [u8; 8] = *b"SBXUSE01";
/// Length of a counter file: the magic and one `u64`.
const LEN: usize = 16;

/// Why a counter file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CounterError {
    /// The file could not be opened, sized, mapped or flushed.
    #[error("usage counter {path}: {source}")]
    Io {
        /// The counter file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file exists but is not a version-1 counter: refusing to guess what
    /// it counts rather than start again from zero.
    #[error(
        "usage counter {path} is not a Sealbox usage counter (bad header); \
         moving it aside counts every unit bought for it as used"
    )]
    Corrupt {
        /// The counter file.
        path: PathBuf,
    },
}

/// One counter file, mapped shared for the life of this value.
#[derive(Debug)]
pub struct CounterFile {
    path: PathBuf,
    map: MmapRaw,
}

impl CounterFile {
    /// Opens the counter at `path`, creating it (mode 0600, value 0) if absent.
    pub fn create(path: &Path) -> Result<Self, CounterError> {
        let io_err = |source| CounterError::Io {
            path: path.to_owned(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(io_err)?;
        if file.metadata().map_err(io_err)?.len() < LEN as u64 {
            // Zero-extends: a file cut short by a crash mid-creation reads as
            // zero units with no magic, and gets its magic below.
            file.set_len(LEN as u64).map_err(io_err)?;
        }
        allocate(&file).map_err(io_err)?;
        Self::map(path, &file, true)
    }

    /// Opens the counter at `path` if it exists (for reading a counter this
    /// process does not admit into). A file a crash left half-created (all
    /// zeros) reads as no units, as [`CounterFile::create`] treats it.
    pub fn open_existing(path: &Path) -> Result<Option<Self>, CounterError> {
        match OpenOptions::new().read(true).write(true).open(path) {
            Ok(file) => {
                let len = file
                    .metadata()
                    .map_err(|source| CounterError::Io {
                        path: path.to_owned(),
                        source,
                    })?
                    .len();
                if len < LEN as u64 {
                    // All zeros: a creation cut short by a crash, nothing counted yet.
                    let bytes = std::fs::read(path).map_err(|source| CounterError::Io {
                        path: path.to_owned(),
                        source,
                    })?;
                    if bytes.iter().all(|&b| b == 0) {
                        return Ok(None);
                    }
                    return Err(CounterError::Corrupt {
                        path: path.to_owned(),
                    });
                }
                Self::map(path, &file, true).map(Some)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CounterError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Reads the value of the counter at `path` without mapping or writing it
    /// (`None` when there is no file). A file a crash left half-created (all
    /// zeros) reads as 0.
    pub fn read_existing(path: &Path) -> Result<Option<u64>, CounterError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CounterError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        // The same rule as the mapping (`open_existing`), which sees the first
        // LEN bytes only: zeros there are a creation cut short, whatever follows.
        if bytes[..bytes.len().min(LEN)].iter().all(|&b| b == 0) {
            return Ok(Some(0));
        }
        if bytes.len() < LEN || bytes[..8] != MAGIC {
            return Err(CounterError::Corrupt {
                path: path.to_owned(),
            });
        }
        let mut value = [0; 8];
        value.copy_from_slice(&bytes[8..LEN]);
        Ok(Some(u64::from_ne_bytes(value)))
    }

    fn map(path: &Path, file: &File, fresh_ok: bool) -> Result<Self, CounterError> {
        let map = MmapOptions::new()
            .len(LEN)
            .map_raw(file)
            .map_err(|source| CounterError::Io {
                path: path.to_owned(),
                source,
            })?;
        let counter = Self {
            path: path.to_owned(),
            map,
        };
        let header = counter.header();
        if header != MAGIC {
            let unwritten = header == [0; 8] && counter.value() == 0;
            if !(fresh_ok && unwritten) {
                return Err(CounterError::Corrupt {
                    path: path.to_owned(),
                });
            }
            // SAFETY: the mapping is LEN bytes long and writable; two processes
            // creating the same counter at once write the same bytes.
            unsafe { std::ptr::copy_nonoverlapping(MAGIC.as_ptr(), counter.map.as_mut_ptr(), 8) };
        }
        Ok(counter)
    }

    fn header(&self) -> [u8; 8] {
        let mut header = [0; 8];
        // SAFETY: the mapping is LEN (16) bytes long.
        unsafe { std::ptr::copy_nonoverlapping(self.map.as_ptr(), header.as_mut_ptr(), 8) };
        header
    }

    fn cell(&self) -> &AtomicU64 {
        // SAFETY: the mapping is page-aligned and LEN bytes long, so offset 8 is
        // an 8-aligned u64 that lives as long as `self`. Every process touches
        // it only through atomic operations.
        unsafe { &*self.map.as_ptr().add(8).cast::<AtomicU64>() }
    }

    /// The cumulative units admitted into this counter.
    pub fn value(&self) -> u64 {
        self.cell().load(Ordering::Acquire)
    }

    /// Raises the counter to at least `units` (never lowers it).
    pub fn raise_to(&self, units: u64) {
        self.cell().fetch_max(units, Ordering::AcqRel);
    }

    /// Adds `n` units if `check(value after the add)` allows it, atomically
    /// with respect to every other process mapping this counter. Returns the
    /// new value, or `check`'s refusal with nothing changed.
    pub fn try_add<E>(&self, n: u64, check: impl Fn(u64) -> Result<(), E>) -> Result<u64, E> {
        let cell = self.cell();
        let mut current = cell.load(Ordering::Acquire);
        loop {
            let next = current.saturating_add(n);
            check(next)?;
            match cell.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(next),
                Err(actual) => current = actual,
            }
        }
    }

    /// Writes the counter back to the disk (`msync`), so it survives an OS crash.
    pub fn flush(&self) -> Result<(), CounterError> {
        self.map.flush().map_err(|source| CounterError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// Gives the file real blocks now. A write through the mapping into a hole
/// needs the file system to allocate a block at fault time, and when the disk
/// is full that is a `SIGBUS` that kills the runtime instead of an error.
/// File systems that cannot preallocate are left as they are.
fn allocate(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on a descriptor we own; no memory is passed.
    match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, LEN as libc::off_t) } {
        0 | libc::EOPNOTSUPP => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_mappings_of_one_file_share_every_unit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c");
        let a = CounterFile::create(&path).unwrap();
        let b = CounterFile::open_existing(&path).unwrap().unwrap();
        std::thread::scope(|s| {
            for counter in [&a, &b] {
                s.spawn(move || {
                    for _ in 0..10_000 {
                        counter.try_add(1, |_| Ok::<_, ()>(())).unwrap();
                    }
                });
            }
        });
        assert_eq!(a.value(), 20_000);
        assert_eq!(b.value(), 20_000);
        drop((a, b));
        assert_eq!(CounterFile::create(&path).unwrap().value(), 20_000);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), LEN as u64);
    }

    #[test]
    fn a_refused_add_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let counter = CounterFile::create(&dir.path().join("c")).unwrap();
        assert_eq!(
            counter.try_add(3, |after| if after <= 4 { Ok(()) } else { Err(after) }),
            Ok(3)
        );
        assert_eq!(
            counter.try_add(2, |after| if after <= 4 { Ok(()) } else { Err(after) }),
            Err(5)
        );
        assert_eq!(counter.value(), 3);
        counter.raise_to(2);
        assert_eq!(counter.value(), 3);
        counter.raise_to(7);
        assert_eq!(counter.value(), 7);
    }

    /// Found by the `counter_read` fuzz target (tests/fuzz): a file of 16
    /// zero bytes followed by anything read as corrupt through
    /// `read_existing` (`Journal::usage`) but as a fresh counter through
    /// `open_existing` (`Journal::admit`); both now read its first 16 bytes.
    #[test]
    fn reading_and_mapping_agree_on_trailing_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c");
        let mut counted = MAGIC.to_vec();
        counted.extend_from_slice(&7u64.to_ne_bytes());
        for (contents, value) in [
            ([&[0u8; 16][..], &b"\0\0\0\0!\0"[..]].concat(), Some(0)),
            ([&counted[..], &b"trailing"[..]].concat(), Some(7)),
            (vec![0; 5], Some(0)),
            ([&[0u8; 8][..], &1u64.to_ne_bytes()[..]].concat(), None),
        ] {
            std::fs::write(&path, &contents).unwrap();
            let read = CounterFile::read_existing(&path).ok().flatten();
            let mapped = CounterFile::open_existing(&path).map(|c| c.map_or(0, |c| c.value()));
            assert_eq!(read, value, "{contents:?}");
            assert_eq!(read, mapped.ok(), "{contents:?}");
        }
    }

    #[test]
    fn a_file_that_is_not_a_counter_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c");
        std::fs::write(&path, b"not a usage counter!").unwrap();
        assert!(matches!(
            CounterFile::create(&path),
            Err(CounterError::Corrupt { .. })
        ));
        assert!(matches!(
            CounterFile::open_existing(&path),
            Err(CounterError::Corrupt { .. })
        ));
        std::fs::write(&path, b"short").unwrap();
        assert!(matches!(
            CounterFile::open_existing(&path),
            Err(CounterError::Corrupt { .. })
        ));
        assert!(
            CounterFile::open_existing(&dir.path().join("absent"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_half_created_counter_reads_as_zero_and_is_completed() {
        // A crash between creating the file and writing its header leaves
        // zeros (0 to 16 bytes): nothing was counted yet, nothing is corrupt.
        let dir = tempfile::tempdir().unwrap();
        for len in [0, 5, LEN] {
            let path = dir.path().join(format!("c{len}"));
            std::fs::write(&path, vec![0u8; len]).unwrap();
            let value = CounterFile::open_existing(&path)
                .unwrap()
                .map_or(0, |c| c.value());
            assert_eq!(value, 0, "{len} zero bytes");
            let counter = CounterFile::create(&path).unwrap();
            assert_eq!(counter.try_add(2, |_| Ok::<_, ()>(())), Ok(2));
            drop(counter);
            let reread = CounterFile::open_existing(&path).unwrap().unwrap();
            assert_eq!(reread.value(), 2);
        }
    }

    /// A tiny tmpfs, mounted for the test and unmounted on drop. Needs root,
    /// as the eBPF tests do, and honours the same documented opt-out.
    struct TinyFs {
        mnt: std::path::PathBuf,
        _dir: tempfile::TempDir,
    }

    impl TinyFs {
        fn full() -> Option<TinyFs> {
            let dir = tempfile::tempdir().unwrap();
            let mnt = dir.path().join("mnt");
            std::fs::create_dir(&mnt).unwrap();
            let mounted = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=4k,mode=0700", "tmpfs"])
                .arg(&mnt)
                .status()
                .is_ok_and(|s| s.success());
            if !mounted && std::env::var_os("SEALBOX_SKIP_BPF").is_some_and(|v| v == "1") {
                eprintln!("SEALBOX_SKIP_BPF=1: skipping, cannot mount a tmpfs (not root)");
                return None;
            }
            assert!(
                mounted,
                "mounting a 4 KiB tmpfs failed: this test needs root \
                 (or SEALBOX_SKIP_BPF=1 to skip the tests that need it)"
            );
            let fs = TinyFs { mnt, _dir: dir };
            // One page fills it.
            std::fs::write(fs.mnt.join("filler"), [0u8; 4096]).unwrap();
            assert!(
                std::fs::write(fs.mnt.join("more"), [0u8; 1]).is_err(),
                "not full"
            );
            Some(fs)
        }
    }

    impl Drop for TinyFs {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.mnt).status();
        }
    }

    #[test]
    fn a_full_disk_is_an_error_not_a_crash() {
        let Some(fs) = TinyFs::full() else { return };
        let path = fs.mnt.join("counter");
        // Without preallocation the first write through the mapping would
        // fault on a hole with no space left: SIGBUS, this process dead.
        match CounterFile::create(&path) {
            Err(CounterError::Io { source, path: p }) => {
                assert_eq!(source.raw_os_error(), Some(libc::ENOSPC), "{source}");
                assert_eq!(p, path);
            }
            other => panic!("expected ENOSPC, got {other:?}"),
        }
    }

    #[test]
    fn a_new_counter_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c");
        CounterFile::create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
