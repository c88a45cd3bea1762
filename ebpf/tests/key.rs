//! Meter keys agree with an independent keccak256 (Foundry's `cast keccak`).

use sealbox_ebpf::meter_key;

fn inputs() -> ([u8; 32], [u8; 20], [u8; 20]) {
    let mut product = [0u8; 32];
    for (i, b) in product.iter_mut().enumerate() {
        *b = i as u8 + 1;
    }
    (product, [0x22; 20], [0x33; 20])
}

#[test]
fn key_is_the_first_8_bytes_big_endian_of_keccak_of_the_packed_triple() {
    // cast keccak 0x0102…1f20 ‖ 22×20 ‖ 33×20
    //   = 0x8ce6ee08b63f1d80e9c2acb6bc29a42ed346dbeb18629746b22a707ba1db88b1
    let (product, customer, signer) = inputs();
    assert_eq!(
        meter_key(&product, &customer, &signer),
        0x8ce6_ee08_b63f_1d80
    );
}

#[test]
fn customer_and_signer_are_not_interchangeable() {
    // cast keccak 0x0102…1f20 ‖ 33×20 ‖ 22×20 = 0x6b7ea5d9d12eae5c…
    let (product, customer, signer) = inputs();
    assert_eq!(
        meter_key(&product, &signer, &customer),
        0x6b7e_a5d9_d12e_ae5c
    );
}
