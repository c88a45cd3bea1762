//! Turning errors into a message and an exit code: one distinct code per failed check.

use std::process::ExitCode;

use sealed_format::FormatError;

/// Exit code when `verify --vendor` names a different vendor than the module's.
pub const EXIT_VENDOR_PIN: u8 = 30;

/// Exit codes, for `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
   0  every check passed
   1  other error (file not readable, key file, ...)
   2  usage error
  10  not-wasm           not a core Wasm module
  11  parse              broken section framing (truncated or corrupted file)
  12  signature-section  signature section missing, not first, or malformed
  13  hash               bytes after the signature section do not match the signed hash
  14  signer             a signature does not recover to its key id
  15  vendor-mismatch    no signature by the manifest's vendor
  16  manifest           manifest missing or invalid
  17  layout             code sections do not match the manifest
  18  not-recipient      the --key is not a recipient of the encrypted module
  19  decrypt            the content key or payload fails to decrypt
  20  code-hash          the plaintext does not hash to the manifest's code_hash
  21  already-sealed     (seal) the input is already sealed
  22  options            (seal) the options make an invalid manifest
  23  abi                (seal) the module's exports break the invocation ABI (no entry,
                         no sealbox_alloc or memory, an entry of the wrong type)
  30  vendor pin         (verify --vendor) the module's vendor is another address";

/// A `verify --vendor` mismatch (not a format check: the module is valid, just not the
/// vendor the caller expected).
#[derive(Debug)]
pub struct VendorPinError {
    /// The vendor the caller expected.
    pub expected: sealed_format::Address,
    /// The module's vendor.
    pub actual: sealed_format::Address,
}

impl std::fmt::Display for VendorPinError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the module's vendor is {}, not the expected {}",
            self.actual, self.expected
        )
    }
}

impl std::error::Error for VendorPinError {}

/// Prints `err` (naming the failed check, if any) and returns the matching exit code.
pub fn report(err: &anyhow::Error) -> ExitCode {
    let check = err
        .chain()
        .find_map(|e| e.downcast_ref::<FormatError>())
        .map(FormatError::check);
    let code = match check {
        Some(check) => {
            eprintln!("error: check `{check}` failed: {}", message(err));
            check.exit_code()
        }
        None if err.chain().any(|e| e.is::<VendorPinError>()) => {
            eprintln!("error: check `vendor-pin` failed: {}", message(err));
            EXIT_VENDOR_PIN
        }
        None => {
            eprintln!("error: {}", message(err));
            1
        }
    };
    ExitCode::from(code)
}

/// `err` and its causes joined by `": "`, like `{err:#}`, but leaving out a cause whose text the
/// message before it already contains (many errors, e.g. alloy's transport errors, repeat their
/// source in their own message).
pub fn message(err: &anyhow::Error) -> String {
    let mut out = String::new();
    let mut previous = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !previous.is_empty() && previous.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
        previous = text;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_drops_causes_their_parent_already_quotes() {
        #[derive(Debug)]
        struct Quoting(std::io::Error);
        impl std::fmt::Display for Quoting {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "cannot reach the node: {}; is it running?", self.0)
            }
        }
        impl std::error::Error for Quoting {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let io = std::io::Error::other("connection refused");
        let err = anyhow::Error::new(Quoting(io)).context("cannot publish");
        assert_eq!(
            message(&err),
            "cannot publish: cannot reach the node: connection refused; is it running?"
        );
        let plain = anyhow::anyhow!("inner").context("middle").context("outer");
        assert_eq!(message(&plain), format!("{plain:#}"));
    }
    use sealed_format::Check;

    #[test]
    fn help_lists_every_check_with_its_code() {
        for check in Check::ALL {
            let line = format!("{:>4}  {}", check.exit_code(), check.name());
            assert!(EXIT_CODES_HELP.contains(&line), "missing {line:?}");
        }
    }
}
