//! The bound on calls in flight: `pool_instances`, whatever the kind of
//! guest. The pooling allocator's own totals are sized for component calls
//! (several core instances each), so they alone would let many more module
//! calls run at once than the config says.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use super::error::CallError;

/// Counts the calls in flight against the configured maximum.
#[derive(Debug)]
pub(crate) struct CallSlots {
    in_flight: AtomicU32,
    max: u32,
}

impl CallSlots {
    pub(crate) fn new(max: u32) -> Arc<Self> {
        Arc::new(CallSlots {
            in_flight: AtomicU32::new(0),
            max,
        })
    }

    /// Takes a slot for one call, or fails at once when all are taken.
    pub(crate) fn take(self: &Arc<Self>) -> Result<CallSlot, CallError> {
        self.in_flight
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |n| {
                (n < self.max).then_some(n + 1)
            })
            .map_err(|_| {
                CallError::PoolExhausted(format!(
                    "{} calls are in flight, the most `pool_instances` allows",
                    self.max
                ))
            })?;
        Ok(CallSlot(Arc::clone(self)))
    }
}

/// One call's slot; freed when the call's store is dropped.
#[derive(Debug)]
pub(crate) struct CallSlot(Arc<CallSlots>);

impl Drop for CallSlot {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Release);
    }
}
