//! Exact counting in one process: single thread, two threads, key isolation,
//! full map, attach by file offset, one meter per pin directory; each key
//! counts in the slot `Meter::register` gives it. Needs root
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
    // Take a slot, then detach: calls without a probe must not count.
    let slot = attach(&dir.options()).register(key).unwrap();
    let before = 12_345;
    for _ in 0..before {
        meter_call(slot); // not attached: must not count
    }
    let meter = attach(&dir.options());
    assert_eq!(meter.register(key).unwrap(), slot, "a key keeps its slot");
    assert_eq!(
        meter.count(key).unwrap(),
        0,
        "calls before attach were counted"
    );
    for _ in 0..100_000 {
        meter_call(slot);
    }
    assert_eq!(meter.count(key).unwrap(), 100_000);
    meter_call(slot);
    assert_eq!(meter.count(key).unwrap(), 100_001);
    assert_eq!(meter.dropped().unwrap(), 0);
    drop(meter);
    for _ in 0..1000 {
        meter_call(slot); // detached: must not count
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
    // Both threads hit `shared` from whichever CPU they run on: its per-CPU
    // counters must add up to every call.
    let shared_slot = meter.register(shared).unwrap();
    let threads: Vec<_> = [own_a, own_b]
        .into_iter()
        .map(|own| {
            let own = meter.register(own).unwrap();
            std::thread::spawn(move || {
                for i in 0..500_000u32 {
                    meter_call(if i % 2 == 0 { shared_slot } else { own });
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
    let slots: Vec<_> = keys.iter().map(|k| meter.register(*k).unwrap()).collect();
    let unused_slot = meter.register(unused).unwrap();
    assert!(!slots.contains(&unused_slot));
    assert!(slots[0] != slots[1] && slots[1] != slots[2] && slots[0] != slots[2]);
    for (i, slot) in slots.iter().enumerate() {
        for _ in 0..(i + 1) * 1000 {
            meter_call(*slot);
        }
    }
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(meter.count(*key).unwrap(), (i as u64 + 1) * 1000, "key {i}");
    }
    assert_eq!(meter.count(unused).unwrap(), 0);
}

#[test]
fn a_full_map_refuses_new_keys() {
    if skip_bpf("a_full_map_refuses_new_keys") {
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
    let slots: Vec<_> = keys.iter().map(|k| meter.register(*k).unwrap()).collect();
    let extra = test_key(14);
    match meter.register(extra) {
        Err(MeterError::MapFull {
            capacity: 4, key, ..
        }) if key == extra => {}
        other => panic!("expected MapFull for the fifth key, got {other:?}"),
    }
    // Re-registering a present key is fine and keeps its slot and count.
    meter_call(slots[0]);
    assert_eq!(meter.register(keys[0]).unwrap(), slots[0]);
    assert_eq!(meter.count(keys[0]).unwrap(), 1);

    for _ in 0..1000 {
        meter_call(slots[1]);
    }
    assert_eq!(meter.count(extra).unwrap(), 0);
    assert_eq!(meter.dropped().unwrap(), 0);
    assert_eq!(meter.count(keys[1]).unwrap(), 1000);
    // Another process of the same pin directory sees the same table.
    drop(meter);
    let again = attach(&MeterOptions {
        max_entries: 4,
        ..dir.options()
    });
    assert_eq!(again.register(keys[3]).unwrap(), slots[3]);
    assert!(matches!(
        again.register(extra),
        Err(MeterError::MapFull { .. })
    ));
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
    let slot = meter.register(key).unwrap();
    for _ in 0..50_000 {
        meter_call(slot);
    }
    assert_eq!(meter.count(key).unwrap(), 50_000);
}

#[test]
fn auto_links_by_uprobe_multi_and_counts_only_this_process() {
    if skip_bpf("auto_links_by_uprobe_multi_and_counts_only_this_process") {
        return;
    }
    let _serial = serial();
    let dir = PinDir::new();
    let meter = attach(&dir.options());
    match meter.attach_point() {
        AttachPoint::UprobeMulti { target, offset } => {
            assert_eq!(target.to_str(), Some("/proc/self/exe"));
            assert!(*offset > 0);
        }
        other => panic!(
            "expected a uprobe_multi link on this kernel, got {other:?} ({:?})",
            meter.multi_refused()
        ),
    }
    assert_eq!(meter.multi_refused(), None);
    let key = test_key(22);
    let slot = meter.register(key).unwrap();
    for _ in 0..50_000 {
        meter_call(slot);
    }
    assert_eq!(meter.count(key).unwrap(), 50_000);
    drop(meter);
    // Detached when dropped: calls after it count nowhere.
    for _ in 0..1000 {
        meter_call(slot);
    }
    assert_eq!(read_pinned_count(&dir.path, key).unwrap(), 50_000);
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
    let slot = meter.register(key).unwrap();
    for _ in 0..5000 {
        meter_call(slot);
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
    let slot = first.register(key).unwrap();
    for _ in 0..100 {
        meter_call(slot);
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
    assert_eq!(meter.count(u64::MAX).unwrap(), 0);
}
