//! `Manifest::from_json` on arbitrary bytes: no panic, and an accepted
//! manifest validates, serializes, and parses back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealed_format::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = Manifest::from_json(data) {
        manifest
            .validate()
            .expect("from_json accepted an invalid manifest");
        let json = manifest.to_json().expect("an accepted manifest serializes");
        assert_eq!(Manifest::from_json(&json).expect("re-parses"), manifest);
    }
});
