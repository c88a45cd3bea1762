//! Pinned maps from another layout are refused with a clear error and left
//! untouched; reading without attaching. Needs root and BPF; where there
//! is none, SEALBOX_SKIP_BPF=1 skips (the testkit's BPF rule).

mod common;

use common::{
    BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_PERCPU_ARRAY, MeterPins, PinDir, attach,
    pin_raw_map, pinned_shape, serial, set_array_u64, skip_bpf, test_key,
};
use sealbox_ebpf::{Meter, MeterError, MeterOptions, PinnedCounts, meter_call, read_pinned_count};

/// Attaching must fail with StaleLayout naming `expected_path`.
fn expect_stale(opts: &MeterOptions, expected_path: &std::path::Path) -> String {
    match Meter::attach(opts) {
        Err(e @ MeterError::StaleLayout { .. }) => {
            let MeterError::StaleLayout { path, .. } = &e else {
                unreachable!()
            };
            assert_eq!(path, expected_path);
            let message = e.to_string();
            assert!(
                message.contains("rm -r"),
                "message says what to do: {message}"
            );
            message
        }
        Err(e) => common::bpf_unavailable(&e),
        Ok(m) => panic!("attached over a stale layout: {m:?}"),
    }
}

fn names(dir: &PinDir) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(&dir.path)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_counter_map_with_another_value_size_is_refused_and_left_alone() {
    if skip_bpf("a_counter_map_with_another_value_size_is_refused_and_left_alone") {
        return;
    }
    let _serial = serial();
    let dir = PinDir::new();
    dir.create();
    let counts = dir.path.join("meter_counts");
    pin_raw_map(&counts, BPF_MAP_TYPE_PERCPU_ARRAY, 4, 4, 4096);
    let message = expect_stale(&dir.options(), &counts);
    assert!(
        message.contains("value 4 B") && message.contains("value 8 B"),
        "{message}"
    );
    assert_eq!(pinned_shape(&counts), (4, 4, 4096));
    assert_eq!(
        names(&dir),
        ["meter_counts"],
        "the failed attach pinned something"
    );
    assert!(matches!(
        read_pinned_count(&dir.path, 1),
        Err(MeterError::StaleLayout { .. })
    ));
}

#[test]
fn maps_without_a_layout_marker_are_refused() {
    if skip_bpf("maps_without_a_layout_marker_are_refused") {
        return;
    }
    let _serial = serial();
    let dir = PinDir::new();
    dir.create();
    // Same shapes as today, but pinned by something that wrote no marker.
    pin_raw_map(
        &dir.path.join("meter_counts"),
        BPF_MAP_TYPE_PERCPU_ARRAY,
        4,
        8,
        4096,
    );
    pin_raw_map(&dir.path.join("meter_stats"), BPF_MAP_TYPE_ARRAY, 4, 8, 8);
    expect_stale(&dir.options(), &dir.path.join("meter_layout"));
    assert_eq!(names(&dir), ["meter_counts", "meter_stats"]);
}

#[test]
fn a_layout_v1_directory_is_refused_by_name_and_left_alone() {
    if skip_bpf("a_layout_v1_directory_is_refused_by_name_and_left_alone") {
        return;
    }
    let _serial = serial();
    let dir = PinDir::new();
    dir.create();
    // What a layout v1 build pinned: hashed keys in one hash map, a 2-slot marker.
    let counts = dir.path.join("meter_counts");
    pin_raw_map(&counts, BPF_MAP_TYPE_HASH, 8, 8, 4096);
    pin_raw_map(&dir.path.join("meter_stats"), BPF_MAP_TYPE_ARRAY, 4, 8, 8);
    let marker = dir.path.join("meter_layout");
    pin_raw_map(&marker, BPF_MAP_TYPE_ARRAY, 4, 8, 2);
    set_array_u64(&marker, 0x5342_584d_0000_0001);
    let message = expect_stale(&dir.options(), &marker);
    assert!(
        message.contains("layout v1 (hashed keys") && message.contains("layout v2"),
        "{message}"
    );
    assert!(matches!(
        read_pinned_count(&dir.path, 1),
        Err(MeterError::StaleLayout { .. })
    ));
    assert_eq!(
        pinned_shape(&counts),
        (8, 8, 4096),
        "the v1 map was touched"
    );
    assert_eq!(names(&dir), ["meter_counts", "meter_layout", "meter_stats"]);
}

