//! Property tests of the journal (issue 14, item 4): any interleaving of
//! admissions, syncs, purchases, license checks, crashes (a handle dropped
//! without a sync) and restarts, over several `Journal` handles on one state
//! directory (standing in for several runtime processes), never admits a unit
//! that was not bought, and never loses one that was admitted.

use proptest::prelude::*;

use super::*;

/// Handles on the one state directory.
const HANDLES: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    /// `admit(n)` through a handle (opening it first if it is closed).
    Admit(usize, u64),
    /// `sync` through a handle.
    Sync(usize),
    /// The chain confirms a purchase of `n` more units; the handle records it.
    Buy(usize, u64),
    /// The chain confirms a purchase that the runtime never hears of (it
    /// died before recording it): only a later license check reports it.
    BuyUnrecorded(u64),
    /// A license check: the handle stores a fresh lease with the chain's count.
    Check(usize),
    /// The handle's process dies: dropped without a sync.
    Crash(usize),
    /// The handle's process restarts: dropped, then opened again.
    Restart(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let h = 0..HANDLES;
    prop_oneof![
        6 => (h.clone(), 1..4u64).prop_map(|(h, n)| Op::Admit(h, n)),
        1 => h.clone().prop_map(Op::Sync),
        2 => (h.clone(), 1..6u64).prop_map(|(h, n)| Op::Buy(h, n)),
        1 => (1..6u64).prop_map(Op::BuyUnrecorded),
        2 => h.clone().prop_map(Op::Check),
        1 => h.clone().prop_map(Op::Crash),
        1 => h.prop_map(Op::Restart),
    ]
}

fn key() -> UsageKey {
    UsageKey {
        deployment: [4; 32],
        buyer: [5; 32],
        product: [1; 32],
        customer: [2; 20],
        signer: [3; 20],
    }
}

/// What the chain says at `block`.
fn lease(bought_units: u64, block: u64) -> Lease {
    Lease {
        checked_at: 100,
        block,
        block_timestamp: 100 + block,
        price_wei: 10,
        available_wei: 1_000,
        bought_units,
        bought_block: block,
        inactive: None,
        signer_deauthorized: false,
        cannot_buy: None,
        release: [6; 32],
    }
}

/// Runs `ops` and checks the two invariants after every step and at the end.
fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let open = || Journal::open(&path).unwrap();
    let mut handles: Vec<Option<Journal>> = (0..HANDLES).map(|_| None).collect();
    // The chain: units bought, at which block.
    let (mut bought, mut block) = (0u64, 1u64);
    let mut admitted = 0u64;
    // The first license check creates the counter; none happened yet.
    let mut checked = false;
    for op in ops {
        match *op {
            Op::Admit(h, n) => {
                let j = handles[h].get_or_insert_with(open);
                match j.admit(&key(), n) {
                    Ok(total) => {
                        admitted += n;
                        prop_assert!(
                            admitted <= bought,
                            "admitted {admitted} units, only {bought} bought"
                        );
                        // Every handle counts into the one shared counter.
                        prop_assert!(total >= admitted, "counter {total} < admitted {admitted}");
                        prop_assert!(total <= bought, "counter {total} > bought {bought}");
                    }
                    Err(JournalError::NoLease) => prop_assert!(!checked),
                    Err(JournalError::Refused(LeaseRefusal::NotBought { .. })) => {}
                    Err(e) => return Err(TestCaseError::fail(format!("admit: {e}"))),
                }
            }
            Op::Sync(h) => handles[h].get_or_insert_with(open).sync().unwrap(),
            Op::Buy(h, n) => {
                bought += n;
                block += 1;
                let j = handles[h].get_or_insert_with(open);
                match j.record_bought(&key(), bought, block) {
                    Ok(()) | Err(JournalError::NoLease) => {}
                    Err(e) => return Err(TestCaseError::fail(format!("record_bought: {e}"))),
                }
            }
            Op::BuyUnrecorded(n) => {
                bought += n;
                block += 1;
            }
            Op::Check(h) => {
                let j = handles[h].get_or_insert_with(open);
                j.store_lease(&key(), &lease(bought, block)).unwrap();
                checked = true;
            }
            Op::Crash(h) => handles[h] = None,
            Op::Restart(h) => {
                handles[h] = None;
                handles[h] = Some(open());
            }
        }
        // Whatever each handle reports, a process starting now sees every
        // admitted unit as used.
        for j in handles.iter().flatten() {
            let used = j.usage(&key()).unwrap().used_units();
            prop_assert!(
                used >= admitted,
                "a handle sees {used} used, {admitted} admitted"
            );
        }
    }
    // Every handle dies; a fresh process sees every admitted unit, and can
    // admit at most what was bought and not used.
    drop(handles);
    let j = open();
    let usage = j.usage(&key()).unwrap();
    prop_assert!(usage.used_units() >= admitted);
    if checked {
        j.store_lease(&key(), &lease(bought, block)).unwrap();
        let mut more = 0;
        while j.admit(&key(), 1).is_ok() {
            more += 1;
        }
        prop_assert!(
            admitted + more <= bought,
            "{admitted} + {more} admitted of {bought}"
        );
    }
    Ok(())
}

proptest! {
    // Each case opens SQLite databases a few times: 64 cases of up to 40
    // steps take a few seconds.
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn never_admits_unbought_nor_loses_admitted(ops in proptest::collection::vec(op(), 1..40)) {
        run(&ops)?;
    }
}
