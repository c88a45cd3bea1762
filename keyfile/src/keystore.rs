//! Ethereum keystore v3 files (scrypt + AES-128-CTR), readable by `cast wallet`.

use std::path::Path;

use alloy_signer_local::{LocalSignerError, PrivateKeySigner};
use zeroize::Zeroizing;

use crate::KeyfileError;

/// Decrypts the keystore at `path` with `password`.
pub(crate) fn load(path: &Path, password: &str) -> Result<PrivateKeySigner, KeyfileError> {
    PrivateKeySigner::decrypt_keystore(path, password).map_err(|e| map_error(path, e))
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
