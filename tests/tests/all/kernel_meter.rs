//! The kernel meter end to end: a `kernel-required` module runs with the
//! eBPF meter attached, and `runtime license status --json` then shows the
//! kernel's count equal to the runtime's own, also after the pinned maps are
//! lost. Needs BPF (root); where there is none the tests fail, or skip with
//! SEALBOX_SKIP_BPF=1 (the testkit's BPF rule).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use alloy::primitives::B256;

use crate::common::{Actors, Chain, Machine, PinDir, example, licensed, variant};

/// Makes `n` calls with the kernel meter attached. False when the meter
/// cannot attach and the BPF rule says skip (the caller then skips); else a
/// meter that cannot attach fails the test.
fn metered_calls(machine: &Machine, sealed: &Path, input: &str, n: u64) -> bool {
    for i in 0..n {
        let out = machine.run(sealed, &["--input", input]);
        if out.code == Some(36) {
            let why = format!("the kernel meter cannot attach (exit 36):\n{}", out.stderr);
            // libtest names the test's thread after the test.
            let test = std::thread::current()
                .name()
                .unwrap_or("kernel_meter")
                .to_string();
            sealbox_testkit::bpf::unavailable(&test, why);
            return false;
        }
        out.ok();
        assert!(
            !out.stderr.contains("kernel meter not attached"),
            "call {i}: {}",
            out.stderr
        );
    }
    true
}

/// A `kernel-required` credit-score product, licensed to a customer whose
/// machine meters into a pin directory of its own.
struct Metered {
    /// Keeps the shared anvil alive for the test.
    _chain: Arc<Chain>,
    _actors: Actors,
    sealed: PathBuf,
    product: B256,
    machine: Machine,
    pin_dir: PinDir,
    input: String,
}

impl Metered {
    async fn new(name: &str) -> Metered {
        let chain = Chain::shared().await;
        let actors = Actors::new(&chain).await;
        let module = variant(&example("wat/credit_score.wat"), name, actors.path());
        let (sealed, release) = licensed(
            &chain,
            &actors,
            &module,
            name,
            1_000_000,
            &["--metering", "kernel-required"],
        )
        .await;
        let pin_dir = PinDir::new();
        let mut machine = Machine::new(&chain, &actors);
        machine.kernel_meter = Some(pin_dir.path.clone());
        Metered {
            _chain: chain,
            _actors: actors,
            sealed,
            product: release.product_id,
            machine,
            pin_dir,
            input: example("inputs/applicant.json").display().to_string(),
        }
    }

    fn calls(&self, n: u64) -> bool {
        metered_calls(&self.machine, &self.sealed, &self.input, n)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kernel_count_equals_runtime_count() {
    let m = Metered::new("cs-kernel").await;
    const CALLS: u64 = 3;
    if !m.calls(CALLS) {
        return;
    }

    let status = m.machine.status(&m.sealed);
    let usage = &status["usage"];
    assert_eq!(usage["runtime_units"], CALLS, "{status:#}");
    assert_eq!(usage["kernel_units"], usage["runtime_units"], "{status:#}");
    assert_eq!(status["kernel_meter"]["pinned"], true, "{status:#}");
    assert_eq!(status["kernel_meter"]["count"], CALLS, "{status:#}");
    assert_eq!(m.machine.usage(m.product).kernel_units, CALLS);
}

/// bpffs lives in memory: a reboot (here: removing the pin directory) starts
/// a new map set from zero under a new epoch. The journal adds the map sets
/// up, so the kernel count stays cumulative and equal to the runtime's.
#[tokio::test(flavor = "multi_thread")]
async fn lost_pinned_maps_do_not_lower_the_kernel_count() {
    let m = Metered::new("cs-kernel-reboot").await;
    const BEFORE: u64 = 2;
    const AFTER: u64 = 3;
    if !m.calls(BEFORE) {
        return;
    }
    let first = m.machine.status(&m.sealed);
    assert_eq!(first["usage"]["kernel_units"], BEFORE, "{first:#}");
    std::fs::remove_dir_all(&m.pin_dir.path).expect("remove the pin directory");
    assert!(m.calls(AFTER));

    let status = m.machine.status(&m.sealed);
    let usage = &status["usage"];
    assert_eq!(
        status["kernel_meter"]["count"], AFTER,
        "a new map set: {status:#}"
    );
    assert_ne!(
        status["kernel_meter"]["epoch"], first["kernel_meter"]["epoch"],
        "{status:#}"
    );
    assert_eq!(usage["kernel_units"], BEFORE + AFTER, "{status:#}");
    assert_eq!(usage["runtime_units"], BEFORE + AFTER, "{status:#}");
    assert_eq!(m.machine.usage(m.product).kernel_units, BEFORE + AFTER);
}
