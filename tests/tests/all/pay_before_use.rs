//! Issue #9, pay before use: each way a customer could try to run a call
//! that was not paid for, tried with the real binaries on a real anvil. A
//! call runs only on a unit its state directory bought on chain before it:
//! fresh or wiped state directories, more signers or directories, edited
//! leases, a moved clock, a withdrawn escrow, a deauthorized signer, a
//! revoked release or another deployment of the registry grant nothing.
//!
//! Every test ends with the money: the vendor's revenue plus the platform's
//! fee is exactly the units bought × the price, and at least the calls run.

use std::path::Path;

use alloy::primitives::{B256, U256};
use license_contract::Reason;
use sealbox_runtime::journal::Journal;
use sealbox_runtime::lease::Lease;

use crate::common::{
    Actors, Chain, Machine, Out, PRICE_WEI, Party, PinDir, bin, example, license, licensed,
    logged_compiling, publish, run, variant,
};

fn input() -> String {
    example("inputs/applicant.json").display().to_string()
}

/// One call of `sealed` on `machine`, buying blocks of `block` units.
fn call(machine: &Machine, sealed: &Path, block: u64) -> Out {
    machine.run(
        sealed,
        &[
            "--prepay-min-units",
            &block.to_string(),
            "--input",
            &input(),
        ],
    )
}

/// Asserts `out` is an answered call, or a refusal that ran nothing: exit 35
/// (no bought unit left, none buyable) or 38 (a purchase that lost a race to
/// the escrow was reverted by the contract, all or nothing, or its
/// transaction lost a nonce race to another process of the same key). True
/// if answered.
#[track_caller]
fn answered_or_refused(out: &Out) -> bool {
    match out.code {
        Some(0) => {
            assert!(!out.stdout.is_empty(), "{}", out.dump());
            true
        }
        Some(35) => {
            out.refused(35, &[]);
            // Refused at the license check, or (when another directory
            // spent the escrow between that check and the purchase) at the
            // purchase, before the call.
            assert!(
                out.stderr.contains("no prepaid unit left")
                    || out.stderr.contains("cannot buy units"),
                "{}",
                out.dump()
            );
            false
        }
        Some(38) => {
            out.refused(38, &["buying units failed"]);
            false
        }
        _ => panic!(
            "neither answered nor refused for want of a unit\n{}",
            out.dump()
        ),
    }
}