#[test]
fn another_layout_version_is_refused() {
    if skip_bpf("another_layout_version_is_refused") {
        return;
    }
    let _serial = serial();
    let dir = PinDir::new();
    let key = test_key(70);
    {
        let meter = attach(&dir.options());
        let slot = meter.register(key).unwrap();
        for _ in 0..10 {
            meter_call(slot);
        }
        assert_eq!(meter.count(key).unwrap(), 10);
    }
    let marker = dir.path.join("meter_layout");
    set_array_u64(&marker, 0x5342_584d_0000_0003); // as a layout v3 build would
    let message = expect_stale(&dir.options(), &marker);
    assert!(message.contains("0x5342584d00000003"), "{message}");
    assert!(message.contains("a newer build"), "{message}");
    assert!(matches!(
        PinnedCounts::open(&dir.path),
        Err(MeterError::StaleLayout { .. })
    ));
    // Restoring the marker shows the counts were not touched.
    set_array_u64(&marker, 0x5342_584d_0000_0002);
    assert_eq!(read_pinned_count(&dir.path, key).unwrap(), 10);
}

#[test]
fn another_capacity_is_refused_but_readers_accept_it() {
    if skip_bpf("another_capacity_is_refused_but_readers_accept_it") {
        return;
    }
    let _serial = serial();
    let dir = PinDir::new();
    let key = test_key(71);
    {
        let meter = attach(&MeterOptions {
            max_entries: 64,
            ..dir.options()
        });
        meter_call(meter.register(key).unwrap());
        assert_eq!(meter.count(key).unwrap(), 1);
    }
    expect_stale(
        &MeterOptions {
            max_entries: 128,
            ..dir.options()
        },
        &dir.path.join("meter_counts"),
    );
    let pinned = PinnedCounts::open(&dir.path).unwrap();
    assert_eq!(pinned.capacity(), 64);
    assert_eq!(pinned.count(key).unwrap(), 1);
    assert_eq!(pinned.dropped().unwrap(), 0);
}

#[test]
fn reading_where_nothing_is_pinned_says_so() {
    if skip_bpf("reading_where_nothing_is_pinned_says_so") {
        return;
    }
    let _serial = serial();
    let dir = PinDir::new();
    dir.create();
    match read_pinned_count(&dir.path, 1) {
        Err(MeterError::NotPinned { path }) => assert_eq!(path, dir.path.join("meter_counts")),
        other => panic!("expected NotPinned, got {other:?}"),
    }
}

#[test]
fn a_pin_dir_outside_bpffs_is_refused() {
    if skip_bpf("a_pin_dir_outside_bpffs_is_refused") {
        return;
    }
    let _serial = serial();
    let dir = std::env::temp_dir().join(format!("sealbox-not-bpffs-{}", std::process::id()));
    let result = Meter::attach(&MeterOptions {
        pin_dir: dir.clone(),
        ..MeterOptions::default()
    });
    assert!(
        matches!(result, Err(MeterError::BpffsNotMounted { .. })),
        "{result:?}"
    );
    assert!(!dir.exists(), "the refused pin directory was created");
}

#[test]
fn recreated_maps_get_a_new_epoch() {
    if skip_bpf("recreated_maps_get_a_new_epoch") {
        return;
    }
    let _serial = serial();
    let dir = PinDir::new();
    let key = test_key(72);
    let first = {
        let meter = attach(&dir.options());
        meter_call(meter.register(key).unwrap());
        assert_ne!(meter.epoch(), 0);
        meter.epoch()
    };
    assert_eq!(PinnedCounts::open(&dir.path).unwrap().epoch(), first);
    assert_eq!(
        attach(&dir.options()).epoch(),
        first,
        "reused maps keep their epoch"
    );
    // What a reboot does to bpffs: the maps are gone, counting restarts at 0.
    std::fs::remove_dir_all(&dir.path).unwrap();
    let meter = attach(&dir.options());
    assert_ne!(meter.epoch(), first);
    assert_eq!(meter.count(key).unwrap(), 0);
}
