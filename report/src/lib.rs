//! How a Sealbox binary reports a failure: [`report`] prints the error and its causes, and
//! [`Exit`] is the one exit-code table of `packager`, `runtime` and `registry`.
//!
//! ```text
//! runtime: error: cannot load algo.sealed.wasm
//!   caused by: not licensed: ...
//! ```
//!
//! Only the `Display` text of each error in the chain is printed (never `Debug`), so what
//! reaches stderr is what the errors chose to say: error types keep key material out of
//! their messages, and the reporter adds nothing of its own.
//!
//! Each exit code means one thing in every binary. Codes 10–23 are the sealed-file checks
//! (`sealed_format::Check::exit_code`); a test holds the table to them.

use std::error::Error;
use std::fmt::Write as _;
use std::process::ExitCode;

/// Declares [`Exit`] from its rows: variant = number, name, meaning.
macro_rules! table {
    ($( $(#[$doc:meta])* $variant:ident = $code:literal, $name:literal, $meaning:literal; )*) => {
        /// The exit codes of the Sealbox binaries: one number, one name, one meaning.
        ///
        /// Ranges: 0–2 generic, 10–23 a check of the sealed file (10–29 reserved for them),
        /// 30–39 trust, licensing, buying and the billing unit, 40–41 the sandbox and the
        /// guest, 50 the vendor's own checks (`packager verify --vendor`). A new code
        /// takes a number no row holds.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum Exit {
            $( $(#[$doc])* $variant = $code, )*
        }

        impl Exit {
    /// The rows of every binary that opens sealed files (`packager`, `runtime`): 0, 1, 2 and
    /// the checks of opening one (10–20, [`sealed_format`'s `Check`] order).
    pub const OPENING: &'static [Exit] = &[
        Exit::Success,
        Exit::Failure,
        Exit::Usage,
        Exit::NotWasm,
        Exit::Parse,
        Exit::SignatureSection,
        Exit::Hash,
        Exit::Signer,
        Exit::VendorMismatch,
        Exit::Manifest,
        Exit::Layout,
        Exit::NotRecipient,
        Exit::Decrypt,
        Exit::CodeHash,
    ];

            /// Every exit code, in increasing order.
            pub const ALL: &'static [Exit] = &[$(Exit::$variant),*];

            fn entry(self) -> (&'static str, &'static str) {
                match self {
                    $( Exit::$variant => ($name, $meaning), )*
                }
            }
        }
    };
}

table! {
    /// Success.
    Success = 0, "success", "success";
    /// Any failure without a code of its own.
    Failure = 1, "error", "other error (file not readable, key file, RPC, transaction, ...)";
    /// Bad command line (clap exits with it).
    Usage = 2, "usage", "usage error (bad or missing arguments)";

    /// Sealed-file check `not-wasm`.
    NotWasm = 10, "not-wasm", "not a Wasm module or component";
    /// Sealed-file check `parse`.
    Parse = 11, "parse", "broken section framing (truncated or corrupted file)";
    /// Sealed-file check `signature-section`.
    SignatureSection = 12, "signature-section",
        "signature section missing, not first, or malformed";
    /// Sealed-file check `hash`.
    Hash = 13, "hash", "bytes after the signature section do not match the signed hash";
    /// Sealed-file check `signer`.
    Signer = 14, "signer", "a signature does not recover to its key id";
    /// Sealed-file check `vendor-mismatch`.
    VendorMismatch = 15, "vendor-mismatch", "no signature by the manifest's vendor";
    /// Sealed-file check `manifest`.
    Manifest = 16, "manifest", "manifest missing or invalid";
    /// Sealed-file check `layout`.
    Layout = 17, "layout", "code sections do not match the manifest";
    /// Sealed-file check `not-recipient`.
    NotRecipient = 18, "not-recipient", "the key is not a recipient of the encrypted module";
    /// Sealed-file check `decrypt`.
    Decrypt = 19, "decrypt", "the content key or payload fails to decrypt";
    /// Sealed-file check `code-hash`.
    CodeHash = 20, "code-hash", "the plaintext does not hash to the manifest's code_hash";
    /// Sealed-file check `already-sealed` (seal input).
    AlreadySealed = 21, "already-sealed", "(seal) the input is already sealed";
    /// Sealed-file check `options` (seal options).
    Options = 22, "options", "(seal) the options make an invalid manifest";
    /// Sealed-file check `abi` (seal input's exports).
    Abi = 23, "abi",
        "(seal) the exports break the invocation ABI (entry, sealbox_alloc, memory)";
    /// Sealed-file check `world` (seal input is a component).
    World = 24, "world", "(seal) the component does not export its WIT world's functions";

    /// The module's chain, or the registry deployment the RPC serves, is not the configured one.
    ChainMismatch = 30, "chain-mismatch",
        "the module's chain or the RPC's registry deployment is not the configured one";
    /// The module names another registry than the one trusted.
    RegistryMismatch = 31, "registry-mismatch",
        "the module names another registry than the trusted one";
    /// The chain cannot be reached and the module cannot run offline.
    ChainUnreachable = 32, "chain-unreachable",
        "the chain cannot be reached and the module cannot run offline";
    /// The customer is not licensed for the release.
    Unlicensed = 33, "unlicensed", "the customer is not licensed for the release";
    /// The runtime's signer is not authorized by the customer.
    SignerNotAuthorized = 34, "signer-not-authorized",
        "the runtime's signer is not authorized by the customer";
    /// No bought unit left and none can be bought.
    NoUnits = 35, "no-units", "no bought unit left and none can be bought (escrow, --max-price)";
    /// The module requires the kernel meter and it is not attached.
    MeterRequired = 36, "meter-required",
        "kernel metering required but the eBPF meter is not attached";
    /// The usage journal or the state directory failed.
    State = 37, "state", "usage journal or state directory error (e.g. in use by another process)";
    /// A purchase transaction failed or the contract refused it.
    Purchase = 38, "purchase", "a purchase transaction failed or was refused by the contract";
    /// The module bills another unit than the command meters.
    WrongUnit = 39, "wrong-unit", "the module bills another unit than this command meters";

    /// The sandbox refused the module or could not start.
    Sandbox = 40, "sandbox", "the sandbox refused the module (imports, ABI, limits)";
    /// The guest call failed.
    Guest = 41, "guest", "the guest call failed (trap, runaway loop, memory limit, missing export)";

    /// `packager verify --vendor`: the module's vendor is another address.
    VendorPin = 50, "vendor-pin", "(verify --vendor) the module's vendor is another address";
}

impl Exit {
    /// The process exit status.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The row whose number is `code`, if any.
    pub fn from_code(code: u8) -> Option<Exit> {
        Exit::ALL.iter().copied().find(|e| e.code() == code)
    }

    /// Stable kebab-case name (for the sealed-file checks, the check's own name).
    pub fn name(self) -> &'static str {
        self.entry().0
    }

    /// One line saying what the code means, as `--help` prints it.
    pub fn meaning(self) -> &'static str {
        self.entry().1
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.code(), self.name())
    }
}