/// `attempts` calls on each machine, all machines at the same time; the
/// number of answered calls per machine.
fn race(machines: &[&Machine], sealed: &Path, block: u64, attempts: usize) -> Vec<u64> {
    let start = std::sync::Barrier::new(machines.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = machines
            .iter()
            .map(|m| {
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    (0..attempts)
                        .filter(|_| answered_or_refused(&call(m, sealed, block)))
                        .count() as u64
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// The customer's escrow cannot pay a single unit more: every machine's next
/// call is refused, before it compiles, and counts nothing.
#[track_caller]
fn all_refused(machines: &[&Machine], sealed: &Path, product: B256) {
    for m in machines {
        let used = m.usage(product).runtime_units;
        let before = m.cache();
        let out = call(m, sealed, 1);
        out.refused(35, &["no prepaid unit left", "no more can be bought"]);
        m.assert_nothing_compiled(&out, &before);
        assert_eq!(m.usage(product).runtime_units, used);
    }
}

/// Attack: start a fresh state directory whenever the units run out, hoping
/// a new directory starts with units or shares another's purchase.
#[tokio::test(flavor = "multi_thread")]
async fn fresh_state_directories_share_no_purchase() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let module = variant(
        &example("wat/credit_score.wat"),
        "fresh-dirs",
        actors.path(),
    );
    const ESCROW_UNITS: u64 = 10;
    let (sealed, release) = licensed(
        &chain,
        &actors,
        &module,
        "cs-fresh-dirs",
        ESCROW_UNITS * PRICE_WEI,
        &[],
    )
    .await;
    let product = release.product_id;
    let machines: Vec<Machine> = (0..5).map(|_| Machine::new(&chain, &actors)).collect();
    let refs: Vec<&Machine> = machines.iter().collect();

    // Five directories of one key, ten calls each, all at once.
    let answered = race(&refs, &sealed, ESCROW_UNITS, 10);
    let total: u64 = answered.iter().sum();
    assert_eq!(total, ESCROW_UNITS, "answered per directory: {answered:?}");

    let mut bought = 0;
    for (m, &n) in machines.iter().zip(&answered) {
        let on_chain = m.bought_on(&chain, product).await;
        let usage = m.usage(product);
        assert_eq!(usage.runtime_units, n, "each answered call counted once");
        assert_eq!(
            usage.bought_units, on_chain,
            "the journal knows what it bought"
        );
        assert!(n <= on_chain, "{n} calls on {on_chain} units");
        bought += on_chain;
    }
    assert_eq!(bought, ESCROW_UNITS);
    let status = chain.license_of(product, actors.customer.address()).await;
    assert_eq!(status.bought_units, ESCROW_UNITS);
    assert_eq!(status.balance, U256::ZERO);
    all_refused(&refs, &sealed, product);
    Chain::assert_paid(chain.revenue(actors.vendor.address()).await, ESCROW_UNITS);
}

/// Attack: the customer authorizes a second runtime key and runs both at
/// once, hoping each spends the same escrow.
#[tokio::test(flavor = "multi_thread")]
async fn two_signers_never_run_past_the_escrow() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let second = Party::new(actors.path(), "runtime2");
    chain.fund(second.address()).await;
    let module = variant(
        &example("wat/credit_score.wat"),
        "two-signers",
        actors.path(),
    );
    const ESCROW_UNITS: u64 = 10;
    let (sealed, release) = licensed(
        &chain,
        &actors,
        &module,
        "cs-two-signers",
        ESCROW_UNITS * PRICE_WEI,
        &[],
    )
    .await;
    let product = release.product_id;
    let customer = chain.client(&actors.customer.signer).await;
    license(&customer, product, 0, second.address()).await;
    let first = Machine::new(&chain, &actors);
    let other = Machine::with_key(&chain, &actors, &second);

    // Blocks of 6: the escrow pays one and a part of another.
    let answered = race(&[&first, &other], &sealed, 6, 10);
    let mut bought = 0;
    let mut used = 0;
    for (m, &n) in [&first, &other].into_iter().zip(&answered) {
        let on_chain = m.bought_on(&chain, product).await;
        assert!(n <= on_chain, "{n} calls on {on_chain} units");
        assert_eq!(m.usage(product).runtime_units, n);
        bought += on_chain;
        used += n;
    }
    assert!(
        bought <= ESCROW_UNITS,
        "bought {bought} on an escrow of {ESCROW_UNITS}"
    );
    assert!(used <= bought);
    // Twenty attempts on ten units: the escrow is spent and every unit ran.
    assert_eq!((bought, used), (ESCROW_UNITS, ESCROW_UNITS), "{answered:?}");
    let status = chain.license_of(product, actors.customer.address()).await;
    assert_eq!(status.bought_units, bought);
    assert_eq!(status.balance, U256::ZERO);
    all_refused(&[&first, &other], &sealed, product);
    Chain::assert_paid(chain.revenue(actors.vendor.address()).await, bought);
}

/// Attack: one key, two state directories started together, hoping both
/// count one purchase. Each directory is its own buyer with its own counter
/// on chain.
#[tokio::test(flavor = "multi_thread")]
async fn two_directories_with_one_key_each_buy_their_own() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let module = variant(&example("wat/credit_score.wat"), "two-dirs", actors.path());
    const ESCROW_UNITS: u64 = 10;
    const BLOCK: u64 = 3;
    let (sealed, release) = licensed(
        &chain,
        &actors,
        &module,
        "cs-two-dirs",
        ESCROW_UNITS * PRICE_WEI,
        &[],
    )
    .await;
    let product = release.product_id;
    let a = Machine::new(&chain, &actors);
    let b = Machine::new(&chain, &actors);
    assert_ne!(a.buyer(), b.buyer());

    let answered = race(&[&a, &b], &sealed, BLOCK, 6);
    let bought_a = a.bought_on(&chain, product).await;
    let bought_b = b.bought_on(&chain, product).await;
    assert!(
        bought_a > 0 && bought_b > 0,
        "each bought its own: {bought_a}, {bought_b}"
    );
    for (m, n, bought) in [(&a, answered[0], bought_a), (&b, answered[1], bought_b)] {
        let usage = m.usage(product);
        assert_eq!(usage.runtime_units, n);
        assert_eq!(
            usage.bought_units, bought,
            "its own counter, not the other's"
        );
        assert!(n <= bought, "{n} calls admitted on {bought} units paid");
        // Unused units are at most the rest of one block.
        assert!(bought - n < BLOCK, "{bought} bought for {n} calls");
    }
    let status = chain.license_of(product, actors.customer.address()).await;
    assert_eq!(status.bought_units, bought_a + bought_b);
    assert!(bought_a + bought_b <= ESCROW_UNITS);
    assert_eq!(
        status.balance,
        U256::from((ESCROW_UNITS - bought_a - bought_b) * PRICE_WEI)
    );
    Chain::assert_paid(
        chain.revenue(actors.vendor.address()).await,
        bought_a + bought_b,
    );
}

/// Attack: two processes on one state directory, spending its purchase
/// twice. The second is refused before it does anything.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_process_on_one_state_directory_is_refused() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let module = variant(&example("wat/credit_score.wat"), "locked", actors.path());
    let (sealed, release) = licensed(&chain, &actors, &module, "cs-locked", 1_000_000, &[]).await;
    let product = release.product_id;
    let machine = Machine::new(&chain, &actors);

    let mut server = machine.serve(&[&sealed], &["--prepay-min-units", "5"]);
    let before = machine.cache();
    let out = call(&machine, &sealed, 5);
    out.refused(37, &["in use by another runtime process", "--state-dir"]);
    assert!(!logged_compiling(&out), "{}", out.dump());
    assert_eq!(machine.cache(), before);
    machine
        .settle(&[])
        .refused(37, &["in use by another runtime process"]);
    // Reading the license needs no lock.
    let status = machine.status(&sealed);
    assert_eq!(status["usage"]["used_units"], 0, "{status:#}");
    assert!(server.running(), "serve died");
    let stopped = server.stop();
    assert_eq!(stopped.code, Some(0), "{}", stopped.dump());

    // Once it stopped, the directory is free again.
    call(&machine, &sealed, 5).ok();
    let bought = machine.bought_on(&chain, product).await;
    let usage = machine.usage(product);
    assert_eq!((usage.bought_units, usage.runtime_units), (bought, 1));
    assert_eq!(bought, 5);
    Chain::assert_paid(chain.revenue(actors.vendor.address()).await, bought);
}

