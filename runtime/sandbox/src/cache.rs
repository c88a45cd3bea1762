//! Authenticated on-disk cache of compiled modules, keyed by code hash.
//!
//! `Module::deserialize` runs machine code from its input and is unsafe on
//! bytes an attacker may have written, so an entry is only deserialized after
//! its HMAC-SHA256 verifies under a 32-byte key kept in the (private) cache
//! directory. The MAC covers the code hash and the engine fingerprint as well
//! as the artifact, so an entry copied under another hash, built by another
//! engine configuration, or written with another key is rejected. Rejected or
//! unreadable entries are logged and recompiled; they are never loaded.
//!
//! Entry layout (`<hex code hash>.cwasm`):
//! `MAGIC (16) ‖ engine fingerprint (32) ‖ tag (32) ‖ serialized module`.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use zeroize::Zeroizing;

use super::error::SandboxError;

const MAGIC: &[u8; 16] = b"SEALBOX-CWASM-1\n";
const KEY_FILE: &str = "cache.key";
const MAC_DOMAIN: &[u8] = b"sealbox.module-cache.v1";
const HEADER_LEN: usize = MAGIC.len() + 32 + 32;

type HmacSha256 = Hmac<Sha256>;

/// The cache directory, its key and the fingerprint of the engine it serves.
pub(crate) struct ModuleCache {
    dir: PathBuf,
    key: Zeroizing<[u8; 32]>,
    fingerprint: [u8; 32],
}

impl std::fmt::Debug for ModuleCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleCache")
            .field("dir", &self.dir)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Why a cache entry was not used (logged, then recompiled).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Rejected {
    #[error("unreadable: {0}")]
    Io(io::Error),
    #[error("truncated or not a sealbox cache entry")]
    Malformed,
    #[error("built by a different engine configuration or wasmtime version")]
    ForeignEngine,
    #[error("authentication failed (tampered, or written under another key or code hash)")]
    BadTag,
    #[error("authenticated but wasmtime refused it: {0}")]
    Deserialize(String),
}

