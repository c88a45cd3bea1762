//! Raw hex private keys: in a 0600 file, or in an environment variable.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use alloy_signer_local::PrivateKeySigner;
use zeroize::Zeroizing;

use crate::KeyfileError;

/// Permission bits that must be clear on a raw key file (group and other access).
const FORBIDDEN_MODE_BITS: u32 = 0o077;

/// Lowercase hex digits, for encoding a key without an intermediate (unzeroized) string.
const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Why [`parse_hex_key`] refused its input (no key material inside).
pub(crate) enum HexKeyError {
    /// Not 64 hex digits.
    NotHex,
    /// 32 bytes, but not a valid secp256k1 scalar.
    OutOfRange,
}

/// Parses `0x`-prefixed or bare 64-digit hex (surrounding whitespace ignored) into a signer.
pub(crate) fn parse_hex_key(text: &str) -> Result<PrivateKeySigner, HexKeyError> {
    let text = text.trim();
    let digits = text.strip_prefix("0x").unwrap_or(text);
    if digits.len() != 64 {
        return Err(HexKeyError::NotHex);
    }
    let mut bytes = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(digits, bytes.as_mut_slice()).map_err(|_| HexKeyError::NotHex)?;
    PrivateKeySigner::from_slice(bytes.as_slice()).map_err(|_| HexKeyError::OutOfRange)
}

/// Loads a raw hex key file, refusing it unless its mode is 0600 or stricter.
pub(crate) fn load_file(path: &Path, text: &str) -> Result<PrivateKeySigner, KeyfileError> {
    let signer = parse_hex_key(text).map_err(|e| match e {
        HexKeyError::NotHex => KeyfileError::NotAKey {
            path: path.to_path_buf(),
        },
        HexKeyError::OutOfRange => KeyfileError::InvalidKey {
            source_name: path.display().to_string(),
        },
    })?;
    let mode = std::fs::metadata(path)
        .map_err(|e| KeyfileError::io(path, e))?
        .permissions()
        .mode()
        & 0o7777;
    if mode & FORBIDDEN_MODE_BITS != 0 {
        return Err(KeyfileError::InsecureMode {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(signer)
}

/// Loads a hex key from the environment variable `var`.
pub(crate) fn load_env(var: &str) -> Result<PrivateKeySigner, KeyfileError> {
    let value = Zeroizing::new(std::env::var(var).map_err(|_| KeyfileError::EnvMissing {
        var: var.to_string(),
    })?);
    parse_hex_key(&value).map_err(|e| match e {
        HexKeyError::NotHex => KeyfileError::EnvNotAKey {
            var: var.to_string(),
        },
        HexKeyError::OutOfRange => KeyfileError::InvalidKey {
            source_name: format!("env:{var}"),
        },
    })
}

/// Writes `0x<64 hex>\n` to a new file created with mode 0600 (never over an existing file).
pub(crate) fn write_file(path: &Path, signer: &PrivateKeySigner) -> Result<(), KeyfileError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => KeyfileError::Exists {
                path: path.to_path_buf(),
            },
            _ => KeyfileError::io(path, e),
        })?;
    // The process umask can only clear bits, but be explicit in case the file system ignores mode.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| KeyfileError::io(path, e))?;
    let key = Zeroizing::new(signer.to_bytes().0);
    let mut text = Zeroizing::new([0u8; 67]);
    text[..2].copy_from_slice(b"0x");
    for (i, byte) in key.iter().enumerate() {
        text[2 + 2 * i] = HEX_DIGITS[usize::from(byte >> 4)];
        text[3 + 2 * i] = HEX_DIGITS[usize::from(byte & 0x0f)];
    }
    text[66] = b'\n';
    file.write_all(text.as_slice())
        .and_then(|()| file.sync_all())
        .map_err(|e| KeyfileError::io(path, e))
}
