//! The real `packager` binary end to end: keys, seal, inspect, verify, and every refusal
//! with its exit code.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use wasm_encoder::Section;

use common::{assert_exit, assert_ok, assert_ok_says, command, key_info, ok_json, packager};

const ECHO_WAT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../sealed-format/tests/fixtures/echo.wat"
);
const REGISTRY: &str = "0x4242424242424242424242424242424242424242";

/// `keygen --out NAME --raw` in `dir`, which must succeed; returns `(address, pubkey)`.
fn raw_key(dir: &Path, name: &str) -> (String, String) {
    key_info(&packager(dir, &["keygen", "--out", name, "--raw"]))
}

/// `seal ECHO_WAT` with `key` into `out`, for the fixed name, version, chain and registry.
fn seal_args<'a>(out: &'a str, key: &'a str) -> Vec<&'a str> {
    vec![
        "seal",
        ECHO_WAT,
        "--key",
        key,
        "--name",
        "echo",
        "--version",
        "1.0.0",
        "--chain-id",
        "31337",
        "--registry",
        REGISTRY,
        "-o",
        out,
    ]
}

/// `seal_args` for another input file, sealed with `vendor.key`.
fn seal_args_for<'a>(input: &'a str, out: &'a str) -> Vec<&'a str> {
    let mut args = seal_args(out, "vendor.key");
    args[1] = input;
    args
}

/// Seals the echo fixture with `key` and `extra` options into `out`, which must succeed and be
/// valid Wasm; returns the sealed bytes.
#[track_caller]
fn seal_valid(dir: &Path, out: &str, key: &str, extra: &[&str]) -> Vec<u8> {
    let mut args = seal_args(out, key);
    args.extend(extra);
    assert_ok(&packager(dir, &args));
    let sealed = std::fs::read(dir.join(out)).unwrap();
    wasmparser::Validator::new()
        .validate_all(&sealed)
        .expect("sealed file is valid Wasm");
    sealed
}

/// `inspect FILE --json`, which must succeed.
fn inspect_json(dir: &Path, file: &str) -> serde_json::Value {
    ok_json(&packager(dir, &["inspect", file, "--json"]))
}

