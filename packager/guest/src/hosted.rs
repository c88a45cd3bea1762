//! A `std` guest on wasm32: `sealbox_alloc` and the output slot on the
//! program's own global allocator (the standard library's, or any other).

use alloc::vec::Vec;
use core::cell::UnsafeCell;

/// The current call's input buffer and the last entry's output.
struct Slots {
    input: Vec<u8>,
    output: Vec<u8>,
}

struct Cell(UnsafeCell<Slots>);

// SAFETY: wasm32-unknown-unknown without the atomics feature has exactly one
// thread, so the cell is never accessed concurrently.
unsafe impl Sync for Cell {}

static SLOTS: Cell = Cell(UnsafeCell::new(Slots {
    input: Vec::new(),
    output: Vec::new(),
}));

/// Runs `f` on the slots. Not reentrant; none of the callers calls back into it.
fn with_slots<R>(f: impl FnOnce(&mut Slots) -> R) -> R {
    // SAFETY: single thread (see `Sync` above) and no reentrancy, so this is the
    // only live reference to the slots. Input slices handed to an entry point
    // into the input's heap block, not into `Slots` itself.
    f(unsafe { &mut *SLOTS.0.get() })
}

/// ABI v1: frees the previous call's input and output, then reserves `len`
/// bytes for the host to write the next input into. Returns their address, or
/// 0 when the allocator cannot provide them (instead of aborting).
#[unsafe(no_mangle)]
pub extern "C" fn sealbox_alloc(len: usize) -> *mut u8 {
    with_slots(|s| {
        s.input = Vec::new();
        s.output = Vec::new();
        let mut buf = Vec::new();
        if buf.try_reserve_exact(len).is_err() {
            return core::ptr::null_mut();
        }
        buf.resize(len, 0);
        s.input = buf;
        s.input.as_mut_ptr()
    })
}

/// Keeps an entry's output for the host until the next `sealbox_alloc`.
/// Returns its address and length.
pub(crate) fn keep_output(out: Vec<u8>) -> (usize, usize) {
    with_slots(|s| {
        s.output = out;
        (s.output.as_ptr() as usize, s.output.len())
    })
}
