//! Per-call cost of `meter_call` without and with the kernel meter attached,
//! side by side in one run, on one thread and on two at once (counted
//! exactly either way), plus the same probe on a function whose first
//! instruction is a normal prologue store (to show why the entry starts with a
//! nop5), and one `getppid` syscall as the floor of any kernel entry.
//!
//! Run as root: `cargo bench -p sealbox-ebpf --bench meter`.
//! Times are this thread's CPU time (user + kernel), so a busy machine does
//! not inflate them; the median and minimum of the rounds are shown.
//! Env: SEALBOX_BENCH_CALLS (calls per round, default 1,000,000).

use std::hint::black_box;
use std::time::Instant;

use aya::EbpfLoader;
use aya::programs::UProbe;
use aya::programs::uprobe::UProbeScope;
use sealbox_ebpf::{
    AttachMode, Meter, MeterOptions, Slot, bpf_object, meter_call, read_pinned_count,
};
use sealbox_testkit::bpf::PinDir;

const ROUNDS: usize = 9;
const KEY: u64 = 0x5e57_0000_0000_be9c;

/// Same contract as `sealbox_meter_entry`, but starting with a store of the
/// argument to the stack, as an ordinary debug or release prologue does: the
/// kernel cannot emulate it and single-steps it out of line.
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub extern "C" fn sealbox_bench_prologue_entry(key: u64) {
    core::arch::naked_asm!("mov qword ptr [rsp - 8], rdi", "ret")
}

/// Slot 0 of a fresh counter array: the prologue case counts there.
fn prologue_call(_: Slot) {
    let f: extern "C" fn(u64) = black_box(sealbox_bench_prologue_entry);
    f(black_box(0));
}

/// This thread's CPU time in ns: unlike wall time it does not count the time
/// the thread waits for a core on a busy machine (kernel time in the probe
/// handler is included).
fn thread_cpu_ns() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer; this clock always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

/// Per-call times of `f` over ROUNDS rounds, in ns.
#[derive(Clone, Copy)]
struct Timing {
    cpu_median: f64,
    cpu_min: f64,
    wall_median: f64,
}

fn per_call_ns(calls: u64, slot: Slot, f: impl Fn(Slot)) -> Timing {
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        (v[ROUNDS / 2], v[0])
    };
    let (mut cpu, mut wall) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let (cpu_start, wall_start) = (thread_cpu_ns(), Instant::now());
        for _ in 0..calls {
            f(slot);
        }
        cpu.push((thread_cpu_ns() - cpu_start) as f64 / calls as f64);
        wall.push(wall_start.elapsed().as_nanos() as f64 / calls as f64);
    }
    let (cpu_median, cpu_min) = median(cpu);
    let (wall_median, _) = median(wall);
    Timing {
        cpu_median,
        cpu_min,
        wall_median,
    }
}

/// `per_call_ns` on `threads` threads at once; the slowest thread's timing
/// (each thread's CPU time is its own, so contention in the probe shows).
fn per_call_ns_threads(threads: usize, calls: u64, slot: Slot, f: fn(Slot)) -> Timing {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| s.spawn(move || per_call_ns(calls, slot, f)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread"))
            .max_by(|a, b| a.cpu_median.total_cmp(&b.cpu_median))
            .expect("at least one thread")
    })
}

fn getppid_call(_: Slot) {
    // SAFETY: getppid has no preconditions.
    black_box(unsafe { libc::getppid() });
}

fn getppid_ns(calls: u64, slot: Slot) -> Timing {
    per_call_ns(calls, slot, |_| {
        // SAFETY: getppid has no preconditions.
        black_box(unsafe { libc::getppid() });
    })
}

/// This thread's CPU time per call of `f` over `calls` calls, in ns.
fn one_round(calls: u64, slot: Slot, f: impl Fn(Slot)) -> f64 {
    let start = thread_cpu_ns();
    for _ in 0..calls {
        f(slot);
    }
    (thread_cpu_ns() - start) as f64 / calls as f64
}

