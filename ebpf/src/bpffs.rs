//! The pin directory: on a BPF filesystem (mounted if missing and allowed),
//! created if needed, and locked while a loader checks and creates its maps.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::MeterError;

/// `statfs.f_type` of bpffs.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
/// Where bpffs is conventionally mounted.
const BPFFS_ROOT: &str = "/sys/fs/bpf";

fn statfs_type(path: &Path) -> std::io::Result<i64> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut st = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: c_path is NUL-terminated and st is a valid out-pointer.
    let rc = unsafe { libc::statfs(c_path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statfs succeeded and filled the struct.
    Ok(unsafe { st.assume_init() }.f_type)
}

fn is_bpffs(path: &Path) -> Result<bool, MeterError> {
    statfs_type(path)
        .map(|t| t == BPF_FS_MAGIC)
        .map_err(|source| MeterError::Io {
            operation: "statfs",
            path: path.to_owned(),
            source,
        })
}

fn nearest_existing(path: &Path) -> Option<&Path> {
    path.ancestors().find(|p| p.exists())
}

fn mount_bpffs() -> Result<(), MeterError> {
    let target = Path::new(BPFFS_ROOT);
    let failed = |reason: String| MeterError::BpffsNotMounted {
        path: target.to_owned(),
        reason,
    };
    let c_target = CString::new(BPFFS_ROOT).map_err(|e| failed(e.to_string()))?;
    let c_bpf = CString::new("bpf").map_err(|e| failed(e.to_string()))?;
    // SAFETY: all pointers are NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::mount(
            c_bpf.as_ptr(),
            c_target.as_ptr(),
            c_bpf.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(failed(format!(
            "it is not mounted and mounting it failed: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// Makes sure `pin_dir` exists on bpffs, mounting bpffs at /sys/fs/bpf first
/// when it is missing there, the pin directory is under it and `may_mount`.
pub(crate) fn ensure_pin_dir(pin_dir: &Path, may_mount: bool) -> Result<(), MeterError> {
    if pin_dir.as_os_str().as_bytes().contains(&0) || !pin_dir.is_absolute() {
        return Err(MeterError::BpffsNotMounted {
            path: pin_dir.to_owned(),
            reason: "the pin directory must be an absolute path without NUL bytes".into(),
        });
    }
    let existing = nearest_existing(pin_dir).unwrap_or(Path::new("/"));
    if !is_bpffs(existing)? {
        let under_root = pin_dir.starts_with(BPFFS_ROOT) && existing == Path::new(BPFFS_ROOT);
        if !under_root {
            return Err(MeterError::BpffsNotMounted {
                path: existing.to_owned(),
                reason: format!("{} is not on a BPF filesystem", existing.display()),
            });
        }
        if !may_mount {
            return Err(MeterError::BpffsNotMounted {
                path: existing.to_owned(),
                reason: "it is not mounted and MeterOptions::mount_bpffs is false".into(),
            });
        }
        mount_bpffs()?;
    }
    std::fs::create_dir_all(pin_dir).map_err(|source| MeterError::Io {
        operation: "creating pin directory",
        path: pin_dir.to_owned(),
        source,
    })?;
    if !is_bpffs(pin_dir)? {
        return Err(MeterError::BpffsNotMounted {
            path: pin_dir.to_owned(),
            reason: "the pin directory is not on a BPF filesystem".into(),
        });
    }
    Ok(())
}

/// How long [`PinDirLock::try_acquire`] waits for a lock someone holds.
pub(crate) const LOCK_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// An exclusive `flock` on the pin directory, held while maps are checked,
/// created, pinned and stamped, so two loaders never race on a fresh directory.
pub(crate) struct PinDirLock {
    _dir: File,
}

impl PinDirLock {
    /// Takes the lock on `pin_dir` if no one holds it; `None` when someone
    /// still does after [`LOCK_GRACE`]. Held for a whole meter's life, it keeps
    /// a second meter (in this or another process) from counting into the same
    /// maps.
    ///
    /// The grace covers a lock that outlives its meter for an instant: a child
    /// forked by another thread shares the locked descriptor until it execs
    /// (the descriptor is close-on-exec).
    pub(crate) fn try_acquire(pin_dir: &Path) -> Result<Option<Self>, MeterError> {
        let io_err = |operation, source| MeterError::Io {
            operation,
            path: PathBuf::from(pin_dir),
            source,
        };
        let dir = File::open(pin_dir).map_err(|e| io_err("opening pin directory", e))?;
        let deadline = std::time::Instant::now() + LOCK_GRACE;
        loop {
            // SAFETY: dir is an open file descriptor for the duration of the call.
            let rc = unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                return Ok(Some(Self { _dir: dir }));
            }
            let err = std::io::Error::last_os_error();
            match err.kind() {
                std::io::ErrorKind::Interrupted => continue,
                std::io::ErrorKind::WouldBlock if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                std::io::ErrorKind::WouldBlock => return Ok(None),
                _ => return Err(io_err("locking pin directory", err)),
            }
        }
    }

    /// Blocks until this process holds the lock on `pin_dir`.
    pub(crate) fn acquire(pin_dir: &Path) -> Result<Self, MeterError> {
        let io_err = |operation, source| MeterError::Io {
            operation,
            path: PathBuf::from(pin_dir),
            source,
        };
        let dir = File::open(pin_dir).map_err(|e| io_err("opening pin directory", e))?;
        loop {
            // SAFETY: dir is an open file descriptor for the duration of the call.
            let rc = unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX) };
            if rc == 0 {
                return Ok(Self { _dir: dir });
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(io_err("locking pin directory", err));
            }
        }
    }
}
