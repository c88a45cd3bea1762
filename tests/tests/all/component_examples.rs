//! Issue #11, the examples: the credit-score algorithm as a component of one
//! WIT world (`examples/components/wit/credit-score.wit`), written in Rust,
//! Python and JavaScript, each sealed, licensed on anvil and called through
//! `runtime run` and `runtime serve` — all three answering exactly what the
//! core module `examples/wat/credit_score.wat` answers, on every applicant of
//! `examples/components/applicants.json`. Then the faults: a Python component
//! that raises, a JavaScript one that loops forever and one that allocates
//! without bound; and the bad components of `examples/components/wat/bad`,
//! refused by the name of their import.
//!
//! The Python and JavaScript components are built by
//! `examples/components/build.sh` (the test command runs it). Where they are
//! missing the tests fail saying so, unless `SEALBOX_SKIP_COMPONENT_BUILDS=1`.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::common::{Actors, Chain, Machine, example, licensed, manifest, post_retrying};

/// A built component under `examples/components/target/`, or `None` (test
/// skipped) when it is missing and `SEALBOX_SKIP_COMPONENT_BUILDS=1`.
fn built(name: &str) -> Option<PathBuf> {
    let path = example(&format!("components/target/{name}.wasm"));
    if path.is_file() {
        return Some(path);
    }
    if std::env::var_os("SEALBOX_SKIP_COMPONENT_BUILDS").is_some_and(|v| v == "1") {
        eprintln!(
            "SKIPPED: {} is not built (SEALBOX_SKIP_COMPONENT_BUILDS=1)",
            path.display()
        );
        return None;
    }
    panic!(
        "{} is missing: run examples/components/build.sh (it installs componentize-py and \
         componentize-js from PyPI and npm), or set SEALBOX_SKIP_COMPONENT_BUILDS=1",
        path.display()
    );
}

fn wit(name: &str) -> Vec<String> {
    vec![
        "--wit".into(),
        example(&format!("components/wit/{name}"))
            .display()
            .to_string(),
    ]
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The applicants of `examples/components/applicants.json`: (name, JSON fields).
fn applicants() -> Vec<(String, Value)> {
    let text = std::fs::read_to_string(example("components/applicants.json")).unwrap();
    let table: Value = serde_json::from_str(&text).unwrap();
    table["applicants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_string(),
                a["applicant"].clone(),
            )
        })
        .collect()
}

/// The applicant as the core module's JSON, fields in the record's order: the
/// core module reports the first bad field in input order, the components in
/// the record's (serde_json's map here would sort the keys).
fn core_json(fields: &Value) -> String {
    let parts: Vec<String> = [
        "income",
        "debt",
        "age",
        "late_payments",
        "credit_history_months",
    ]
    .iter()
    .map(|k| format!("\"{k}\":{}", fields[k]))
    .collect();
    format!("{{{}}}", parts.join(","))
}

/// The core module's JSON fields as the WIT record (kebab-case names).
fn wit_applicant(fields: &Value) -> Value {
    let object = fields.as_object().unwrap();
    Value::Object(
        object
            .iter()
            .map(|(k, v)| (k.replace('_', "-"), v.clone()))
            .collect(),
    )
}

