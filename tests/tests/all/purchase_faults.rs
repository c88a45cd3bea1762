//! Purchases under faults (formerly `settlement_faults`): the chain going away
//! mid-run and coming back, two runtime signers of one customer buying at the
//! same moment, an escrow that runs out, a purchase left in flight by a dead
//! process, and a copied state directory. Receipts are cumulative per buyer
//! (state directory), so every unit is bought once and paid once, whatever
//! happened in between, and no call runs on a unit not bought.

use std::path::Path;
use std::sync::Barrier;

use alloy::primitives::{B256, U256};
use license_contract::Reason;
use sealbox_runtime::journal::{Journal, UsageKey};

use crate::common::{
    Actors, Chain, Machine, Out, PRICE_WEI, Party, example, license, licensed, variant,
};

fn input() -> String {
    example("inputs/applicant.json").display().to_string()
}

/// Runs `calls` successful calls of `sealed` on `machine`, buying blocks of `block`.
fn run_calls(machine: &Machine, sealed: &Path, block: u64, calls: u64) {
    let block = block.to_string();
    for _ in 0..calls {
        machine
            .run(sealed, &["--prepay-min-units", &block, "--input", &input()])
            .ok();
    }
}

/// Asserts that `out` is a successful `runtime settle` reporting exactly
/// `bought` units bought and `used` used (all counted by the runtime).
#[track_caller]
fn assert_reported(out: &Out, bought: u64, used: u64) {
    out.ok();
    let line = format!(
        "bought {bought} / used {used} (runtime {used}, kernel 0) / unused {}",
        bought - used
    );
    assert!(
        out.stdout.contains(&line),
        "no {line:?} in the settle output\n{}",
        out.dump()
    );
}

/// Formerly `chain_down_mid_run_settles_everything_once_it_is_back`.
#[tokio::test(flavor = "multi_thread")]
async fn chain_down_mid_run_runs_on_bought_units_and_buys_again_once_back() {
    let chain = Chain::start_persistent().await;
    let actors = Actors::new(&chain).await;
    let module = variant(&example("wat/credit_score.wat"), "restart", actors.path());
    const DEPOSIT: u64 = 1_000_000;
    const BLOCK: u64 = 4;
    let (sealed, release) = licensed(&chain, &actors, &module, "cs-restart", DEPOSIT, &[]).await;
    let product = release.product_id;
    let customer = actors.customer.address();
    let machine = Machine::new(&chain, &actors);

    const K: u64 = 3;
    run_calls(&machine, &sealed, BLOCK, K);
    let deployment = machine.status(&sealed)["deployment"].clone();
    chain.halt();

    // Offline: the last unit of the block runs; the next call is refused.
    let block = BLOCK.to_string();
    let args = ["--prepay-min-units", &block, "--input", &input()];
    let out = machine.run(&sealed, &args);
    out.ok();
    assert!(
        out.stderr
            .contains("RPC unreachable: running on units bought"),
        "{}",
        out.stderr
    );
    machine.run(&sealed, &args).refused(
        35,
        &[
            "no prepaid unit left",
            &format!("{} of {BLOCK} bought unit(s) used", BLOCK + 1),
        ],
    );
    let before = machine.usage(product);
    assert_eq!((before.runtime_units, before.bought_units), (BLOCK, BLOCK));

    // `runtime settle` cannot reach the chain: a clear error, nothing recorded.
    let out = machine.settle(&["--module", &sealed.display().to_string()]);
    assert_ne!(
        out.code,
        Some(0),
        "settle succeeded offline\n{}",
        out.dump()
    );
    assert!(
        out.stderr.contains("the chain cannot be reached")
            && out.stderr.contains("nothing can be finished offline"),
        "{}",
        out.dump()
    );
    assert!(out.stderr.contains(&chain.url), "{}", out.dump());
    assert_eq!(
        machine.usage(product),
        before,
        "a failed settle changed the journal"
    );

    // The same chain comes back on the same URL with its state.
    chain.resume();
    let status = chain.license_of(product, customer).await;
    assert_eq!(
        status.balance,
        U256::from(DEPOSIT - BLOCK * PRICE_WEI),
        "anvil lost its state"
    );
    assert_eq!(status.bought_units, BLOCK);
    assert_eq!(
        machine.status(&sealed)["deployment"],
        deployment,
        "the resumed chain is the same deployment"
    );

    // The next call buys the next block, then runs.
    run_calls(&machine, &sealed, BLOCK, 1);
    let usage = machine.usage(product);
    assert_eq!(
        (usage.bought_units, usage.runtime_units),
        (2 * BLOCK, BLOCK + 1)
    );
    assert_eq!(machine.bought_on(&chain, product).await, 2 * BLOCK);
    let after = chain.license_of(product, customer).await;
    assert_eq!(after.bought_units, 2 * BLOCK);
    assert_eq!(after.balance, U256::from(DEPOSIT - 2 * BLOCK * PRICE_WEI));
    Chain::assert_paid(chain.revenue(actors.vendor.address()).await, 2 * BLOCK);

    // `runtime settle` reports and sends nothing: nothing is in flight.
    let nonce = chain.nonce(actors.runtime.address()).await;
    let out = machine.settle(&["--module", &sealed.display().to_string()]);
    assert_reported(&out, 2 * BLOCK, BLOCK + 1);
    assert!(!out.stdout.contains("in flight"), "{}", out.stdout);
    assert_eq!(chain.nonce(actors.runtime.address()).await, nonce);
    Chain::assert_paid(chain.revenue(actors.vendor.address()).await, 2 * BLOCK);
}

