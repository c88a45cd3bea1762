//! Ethereum keystore v3 files (scrypt + AES-128-CTR), readable by `cast wallet`.

use std::path::Path;

use alloy_signer_local::{LocalSignerError, PrivateKeySigner};
use zeroize::Zeroizing;

use crate::KeyfileError;

/// Most memory the scrypt parameters of a keystore may ask for (`128·r·n` bytes): geth's
/// "standard" parameters (n = 2^18, r = 8) need exactly this much.
pub const MAX_SCRYPT_MEMORY: u64 = 256 * 1024 * 1024;
/// Most scrypt work a keystore may ask for (`128·r·n·p` bytes hashed).
pub const MAX_SCRYPT_WORK: u64 = 4 * MAX_SCRYPT_MEMORY;
/// Most PBKDF2 rounds a keystore may ask for (geth writes 262 144).
pub const MAX_PBKDF2_ROUNDS: u64 = 10_000_000;

/// Decrypts the keystore at `path` with `password`.
pub(crate) fn load(path: &Path, password: &str) -> Result<PrivateKeySigner, KeyfileError> {
    let text = crate::read_small(path)?;
    check_params(&text).map_err(|reason| KeyfileError::Keystore {
        path: path.to_path_buf(),
        reason,
    })?;
    PrivateKeySigner::decrypt_keystore(path, password).map_err(|e| map_error(path, e))
}

/// Refuses, before any key derivation, the parameters that the keystore library would panic on
/// (a derived key shorter than 32 bytes, an IV shorter than 16) or that would take unbounded
/// memory or time (scrypt `n`, `r`, `p`; PBKDF2 rounds): a keystore file is read before anything
/// else is known about it.
pub fn check_params(text: &str) -> Result<(), String> {
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let crypto = &json["crypto"];
    let params = &crypto["kdfparams"];
    let number = |name: &str| params.get(name).and_then(serde_json::Value::as_u64);
    if params.get("dklen").is_some() && number("dklen") != Some(32) {
        return Err("kdfparams.dklen must be 32".into());
    }
    if let Some(iv) = crypto["cipherparams"]["iv"].as_str()
        && iv.len() != 32
    {
        return Err("cipherparams.iv must be 16 bytes (32 hex digits)".into());
    }
    if params.get("c").is_some() {
        match number("c") {
            Some(c) if (1..=MAX_PBKDF2_ROUNDS).contains(&c) => {}
            _ => return Err(format!("kdfparams.c must be 1 to {MAX_PBKDF2_ROUNDS}")),
        }
    }
    if params.get("n").is_some() || params.get("r").is_some() || params.get("p").is_some() {
        let (Some(n), Some(r), Some(p)) = (number("n"), number("r"), number("p")) else {
            return Err("kdfparams n, r and p must be positive integers".into());
        };
        if n < 2 || !n.is_power_of_two() || r == 0 || p == 0 {
            return Err("scrypt n must be a power of two ≥ 2, r and p positive".into());
        }
        let memory = 128u64.saturating_mul(r).saturating_mul(n);
        if memory > MAX_SCRYPT_MEMORY || memory.saturating_mul(p) > MAX_SCRYPT_WORK {
            return Err(format!(
                "scrypt parameters n={n} r={r} p={p} need more than {} MiB or {} MiB of work",
                MAX_SCRYPT_MEMORY >> 20,
                MAX_SCRYPT_WORK >> 20
            ));
        }
    }
    Ok(())
}

/// Encrypts `signer` with `password` into a new keystore file at `path`.
pub(crate) fn write(
    path: &Path,
    signer: &PrivateKeySigner,
    password: &str,
) -> Result<(), KeyfileError> {
    if path.exists() {
        return Err(KeyfileError::Exists {
            path: path.to_path_buf(),
        });
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| KeyfileError::Keystore {
            path: path.to_path_buf(),
            reason: "the path has no UTF-8 file name".to_string(),
        })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let key = Zeroizing::new(signer.to_bytes().0);
    PrivateKeySigner::encrypt_keystore(
        dir,
        &mut rand::thread_rng(),
        key.as_slice(),
        password,
        Some(name),
    )
    .map_err(|e| map_error(path, e))?;
    // The keystore is encrypted, but there is no reason for anyone else to read it either.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| KeyfileError::io(path, e))
}

fn map_error(path: &Path, error: LocalSignerError) -> KeyfileError {
    use alloy_signer_local::LocalSignerError as E;
    use eth_keystore::KeystoreError as K;
    match error {
        E::EthKeystoreError(K::MacMismatch) => KeyfileError::WrongPassword {
            path: path.to_path_buf(),
        },
        E::EthKeystoreError(K::StdIo(reason)) | E::EthKeystoreError(K::SerdeJson(reason)) => {
            KeyfileError::Keystore {
                path: path.to_path_buf(),
                reason,
            }
        }
        E::IoError(source) => KeyfileError::io(path, source),
        E::EcdsaError(_) => KeyfileError::InvalidKey {
            source_name: path.display().to_string(),
        },
        other => KeyfileError::Keystore {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    }
}
