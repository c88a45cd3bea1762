//! cgroup v2 targets: checking a directory, its id and level, and
//! [`CgroupDir`], a child cgroup made for a pid so that its future
//! descendants inherit it.

use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::TlsError;

/// `statfs.f_type` of cgroup2.
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
/// Where a hybrid hierarchy (systemd's, Debian 12's here) mounts cgroup v2.
pub const CGROUP2_HYBRID_ROOT: &str = "/sys/fs/cgroup/unified";
/// Where a unified hierarchy mounts it.
const CGROUP2_UNIFIED_ROOT: &str = "/sys/fs/cgroup";

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

/// Whether `path` is on a cgroup v2 file system.
pub fn is_cgroup2(path: &Path) -> bool {
    statfs_type(path).is_ok_and(|t| t == CGROUP2_SUPER_MAGIC)
}

/// The cgroup v2 mount: `/sys/fs/cgroup/unified` (hybrid hierarchy) or
/// `/sys/fs/cgroup` (unified hierarchy), whichever is cgroup2.
pub fn cgroup2_root() -> Result<PathBuf, TlsError> {
    [CGROUP2_HYBRID_ROOT, CGROUP2_UNIFIED_ROOT]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| is_cgroup2(p))
        .ok_or_else(|| TlsError::NotCgroup2 {
            path: PathBuf::from(CGROUP2_HYBRID_ROOT),
            reason: format!(
                "neither {CGROUP2_HYBRID_ROOT} nor {CGROUP2_UNIFIED_ROOT} is a cgroup2 mount \
                 (mount one with `mount -t cgroup2 none {CGROUP2_HYBRID_ROOT}`)"
            ),
        })
}

