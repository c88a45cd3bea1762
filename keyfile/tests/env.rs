//! `load_signer` paths that read environment variables: one test, so no other test thread
//! reads the environment while this one changes it.

use std::path::Path;

use sealbox_keyfile::{KeyfileError, PASSWORD_ENV, PrivateKeySigner, load_signer, write_keystore};

#[test]
fn env_keys_and_env_password() {
    let signer = PrivateKeySigner::random();
    let hex_key = format!("0x{}", hex::encode(signer.to_bytes()));
    // SAFETY: this test binary has a single test, so no other thread reads the environment.
    unsafe {
        std::env::set_var("SEALBOX_TEST_KEY", &hex_key);
        std::env::set_var("SEALBOX_TEST_NOT_A_KEY", "hunter2");
        std::env::remove_var("SEALBOX_TEST_UNSET");
    }
    let loaded = load_signer(Path::new("env:SEALBOX_TEST_KEY")).unwrap();
    assert_eq!(loaded.address(), signer.address());

    let err = load_signer(Path::new("env:SEALBOX_TEST_UNSET")).unwrap_err();
    assert!(matches!(err, KeyfileError::EnvMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("SEALBOX_TEST_UNSET"));

    let err = load_signer(Path::new("env:SEALBOX_TEST_NOT_A_KEY")).unwrap_err();
    assert!(matches!(err, KeyfileError::EnvNotAKey { .. }), "{err:?}");
    assert!(!err.to_string().contains("hunter2"), "value leaked: {err}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ks.json");
    write_keystore(&path, &signer, "from env").unwrap();
    // SAFETY: as above.
    unsafe { std::env::set_var(PASSWORD_ENV, "from env") };
    assert_eq!(load_signer(&path).unwrap().address(), signer.address());
    // SAFETY: as above.
    unsafe { std::env::set_var(PASSWORD_ENV, "not it") };
    let err = load_signer(&path).unwrap_err();
    assert!(matches!(err, KeyfileError::WrongPassword { .. }), "{err:?}");
}
