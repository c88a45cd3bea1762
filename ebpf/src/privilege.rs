//! What the process needs from the kernel before it tries: capabilities and
//! the locked-memory limit.

use crate::MeterError;

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Effective capability mask from `/proc/self/status`, if readable.
fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    u64::from_str_radix(hex, 16).ok()
}

/// Fails unless the process has CAP_SYS_ADMIN, or both CAP_BPF and CAP_PERFMON
/// (loading a kprobe-type program and opening a uprobe perf event need them).
/// When the mask cannot be read the kernel gets to decide.
pub(crate) fn check_capabilities() -> Result<(), MeterError> {
    let Some(caps) = effective_caps() else {
        return Ok(());
    };
    let has = |cap: u32| caps & (1u64 << cap) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return Ok(());
    }
    let missing: Vec<&str> = [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
        .into_iter()
        .filter(|(cap, _)| !has(*cap))
        .map(|(_, name)| name)
        .collect();
    Err(MeterError::NotPermitted {
        detail: format!(
            "this process (euid {}) lacks {} (effective capabilities {caps:#x})",
            // SAFETY: geteuid has no preconditions.
            unsafe { libc::geteuid() },
            missing.join(" and ")
        ),
    })
}

/// The capabilities the TLS meter needs that this process lacks, by name;
/// empty when it has them all (CAP_SYS_ADMIN stands in for each of them) or
/// when the mask cannot be read (the kernel then decides).
///
/// CAP_BPF loads programs and creates maps; CAP_PERFMON lets the verifier
/// accept the programs' pointer handling; CAP_NET_ADMIN is what the kernel
/// asks for to load and attach cgroup networking programs (`cgroup_skb`,
/// `cgroup/connect4`).
pub(crate) fn missing_tls_capabilities() -> Vec<&'static str> {
    let Some(caps) = effective_caps() else {
        return Vec::new();
    };
    let has = |cap: u32| caps & (1u64 << cap) != 0;
    if has(CAP_SYS_ADMIN) {
        return Vec::new();
    }
    [
        (CAP_BPF, "CAP_BPF"),
        (CAP_PERFMON, "CAP_PERFMON"),
        (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
    ]
    .into_iter()
    .filter(|(cap, _)| !has(*cap))
    .map(|(_, name)| name)
    .collect()
}

/// Lifts RLIMIT_MEMLOCK for kernels older than 5.11, which charge BPF maps to
/// it; newer kernels use memory cgroups, so a failure here is not fatal.
pub(crate) fn raise_memlock() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: a valid rlimit pointer; failure only leaves the limit as it was.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) };
}
