//! Issue #4 item 5 under pay before use, the license lease offline: with the
//! RPC gone the runtime runs on the units its state directory already bought
//! (with a warning), and refuses (exit 35) before anything compiles once they
//! are used: no escrow balance, lease age or clock lets it run one more. A
//! revocation seen online sticks offline. Each test has its own anvil, which
//! it kills.

use crate::common::{Actors, Chain, Machine, PRICE_WEI, example, licensed, variant};

fn input() -> String {
    example("inputs/applicant.json").display().to_string()
}

/// What the runtime warns when it runs offline.
const OFFLINE: &str = "RPC unreachable: running on units bought";

/// Formerly `offline_grace_then_expiry`: the grace is now exactly the units
/// bought, whatever the escrow holds.
#[tokio::test(flavor = "multi_thread")]
async fn offline_runs_the_units_bought_and_not_one_more() {
    let chain = Chain::start().await;
    let actors = Actors::new(&chain).await;
    let module = variant(&example("wat/credit_score.wat"), "lease", actors.path());
    // A thousand units of escrow; the machine buys blocks of 3.
    const DEPOSIT: u64 = 1_000 * PRICE_WEI;
    const BLOCK: u64 = 3;
    let (sealed, release) = licensed(&chain, &actors, &module, "cs-lease", DEPOSIT, &[]).await;
    let machine = Machine::new(&chain, &actors);
    let block = BLOCK.to_string();
    let args = ["--prepay-min-units", &block, "--input", &input()];

    let online = machine.run(&sealed, &args);
    online.ok();
    assert!(!online.stderr.contains(OFFLINE), "{}", online.stderr);
    let usage = machine.usage(release.product_id);
    assert_eq!((usage.bought_units, usage.runtime_units), (BLOCK, 1));
    Chain::assert_paid(chain.revenue(actors.vendor.address()).await, BLOCK);
    chain.stop();

    // RPC unreachable: the two units left of the block run, with a warning.
    for used in 2..=BLOCK {
        let out = machine.run(&sealed, &args);
        out.ok();
        assert_eq!(out.stdout, online.stdout, "same answer offline");
        assert!(out.stderr.contains("WARN"), "{}", out.stderr);
        assert!(
            out.stderr.contains(OFFLINE),
            "no offline warning:\n{}",
            out.stderr
        );
        assert_eq!(machine.usage(release.product_id).runtime_units, used);
    }

    // Every bought unit is used: refused before anything compiles, although
    // the escrow seen at the last check pays for 997 more.
    let before = machine.cache();
    let out = machine.run(&sealed, &args);
    out.refused(
        35,
        &[
            "no prepaid unit left",
            &format!("{} of {BLOCK} bought unit(s) used", BLOCK + 1),
            "no more can be bought",
            "the chain cannot be reached",
        ],
    );
    machine.assert_nothing_compiled(&out, &before);
    let usage = machine.usage(release.product_id);
    assert_eq!(
        (usage.bought_units, usage.runtime_units),
        (BLOCK, BLOCK),
        "the refused call must not be counted"
    );
}

/// Formerly `offline_calls_stop_at_the_last_known_balance`: 2.5 calls' worth
/// of escrow buys two units online; offline, the second runs and the third is
/// refused (the half unit left in the escrow buys nothing).
#[tokio::test(flavor = "multi_thread")]
async fn offline_calls_stop_at_the_units_bought() {
    let chain = Chain::start().await;
    let actors = Actors::new(&chain).await;
    let module = variant(&example("wat/credit_score.wat"), "balance", actors.path());
    let deposit = PRICE_WEI * 5 / 2;
    let (sealed, release) = licensed(&chain, &actors, &module, "cs-balance", deposit, &[]).await;
    let machine = Machine::new(&chain, &actors);

    // Online: a default block (100) capped by the escrow: 2 units.
    machine.run(&sealed, &["--input", &input()]).ok();
    assert_eq!(machine.usage(release.product_id).bought_units, 2);
    let status = chain
        .license_of(release.product_id, actors.customer.address())
        .await;
    assert_eq!(status.balance, alloy::primitives::U256::from(PRICE_WEI / 2));
    assert_eq!(status.bought_units, 2);
    Chain::assert_paid(chain.revenue(actors.vendor.address()).await, 2);
    chain.stop();

    let out = machine.run(&sealed, &["--input", &input()]);
    out.ok();
    assert!(out.stderr.contains(OFFLINE), "{}", out.stderr);

    let before = machine.cache();
    let out = machine.run(&sealed, &["--input", &input()]);
    out.refused(35, &["no prepaid unit left", "3 of 2 bought unit(s) used"]);
    machine.assert_nothing_compiled(&out, &before);
    assert_eq!(
        machine.usage(release.product_id).runtime_units,
        2,
        "the refused call must not be counted"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn revocation_seen_online_sticks_offline() {
    let chain = Chain::start().await;
    let actors = Actors::new(&chain).await;
    let module = variant(&example("wat/credit_score.wat"), "sticky", actors.path());
    let (sealed, release) = licensed(&chain, &actors, &module, "cs-sticky", 1_000_000, &[]).await;
    let machine = Machine::new(&chain, &actors);
    machine
        .run(&sealed, &["--prepay-min-units", "5", "--input", &input()])
        .ok();

    let vendor = chain.client(&actors.vendor.signer).await;
    vendor
        .revoke_customer(release.product_id, actors.customer.address())
        .await
        .unwrap();
    machine
        .run(&sealed, &["--input", &input()])
        .refused(33, &["customer revoked by the vendor"]);
    Chain::assert_paid(chain.revenue(actors.vendor.address()).await, 5);
    drop(vendor);
    chain.stop();

    // The lease on record now says "inactive": going offline does not bring
    // the revoked license back, not even for the 4 units bought and unused.
    let before = machine.cache();
    let out = machine.run(&sealed, &["--input", &input()]);
    out.refused(
        35,
        &[
            "license inactive at the last on-chain check",
            "customer revoked",
        ],
    );
    machine.assert_nothing_compiled(&out, &before);
    let usage = machine.usage(release.product_id);
    assert_eq!((usage.bought_units, usage.runtime_units), (5, 1));
}

/// `--lease-max-age` (and the post-paid settle cadence flags) are gone: the
/// age of a lease grants nothing, so there is nothing to configure.
#[test]
fn lease_max_age_is_no_longer_an_option() {
    let dir = tempfile::tempdir().unwrap();
    let key = crate::common::Party::new(dir.path(), "runtime");
    let sealed = dir.path().join("absent.sealed.wasm");
    for (flag, value) in [
        ("--lease-max-age", "1"),
        ("--settle-every-units", "10"),
        ("--settle-every-secs", "10"),
    ] {
        let state = dir.path().join("state");
        let args: Vec<&std::ffi::OsStr> = vec![
            "run".as_ref(),
            sealed.as_os_str(),
            "--registry".as_ref(),
            "0x0000000000000000000000000000000000000001".as_ref(),
            "--key".as_ref(),
            key.key.as_os_str(),
            "--state-dir".as_ref(),
            state.as_os_str(),
            flag.as_ref(),
            value.as_ref(),
            "--input".as_ref(),
            "-".as_ref(),
        ];
        let out = crate::common::run(&crate::common::bin("runtime"), args);
        out.refused(2, &[flag]);
        assert!(out.stderr.contains("unexpected argument"), "{}", out.dump());
        // A usage error: nothing was opened.
        assert!(!dir.path().join("state").exists());
    }
}