impl ModuleCache {
    /// Opens (creating if needed) the cache directory and its key.
    ///
    /// The directory is created 0700 and must be owned by the current user
    /// and closed to group and others; the key file is created 0600 on first
    /// use and held to the same rules.
    pub(crate) fn open(dir: &Path, fingerprint: [u8; 32]) -> Result<ModuleCache, SandboxError> {
        let dir_err = |reason: String| SandboxError::CacheDir {
            path: dir.to_path_buf(),
            reason,
        };
        match DirBuilder::new().recursive(true).mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) => return Err(dir_err(format!("cannot create: {e}"))),
        }
        let meta = fs::symlink_metadata(dir).map_err(|e| dir_err(format!("cannot stat: {e}")))?;
        if !meta.is_dir() {
            return Err(dir_err("is not a directory".into()));
        }
        check_private(&meta)
            .map_err(|reason| dir_err(format!("{reason}; run `chmod 700` on it")))?;
        let key = load_or_create_key(&dir.join(KEY_FILE))?;
        Ok(ModuleCache {
            dir: dir.to_path_buf(),
            key,
            fingerprint,
        })
    }

    /// Path of the entry for `code_hash`.
    pub(crate) fn entry_path(&self, code_hash: &[u8; 32]) -> PathBuf {
        self.dir.join(format!("{}.cwasm", hex::encode(code_hash)))
    }

    /// Loads and authenticates the entry for `code_hash` (`Ok(None)` when
    /// there is none, `Err` when there is one that must not be used), then hands the
    /// authenticated artifact to `deserialize` (`Module::deserialize` or
    /// `Component::deserialize`; a module's artifact given to the component
    /// loader, or the reverse, is refused by wasmtime).
    pub(crate) fn load_with<T>(
        &self,
        code_hash: &[u8; 32],
        deserialize: impl FnOnce(&[u8]) -> wasmtime::Result<T>,
    ) -> Result<Option<T>, Rejected> {
        let path = self.entry_path(code_hash);
        // Read once into memory, verify, then deserialize those same bytes:
        // mapping the file instead would let it change after verification.
        let bytes = match read_no_follow(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Rejected::Io(e)),
        };
        if bytes.len() < HEADER_LEN || &bytes[..MAGIC.len()] != MAGIC {
            return Err(Rejected::Malformed);
        }
        let (fingerprint, rest) = bytes[MAGIC.len()..].split_at(32);
        let (tag, body) = rest.split_at(32);
        if fingerprint != self.fingerprint {
            return Err(Rejected::ForeignEngine);
        }
        self.mac(code_hash, body)
            .verify_slice(tag)
            .map_err(|_| Rejected::BadTag)?;
        // Safety of the unsafe deserialization in `deserialize`: `body` was
        // produced by `serialize` of this engine configuration and written by
        // a holder of the cache key: the HMAC over (code hash, engine
        // fingerprint, body) verified just above, and the key lives in a
        // directory only this user can read.
        let artifact = deserialize(body).map_err(|e| Rejected::Deserialize(format!("{e:#}")))?;
        Ok(Some(artifact))
    }

    /// Writes the entry for `code_hash` atomically (temp file + rename).
    pub(crate) fn store(&self, code_hash: &[u8; 32], serialized: &[u8]) -> io::Result<()> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let tag = self.mac(code_hash, serialized).finalize().into_bytes();
        let final_path = self.entry_path(code_hash);
        let tmp = self.dir.join(format!(
            ".{}.{}.{}.tmp",
            hex::encode(code_hash),
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(MAGIC)?;
            f.write_all(&self.fingerprint)?;
            f.write_all(&tag)?;
            f.write_all(serialized)?;
            f.sync_data()?;
            fs::rename(&tmp, &final_path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn mac(&self, code_hash: &[u8; 32], body: &[u8]) -> HmacSha256 {
        // A 32-byte key is always a valid HMAC key.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.key[..])
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(MAC_DOMAIN);
        mac.update(code_hash);
        mac.update(&self.fingerprint);
        mac.update(&(body.len() as u64).to_le_bytes());
        mac.update(body);
        mac
    }
}

/// Reads the key, or creates it (32 random bytes, 0600) if absent.
fn load_or_create_key(path: &Path) -> Result<Zeroizing<[u8; 32]>, SandboxError> {
    let key_err = |reason: String| SandboxError::CacheKey {
        path: path.to_path_buf(),
        reason,
    };
    let mut key = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(&mut key[..]);
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(mut f) => {
            let written = f.write_all(&key[..]).and_then(|()| f.sync_all());
            if let Err(e) = written {
                let _ = fs::remove_file(path);
                return Err(key_err(format!("cannot write a new key: {e}")));
            }
            return Ok(key);
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(key_err(format!("cannot create: {e}"))),
    }
    // Existing key (possibly created a moment ago by another process).
    let mut f = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| key_err(format!("cannot open: {e}")))?;
    let meta = f
        .metadata()
        .map_err(|e| key_err(format!("cannot stat: {e}")))?;
    if !meta.is_file() {
        return Err(key_err("is not a regular file".into()));
    }
    check_private(&meta).map_err(|reason| key_err(format!("{reason}; run `chmod 600` on it")))?;
    if meta.len() != 32 {
        return Err(key_err(format!(
            "is {} bytes, expected 32; delete it to start a fresh cache",
            meta.len()
        )));
    }
    f.read_exact(&mut key[..])
        .map_err(|e| key_err(format!("cannot read: {e}")))?;
    Ok(key)
}

/// Owned by the effective user and closed to group and others.
fn check_private(meta: &fs::Metadata) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if meta.uid() != euid {
        return Err(format!(
            "owned by uid {}, not by the user running the sandbox (uid {euid})",
            meta.uid()
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!("mode {mode:04o} is open to group or others"));
    }
    Ok(())
}

fn read_no_follow(path: &Path) -> io::Result<Vec<u8>> {
    let mut f = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    Ok(buf)
}
