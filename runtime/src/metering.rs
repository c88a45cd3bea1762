//! Kernel metering glue: attaching the eBPF call meter once per process and
//! naming each usage counter's kernel key.
//!
//! The runtime counts every admitted call in its journal *and* enters
//! [`sealbox_ebpf::meter_call`] right before the guest runs, where a uprobe
//! counts it again in a pinned BPF map that survives the runtime's death.
//! See `docs/METERING.md` for what the kernel count does and does not prove.

use std::path::Path;
use std::sync::Arc;

use sealbox_ebpf::{Meter, MeterError, MeterOptions, PinnedCounts};

use crate::journal::UsageKey;

/// The process's attached kernel meter.
pub type KernelMeter = Meter;

/// Why the kernel meter does not count a product.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MeterUnavailable {
    /// The customer turned it off.
    #[error("disabled with --no-kernel-meter")]
    Disabled,
    /// Attaching it, or registering the product's counter, failed.
    #[error(transparent)]
    Failed(Arc<MeterError>),
}

impl From<MeterError> for MeterUnavailable {
    fn from(e: MeterError) -> Self {
        MeterUnavailable::Failed(Arc::new(e))
    }
}

/// Attaches the kernel meter with `opts`; the error says what is missing
/// (privileges, bpffs, a stale pin…).
pub fn attach(opts: &MeterOptions) -> Result<Arc<KernelMeter>, MeterError> {
    let meter = Meter::attach(opts)?;
    if let Some(why) = meter.multi_refused() {
        // Counting is as exact either way; each call costs the kernel a little more.
        tracing::info!("kernel meter: no uprobe_multi link ({why}); using a perf-event uprobe");
    }
    Ok(Arc::new(meter))
}

/// The kernel counter key of a usage counter: distinct per deployment, buyer
/// (state directory), product, customer and signer, so two runtimes — or two
/// deployments of the registry — never count into each other's counters.
///
/// Keys of the earlier layout (product, customer and signer only, without
/// the deployment) are never derived again: counts pinned under them stay in
/// the map unread rather than being billed to whichever deployment runs next.
pub fn kernel_key(key: &UsageKey) -> u64 {
    let mut bytes = b"sealbox meter key v2".to_vec();
    bytes.extend_from_slice(&key.to_bytes());
    let digest = alloy::primitives::keccak256(bytes);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// One reading of a kernel counter: its count in the pinned map set named by
/// `epoch` (a new map set, after a reboot, counts from zero under a new epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelReading {
    /// The map set's epoch ([`Meter::epoch`]).
    pub epoch: u64,
    /// Calls counted in that map set.
    pub count: u64,
}

/// Reads `key`'s counter from the maps pinned under `pin_dir`, without
/// attaching a probe (status and settle commands).
pub fn read_pinned(pin_dir: &Path, key: u64) -> Result<KernelReading, MeterError> {
    let counts = PinnedCounts::open(pin_dir)?;
    Ok(KernelReading {
        epoch: counts.epoch(),
        count: counts.count(key)?,
    })
}

/// Reads `key`'s counter from the attached meter.
pub fn read_attached(meter: &KernelMeter, key: u64) -> Result<KernelReading, MeterError> {
    Ok(KernelReading {
        epoch: meter.epoch(),
        count: meter.count(key)?,
    })
}
