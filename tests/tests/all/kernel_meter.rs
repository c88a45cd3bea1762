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

/// Fills the pinned counter map of `pin_dir` from this process (a meter of
/// its own, detached again when it drops), so that the runtime's meter
/// attaches to a map with no slot left. False when BPF is unavailable and
/// the BPF rule says skip.
fn fill_meter_map(pin_dir: &PinDir) -> bool {
    let opts = sealbox_ebpf::MeterOptions {
        pin_dir: pin_dir.path.clone(),
        ..sealbox_ebpf::MeterOptions::default()
    };
    let meter = match sealbox_ebpf::Meter::attach(&opts) {
        Ok(meter) => meter,
        Err(e) => {
            sealbox_testkit::bpf::unavailable("fill_meter_map", e);
            return false;
        }
    };
    let mut key = 1u64;
    loop {
        match meter.register(key) {
            Ok(_) => key += 1,
            Err(sealbox_ebpf::MeterError::MapFull { .. }) => break,
            Err(e) => panic!("registering key {key}: {e}"),
        }
        assert!(key < 1 << 20, "the map never filled");
    }
    true
}

/// Issue #12 item 4: a counter the kernel meter cannot take (its map is
/// full) is the documented fallback for `kernel-preferred` (the call runs,
/// counted by the runtime, with a warning) and a refusal for
/// `kernel-required` (exit 36, nothing run or bought).
#[tokio::test(flavor = "multi_thread")]
async fn a_full_meter_map_falls_back_for_kernel_preferred_only() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let preferred = variant(&example("wat/credit_score.wat"), "full-p", actors.path());
    let (preferred, p_release) = licensed(
        &chain,
        &actors,
        &preferred,
        "cs-full-preferred",
        1_000_000,
        &[],
    )
    .await;
    let required = variant(&example("wat/credit_score.wat"), "full-r", actors.path());
    let (required, r_release) = licensed(
        &chain,
        &actors,
        &required,
        "cs-full-required",
        1_000_000,
        &["--metering", "kernel-required"],
    )
    .await;
    let pin_dir = PinDir::new();
    if !fill_meter_map(&pin_dir) {
        return;
    }
    let mut machine = Machine::new(&chain, &actors);
    machine.kernel_meter = Some(pin_dir.path.clone());
    let input = example("inputs/applicant.json").display().to_string();

    let out = machine.run(&preferred, &["--input", &input]);
    out.ok();
    assert!(
        out.stderr.contains("cannot count this product"),
        "{}",
        out.dump()
    );
    let usage = machine.usage(p_release.product_id);
    assert_eq!((usage.runtime_units, usage.kernel_units), (1, 0));

    let out = machine.run(&required, &["--input", &input]);
    out.refused(36, &["requires kernel metering", "full"]);
    let usage = machine.usage(r_release.product_id);
    assert_eq!((usage.runtime_units, usage.bought_units), (0, 0));
}