/// Rewrites the stored lease of every counter in `machine`'s journal.
fn edit_lease(machine: &Machine, registry: alloy::primitives::Address, edit: impl Fn(&mut Lease)) {
    let path = machine
        .state_dir()
        .join(format!("journal-v2-{registry}.db"));
    let conn = rusqlite::Connection::open(&path).expect("open the journal's database");
    let rows: Vec<(Vec<u8>, String)> = conn
        .prepare("SELECT key, lease FROM usage WHERE lease IS NOT NULL")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 1, "one stored lease");
    for (key, text) in rows {
        let mut lease: Lease = serde_json::from_str(&text).expect("a stored lease");
        edit(&mut lease);
        conn.execute(
            "UPDATE usage SET lease=?2 WHERE key=?1",
            rusqlite::params![key, serde_json::to_string(&lease).unwrap()],
        )
        .unwrap();
    }
}

/// The stored lease as the runtime reads it.
fn stored_lease(machine: &Machine, registry: alloy::primitives::Address) -> Lease {
    let journal = Journal::open(
        &machine
            .state_dir()
            .join(format!("journal-v2-{registry}.db")),
    )
    .unwrap();
    let key = journal.keys().unwrap()[0];
    journal.lease(&key).unwrap().expect("a stored lease")
}

/// Attack: edit the stored lease (a huge escrow, a check from the future)
/// and cut the RPC, so that nothing can contradict it. Offline only bought
/// units run, and the lease's escrow and time grant nothing.
#[tokio::test(flavor = "multi_thread")]
async fn lease_and_clock_edits_grant_nothing() {
    let chain = Chain::start().await;
    let registry = chain.registry;
    let actors = Actors::new(&chain).await;
    let module = variant(&example("wat/credit_score.wat"), "edits", actors.path());
    let (sealed, release) =
        licensed(&chain, &actors, &module, "cs-edits", 100 * PRICE_WEI, &[]).await;
    let product = release.product_id;
    let machine = Machine::new(&chain, &actors);
    call(&machine, &sealed, 2).ok();
    call(&machine, &sealed, 2).ok();
    assert_eq!(machine.bought_on(&chain, product).await, 2);
    Chain::assert_paid(chain.revenue(actors.vendor.address()).await, 2);
    chain.stop();

    let refused = |what: &str| {
        let before = machine.cache();
        let out = call(&machine, &sealed, 2);
        out.refused(35, &["no prepaid unit left", "3 of 2 bought unit(s) used"]);
        machine.assert_nothing_compiled(&out, &before);
        let usage = machine.usage(product);
        assert_eq!(
            (usage.bought_units, usage.runtime_units),
            (2, 2),
            "{what} ran a call"
        );
    };
    refused("nothing");

    // The escrow the lease remembers: as rich as can be.
    edit_lease(&machine, registry, |l| l.available_wei = u128::MAX);
    assert_eq!(stored_lease(&machine, registry).available_wei, u128::MAX);
    refused("a huge escrow in the lease");

    // The clock: a check made ten years from now (and a block from then).
    let later = sealbox_runtime::clock::unix_now() + 10 * 365 * 24 * 3600;
    edit_lease(&machine, registry, |l| {
        l.checked_at = later;
        l.block_timestamp = later;
    });
    assert_eq!(stored_lease(&machine, registry).checked_at, later);
    refused("a lease from the future");

    // And the lapsed-license and cannot-buy notes wiped out.
    edit_lease(&machine, registry, |l| {
        l.inactive = None;
        l.cannot_buy = None;
    });
    refused("a lease with its notes removed");
}

