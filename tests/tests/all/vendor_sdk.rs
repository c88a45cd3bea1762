//! Issue #17, the vendor's side: a project made by `packager new`, written the
//! ordinary way (`std`, `serde_json`, and one more crates.io library,
//! `strsim`), built for `wasm32-unknown-unknown`, sealed, published on anvil
//! and called through `runtime run` and `runtime serve`, answering exactly
//! what the same functions answer natively.
//!
//! Needs the `wasm32-unknown-unknown` target and crates.io. Where the target
//! is missing the test fails saying so, unless `SEALBOX_SKIP_WASM32=1`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Actors, Chain, Machine, bin, licensed, run};

/// The project's name (crate `fuzzy-screen`, module `fuzzy_screen.wasm`).
const NAME: &str = "fuzzy-screen";

/// The second entry the test adds to the template: a crates.io library
/// (`strsim`) behind `sealbox_guest::entry!`.
const SIMILARITY: &str = r#"
/// Similarity of two names, by the crates.io library `strsim`.
pub fn similarity(input: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<(String, String)>(input) {
        Ok((a, b)) => serde_json::json!({
            "jaro_winkler": strsim::jaro_winkler(&a, &b),
            "levenshtein": strsim::levenshtein(&a, &b),
        }),
        Err(e) => serde_json::json!({ "error": e.to_string() }),
    }
    .to_string()
    .into_bytes()
}

sealbox_guest::entry!(
    /// `similarity` on the Sealbox ABI v1.
    similarity => crate::similarity
);
"#;

/// A host binary that runs the same functions natively, for comparison.
const NATIVE: &str = r#"
use std::io::{Read, Write};

fn main() {
    let export = std::env::args().nth(1).expect("export name");
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input).expect("stdin");
    let out = match export.as_str() {
        "run" => fuzzy_screen::run(&input),
        "similarity" => fuzzy_screen::similarity(&input),
        other => panic!("no export {other}"),
    };
    std::io::stdout().write_all(&out).expect("stdout");
}
"#;

