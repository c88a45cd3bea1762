//! Writes the committed seed corpora (`tests/fuzz/corpus/<target>/`) from the
//! project's fixtures: every `.wat` of `examples/wat/` and `tests/fixtures/`
//! sealed with the test keys as a plaintext module, co-signed, and encrypted
//! for two recipients; their manifests; their encryption entries; keystores
//! with small KDF parameters; counter files; tariff inputs.
//!
//! `cargo +nightly run --features gen --bin gen-corpus` (from `tests/fuzz`; scripts/fuzz
//! --gen-corpus). Encryption is randomised, so the encrypted seeds change each run.

use std::path::{Path, PathBuf};

use k256::PublicKey;
use k256::elliptic_curve::sec1::ToEncodedPoint;
use sealbox_fuzz::{COSIGNER, KEYSTORE_PASSWORD, OTHER_RECIPIENT, RECIPIENT, VENDOR, test_key};
use sealed_format::{Address, Metering, SealOptions, seal};

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = dir.join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let repo = root.join("../..");
    let out = root.join("corpus");
    let _ = std::fs::remove_dir_all(&out);

    let mut wats: Vec<PathBuf> = ["examples/wat", "tests/fixtures"]
        .iter()
        .flat_map(|d| std::fs::read_dir(repo.join(d)).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wat"))
        .collect();
    wats.sort();
    let recipients =
        [RECIPIENT, OTHER_RECIPIENT].map(|b| PublicKey::from(test_key(b).verifying_key()));
    for wat in &wats {
        let stem = wat.file_stem().unwrap().to_str().unwrap();
        let module = wat::parse_file(wat).unwrap();
        let mut opts = SealOptions::new(stem, "1.0.0", 31337, Address::repeat_byte(0x11));
        opts.metering = Metering::KernelPreferred;
        let exported = exported_funcs(&module);
        let variants: [(&str, &[u8], bool); 3] = [
            ("plain", &[], false),
            ("cosigned", &[COSIGNER], false),
            ("encrypted", &[COSIGNER], true),
        ];
        for (kind, cosigners, encrypted) in variants {
            let mut opts = opts.clone();
            if encrypted {
                opts.recipients = recipients.to_vec();
            }
            let cosign: Vec<_> = cosigners.iter().map(|&b| test_key(b)).collect();
            let sealed = seal(&module, &opts, test_key(VENDOR), &cosign).or_else(|_| {
                // No bytes-ABI entry: seal its numeric exports instead.
                opts.entry = Some(exported.clone());
                seal(&module, &opts, test_key(VENDOR), &cosign)
            });
            let sealed = match sealed {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("{stem} ({kind}): not sealed: {e}");
                    continue;
                }
            };
            let name = format!("{stem}.{kind}.wasm");
            for target in ["open_bytes", "sealed_mutate", "differential"] {
                write(&out, target, &name, &sealed);
            }
            let opened = sealed_format::open(&sealed).unwrap();
            write(
                &out,
                "manifest_json",
                &format!("{stem}.{kind}.json"),
                &opened.manifest_bytes,
            );
            if let Some(enc) = &opened.manifest.encryption {
                let ciphertext = payload_of(&sealed);
                for selector in [0u8, 1, 2] {
                    let mut input = opened.manifest.code_hash.to_vec();
                    input.extend_from_slice(&enc.nonce);
                    input.push(selector);
                    input.push(enc.recipients.len() as u8);
                    for r in &enc.recipients {
                        input.extend_from_slice(r.pubkey.to_encoded_point(true).as_bytes());
                        input.extend_from_slice(
                            r.ephemeral_pubkey.to_encoded_point(true).as_bytes(),
                        );
                        input.extend_from_slice(&r.wrapped_key);
                    }
                    input.extend_from_slice(&ciphertext);
                    write(
                        &out,
                        "ecies_unwrap",
                        &format!("{stem}.key{selector}.bin"),
                        &input,
                    );
                }
            }
        }
    }

    // Keystores: one written by the keyfile crate (scrypt), its KDF cut down
    // to n = 16 (a wrong password fails at the MAC whatever n is), and a PBKDF2 one.
    let dir = std::env::temp_dir().join(format!("sealbox-gen-corpus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("key.json");
    let _ = std::fs::remove_file(&path);
    let signer = sealbox_keyfile::PrivateKeySigner::from_slice(&[VENDOR; 32]).unwrap();
    sealbox_keyfile::write_keystore(&path, &signer, KEYSTORE_PASSWORD).unwrap();
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    json["crypto"]["kdfparams"]["n"] = 16.into();
    write(
        &out,
        "keystore",
        "scrypt.json",
        &serde_json::to_vec_pretty(&json).unwrap(),
    );
    let salt = json["crypto"]["kdfparams"]["salt"].clone();
    json["crypto"]["kdf"] = "pbkdf2".into();
    json["crypto"]["kdfparams"] =
        serde_json::json!({"c": 16, "dklen": 32, "prf": "hmac-sha256", "salt": salt});
    write(
        &out,
        "keystore",
        "pbkdf2.json",
        &serde_json::to_vec(&json).unwrap(),
    );
    let _ = std::fs::remove_dir_all(&dir);

    // Counter files: a counted one, a fresh (all-zero) one, one cut short, a foreign one.
    let mut counted = b"SBXUSE01".to_vec();
    counted.extend_from_slice(&1234u64.to_le_bytes());
    write(&out, "counter_read", "counted", &counted);
    write(&out, "counter_read", "fresh", &[0; 16]);
    write(&out, "counter_read", "cut-short", &[0; 7]);
    write(&out, "counter_read", "foreign", b"SQLite format 3\0");

    // Tariff inputs are decoded by `arbitrary`: any bytes are an input.
    for (i, len) in [16usize, 64, 256].into_iter().enumerate() {
        let bytes: Vec<u8> = (0..len).map(|j| (j * 37 + i) as u8).collect();
        write(&out, "tariff_decode", &format!("seed{i}"), &bytes);
    }
    eprintln!("wrote {}", out.display());
}

/// The payload of the `sealbox.payload` section (the last one).
fn payload_of(sealed: &[u8]) -> Vec<u8> {
    let sections = sealbox_fuzz::sections(sealed).unwrap();
    let last = sections.last().unwrap();
    let (_, payload) = sealbox_fuzz::custom_parts(&sealed[last.contents.clone()]).unwrap();
    payload.to_vec()
}

/// Every exported function of a module.
fn exported_funcs(module: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(module) {
        if let Ok(wasmparser::Payload::ExportSection(reader)) = payload {
            for export in reader.into_iter().flatten() {
                if export.kind == wasmparser::ExternalKind::Func && export.name != "sealbox_alloc" {
                    out.push(export.name.to_string());
                }
            }
        }
    }
    out
}
