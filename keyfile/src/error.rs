//! The one error type of this crate.

use std::path::PathBuf;

/// Why a key could not be loaded or written.
///
/// Messages name the file, variable or check that failed and what to do about it.
/// They never contain key material or passwords.
#[derive(Debug, thiserror::Error)]
pub enum KeyfileError {
    /// The key file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },

    /// A raw hex key file is readable by group or others.
    #[error(
        "key file {path} has mode {mode:04o}; a raw private key file must be 0600 or stricter \
         (run: chmod 600 {path})"
    )]
    InsecureMode {
        /// The file involved.
        path: PathBuf,
        /// Its permission bits (`mode & 0o7777`).
        mode: u32,
    },

    /// The file is neither a keystore v3 JSON nor a hex private key.
    #[error(
        "key file {path} is neither a keystore v3 JSON nor a hex private key \
         (64 hex digits, optionally 0x-prefixed)"
    )]
    NotAKey {
        /// The file involved.
        path: PathBuf,
    },

    /// The hex decodes to 32 bytes that are not a valid secp256k1 private key (zero or ≥ n).
    #[error("{source_name}: 32 bytes that are not a valid secp256k1 private key")]
    InvalidKey {
        /// The file path or `env:VAR` the key came from.
        source_name: String,
    },

    /// `env:VAR` was given but the variable is unset or not unicode.
    #[error("environment variable {var} is not set (asked for by env:{var})")]
    EnvMissing {
        /// The variable name.
        var: String,
    },

    /// `env:VAR` holds something other than a hex private key.
    #[error(
        "environment variable {var} does not hold a hex private key \
         (64 hex digits, optionally 0x-prefixed)"
    )]
    EnvNotAKey {
        /// The variable name.
        var: String,
    },

    /// The keystore's MAC does not match: wrong password (or a tampered file).
    #[error("wrong password for keystore {path} (MAC mismatch)")]
    WrongPassword {
        /// The keystore file.
        path: PathBuf,
    },

    /// The keystore JSON is malformed or uses unsupported parameters.
    #[error("keystore {path} is not a usable keystore v3 file: {reason}")]
    Keystore {
        /// The keystore file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// No password: `SEALBOX_PASSWORD` is unset and no terminal could be used to ask.
    #[error("no password for {path}: set SEALBOX_PASSWORD or run on a terminal ({reason})")]
    NoPassword {
        /// The keystore file the password is for.
        path: PathBuf,
        /// Why the prompt failed.
        reason: String,
    },

    /// The two passwords typed for a new keystore differ.
    #[error("the passwords typed for {path} do not match")]
    PasswordMismatch {
        /// The keystore file the password is for.
        path: PathBuf,
    },

    /// Refused to write a key over an existing file.
    #[error("refusing to overwrite existing file {path}")]
    Exists {
        /// The file that already exists.
        path: PathBuf,
    },
}

impl KeyfileError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
