//! Issue #4, licensing: each way the chain can say "no" is refused by
//! `runtime run` with the contract's reason in the message and exit code 33
//! (34 for an unauthorized runtime signer, 35 for a license that holds but
//! whose escrow cannot buy a unit), and nothing is compiled: no "compiling"
//! log line and the module cache untouched. Nothing is bought for a refused
//! call: the vendor's revenue is exactly what the runs before it bought.

use crate::common::{Actors, Chain, Machine, PRICE_WEI, example, licensed, variant};

/// Units one `runtime run` buys when none is left (`--prepay-min-units` default).
const BLOCK: u64 = 100;

const INPUT: &str = "inputs/applicant.json";

fn input() -> String {
    example(INPUT).display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn customer_without_deposit_can_buy_nothing() {
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
    // Licensed, but nothing bought and nothing to buy with.
    out.refused(
        35,
        &[
            "no prepaid unit left",
            "1 of 0 bought unit(s) used",
            "escrow balance below one unit",
            "deposit funds into the escrow",
        ],
    );
    machine.assert_nothing_compiled(&out, &before);
    Chain::assert_paid(chain.revenue(actors.vendor.address()).await, 0);

    // One deposit later the same command runs: the refusal was the money. It
    // buys what the escrow pays (10 units, less than a default block).
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
    let usage = machine.usage(release.product_id);
    assert_eq!((usage.bought_units, usage.used_units()), (10, 1));
    assert_eq!(machine.bought_on(&chain, release.product_id).await, 10);
    Chain::assert_paid(chain.revenue(actors.vendor.address()).await, 10);
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
    let usage = machine.usage(release.product_id);
    assert_eq!(
        usage.runtime_units, 1,
        "the refused run must not count a unit"
    );
    // The block bought before the revocation stays bought (and unused).
    assert_eq!(usage.bought_units, BLOCK);
    assert_eq!(machine.bought_on(&chain, release.product_id).await, BLOCK);
    Chain::assert_paid(chain.revenue(actors.vendor.address()).await, BLOCK);
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
    vendor
        .revoke_release(release.product_id, release.code_hash)
        .await
        .unwrap();

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
    assert_eq!(machine.usage(release.product_id).used_units(), 0);
    assert_eq!(machine.bought_on(&chain, release.product_id).await, 0);
    Chain::assert_paid(chain.revenue(actors.vendor.address()).await, 0);
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
    Chain::assert_paid(chain.revenue(actors.vendor.address()).await, 0);

    vendor.set_active(release.product_id, true).await.unwrap();
    machine.run(&sealed, &["--input", &input()]).ok();
    let usage = machine.usage(release.product_id);
    assert_eq!((usage.bought_units, usage.used_units()), (BLOCK, 1));
    Chain::assert_paid(chain.revenue(actors.vendor.address()).await, BLOCK);
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
        &[
            "not licensed",
            "unknown release (code hash not published for this product)",
        ],
    );
    machine.assert_nothing_compiled(&out, &before);
    Chain::assert_paid(chain.revenue(actors.vendor.address()).await, 0);
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
    assert_eq!(machine.bought_on(&chain, release.product_id).await, 0);
    Chain::assert_paid(chain.revenue(actors.vendor.address()).await, 0);
}
