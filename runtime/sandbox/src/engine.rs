//! The process-wide wasmtime engine and the epoch ticker that enforces
//! wall-clock deadlines.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::config::{SandboxConfig, WASM_PAGE_BYTES};
use super::error::SandboxError;

/// Bytes of each pooled table reset in place between calls (see
/// [`SandboxConfig::keep_resident_bytes`] for memories).
const TABLE_KEEP_RESIDENT_BYTES: usize = 64 * 1024;

/// Builds the engine: pooling allocator sized from the config, epoch
/// interruption always on, fuel metering unless the config turns it off.
///
/// The two meters answer different questions. Epochs bound wall-clock time,
/// which is what keeps the customer's server up (including time lost to a
/// busy machine); they are always on. Fuel is deterministic: a call that
/// fits its fuel fits it on any machine and under any load, which is what a
/// vendor can promise in a manifest; it costs more (a counter update per
/// basic block), so a customer may trade it for speed.
pub(crate) fn build_engine(cfg: &SandboxConfig) -> Result<Engine, SandboxError> {
    let mut pool = PoolingAllocationConfig::new();
    let slots = cfg.pool_instances;
    let max_memory_bytes = usize::try_from(cfg.max_memory_pages * WASM_PAGE_BYTES)
        .map_err(|_| SandboxError::Config("max_memory_pages does not fit this machine".into()))?;
    // A component call holds several core instances, memories and tables at
    // once (componentize-py's output about a dozen instances): the pool has
    // room for `slots` calls of either kind.
    let counts = crate::component::COMPONENT_COUNTS;
    let per_slot = |n: usize| slots.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX));
    pool.total_component_instances(slots)
        .total_core_instances(per_slot(counts.instances))
        .total_memories(per_slot(counts.memories))
        .total_tables(per_slot(counts.tables))
        .max_core_instances_per_component(per_slot(1).min(counts.instances as u32))
        .max_memories_per_component(counts.memories as u32)
        .max_tables_per_component(counts.tables as u32)
        .max_memories_per_module(1)
        .max_tables_per_module(1)
        .max_memory_size(max_memory_bytes)
        .table_elements(cfg.max_table_elements)
        .linear_memory_keep_resident(cfg.keep_resident_bytes)
        // Likewise for tables (a component's core module usually has one):
        // reset with `memset`, not returned with `madvise`, up to 64 KiB.
        .table_keep_resident(TABLE_KEEP_RESIDENT_BYTES);

    let mut config = Config::new();
    config
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .consume_fuel(cfg.consume_fuel)
        .wasm_component_model(true)
        .epoch_interruption(true);
    Engine::new(&config).map_err(|e| SandboxError::Engine(format!("{e:#}")))
}

/// SHA-256 over everything that makes a compiled artifact valid for this
/// engine (target, compiler flags, tunables, features, wasmtime version).
pub(crate) fn engine_fingerprint(engine: &Engine) -> [u8; 32] {
    use std::hash::Hash;
    let mut hasher = Sha256Hasher(Sha256::new());
    hasher.0.update(b"sealbox.engine-fingerprint.v1");
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.0.finalize().into()
}

/// Feeds `Hash` output into SHA-256 (std's hashers are not stable or
/// collision resistant).
struct Sha256Hasher(Sha256);

impl std::hash::Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().unwrap_or([0; 8]))
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// Background thread that advances the engine's epoch every tick; stopped
/// and joined on drop.
pub(crate) struct EpochTicker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    /// Starts the ticker thread.
    pub(crate) fn start(engine: &Engine, tick: Duration) -> Result<EpochTicker, SandboxError> {
        let (stop, stopped) = mpsc::channel::<()>();
        let engine = engine.clone();
        let thread = std::thread::Builder::new()
            .name("sealbox-epoch".into())
            .spawn(move || {
                // Ends when the sender is dropped (Disconnected).
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                    engine.increment_epoch();
                }
            })
            .map_err(|e| SandboxError::Engine(format!("cannot start the epoch ticker: {e}")))?;
        Ok(EpochTicker {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Epoch ticks to give a call so that it gets at least `deadline_ms`: the
/// first tick may come right after the deadline is set, hence the extra one.
pub(crate) fn deadline_ticks(deadline_ms: u64, tick: Duration) -> u64 {
    let tick_ns = tick.as_nanos().max(1);
    let deadline_ns = u128::from(deadline_ms) * 1_000_000;
    let ticks = deadline_ns.div_ceil(tick_ns) + 1;
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_rounds_up_and_adds_a_tick() {
        let tick = Duration::from_millis(5);
        assert_eq!(deadline_ticks(10, tick), 3);
        assert_eq!(deadline_ticks(11, tick), 4);
        assert_eq!(deadline_ticks(1, tick), 2);
    }
}