/// The heading [`help`] starts with and [`help_mismatches`] looks for.
pub const HELP_HEADING: &str = "Exit codes:";

/// The `Exit codes:` section of a binary's `--help` (clap's `after_long_help`), listing `codes`.
pub fn help(codes: &[Exit]) -> String {
    let mut out = String::from(HELP_HEADING);
    for exit in codes {
        let _ = write!(
            out,
            "\n{:>4}  {:<21}  {}",
            exit.code(),
            exit.name(),
            exit.meaning()
        );
    }
    out
}

/// Every line of the `Exit codes:` section of `text` that does not name an entry of the table
/// with its own name and meaning (as [`help`] prints them), described; empty when all agree or
/// when `text` has no such section. For tests of a binary's `--help`.
pub fn help_mismatches(text: &str) -> Vec<String> {
    let mut lines = text.lines().skip_while(|l| l.trim() != HELP_HEADING);
    if lines.next().is_none() {
        return Vec::new();
    }
    let mut wrong = Vec::new();
    for line in lines.take_while(|l| !l.trim().is_empty()) {
        let mut words = line.split_whitespace();
        let (number, name) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let meaning = words.collect::<Vec<_>>().join(" ");
        match number.parse().ok().and_then(Exit::from_code) {
            None => wrong.push(format!("{line:?}: no exit code {number:?} in the table")),
            Some(exit) if exit.name() != name || exit.meaning() != meaning => wrong.push(format!(
                "{line:?}: the table says {} {} {}",
                exit.code(),
                exit.name(),
                exit.meaning()
            )),
            Some(_) => {}
        }
    }
    wrong
}

