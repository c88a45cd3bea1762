//! [`MeterError`]: every way attaching or reading the meter can fail, each
//! naming what is missing and what to do about it.

use std::path::PathBuf;

/// Errors from the kernel meter.
#[derive(Debug, thiserror::Error)]
pub enum MeterError {
    /// The process may not load BPF programs or open uprobes.
    #[error("the kernel meter needs root, or CAP_BPF + CAP_PERFMON (or CAP_SYS_ADMIN): {detail}")]
    NotPermitted {
        /// What was missing or which operation the kernel refused.
        detail: String,
    },

    /// The pin directory is not on a BPF filesystem and one could not be mounted.
    #[error(
        "no BPF filesystem at {path}: {reason} \
         (mount one with `mount -t bpf bpf /sys/fs/bpf`, or pick a pin directory under it)"
    )]
    BpffsNotMounted {
        /// The directory that should be on bpffs.
        path: PathBuf,
        /// Why it is not (or why mounting failed).
        reason: String,
    },

    /// The kernel could not take the program's BTF (needed for its BTF-defined maps).
    #[error(
        "BTF missing or unusable: {detail} (the kernel needs BTF support, CONFIG_DEBUG_INFO_BTF=y, \
         and the object must be built with `clang -g`)"
    )]
    BtfMissing {
        /// The loader's description of the BTF failure.
        detail: String,
    },

    /// Loading the BPF object or program into the kernel failed for another reason.
    #[error("loading the meter BPF program failed: {detail}")]
    Load {
        /// The loader's error, including the verifier log when there is one.
        detail: String,
    },

    /// The uprobe could not be attached to the entry function.
    #[error("attaching the meter uprobe to {location} in {target} failed: {detail}")]
    Attach {
        /// `symbol sealbox_meter_entry` or `file offset 0x…`.
        location: String,
        /// The binary the probe was attached in.
        target: PathBuf,
        /// Why it failed.
        detail: String,
    },

    /// The probe was attached but did not fire on a test call: counts would be lost.
    #[error(
        "the meter uprobe at {location} in {target} was attached but did not fire on a self-test \
         call; refusing to meter with it"
    )]
    SelfTestFailed {
        /// Where the probe was attached.
        location: String,
        /// The binary the probe was attached in.
        target: PathBuf,
    },

    /// A map pinned at the path has a layout this build does not understand.
    #[error(
        "stale meter map pinned at {path}: found {found}; this build needs {expected}. \
         Settle or record its counts, then remove it (`rm -r {dir}`) and attach again",
        dir = path.parent().map(|p| p.display().to_string()).unwrap_or_default()
    )]
    StaleLayout {
        /// The pinned map (or marker) that does not match.
        path: PathBuf,
        /// What is pinned there.
        found: String,
        /// What this build expects.
        expected: String,
    },

    /// The counter map has no room for another key.
    #[error(
        "meter map {path} is full ({capacity} keys): cannot register key {key:#018x}; \
         settle, then attach with a larger MeterOptions::max_entries and a new pin directory"
    )]
    MapFull {
        /// The pinned counter map.
        path: PathBuf,
        /// Its capacity (max_entries).
        capacity: u32,
        /// The key that did not fit.
        key: u64,
    },

    /// The key is reserved for the meter's own attach self-test.
    #[error("meter key {key:#018x} is reserved for the meter's self-test")]
    ReservedKey {
        /// The rejected key.
        key: u64,
    },

    /// This process already has a meter attached that counts into this pin directory;
    /// a second probe would count every call twice.
    #[error("a meter is already attached in this process for {pin_dir}")]
    AlreadyAttached {
        /// The pin directory in use.
        pin_dir: PathBuf,
    },

    /// Nothing is pinned where the meter's maps should be.
    #[error(
        "no meter map pinned at {path} (has a meter ever been attached with this pin directory?)"
    )]
    NotPinned {
        /// The missing pinned map.
        path: PathBuf,
    },

    /// The probed entry function cannot be located in this process.
    #[error("cannot locate sealbox_meter_entry in this process: {detail}")]
    EntryNotFound {
        /// Why.
        detail: String,
    },

    /// A BPF map operation failed.
    #[error("meter map {path}: {operation} failed: {detail}")]
    Map {
        /// The map's pin path.
        path: PathBuf,
        /// What was being done.
        operation: &'static str,
        /// The kernel's or loader's error.
        detail: String,
    },

    /// A file-system operation on the pin directory failed.
    #[error("{operation} {path}: {source}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// The OS error code somewhere in `error`'s source chain, if any.
pub(crate) fn os_code(error: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(code) = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
        {
            return Some(code);
        }
        current = e.source();
    }
    None
}

