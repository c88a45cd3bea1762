//! The journal's counter-file reader (`runtime/src/journal/counter.rs`,
//! compiled in) on arbitrary file contents: `read_existing` never panics, and
//! agrees with `open_existing`, the mapping path the journal admits through:
//! a value one reads is the value the other maps, and a file one refuses the
//! other refuses too (no accept-then-fail-later).
#![no_main]

use std::cell::RefCell;
use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use sealbox_fuzz::counter::CounterFile;

thread_local! {
    static DIR: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
}

fn path() -> PathBuf {
    DIR.with(|d| {
        d.borrow_mut()
            .get_or_insert_with(|| {
                let base = std::env::var_os("TMPDIR").map_or("/tmp".into(), PathBuf::from);
                let dir = base.join(format!("sealbox-fuzz-counter-{}", std::process::id()));
                std::fs::create_dir_all(&dir).expect("a scratch directory");
                dir
            })
            .join("counter")
    })
}

fuzz_target!(|data: &[u8]| {
    let path = path();
    std::fs::write(&path, data).expect("writes the counter file");
    let read = CounterFile::read_existing(&path).map_err(|e| e.to_string());
    let mapped = CounterFile::open_existing(&path).map(|c| c.map(|c| c.value()));
    match (&read, &mapped) {
        (Ok(Some(v)), Ok(Some(m))) => assert_eq!(v, m, "read and mapped values differ"),
        // A short all-zero file: nothing counted, and nothing to map.
        (Ok(Some(0)), Ok(None)) => assert!(data.len() < 16),
        (Err(_), Err(_)) => {}
        _ => panic!("read_existing {read:?} but open_existing {mapped:?}"),
    }
});
