//! The function the kernel meter probes, and the safe way to call it.

use std::hint::black_box;

/// The first five bytes of [`sealbox_meter_entry`]: a 5-byte nop
/// (`nopl 0x0(%rax,%rax,1)`). The offset-based attach checks that the bytes at
/// the computed file offset are these before it places a probe there.
pub const ENTRY_NOP5: [u8; 5] = [0x0f, 0x1f, 0x44, 0x00, 0x00];

/// The symbol the uprobe is attached to.
pub const ENTRY_SYMBOL: &str = "sealbox_meter_entry";

/// The metered entry point: the runtime calls it (through [`meter_call`]) once
/// per guest call, with the product's counter slot in the first argument register.
/// It does nothing itself; the uprobe on its first instruction does the counting.
///
/// Why naked, starting with a 5-byte nop: a uprobe replaces the probed
/// instruction with a breakpoint, and after the BPF program ran the kernel must
/// execute the original instruction. A normal Rust prologue such as
/// `mov %rdi,-8(%rsp)` cannot be emulated, so the kernel single-steps it out of
/// line, which is many times slower. A nop is emulated, and on kernels with
/// the x86 uprobe optimisation (`arch_uprobe_optimize`) a probed nop5 is
/// rewritten into a call to a trampoline that enters the kernel by syscall
/// instead of a trap, cheaper still (`cargo bench -p sealbox-ebpf` measures
/// both). Being naked, the function is emitted exactly as written and is
/// never inlined.
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub extern "C" fn sealbox_meter_entry(key: u64) {
    // The slot arrives in %rdi (System V ABI), where the BPF program reads it.
    core::arch::naked_asm!(".byte 0x0f, 0x1f, 0x44, 0x00, 0x00", "ret")
}

/// A counter slot in the kernel meter's per-CPU array: what
/// [`Meter::register`](crate::Meter::register) hands out for a meter key, and
/// what [`meter_call`] passes to the probed entry. Only `register` makes one,
/// so every metered call hits a slot its key owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Slot(pub(crate) u32);

impl Slot {
    /// The slot's index in the counter array.
    pub fn index(self) -> u32 {
        self.0
    }
}

/// Calls [`sealbox_meter_entry`] with `slot`: one metered unit when a
/// [`Meter`](crate::Meter) is attached in this process, a few nanoseconds
/// otherwise.
#[inline]
pub fn meter_call(slot: Slot) {
    enter(u64::from(slot.0));
}

/// Calls the entry with a raw argument (the self-test's reserved value). The
/// call goes through [`black_box`] so the compiler can never elide it, even
/// though the function has no visible effect.
#[inline]
pub(crate) fn enter(arg: u64) {
    let entry: extern "C" fn(u64) = black_box(sealbox_meter_entry);
    entry(black_box(arg));
}

/// The runtime address of [`sealbox_meter_entry`] in this process.
pub(crate) fn entry_address() -> usize {
    sealbox_meter_entry as *const () as usize
}