/// Inputs per export: ordinary, edge and malformed.
const CASES: &[(&str, &str)] = &[
    ("run", r#"{"values":[3.5,-1,10,2.25]}"#),
    ("run", r#"{"values":[]}"#),
    ("run", r#"{"values":[1e308,1e308]}"#),
    ("run", r#"{"values":"x"}"#),
    ("similarity", r#"["Jon Smyth","John Smith"]"#),
    ("similarity", r#"["Ægir Þór","Aegir Thor"]"#),
    ("similarity", r#"["",""]"#),
    ("similarity", r#"[1,2]"#),
];

/// Whether the Rust toolchain here has the wasm32 target's standard library.
fn wasm32_target_installed() -> bool {
    let Ok(out) = Command::new("rustc")
        .args([
            "--print",
            "target-libdir",
            "--target",
            "wasm32-unknown-unknown",
        ])
        .output()
    else {
        return false;
    };
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    out.status.success()
        && std::fs::read_dir(&dir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("libstd-"))
        })
}

/// `cargo ARGS` in `project`, with a target directory kept between runs (the
/// dependencies then build once per machine) and nothing inherited from the
/// cargo that runs this test.
fn cargo(project: &Path, args: &[&str]) -> std::process::Output {
    let target = sealbox_testkit::repo_root().join("target/vendor-sdk-test");
    let out = Command::new("cargo")
        .args(args)
        .current_dir(project)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_MANIFEST_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "cargo {} failed in {}:\n{}",
        args.join(" "),
        project.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The answer of the native build to `input` on `export`.
fn native(binary: &Path, export: &str, input: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(binary)
        .arg(export)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the native build");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "native {export} failed on {input}");
    String::from_utf8(out.stdout).expect("UTF-8 answer")
}

/// POSTs `input` to `url`, retrying while serve answers 402 with
/// `Retry-After` (it is buying its first block of units).
async fn post(url: &str, input: &str) -> String {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = client
            .post(url)
            .body(input.to_string())
            .send()
            .await
            .expect("POST to serve");
        let status = response.status();
        let retry = response.headers().contains_key("retry-after");
        let body = response.text().await.expect("read the answer");
        if status == 402 && retry && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        assert_eq!(status, 200, "{url}: {body}");
        return body;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_packager_new_project_with_crates_io_libraries_seals_and_answers_as_natively() {
    if !wasm32_target_installed() {
        if std::env::var_os("SEALBOX_SKIP_WASM32").is_some_and(|v| v == "1") {
            eprintln!("SKIPPED: no wasm32-unknown-unknown target (SEALBOX_SKIP_WASM32=1)");
            return;
        }
        panic!(
            "the wasm32-unknown-unknown target is not installed, so a vendor project cannot be \
             built: run `rustup target add wasm32-unknown-unknown` (or set SEALBOX_SKIP_WASM32=1 \
             on a machine that cannot download it)"
        );
    }
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let work = tempfile::tempdir().unwrap();
    let project = work.path().join(NAME);

    // The vendor starts a project, then writes their code the ordinary way.
    let out = run(
        &bin("packager"),
        ["new", NAME, "--dir", &project.display().to_string()],
    );
    out.ok();
    assert!(
        out.stdout
            .contains("cargo build --release --target wasm32-unknown-unknown")
    );
    let manifest = project.join("Cargo.toml");
    let toml = std::fs::read_to_string(&manifest).unwrap();
    let toml = toml.replace("[dependencies]\n", "[dependencies]\nstrsim = \"0.11\"\n");
    std::fs::write(&manifest, toml).unwrap();
    let lib = project.join("src/lib.rs");
    let mut code = std::fs::read_to_string(&lib).unwrap();
    code.push_str(SIMILARITY);
    std::fs::write(&lib, code).unwrap();
    std::fs::create_dir_all(project.join("src/bin")).unwrap();
    std::fs::write(project.join("src/bin/native.rs"), NATIVE).unwrap();

    // The template's own host tests pass, and the module builds.
    cargo(&project, &["test", "--quiet"]);
    cargo(&project, &["build", "--quiet", "--bin", "native"]);
    cargo(
        &project,
        &[
            "build",
            "--quiet",
            "--release",
            "--target",
            "wasm32-unknown-unknown",
            "--lib",
        ],
    );
    let target = sealbox_testkit::repo_root().join("target/vendor-sdk-test");
    let wasm = target.join("wasm32-unknown-unknown/release/fuzzy_screen.wasm");
    let native_bin = target.join("debug/native");

    // Sealed with the packager's defaults: both entries are found.
    let (sealed, _release) = licensed(&chain, &actors, &wasm, NAME, 1_000_000, &[]).await;
    run(&bin("packager"), ["verify", &sealed.display().to_string()]).ok();
    let manifest = crate::common::manifest(&sealed);
    assert_eq!(manifest.entry, ["run", "similarity"]);

    let machine = Machine::new(&chain, &actors);
    let inputs = tempfile::tempdir().unwrap();
    for (i, (export, input)) in CASES.iter().enumerate() {
        let expected = native(&native_bin, export, input);
        let file = inputs.path().join(format!("{i}.json"));
        std::fs::write(&file, input).unwrap();
        let out = machine.run(
            &sealed,
            &["--export", export, "--input", &file.display().to_string()],
        );
        out.ok();
        assert_eq!(out.stdout, expected, "runtime run {export} on {input}");
    }

    let server = machine.serve(&[&sealed], &[]);
    for (export, input) in CASES {
        let expected = native(&native_bin, export, input);
        let url = format!(
            "{}/v1/products/{}/invoke/{export}",
            server.url, manifest.product_id
        );
        assert_eq!(
            post(&url, input).await,
            expected,
            "serve {export} on {input}"
        );
    }
    // Sanity of the comparison itself: the answers are the functions' own.
    let similarity = native(&native_bin, "similarity", r#"["kitten","sitting"]"#);
    assert!(similarity.contains("\"levenshtein\":3"), "{similarity}");
}
