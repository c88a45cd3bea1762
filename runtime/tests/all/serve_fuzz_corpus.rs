//! The seed corpus of the `serve_request` fuzz target
//! (`tests/fuzz-serve/corpus/serve_request/`) replayed on the stable
//! toolchain, through the same harness and invariants as the target
//! (`sealbox_runtime::serve::fuzzing::Harness::check`), so CI runs the seeds
//! without nightly. No chain, no anvil: the harness's journal holds the lease.
//!
//! The named seeds (`NNN-what`) are written by [`write_serve_seeds`] from
//! [`SEEDS`] and must answer status `NNN`; any other file (an input the
//! fuzzer found) only has to keep the invariants.

use std::path::PathBuf;

use sealbox_runtime::serve::fuzzing::Harness;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fuzz-serve/corpus/serve_request")
}

/// Seeds as the decoder's choices (`Harness::decode`: one byte per choice of
/// fewer than 256 options, taken modulo their number), with the status each
/// must answer. Products: 0 credit-score (module), 1 limit-breaker (module),
/// 2 credit-score-rs (component).
#[rustfmt::skip]
const SEEDS: &[(&str, &[u8])] = &[
    // method, route, id kind, product, name, suffixes, auth, host, extra headers, body
    ("200-invoke-credit-score", b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x05{\"income\":48000,\"debt\":21000,\"age\":34,\"late_payments\":1,\"credit_history_months\":40}"),
    ("200-invoke-echo", b"\x00\x00\x00\x01\x01\x00\x00\x00\x00\x05hello"),
    ("422-invoke-trap", b"\x00\x00\x00\x01\x02\x00\x00\x00\x00\x00"),
    ("422-invoke-spin-out-of-fuel", b"\x00\x00\x00\x01\x03\x00\x00\x00\x00\x00"),
    ("422-invoke-grow-memory-limit", b"\x00\x00\x00\x01\x04\x00\x00\x00\x00\x00"),
    // body: an applicant, each field "a number" (4) and its bytes
    ("200-call-component", b"\x00\x03\x00\x02\x00\x00\x00\x00\x00\x01\x04\x00\xbb\x80\x04\x00\x52\x08\x04\x22\x04\x00\x01\x04\x00\x28"),
    // age as a string: does not fit the WIT record
    ("422-call-component-bad-argument", b"\x00\x03\x00\x02\x00\x00\x00\x00\x00\x01\x04\x00\xbb\x80\x04\x00\x52\x08\x02\x04\x00\x01\x04\x00\x28"),
    ("404-call-component-unknown-function", b"\x00\x03\x00\x02\x01\x00\x00\x00\x00\x03\x00"),
    ("400-call-component-not-json", b"\x00\x03\x00\x02\x00\x00\x00\x00\x00\x05{nope"),
    ("400-invoke-component", b"\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00"),
    ("400-call-module", b"\x00\x03\x00\x00\x00\x00\x00\x00\x00\x00"),
    ("400-invoke-unknown-export", b"\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00"),
    ("400-bad-product-id", b"\x00\x00\x09\x03xyz\x00\x00\x00\x00\x00\x00"),
    ("404-unknown-product", b"\x00\x00\x07\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\xab\x00\x00\x00\x00\x00\x00"),
    ("401-no-token", b"\x00\x00\x00\x00\x00\x00\x06\x00\x00\x00"),
    ("401-wrong-token", b"\x00\x00\x00\x00\x00\x00\x04\x00\x00\x00"),
    ("401-metrics-basic-auth", b"\x03\x07\x00\x05\x00\x00\x00"),
    ("403-origin", b"\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00"),
    ("403-healthz-sec-fetch-site", b"\x03\x06\x00\x06\x07\x01\x03\x00"),
    ("403-foreign-host", b"\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00"),
    ("403-no-host", b"\x00\x00\x00\x00\x00\x00\x00\x07\x00\x00"),
    ("413-body-too-large", b"\x00\x00\x00\x01\x01\x00\x00\x00\x00\x04\x00\x61"),
    ("413-content-length-too-large", b"\x00\x00\x00\x01\x01\x00\x00\x00\x01\x05\x00"),
    ("200-healthz-no-token-no-host", b"\x03\x06\x00\x06\x07\x00\x00"),
    ("200-metrics", b"\x03\x07\x00\x00\x00\x00\x00"),
    ("200-interface", b"\x03\x05\x00\x02\x00\x00\x00\x00\x00"),
    ("404-interface-of-a-module", b"\x03\x05\x00\x00\x00\x00\x00\x00\x00"),
    ("404-root", b"\x03\x08\x00\x00\x00\x00\x00\x00"),
    ("404-dot-segments", b"\x00\x00\x00\x00\x00\x02\x01\x01\x00\x00\x00\x00\x00"),
    ("404-long-segment", b"\x00\x00\x00\x00\x00\x01\x0d\x23\x28\x00\x00\x00\x00"),
    ("405-get-invoke", b"\x03\x00\x00\x00\x00\x00\x00\x00\x00"),
    ("405-post-metrics-no-token", b"\x00\x07\x00\x06\x00\x00\x00"),
    ("400-product-id-not-utf8", b"\x00\x00\x09\x01\xff\x00\x00\x00\x00\x00\x00"),
];

#[test]
fn serve_fuzz_seeds_keep_every_invariant() {
    let dir = corpus_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(
        files.len() >= SEEDS.len(),
        "{}: seeds missing",
        dir.display()
    );
    let harness = Harness::new();
    let mut wrong = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let data = std::fs::read(file).unwrap();
        // Panics (naming the request) when an invariant fails.
        let outcome = harness.check(&data);
        let expected = name.get(..3).and_then(|s| s.parse::<u16>().ok());
        if let Some(expected) = expected {
            match outcome {
                None => wrong.push(format!("{name}: not a valid request")),
                Some(o) if o.status.as_u16() != expected => wrong.push(format!(
                    "{name}: {} {}",
                    o.status,
                    String::from_utf8_lossy(&o.body)
                )),
                Some(_) => {}
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "seeds answered otherwise:\n{}",
        wrong.join("\n")
    );
}

/// The error kind of a JSON error body.
fn error_kind(body: &[u8]) -> String {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap();
    json["error"].as_str().unwrap().to_string()
}

/// Found by the seeds: axum's own answers to a known path with another
/// method (405, empty body) and to a path segment whose escapes are not
/// UTF-8 (400, plain text) were not the JSON errors of every other refusal.
#[test]
fn wrong_methods_and_undecodable_paths_get_json_errors() {
    let harness = Harness::new();
    let id = harness.product_ids()[0];
    let headers = [
        (
            b"authorization".to_vec(),
            format!("Bearer {}", sealbox_runtime::serve::fuzzing::TOKEN).into_bytes(),
        ),
        (b"host".to_vec(), b"127.0.0.1:8080".to_vec()),
    ];
    for (method, uri) in [
        ("GET", format!("/v1/products/{id}/invoke/score")),
        ("PUT", format!("/v1/products/{id}/call/score")),
        ("POST", format!("/v1/products/{id}/interface")),
        ("POST", "/metrics".to_string()),
        ("DELETE", "/healthz".to_string()),
    ] {
        let out = harness
            .request(method.as_bytes(), uri.as_bytes(), &headers, Vec::new())
            .unwrap();
        assert_eq!(out.status.as_u16(), 405, "{method} {uri}");
        assert_eq!(
            error_kind(&out.body),
            "method-not-allowed",
            "{method} {uri}"
        );
    }
    for uri in [
        "/v1/products/%FF/invoke/score".to_string(),
        format!("/v1/products/{id}/invoke/%C3%28"),
        format!("/v1/products/{id}/call/%80"),
        "/v1/products/%FE%FF/interface".to_string(),
    ] {
        let method: &[u8] = if uri.ends_with("interface") {
            b"GET"
        } else {
            b"POST"
        };
        let out = harness
            .request(method, uri.as_bytes(), &headers, Vec::new())
            .unwrap();
        assert_eq!(out.status.as_u16(), 400, "{uri}");
        assert_eq!(error_kind(&out.body), "bad-path", "{uri}");
        assert_eq!(out.units_after, out.units_before, "{uri}");
    }
}

/// Writes the named seeds of [`SEEDS`] into the committed corpus:
/// `cargo test -p sealbox-runtime --test all serve_fuzz_corpus -- --ignored`.
#[test]
#[ignore = "writes the committed seed corpus"]
fn write_serve_seeds() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for (name, data) in SEEDS {
        std::fs::write(dir.join(name), data).unwrap();
    }
}