#[test]
fn keygen_pubkey_seal_inspect_verify() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (vendor, vendor_pub) = raw_key(d, "vendor.key");
    assert_eq!(
        std::fs::metadata(d.join("vendor.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let out = packager(d, &["pubkey", "--key", "vendor.key"]);
    assert_eq!(key_info(&out), (vendor.clone(), vendor_pub.clone()));

    let sealed = seal_valid(
        d,
        "echo.sealed.wasm",
        "vendor.key",
        &[
            "--unit",
            "tls_handshake",
            "--metering",
            "kernel-preferred",
            "--fuel",
            "5000",
        ],
    );

    let json = inspect_json(d, "echo.sealed.wasm");
    assert_eq!(json["encrypted"], false);
    assert_eq!(json["signers"][0]["address"], vendor);
    assert_eq!(json["signers"][0]["role"], "vendor");
    let m = &json["manifest"];
    assert_eq!(m["vendor"], vendor.to_lowercase());
    assert_eq!(m["vendor_pubkey"], vendor_pub);
    assert_eq!(m["unit"], "tls_handshake");
    assert_eq!(m["metering"], "kernel-preferred");
    assert_eq!(m["limits"]["fuel"], 5000);
    assert_eq!(m["entry"], serde_json::json!(["echo"]));
    assert_eq!(json["sizes"]["sealed"], sealed.len());

    assert_ok_says(
        &packager(d, &["inspect", "echo.sealed.wasm"]),
        &["tls_handshake"],
    );
    assert_ok_says(
        &packager(d, &["verify", "echo.sealed.wasm"]),
        &["code_hash"],
    );
    assert_ok(&packager(
        d,
        &["verify", "echo.sealed.wasm", "--vendor", &vendor],
    ));
    let out = packager(d, &["verify", "echo.sealed.wasm", "--vendor", REGISTRY]);
    assert_exit(&out, 50, &["vendor-pin"]);
}

#[test]
fn encrypted_for_two_customers_and_cosigned() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (vendor, _) = raw_key(d, "vendor.key");
    let (platform, _) = raw_key(d, "platform.key");
    let (_, alice_pub) = raw_key(d, "alice.key");
    let (_, bob_pub) = raw_key(d, "bob.key");
    raw_key(d, "mallory.key");

    let sealed = seal_valid(
        d,
        "enc.wasm",
        "vendor.key",
        &[
            "--recipient",
            &alice_pub,
            "--recipient",
            &bob_pub,
            "--cosign",
            "platform.key",
        ],
    );
    assert!(!sealed.windows(22).any(|w| w == b"SEALBOX-FIXTURE-MARKER"));

    let json = inspect_json(d, "enc.wasm");
    assert_eq!(json["encrypted"], true);
    let signers: Vec<_> = json["signers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["address"].clone())
        .collect();
    assert_eq!(
        signers,
        vec![serde_json::json!(vendor), serde_json::json!(platform)]
    );
    assert_eq!(json["signers"][1]["role"], "co-signer");
    let recipients = json["manifest"]["encryption"]["recipients"]
        .as_array()
        .unwrap();
    assert_eq!(recipients.len(), 2);
    assert_eq!(recipients[0]["pubkey"], alice_pub);

    assert_ok_says(&packager(d, &["verify", "enc.wasm"]), &["not checked"]);
    let verify_as = |key: &str| packager(d, &["verify", "enc.wasm", "--key", key]);
    for key in ["alice.key", "bob.key"] {
        assert_ok_says(&verify_as(key), &["decrypted"]);
    }
    assert_exit(&verify_as("mallory.key"), 18, &["not-recipient"]);
}

#[test]
fn keystore_keys_and_wrong_password() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let with_password = |pw: &str, args: &[&str]| {
        command(d)
            .env("SEALBOX_PASSWORD", pw)
            .args(args)
            .output()
            .unwrap()
    };
    let out = with_password("vendor pw", &["keygen", "--out", "vendor.json"]);
    let (vendor, _) = key_info(&out);
    assert_ok(&with_password(
        "vendor pw",
        &seal_args("ks.wasm", "vendor.json"),
    ));
    assert_eq!(
        inspect_json(d, "ks.wasm")["manifest"]["vendor"],
        vendor.to_lowercase()
    );

    let out = with_password("not it", &seal_args("ks2.wasm", "vendor.json"));
    assert_exit(&out, 1, &["wrong password"]);
    assert!(!d.join("ks2.wasm").exists(), "no output on failure");

    // No password and no terminal: a clear message, not a hang. `setsid` detaches the child
    // from any controlling terminal the test runner may have.
    let out = sealbox_testkit::command("setsid")
        .arg("-w")
        .arg(sealbox_testkit::bin("packager"))
        .current_dir(d)
        .args(seal_args("ks3.wasm", "vendor.json"))
        .output()
        .unwrap();
    assert_exit(&out, 1, &["SEALBOX_PASSWORD"]);
}

#[test]
fn bad_key_files_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    raw_key(d, "loose.key");
    std::fs::set_permissions(d.join("loose.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = packager(d, &seal_args("o.wasm", "loose.key"));
    assert_exit(&out, 1, &["mode 0644"]);

    std::fs::write(d.join("garbage.key"), b"definitely not a key").unwrap();
    std::fs::set_permissions(
        d.join("garbage.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let out = packager(d, &seal_args("o.wasm", "garbage.key"));
    assert_exit(
        &out,
        1,
        &["neither a keystore v3 JSON nor a hex private key"],
    );

    let out = packager(d, &seal_args("o.wasm", "missing.key"));
    assert_exit(&out, 1, &["missing.key"]);
    assert!(!d.join("o.wasm").exists());

    let out = packager(d, &["keygen", "--out", "loose.key", "--raw"]);
    assert_exit(&out, 1, &["refusing to overwrite"]);
}

#[test]
fn bad_modules_fail_with_the_exit_code_of_their_check() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    raw_key(d, "vendor.key");
    assert_ok(&packager(d, &seal_args("good.wasm", "vendor.key")));
    let good = std::fs::read(d.join("good.wasm")).unwrap();

    let write = |name: &str, bytes: &[u8]| std::fs::write(d.join(name), bytes).unwrap();
    write("text.wasm", b"not wasm at all");
    write("truncated.wasm", &good[..good.len() / 2]);
    let mut flipped = good.clone();
    let pos = good.windows(6).position(|w| w == b"\"name\"").unwrap();
    flipped[pos + 9] ^= 1; // inside the manifest's name value
    write("flipped.wasm", &flipped);
    let mut appended = good.clone();
    appended.extend_from_slice(b"\0\x05\x04evil");
    write("appended.wasm", &appended);

    for verb in ["verify", "inspect"] {
        for (file, code, failed) in [
            ("text.wasm", 10, "check `not-wasm` failed"),
            ("truncated.wasm", 11, "check `parse` failed"),
            ("flipped.wasm", 13, "check `hash` failed"),
            ("appended.wasm", 13, "check `hash` failed"),
        ] {
            assert_exit(&packager(d, &[verb, file]), code, &[failed]);
        }
    }
    let unsealed = packager(d, &["verify", ECHO_WAT]);
    assert_exit(&unsealed, 10, &["not-wasm"]);

    // Seal refuses non-Wasm input and already sealed modules, writing nothing.
    let out = packager(d, &seal_args_for("text.wasm", "out1.wasm"));
    assert_exit(&out, 10, &["not-wasm"]);
    let out = packager(d, &seal_args_for("good.wasm", "out2.wasm"));
    assert_exit(&out, 21, &["already-sealed"]);
    let out = packager(d, &{
        let mut a = seal_args_for(ECHO_WAT, "out3.wasm");
        a.extend(["--entry", "nope"]);
        a
    });
    assert_exit(&out, 22, &["options"]);
    for name in ["out1.wasm", "out2.wasm", "out3.wasm"] {
        assert!(!d.join(name).exists(), "{name} written despite the failure");
    }
    let leftovers: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

/// `packager seal` writes the code first, signs the bytes read back from its output file and
/// puts the head in front: the file must be exactly what the library's one-piece `seal` makes
/// (signatures are deterministic), for a module large enough to take the two-thread paths.
#[test]
fn seal_writes_exactly_the_librarys_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    raw_key(d, "vendor.key");
    let key_hex = std::fs::read_to_string(d.join("vendor.key")).unwrap();
    let key_bytes = hex::decode(key_hex.trim().trim_start_matches("0x")).unwrap();
    let vendor = k256::ecdsa::SigningKey::from_slice(&key_bytes).unwrap();

    let mut module = wat::parse_file(ECHO_WAT).unwrap();
    let padding = vec![0x5a; 3 << 20];
    wasm_encoder::CustomSection {
        name: "padding".into(),
        data: padding.as_slice().into(),
    }
    .append_to(&mut module);
    std::fs::write(d.join("big.wasm"), &module).unwrap();
    assert_ok(&packager(d, &seal_args_for("big.wasm", "big.sealed.wasm")));

    let registry = REGISTRY.parse().unwrap();
    let opts = sealed_format::SealOptions::new("echo", "1.0.0", 31337, registry);
    let expected = sealed_format::seal(&module, &opts, &vendor, &[]).unwrap();
    let written = std::fs::read(d.join("big.sealed.wasm")).unwrap();
    assert!(
        written == expected,
        "packager seal and sealed_format::seal differ"
    );
}

#[test]
fn bad_arguments_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    raw_key(d, "vendor.key");
    let mut args = seal_args("o.wasm", "vendor.key");
    args.extend(["--recipient", "0x1234"]);
    assert_exit(&packager(d, &args), 2, &["not a secp256k1 public key"]);
    let mut args = seal_args("o.wasm", "vendor.key");
    let registry = args.iter().position(|a| *a == REGISTRY).unwrap();
    args[registry] = "0x42";
    assert_exit(&packager(d, &args), 2, &["not an Ethereum address"]);
    assert!(!d.join("o.wasm").exists());
}
