//! A bump arena: blocks are handed out one after the other and freed all at once.
//!
//! The arithmetic is kept apart from linear memory (the caller supplies a `fit`
//! callback that makes room up to an address) so it can be tested on the host.

/// Size of a WebAssembly page in bytes.
pub const PAGE: u64 = 65_536;

/// A bump arena over the addresses from a base upwards.
///
/// `alloc` places a block after the previous one; `dealloc` and `realloc` of the
/// most recent block shrink or grow it in place (so a growing `Vec` does not leave
/// copies behind); any other `dealloc` is a no-op; `reset` frees everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arena {
    /// First address after the last block.
    next: usize,
    /// Start of the most recent block (equal to `next` when there is none).
    last: usize,
}

impl Arena {
    /// An arena whose first block will start at `base` (rounded up to its alignment).
    pub const fn new(base: usize) -> Self {
        Self {
            next: base,
            last: base,
        }
    }

    /// Frees every block: the next one starts at `base` again.
    pub fn reset(&mut self, base: usize) {
        *self = Self::new(base);
    }

    /// First address after the last block.
    pub fn top(&self) -> usize {
        self.next
    }

    /// Places a block of `size` bytes aligned to `align` (a power of two) and
    /// returns its address, or `None` when the address space is exhausted or
    /// `fit(end)` cannot make the memory reach `end`.
    pub fn alloc(
        &mut self,
        size: usize,
        align: usize,
        fit: impl FnOnce(usize) -> bool,
    ) -> Option<usize> {
        let start = self.next.checked_add(align - 1)? & !(align - 1);
        let end = start.checked_add(size)?;
        if !fit(end) {
            return None;
        }
        self.last = start;
        self.next = end;
        Some(start)
    }

    /// Frees the block at `ptr` if it is the most recent one; otherwise its bytes
    /// stay until `reset`.
    pub fn dealloc(&mut self, ptr: usize) {
        if ptr == self.last {
            self.next = ptr;
        }
    }

    /// Resizes the most recent block in place and returns `Some(ptr)`; returns
    /// `None` when `ptr` is not the most recent block or memory cannot reach the
    /// new end (the caller then allocates anew and copies).
    pub fn resize_last(
        &mut self,
        ptr: usize,
        new_size: usize,
        fit: impl FnOnce(usize) -> bool,
    ) -> Option<usize> {
        if ptr != self.last {
            return None;
        }
        let end = ptr.checked_add(new_size)?;
        if !fit(end) {
            return None;
        }
        self.next = end;
        Some(ptr)
    }
}

/// How many pages memory of `current_pages` pages must grow by so that address
/// `end` (exclusive) is inside it; 0 when it already is.
pub fn pages_to_grow(end: usize, current_pages: usize) -> u64 {
    let have = current_pages as u64 * PAGE;
    (end as u64).saturating_sub(have).div_ceil(PAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roomy(_: usize) -> bool {
        true
    }

    #[test]
    fn blocks_follow_each_other_and_respect_alignment() {
        let mut a = Arena::new(1001);
        // 1001 rounded up to 8 is 1008.
        assert_eq!(a.alloc(10, 8, roomy), Some(1008));
        assert_eq!(a.top(), 1018);
        // 1018 rounded up to 4 is 1020.
        assert_eq!(a.alloc(3, 4, roomy), Some(1020));
        assert_eq!(a.alloc(1, 1, roomy), Some(1023));
        assert_eq!(a.top(), 1024);
    }

    #[test]
    fn reset_frees_everything() {
        let mut a = Arena::new(64);
        a.alloc(500, 8, roomy).unwrap();
        a.reset(64);
        assert_eq!(a.alloc(1, 8, roomy), Some(64));
    }

    #[test]
    fn a_block_that_memory_cannot_hold_is_refused_and_changes_nothing() {
        let mut a = Arena::new(0);
        a.alloc(16, 8, roomy).unwrap();
        let before = a.clone();
        assert_eq!(a.alloc(100, 8, |end| end <= 64), None);
        assert_eq!(a, before);
        // The check sees the block's end: 16 + 48 = 64 fits exactly.
        assert_eq!(a.alloc(48, 8, |end| end <= 64), Some(16));
    }

    #[test]
    fn address_space_overflow_is_refused() {
        let mut a = Arena::new(usize::MAX - 4);
        assert_eq!(a.alloc(1, 8, roomy), None);
        let mut b = Arena::new(16);
        assert_eq!(b.alloc(usize::MAX, 1, roomy), None);
    }

    #[test]
    fn the_last_block_grows_and_shrinks_in_place() {
        let mut a = Arena::new(0);
        let first = a.alloc(8, 8, roomy).unwrap();
        let last = a.alloc(8, 8, roomy).unwrap();
        assert_eq!(a.resize_last(last, 100, roomy), Some(last));
        assert_eq!(a.top(), last + 100);
        // An older block cannot be resized in place.
        assert_eq!(a.resize_last(first, 100, roomy), None);
        assert_eq!(a.resize_last(last, 4, roomy), Some(last));
        assert_eq!(a.top(), last + 4);
    }

    #[test]
    fn only_the_last_block_is_given_back_by_dealloc() {
        let mut a = Arena::new(0);
        let first = a.alloc(8, 8, roomy).unwrap();
        let last = a.alloc(8, 8, roomy).unwrap();
        a.dealloc(first);
        assert_eq!(a.top(), 16);
        a.dealloc(last);
        assert_eq!(a.top(), 8);
    }

    #[test]
    fn pages_to_grow_rounds_up_to_whole_pages() {
        // 2 pages hold addresses below 131072.
        assert_eq!(pages_to_grow(131_072, 2), 0);
        assert_eq!(pages_to_grow(131_073, 2), 1);
        assert_eq!(pages_to_grow(131_072 + 65_536 * 3, 2), 3);
        assert_eq!(pages_to_grow(10, 0), 1);
    }
}