/// Checks that `path` is a cgroup v2 directory.
pub(crate) fn check_cgroup2_dir(path: &Path) -> Result<(), TlsError> {
    let meta = std::fs::metadata(path).map_err(|e| TlsError::NotCgroup2 {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    if !meta.is_dir() || !is_cgroup2(path) {
        return Err(TlsError::NotCgroup2 {
            path: path.to_owned(),
            reason: "not a directory on a cgroup2 file system".into(),
        });
    }
    Ok(())
}

/// The cgroup id of the cgroup v2 directory `path`: what the kernel's
/// `bpf_skb_cgroup_id` returns for its sockets and what [`TlsEvent::tenant`]
/// and [`TlsMeter::total`] use. It is the directory's inode number.
///
/// [`TlsEvent::tenant`]: crate::TlsEvent::tenant
/// [`TlsMeter::total`]: crate::TlsMeter::total
pub fn cgroup_id(path: &Path) -> Result<u64, TlsError> {
    check_cgroup2_dir(path)?;
    std::fs::metadata(path)
        .map(|m| m.ino())
        .map_err(|e| TlsError::NotCgroup2 {
            path: path.to_owned(),
            reason: e.to_string(),
        })
}

/// The level of the cgroup v2 directory `path`: 0 for the root of the
/// hierarchy, 1 for its children, … (what `bpf_skb_ancestor_cgroup_id` takes).
pub(crate) fn cgroup_level(path: &Path) -> Result<u32, TlsError> {
    check_cgroup2_dir(path)?;
    let canonical = std::fs::canonicalize(path).map_err(|e| TlsError::NotCgroup2 {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let mut level = 0u32;
    let mut current = canonical.as_path();
    while let Some(parent) = current.parent() {
        if !is_cgroup2(parent) {
            break;
        }
        level += 1;
        current = parent;
    }
    Ok(level)
}

/// Writes `pid` into `dir/cgroup.procs` (moving its whole thread group).
fn write_procs(dir: &Path, pid: u32) -> Result<(), TlsError> {
    let procs = dir.join("cgroup.procs");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&procs)
        .and_then(|mut f| f.write_all(pid.to_string().as_bytes()))
        .map_err(|source| TlsError::Cgroup {
            operation: "moving a process into",
            path: procs,
            source,
        })
}

/// The pids in `dir/cgroup.procs`.
fn read_procs(dir: &Path) -> Result<Vec<u32>, TlsError> {
    let procs = dir.join("cgroup.procs");
    let text = std::fs::read_to_string(&procs).map_err(|source| TlsError::Cgroup {
        operation: "reading",
        path: procs,
        source,
    })?;
    Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

/// The children of `pid` (all its threads'), from `/proc/PID/task/*/children`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for task in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    out
}

/// A cgroup v2 directory this process made (for a target pid, or for a
/// test), removed on drop unless [`kept`](CgroupDir::keep).
///
/// Sockets belong to the cgroup of the process that created them, at the
/// time it created them: move a process in *before* it opens its
/// connections. Children forked later inherit the cgroup, so a pid moved in
/// takes its future descendants with it ([`CgroupDir::add_tree`] also moves
/// the ones it already has).
#[derive(Debug)]
pub struct CgroupDir {
    path: PathBuf,
    remove_on_drop: bool,
}

impl CgroupDir {
    /// Makes the cgroup directory `path` (and missing parents; they must be
    /// on cgroup2). An existing directory is adopted and removed on drop too.
    pub fn create(path: impl Into<PathBuf>) -> Result<Self, TlsError> {
        let path = path.into();
        let existing = path
            .ancestors()
            .find(|p| p.exists())
            .unwrap_or(Path::new("/"));
        check_cgroup2_dir(existing)?;
        std::fs::create_dir_all(&path).map_err(|source| TlsError::Cgroup {
            operation: "creating cgroup",
            path: path.clone(),
            source,
        })?;
        check_cgroup2_dir(&path)?;
        Ok(Self {
            path,
            remove_on_drop: true,
        })
    }

    /// Makes `name` (a relative path such as `sealbox-tls/gateway`) under the
    /// cgroup v2 mount ([`cgroup2_root`]).
    pub fn create_under_root(name: &str) -> Result<Self, TlsError> {
        let relative = Path::new(name);
        if relative.is_absolute()
            || relative
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(TlsError::Config {
                detail: format!("cgroup name `{name}` must be a plain relative path"),
            });
        }
        Self::create(cgroup2_root()?.join(relative))
    }

    /// Makes `name` under the cgroup v2 mount and moves `pid` and its current
    /// descendants into it ([`CgroupDir::add_tree`]): the target for
    /// metering "a pid and its descendants".
    pub fn for_pid(pid: u32, name: &str) -> Result<Self, TlsError> {
        let dir = Self::create_under_root(name)?;
        dir.add_tree(pid)?;
        Ok(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves `pid` (its whole thread group) into this cgroup. `0` moves the
    /// calling process.
    pub fn add_pid(&self, pid: u32) -> Result<(), TlsError> {
        write_procs(&self.path, pid)
    }

    /// Moves `pid` and every descendant it has now into this cgroup; returns
    /// how many processes were moved. A descendant that exits meanwhile is
    /// skipped. Needs `/proc/PID/task/*/children` (CONFIG_PROC_CHILDREN)
    /// for the descendants; without it only `pid` moves.
    pub fn add_tree(&self, pid: u32) -> Result<usize, TlsError> {
        self.add_pid(pid)?;
        let mut moved = 1;
        let mut queue = children(pid);
        let mut seen = std::collections::HashSet::new();
        while let Some(child) = queue.pop() {
            if !seen.insert(child) {
                continue;
            }
            // Move first, then list: a child forked after the move inherits.
            if self.add_pid(child).is_ok() {
                moved += 1;
            }
            queue.extend(children(child));
        }
        Ok(moved)
    }

    /// The pids now in this cgroup (not in cgroups below it).
    pub fn pids(&self) -> Result<Vec<u32>, TlsError> {
        read_procs(&self.path)
    }

    /// Leaves the directory in place on drop; returns its path.
    pub fn keep(mut self) -> PathBuf {
        self.remove_on_drop = false;
        self.path.clone()
    }

    /// Removes the directory now: processes still in it are moved to the
    /// parent cgroup first (a cgroup with processes cannot be removed).
    pub fn remove(mut self) -> Result<(), TlsError> {
        self.remove_on_drop = false;
        remove_cgroup(&self.path)
    }
}

fn remove_cgroup(path: &Path) -> Result<(), TlsError> {
    if !path.exists() {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        for pid in read_procs(path).unwrap_or_default() {
            // A process that exits meanwhile leaves by itself.
            let _ = write_procs(parent, pid);
        }
    }
    std::fs::remove_dir(path).map_err(|source| TlsError::Cgroup {
        operation: "removing cgroup",
        path: path.to_owned(),
        source,
    })
}

impl Drop for CgroupDir {
    fn drop(&mut self) {
        if self.remove_on_drop {
            // Best effort: a child cgroup made by someone else keeps it.
            let _ = remove_cgroup(&self.path);
        }
    }
}
