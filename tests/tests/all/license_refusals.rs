//! Issue #4, licensing: each way the chain can say "no" is refused by
//! `runtime run` with the contract's reason in the message and exit code 33
//! (34 for an unauthorized runtime signer), and nothing is compiled: no
//! "compiling" log line and the module cache untouched.

use crate::common::{Actors, Chain, Machine, PRICE_WEI, example, licensed, variant};

const INPUT: &str = "inputs/applicant.json";

fn input() -> String {
    example(INPUT).display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn customer_without_deposit_is_not_licensed() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let module = variant(
        &example("wat/credit_score.wat"),
        "no-deposit",
        actors.path(),
    );
    let (sealed, release) = licensed(&chain, &actors, &module, "cs-no-deposit", 0, &[]).await;
    let machine = Machine::new(&chain, &actors);

    let before = machine.cache();
    assert!(before.is_empty());
    let out = machine.run(&sealed, &["--input", &input()]);
    out.refused(
        33,
        &[
            "not licensed",
            "escrow balance below one unit",
            "deposit funds into the escrow",
        ],
    );
    machine.assert_nothing_compiled(&out, &before);

    // One deposit later the same command runs: the refusal was the license.
    let customer = chain.client(&actors.customer.signer).await;
    customer
        .deposit(
            release.product_id,
            None,
            alloy::primitives::U256::from(PRICE_WEI * 10),
        )
        .await
        .unwrap();
    machine.run(&sealed, &["--input", &input()]).ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn revoked_customer_is_refused_after_having_run() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let module = variant(
        &example("wat/credit_score.wat"),
        "revoked-customer",
        actors.path(),
    );
    let (sealed, release) = licensed(
        &chain,
        &actors,
        &module,
        "cs-revoked-customer",
        1_000_000,
        &[],
    )
    .await;
    let machine = Machine::new(&chain, &actors);
    machine.run(&sealed, &["--input", &input()]).ok();
    let before = machine.cache();
    assert_eq!(before.len(), 1);

    let vendor = chain.client(&actors.vendor.signer).await;
    vendor
        .revoke_customer(release.product_id, actors.customer.address())
        .await
        .unwrap();
    let out = machine.run(&sealed, &["--input", &input()]);
    out.refused(33, &["not licensed", "customer revoked by the vendor"]);
    machine.assert_nothing_compiled(&out, &before);
    assert_eq!(
        machine.usage(release.product_id).runtime_units,
        1,
        "the refused run must not count a unit"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn revoked_release_is_refused() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let module = variant(
        &example("wat/credit_score.wat"),
        "revoked-release",
        actors.path(),
    );
    let (sealed, release) = licensed(
        &chain,
        &actors,
        &module,
        "cs-revoked-release",
        1_000_000,
        &[],
    )
    .await;
    let vendor = chain.client(&actors.vendor.signer).await;
    vendor.revoke_release(release.code_hash).await.unwrap();

    let machine = Machine::new(&chain, &actors);
    let before = machine.cache();
    let out = machine.run(&sealed, &["--input", &input()]);
    out.refused(
        33,
        &[
            "not licensed",
            "release revoked by the vendor",
            "get a newer release",
        ],
    );
    machine.assert_nothing_compiled(&out, &before);
}

#[tokio::test(flavor = "multi_thread")]
async fn inactive_product_is_refused_and_reactivation_restores_it() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let module = variant(&example("wat/credit_score.wat"), "inactive", actors.path());
    let (sealed, release) = licensed(&chain, &actors, &module, "cs-inactive", 1_000_000, &[]).await;
    let vendor = chain.client(&actors.vendor.signer).await;
    vendor.set_active(release.product_id, false).await.unwrap();

    let machine = Machine::new(&chain, &actors);
    let before = machine.cache();
    let out = machine.run(&sealed, &["--input", &input()]);
    out.refused(33, &["not licensed", "product inactive"]);
    machine.assert_nothing_compiled(&out, &before);

    vendor.set_active(release.product_id, true).await.unwrap();
    machine.run(&sealed, &["--input", &input()]).ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn unpublished_release_is_refused() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let module = variant(&example("wat/credit_score.wat"), "published", actors.path());
    let (_, release) = licensed(&chain, &actors, &module, "cs-unpublished", 1_000_000, &[]).await;
    // Another build of the same product that the vendor never published.
    let other = variant(
        &example("wat/credit_score.wat"),
        "unpublished",
        actors.path(),
    );
    let sealed = crate::common::seal(
        &other,
        &actors.vendor,
        "cs-unpublished",
        crate::common::CHAIN_ID,
        chain.registry,
        &actors.path().join("unpublished.sealed.wasm"),
        &[],
    );
    assert_eq!(
        crate::common::manifest(&sealed).product_id,
        release.product_id
    );

    let machine = Machine::new(&chain, &actors);
    let before = machine.cache();
    let out = machine.run(&sealed, &["--input", &input()]);
    out.refused(
        33,
        &["not licensed", "unknown release (code hash not published)"],
    );
    machine.assert_nothing_compiled(&out, &before);
}

#[tokio::test(flavor = "multi_thread")]
async fn runtime_key_not_authorized_by_the_customer_is_refused() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let module = variant(
        &example("wat/credit_score.wat"),
        "unauthorized",
        actors.path(),
    );
    let sealed = crate::common::seal(
        &module,
        &actors.vendor,
        "cs-unauthorized",
        crate::common::CHAIN_ID,
        chain.registry,
        &actors.path().join("unauthorized.sealed.wasm"),
        &[],
    );
    let vendor = chain.client(&actors.vendor.signer).await;
    let release = crate::common::publish(&vendor, &sealed, PRICE_WEI).await;
    // The customer pays but never authorizes the runtime's key.
    let customer = chain.client(&actors.customer.signer).await;
    customer
        .deposit(
            release.product_id,
            None,
            alloy::primitives::U256::from(1_000_000u64),
        )
        .await
        .unwrap();

    let machine = Machine::new(&chain, &actors);
    let before = machine.cache();
    let out = machine.run(&sealed, &["--input", &input()]);
    let runtime = actors.runtime.address().to_string();
    out.refused(
        34,
        &[
            "is not authorized to meter usage",
            &runtime,
            "runtime license authorize",
        ],
    );
    machine.assert_nothing_compiled(&out, &before);
}