/// The added cost of a metered call over `bare`, in `getppid` syscalls: each round times
/// `calls` syscalls and `calls` metered calls back to back and takes their ratio, and the
/// median of the rounds is returned. Pairing within a round cancels what drifts between rows
/// (the syscall's own cost moves by ±15 % from one row to the next on this machine).
fn paired_ratio(calls: u64, slot: Slot, bare: f64) -> f64 {
    let mut ratios: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let syscall = one_round(calls, slot, getppid_call);
            let metered = one_round(calls, slot, meter_call);
            (metered - bare) / syscall
        })
        .collect();
    ratios.sort_by(|a, b| a.total_cmp(b));
    ratios[ROUNDS / 2]
}

/// The first five bytes of the entry as this process sees them now.
fn entry_bytes() -> [u8; 5] {
    let addr = sealbox_ebpf::sealbox_meter_entry as *const u8;
    // SAFETY: the entry is at least 6 bytes of mapped, readable code.
    unsafe { std::ptr::read_volatile(addr.cast::<[u8; 5]>()) }
}

fn row(name: &str, bare: Timing, probed: Timing) {
    println!(
        "{name:<42} {:>8.1} {:>9.1} {:>9.1} {:>9.1} | {:>9.1}",
        bare.cpu_median,
        probed.cpu_median,
        probed.cpu_min,
        probed.cpu_median - bare.cpu_median,
        probed.wall_median - bare.wall_median,
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a list: there is nothing to list
    }
    let dir = PinDir::new();
    // The testkit's BPF rule: SEALBOX_SKIP_BPF=1 skips only where no meter attaches.
    let probe = || {
        Meter::attach(&MeterOptions {
            pin_dir: dir.path.join("probe"),
            ..MeterOptions::default()
        })
        .map(drop)
        .map_err(|e| e.to_string())
    };
    if sealbox_testkit::bpf::skip_if_unavailable("meter benchmark", probe) {
        return;
    }
    // `cargo bench` passes --bench; under `cargo test --all-targets` run a short smoke pass.
    let full = std::env::args().any(|a| a == "--bench");
    let calls: u64 = std::env::var("SEALBOX_BENCH_CALLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if full { 1_000_000 } else { 20_000 });

    let attach_as = |attach: AttachMode| match Meter::attach(&MeterOptions {
        pin_dir: dir.path.join("meter"),
        attach,
        ..MeterOptions::default()
    }) {
        Ok(m) => m,
        Err(e) => sealbox_testkit::bpf::missing(format!("cannot attach the kernel meter: {e}")),
    };
    let attach_meter = || attach_as(AttachMode::Auto);
    // The key's slot, taken once; detached again for the bare rows.
    let slot = attach_meter().register(KEY).expect("register");

    // Warm up, then measure without any probe.
    per_call_ns(calls / 10, slot, meter_call);
    let bare = per_call_ns(calls, slot, meter_call);
    let bare_prologue = per_call_ns(calls, slot, prologue_call);
    let floor = getppid_ns(calls, slot);
    let bare_two = per_call_ns_threads(2, calls, slot, meter_call);
    let floor_two = per_call_ns_threads(2, calls, slot, getppid_call);

    let meter = attach_meter();
    assert_eq!(meter.register(KEY).expect("register"), slot);
    let start = Instant::now();
    meter_call(slot);
    let first = start.elapsed().as_nanos();
    let probed_bytes = entry_bytes();
    let metered = per_call_ns(calls, slot, meter_call);
    // Two threads on one slot at once: the per-CPU counters take no lock.
    let metered_two = per_call_ns_threads(2, calls, slot, meter_call);
    let paired_multi = paired_ratio(calls, slot, bare.cpu_median);
    let link = meter.attach_point().clone();
    drop(meter);
    // The same program behind a perf-event uprobe (what Auto falls back to): the link's cost.
    let perf_event = attach_as(AttachMode::Offset);
    per_call_ns(calls / 10, slot, meter_call);
    let metered_perf_event = per_call_ns(calls, slot, meter_call);
    let paired_perf_event = paired_ratio(calls, slot, bare.cpu_median);
    let counted = perf_event.count(KEY).expect("count");
    drop(perf_event);
    let bare_after = per_call_ns(calls, slot, meter_call);
    let expected = 1 + 4 * calls * ROUNDS as u64 + (calls / 10 + 2 * calls) * ROUNDS as u64;
    assert_eq!(counted, expected, "metered calls not counted exactly");
    assert_eq!(
        read_pinned_count(&dir.path.join("meter"), KEY).expect("read"),
        expected,
        "calls counted after detach"
    );

    // The same BPF program on the prologue-first function.
    let prologue_dir = dir.path.join("prologue");
    std::fs::create_dir_all(&prologue_dir).expect("create bench pin dir");
    let mut bpf = EbpfLoader::new()
        .btf(None)
        .default_map_pin_directory(&prologue_dir)
        .load(bpf_object())
        .expect("load BPF object");
    let program: &mut UProbe = bpf
        .program_mut("meter_hit")
        .expect("program")
        .try_into()
        .expect("uprobe");
    program.load().expect("load program");
    program
        .attach(
            "sealbox_bench_prologue_entry",
            "/proc/self/exe",
            UProbeScope::CallingProcess,
        )
        .expect("attach to the prologue function");
    let prologue_calls = (calls / 20).max(1000); // ~11 µs each: keep the run short
    let probed_prologue = per_call_ns(prologue_calls, slot, prologue_call);
    drop(bpf);

    println!(
        "kernel meter: per-call cost in ns, median of {ROUNDS} rounds of {calls} calls \
         (prologue: {prologue_calls}); thread CPU time, and the added wall time for comparison"
    );
    println!(
        "{:<42} {:>8} {:>9} {:>9} {:>9} | {:>9}",
        "", "bare", "probed", "probe min", "added", "wall add"
    );
    row("meter_call (entry starts with a nop5)", bare, metered);
    row(
        "same, perf-event uprobe instead of multi",
        bare,
        metered_perf_event,
    );
    row(
        "meter_call, 2 threads at once (slowest)",
        bare_two,
        metered_two,
    );
    row(
        "prologue-first entry (mov %rdi,-8(%rsp))",
        bare_prologue,
        probed_prologue,
    );
    println!(
        "{:<42} {:>8} {:>9.1} {:>9.1} {:>9} | {:>9.1}",
        "getppid() syscall (floor of a kernel entry)",
        "",
        floor.cpu_median,
        floor.cpu_min,
        "",
        floor.wall_median
    );
    println!(
        "{:<42} {:>8} {:>9.1} {:>9.1} {:>9} | {:>9.1}",
        "getppid(), 2 threads at once (slowest)",
        "",
        floor_two.cpu_median,
        floor_two.cpu_min,
        "",
        floor_two.wall_median
    );
    println!(
        "meter_call after detach: {:.1} ns; first metered call (wall): {first} ns",
        bare_after.cpu_median
    );
    println!(
        "entry bytes while probed: {probed_bytes:02x?} ({})",
        match probed_bytes[0] {
            0xe8 => "call into the uprobe trampoline: optimised",
            0xcc => "int3 breakpoint: not optimised",
            _ => "unexpected",
        }
    );
    println!("link: {link:?}");
    println!(
        "added cost in getppid syscalls, paired round by round (median of {ROUNDS}): \
         {paired_multi:.2}x by uprobe_multi, {paired_perf_event:.2}x behind a perf-event uprobe"
    );
    println!(
        "added cost: {:.2}x a getppid syscall ({:.2}x with 2 threads at once; {:.2}x behind a \
         perf-event uprobe); the prologue-first probe costs {:.1}x the nop5 probe",
        (metered.cpu_median - bare.cpu_median) / floor.cpu_median,
        (metered_two.cpu_median - bare_two.cpu_median) / floor_two.cpu_median,
        (metered_perf_event.cpu_median - bare.cpu_median) / floor.cpu_median,
        (probed_prologue.cpu_median - bare_prologue.cpu_median)
            / (metered.cpu_median - bare.cpu_median)
    );
    println!("counted {counted} of {expected} metered calls exactly, none after detach");
}