/// The core module's answer in the world's terms: `{"ok": assessment}` with
/// enum cases in WIT's kebab-case, or `{"err": message}`.
fn as_world_result(core: &Value) -> Value {
    if let Some(message) = core.get("message") {
        return json!({ "err": message });
    }
    let reasons: Vec<Value> = core["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| Value::String(r.as_str().unwrap().replace('_', "-")))
        .collect();
    json!({ "ok": {
        "score": core["score"],
        "band": core["band"].as_str().unwrap().to_lowercase(),
        "reasons": reasons,
    }})
}

#[tokio::test(flavor = "multi_thread")]
async fn rust_python_and_javascript_components_answer_as_the_core_module() {
    let (Some(py), Some(js)) = (built("credit_score_py"), built("credit_score_js")) else {
        return;
    };
    let rs = example("components/wat/credit_score_rs.wat");
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let world = wit("credit-score.wit");
    let (core, _) = licensed(
        &chain,
        &actors,
        &example("wat/credit_score.wat"),
        "credit-score-core",
        10_000_000,
        &[],
    )
    .await;
    let mut components = Vec::new();
    for (lang, module) in [("rs", &rs), ("py", &py), ("js", &js)] {
        let name = format!("credit-score-{lang}");
        let (sealed, _) = licensed(&chain, &actors, module, &name, 10_000_000, &args(&world)).await;
        let m = manifest(&sealed);
        assert_eq!(m.entry, ["score"], "{lang}");
        assert_eq!(
            m.component.as_ref().unwrap().world_name(),
            "sealbox:credit-score/scorer@0.1.0"
        );
        components.push((lang, sealed, m.product_id));
    }

    // `runtime run` with a WAVE call: compiles each once (into the machine's
    // cache, which `serve` then loads from), and answers the worked example.
    let machine = Machine::new(&chain, &actors);
    for (lang, sealed, _) in &components {
        let out = machine.run(
            sealed,
            &[
                "--invoke",
                "score({income: 48000, debt: 21000, age: 34, late-payments: 1, \
                 credit-history-months: 40})",
            ],
        );
        out.ok();
        assert_eq!(
            out.stdout,
            "ok({score: 592, band: d, reasons: [short-credit-history, high-debt-to-income, \
             late-payments]})\n",
            "{lang}"
        );
    }

    let modules: Vec<&std::path::Path> = std::iter::once(core.as_path())
        .chain(components.iter().map(|(_, s, _)| s.as_path()))
        .collect();
    let server = machine.serve(&modules, &[]);
    let core_id = manifest(&core).product_id;
    let mut compared = 0;
    let mut answers: Vec<Value> = Vec::new();
    for (name, fields) in applicants() {
        let (status, body) = post_retrying(
            &format!("{}/v1/products/{core_id}/invoke/score", server.url),
            &core_json(&fields),
        )
        .await;
        assert_eq!(status, 200, "core module on {name}: {body}");
        let expected = as_world_result(&serde_json::from_str(&body).unwrap());
        for (lang, _, id) in &components {
            let (status, body) = post_retrying(
                &format!("{}/v1/products/{id}/call/score", server.url),
                &json!({ "applicant": wit_applicant(&fields) }).to_string(),
            )
            .await;
            assert_eq!(status, 200, "{lang} on {name}: {body}");
            let answer: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(
                answer, expected,
                "{lang} differs from the core module on {name}"
            );
            answers.push(answer);
            compared += 1;
        }
    }
    assert_eq!(compared, 3 * applicants().len());
    // componentize-py adds an export of its own (`init`) beside the world's:
    // not part of the product, not callable.
    let (_, _, py_id) = &components[1];
    let (status, body) = post_retrying(
        &format!("{}/v1/products/{py_id}/call/init", server.url),
        "{}",
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("score(") && !body.contains("init("), "{body}");
    // The comparison is not vacuous: the answers span every band and some refusals.
    for band in ["a", "b", "c", "d", "e"] {
        assert!(
            answers.iter().any(|a| a["ok"]["band"] == band),
            "no applicant in band {band}: {answers:?}"
        );
    }
    assert!(answers.iter().any(|a| a.get("err").is_some()));
}

#[tokio::test(flavor = "multi_thread")]
async fn faulty_python_and_javascript_components_end_only_their_call() {
    let (Some(py), Some(js)) = (built("faults_py"), built("faults_js")) else {
        return;
    };
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let world = wit("faults.wit");
    let (py, py_release) =
        licensed(&chain, &actors, &py, "faults-py", 10_000_000, &args(&world)).await;
    let (js, js_release) =
        licensed(&chain, &actors, &js, "faults-js", 10_000_000, &args(&world)).await;
    let machine = Machine::new(&chain, &actors);

    // A Python exception traps the call (built without WASI, the traceback
    // has nowhere to go: examples/components/README.md).
    let out = machine.run(&py, &["--invoke", r#"raise-error("boom")"#]);
    assert_eq!(out.code, Some(41), "{}", out.dump());
    assert!(
        out.stderr.contains("`raise-error` trapped"),
        "{}",
        out.dump()
    );
    // The same component answers the next call.
    let out = machine.run(&py, &["--invoke", "hog(3)"]);
    out.ok();
    assert_eq!(out.stdout, "3\n");
    assert_eq!(machine.usage(py_release.product_id).runtime_units, 2);

    // A JavaScript loop meets the deadline; unbounded allocation meets the cap.
    let out = machine.run(&js, &["--max-deadline-ms", "300", "--invoke", "spin()"]);
    assert_eq!(out.code, Some(41), "{}", out.dump());
    assert!(out.stderr.contains("deadline of 300 ms"), "{}", out.dump());
    let out = machine.run(&js, &["--max-memory-pages", "1024", "--invoke", "hog(0)"]);
    assert_eq!(out.code, Some(41), "{}", out.dump());
    assert!(out.stderr.contains("past 1024 pages"), "{}", out.dump());
    let out = machine.run(&js, &["--invoke", "hog(2)"]);
    out.ok();
    assert_eq!(out.stdout, "2\n");
    assert_eq!(
        machine.usage(js_release.product_id).runtime_units,
        3,
        "each call that ran was billed, faults included"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_components_are_refused_by_the_name_of_their_import() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let world = wit("credit-score.wit");
    let machine = Machine::new(&chain, &actors);
    for (file, import) in [
        ("imports_wasi_sockets", "`wasi:sockets/tcp@0.2.12`"),
        ("imports_custom_host", "`acme:host/net@1.0.0`"),
        (
            "imports_wasi_filesystem_preopens",
            "`wasi:filesystem/preopens@0.2.12`",
        ),
    ] {
        let module = example(&format!("components/wat/bad/{file}.wat"));
        let (sealed, release) = licensed(
            &chain,
            &actors,
            &module,
            &file.replace('_', "-"),
            1_000_000,
            &args(&world),
        )
        .await;
        let out = machine.run(
            &sealed,
            &[
                "--invoke",
                "score({income: 1, debt: 0, age: 30, late-payments: 0, credit-history-months: 1})",
            ],
        );
        out.refused(40, &[import, "which the sandbox does not grant"]);
        assert_eq!(machine.usage(release.product_id).runtime_units, 0, "{file}");
    }
}

#[test]
fn a_component_sealed_against_another_world_is_refused() {
    let Some(py) = built("credit_score_py") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let vendor = sealbox_testkit::key_file(dir.path(), "vendor", &sealbox_testkit::dev_key(1));
    let out = sealbox_testkit::run(
        &crate::common::bin("packager"),
        [
            "seal",
            &py.display().to_string(),
            "--key",
            &vendor.display().to_string(),
            "--name",
            "x",
            "--version",
            "1",
            "--chain-id",
            "31337",
            "--registry",
            "0x1111111111111111111111111111111111111111",
            "--wit",
            &example("components/wit/faults.wit").display().to_string(),
            "-o",
            &dir.path().join("out.wasm").display().to_string(),
        ],
    );
    out.refused(
        24,
        &["world `faults` exports `raise-error`, the component does not"],
    );
}
