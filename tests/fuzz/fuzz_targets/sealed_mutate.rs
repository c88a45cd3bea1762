//! Real sealed files (plaintext, encrypted, co-signed) mutated section by
//! section — bytes flipped inside a section, sections resized, removed,
//! duplicated, swapped, spliced between files, manifest fields edited — and
//! mostly re-signed with the test keys, so that mutations reach the manifest,
//! layout, decryption and code-hash checks behind the signature.
#![no_main]

use libfuzzer_sys::{fuzz_crossover, fuzz_mutator, fuzz_target};

fuzz_target!(|data: &[u8]| {
    let _ = sealbox_fuzz::check_open(data);
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    sealbox_fuzz::mutate_sealed(data, size, max_size, seed, |d, s, m| {
        libfuzzer_sys::fuzzer_mutate(d, s, m)
    })
});

fuzz_crossover!(|a: &[u8], b: &[u8], out: &mut [u8], seed: u32| {
    sealbox_fuzz::crossover_sealed(a, b, out, seed)
});
