//! [`TlsEvents`]: the consumer end of the event ring buffer, in batches,
//! blocking with a timeout or driven by an async runtime through its fd.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use aya::maps::{Map, MapData, RingBuf};

use crate::layout::{open_pinned, pin_path, to_map};
use crate::tls::maps::{EVENTS, validate_pins};
use crate::{MeterError, TlsError, TlsEvent};

/// Reads counted handshakes from the ring buffer.
///
/// The ring buffer is pinned, and so is its read position: events the kernel
/// wrote while no one read stay there for the next reader (a restarted
/// consumer), up to the buffer's size; what did not fit is counted in
/// [`TlsStats::dropped`](crate::TlsStats::dropped). Use one reader per ring
/// buffer at a time: two would each see part of the events.
///
/// An event leaves the ring buffer as soon as a batch returns it, so a
/// consumer that crashes before recording a batch has lost those events from
/// the ring buffer; their sequence numbers tell it how many (the tenant's
/// total minus the last `seq` it recorded).
///
/// For an async runtime: the reader is [`AsRawFd`], and the fd is readable
/// when events are waiting, so `tokio::io::unix::AsyncFd::new(reader)` works:
/// await `readable()`, call [`TlsEvents::drain`], then `clear_ready()` when it
/// returned fewer than asked for.
pub struct TlsEvents {
    ring: RingBuf<MapData>,
    malformed: u64,
}

impl std::fmt::Debug for TlsEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsEvents")
            .field("fd", &self.ring.as_raw_fd())
            .field("malformed", &self.malformed)
            .finish()
    }
}

impl TlsEvents {
    /// Wraps the ring buffer map.
    pub(crate) fn new(path: &Path, map: Map) -> Result<Self, TlsError> {
        let ring = RingBuf::try_from(map).map_err(|e| TlsError::Map {
            path: path.to_owned(),
            operation: "opening the ring buffer",
            detail: e.to_string(),
        })?;
        Ok(Self { ring, malformed: 0 })
    }

    /// Opens the ring buffer pinned in `pin_dir` (by a meter attached in this
    /// or another process), after checking the pinned maps' layout.
    pub fn open(pin_dir: &Path) -> Result<Self, TlsError> {
        validate_pins(pin_dir, None)?;
        let path = pin_path(pin_dir, EVENTS);
        let data = open_pinned(&path)?.ok_or(MeterError::NotPinned { path: path.clone() })?;
        Self::new(&path, to_map(&path, data)?)
    }

    /// Takes up to `max` events that are waiting, without blocking (an empty
    /// batch when there are none).
    pub fn drain(&mut self, max: usize) -> Vec<TlsEvent> {
        let mut batch = Vec::new();
        while batch.len() < max {
            let Some(item) = self.ring.next() else {
                break;
            };
            match TlsEvent::decode(&item) {
                Ok(event) => batch.push(event),
                Err(_) => self.malformed += 1,
            }
        }
        batch
    }

    /// Takes up to `max` events, waiting up to `timeout` for the first one:
    /// an empty batch means none came in time.
    pub fn read_batch(&mut self, max: usize, timeout: Duration) -> Result<Vec<TlsEvent>, TlsError> {
        let deadline = Instant::now() + timeout;
        loop {
            let batch = self.drain(max);
            if !batch.is_empty() || max == 0 {
                return Ok(batch);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.wait(left)? {
                return Ok(self.drain(max));
            }
        }
    }

    /// Waits until the ring buffer has data or `timeout` passes; true when it
    /// has data.
    pub fn wait(&self, timeout: Duration) -> Result<bool, TlsError> {
        let mut pfd = libc::pollfd {
            fd: self.ring.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(timeout.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
        loop {
            // SAFETY: one valid pollfd for the duration of the call.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            if rc >= 0 {
                return Ok(rc > 0);
            }
            let source = std::io::Error::last_os_error();
            if source.kind() != std::io::ErrorKind::Interrupted {
                return Err(TlsError::Poll { source });
            }
        }
    }

    /// Records that could not be decoded as events (none unless the BPF
    /// object and this crate disagree on the layout), skipped since this
    /// reader was made.
    pub fn malformed(&self) -> u64 {
        self.malformed
    }
}

impl AsFd for TlsEvents {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.ring.as_fd()
    }
}

impl AsRawFd for TlsEvents {
    fn as_raw_fd(&self) -> RawFd {
        self.ring.as_raw_fd()
    }
}