/// Formerly `two_signers_settle_at_the_same_time`.
#[tokio::test(flavor = "multi_thread")]
async fn two_signers_buy_at_the_same_time() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let second = Party::new(actors.path(), "runtime2");
    chain.fund(second.address()).await;
    let module = variant(&example("wat/credit_score.wat"), "fleet", actors.path());
    const DEPOSIT: u64 = 1_000_000;
    const BLOCK: u64 = 5;
    let (sealed, release) = licensed(&chain, &actors, &module, "cs-fleet", DEPOSIT, &[]).await;
    let product = release.product_id;
    let customer = actors.customer.address();
    let customer_client = chain.client(&actors.customer.signer).await;
    license(&customer_client, product, 0, second.address()).await;

    let first_machine = Machine::new(&chain, &actors);
    let second_machine = Machine::with_key(&chain, &actors, &second);
    const N1: u64 = 3;
    const N2: u64 = 2;
    // Both first calls start together and buy at the same moment.
    let start = Barrier::new(2);
    let calls = |machine: &Machine, n: u64| {
        start.wait();
        run_calls(machine, &sealed, BLOCK, n);
    };
    std::thread::scope(|s| {
        let a = s.spawn(|| calls(&first_machine, N1));
        let b = s.spawn(|| calls(&second_machine, N2));
        a.join().unwrap();
        b.join().unwrap();
    });

    // Each signer's state directory bought one block of its own.
    assert_eq!(first_machine.bought_on(&chain, product).await, BLOCK);
    assert_eq!(second_machine.bought_on(&chain, product).await, BLOCK);
    let first = first_machine.usage(product);
    let second_usage = second_machine.usage(product);
    assert_eq!((first.bought_units, first.runtime_units), (BLOCK, N1));
    assert_eq!(
        (second_usage.bought_units, second_usage.runtime_units),
        (BLOCK, N2)
    );
    let status = chain.license_of(product, customer).await;
    assert_eq!(status.bought_units, 2 * BLOCK);
    assert_eq!(status.balance, U256::from(DEPOSIT - 2 * BLOCK * PRICE_WEI));
    // 70 % to the vendor, 30 % to the treasury, nothing lost.
    Chain::assert_paid(chain.revenue(actors.vendor.address()).await, 2 * BLOCK);

    assert_reported(
        &first_machine.settle(&["--module", &sealed.display().to_string()]),
        BLOCK,
        N1,
    );
    assert_reported(
        &second_machine.settle(&["--module", &sealed.display().to_string()]),
        BLOCK,
        N2,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exhausted_escrow_refuses_the_call_it_cannot_pay() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let module = variant(&example("wat/credit_score.wat"), "exhaust", actors.path());
    // Exactly Q calls' worth of escrow: the first run buys all Q (a default
    // block of 100, capped by what the escrow pays).
    const Q: u64 = 3;
    let deposit = Q * PRICE_WEI;
    let (sealed, release) = licensed(&chain, &actors, &module, "cs-exhaust", deposit, &[]).await;
    let product = release.product_id;
    let customer = actors.customer.address();
    let machine = Machine::new(&chain, &actors);

    run_calls(&machine, &sealed, 100, Q);
    for _ in 0..2 {
        let before = machine.cache();
        let out = machine.run(&sealed, &["--input", &input()]);
        out.refused(
            35,
            &[
                "no prepaid unit left",
                &format!("{} of {Q} bought unit(s) used", Q + 1),
                "no more can be bought",
                "escrow balance below one unit",
            ],
        );
        machine.assert_nothing_compiled(&out, &before);
        assert_eq!(
            machine.usage(product).runtime_units,
            Q,
            "the refused call was journalled"
        );
    }

    let status = chain.license_of(product, customer).await;
    assert_eq!(status.balance, U256::ZERO);
    assert_eq!(status.bought_units, Q);
    assert_eq!(status.reason, Reason::NoBalance);
    assert!(!status.active);
    Chain::assert_paid(chain.revenue(actors.vendor.address()).await, Q);

    // The customer's own view says the same: balance consumed, all bought units used.
    let json = machine.status(&sealed);
    assert_eq!(json["balance_wei"], "0", "{json:#}");
    assert_eq!(json["active"], false, "{json:#}");
    assert_eq!(json["reason"], "NoBalance", "{json:#}");
    assert_eq!(json["bought_units"], Q, "{json:#}");
    assert_eq!(json["usage"]["bought_units"], Q, "{json:#}");
    assert_eq!(json["usage"]["runtime_units"], Q, "{json:#}");
    assert_eq!(json["usage"]["used_units"], Q, "{json:#}");
    assert_eq!(json["usage"]["unused_units"], 0, "{json:#}");

    assert_reported(
        &machine.settle(&["--module", &sealed.display().to_string()]),
        Q,
        Q,
    );
}

