//! Per-call resource limiter: enforces the program's memory limit and caps
//! tables, instances and memories of the store.

use wasmtime::ResourceLimiter;

use super::config::WASM_PAGE_BYTES;
use super::slots::CallSlot;

/// Raised (as a trap-like error) when the guest grows memory past its limit.
///
/// Growth past the limit ends the call instead of making `memory.grow`
/// return -1: a guest that ignores -1 and loops would otherwise burn its
/// whole deadline, and the customer gets a precise message either way.
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {limit_pages} pages exceeded (asked for {requested_pages})")]
pub(crate) struct MemoryLimitHit {
    pub(crate) limit_pages: u64,
    pub(crate) requested_pages: u64,
}

/// Limits of one call's store. The memory limit holds for all the store's
/// memories together (a component may have several).
pub(crate) struct GuestLimiter {
    pub(crate) memory_pages: u64,
    pub(crate) table_elements: usize,
    /// Most core instances, tables and memories in the store: 1 each for a
    /// core module, more for a component.
    pub(crate) counts: StoreCounts,
    /// Bytes of linear memory the store's memories hold together.
    used_bytes: u64,
    /// The call's slot among `pool_instances`, freed with the store.
    _slot: CallSlot,
}

/// How many core instances, tables and memories one store may hold.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StoreCounts {
    pub(crate) instances: usize,
    pub(crate) tables: usize,
    pub(crate) memories: usize,
}

impl StoreCounts {
    /// A core module: one instance, at most one table and one memory.
    pub(crate) const MODULE: StoreCounts = StoreCounts {
        instances: 1,
        tables: 1,
        memories: 1,
    };
}

impl GuestLimiter {
    pub(crate) fn new(
        memory_pages: u64,
        table_elements: usize,
        counts: StoreCounts,
        slot: CallSlot,
    ) -> Self {
        GuestLimiter {
            memory_pages,
            table_elements,
            counts,
            used_bytes: 0,
            _slot: slot,
        }
    }
}

impl ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = (self.used_bytes + desired as u64).saturating_sub(current as u64);
        let requested_pages = total.div_ceil(WASM_PAGE_BYTES);
        if requested_pages > self.memory_pages {
            return Err(wasmtime::Error::new(MemoryLimitHit {
                limit_pages: self.memory_pages,
                requested_pages,
            }));
        }
        self.used_bytes = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.table_elements)
    }

    fn instances(&self) -> usize {
        self.counts.instances
    }

    fn tables(&self) -> usize {
        self.counts.tables
    }

    fn memories(&self) -> usize {
        self.counts.memories
    }
}