/// Attack: run on the escrow, then withdraw it all. The units a call ran on
/// were paid before it ran: the withdrawal takes back only what was not
/// spent, and the vendor keeps every unit's price.
#[tokio::test(flavor = "multi_thread")]
async fn running_then_withdrawing_leaves_the_vendor_paid() {
    // A chain of its own: the test moves its clock past the 1 h thaw.
    let chain = Chain::start().await;
    let actors = Actors::new(&chain).await;
    let module = variant(&example("wat/credit_score.wat"), "withdraw", actors.path());
    const DEPOSIT: u64 = 1_000 * PRICE_WEI;
    const BLOCK: u64 = 5;
    let (sealed, release) = licensed(&chain, &actors, &module, "cs-withdraw", DEPOSIT, &[]).await;
    let product = release.product_id;
    let customer_addr = actors.customer.address();
    let machine = Machine::new(&chain, &actors);
    for _ in 0..3 {
        call(&machine, &sealed, BLOCK).ok();
    }

    // Withdraw everything left in the escrow.
    let customer = chain.client(&actors.customer.signer).await;
    let left = chain.license_of(product, customer_addr).await.balance;
    assert_eq!(left, U256::from(DEPOSIT - BLOCK * PRICE_WEI));
    customer.request_withdrawal(product, left).await.unwrap();
    let status = chain.license_of(product, customer_addr).await;
    assert_eq!(status.reason, Reason::WithdrawalPending);
    assert_eq!(status.available, U256::ZERO);

    // The block already bought still runs to its end; nothing more is bought.
    for _ in 3..BLOCK {
        call(&machine, &sealed, BLOCK).ok();
    }
    let out = call(&machine, &sealed, BLOCK);
    out.refused(35, &["no prepaid unit left", "withdrawal pending"]);
    let calls = machine.usage(product).runtime_units;
    assert_eq!(calls, BLOCK);

    chain.advance_time(3_601).await;
    let (amount, _) = customer.complete_withdrawal(product).await.unwrap();
    assert_eq!(
        amount, left,
        "the customer gets back exactly what was not spent"
    );
    let status = chain.license_of(product, customer_addr).await;
    assert_eq!(status.balance, U256::ZERO);
    assert_eq!(status.bought_units, BLOCK);
    call(&machine, &sealed, BLOCK).refused(35, &["no more can be bought"]);
    assert_eq!(machine.usage(product).runtime_units, calls);
    Chain::assert_paid(chain.revenue(actors.vendor.address()).await, BLOCK);
    assert!(chain.revenue(actors.vendor.address()).await.total() >= U256::from(calls * PRICE_WEI));
}

