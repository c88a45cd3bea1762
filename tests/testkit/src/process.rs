//! Child processes of the tests: the binaries under test, anvil, helpers.
//! Whatever the test runner's environment holds, a child sees none of the
//! `SEALBOX_*` variables (`SEALBOX_RPC`, `SEALBOX_KEY`, `SEALBOX_PASSWORD`,
//! `SEALBOX_DECRYPT_KEY`, `SEALBOX_METER_PIN_DIR`, … — the CLIs read them as
//! defaults) nor `RUST_LOG`, unless a test sets one itself after [`scrub`].

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Removes every `SEALBOX_*` variable and `RUST_LOG` of this process's
/// environment from `cmd`'s: the one place that decides what a child must
/// not inherit. Variables set on `cmd` afterwards (`cmd.env(…)`) stay set.
pub fn scrub(cmd: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        if text.starts_with("SEALBOX_") || text == "RUST_LOG" {
            cmd.env_remove(&name);
        }
    }
    cmd
}

/// `program` as a child of a test: environment [scrubbed](scrub), stdin
/// `/dev/null` (nothing waits on a terminal) and `NO_COLOR=1`.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    scrub(&mut cmd).stdin(Stdio::null()).env("NO_COLOR", "1");
    cmd
}

/// `cmd`'s program and arguments as one line, for messages.
pub fn command_line(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a finished process printed, and how it ended.
#[derive(Debug)]
pub struct Out {
    /// The command line, for messages.
    pub command: String,
    /// Exit code (`None` = killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Wall-clock time the process took.
    pub elapsed: Duration,
}

impl Out {
    /// Runs `cmd` to its end and captures what it prints.
    pub fn of(cmd: &mut Command) -> Out {
        let command = command_line(cmd);
        let started = Instant::now();
        let output = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {command}: {e}"));
        Out {
            command,
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            elapsed: started.elapsed(),
        }
    }

    /// The command, its exit and everything it printed, for failure messages.
    pub fn dump(&self) -> String {
        format!(
            "$ {}\nexit: {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }

    /// Asserts exit code 0.
    #[track_caller]
    pub fn ok(&self) -> &Out {
        assert_eq!(self.code, Some(0), "expected success\n{}", self.dump());
        self
    }

    /// Asserts the process failed with `code`, that stderr contains every
    /// needle and that it printed nothing on stdout.
    #[track_caller]
    pub fn refused(&self, code: i32, needles: &[&str]) -> &Out {
        assert_eq!(
            self.code,
            Some(code),
            "expected exit code {code}\n{}",
            self.dump()
        );
        for needle in needles {
            assert!(
                self.stderr.contains(needle),
                "stderr does not contain {needle:?}\n{}",
                self.dump()
            );
        }
        assert!(
            self.stdout.is_empty(),
            "a refused run printed output\n{}",
            self.dump()
        );
        self
    }
}

/// Runs `program` with `args` as a [`command`] and captures what it prints.
pub fn run<I, S>(program: &Path, args: I) -> Out
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Out::of(command(program).args(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_every_sealbox_variable_and_rust_log_only() {
        // SAFETY: no other test of this binary reads or writes these names.
        unsafe {
            std::env::set_var("SEALBOX_TESTKIT_PROBE", "1");
            std::env::set_var("SEALBOX_PASSWORD", "secret");
            std::env::set_var("RUST_LOG", "trace");
            std::env::set_var("TESTKIT_KEPT", "yes");
        }
        let mut cmd = command("env");
        cmd.env("SEALBOX_SET_BY_THE_TEST", "kept");
        let out = Out::of(&mut cmd);
        out.ok();
        for gone in ["SEALBOX_TESTKIT_PROBE=", "SEALBOX_PASSWORD=", "RUST_LOG="] {
            assert!(!out.stdout.contains(gone), "{gone} leaked:\n{}", out.stdout);
        }
        for kept in [
            "TESTKIT_KEPT=yes",
            "SEALBOX_SET_BY_THE_TEST=kept",
            "NO_COLOR=1",
        ] {
            assert!(out.stdout.contains(kept), "{kept} missing:\n{}", out.stdout);
        }
    }
}
