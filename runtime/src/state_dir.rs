//! The runtime's state directory: one buyer, one process at a time.
//!
//! Units are bought on chain per *buyer*, an id carried in every purchase
//! receipt, and each state directory is its own buyer, so two directories
//! never count one purchase twice — not even two directories running the
//! same signer key at once. The buyer id is derived from a random secret
//! kept in the directory *and* the directory's identity on disk (device and
//! inode): a copy of the directory is a new directory with a new inode, so
//! it is a new buyer that has bought nothing, and a wiped directory gets a
//! new secret. Only one process may run on a directory at a time (an
//! exclusive `flock` on `<dir>/lock`, released by the kernel when the
//! process dies, `SIGKILL` included).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Name of the buyer secret file.
const SECRET: &str = "buyer.secret";
/// Name of the lock file.
const LOCK: &str = "lock";

/// Why the state directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    /// A file system operation failed.
    #[error("state directory {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The path exists and is not a directory.
    #[error("state directory {0} exists and is not a directory")]
    NotADirectory(PathBuf),
    /// Another process runs on this directory.
    #[error(
        "state directory {path} is in use by another runtime process{}; each running runtime \
         needs its own --state-dir (two processes on one directory would spend one purchase \
         twice)",
        .pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Locked {
        /// The directory.
        path: PathBuf,
        /// The holder's pid, as it wrote it.
        pid: Option<u32>,
    },
    /// The buyer secret is not 32 bytes.
    #[error(
        "state directory {0}: {SECRET} is damaged (not 32 bytes); it names this directory's \
         purchases: restore it, or move the directory aside to start as a new buyer"
    )]
    BadSecret(PathBuf),
}

/// An open state directory. Holds the directory's lock while it lives when
/// opened with [`StateDir::lock`].
#[derive(Debug)]
pub struct StateDir {
    path: PathBuf,
    buyer: [u8; 32],
    _lock: Option<File>,
}

impl StateDir {
    /// Opens (creating, mode 0700) the directory and takes its exclusive lock:
    /// for processes that run calls or buy units.
    pub fn lock(path: &Path) -> Result<Self, StateDirError> {
        create_private_dir(path)?;
        let lock = take_lock(path)?;
        let buyer = buyer_id(path)?;
        Ok(Self {
            path: path.to_owned(),
            buyer,
            _lock: Some(lock),
        })
    }

    /// Opens (creating, mode 0700) the directory without its lock: for
    /// commands that only read or report.
    pub fn open(path: &Path) -> Result<Self, StateDirError> {
        create_private_dir(path)?;
        let buyer = buyer_id(path)?;
        Ok(Self {
            path: path.to_owned(),
            buyer,
            _lock: None,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This directory's buyer id.
    pub fn buyer(&self) -> [u8; 32] {
        self.buyer
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StateDirError + '_ {
    move |source| StateDirError::Io {
        path: path.to_owned(),
        source,
    }
}

fn create_private_dir(dir: &Path) -> Result<(), StateDirError> {
    if dir.is_dir() {
        return Ok(());
    }
    if dir.exists() {
        return Err(StateDirError::NotADirectory(dir.to_owned()));
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(dir))
}

fn take_lock(dir: &Path) -> Result<File, StateDirError> {
    use std::os::fd::AsRawFd;
    let path = dir.join(LOCK);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io_err(&path))?;
    // SAFETY: flock on a descriptor we own; no memory is passed.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(StateDirError::Locked {
                path: dir.to_owned(),
                pid: text.trim().parse().ok(),
            });
        }
        return Err(io_err(&path)(err));
    }
    file.set_len(0).map_err(io_err(&path))?;
    writeln!(file, "{}", std::process::id()).map_err(io_err(&path))?;
    Ok(file)
}

fn buyer_id(dir: &Path) -> Result<[u8; 32], StateDirError> {
    let path = dir.join(SECRET);
    let secret = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => create_secret(&path)?,
        Err(e) => return Err(io_err(&path)(e)),
    };
    if secret.len() != 32 {
        return Err(StateDirError::BadSecret(dir.to_owned()));
    }
    let meta = std::fs::metadata(dir).map_err(io_err(dir))?;
    let mut h = Sha256::new();
    h.update(b"sealbox buyer v1");
    h.update(&secret);
    h.update(meta.dev().to_le_bytes());
    h.update(meta.ino().to_le_bytes());
    Ok(h.finalize().into())
}

fn create_secret(path: &Path) -> Result<Vec<u8>, StateDirError> {
    let secret: [u8; 32] = rand::random();
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut file) => {
            file.write_all(&secret)
                .and_then(|()| file.sync_all())
                .map_err(io_err(path))?;
            Ok(secret.to_vec())
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            std::fs::read(path).map_err(io_err(path))
        }
        Err(e) => Err(io_err(path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_process_at_a_time_and_the_lock_dies_with_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateDir::lock(dir.path()).unwrap();
        let err = StateDir::lock(dir.path()).unwrap_err();
        assert!(
            matches!(err, StateDirError::Locked { pid: Some(p), .. } if p == std::process::id()),
            "{err}"
        );
        // Readers do not need the lock.
        assert_eq!(StateDir::open(dir.path()).unwrap().buyer(), first.buyer());
        drop(first);
        assert!(StateDir::lock(dir.path()).is_ok());
    }

    #[test]
    fn a_copy_of_the_directory_is_a_new_buyer() {
        let root = tempfile::tempdir().unwrap();
        let a = root.path().join("a");
        let buyer = StateDir::open(&a).unwrap().buyer();
        assert_eq!(StateDir::open(&a).unwrap().buyer(), buyer, "stable");
        let b = root.path().join("b");
        std::fs::create_dir(&b).unwrap();
        std::fs::copy(a.join(SECRET), b.join(SECRET)).unwrap();
        assert_ne!(StateDir::open(&b).unwrap().buyer(), buyer);
        // A rename keeps the directory (same inode): same buyer.
        let c = root.path().join("c");
        std::fs::rename(&a, &c).unwrap();
        assert_eq!(StateDir::open(&c).unwrap().buyer(), buyer);
    }

    #[test]
    fn the_secret_is_private_and_a_damaged_one_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        StateDir::open(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(SECRET))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(dir.path().join(SECRET), b"short").unwrap();
        assert!(matches!(
            StateDir::open(dir.path()),
            Err(StateDirError::BadSecret(_))
        ));
    }
}
