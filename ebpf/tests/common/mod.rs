//! Shared helpers for the kernel meter tests: the BPF skip rule and pin
//! directories (from `sealbox-testkit`), serialisation, raw map creation and
//! child processes.
#![allow(dead_code)]

use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, OnceLock};

use sealbox_ebpf::{Meter, MeterError, MeterOptions};
pub use sealbox_testkit::bpf::PinDir;

/// Every meter in a process probes the same function, so a test's calls would
/// also hit another test's probe: tests that attach run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Holds the serialisation lock for the duration of a test.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// True (after saying so) when `test` must skip under the testkit's BPF
/// rule: `SEALBOX_SKIP_BPF=1` and no meter can attach here (probed once per
/// process). Where BPF works the test runs, opt-out or not; without the
/// opt-out it runs and fails saying why if BPF is missing.
pub fn skip_bpf(test: &str) -> bool {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    sealbox_testkit::bpf::skip_if_unavailable(test, || {
        PROBE
            .get_or_init(|| {
                let _serial = serial();
                let dir = PinDir::new();
                Meter::attach(&dir.options())
                    .map(drop)
                    .map_err(|e| format!("the meter cannot attach: {e}"))
            })
            .clone()
    })
}

/// [`MeterOptions`] pinning into a test's own [`PinDir`].
pub trait MeterPins {
    /// The default options with this pin directory.
    fn options(&self) -> MeterOptions;
}

impl MeterPins for PinDir {
    fn options(&self) -> MeterOptions {
        MeterOptions {
            pin_dir: self.path.clone(),
            ..MeterOptions::default()
        }
    }
}

/// Attaches a meter or fails the test with a message saying BPF is unavailable.
#[track_caller]
pub fn attach(opts: &MeterOptions) -> Meter {
    Meter::attach(opts).unwrap_or_else(|e| bpf_unavailable(&e))
}

/// Fails the test: the meter could not attach (`e`) for want of BPF.
#[track_caller]
pub fn bpf_unavailable(e: &MeterError) -> ! {
    sealbox_testkit::bpf::missing(format!("kernel meter unavailable: {e}"))
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
pub const BPF_MAP_TYPE_PERCPU_ARRAY: u32 = 6;

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
