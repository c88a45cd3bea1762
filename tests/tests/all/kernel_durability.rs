//! A SIGKILL loses nothing and doubles nothing: a runtime killed in the
//! middle of a guest call has that call counted exactly once, in its journal
//! (written before the guest runs) and in the kernel meter's pinned map (which
//! outlives the process); later runs continue both counts on the block bought
//! before the first call, and no unit is bought or used twice. Needs BPF
//! (root); where there is none the test fails, or skips with
//! SEALBOX_SKIP_BPF=1 (the testkit's BPF rule).

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::{Duration, Instant};

use alloy::primitives::U256;
use sealbox_runtime::deployment::Deployment;
use sealbox_runtime::journal::{Journal, UsageKey};
use sealbox_runtime::metering::kernel_key;

use crate::common::{Actors, Chain, Machine, PRICE_WEI, PinDir, fixture, licensed, variant};

/// Fuel and deadline the spinning call gets: far more than the test waits.
const FUEL: &str = "1000000000000";
const DEADLINE_MS: &str = "20000";

/// The journal's runtime count, if the journal exists yet.
fn journal_units(path: &Path, key: &UsageKey) -> Option<u64> {
    if !path.is_file() {
        return None;
    }
    Journal::open(path)
        .ok()
        .and_then(|j| j.usage(key).ok())
        .map(|u| u.runtime_units)
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_call_loses_nothing_and_doubles_nothing() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    chain.fund(actors.runtime.address()).await;
    let module = variant(&fixture("limit_breaker.wat"), "durable", actors.path());
    const DEPOSIT: u64 = 1_000_000;
    let (sealed, release) = licensed(
        &chain,
        &actors,
        &module,
        "faults-durable",
        DEPOSIT,
        &[
            "--metering",
            "kernel-required",
            "--fuel",
            FUEL,
            "--deadline-ms",
            DEADLINE_MS,
        ],
    )
    .await;
    let pin_dir = PinDir::new();
    let mut machine = Machine::new(&chain, &actors);
    machine.kernel_meter = Some(pin_dir.path.clone());
    let input = actors.path().join("input.bin");
    std::fs::write(&input, b"durable").unwrap();
    let input = input.display().to_string();

    // The counter the runtime will use: this deployment, this state directory.
    let deployment = Deployment::of(&chain.reader().await)
        .await
        .expect("read the deployment")
        .id();
    let key = UsageKey {
        deployment,
        buyer: machine.buyer().0,
        product: release.product_id.0,
        customer: actors.customer.address().into_array(),
        signer: actors.runtime.address().into_array(),
    };
    let kernel = kernel_key(&key);
    let journal = machine
        .state_dir()
        .join(format!("journal-v2-{}.db", chain.registry));

    // A call that spins until its 20 s deadline; kill it once it is admitted.
    let mut child = machine.spawn_run(
        &sealed,
        &[
            "--max-fuel",
            FUEL,
            "--max-deadline-ms",
            DEADLINE_MS,
            "--input",
            &input,
            "--export",
            "spin",
        ],
    );
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            if status.code() == Some(36) {
                sealbox_testkit::bpf::unavailable(
                    "sigkill_mid_call_loses_nothing_and_doubles_nothing",
                    format!("the kernel meter cannot attach (exit 36):\n{stderr}"),
                );
                return;
            }
            panic!("the spinning call ended ({status}) before it was killed:\n{stderr}");
        }
        let journalled = journal_units(&journal, &key);
        let counted = sealbox_ebpf::read_pinned_count(&pin_dir.path, kernel).ok();
        if journalled == Some(1) && counted == Some(1) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the call was not admitted within 15 s (journal {journalled:?}, kernel {counted:?})"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let admitted_after = started.elapsed();
    // Still inside the guest: give it a moment more to prove it is spinning.
    std::thread::sleep(Duration::from_millis(200));
    assert!(child.try_wait().unwrap().is_none(), "the call returned");
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
    eprintln!("spinning call admitted after {admitted_after:?}, then SIGKILLed");

    // Counted exactly once, in the journal and in the kernel.
    assert_eq!(machine.usage(release.product_id).runtime_units, 1);
    assert_eq!(
        sealbox_ebpf::read_pinned_count(&pin_dir.path, kernel).unwrap(),
        1
    );
    let status = machine.status(&sealed);
    assert_eq!(status["usage"]["runtime_units"], 1, "{status:#}");
    assert_eq!(status["usage"]["kernel_units"], 1, "{status:#}");

    // N more calls that return: both counts continue from where they stopped.
    const N: u64 = 3;
    for _ in 0..N {
        let out = machine.run(&sealed, &["--input", &input, "--export", "echo"]);
        out.ok();
        assert_eq!(out.stdout, "durable");
    }
    let status = machine.status(&sealed);
    assert_eq!(status["usage"]["runtime_units"], N + 1, "{status:#}");
    assert_eq!(status["usage"]["kernel_units"], N + 1, "{status:#}");
    assert_eq!(status["kernel_meter"]["count"], N + 1, "{status:#}");
    assert_eq!(
        sealbox_ebpf::read_pinned_count(&pin_dir.path, kernel).unwrap(),
        N + 1
    );

    // The N + 1 calls ran on the one block the first call bought (the
    // default 100 units): bought once, used exactly N + 1, nothing twice.
    const BLOCK: u64 = 100;
    let out = machine.settle(&["--module", &sealed.display().to_string()]);
    out.ok();
    let line = format!(
        "bought {BLOCK} / used {} (runtime {}, kernel {}) / unused {}",
        N + 1,
        N + 1,
        N + 1,
        BLOCK - (N + 1)
    );
    assert!(
        out.stdout.contains(&line),
        "no {line:?} in:\n{}",
        out.stdout
    );
    let status = machine.status(&sealed);
    assert_eq!(status["usage"]["bought_units"], BLOCK, "{status:#}");
    assert_eq!(status["usage"]["used_units"], N + 1, "{status:#}");
    assert_eq!(
        status["usage"]["unused_units"],
        BLOCK - (N + 1),
        "{status:#}"
    );
    assert_eq!(status["bought_units"], BLOCK, "{status:#}");
    assert_eq!(
        status["balance_wei"],
        (U256::from(DEPOSIT) - U256::from(BLOCK * PRICE_WEI)).to_string(),
        "{status:#}"
    );
    assert_eq!(machine.bought_on(&chain, release.product_id).await, BLOCK);
    Chain::assert_paid(chain.revenue(actors.vendor.address()).await, BLOCK);
}
