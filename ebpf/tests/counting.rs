//! Exact counting in one process: single thread, two threads, key isolation,
//! full map, attach by file offset, one meter per pin directory. Needs root
//! and BPF; where there is none, SEALBOX_SKIP_BPF=1 skips (the testkit's BPF
//! rule).

mod common;

use common::{MeterPins, PinDir, attach, serial, skip_bpf, test_key};
use sealbox_ebpf::{
    AttachMode, AttachPoint, Meter, MeterError, MeterOptions, meter_call, read_pinned_count,
};

#[test]
fn meter_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Meter>();
}

#[test]
fn counts_exactly_on_one_thread() {
    if skip_bpf("counts_exactly_on_one_thread") {
        return;
    }
    let _serial = serial();
    let dir = PinDir::new();
    let key = test_key(1);
    let before = 12_345;
    for _ in 0..before {
        meter_call(key); // not attached yet: must not count
    }
    let meter = attach(&dir.options());
    meter.register(key).unwrap();
    assert_eq!(
        meter.count(key).unwrap(),
        0,
        "calls before attach were counted"
    );
    for _ in 0..100_000 {
        meter_call(key);
    }
    assert_eq!(meter.count(key).unwrap(), 100_000);
    meter_call(key);
    assert_eq!(meter.count(key).unwrap(), 100_001);
    assert_eq!(meter.dropped().unwrap(), 0);
    drop(meter);
    for _ in 0..1000 {
        meter_call(key); // detached: must not count
    }
    assert_eq!(read_pinned_count(&dir.path, key).unwrap(), 100_001);
}

#[test]
fn counts_a_million_calls_over_two_threads_exactly() {
    if skip_bpf("counts_a_million_calls_over_two_threads_exactly") {
        return;
    }
    let _serial = serial();
    let dir = PinDir::new();
    let meter = attach(&dir.options());
    let shared = test_key(2);
    let (own_a, own_b) = (test_key(3), test_key(4));
    // `shared` is left unregistered: its first hits race to insert it.
    let threads: Vec<_> = [own_a, own_b]
        .into_iter()
        .map(|own| {
            std::thread::spawn(move || {
                for i in 0..500_000u32 {
                    meter_call(if i % 2 == 0 { shared } else { own });
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(meter.count(shared).unwrap(), 500_000);
    assert_eq!(meter.count(own_a).unwrap(), 250_000);
    assert_eq!(meter.count(own_b).unwrap(), 250_000);
    assert_eq!(meter.dropped().unwrap(), 0);
}

#[test]
fn keys_never_count_into_each_other() {
    if skip_bpf("keys_never_count_into_each_other") {
        return;
    }
    let _serial = serial();
    let dir = PinDir::new();
    let meter = attach(&dir.options());
    let keys = [test_key(5), test_key(6), test_key(7)];
    let unused = test_key(8);
    meter.register(keys[0]).unwrap();
    meter.register(unused).unwrap();
    for (i, key) in keys.iter().enumerate() {
        for _ in 0..(i + 1) * 1000 {
            meter_call(*key);
        }
    }
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(meter.count(*key).unwrap(), (i as u64 + 1) * 1000, "key {i}");
    }
    assert_eq!(meter.count(unused).unwrap(), 0);
}

#[test]
fn a_full_map_refuses_new_keys_and_reports_dropped_calls() {
    if skip_bpf("a_full_map_refuses_new_keys_and_reports_dropped_calls") {
        return;
    }
    let _serial = serial();
    let dir = PinDir::new();
    let meter = attach(&MeterOptions {
        max_entries: 4,
        ..dir.options()
    });
    assert_eq!(meter.capacity(), 4);
    let keys: Vec<u64> = (10..14).map(test_key).collect();
    for key in &keys {
        meter.register(*key).unwrap();
    }
    let extra = test_key(14);
    match meter.register(extra) {
        Err(MeterError::MapFull {
            capacity: 4, key, ..
        }) if key == extra => {}
        other => panic!("expected MapFull for the fifth key, got {other:?}"),
    }
    // Re-registering a present key is fine and keeps its count.
    meter_call(keys[0]);
    meter.register(keys[0]).unwrap();
    assert_eq!(meter.count(keys[0]).unwrap(), 1);

    for _ in 0..1000 {
        meter_call(extra); // no slot: every one must show up as dropped
        meter_call(keys[1]);
    }
    assert_eq!(meter.count(extra).unwrap(), 0);
    assert_eq!(meter.dropped().unwrap(), 1000);
    assert_eq!(meter.count(keys[1]).unwrap(), 1000);
}

#[test]
fn attaches_by_file_offset_as_for_a_stripped_binary() {
    if skip_bpf("attaches_by_file_offset_as_for_a_stripped_binary") {
        return;
    }
    let _serial = serial();
    let dir = PinDir::new();
    let meter = attach(&MeterOptions {
        attach: AttachMode::Offset,
        ..dir.options()
    });
    match meter.attach_point() {
        AttachPoint::FileOffset { target, offset } => {
            assert_eq!(target.to_str(), Some("/proc/self/exe"));
            assert!(*offset > 0);
        }
        other => panic!("expected an offset attach, got {other:?}"),
    }
    let key = test_key(20);
    for _ in 0..50_000 {
        meter_call(key);
    }
    assert_eq!(meter.count(key).unwrap(), 50_000);
}

#[test]
fn attaches_by_symbol_when_asked() {
    if skip_bpf("attaches_by_symbol_when_asked") {
        return;
    }
    let _serial = serial();
    let dir = PinDir::new();
    let meter = attach(&MeterOptions {
        attach: AttachMode::Symbol,
        ..dir.options()
    });
    assert_eq!(meter.attach_point(), &AttachPoint::Symbol);
    let key = test_key(21);
    for _ in 0..5000 {
        meter_call(key);
    }
    assert_eq!(meter.count(key).unwrap(), 5000);
}

#[test]
fn one_meter_per_pin_directory_per_process() {
    if skip_bpf("one_meter_per_pin_directory_per_process") {
        return;
    }
    let _serial = serial();
    let dir = PinDir::new();
    let first = attach(&dir.options());
    match Meter::attach(&dir.options()) {
        Err(MeterError::AlreadyAttached { pin_dir }) => assert_eq!(pin_dir, first.pin_dir()),
        other => panic!("expected AlreadyAttached, got {other:?}"),
    }
    let key = test_key(30);
    for _ in 0..100 {
        meter_call(key);
    }
    // One probe, so each call counted once.
    assert_eq!(first.count(key).unwrap(), 100);
    drop(first);
    let again = attach(&dir.options());
    assert_eq!(again.count(key).unwrap(), 100);
}

#[test]
fn the_self_test_key_is_reserved() {
    if skip_bpf("the_self_test_key_is_reserved") {
        return;
    }
    let _serial = serial();
    let dir = PinDir::new();
    let meter = attach(&dir.options());
    assert!(matches!(
        meter.register(u64::MAX),
        Err(MeterError::ReservedKey { key: u64::MAX })
    ));
    meter_call(u64::MAX);
    assert_eq!(meter.count(u64::MAX).unwrap(), 0);
}
