//! The customer's sandbox configuration, the vendor's per-program limits and
//! how the two combine.

use std::path::PathBuf;
use std::time::Duration;

use super::error::SandboxError;

/// Size of a WebAssembly page.
pub const WASM_PAGE_BYTES: u64 = 64 * 1024;

/// Default location of the compiled-module cache.
pub const DEFAULT_CACHE_DIR: &str = "/var/cache/sealbox/modules";

/// The customer's configuration of the sandbox: hard caps that no manifest
/// can raise, plus pool sizes and the cache location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxConfig {
    /// Directory of the authenticated compiled-module cache; `None` disables
    /// the disk cache (every load compiles).
    pub cache_dir: Option<PathBuf>,
    /// Cap on a guest's linear memory, in 64 KiB pages (also the size of a
    /// pooled memory slot). At most 65536 (4 GiB).
    pub max_memory_pages: u64,
    /// Meter fuel (deterministic instruction budgets). When off, the
    /// manifest's `fuel` is not enforced and only the wall-clock deadline
    /// bounds a call; guests run faster (see `benches/instantiate.rs`:
    /// fuel cost 0..45% on a byte-processing loop and 2.5-3.5x on a tight
    /// arithmetic loop, on a busy 2-core machine).
    pub consume_fuel: bool,
    /// Cap on the fuel (roughly: WebAssembly instructions) of one call.
    pub max_fuel: u64,
    /// Cap on the wall-clock time of one call, in milliseconds.
    pub max_deadline_ms: u64,
    /// Largest input accepted by `call_bytes`.
    pub max_input_bytes: usize,
    /// Largest output accepted from a guest.
    pub max_output_bytes: usize,
    /// Cap on a guest table's elements.
    pub max_table_elements: usize,
    /// Pooled instance slots = the most calls that can run at the same time.
    pub pool_instances: u32,
    /// Period of the epoch ticker that enforces deadlines; a deadline is
    /// enforced within one tick.
    pub epoch_tick: Duration,
    /// Bytes of each pooled linear memory kept resident between calls and
    /// reset with `memset` instead of being returned to the kernel with
    /// `madvise`. With a fresh instance per call, `madvise` means a TLB
    /// shootdown on every call and page faults on the next one, which keeping
    /// the first MiB resident avoids for small guests (at most
    /// `pool_instances` × this in RSS).
    pub keep_resident_bytes: usize,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            cache_dir: Some(PathBuf::from(DEFAULT_CACHE_DIR)),
            max_memory_pages: 4096, // 256 MiB
            consume_fuel: true,
            max_fuel: 10_000_000_000,
            max_deadline_ms: 10_000,
            max_input_bytes: 16 << 20,
            max_output_bytes: 16 << 20,
            max_table_elements: 20_000,
            pool_instances: 64,
            epoch_tick: Duration::from_millis(5),
            keep_resident_bytes: 1 << 20,
        }
    }
}

impl SandboxConfig {
    /// Checks every value is in range; errors name the field.
    pub(crate) fn validate(&self) -> Result<(), SandboxError> {
        let bad = |msg: String| Err(SandboxError::Config(msg));
        if self.max_memory_pages == 0 || self.max_memory_pages > 65536 {
            return bad(format!(
                "max_memory_pages is {}, must be between 1 and 65536 (4 GiB)",
                self.max_memory_pages
            ));
        }
        if self.max_fuel == 0 {
            return bad("max_fuel must be at least 1".into());
        }
        if self.max_deadline_ms == 0 {
            return bad("max_deadline_ms must be at least 1".into());
        }
        for (name, v) in [
            ("max_input_bytes", self.max_input_bytes),
            ("max_output_bytes", self.max_output_bytes),
        ] {
            if v > i32::MAX as usize {
                return bad(format!(
                    "{name} is {v}, must fit a 32-bit guest pointer (at most {})",
                    i32::MAX
                ));
            }
        }
        if self.max_table_elements == 0 {
            return bad("max_table_elements must be at least 1".into());
        }
        if self.pool_instances == 0 {
            return bad("pool_instances must be at least 1".into());
        }
        if self.epoch_tick.is_zero() || self.epoch_tick > Duration::from_secs(1) {
            return bad(format!(
                "epoch_tick is {:?}, must be between 1 ns and 1 s",
                self.epoch_tick
            ));
        }
        Ok(())
    }

    /// Combines a manifest's limits with this config's caps.
    pub(crate) fn resolve(&self, limits: &GuestLimits) -> Result<EffectiveLimits, SandboxError> {
        fn capped(field: &'static str, asked: Option<u64>, cap: u64) -> Result<u64, SandboxError> {
            match asked {
                Some(0) => Err(SandboxError::InvalidLimit {
                    field,
                    reason: "0 would make every call fail; omit it to use the customer's cap"
                        .into(),
                }),
                Some(v) if v > cap => {
                    tracing::info!(
                        field,
                        asked = v,
                        cap,
                        "manifest limit capped by sandbox config"
                    );
                    Ok(cap)
                }
                Some(v) => Ok(v),
                None => Ok(cap),
            }
        }
        let fuel = capped("fuel", limits.fuel, self.max_fuel)?;
        if !self.consume_fuel && limits.fuel.is_some() {
            tracing::info!(
                fuel,
                "fuel metering is off in the sandbox config: the manifest's fuel limit is not \
                 enforced, the deadline still is"
            );
        }
        Ok(EffectiveLimits {
            memory_pages: capped(
                "max_memory_pages",
                limits.max_memory_pages,
                self.max_memory_pages,
            )?,
            fuel: self.consume_fuel.then_some(fuel),
            deadline_ms: capped("deadline_ms", limits.deadline_ms, self.max_deadline_ms)?,
        })
    }
}

/// Per-program limits declared by the vendor in the manifest; each is
/// optional and capped by the [`SandboxConfig`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestLimits {
    /// Most linear memory the guest may use, in 64 KiB pages.
    pub max_memory_pages: Option<u64>,
    /// Fuel per call.
    pub fuel: Option<u64>,
    /// Wall-clock deadline per call, in milliseconds.
    pub deadline_ms: Option<u64>,
}

/// The limits a program's calls actually run under: the manifest's values
/// capped by the customer's config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EffectiveLimits {
    /// Memory limit in 64 KiB pages.
    pub memory_pages: u64,
    /// Fuel per call; `None` when the config turned fuel metering off.
    pub fuel: Option<u64>,
    /// Deadline per call in milliseconds.
    pub deadline_ms: u64,
}
