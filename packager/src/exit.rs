//! Turning errors into a message and an exit code of the shared table (`sealbox-report`):
//! one distinct code per failed check.

use std::process::ExitCode;

use sealbox_report::Exit;
use sealed_format::FormatError;

/// The exit codes `packager` uses (rows of the shared table), for `--help`.
pub fn exit_codes() -> Vec<Exit> {
    let own: &[Exit] = &[
        Exit::AlreadySealed,
        Exit::Options,
        Exit::Abi,
        Exit::World,
        Exit::VendorPin,
    ];
    [Exit::OPENING, own].concat()
}

/// The `Exit codes:` section of `--help`.
pub fn help() -> String {
    sealbox_report::help(&exit_codes())
}

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
pub fn report(err: anyhow::Error) -> ExitCode {
    let check = err
        .chain()
        .find_map(|e| e.downcast_ref::<FormatError>())
        .map(FormatError::check);
    let (err, exit) = match check {
        Some(check) => (
            err.context(format!("check `{check}` failed")),
            Exit::from_code(check.exit_code()).unwrap_or(Exit::Failure),
        ),
        None if err.chain().any(|e| e.is::<VendorPinError>()) => (
            err.context(format!("check `{}` failed", Exit::VendorPin.name())),
            Exit::VendorPin,
        ),
        None => (err, Exit::Failure),
    };
    sealbox_report::report("packager", err.as_ref(), exit)
}

#[cfg(test)]
mod tests {
    use super::*;

    use sealed_format::Check;

    #[test]
    fn every_code_packager_exits_with_is_in_its_help() {
        for check in Check::ALL {
            let exit = Exit::from_code(check.exit_code()).unwrap();
            assert!(exit_codes().contains(&exit), "{exit} missing");
        }
        assert!(exit_codes().contains(&Exit::VendorPin));
    }

    #[test]
    fn help_exit_codes_match_the_table() {
        use clap::CommandFactory;
        let mut cli = crate::Cli::command();
        let top = cli.render_long_help().to_string();
        let verify = cli
            .find_subcommand_mut("verify")
            .unwrap()
            .render_long_help()
            .to_string();
        for text in [top, verify] {
            assert!(text.contains(sealbox_report::HELP_HEADING), "{text}");
            assert_eq!(sealbox_report::help_mismatches(&text), Vec::<String>::new());
        }
    }
}