/// Attack: keep running a runtime key the customer has deauthorized. It is
/// refused at once, and the units it bought stay on record (unused).
#[tokio::test(flavor = "multi_thread")]
async fn a_deauthorized_signer_runs_nothing_more() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let module = variant(
        &example("wat/credit_score.wat"),
        "deauthorized",
        actors.path(),
    );
    const BLOCK: u64 = 5;
    let (sealed, release) =
        licensed(&chain, &actors, &module, "cs-deauthorized", 1_000_000, &[]).await;
    let product = release.product_id;
    let machine = Machine::new(&chain, &actors);
    call(&machine, &sealed, BLOCK).ok();

    // The customer deauthorizes the key with the runtime's own command.
    let runtime = actors.runtime.address().to_string();
    let out = run(
        &bin("runtime"),
        [
            "license",
            "deauthorize",
            &sealed.display().to_string(),
            "--signer",
            &runtime,
            "--key",
            &actors.customer.key.display().to_string(),
            "--rpc",
            &chain.url,
            "--registry",
            &chain.registry.to_string(),
        ],
    );
    out.ok();
    assert!(out.stdout.contains("deauthorized signer"), "{}", out.dump());

    let before = machine.cache();
    let out = call(&machine, &sealed, BLOCK);
    out.refused(34, &["is not authorized to meter usage", &runtime]);
    machine.assert_nothing_compiled(&out, &before);
    assert_eq!(
        machine.usage(product).runtime_units,
        1,
        "the refused call was counted"
    );

    let status = machine.status(&sealed);
    assert_eq!(status["signer"]["authorized"], false, "{status:#}");
    assert_eq!(status["usage"]["bought_units"], BLOCK, "{status:#}");
    assert_eq!(status["usage"]["used_units"], 1, "{status:#}");
    assert_eq!(status["usage"]["unused_units"], BLOCK - 1, "{status:#}");
    Chain::assert_paid(chain.revenue(actors.vendor.address()).await, BLOCK);
}

/// Not an attack but its boundary: once the escrow is spent, the units it
/// bought still run, and not one more.
#[tokio::test(flavor = "multi_thread")]
async fn a_bought_block_runs_to_its_end_when_the_escrow_is_empty() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let module = variant(&example("wat/credit_score.wat"), "block-end", actors.path());
    const UNITS: u64 = 5;
    let (sealed, release) = licensed(
        &chain,
        &actors,
        &module,
        "cs-block-end",
        UNITS * PRICE_WEI,
        &[],
    )
    .await;
    let product = release.product_id;
    let machine = Machine::new(&chain, &actors);

    call(&machine, &sealed, UNITS).ok();
    let status = chain.license_of(product, actors.customer.address()).await;
    assert_eq!(status.balance, U256::ZERO);
    assert_eq!(status.reason, Reason::NoBalance);
    assert_eq!(status.bought_units, UNITS);
    for _ in 1..UNITS {
        call(&machine, &sealed, UNITS).ok();
    }
    let before = machine.cache();
    let out = call(&machine, &sealed, UNITS);
    out.refused(
        35,
        &[
            "no prepaid unit left",
            &format!("{} of {UNITS} bought unit(s) used", UNITS + 1),
            "no more can be bought",
            "escrow balance below one unit",
        ],
    );
    machine.assert_nothing_compiled(&out, &before);
    let usage = machine.usage(product);
    assert_eq!((usage.bought_units, usage.runtime_units), (UNITS, UNITS));
    Chain::assert_paid(chain.revenue(actors.vendor.address()).await, UNITS);
}

/// Attack: keep running a release the vendor revoked, on units bought
/// before. The next license check stops it.
#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_release_stops_at_the_next_check() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let module = variant(
        &example("wat/credit_score.wat"),
        "revoked-block",
        actors.path(),
    );
    const BLOCK: u64 = 5;
    let (sealed, release) =
        licensed(&chain, &actors, &module, "cs-revoked-block", 1_000_000, &[]).await;
    let product = release.product_id;
    let machine = Machine::new(&chain, &actors);
    call(&machine, &sealed, BLOCK).ok();

    let vendor = chain.client(&actors.vendor.signer).await;
    vendor
        .revoke_release(product, release.code_hash)
        .await
        .unwrap();
    let before = machine.cache();
    let out = call(&machine, &sealed, BLOCK);
    out.refused(33, &["not licensed", "release revoked by the vendor"]);
    machine.assert_nothing_compiled(&out, &before);
    let usage = machine.usage(product);
    assert_eq!((usage.bought_units, usage.runtime_units), (BLOCK, 1));
    let status = machine.status(&sealed);
    assert_eq!(status["usage"]["unused_units"], BLOCK - 1, "{status:#}");
    Chain::assert_paid(chain.revenue(actors.vendor.address()).await, BLOCK);
}

