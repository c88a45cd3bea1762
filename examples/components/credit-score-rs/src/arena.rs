//! The component's allocator on wasm32: a bump arena in a static buffer that
//! never frees.
//!
//! The runtime gives every call a fresh instance, so nothing outlives a call
//! and freeing is wasted work. What matters is that the arena lives inside the
//! module's initial memory: Rust's default wasm32 allocator (dlmalloc) grows
//! linear memory on its first allocation, and in a fresh instance that is
//! every call — an `mprotect` and a TLB shootdown each time, which made a
//! call of this component 2.5× one of the core module (runtime/sandbox
//! `benches/components.rs`). A call needs a few hundred bytes; an input that
//! needs more than the arena fails the allocation (a trap), never grows.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;

/// Bytes the arena holds.
const ARENA_BYTES: usize = 16 * 1024;

#[repr(C, align(16))]
struct Arena {
    bytes: UnsafeCell<[u8; ARENA_BYTES]>,
    /// Offset of the first free byte.
    next: UnsafeCell<usize>,
}

// SAFETY: wasm32-unknown-unknown without the atomics feature has one thread.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena {
    bytes: UnsafeCell::new([0; ARENA_BYTES]),
    next: UnsafeCell::new(0),
};

struct Bump;

// SAFETY: blocks are disjoint (the offset only moves forward), inside the
// static buffer, and aligned as asked (the buffer is 16-aligned, larger
// alignments are refused).
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() > 16 {
            return core::ptr::null_mut();
        }
        // SAFETY: one thread, no reentrancy.
        let next = unsafe { &mut *ARENA.next.get() };
        let start = next.next_multiple_of(layout.align());
        match start.checked_add(layout.size()) {
            Some(end) if end <= ARENA_BYTES => {
                *next = end;
                // SAFETY: start..end is inside the buffer.
                unsafe { ARENA.bytes.get().cast::<u8>().add(start) }
            }
            _ => core::ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

#[global_allocator]
static ALLOCATOR: Bump = Bump;
