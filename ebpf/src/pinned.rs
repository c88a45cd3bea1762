//! Reading the pinned counts without attaching a probe (status commands,
//! settlement after a crash).

use std::path::Path;

use crate::MeterError;
use crate::layout::CounterMaps;

/// Read-only view of the meter maps pinned in a directory.
#[derive(Debug)]
pub struct PinnedCounts {
    maps: CounterMaps,
}

impl PinnedCounts {
    /// Opens the maps pinned in `pin_dir` after checking their layout.
    /// Fails with [`MeterError::NotPinned`] when no meter ever pinned there.
    pub fn open(pin_dir: &Path) -> Result<Self, MeterError> {
        Ok(Self {
            maps: CounterMaps::open_pinned(pin_dir)?,
        })
    }

    /// Calls counted for `key`, summed over the CPUs (0 when the key was never registered).
    pub fn count(&self, key: u64) -> Result<u64, MeterError> {
        self.maps.count(key)
    }

    /// Hits that could not be counted (a slot out of range; see [`Meter::dropped`](crate::Meter::dropped)).
    pub fn dropped(&self) -> Result<u64, MeterError> {
        self.maps.dropped()
    }

    /// Capacity of the counter map in keys.
    pub fn capacity(&self) -> u32 {
        self.maps.capacity()
    }

    /// The maps' epoch, see [`Meter::epoch`](crate::Meter::epoch).
    pub fn epoch(&self) -> u64 {
        self.maps.epoch()
    }
}

/// The count of `key` in the maps pinned in `pin_dir`, without attaching.
pub fn read_pinned_count(pin_dir: &Path, key: u64) -> Result<u64, MeterError> {
    PinnedCounts::open(pin_dir)?.count(key)
}