/// The counter key `machine` runs `product` under, and its journal (no
/// runtime may run on the machine while the journal is open).
fn journal_of(
    machine: &Machine,
    chain: &Chain,
    product: B256,
    actors: &Actors,
) -> (Journal, UsageKey) {
    let path = machine
        .state_dir()
        .join(format!("journal-v2-{}.db", chain.registry));
    let journal = Journal::open(&path).expect("open the journal");
    let deployment = journal
        .last_deployment()
        .expect("read the journal")
        .expect("the journal records its deployment")
        .id;
    let key = UsageKey {
        deployment,
        buyer: machine.buyer().0,
        product: product.0,
        customer: actors.customer.address().into_array(),
        signer: actors.runtime.address().into_array(),
    };
    (journal, key)
}

/// Formerly `a_settlement_the_journal_missed_is_not_sent_again`. A process
/// killed between signing a purchase receipt and learning it was mined leaves
/// the receipt in the journal (it is stored before it is sent). The next
/// process re-sends that very receipt instead of signing a new one, `runtime
/// settle` re-sends it without buying anything else, and a receipt the chain
/// has already mined is dropped, not sent again.
#[tokio::test(flavor = "multi_thread")]
async fn a_purchase_in_flight_is_re_sent_not_re_signed() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let module = variant(&example("wat/credit_score.wat"), "in-flight", actors.path());
    let (sealed, release) =
        licensed(&chain, &actors, &module, "cs-in-flight", 1_000_000, &[]).await;
    let product = release.product_id;
    let customer = actors.customer.address();
    let runtime = actors.runtime.address();
    let machine = Machine::new(&chain, &actors);
    let args = ["--prepay-min-units", "1", "--input", &input()];
    machine.run(&sealed, &args).ok();
    assert_eq!(machine.bought_on(&chain, product).await, 1);

    // What the runtime stores right before sending: a receipt signed with its
    // key for its buyer, here for 6 more units (cumulative 7).
    let reader = chain.reader().await;
    let sign = |cumulative: u64, at: u64| {
        reader
            .sign_usage(
                &actors.runtime.signer,
                product,
                customer,
                machine.buyer(),
                cumulative,
                u128::from(PRICE_WEI),
                at + 600,
            )
            .expect("sign a receipt")
    };
    let now = chain.license_of(product, customer).await.block_timestamp;
    let in_flight = sign(7, now);
    {
        let (journal, key) = journal_of(&machine, &chain, product, &actors);
        journal.store_pending(&key, &in_flight).unwrap();
    }

    // The next call needs a unit: it sends the receipt in flight (7), not a
    // new one for one more unit (2).
    let nonce = chain.nonce(runtime).await;
    let out = machine.run(&sealed, &args);
    out.ok();
    assert!(
        out.stderr
            .contains("re-sending the purchase receipt in flight"),
        "{}",
        out.stderr
    );
    assert_eq!(chain.nonce(runtime).await, nonce + 1, "one transaction");
    assert_eq!(machine.bought_on(&chain, product).await, 7);
    let usage = machine.usage(product);
    assert_eq!((usage.bought_units, usage.runtime_units), (7, 2));
    Chain::assert_paid(chain.revenue(actors.vendor.address()).await, 7);
    {
        let (journal, key) = journal_of(&machine, &chain, product, &actors);
        // Kept (until a license check reads it mined) or dropped, but never
        // replaced by a receipt signed anew.
        let pending = journal.pending(&key).unwrap();
        assert!(
            pending.is_none() || pending == Some(in_flight),
            "a new receipt was signed: {pending:?}"
        );
    }

    // Another receipt left in flight (cumulative 10): `runtime settle`
    // finishes it and buys nothing else.
    let now = chain.license_of(product, customer).await.block_timestamp;
    let left = sign(10, now);
    {
        let (journal, key) = journal_of(&machine, &chain, product, &actors);
        journal.store_pending(&key, &left).unwrap();
    }
    let nonce = chain.nonce(runtime).await;
    let out = machine.settle(&["--module", &sealed.display().to_string()]);
    assert!(
        out.stdout.contains(&format!(
            "a purchase in flight was mined: 3 unit(s) for {} wei",
            3 * PRICE_WEI
        )),
        "{}",
        out.dump()
    );
    assert_reported(&out, 10, 2);
    assert_eq!(chain.nonce(runtime).await, nonce + 1);
    assert_eq!(machine.bought_on(&chain, product).await, 10);
    Chain::assert_paid(chain.revenue(actors.vendor.address()).await, 10);

    // The same receipt again, as a journal restored from before it was
    // mined would hold it: the chain already counts it, so it is dropped
    // without a transaction, and nothing is charged twice.
    {
        let (journal, key) = journal_of(&machine, &chain, product, &actors);
        journal.store_pending(&key, &left).unwrap();
    }
    let nonce = chain.nonce(runtime).await;
    let out = machine.settle(&["--module", &sealed.display().to_string()]);
    assert_reported(&out, 10, 2);
    assert!(!out.stdout.contains("in flight"), "{}", out.stdout);
    assert_eq!(
        chain.nonce(runtime).await,
        nonce,
        "a stale receipt was sent"
    );
    {
        let (journal, key) = journal_of(&machine, &chain, product, &actors);
        assert_eq!(journal.pending(&key).unwrap(), None);
    }
    assert_eq!(machine.bought_on(&chain, product).await, 10);
    Chain::assert_paid(chain.revenue(actors.vendor.address()).await, 10);
}

