//! Round trips and refusals of `sealbox_keyfile` (no environment variables touched here).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sealbox_keyfile::{
    KeyfileError, PrivateKeySigner, load_keystore, load_signer, write_keystore, write_raw,
};

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn key_hex(signer: &PrivateKeySigner) -> String {
    hex::encode(signer.to_bytes())
}

#[test]
fn raw_round_trip_is_0600_and_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vendor.key");
    let signer = PrivateKeySigner::random();
    write_raw(&path, &signer).unwrap();
    assert_eq!(mode_of(&path), 0o600);
    let loaded = load_signer(&path).unwrap();
    assert_eq!(loaded.address(), signer.address());
    assert_eq!(loaded.to_bytes(), signer.to_bytes());
}

#[test]
fn raw_without_prefix_and_with_whitespace_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bare.key");
    let signer = PrivateKeySigner::random();
    std::fs::write(&path, format!("  {}\n\n", key_hex(&signer))).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
    assert_eq!(load_signer(&path).unwrap().address(), signer.address());
}

#[test]
fn raw_with_group_or_other_bits_is_refused_naming_the_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("loose.key");
    let signer = PrivateKeySigner::random();
    write_raw(&path, &signer).unwrap();
    for mode in [0o644, 0o640, 0o604, 0o660] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = load_signer(&path).unwrap_err();
        assert!(
            matches!(err, KeyfileError::InsecureMode { mode: m, .. } if m == mode),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains(&format!("{mode:04o}")), "{msg}");
        assert!(msg.contains("0600"), "{msg}");
        assert!(!msg.contains(&key_hex(&signer)), "key leaked: {msg}");
        assert!(!format!("{err:?}").contains(&key_hex(&signer)));
    }
}

#[test]
fn write_raw_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("taken.key");
    std::fs::write(&path, "keep me").unwrap();
    let err = write_raw(&path, &PrivateKeySigner::random()).unwrap_err();
    assert!(matches!(err, KeyfileError::Exists { .. }), "{err:?}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me");
}

fn private_file(dir: &Path, name: &str, contents: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

#[test]
fn garbage_files_are_not_keys() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8]); 6] = [
        ("empty", b""),
        ("text", b"hello world\n"),
        ("short", b"0x1234"),
        ("nonhex", &[b'z'; 64]),
        ("binary", &[0xff, 0xfe, 0x00, 0x80, 0x12]),
        ("toolong", &[b'a'; 65]),
    ];
    for (name, contents) in cases {
        let path = private_file(dir.path(), name, contents);
        let err = load_signer(&path).unwrap_err();
        assert!(
            matches!(err, KeyfileError::NotAKey { .. }),
            "{name}: {err:?}"
        );
        assert!(
            err.to_string().contains(name),
            "message names the file: {err}"
        );
    }
}

#[test]
fn zero_key_is_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let path = private_file(
        dir.path(),
        "zero",
        format!("0x{}", "0".repeat(64)).as_bytes(),
    );
    let err = load_signer(&path).unwrap_err();
    assert!(matches!(err, KeyfileError::InvalidKey { .. }), "{err:?}");
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let err = load_signer(Path::new("/nonexistent/sealbox/key")).unwrap_err();
    assert!(matches!(err, KeyfileError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/sealbox/key"));
}

#[test]
fn keystore_round_trip_and_wrong_password() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vendor.json");
    let signer = PrivateKeySigner::random();
    write_keystore(&path, &signer, "correct horse").unwrap();
    assert_eq!(mode_of(&path), 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains(&key_hex(&signer)),
        "keystore holds the key in clear"
    );
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["version"], 3);

    let loaded = load_keystore(&path, "correct horse").unwrap();
    assert_eq!(loaded.address(), signer.address());

    let err = load_keystore(&path, "wrong horse").unwrap_err();
    assert!(matches!(err, KeyfileError::WrongPassword { .. }), "{err:?}");
    assert!(err.to_string().contains("wrong password"));

    let err = write_keystore(&path, &signer, "again").unwrap_err();
    assert!(matches!(err, KeyfileError::Exists { .. }), "{err:?}");
}

