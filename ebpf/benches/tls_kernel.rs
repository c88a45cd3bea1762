//! The "kernel map alone" row of `scripts/bench-tls`: attaches the TLS
//! handshake meter's cgroup programs to a cgroup (client side, enforcement
//! on with an allowance no benchmark exhausts) and never reads the ring
//! buffer, so each handshake costs only the kernel's work: the programs
//! count into the pinned per-tenant total, and once the ring buffer is full
//! its events are dropped (and counted as dropped).
//!
//! Not a benchmark by itself: `scripts/bench-tls` builds it with
//! `cargo bench -p sealbox-ebpf --bench tls_kernel --no-run` and drives it
//! over stdin/stdout:
//!
//! With `--drain-ms MS` a thread drains the ring buffer every MS
//! milliseconds without ever waiting on it (no poll, so the kernel's wakeups
//! find no waiter, and the consumer is caught up only right after a drain):
//! the cost of delivering every event to user space in batches, without the
//! Wasm tariff, the journal or the chain.
//!
//! ```text
//! tls_kernel --cgroup DIR --port PORT [--port PORT]... --pin-dir DIR [--bpf-stats] [--drain-ms MS]
//!   prints  "attached TENANT"            once attached
//!   stdin   "totals"  → "totals TOTAL DROPPED DELIVERED"
//!   stdin   EOF       → detaches and exits
//! ```
//!
//! `--bpf-stats` holds a `BPF_ENABLE_STATS` file descriptor while it runs, so
//! the kernel keeps `run_time_ns`/`run_cnt` for every BPF program (read with
//! `bpftool prog show`); the kernel stops when the last holder closes it.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use sealbox_ebpf::{Ports, Side, TlsConfig, TlsMeter};

/// `BPF_ENABLE_STATS` (enum bpf_cmd) and `BPF_STATS_RUN_TIME` (enum bpf_stats_type).
const BPF_ENABLE_STATS: libc::c_long = 32;
const BPF_STATS_RUN_TIME: u32 = 0;

fn enable_bpf_stats() -> std::io::Result<libc::c_int> {
    // union bpf_attr for this command: { __u32 type; }, zero-padded.
    let mut attr = [0u8; 64];
    attr[..4].copy_from_slice(&BPF_STATS_RUN_TIME.to_ne_bytes());
    // SAFETY: a valid pointer to an attribute buffer of the given size.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_ENABLE_STATS,
            attr.as_ptr(),
            attr.len() as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd as libc::c_int)
}

fn main() {
    let mut cgroup = None;
    let mut ports = Vec::new();
    let mut pin_dir = None;
    let mut stats = false;
    let mut drain_ms: Option<u64> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--cgroup" => cgroup = args.next().map(PathBuf::from),
            "--port" => ports.extend(args.next().and_then(|p| p.parse::<u16>().ok())),
            "--pin-dir" => pin_dir = args.next().map(PathBuf::from),
            "--bpf-stats" => stats = true,
            "--drain-ms" => drain_ms = args.next().and_then(|m| m.parse().ok()),
            "--bench" => {} // added by `cargo bench`
            other => {
                eprintln!("tls_kernel: unknown argument {other:?}");
                std::process::exit(2);
            }
        }
    }
    let (Some(cgroup), false, Some(pin_dir)) = (cgroup, ports.is_empty(), pin_dir) else {
        eprintln!(
            "usage: tls_kernel --cgroup DIR --port PORT... --pin-dir DIR [--bpf-stats] [--drain-ms MS]  (driven by scripts/bench-tls)"
        );
        std::process::exit(2);
    };
    let _stats_fd = if stats {
        match enable_bpf_stats() {
            Ok(fd) => Some(fd),
            Err(e) => {
                eprintln!("tls_kernel: BPF_ENABLE_STATS failed: {e}");
                std::process::exit(1);
            }
        }
    } else {
        None
    };
    let mut config = TlsConfig::new(cgroup, Side::Client);
    config.ports = Ports::Only(ports);
    config.pin_dir = pin_dir;
    let mut meter = match TlsMeter::attach(&config) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("tls_kernel: cannot attach: {e}");
            std::process::exit(1);
        }
    };
    // Enforcement stays on, as in `runtime meter`; the allowance is out of reach.
    meter
        .set_allowance(1 << 40)
        .expect("set the allowance of the kernel-only meter");
    let tenant = meter.target_id();
    let delivered = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    if let Some(ms) = drain_ms {
        let mut events = meter.take_events().expect("the event reader");
        let delivered = std::sync::Arc::clone(&delivered);
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_millis(ms));
                let n = events.drain(usize::MAX).len() as u64;
                delivered.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            }
        });
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "attached {tenant}").unwrap();
    out.flush().unwrap();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line.trim() == "totals" {
            let total = meter.total(tenant).unwrap_or(0);
            let dropped = meter.dropped().unwrap_or(0);
            let delivered = delivered.load(std::sync::atomic::Ordering::Relaxed);
            writeln!(out, "totals {total} {dropped} {delivered}").unwrap();
            out.flush().unwrap();
        }
    }
    // The programs are pinned links: dropping the meter would leave them attached.
    if let Err(e) = meter.detach_and_unpin() {
        eprintln!("cannot remove the meter's pins: {e}");
    }
}
