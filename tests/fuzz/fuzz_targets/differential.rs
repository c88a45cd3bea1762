//! The differential target, on the same structure-aware mutations as
//! `sealed_mutate`: whatever `open` + `plaintext` accept, `wasmparser`
//! validates, and sealing it again with the same options and keys round-trips
//! (same manifest, same code; the same bytes for a canonical plaintext module).
#![no_main]

use libfuzzer_sys::{fuzz_crossover, fuzz_mutator, fuzz_target};

fuzz_target!(|data: &[u8]| {
    if let Some((opened, Some(module))) = sealbox_fuzz::check_open(data) {
        sealbox_fuzz::check_reseal(data, &opened, &module);
    }
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    sealbox_fuzz::mutate_sealed(data, size, max_size, seed, |d, s, m| {
        libfuzzer_sys::fuzzer_mutate(d, s, m)
    })
});

fuzz_crossover!(|a: &[u8], b: &[u8], out: &mut [u8], seed: u32| {
    sealbox_fuzz::crossover_sealed(a, b, out, seed)
});