/// Attack: use a product on one deployment of the registry and have the
/// counts land on another (same vendor key, product name, chain id and
/// registry address — a second anvil), or the other way round. Counts,
/// purchases and kernel counters are per deployment.
#[tokio::test(flavor = "multi_thread")]
async fn usage_of_one_deployment_is_not_billed_on_another() {
    let chain_a = Chain::start().await;
    // Two dev chains started within the same second have the same genesis:
    // the same chain, one deployment. B's genesis is a second after A's.
    let later = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let chain_b = Chain::start_with(&["--timestamp", &later.to_string()]).await;
    assert_eq!(
        chain_a.registry, chain_b.registry,
        "both registries are the deployer's first contract"
    );
    let actors = Actors::new(&chain_a).await;
    for who in [
        actors.vendor.address(),
        actors.customer.address(),
        actors.runtime.address(),
    ] {
        chain_b.fund(who).await;
    }
    let module = variant(
        &example("wat/credit_score.wat"),
        "deployments",
        actors.path(),
    );
    const BLOCK: u64 = 5;
    let (sealed, release) =
        licensed(&chain_a, &actors, &module, "cs-deployments", 1_000_000, &[]).await;
    let product = release.product_id;
    // The same sealed module, published on B by the same vendor.
    let release_b = publish(
        &chain_b.client(&actors.vendor.signer).await,
        &sealed,
        PRICE_WEI,
    )
    .await;
    assert_eq!(release_b.product_id, product);
    license(
        &chain_b.client(&actors.customer.signer).await,
        product,
        1_000_000,
        actors.runtime.address(),
    )
    .await;

    // One machine (one state directory, one journal file name) and one pin
    // directory for the kernel meter. Needs BPF (root) for the kernel half:
    // where the meter cannot attach, the BPF rule fails the test, or with
    // SEALBOX_SKIP_BPF=1 checks the runtime's count only.
    let pin = PinDir::new();
    let mut machine = Machine::new(&chain_a, &actors);
    machine.kernel_meter = Some(pin.path.clone());
    for _ in 0..3 {
        call(&machine, &sealed, BLOCK).ok();
    }
    let status_a = machine.status(&sealed);
    let kernel = status_a["kernel_meter"]["pinned"] == true || {
        sealbox_testkit::bpf::unavailable(
            "usage_of_one_deployment_is_not_billed_on_another (kernel half)",
            format!("the kernel meter did not attach: {status_a:#}"),
        );
        false
    };
    machine.point_at(&chain_b);
    call(&machine, &sealed, BLOCK).ok();
    let status_b = machine.status(&sealed);
    assert_ne!(status_a["deployment"], status_b["deployment"]);
    assert_eq!(status_b["usage"]["used_units"], 1, "{status_b:#}");
    assert_eq!(status_b["usage"]["runtime_units"], 1, "{status_b:#}");
    assert_eq!(status_b["usage"]["bought_units"], BLOCK, "{status_b:#}");
    assert_eq!(status_b["bought_units"], BLOCK, "{status_b:#}");
    if kernel {
        assert_eq!(
            status_b["kernel_meter"]["pinned"], true,
            "the kernel meter did not attach on the second deployment: {status_b:#}"
        );
        assert_eq!(status_b["usage"]["kernel_units"], 1, "{status_b:#}");
    }

    // A fresh machine on B counts and buys only its own.
    let mut fresh = Machine::new(&chain_b, &actors);
    fresh.kernel_meter = machine.kernel_meter.clone();
    call(&fresh, &sealed, BLOCK).ok();
    let status = fresh.status(&sealed);
    assert_eq!(status["usage"]["used_units"], 1, "{status:#}");
    assert_eq!(status["usage"]["bought_units"], BLOCK, "{status:#}");
    if kernel {
        assert_eq!(status["usage"]["kernel_units"], 1, "{status:#}");
    }

    // Back on A: A's counts are A's alone.
    machine.point_at(&chain_a);
    let status = machine.status(&sealed);
    assert_eq!(status["deployment"], status_a["deployment"]);
    assert_eq!(status["usage"]["used_units"], 3, "{status:#}");
    assert_eq!(status["usage"]["bought_units"], BLOCK, "{status:#}");
    if kernel {
        assert_eq!(status["usage"]["kernel_units"], 3, "{status:#}");
    }
    assert_eq!(status["bought_units"], BLOCK, "{status:#}");

    Chain::assert_paid(chain_a.revenue(actors.vendor.address()).await, BLOCK);
    Chain::assert_paid(chain_b.revenue(actors.vendor.address()).await, 2 * BLOCK);
}

