//! One `Program` called from many threads at once, good calls mixed with
//! faulting ones.

use sealbox_sandbox::{CallError, GuestLimits};

use crate::sandbox_support::{assert_still_serves, call_fails, limit_fuel, load, sandbox};

#[test]
fn many_threads_share_one_program() {
    const THREADS: usize = 8;
    const CALLS: usize = 200;
    let sb = sandbox();
    let upper = load(&sb, "bytes_abi", GuestLimits::default());
    let limits = GuestLimits {
        max_memory_pages: Some(4),
        ..limit_fuel(100_000)
    };
    let faults = load(&sb, "faults", limits);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (upper, faults) = (upper.clone(), &faults);
                s.spawn(move || {
                    for i in 0..CALLS {
                        let input = format!("thread {t} call {i} payload-{}", "x".repeat(i % 50));
                        let out = upper.call_bytes("upper", input.as_bytes()).unwrap();
                        assert_eq!(out, input.to_ascii_uppercase().into_bytes());
                        // Every third call, a fault on another program.
                        if i % 3 == 0 {
                            let export = ["trap", "spin", "bomb"][(t + i) % 3];
                            let err = call_fails(faults, export);
                            assert!(
                                matches!(
                                    err,
                                    CallError::Trap { .. }
                                        | CallError::OutOfFuel { .. }
                                        | CallError::MemoryLimit { .. }
                                ),
                                "{export}: {err}"
                            );
                        }
                    }
                    CALLS
                })
            })
            .collect();
        let done: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
        assert_eq!(done, THREADS * CALLS);
    });
    assert_still_serves(&faults);
    assert_eq!(sb.compilations(), 2);
}
