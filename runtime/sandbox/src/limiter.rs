//! Per-call resource limiter: enforces the program's memory limit and caps
//! tables, instances and memories of the store.

use wasmtime::ResourceLimiter;

use super::config::WASM_PAGE_BYTES;

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

/// Limits of one call's store.
pub(crate) struct GuestLimiter {
    pub(crate) memory_pages: u64,
    pub(crate) table_elements: usize,
}

impl ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let requested_pages = (desired as u64).div_ceil(WASM_PAGE_BYTES);
        if requested_pages > self.memory_pages {
            return Err(wasmtime::Error::new(MemoryLimitHit {
                limit_pages: self.memory_pages,
                requested_pages,
            }));
        }
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
        1
    }

    fn tables(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }
}
