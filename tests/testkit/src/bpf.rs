//! Tests that need eBPF in the kernel (root or CAP_BPF + CAP_PERFMON, BPF
//! and uprobes, bpffs at /sys/fs/bpf), and the one rule for machines that
//! have none.
//!
//! **The rule: `SEALBOX_SKIP_BPF=1` skips where BPF is unavailable; it never
//! skips where BPF works; without it, a test that finds no BPF fails and says
//! why.** A test runs its BPF part as usual; when it finds BPF missing (the
//! meter does not attach, the runtime exits 36, a pin directory cannot be
//! made) it calls [`unavailable`], which fails the test, or with the opt-out
//! prints `SKIPPED <test>: …` and returns so that the test skips that part.
//! Suites that decide up front call [`skip_if_unavailable`], which only probes
//! for BPF under the opt-out. CI never sets it.

use std::fmt::Display;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// The opt-out variable; only the value `1` counts.
pub const SKIP_BPF: &str = "SEALBOX_SKIP_BPF";

/// What a test that needs BPF needs, for messages.
pub const NEEDS: &str = "root (or CAP_BPF + CAP_PERFMON), a kernel with BPF and uprobes, and \
                         bpffs at /sys/fs/bpf";

/// Whether `SEALBOX_SKIP_BPF=1` is set.
pub fn opted_out() -> bool {
    std::env::var_os(SKIP_BPF).is_some_and(|v| v == "1")
}

/// Fails the test: BPF is unavailable for the reason `why`.
#[track_caller]
pub fn missing(why: impl Display) -> ! {
    panic!(
        "BPF is unavailable here: {why}\nThis test needs {NEEDS}. On a machine without BPF, \
         {SKIP_BPF}=1 makes such tests skip (never set in CI)."
    )
}

/// The rule, for `test` that found BPF unavailable (`why`): without the
/// opt-out the test fails saying why ([`missing`]); with it, this prints
/// that the test skips and returns, and the test skips what needs BPF.
#[track_caller]
pub fn unavailable(test: &str, why: impl Display) {
    if !opted_out() {
        missing(format!("{test}: {why}"));
    }
    // Straight to stderr, past libtest's capture, so the skip is visible.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {SKIP_BPF}=1 and BPF is unavailable here: {why}"
    );
}

/// For a test that decides up front: true (after saying so) when the test
/// must skip, i.e. with the opt-out and `probe` finding BPF unavailable.
/// Without the opt-out this returns false at once and probes nothing: the
/// test runs, and fails saying why if BPF is missing.
pub fn skip_if_unavailable(test: &str, probe: impl FnOnce() -> Result<(), String>) -> bool {
    if !opted_out() {
        return false;
    }
    match probe() {
        Ok(()) => false,
        Err(why) => {
            unavailable(test, why);
            true
        }
    }
}

/// A pin directory of its own on bpffs, `/sys/fs/bpf/sealbox-test-<pid>-<n>`,
/// removed (with everything pinned in it) on drop.
#[derive(Debug)]
pub struct PinDir {
    /// The directory (not created: the meter creates it when it attaches).
    pub path: PathBuf,
}

impl PinDir {
    /// A fresh path, left over from no earlier test.
    #[allow(clippy::new_without_default)]
    pub fn new() -> PinDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = PathBuf::from(format!(
            "/sys/fs/bpf/sealbox-test-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        PinDir { path }
    }

    /// Creates the directory itself (for tests that pin maps before any
    /// meter does); fails saying why when bpffs refuses.
    #[track_caller]
    pub fn create(&self) {
        if let Err(e) = std::fs::create_dir_all(&self.path) {
            missing(format!("cannot create {} ({e})", self.path.display()));
        }
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_opt_out_skips_only_where_bpf_is_unavailable() {
        let before = std::env::var_os(SKIP_BPF);
        // SAFETY: no other test of this binary reads or writes SEALBOX_SKIP_BPF.
        unsafe { std::env::set_var(SKIP_BPF, "1") };
        assert!(skip_if_unavailable("t", || Err("no bpffs".into())));
        assert!(!skip_if_unavailable("t", || Ok(())), "BPF works: run");
        unavailable("t", "no bpffs");

        // SAFETY: as above.
        unsafe { std::env::remove_var(SKIP_BPF) };
        assert!(!skip_if_unavailable("t", || panic!(
            "probed without the opt-out"
        )));
        let failed = std::panic::catch_unwind(|| unavailable("t", "no bpffs")).unwrap_err();
        let message = failed.downcast_ref::<String>().expect("a formatted panic");
        assert!(message.contains("t: no bpffs"), "{message}");
        assert!(message.contains(SKIP_BPF), "says how to opt out: {message}");

        if let Some(v) = before {
            // SAFETY: as above.
            unsafe { std::env::set_var(SKIP_BPF, v) };
        }
    }
}
