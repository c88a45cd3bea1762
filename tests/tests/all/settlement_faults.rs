//! Settlement under faults: the chain going away mid-run and coming back,
//! two runtime signers of one customer settling at the same moment, and an
//! escrow that runs out. Receipts are cumulative per signer, so every unit the
//! journal admitted is charged exactly once, whatever happened in between.

use std::path::Path;
use std::sync::Barrier;

use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use license_contract::{LicenseStatus, Reason, RegistryClient};

use crate::common::{
    Actors, CHAIN_ID, Chain, Machine, Out, PRICE_WEI, Party, example, license, licensed, variant,
};

fn input() -> String {
    example("inputs/applicant.json").display().to_string()
}

/// A read-only client of the chain's registry.
async fn reader(chain: &Chain) -> RegistryClient {
    RegistryClient::connect(&chain.url, chain.registry, Some(CHAIN_ID), None)
        .await
        .expect("connect to the registry")
}

async fn license_of(chain: &Chain, product: B256, customer: Address) -> LicenseStatus {
    reader(chain)
        .await
        .license_status(product, customer, None)
        .await
        .expect("read the license")
}

async fn signer_settled(chain: &Chain, product: B256, customer: Address, signer: Address) -> u64 {
    reader(chain)
        .await
        .signer_settled(product, customer, signer)
        .await
        .expect("read the signer's counter")
}

/// Runs `calls` successful calls of `sealed` on `machine`.
fn run_calls(machine: &Machine, sealed: &Path, calls: u64) {
    for _ in 0..calls {
        machine.run(sealed, &["--input", &input()]).ok();
    }
}

