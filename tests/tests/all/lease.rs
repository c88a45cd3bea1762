//! Issue #4 item 5, the license lease: with the RPC gone the runtime keeps
//! running on its last successful license check while that check is fresh
//! and the escrow it saw covers the unsettled calls, and refuses (exit 35)
//! once either fails. Each test has its own anvil, which it kills.

use std::time::Duration;

use crate::common::{Actors, Chain, Machine, PRICE_WEI, example, licensed, variant};

fn input() -> String {
    example("inputs/applicant.json").display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn offline_grace_then_expiry() {
    let chain = Chain::start().await;
    let actors = Actors::new(&chain).await;
    let module = variant(&example("wat/credit_score.wat"), "lease", actors.path());
    let (sealed, release) = licensed(&chain, &actors, &module, "cs-lease", 1_000_000, &[]).await;
    let machine = Machine::new(&chain, &actors);

    let online = machine.run(&sealed, &["--input", &input()]);
    online.ok();
    assert!(
        !online.stderr.contains("license lease"),
        "{}",
        online.stderr
    );
    chain.stop();

    // RPC unreachable, lease fresh (default 300 s): runs, with a warning.
    let out = machine.run(&sealed, &["--input", &input()]);
    out.ok();
    assert_eq!(out.stdout, online.stdout, "same answer on the lease");
    assert!(out.stderr.contains("WARN"), "{}", out.stderr);
    assert!(
        out.stderr.contains("running on the license lease"),
        "no lease warning:\n{}",
        out.stderr
    );
    assert_eq!(machine.usage(release.product_id).runtime_units, 2);

    // The lease is 2 s old; a 1 s limit refuses it before anything compiles.
    std::thread::sleep(Duration::from_secs(2));
    let before = machine.cache();
    let out = machine.run(&sealed, &["--lease-max-age", "1", "--input", &input()]);
    out.refused(
        35,
        &["license lease expired", "limit 1 s", "cannot be reached"],
    );
    machine.assert_nothing_compiled(&out, &before);
    assert_eq!(machine.usage(release.product_id).runtime_units, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn offline_calls_stop_at_the_last_known_balance() {
    let chain = Chain::start().await;
    let actors = Actors::new(&chain).await;
    let module = variant(&example("wat/credit_score.wat"), "balance", actors.path());
    // 2.5 calls' worth of escrow: two calls are covered, the third is not.
    let deposit = PRICE_WEI * 5 / 2;
    let (sealed, release) = licensed(&chain, &actors, &module, "cs-balance", deposit, &[]).await;
    let machine = Machine::new(&chain, &actors);

    machine.run(&sealed, &["--input", &input()]).ok();
    chain.stop();
    let out = machine.run(&sealed, &["--input", &input()]);
    out.ok();
    assert!(
        out.stderr.contains("running on the license lease"),
        "{}",
        out.stderr
    );

    let out = machine.run(&sealed, &["--input", &input()]);
    out.refused(
        35,
        &[
            "escrow exhausted",
            &format!(
                "3 unsettled unit(s) at {PRICE_WEI} wei need {} wei",
                3 * PRICE_WEI
            ),
            &format!("escrow balance is {deposit} wei"),
        ],
    );
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
    machine.run(&sealed, &["--input", &input()]).ok();

    let vendor = chain.client(&actors.vendor.signer).await;
    vendor
        .revoke_customer(release.product_id, actors.customer.address())
        .await
        .unwrap();
    machine
        .run(&sealed, &["--input", &input()])
        .refused(33, &["customer revoked by the vendor"]);
    drop(vendor);
    chain.stop();

    // The fresh lease on record now says "inactive": going offline does not
    // bring the revoked license back.
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
    assert_eq!(machine.usage(release.product_id).runtime_units, 1);
}
