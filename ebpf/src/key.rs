//! Meter keys: which counter a call goes to.

use sha3::{Digest, Keccak256};

/// The meter key of a (product, customer, signer) triple: the first 8 bytes,
/// big-endian, of `keccak256(productId ‖ customer ‖ signer)` (72 bytes, packed).
///
/// Keying by all three keeps the kernel counter aligned with what settles on
/// chain: each authorised signer of a customer has its own cumulative counter
/// per product. `u64::MAX` is reserved for the meter's self-test (a 2⁻⁶⁴ chance).
pub fn meter_key(product_id: &[u8; 32], customer: &[u8; 20], signer: &[u8; 20]) -> u64 {
    let mut hasher = Keccak256::new();
    hasher.update(product_id);
    hasher.update(customer);
    hasher.update(signer);
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}
