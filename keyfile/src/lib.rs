//! Loading and writing the Ethereum (secp256k1) keys Sealbox tools sign with.
//!
//! A `--key` argument names one of:
//! - a **keystore v3** JSON file (scrypt, as written by `cast wallet new` / geth); the password
//!   comes from the `SEALBOX_PASSWORD` environment variable, else from a terminal prompt;
//! - a file holding a **raw hex** private key (64 hex digits, optionally `0x`-prefixed), which
//!   must have mode 0600 or stricter;
//! - `env:VARNAME`: a raw hex private key held in that environment variable.
//!
//! Errors never contain key material or passwords.

#![deny(missing_docs)]

mod error;
mod keystore;
mod password;
mod raw;

use std::path::Path;

pub use alloy_signer_local::PrivateKeySigner;
pub use error::KeyfileError;
pub use keystore::{MAX_PBKDF2_ROUNDS, MAX_SCRYPT_MEMORY, MAX_SCRYPT_WORK, check_params};
pub use password::{PASSWORD_ENV, existing_password, new_password};

/// Prefix of a "path" that names an environment variable holding a hex key.
pub const ENV_PREFIX: &str = "env:";

/// Largest key file read; anything bigger is neither a keystore nor a hex key.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// Loads the signer named by `path`: a keystore v3 file, a 0600 raw hex file, or `env:VAR`.
///
/// Keystore passwords come from `SEALBOX_PASSWORD`, else a terminal prompt.
pub fn load_signer(path: &Path) -> Result<PrivateKeySigner, KeyfileError> {
    if let Some(var) = path.to_str().and_then(|p| p.strip_prefix(ENV_PREFIX)) {
        return raw::load_env(var);
    }
    let text = read_small(path)?;
    if text.trim_start().starts_with('{') {
        let password = existing_password(path)?;
        keystore::load(path, &password)
    } else {
        raw::load_file(path, &text)
    }
}

/// Decrypts the keystore v3 file at `path` with an explicit `password` (no env, no prompt).
pub fn load_keystore(path: &Path, password: &str) -> Result<PrivateKeySigner, KeyfileError> {
    keystore::load(path, password)
}

/// Writes `signer` as a new keystore v3 file at `path` (mode 0600), encrypted with `password`.
///
/// Refuses to overwrite an existing file. `cast wallet address --keystore PATH` reads the result.
pub fn write_keystore(
    path: &Path,
    signer: &PrivateKeySigner,
    password: &str,
) -> Result<(), KeyfileError> {
    keystore::write(path, signer, password)
}

/// Writes `signer` as `0x`-hex into a new file at `path` created with mode 0600.
///
/// Refuses to overwrite an existing file.
pub fn write_raw(path: &Path, signer: &PrivateKeySigner) -> Result<(), KeyfileError> {
    raw::write_file(path, signer)
}

/// Reads a key file of at most [`MAX_KEY_FILE_BYTES`] as text; the buffer is zeroized on drop.
pub(crate) fn read_small(path: &Path) -> Result<zeroize::Zeroizing<String>, KeyfileError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| KeyfileError::io(path, e))?;
    let mut bytes = zeroize::Zeroizing::new(Vec::new());
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| KeyfileError::io(path, e))?;
    if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(KeyfileError::NotAKey {
            path: path.to_path_buf(),
        });
    }
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(zeroize::Zeroizing::new(text.to_string())),
        Err(_) => Err(KeyfileError::NotAKey {
            path: path.to_path_buf(),
        }),
    }
}