#[test]
fn malformed_keystore_json_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = private_file(dir.path(), "bad.json", br#"{"version": 3, "crypto": 1}"#);
    let err = load_keystore(&path, "pw").unwrap_err();
    assert!(matches!(err, KeyfileError::Keystore { .. }), "{err:?}");
}

/// `cast wallet address --keystore` must read what `write_keystore` writes (interoperability).
#[test]
fn cast_reads_our_keystore() {
    let cast = std::env::var_os("SEALBOX_CAST")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../license-contract/node_modules/.bin/cast")
        });
    assert!(
        cast.exists(),
        "cast not found at {} (run scripts/setup, or set SEALBOX_CAST)",
        cast.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cast.json");
    let signer = PrivateKeySigner::random();
    write_keystore(&path, &signer, "pw for cast").unwrap();
    let out = std::process::Command::new(&cast)
        .args(["wallet", "address", "--keystore"])
        .arg(&path)
        .args(["--password", "pw for cast"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cast failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        printed.trim().to_lowercase(),
        signer.address().to_string().to_lowercase()
    );
}

/// A keystore v3 file as `write_keystore` writes it, with its KDF cut down to n = 16 (a wrong
/// password fails at the MAC whatever n is, so these tests stay fast).
fn small_keystore(dir: &Path) -> serde_json::Value {
    let path = dir.join("template.json");
    write_keystore(&path, &PrivateKeySigner::random(), "right").unwrap();
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    json["crypto"]["kdfparams"]["n"] = 16.into();
    json
}

/// Found while writing the `keystore` fuzz target (tests/fuzz), in `eth-keystore`'s
/// `decrypt_key`, and checked here against the unguarded code: it indexes the derived key
/// with `[16..32]` and the IV with `[..16]`, so a keystore with a short `dklen` or IV panicked
/// instead of being refused; and any `n`, `r`, `p` or `c` was derived, however much memory
/// or time it took. Each is now refused before any key derivation.
#[test]
fn keystores_that_would_panic_or_exhaust_the_machine_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let template = small_keystore(dir.path());
    type Edit = fn(&mut serde_json::Value);
    let cases: [(&str, Edit); 9] = [
        ("dklen 16", |j| {
            j["crypto"]["kdfparams"]["dklen"] = 16.into()
        }),
        ("dklen 0", |j| j["crypto"]["kdfparams"]["dklen"] = 0.into()),
        ("short iv", |j| {
            j["crypto"]["cipherparams"]["iv"] = "00ff".into()
        }),
        ("n = 2^31", |j| {
            j["crypto"]["kdfparams"]["n"] = (1u64 << 31).into()
        }),
        ("n = 2^20, r = 8", |j| {
            j["crypto"]["kdfparams"]["n"] = (1u64 << 20).into()
        }),
        ("n not a power of two", |j| {
            j["crypto"]["kdfparams"]["n"] = 1000.into()
        }),
        ("p = 2^20", |j| {
            j["crypto"]["kdfparams"]["p"] = (1u64 << 20).into()
        }),
        ("r = 0", |j| j["crypto"]["kdfparams"]["r"] = 0.into()),
        ("pbkdf2 c = u32::MAX", |j| {
            j["crypto"]["kdf"] = "pbkdf2".into();
            let salt = j["crypto"]["kdfparams"]["salt"].clone();
            j["crypto"]["kdfparams"] = serde_json::json!({
                "c": u32::MAX, "dklen": 32, "prf": "hmac-sha256", "salt": salt
            });
        }),
    ];
    for (what, edit) in cases {
        let mut json = template.clone();
        edit(&mut json);
        let path = dir.path().join(format!("{what}.json"));
        std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
        let started = std::time::Instant::now();
        let err = load_keystore(&path, "wrong").unwrap_err();
        assert!(
            matches!(err, KeyfileError::Keystore { .. }),
            "{what}: {err}"
        );
        assert!(
            started.elapsed().as_secs() < 2,
            "{what}: took {:?}",
            started.elapsed()
        );
    }
    // The small template itself is a keystore: the wrong password fails at the MAC.
    let path = dir.path().join("small.json");
    std::fs::write(&path, serde_json::to_vec(&template).unwrap()).unwrap();
    let err = load_keystore(&path, "wrong").unwrap_err();
    assert!(matches!(err, KeyfileError::WrongPassword { .. }), "{err}");
}