/// The state directory's journal files (database, WAL, counters), not its buyer secret.
fn wipe_journal(machine: &Machine) {
    for entry in std::fs::read_dir(machine.state_dir()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("journal-") {
            if entry.file_type().unwrap().is_dir() {
                std::fs::remove_dir_all(entry.path()).unwrap();
            } else {
                std::fs::remove_file(entry.path()).unwrap();
            }
        }
    }
}

/// Attack: delete the state (the journal, or the whole directory) to forget
/// the units used, hoping to run the unused rest again or for free. Lost
/// state counts every unit bought as used: the old block's rest is forfeit,
/// the next call buys a new block, and with no escrow it is refused.
#[tokio::test(flavor = "multi_thread")]
async fn wiped_state_forfeits_and_never_gains() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    const BLOCK: u64 = 5;
    let vendor = actors.vendor.address();

    // An escrow of 100 units.
    let module = variant(&example("wat/credit_score.wat"), "wiped", actors.path());
    let (sealed, release) =
        licensed(&chain, &actors, &module, "cs-wiped", 100 * PRICE_WEI, &[]).await;
    let product = release.product_id;
    let machine = Machine::new(&chain, &actors);
    call(&machine, &sealed, BLOCK).ok();
    call(&machine, &sealed, BLOCK).ok();
    Chain::assert_paid(chain.revenue(vendor).await, BLOCK);

    // The journal deleted, the buyer secret kept: the same buyer, whose 3
    // unused units now count as used. The next call buys a new block.
    let buyer = machine.buyer();
    wipe_journal(&machine);
    call(&machine, &sealed, BLOCK).ok();
    assert_eq!(machine.buyer(), buyer);
    assert_eq!(machine.bought_on(&chain, product).await, 2 * BLOCK);
    let status = machine.status(&sealed);
    assert_eq!(status["usage"]["bought_units"], 2 * BLOCK, "{status:#}");
    assert_eq!(status["usage"]["used_units"], BLOCK + 1, "{status:#}");
    Chain::assert_paid(chain.revenue(vendor).await, 2 * BLOCK);

    // The whole directory deleted: a new buyer with nothing bought.
    std::fs::remove_dir_all(machine.state_dir()).unwrap();
    call(&machine, &sealed, BLOCK).ok();
    assert_ne!(machine.buyer(), buyer);
    assert_eq!(machine.bought_on(&chain, product).await, BLOCK);
    let usage = machine.usage(product);
    assert_eq!((usage.bought_units, usage.runtime_units), (BLOCK, 1));
    Chain::assert_paid(chain.revenue(vendor).await, 3 * BLOCK);

    // With an escrow of exactly one block: after the wipe nothing runs.
    let module = variant(
        &example("wat/credit_score.wat"),
        "wiped-empty",
        actors.path(),
    );
    let (sealed, release) = licensed(
        &chain,
        &actors,
        &module,
        "cs-wiped-empty",
        BLOCK * PRICE_WEI,
        &[],
    )
    .await;
    let product = release.product_id;
    let machine = Machine::new(&chain, &actors);
    call(&machine, &sealed, BLOCK).ok();
    call(&machine, &sealed, BLOCK).ok();
    Chain::assert_paid(chain.revenue(vendor).await, 4 * BLOCK);
    wipe_journal(&machine);
    let before = machine.cache();
    let out = call(&machine, &sealed, BLOCK);
    out.refused(
        35,
        &[
            "no prepaid unit left",
            &format!("{} of {BLOCK} bought unit(s) used", BLOCK + 1),
            "no more can be bought",
        ],
    );
    machine.assert_nothing_compiled(&out, &before);
    let usage = machine.usage(product);
    assert_eq!((usage.bought_units, usage.used_units()), (BLOCK, BLOCK));
    std::fs::remove_dir_all(machine.state_dir()).unwrap();
    let out = call(&machine, &sealed, BLOCK);
    out.refused(35, &["no prepaid unit left", "1 of 0 bought unit(s) used"]);
    Chain::assert_paid(chain.revenue(vendor).await, 4 * BLOCK);
}
