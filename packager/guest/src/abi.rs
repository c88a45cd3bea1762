//! Moving bytes across the ABI v1 boundary: reading the input the host wrote and
//! packing the output's address and length into the entry's `i64` result.

#[cfg(target_arch = "wasm32")]
use alloc::vec::Vec;

/// Packs an output's address and length the way ABI v1 entries return them:
/// `(ptr << 32) | len`.
pub const fn pack(ptr: u32, len: u32) -> u64 {
    ((ptr as u64) << 32) | len as u64
}

/// The input bytes the host wrote at `ptr`.
///
/// # Safety
///
/// `ptr..ptr + len` must be initialised memory that nothing mutates while the
/// returned slice lives (under ABI v1: the block `sealbox_alloc(len)` returned,
/// filled by the host). `ptr` may be anything when `len` is 0.
pub unsafe fn input<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if len == 0 {
        return &[];
    }
    // SAFETY: the caller guarantees `ptr..ptr + len` is initialised and unaliased.
    unsafe { core::slice::from_raw_parts(ptr, len) }
}

/// Hands `out` to the host: the bytes stay where they are until the next
/// `sealbox_alloc`, and the packed `(ptr << 32) | len` tells the host where.
#[cfg(target_arch = "wasm32")]
pub fn output(out: Vec<u8>) -> u64 {
    #[cfg(feature = "no-std")]
    let (ptr, len) = crate::bare::keep_output(out);
    #[cfg(not(feature = "no-std"))]
    let (ptr, len) = crate::hosted::keep_output(out);
    // wasm32 addresses and lengths are 32 bits wide, so the casts are exact.
    pack(ptr as u32, len as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_puts_the_address_in_the_high_half_and_the_length_in_the_low_half() {
        assert_eq!(pack(0x0001_2340, 5), 0x0001_2340_0000_0005);
        assert_eq!(pack(0xffff_fff0, 0xffff_ffff), 0xffff_fff0_ffff_ffff);
        assert_eq!(pack(0, 0), 0);
    }

    #[test]
    fn empty_input_never_touches_the_pointer() {
        // SAFETY: len 0 does not dereference the (null) pointer.
        let bytes = unsafe { input(core::ptr::null(), 0) };
        assert!(bytes.is_empty());
    }

    #[test]
    fn input_views_the_bytes_at_the_pointer() {
        let data = *b"hello";
        // SAFETY: `data` outlives the slice and is not mutated.
        let bytes = unsafe { input(data.as_ptr(), 3) };
        assert_eq!(bytes, b"hel");
    }
}