/// Prints `err` on stderr as [`lines`] does and returns `exit` as the process's exit code.
///
/// For an `anyhow::Error`, pass `err.as_ref()`.
pub fn report(bin: &str, err: &(dyn Error + 'static), exit: Exit) -> ExitCode {
    for line in lines(bin, err) {
        eprintln!("{line}");
    }
    exit.into()
}

/// The lines [`report`] prints: `<bin>: error: <err>`, then `  caused by: <cause>` for each
/// cause in the chain, leaving out a cause whose text the line before already contains (an
/// error that quotes its source, as `#[error("...: {0}")]` does, or anyhow context over such
/// an error) and causes with no text.
pub fn lines(bin: &str, err: &(dyn Error + 'static)) -> Vec<String> {
    let mut previous = err.to_string();
    let mut out = vec![format!("{bin}: error: {previous}")];
    let mut cause = err.source();
    while let Some(e) = cause {
        let text = e.to_string();
        if !text.trim().is_empty() && !previous.contains(&text) {
            out.push(format!("  caused by: {text}"));
            previous = text;
        }
        cause = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[derive(Debug, thiserror::Error)]
    enum Chain {
        #[error("cannot reach the node at {url}: {source}; is it running?")]
        Unreachable {
            url: String,
            #[source]
            source: std::io::Error,
        },
    }

    #[derive(Debug, thiserror::Error)]
    enum Load {
        #[error("the chain: {0}")]
        Chain(#[from] Chain),
        #[error("state directory {0} is in use")]
        Locked(String, #[source] std::io::Error),
    }

    fn refused() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused")
    }

    #[test]
    fn quoting_causes_are_printed_once() {
        let chain = Chain::Unreachable {
            url: "http://127.0.0.1:8545".into(),
            source: refused(),
        };
        let err = Err::<(), _>(Load::from(chain))
            .context("cannot load algo.sealed.wasm")
            .unwrap_err();
        assert_eq!(
            lines("runtime", err.as_ref()),
            [
                "runtime: error: cannot load algo.sealed.wasm",
                "  caused by: the chain: cannot reach the node at http://127.0.0.1:8545: \
                 connection refused; is it running?",
            ]
        );
    }

    #[test]
    fn distinct_causes_each_get_a_line() {
        let err = anyhow::Error::new(Load::Locked(
            "/var/lib/sealbox".into(),
            std::io::Error::other("held by pid 42"),
        ))
        .context("opening the state directory")
        .context("runtime settle");
        assert_eq!(
            lines("runtime", err.as_ref()),
            [
                "runtime: error: runtime settle",
                "  caused by: opening the state directory",
                "  caused by: state directory /var/lib/sealbox is in use",
                "  caused by: held by pid 42",
            ]
        );
    }

    #[test]
    fn context_repeating_its_source_drops_the_source() {
        // `.with_context(|| format!("...: {e}"))` and anyhow's own `{e:#}` style both repeat.
        let io = std::fs::read("/nonexistent/sealbox/key").unwrap_err();
        let text = io.to_string();
        let err = Err::<(), _>(io)
            .with_context(|| format!("loading --key /nonexistent/sealbox/key: {text}"))
            .unwrap_err();
        assert_eq!(
            lines("registry", err.as_ref()),
            [format!(
                "registry: error: loading --key /nonexistent/sealbox/key: {text}"
            )]
        );
    }

    #[test]
    fn a_plain_error_is_one_line_and_an_empty_cause_is_skipped() {
        assert_eq!(
            lines(
                "packager",
                &std::io::Error::other("refusing to overwrite o.wasm")
            ),
            ["packager: error: refusing to overwrite o.wasm"]
        );
        let err = anyhow::Error::new(std::io::Error::other("")).context("withdraw failed");
        assert_eq!(
            lines("packager", err.as_ref()),
            ["packager: error: withdraw failed"]
        );
    }

    #[test]
    fn table_is_ordered_and_unique() {
        for pair in Exit::ALL.windows(2) {
            assert!(pair[0].code() < pair[1].code(), "{pair:?} out of order");
        }
        for (i, a) in Exit::ALL.iter().enumerate() {
            assert_eq!(Exit::from_code(a.code()), Some(*a));
            for b in &Exit::ALL[i + 1..] {
                assert_ne!(a.name(), b.name(), "{a:?} and {b:?} share a name");
                assert_ne!(a.meaning(), b.meaning(), "{a:?} and {b:?} share a meaning");
            }
            assert!(!a.meaning().contains('\n'));
        }
    }

    #[test]
    fn every_sealed_file_check_has_its_code_and_name() {
        use sealed_format::Check;
        for check in Check::ALL {
            let exit = Exit::from_code(check.exit_code())
                .unwrap_or_else(|| panic!("no entry for check {check} ({})", check.exit_code()));
            assert_eq!(exit.name(), check.name());
        }
        let checks = Check::ALL.map(Check::exit_code);
        for &exit in Exit::ALL {
            let in_check_range = (10..30).contains(&exit.code());
            assert_eq!(
                in_check_range,
                checks.contains(&exit.code()),
                "{exit}: 10–29 is for the sealed-file checks only"
            );
        }
    }

    #[test]
    fn help_lists_codes_and_reads_back() {
        let text = help(&[Exit::Success, Exit::Hash, Exit::VendorPin]);
        assert_eq!(
            text,
            "Exit codes:\n\
             \x20  0  success                success\n\
             \x20 13  hash                   bytes after the signature section do not match the \
             signed hash\n\
             \x20 50  vendor-pin             (verify --vendor) the module's vendor is \
             another address"
        );
        let all = help(Exit::ALL);
        assert_eq!(
            help_mismatches(&format!("usage...\n\n{all}\n\nmore")),
            [""; 0]
        );
        assert_eq!(help_mismatches("no section here"), [""; 0]);
    }

    #[test]
    fn help_mismatches_names_unknown_and_changed_codes() {
        let text = "Exit codes:\n   0  success   success\n  30  vendor-pin   the vendor differs\n  \
                    99  nope   nothing\n\nafter";
        let wrong = help_mismatches(text);
        assert_eq!(wrong.len(), 2, "{wrong:?}");
        assert!(
            wrong[0].contains("the table says 30 chain-mismatch"),
            "{wrong:?}"
        );
        assert!(wrong[1].contains("no exit code \"99\""), "{wrong:?}");
    }

    #[test]
    fn docs_agree_with_the_table() {
        // docs/FORMAT.md's check table: | step | `name` | code | fails when |
        let format = include_str!("../../docs/FORMAT.md");
        let mut rows = 0;
        for line in format.lines().filter(|l| l.starts_with("| ")) {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let (Some(name), Some(Ok(code))) = (
                cells
                    .get(2)
                    .and_then(|c| c.strip_prefix('`')?.strip_suffix('`')),
                cells.get(3).map(|c| c.parse::<u8>()),
            ) else {
                continue;
            };
            let exit = Exit::from_code(code).unwrap_or_else(|| panic!("{line}: no code {code}"));
            assert_eq!(exit.name(), name, "docs/FORMAT.md: {line}");
            rows += 1;
        }
        assert_eq!(rows, 11, "docs/FORMAT.md's check table moved");
        // The README's paragraph names every code from 30 up.
        let readme = include_str!("../../README.md");
        let start = readme
            .find("Each failed check has its own exit code")
            .unwrap();
        let paragraph = &readme[start..start + readme[start..].find("\n\n").unwrap()];
        let paragraph = paragraph.split_whitespace().collect::<Vec<_>>().join(" ");
        for exit in Exit::ALL.iter().filter(|e| e.code() >= 30) {
            assert!(
                paragraph.contains(&format!("{} ", exit.code())),
                "README.md's exit-code paragraph does not mention {exit}"
            );
        }
    }
}
