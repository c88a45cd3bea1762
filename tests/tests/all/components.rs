//! Issue #11: sealed components end to end, with the real packager, runtime
//! and anvil. The `.wat` fixtures here exercise the typed paths and the
//! import policy; `component_examples.rs` runs the Rust, Python and
//! JavaScript credit-score components.
//!
//! What is attacked: a vendor component importing a host interface it is
//! not granted (refused by name, nothing billed); a customer's JSON that does
//! not fit the WIT signature (422 naming the field, nothing billed); calling
//! a component on the bytes route and a module on the typed route.

use crate::common::{Actors, Chain, Machine, bin, fixture, licensed, manifest, post_retrying, run};

/// `--wit` for the fixtures' world.
fn wit_args() -> Vec<String> {
    vec!["--wit".into(), fixture("area.wit").display().to_string()]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sealed_component_is_called_with_typed_values_through_run_and_serve() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let wit = wit_args();
    let extra: Vec<&str> = wit.iter().map(String::as_str).collect();
    let (sealed, release) = licensed(
        &chain,
        &actors,
        &fixture("area_component.wat"),
        "area",
        1_000_000,
        &extra,
    )
    .await;
    let m = manifest(&sealed);
    assert_eq!(m.entry, ["area", "spin"]);
    assert_eq!(
        m.component.as_ref().unwrap().world_name(),
        "acme:calc/calc@1.0.0"
    );
    let inspect = run(&bin("packager"), ["inspect", &sealed.display().to_string()]);
    inspect.ok();
    assert!(
        inspect
            .stdout
            .contains("kind         component, world acme:calc/calc@1.0.0")
            && inspect
                .stdout
                .contains("export     area: func(r: dims) -> u64"),
        "{}",
        inspect.stdout
    );

    let machine = Machine::new(&chain, &actors);
    // WAVE in, WAVE out; 70000 × 70000 does not fit 32 bits.
    let out = machine.run(&sealed, &["--invoke", "area({w: 70000, h: 70000})"]);
    out.ok();
    assert_eq!(out.stdout, "4900000000\n");
    // JSON in, JSON out.
    let out = machine.run(
        &sealed,
        &["--invoke", "area", "--json", r#"{"r": {"w": 6, "h": 7}}"#],
    );
    out.ok();
    assert_eq!(out.stdout, "42\n");
    assert_eq!(machine.usage(release.product_id).runtime_units, 2);

    // Arguments that do not fit are refused before anything is bought or billed.
    let out = machine.run(&sealed, &["--invoke", "area({w: 1})"]);
    assert_eq!(out.code, Some(41), "{}", out.dump());
    assert!(
        out.stderr
            .contains("area(r: record { w: u32, h: u32 }) -> u64"),
        "{}",
        out.dump()
    );
    let out = machine.run(
        &sealed,
        &["--invoke", "area", "--json", r#"{"r": {"w": 6, "h": -7}}"#],
    );
    assert_eq!(out.code, Some(41), "{}", out.dump());
    assert!(out.stderr.contains("`r.h`"), "{}", out.dump());
    // Bytes on a component: refused, naming the way to call it.
    let input = actors.path().join("in.bin");
    std::fs::write(&input, b"x").unwrap();
    let out = machine.run(&sealed, &["--input", &input.display().to_string()]);
    assert!(
        out.code != Some(0) && out.stderr.contains("component"),
        "{}",
        out.dump()
    );
    assert_eq!(machine.usage(release.product_id).runtime_units, 2);

    // The deadline holds for a component as for a module.
    let out = machine.run(&sealed, &["--max-deadline-ms", "200", "--invoke", "spin()"]);
    assert_eq!(out.code, Some(41), "{}", out.dump());
    assert!(out.stderr.contains("deadline"), "{}", out.dump());
    assert_eq!(
        machine.usage(release.product_id).runtime_units,
        3,
        "a call that ran out of time was admitted, so it is billed"
    );

    let server = machine.serve(&[&sealed], &[]);
    let base = format!("{}/v1/products/{}", server.url, release.product_id);
    let (status, body) =
        post_retrying(&format!("{base}/call/area"), r#"{"r": {"w": 3, "h": 5}}"#).await;
    assert_eq!((status, body.as_str()), (200, "15"));
    let (status, body) = post_retrying(&format!("{base}/call/area"), r#"[{"w": 2, "h": 2}]"#).await;
    assert_eq!((status, body.as_str()), (200, "4"));
    let (status, body) =
        post_retrying(&format!("{base}/call/area"), r#"{"r": {"w": 3, "h": "5"}}"#).await;
    assert_eq!(status, 422, "{body}");
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"], "bad-argument");
    assert!(
        error["message"].as_str().unwrap().contains("`r.h`"),
        "{body}"
    );
    let (status, body) = post_retrying(&format!("{base}/call/area"), "{not json").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = post_retrying(&format!("{base}/call/volume"), "{}").await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body.contains("area(r: record { w: u32, h: u32 }) -> u64"),
        "{body}"
    );
    let (status, body) = post_retrying(&format!("{base}/invoke/area"), "x").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("/call/"), "{body}");

    let response = reqwest::get(format!("{base}/interface")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-sealbox-world"],
        "acme:calc/calc@1.0.0"
    );
    let text = response.text().await.unwrap();
    assert_eq!(text, std::fs::read_to_string(fixture("area.wit")).unwrap());
    drop(server);
    assert_eq!(
        machine.usage(release.product_id).runtime_units,
        5,
        "the two calls that ran were billed; the refused requests were not"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_importing_an_ungranted_host_interface_is_refused_by_name() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let wit = wit_args();
    let extra: Vec<&str> = wit.iter().map(String::as_str).collect();
    let (sealed, release) = licensed(
        &chain,
        &actors,
        &fixture("net_component.wat"),
        "net",
        1_000_000,
        &extra,
    )
    .await;
    let machine = Machine::new(&chain, &actors);
    let out = machine.run(&sealed, &["--invoke", "area({w: 1, h: 1})"]);
    out.refused(
        40,
        &["`acme:host/net@1.0.0`", "WASI 0.2 without capabilities"],
    );
    assert_eq!(machine.usage(release.product_id).runtime_units, 0);
}

#[test]
fn a_component_sealed_against_another_world_is_refused_at_seal() {
    let dir = tempfile::tempdir().unwrap();
    let wit = dir.path().join("other.wit");
    std::fs::write(
        &wit,
        std::fs::read_to_string(fixture("area.wit"))
            .unwrap()
            .replace("-> u64", "-> u32"),
    )
    .unwrap();
    let vendor = sealbox_testkit::key_file(dir.path(), "vendor", &sealbox_testkit::dev_key(1));
    let out = run(
        &bin("packager"),
        [
            "seal",
            &fixture("area_component.wat").display().to_string(),
            "--key",
            &vendor.display().to_string(),
            "--name",
            "area",
            "--version",
            "1",
            "--chain-id",
            "31337",
            "--registry",
            "0x1111111111111111111111111111111111111111",
            "--wit",
            &wit.display().to_string(),
            "-o",
            &dir.path().join("out.wasm").display().to_string(),
        ],
    );
    out.refused(24, &["`area`", "does not match the world"]);
    assert!(!dir.path().join("out.wasm").exists());
}
