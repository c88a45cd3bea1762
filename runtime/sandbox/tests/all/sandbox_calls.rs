//! Calls into guests: the bytes ABI, numeric exports, and every kind of
//! guest fault — each followed by a good call on the same `Program`.

use std::time::{Duration, Instant};

use sealbox_sandbox::{CallError, GuestLimits, NumValue};

use crate::sandbox_support::*;

#[test]
fn bytes_abi_echo_and_transform() {
    let p = program("bytes_abi", GuestLimits::default());
    assert_eq!(p.entries(), vec!["echo".to_string(), "upper".to_string()]);
    assert_eq!(p.call_bytes("echo", b"{\"x\":1}").unwrap(), b"{\"x\":1}");
    assert_eq!(
        p.call_bytes("upper", b"Hello, wasm!").unwrap(),
        b"HELLO, WASM!"
    );
    assert_eq!(p.call_bytes("upper", b"").unwrap(), b"");
    // 200 KiB input: the guest allocator must grow memory past its first page.
    let big: Vec<u8> = (0..200 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
    let out = p.call_bytes("upper", &big).unwrap();
    assert_eq!(out, big.to_ascii_uppercase());
}

#[test]
fn every_call_gets_a_fresh_instance() {
    // The bump allocator's heap pointer is guest state; if it leaked between
    // calls the second call's input would land at a different address.
    // Observable through `double` (numeric) too: globals start fresh.
    let p = program("bytes_abi", GuestLimits::default());
    for _ in 0..3 {
        assert_eq!(p.call_bytes("echo", b"abc").unwrap(), b"abc");
    }
    assert_eq!(
        p.call_numeric("double", &["21"]).unwrap(),
        vec![NumValue::I32(42)]
    );
}

#[test]
fn a_call_never_sees_memory_an_earlier_call_wrote() {
    // Pooled memory slots are reused (and kept resident) between calls: each
    // call must still start from the module's initial image, both in the
    // first page and in pages an earlier call grew.
    let p = program("memory_reset", GuestLimits::default());
    let secret = b"card 4111111111111111, cvv 123";
    for _ in 0..3 {
        assert_eq!(p.call_bytes("stash", secret).unwrap(), b"");
        assert_eq!(p.call_bytes("peek_low", b"").unwrap(), [0; 16]);
        assert_eq!(p.call_bytes("peek_high", b"").unwrap(), [0; 16]);
    }
}

#[test]
fn numeric_exports_take_typed_string_arguments() {
    let p = program("numeric", GuestLimits::default());
    assert!(p.entries().is_empty(), "no sealbox_alloc: no bytes entries");
    assert_eq!(
        p.call_numeric("add", &["1", "2"]).unwrap(),
        vec![NumValue::I32(3)]
    );
    assert_eq!(
        p.call_numeric("add", &["-5", "2"]).unwrap(),
        vec![NumValue::I32(-3)]
    );
    assert_eq!(
        p.call_numeric("add64", &["9000000000", "1"]).unwrap(),
        vec![NumValue::I64(9_000_000_001)]
    );
    assert_eq!(
        p.call_numeric("mul_f64", &["1.5", "4"]).unwrap(),
        vec![NumValue::F64(6.0)]
    );
    assert_eq!(
        p.call_numeric("half_f32", &["5"]).unwrap(),
        vec![NumValue::F32(2.5)]
    );
    let pair = p.call_numeric("pair", &[]).unwrap();
    assert_eq!(pair, vec![NumValue::I32(7), NumValue::I64(-9)]);
    let shown: Vec<String> = pair.iter().map(|v| v.to_string()).collect();
    assert_eq!(shown, vec!["7", "-9"]);
    assert!(!p.numeric_exports().contains(&"takes_v128".to_string()));
}

#[test]
fn numeric_argument_errors_name_the_problem() {
    let p = program("numeric", GuestLimits::default());
    let err = p.call_numeric("add", &["1"]).unwrap_err();
    assert!(matches!(err, CallError::BadArgument { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("takes 2 argument(s) (i32, i32), got 1"),
        "{err}"
    );
    let err = p.call_numeric("add", &["1", "two"]).unwrap_err();
    assert!(
        err.to_string()
            .contains("argument 2 is `two`, which is not a valid i32"),
        "{err}"
    );
    let err = p.call_numeric("add", &["1", "4294967296"]).unwrap_err();
    assert!(matches!(err, CallError::BadArgument { .. }), "{err}");
    let err = p.call_numeric("takes_v128", &["0"]).unwrap_err();
    assert!(
        matches!(err, CallError::BadSignature { ref name, .. } if name == "takes_v128"),
        "{err}"
    );
    let err = p.call_numeric("sub", &["1", "2"]).unwrap_err();
    match &err {
        CallError::MissingExport { name, available } => {
            assert_eq!(name, "sub");
            assert!(
                available.contains(&"add".to_string()) && available.contains(&"add64".to_string())
            );
        }
        other => panic!("expected MissingExport, got {other}"),
    }
    // A numeric trap: division by zero, then the export works again.
    let err = p.call_numeric("div", &["1", "0"]).unwrap_err();
    assert!(
        matches!(
            err,
            CallError::Trap {
                trap: wasmtime::Trap::IntegerDivisionByZero,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        p.call_numeric("div", &["9", "3"]).unwrap(),
        vec![NumValue::I32(3)]
    );
}

#[test]
fn trap_is_reported_and_the_program_keeps_serving() {
    let p = program("faults", GuestLimits::default());
    let err = p.call_bytes("trap", b"x").unwrap_err();
    match &err {
        CallError::Trap { export, trap } => {
            assert_eq!(export, "trap");
            assert_eq!(*trap, wasmtime::Trap::UnreachableCodeReached);
        }
        other => panic!("expected Trap, got {other}"),
    }
    assert!(err.to_string().contains("unreachable"), "{err}");
    assert_still_serves(&p);
}

#[test]
fn runaway_loop_runs_out_of_fuel() {
    let p = program("faults", limit_fuel(1_000_000));
    let err = call_fails(&p, "spin");
    assert!(
        matches!(err, CallError::OutOfFuel { ref export, fuel: 1_000_000 } if export == "spin"),
        "{err}"
    );
    assert!(err.to_string().contains("runaway loop"), "{err}");
    assert_still_serves(&p);
}

#[test]
fn runaway_loop_hits_the_wall_clock_deadline() {
    // Fuel stays at the config cap (10^10): the deadline fires first.
    let p = program("faults", limit_deadline_ms(100));
    let started = Instant::now();
    let err = call_fails(&p, "spin");
    let took = started.elapsed();
    assert_eq!(exceeded_deadline_ms(&err), 100);
    assert!(
        took >= Duration::from_millis(100),
        "stopped early: {took:?}"
    );
    assert!(
        took < Duration::from_secs(3),
        "deadline not enforced promptly: {took:?}"
    );
    assert_still_serves(&p);
}

#[test]
fn manifest_limits_are_capped_by_the_config() {
    let sb = sandbox_with(|c| {
        c.max_deadline_ms = 50;
        c.max_fuel = 1_000_000_000_000;
        c.max_memory_pages = 8;
    });
    // The vendor asks for more than the customer allows.
    let p = load(
        &sb,
        "faults",
        GuestLimits {
            deadline_ms: Some(60_000),
            max_memory_pages: Some(1000),
            fuel: None,
        },
    );
    assert_eq!(p.limits().deadline_ms, 50);
    assert_eq!(p.limits().memory_pages, 8);
    assert_eq!(p.limits().fuel, Some(1_000_000_000_000));
    assert_eq!(exceeded_deadline_ms(&call_fails(&p, "spin")), 50);
    let err = call_fails(&p, "bomb");
    assert!(
        matches!(
            err,
            CallError::MemoryLimit {
                limit_pages: 8,
                requested_pages: 9,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn without_fuel_metering_the_deadline_still_bounds_a_loop() {
    let sb = sandbox_with(|c| c.consume_fuel = false);
    let limits = GuestLimits {
        fuel: Some(1_000),
        ..limit_deadline_ms(80)
    };
    let p = load(&sb, "faults", limits);
    assert_eq!(p.limits().fuel, None, "fuel is not metered");
    assert_eq!(exceeded_deadline_ms(&call_fails(&p, "spin")), 80);
    assert_still_serves(&p);
}

#[test]
fn memory_bomb_stops_at_the_limit() {
    let p = program("faults", limit_memory_pages(16));
    let err = call_fails(&p, "bomb");
    match &err {
        CallError::MemoryLimit {
            export,
            limit_pages,
            requested_pages,
        } => {
            assert_eq!(export, "bomb");
            assert_eq!((*limit_pages, *requested_pages), (16, 17));
        }
        other => panic!("expected MemoryLimit, got {other}"),
    }
    assert!(
        err.to_string().contains("grew memory past 16 pages"),
        "{err}"
    );
    assert_still_serves(&p);
}

#[test]
fn output_out_of_bounds_or_too_large_is_refused() {
    let sb = sandbox_with(|c| c.max_output_bytes = 1 << 20);
    let p = load(&sb, "faults", GuestLimits::default());
    let err = call_fails(&p, "bad_out");
    assert!(
        matches!(
            err,
            CallError::OutputOutOfBounds {
                ptr: 0xfff0_0000,
                len: 16,
                memory_bytes: 65536,
                ..
            }
        ),
        "{err}"
    );
    assert_still_serves(&p);
    let err = call_fails(&p, "huge_out");
    assert!(
        matches!(
            err,
            CallError::OutputTooLarge {
                len: 0x7fff_ffff,
                limit: 1048576,
                ..
            }
        ),
        "{err}"
    );
    assert_still_serves(&p);
}

#[test]
fn input_too_large_is_refused_before_running() {
    let sb = sandbox_with(|c| c.max_input_bytes = 1024);
    let p = load(&sb, "faults", GuestLimits::default());
    let err = p.call_bytes("echo", &[0u8; 1025]).unwrap_err();
    assert!(
        matches!(
            err,
            CallError::InputTooLarge {
                len: 1025,
                limit: 1024
            }
        ),
        "{err}"
    );
    assert_eq!(p.call_bytes("echo", &[7u8; 1024]).unwrap(), vec![7u8; 1024]);
}

#[test]
fn input_outside_guest_memory_is_refused() {
    // faults.wat's allocator never grows memory: a 70000-byte input starting
    // at 1024 does not fit its single 64 KiB page.
    let p = program("faults", GuestLimits::default());
    let err = p.call_bytes("echo", &vec![1u8; 70_000]).unwrap_err();
    assert!(
        matches!(
            err,
            CallError::InputOutOfBounds {
                ptr: 1024,
                len: 70_000,
                memory_bytes: 65536
            }
        ),
        "{err}"
    );
    assert_still_serves(&p);
}

#[test]
fn missing_export_and_bad_signature_name_what_exists() {
    let sb = sandbox();
    let p = load(&sb, "faults", GuestLimits::default());
    let err = call_fails(&p, "transform");
    match &err {
        CallError::MissingExport { name, available } => {
            assert_eq!(name, "transform");
            assert_eq!(
                available,
                &["bad_out", "bomb", "echo", "huge_out", "spin", "trap"].map(String::from)
            );
        }
        other => panic!("expected MissingExport, got {other}"),
    }
    assert!(err.to_string().contains("`echo`"), "{err}");
    let err = call_fails(&p, "wrong_sig");
    assert!(
        matches!(err, CallError::BadSignature { ref found, .. } if found == "(i32) -> (i32)"),
        "{err}"
    );
    assert_still_serves(&p);

    let numeric = load(&sb, "numeric", GuestLimits::default());
    let err = call_fails(&numeric, "add");
    assert!(matches!(err, CallError::NotBytesAbi { .. }), "{err}");
}

#[test]
fn runaway_start_function_is_bounded_too() {
    let p = program("start_loop", limit_fuel(100_000));
    let err = p.call_numeric("add", &["1", "2"]).unwrap_err();
    assert!(
        matches!(err, CallError::OutOfFuel { ref export, .. } if export == "start"),
        "{err}"
    );
}

#[test]
fn pool_exhaustion_is_an_error_not_a_hang() {
    // No timing assumption: wait until the pool's metrics show the spinner
    // holding the only slot, then end the spinner ourselves by advancing the
    // engine's epoch past its deadline (the long deadline is only a backstop;
    // fuel metering is off so only the deadline can end the spin).
    let sb = sandbox_with(|c| {
        c.pool_instances = 1;
        c.consume_fuel = false;
    });
    let p = load(&sb, "faults", limit_deadline_ms(10_000));
    let pool = sb
        .engine()
        .pooling_allocator_metrics()
        .expect("the sandbox uses the pooling allocator");
    assert_eq!(pool.core_instances(), 0);
    std::thread::scope(|s| {
        let spinner = s.spawn(|| p.call_bytes("spin", b""));
        while pool.core_instances() == 0 {
            assert!(
                !spinner.is_finished(),
                "the spinner ended before it was seen holding the slot"
            );
            std::thread::yield_now();
        }
        let err = p.call_bytes("echo", b"busy?").unwrap_err();
        assert!(matches!(err, CallError::PoolExhausted(_)), "{err}");
        assert!(!err.is_guest_fault());
        while !spinner.is_finished() {
            for _ in 0..1000 {
                sb.engine().increment_epoch();
            }
            std::thread::yield_now();
        }
        let spun = spinner.join().unwrap().unwrap_err();
        assert!(
            matches!(
                spun,
                CallError::DeadlineExceeded {
                    deadline_ms: 10_000,
                    ..
                }
            ),
            "{spun}"
        );
    });
    assert_eq!(pool.core_instances(), 0, "the slot is given back");
    assert_still_serves(&p);
}
