//! Issue 12: one CLI convention. Every binary's `--help` lists its exit codes as rows of the
//! one table (`sealbox-report`), so a number means one thing in packager, runtime and
//! registry, and every binary reports a failure as `<bin>: error: ...` with each cause once.

use sealbox_report::{Exit, HELP_HEADING, help_mismatches};
use sealbox_testkit::{bin, dead_rpc_url, run};

#[test]
fn every_help_lists_its_exit_codes_from_the_one_table() {
    for (name, args) in [
        ("packager", &["--help"][..]),
        ("packager", &["verify", "--help"]),
        ("runtime", &["--help"]),
        ("registry", &["--help"]),
    ] {
        let out = run(&bin(name), args);
        out.ok();
        assert!(out.stdout.contains(HELP_HEADING), "{}", out.dump());
        assert_eq!(help_mismatches(&out.stdout), [""; 0], "{}", out.dump());
    }
}

#[test]
fn every_binary_reports_a_failure_the_same_way() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.sealed.wasm");
    let missing = missing.to_str().unwrap();
    let key = dir.path().join("missing.key");
    let key = key.to_str().unwrap();
    let state = dir.path().to_str().unwrap();
    let nobody = "0x4444444444444444444444444444444444444444";
    let rpc = dead_rpc_url();
    for (name, args, exit) in [
        ("packager", vec!["verify", missing], Exit::Failure),
        (
            "runtime",
            vec![
                "run",
                missing,
                "--rpc",
                &rpc,
                "--registry",
                nobody,
                "--key",
                key,
                "--state-dir",
                state,
                "--invoke", // takes every argument after it
                "version",
            ],
            Exit::Failure,
        ),
        (
            "registry",
            vec!["status", "--rpc", &rpc, "--registry", nobody],
            Exit::Failure,
        ),
    ] {
        let out = run(&bin(name), &args);
        out.refused(i32::from(exit.code()), &[&format!("{name}: error: ")]);
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert!(
            lines[0].starts_with(&format!("{name}: error: ")),
            "{}",
            out.dump()
        );
        for pair in lines.windows(2) {
            let cause = pair[1].trim_start().trim_start_matches("caused by: ");
            assert!(pair[1].starts_with("  caused by: "), "{}", out.dump());
            assert!(
                !pair[0].contains(cause),
                "a cause printed twice\n{}",
                out.dump()
            );
        }
    }
}