/// Whether `error` comes from the kernel refusing the operation for lack of privilege.
pub(crate) fn is_permission_error(error: &(dyn std::error::Error + 'static)) -> bool {
    matches!(os_code(error), Some(libc::EPERM) | Some(libc::EACCES))
}

/// Errors from the TLS handshake meter ([`TlsMeter`](crate::TlsMeter)) and
/// its helpers.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The process lacks capabilities the TLS meter needs, or the kernel
    /// refused an operation for lack of privilege.
    #[error(
        "the TLS meter needs root, or CAP_BPF + CAP_PERFMON + CAP_NET_ADMIN (or CAP_SYS_ADMIN): \
         {detail}"
    )]
    NotPermitted {
        /// The capabilities found missing (empty when the kernel refused
        /// although the capability mask looked sufficient).
        missing: Vec<&'static str>,
        /// What was missing or which operation the kernel refused.
        detail: String,
    },

    /// The configuration cannot work.
    #[error("invalid TLS meter configuration: {detail}")]
    Config {
        /// What is wrong and what would be accepted.
        detail: String,
    },

    /// The target is not a usable cgroup v2 directory.
    #[error("{path} is not a usable cgroup v2 directory: {reason}")]
    NotCgroup2 {
        /// The target path.
        path: PathBuf,
        /// Why not.
        reason: String,
    },

    /// A cgroup file-system operation (mkdir, moving a pid, rmdir) failed.
    #[error("{operation} {path}: {source}")]
    Cgroup {
        /// What was being done.
        operation: &'static str,
        /// The cgroup path or control file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// Loading the BPF object or one of its programs failed.
    #[error("loading the TLS meter's BPF programs failed: {detail}")]
    Load {
        /// The loader's error, including the verifier log when there is one.
        detail: String,
    },

    /// A program could not be attached to the target cgroup.
    #[error("attaching {program} to cgroup {cgroup} failed: {detail}")]
    Attach {
        /// The program (`tls_egress`, `tls_ingress`, `tls_connect4`, `tls_connect6`).
        program: &'static str,
        /// The target cgroup.
        cgroup: PathBuf,
        /// Why it failed.
        detail: String,
    },

    /// Another TLS meter (in this or another process) holds the pin directory.
    #[error(
        "another TLS meter (in this or another process) holds pin directory {pin_dir}; a second \
         one would write the same maps (stop it first, or use another pin directory)"
    )]
    Busy {
        /// The pin directory in use.
        pin_dir: PathBuf,
    },

    /// The pin directory holds the links of a meter attached to another target
    /// cgroup, or on another side (or server hook), than this attach asks for.
    /// Pinned links stay attached while no meter runs, so a pin directory
    /// serves one target and side until it is removed.
    #[error(
        "the TLS meter pinned in {pin_dir} is attached to {pinned}, and stays attached while no \
         meter runs; this attach asks for {requested}. Attach with that target and side, use \
         another pin directory, or remove the pinned meter first (TlsMeter::remove_pinned, what \
         an uninstall does: it stops its counting and enforcement and removes its totals)"
    )]
    PinnedElsewhere {
        /// The pin directory.
        pin_dir: PathBuf,
        /// What its pinned links are attached to: the cgroup id and the side.
        pinned: String,
        /// What the configuration asks for.
        requested: String,
    },

    /// A pinned link (`tls_*_link` in the pin directory) could not be opened,
    /// checked, detached or unpinned.
    #[error("TLS meter link {path}: {operation} failed: {source}")]
    PinnedLink {
        /// The link's pin path.
        path: PathBuf,
        /// What was being done.
        operation: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// The pinned ring buffer has another size than the configuration asks for.
    #[error(
        "the ring buffer pinned at {path} holds {found} bytes, the configuration asks for \
         {expected}: attach with ring_bytes = {found}, or read what it holds and remove it \
         (`rm {path}`; events still in it are then lost, and show up as a sequence gap)"
    )]
    RingSize {
        /// The pinned ring buffer.
        path: PathBuf,
        /// Its size in bytes.
        found: u32,
        /// The configured size in bytes.
        expected: u32,
    },

    /// A BPF map operation failed.
    #[error("TLS meter map {path}: {operation} failed: {detail}")]
    Map {
        /// The map's pin path (or name, for maps that are not pinned).
        path: PathBuf,
        /// What was being done.
        operation: &'static str,
        /// The kernel's or loader's error.
        detail: String,
    },

    /// Waiting for the ring buffer failed.
    #[error("polling the TLS event ring buffer: {source}")]
    Poll {
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// A ring buffer record is not a TLS event of this build's layout.
    #[error("malformed TLS event: {detail}")]
    BadEvent {
        /// What is wrong with it.
        detail: String,
    },

    /// Pin directory, bpffs, BTF and map-layout failures shared with the call
    /// meter ([`MeterError::BpffsNotMounted`], [`MeterError::StaleLayout`],
    /// [`MeterError::NotPinned`], [`MeterError::Io`], …).
    #[error(transparent)]
    Pins(#[from] MeterError),
}
