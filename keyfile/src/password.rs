//! Keystore passwords: from `SEALBOX_PASSWORD`, else asked on the terminal.

use std::path::Path;

use zeroize::Zeroizing;

use crate::KeyfileError;

/// Environment variable holding the keystore password (non-interactive use).
pub const PASSWORD_ENV: &str = "SEALBOX_PASSWORD";

/// The password to open the keystore at `path`: `SEALBOX_PASSWORD`, else a terminal prompt.
pub fn existing_password(path: &Path) -> Result<Zeroizing<String>, KeyfileError> {
    if let Ok(password) = std::env::var(PASSWORD_ENV) {
        return Ok(Zeroizing::new(password));
    }
    prompt(path, &format!("Password for keystore {}: ", path.display()))
}

/// The password for a new keystore at `path`: `SEALBOX_PASSWORD`, else asked twice on the
/// terminal (the two entries must match).
pub fn new_password(path: &Path) -> Result<Zeroizing<String>, KeyfileError> {
    if let Ok(password) = std::env::var(PASSWORD_ENV) {
        return Ok(Zeroizing::new(password));
    }
    let first = prompt(path, &format!("New password for {}: ", path.display()))?;
    let second = prompt(path, "Repeat the password: ")?;
    if first != second {
        return Err(KeyfileError::PasswordMismatch {
            path: path.to_path_buf(),
        });
    }
    Ok(first)
}

fn prompt(path: &Path, text: &str) -> Result<Zeroizing<String>, KeyfileError> {
    rpassword::prompt_password(text)
        .map(Zeroizing::new)
        .map_err(|e| KeyfileError::NoPassword {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}
