//! `sealed_format::open` then `Opened::plaintext` (no key, both recipients, a
//! stranger) on arbitrary bytes: no panic, and whatever is accepted keeps the
//! promises of `sealbox_fuzz::check_open`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sealbox_fuzz::check_open(data);
});
