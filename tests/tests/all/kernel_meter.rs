//! The kernel meter end to end: a `kernel-required` module runs with the
//! eBPF meter attached, and `runtime license status --json` then shows the
//! kernel's count equal to the runtime's own. Needs BPF (root); without it the
//! test fails unless SEALBOX_SKIP_BPF=1.

use std::path::PathBuf;

use crate::common::{Actors, Chain, Machine, example, licensed, variant};

/// A pin directory of its own on bpffs, removed (with its pinned maps) on drop.
struct PinDir(PathBuf);

impl PinDir {
    fn new() -> PinDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        PinDir(PathBuf::from(format!(
            "/sys/fs/bpf/sealbox-e2e-{}-{nanos}",
            std::process::id()
        )))
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kernel_count_equals_runtime_count() {
    let skip = std::env::var_os("SEALBOX_SKIP_BPF").is_some_and(|v| v == "1");
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let module = variant(&example("wat/credit_score.wat"), "kernel", actors.path());
    let (sealed, release) = licensed(
        &chain,
        &actors,
        &module,
        "cs-kernel",
        1_000_000,
        &["--metering", "kernel-required"],
    )
    .await;
    let pin_dir = PinDir::new();
    let mut machine = Machine::new(&chain, &actors);
    machine.kernel_meter = Some(pin_dir.0.clone());
    let input = example("inputs/applicant.json").display().to_string();

    const CALLS: u64 = 3;
    for i in 0..CALLS {
        let out = machine.run(&sealed, &["--input", &input]);
        if out.code == Some(36) {
            if skip {
                eprintln!("SEALBOX_SKIP_BPF=1: skipping, the kernel meter cannot attach");
                return;
            }
            panic!(
                "the kernel meter cannot attach (BPF unavailable here?); run as root on a kernel \
                 with uprobes and bpffs, or set SEALBOX_SKIP_BPF=1 to skip this test:\n{}",
                out.stderr
            );
        }
        out.ok();
        assert!(
            !out.stderr.contains("kernel meter not attached"),
            "call {i}: {}",
            out.stderr
        );
    }

    let status = machine.status(&sealed);
    let usage = &status["usage"];
    assert_eq!(usage["runtime_units"], CALLS, "{status:#}");
    assert_eq!(usage["kernel_units"], usage["runtime_units"], "{status:#}");
    assert_eq!(status["kernel_meter"]["pinned"], true, "{status:#}");
    assert_eq!(status["kernel_meter"]["count"], CALLS, "{status:#}");
    assert_eq!(machine.usage(release.product_id).kernel_units, CALLS);
}
