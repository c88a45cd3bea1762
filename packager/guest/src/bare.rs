//! Feature `no-std`, on wasm32: the global allocator (a bump arena over linear
//! memory), the exported `sealbox_alloc` that resets it, and the panic handler.

use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32;
use core::cell::UnsafeCell;

use crate::arena::{Arena, pages_to_grow};

unsafe extern "C" {
    /// First address after the data and the stack, defined by the linker.
    static __heap_base: u8;
}

fn heap_base() -> usize {
    &raw const __heap_base as usize
}

/// Grows linear memory (index 0) until address `end` (exclusive) is inside it.
fn fit(end: usize) -> bool {
    let pages = pages_to_grow(end, wasm32::memory_size(0));
    // More than 65536 pages is past the 4 GiB of wasm32.
    pages == 0 || (pages <= 65_536 && wasm32::memory_grow(0, pages as usize) != usize::MAX)
}

/// The one arena of the module, created on first use.
struct Heap(UnsafeCell<Option<Arena>>);

// SAFETY: wasm32-unknown-unknown without the atomics feature has exactly one
// thread, so the cell is never accessed concurrently.
unsafe impl Sync for Heap {}

static HEAP: Heap = Heap(UnsafeCell::new(None));

/// Runs `f` on the arena. Not reentrant; none of the callers calls back into it.
fn with_arena<R>(f: impl FnOnce(&mut Arena) -> R) -> R {
    // SAFETY: single thread (see `Sync` above) and no reentrancy, so this is the
    // only live reference to the arena.
    let arena = unsafe { &mut *HEAP.0.get() }.get_or_insert_with(|| Arena::new(heap_base()));
    f(arena)
}

struct BumpAllocator;

// SAFETY: blocks never overlap (the arena only hands out addresses past the last
// block, or resizes the last block), they lie inside linear memory (`fit`), and
// they are aligned as the layout asks.
unsafe impl GlobalAlloc for BumpAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        with_arena(|a| a.alloc(layout.size(), layout.align(), fit))
            .map_or(core::ptr::null_mut(), |p| p as *mut u8)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        with_arena(|a| a.dealloc(ptr as usize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if let Some(p) = with_arena(|a| a.resize_last(ptr as usize, new_size, fit)) {
            return p as *mut u8;
        }
        // SAFETY: the layout is valid (same alignment as an existing block).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: forwarded to our own `alloc` with a non-zero size.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are live, distinct, and at least this long.
            unsafe { core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: BumpAllocator = BumpAllocator;

/// ABI v1: frees everything from the previous call, then reserves `len` bytes for
/// the host to write the next input into. Returns their address, or 0 when
/// memory cannot grow that far.
#[unsafe(no_mangle)]
pub extern "C" fn sealbox_alloc(len: usize) -> *mut u8 {
    with_arena(|a| {
        a.reset(heap_base());
        a.alloc(len, 8, fit)
    })
    .map_or(core::ptr::null_mut(), |p| p as *mut u8)
}

/// Keeps an entry's output for the host: the bytes stay in the arena until the
/// next `sealbox_alloc` resets it. Returns its address and length.
pub(crate) fn keep_output(out: Vec<u8>) -> (usize, usize) {
    let out = out.leak();
    (out.as_ptr() as usize, out.len())
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    wasm32::unreachable()
}
