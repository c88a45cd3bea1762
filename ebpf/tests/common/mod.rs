//! Shared helpers for the kernel meter tests: BPF availability, unique pin
//! directories, serialisation, raw map creation and child processes.
#![allow(dead_code)]

use std::ffi::CString;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};

use sealbox_ebpf::{Meter, MeterError, MeterOptions};

/// Every meter in a process probes the same function, so a test's calls would
/// also hit another test's probe: tests that attach run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Holds the serialisation lock for the duration of a test.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// True (after saying so) when the environment opts out of BPF tests.
pub fn skip_bpf(test: &str) -> bool {
    if std::env::var("SEALBOX_SKIP_BPF").as_deref() == Ok("1") {
        // Straight to stderr, past libtest's capture, so the skip is visible.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: SEALBOX_SKIP_BPF=1 (this test needs root and BPF)"
        );
        return true;
    }
    false
}

/// A unique pin directory under /sys/fs/bpf, removed (with its pins) on drop.
pub struct TestPinDir {
    pub path: PathBuf,
}

impl TestPinDir {
    pub fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = PathBuf::from(format!(
            "/sys/fs/bpf/sealbox-test-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        Self { path }
    }

    pub fn options(&self) -> MeterOptions {
        MeterOptions {
            pin_dir: self.path.clone(),
            ..MeterOptions::default()
        }
    }

    /// Creates the directory itself (for tests that pin maps before any meter does).
    pub fn create(&self) {
        std::fs::create_dir_all(&self.path).unwrap_or_else(|e| {
            panic!(
                "cannot create {} ({e}): is bpffs mounted at /sys/fs/bpf and are we root? \
                    Set SEALBOX_SKIP_BPF=1 to skip BPF tests",
                self.path.display()
            )
        });
    }
}

impl Drop for TestPinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Attaches a meter or fails the test with a message saying BPF is unavailable.
pub fn attach(opts: &MeterOptions) -> Meter {
    Meter::attach(opts).unwrap_or_else(|e| bpf_unavailable(&e))
}

pub fn bpf_unavailable(e: &MeterError) -> ! {
    panic!(
        "kernel meter unavailable: {e}\n\
         These tests need root and a kernel with BPF and uprobes, and bpffs at /sys/fs/bpf. \
         Set SEALBOX_SKIP_BPF=1 to skip them."
    )
}

/// A meter key unlikely to collide with any other test's.
pub fn test_key(tag: u64) -> u64 {
    0x5e57_0000_0000_0000 | (u64::from(std::process::id()) << 16) | tag
}

// ---- raw BPF syscalls, to build maps the way an older or foreign loader would ----

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_OBJ_PIN: libc::c_long = 6;
pub const BPF_MAP_TYPE_HASH: u32 = 1;
pub const BPF_MAP_TYPE_ARRAY: u32 = 2;

fn bpf(cmd: libc::c_long, attr: &mut [u8; 128]) -> libc::c_long {
    // SAFETY: attr is a zero-padded bpf_attr of the size we pass.
    unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) }
}

/// Creates a map with the given layout and pins it at `path`.
pub fn pin_raw_map(path: &Path, map_type: u32, key_size: u32, value_size: u32, max_entries: u32) {
    let mut attr = [0u8; 128];
    for (i, v) in [map_type, key_size, value_size, max_entries]
        .into_iter()
        .enumerate()
    {
        attr[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
    }
    let fd = bpf(BPF_MAP_CREATE, &mut attr);
    assert!(
        fd >= 0,
        "BPF_MAP_CREATE: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: the kernel just returned this fd to us.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let c_path = CString::new(path.as_os_str().as_bytes()).unwrap();
    let mut attr = [0u8; 128];
    attr[0..8].copy_from_slice(&(c_path.as_ptr() as u64).to_ne_bytes());
    attr[8..12].copy_from_slice(&(std::os::fd::AsRawFd::as_raw_fd(&fd) as u32).to_ne_bytes());
    let rc = bpf(BPF_OBJ_PIN, &mut attr);
    assert!(
        rc == 0,
        "BPF_OBJ_PIN {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

/// (key size, value size, max_entries) of the map pinned at `path`.
pub fn pinned_shape(path: &Path) -> (u32, u32, u32) {
    let info = aya::maps::MapData::from_pin(path).unwrap().info().unwrap();
    (info.key_size(), info.value_size(), info.max_entries())
}

/// Writes `value` at index 0 of the u64 array pinned at `path`.
pub fn set_array_u64(path: &Path, value: u64) {
    let map = aya::maps::Map::from_map_data(aya::maps::MapData::from_pin(path).unwrap()).unwrap();
    let mut array: aya::maps::Array<aya::maps::MapData, u64> = map.try_into().unwrap();
    array.set(0, value, 0).unwrap();
}
