//! Keystore v3 parsing and decryption with a wrong password
//! (`sealbox_keyfile::load_keystore`) on arbitrary file contents: never a
//! panic, never a key, and never more memory or time than the key derivation
//! bounds of `sealbox_keyfile` (`MAX_SCRYPT_MEMORY`, `MAX_SCRYPT_WORK`,
//! `MAX_PBKDF2_ROUNDS`) allow.
//!
//! Inputs whose KDF parameters are within those bounds but above this
//! target's own budget (scrypt `128·r·n·p` over 1 MiB, PBKDF2 over 4096
//! rounds) are skipped: they would cost a second per run. Inputs beyond the
//! bounds are run: the keyfile crate must refuse them before deriving anything.
#![no_main]

use std::cell::RefCell;
use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;

thread_local! {
    static DIR: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
}

fn path() -> PathBuf {
    DIR.with(|d| {
        d.borrow_mut()
            .get_or_insert_with(|| {
                let base = std::env::var_os("TMPDIR").map_or("/tmp".into(), PathBuf::from);
                let dir = base.join(format!("sealbox-fuzz-keystore-{}", std::process::id()));
                std::fs::create_dir_all(&dir).expect("a scratch directory");
                dir
            })
            .join("key.json")
    })
}

/// Whether the input's KDF would be allowed by the keyfile crate but is too
/// slow for fuzzing.
fn within_bounds_but_slow(data: &[u8]) -> bool {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else {
        return false;
    };
    let params = &json["crypto"]["kdfparams"];
    let get = |k: &str| params.get(k).and_then(serde_json::Value::as_u64);
    if let Some(c) = get("c")
        && c > 4096
        && c <= sealbox_keyfile::MAX_PBKDF2_ROUNDS
    {
        return true;
    }
    if let (Some(n), Some(r), Some(p)) = (get("n"), get("r"), get("p")) {
        let memory = 128u64.saturating_mul(r).saturating_mul(n);
        let work = memory.saturating_mul(p);
        let allowed = memory <= sealbox_keyfile::MAX_SCRYPT_MEMORY
            && work <= sealbox_keyfile::MAX_SCRYPT_WORK;
        return allowed && work > 1 << 20;
    }
    false
}

fuzz_target!(|data: &[u8]| {
    if within_bounds_but_slow(data) {
        return;
    }
    let path = path();
    std::fs::write(&path, data).expect("writes the keystore");
    let result = sealbox_keyfile::load_keystore(&path, "not-the-password");
    assert!(result.is_err(), "a wrong password opened a keystore");
});
