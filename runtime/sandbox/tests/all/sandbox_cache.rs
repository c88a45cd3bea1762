//! The authenticated compiled-module cache: cold compile then warm hit,
//! tampered / truncated / foreign entries recompiled (never deserialized),
//! and the cache directory's permissions.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use sealbox_sandbox::{GuestLimits, Program, Sandbox, SandboxError};

use crate::sandbox_support::{code_hash, config, fixture, load};

fn cached_sandbox(dir: &Path) -> Sandbox {
    Sandbox::new(config(Some(dir.to_path_buf()))).unwrap()
}

fn compile(sb: &Sandbox, name: &str) -> Program {
    load(sb, name, GuestLimits::default())
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Runs `f` with tracing output captured; returns the log text.
fn capture_logs<R>(f: impl FnOnce() -> R) -> (R, String) {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let result = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    (result, text)
}

#[test]
fn cold_compile_then_warm_hit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("var/cache/sealbox/modules");
    let hash = code_hash(&fixture("bytes_abi"));

    let cold = cached_sandbox(&dir);
    let p = compile(&cold, "bytes_abi");
    assert!(!p.from_cache());
    assert_eq!(cold.compilations(), 1);
    let entry = cold.cache_entry_path(&hash).unwrap();
    assert_eq!(entry, dir.join(format!("{}.cwasm", hex::encode(hash))));
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&entry), 0o600);
    assert_eq!(mode(&dir.join("cache.key")), 0o600);
    assert_eq!(fs::metadata(dir.join("cache.key")).unwrap().len(), 32);
    drop(p);
    drop(cold);

    // A new process (new Sandbox, same directory): no compilation.
    let warm = cached_sandbox(&dir);
    let p = compile(&warm, "bytes_abi");
    assert!(p.from_cache(), "warm start should skip compilation");
    assert_eq!(warm.compilations(), 0);
    assert_eq!(p.call_bytes("upper", b"warm").unwrap(), b"WARM");
    assert_eq!(p.entries(), vec!["echo", "upper"]);
}

#[test]
fn tampered_or_truncated_entries_are_recompiled_and_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("modules");
    let hash = code_hash(&fixture("bytes_abi"));
    let first = cached_sandbox(&dir);
    compile(&first, "bytes_abi");
    let entry = first.cache_entry_path(&hash).unwrap();
    let good = fs::read(&entry).unwrap();
    assert!(good.len() > 1000);

    // (corruption, expected reason in the warning)
    let body_flip = {
        let mut b = good.clone();
        let i = b.len() - 100;
        b[i] ^= 0x40;
        b
    };
    let tag_flip = {
        let mut b = good.clone();
        b[16 + 32] ^= 1;
        b
    };
    let fingerprint_flip = {
        let mut b = good.clone();
        b[16] ^= 1;
        b
    };
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("body byte flipped", body_flip, "authentication failed"),
        ("tag byte flipped", tag_flip, "authentication failed"),
        (
            "engine fingerprint changed",
            fingerprint_flip,
            "different engine",
        ),
        (
            "truncated",
            good[..good.len() / 2].to_vec(),
            "authentication failed",
        ),
        ("cut inside the header", good[..40].to_vec(), "truncated"),
    ];
    for (what, bytes, reason) in cases {
        fs::write(&entry, &bytes).unwrap();
        let sb = cached_sandbox(&dir);
        let (p, logs) = capture_logs(|| compile(&sb, "bytes_abi"));
        assert!(!p.from_cache(), "{what}: must not be loaded");
        assert_eq!(sb.compilations(), 1, "{what}: must be recompiled");
        assert!(
            logs.contains("ignoring compiled-module cache entry"),
            "{what}: {logs}"
        );
        assert!(
            logs.contains(reason),
            "{what}: expected `{reason}` in {logs}"
        );
        assert_eq!(p.call_bytes("upper", b"ok").unwrap(), b"OK", "{what}");
        // Overwritten with a good entry: the next start is warm again.
        let next = cached_sandbox(&dir);
        assert!(
            compile(&next, "bytes_abi").from_cache(),
            "{what}: entry not rewritten"
        );
        assert_eq!(next.compilations(), 0);
    }
}

#[test]
fn entries_written_under_another_key_or_hash_are_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let abi = fixture("bytes_abi");
    let numeric = fixture("numeric");

    let a = cached_sandbox(&dir_a);
    compile(&a, "bytes_abi");
    let b = cached_sandbox(&dir_b);
    assert_ne!(
        fs::read(dir_a.join("cache.key")).unwrap(),
        fs::read(dir_b.join("cache.key")).unwrap(),
        "each cache gets its own random key"
    );

    // Another cache's (validly made) entry copied in: wrong key.
    let entry_a = a.cache_entry_path(&code_hash(&abi)).unwrap();
    let entry_b = b.cache_entry_path(&code_hash(&abi)).unwrap();
    fs::copy(&entry_a, &entry_b).unwrap();
    let (p, logs) = capture_logs(|| compile(&b, "bytes_abi"));
    assert!(!p.from_cache());
    assert_eq!(b.compilations(), 1);
    assert!(logs.contains("authentication failed"), "{logs}");

    // This cache's own entry for module X placed under module Y's hash.
    let entry_y = b.cache_entry_path(&code_hash(&numeric)).unwrap();
    fs::copy(&entry_b, &entry_y).unwrap();
    let (p, logs) = capture_logs(|| compile(&b, "numeric"));
    assert!(!p.from_cache());
    assert_eq!(b.compilations(), 2);
    assert!(logs.contains("authentication failed"), "{logs}");
    assert_eq!(
        p.call_numeric("add", &["40", "2"]).unwrap()[0].to_string(),
        "42"
    );
}

#[test]
fn cache_directory_must_be_private() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("open");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let err = Sandbox::new(config(Some(dir.clone()))).unwrap_err();
    assert!(matches!(err, SandboxError::CacheDir { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("mode 0755 is open to group or others"),
        "{err}"
    );
    assert!(
        !dir.join("cache.key").exists(),
        "nothing written into a refused directory"
    );

    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(dir.join("cache.key"), [0u8; 32]).unwrap();
    fs::set_permissions(dir.join("cache.key"), fs::Permissions::from_mode(0o644)).unwrap();
    let err = Sandbox::new(config(Some(dir.clone()))).unwrap_err();
    assert!(matches!(err, SandboxError::CacheKey { .. }), "{err}");
    assert!(err.to_string().contains("chmod 600"), "{err}");

    fs::write(dir.join("cache.key"), [0u8; 7]).unwrap();
    fs::set_permissions(dir.join("cache.key"), fs::Permissions::from_mode(0o600)).unwrap();
    let err = Sandbox::new(config(Some(dir.clone()))).unwrap_err();
    assert!(err.to_string().contains("is 7 bytes, expected 32"), "{err}");
    assert!(
        !format!("{err:?}").contains("[0, 0, 0"),
        "no key bytes in errors"
    );
}