/// Copies a directory tree (a machine's state: journal, counters, buyer secret).
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

/// A backup of a state directory restored elsewhere (formerly the "restored
/// journal" half of `a_settlement_the_journal_missed_is_not_sent_again`) is a
/// new buyer: it owns none of the original's purchases, has nothing to
/// finish, and buys its own block before its first call.
#[tokio::test(flavor = "multi_thread")]
async fn a_copied_state_directory_owns_none_of_the_purchases() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let module = variant(&example("wat/credit_score.wat"), "copied", actors.path());
    let (sealed, release) = licensed(&chain, &actors, &module, "cs-copied", 1_000_000, &[]).await;
    let product = release.product_id;
    const BLOCK: u64 = 5;
    let machine = Machine::new(&chain, &actors);
    run_calls(&machine, &sealed, BLOCK, 1);

    let restored = Machine::new(&chain, &actors);
    copy_tree(&machine.state_dir(), &restored.state_dir());
    assert_ne!(restored.buyer(), machine.buyer());
    let status = restored.status(&sealed);
    assert_eq!(status["usage"]["bought_units"], 0, "{status:#}");
    assert_eq!(status["usage"]["used_units"], 0, "{status:#}");

    let runtime = actors.runtime.address();
    let nonce = chain.nonce(runtime).await;
    let out = restored.settle(&[]);
    out.ok();
    assert!(out.stdout.contains("nothing to finish"), "{}", out.dump());
    assert_eq!(
        chain.nonce(runtime).await,
        nonce,
        "settle sent a transaction"
    );

    run_calls(&restored, &sealed, BLOCK, 1);
    assert_eq!(chain.nonce(runtime).await, nonce + 1, "one purchase");
    assert_eq!(restored.bought_on(&chain, product).await, BLOCK);
    assert_eq!(machine.bought_on(&chain, product).await, BLOCK);
    let usage = restored.usage(product);
    assert_eq!((usage.bought_units, usage.runtime_units), (BLOCK, 1));
    let usage = machine.usage(product);
    assert_eq!((usage.bought_units, usage.runtime_units), (BLOCK, 1));
    Chain::assert_paid(chain.revenue(actors.vendor.address()).await, 2 * BLOCK);
}
