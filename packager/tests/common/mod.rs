//! Running the real `packager` binary and checking what it printed and how it exited; shared by
//! the offline (`cli.rs`) and on-chain (`chain.rs`) suites.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// The `packager` binary, run in `dir`, without any `SEALBOX_*` variable (`SEALBOX_PASSWORD`, …)
/// the test runner may have.
pub fn command(dir: &Path) -> Command {
    let mut cmd = sealbox_testkit::command(sealbox_testkit::bin("packager"));
    cmd.current_dir(dir);
    cmd
}

/// Runs `packager ARGS` in `dir` and waits for it.
pub fn packager(dir: &Path, args: &[&str]) -> Output {
    command(dir).args(args).output().unwrap()
}

/// What the run printed on stdout (lossy UTF-8).
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What the run printed on stderr (lossy UTF-8).
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The run succeeded (both streams shown if not).
#[track_caller]
pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        stderr(out),
        stdout(out)
    );
}

/// The run succeeded and its stdout holds every needle; returns that stdout.
#[track_caller]
pub fn assert_ok_says(out: &Output, needles: &[&str]) -> String {
    assert_ok(out);
    let text = stdout(out);
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} not in: {text}");
    }
    text
}

/// The run succeeded and printed one JSON document on stdout; returns it.
#[track_caller]
pub fn ok_json(out: &Output) -> serde_json::Value {
    assert_ok(out);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The run exited with `code` and its stderr holds every needle.
#[track_caller]
pub fn assert_exit(out: &Output, code: i32, needles: &[&str]) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stderr: {}\nstdout: {}",
        stderr(out),
        stdout(out)
    );
    for needle in needles {
        assert!(
            stderr(out).contains(needle),
            "{needle:?} not in: {}",
            stderr(out)
        );
    }
}

/// `(address, pubkey)` as `keygen` and `pubkey` print them.
#[track_caller]
pub fn key_info(out: &Output) -> (String, String) {
    let text = assert_ok_says(out, &[]);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {name:?} line in: {text}"))
    };
    (field("address"), field("pubkey"))
}