/// Asserts that `out` is a successful settlement of `units` new units bringing
/// the signer's counter to `cumulative`.
#[track_caller]
fn assert_settled(out: &Out, units: u64, cumulative: u64) {
    out.ok();
    let line = format!(
        "settled {units} unit(s) for {} wei, cumulative {cumulative}, gas ",
        units * PRICE_WEI
    );
    assert!(
        out.stdout.contains(&line),
        "no {line:?} in the settle output:\n{}",
        out.stdout
    );
    assert!(!out.stdout.contains("SHORTFALL"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn chain_down_mid_run_settles_everything_once_it_is_back() {
    let chain = Chain::start_persistent().await;
    let actors = Actors::new(&chain).await;
    // The runtime key pays the gas of its settlements.
    chain.fund(actors.runtime.address()).await;
    let module = variant(&example("wat/credit_score.wat"), "restart", actors.path());
    const DEPOSIT: u64 = 1_000_000;
    let (sealed, release) = licensed(&chain, &actors, &module, "cs-restart", DEPOSIT, &[]).await;
    let product = release.product_id;
    let customer = actors.customer.address();
    let machine = Machine::new(&chain, &actors);

    const K: u64 = 3;
    const M: u64 = 2;
    run_calls(&machine, &sealed, K);
    chain.halt();

    // Offline: the lease admits more calls, the journal counts them.
    for _ in 0..M {
        let out = machine.run(&sealed, &["--input", &input()]);
        out.ok();
        assert!(
            out.stderr.contains("running on the license lease"),
            "{}",
            out.stderr
        );
    }
    let before = machine.usage(product);
    assert_eq!((before.runtime_units, before.settled_units), (K + M, 0));

    // Settling cannot reach the chain: a clear error, and nothing recorded.
    let out = machine.settle(&["--module", &sealed.display().to_string()]);
    assert_ne!(out.code, Some(0), "settle succeeded offline:\n{out:?}");
    assert!(
        out.stderr
            .contains("cannot reach the Ethereum RPC endpoint"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains(&chain.url), "{}", out.stderr);
    assert_eq!(
        machine.usage(product),
        before,
        "a failed settle changed the journal"
    );

    // The same chain comes back on the same URL with its state.
    chain.resume();
    let status = license_of(&chain, product, customer).await;
    assert_eq!(status.balance, U256::from(DEPOSIT), "anvil lost its state");
    assert_eq!(status.settled_units, 0);

    let out = machine.settle(&["--module", &sealed.display().to_string()]);
    assert_settled(&out, K + M, K + M);
    let after = license_of(&chain, product, customer).await;
    assert_eq!(
        signer_settled(&chain, product, customer, actors.runtime.address()).await,
        K + M
    );
    assert_eq!(after.settled_units, K + M);
    assert_eq!(after.balance, U256::from(DEPOSIT - (K + M) * PRICE_WEI));
    assert_eq!(machine.usage(product).settled_units, K + M);

    // Settling again charges nothing.
    let out = machine.settle(&["--module", &sealed.display().to_string()]);
    out.ok();
    assert!(
        out.stdout.contains(&format!(
            "nothing new to settle ({} unit(s) settled)",
            K + M
        )),
        "{}",
        out.stdout
    );
    let again = license_of(&chain, product, customer).await;
    assert_eq!(
        (again.balance, again.settled_units),
        (after.balance, after.settled_units)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_signers_settle_at_the_same_time() {
    // A chain of its own: the treasury's revenue must come from this test only.
    let chain = Chain::start().await;
    let actors = Actors::new(&chain).await;
    let second = Party::new(actors.path(), "runtime2");
    chain.fund(actors.runtime.address()).await;
    chain.fund(second.address()).await;
    let module = variant(&example("wat/credit_score.wat"), "fleet", actors.path());
    const DEPOSIT: u64 = 1_000_000;
    let (sealed, release) = licensed(&chain, &actors, &module, "cs-fleet", DEPOSIT, &[]).await;
    let product = release.product_id;
    let customer = actors.customer.address();
    let customer_client = chain.client(&actors.customer.signer).await;
    license(&customer_client, product, 0, second.address()).await;

    let first_machine = Machine::new(&chain, &actors);
    let second_machine = Machine::with_key(&chain, &actors, &second);
    const N1: u64 = 3;
    const N2: u64 = 2;
    run_calls(&first_machine, &sealed, N1);
    run_calls(&second_machine, &sealed, N2);
    assert_eq!(first_machine.usage(product).runtime_units, N1);
    assert_eq!(second_machine.usage(product).runtime_units, N2);

    // Both settle processes start together and race to the chain.
    let module_arg = sealed.display().to_string();
    let start = Barrier::new(2);
    let settle = |machine: &Machine| {
        start.wait();
        machine.settle(&["--module", &module_arg])
    };
    let (first_out, second_out) = std::thread::scope(|s| {
        let a = s.spawn(|| settle(&first_machine));
        let b = s.spawn(|| settle(&second_machine));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_settled(&first_out, N1, N1);
    assert_settled(&second_out, N2, N2);

    assert_eq!(
        signer_settled(&chain, product, customer, actors.runtime.address()).await,
        N1
    );
    assert_eq!(
        signer_settled(&chain, product, customer, second.address()).await,
        N2
    );
    let status = license_of(&chain, product, customer).await;
    assert_eq!(status.settled_units, N1 + N2);
    let charged = (N1 + N2) * PRICE_WEI;
    assert_eq!(status.balance, U256::from(DEPOSIT - charged));
    assert_eq!(status.unpaid_units, 0);

    // 70 % to the vendor, 30 % (3000 bps) to the treasury, nothing lost.
    let reader = reader(&chain).await;
    let treasury = reader.info().await.unwrap().treasury;
    assert_ne!(treasury, actors.vendor.address());
    let vendor_revenue = reader
        .pending_revenue(actors.vendor.address())
        .await
        .unwrap();
    let treasury_revenue = reader.pending_revenue(treasury).await.unwrap();
    assert_eq!(vendor_revenue, U256::from(charged * 7 / 10));
    assert_eq!(treasury_revenue, U256::from(charged * 3 / 10));
    assert_eq!(vendor_revenue + treasury_revenue, U256::from(charged));

    // Each journal knows its own counter is settled.
    assert_eq!(first_machine.usage(product).settled_units, N1);
    assert_eq!(second_machine.usage(product).settled_units, N2);
}

#[tokio::test(flavor = "multi_thread")]
async fn exhausted_escrow_refuses_the_call_it_cannot_pay() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    chain.fund(actors.runtime.address()).await;
    let module = variant(&example("wat/credit_score.wat"), "exhaust", actors.path());
    // Exactly Q calls' worth of escrow.
    const Q: u64 = 3;
    let deposit = Q * PRICE_WEI;
    let (sealed, release) = licensed(&chain, &actors, &module, "cs-exhaust", deposit, &[]).await;
    let product = release.product_id;
    let customer = actors.customer.address();
    let machine = Machine::new(&chain, &actors);

    run_calls(&machine, &sealed, Q);
    let out = machine.run(&sealed, &["--input", &input()]);
    out.refused(
        35,
        &[
            "escrow exhausted",
            &format!(
                "{} unsettled unit(s) at {PRICE_WEI} wei need {} wei",
                Q + 1,
                (Q + 1) * PRICE_WEI
            ),
            &format!("escrow balance is {deposit} wei"),
        ],
    );
    assert_eq!(
        machine.usage(product).runtime_units,
        Q,
        "the refused call was journalled"
    );

    let out = machine.settle(&["--module", &sealed.display().to_string()]);
    assert_settled(&out, Q, Q);
    let status = license_of(&chain, product, customer).await;
    assert_eq!(status.balance, U256::ZERO);
    assert_eq!(status.settled_units, Q);
    assert_eq!(
        status.unpaid_units, 0,
        "no shortfall: the refused call was never signed"
    );
    assert_eq!(status.reason, Reason::NoBalance);
    assert!(!status.active);

    // The customer's own view says the same: balance consumed, all settled.
    let json = machine.status(&sealed);
    assert_eq!(json["balance_wei"], "0", "{json:#}");
    assert_eq!(json["active"], false, "{json:#}");
    assert_eq!(json["settled_units"], Q, "{json:#}");
    assert_eq!(json["usage"]["runtime_units"], Q, "{json:#}");
    assert_eq!(json["usage"]["settled_units"], Q, "{json:#}");
    assert_eq!(json["usage"]["unsettled_units"], 0, "{json:#}");

    // And the next call is refused by the chain itself.
    machine
        .run(&sealed, &["--input", &input()])
        .refused(33, &["not licensed"]);
    assert_eq!(machine.usage(product).runtime_units, Q);
}

/// Copies a directory tree (a machine's state: the SQLite journal and the
/// counter files).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A settlement the journal never heard of (mined after its receipt was lost,
/// or a journal restored from an older backup) is read back from the chain:
/// the runtime records it and sends no stale receipt that would only burn gas.
#[tokio::test(flavor = "multi_thread")]
async fn a_settlement_the_journal_missed_is_not_sent_again() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    chain.fund(actors.runtime.address()).await;
    let module = variant(&example("wat/credit_score.wat"), "missed", actors.path());
    let (sealed, release) = licensed(&chain, &actors, &module, "cs-missed", 1_000_000, &[]).await;
    let product = release.product_id;
    const N: u64 = 3;
    let machine = Machine::new(&chain, &actors);
    run_calls(&machine, &sealed, N);
    // A backup of the journal taken before the settlement.
    let restored = Machine::new(&chain, &actors);
    copy_tree(&machine.state_dir(), &restored.state_dir());
    assert_eq!(restored.usage(product).runtime_units, N);
    assert_eq!(restored.usage(product).settled_units, 0);

    assert_settled(&machine.settle(&[]), N, N);
    let runtime = actors.runtime.address();
    let reader = reader(&chain).await;
    let nonce = || async {
        reader
            .provider()
            .get_transaction_count(runtime)
            .await
            .unwrap()
    };
    let sent_before = nonce().await;

    let out = restored.settle(&[]);
    out.ok();
    assert!(
        out.stdout
            .contains(&format!("nothing new to settle ({N} unit(s) settled)")),
        "{}",
        out.stdout
    );
    assert_eq!(nonce().await, sent_before, "a stale receipt was sent");
    assert_eq!(
        restored.usage(product).settled_units,
        N,
        "recorded from the chain"
    );
    assert_eq!(
        signer_settled(&chain, product, actors.customer.address(), runtime).await,
        N
    );
}
