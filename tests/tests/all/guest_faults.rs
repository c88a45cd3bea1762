//! Issue #4, the sandbox: a guest that traps, loops forever or grows memory
//! past its limit, a missing export, an entry that is not a bytes-ABI export,
//! and input over the configured maximum. Each ends the call with a message
//! naming what happened and the guest-call exit code 41 (40 when the sandbox
//! refuses the module itself). The guest is `tests/fixtures/limit_breaker.wat`.

use std::path::{Path, PathBuf};

use crate::common::{
    Actors, CHAIN_ID, Chain, Machine, PRICE_WEI, Release, bin, example, fixture, license, licensed,
    publish, rewrite_manifest, run, seal, variant,
};

/// Fuel the fault module is sealed with (per call).
const FUEL: &str = "1000000";
/// Memory limit it is sealed with, in 64 KiB pages (it starts with 1).
const PAGES: &str = "4";

/// The fault module sealed with `limits`, published and licensed.
async fn faults(chain: &Chain, actors: &Actors, tag: &str, limits: &[&str]) -> (PathBuf, Release) {
    let module = variant(&fixture("limit_breaker.wat"), tag, actors.path());
    licensed(
        chain,
        actors,
        &module,
        &format!("faults-{tag}"),
        1_000_000,
        limits,
    )
    .await
}

fn small_input(dir: &Path) -> String {
    let path = dir.join("input.bin");
    std::fs::write(&path, b"hello, sandbox").unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn trap_ends_the_call_with_the_trap_named() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let (sealed, release) = faults(
        &chain,
        &actors,
        "trap",
        &["--fuel", FUEL, "--max-memory-pages", PAGES],
    )
    .await;
    let machine = Machine::new(&chain, &actors);
    let input = small_input(actors.path());

    // The module is otherwise sound: its well-behaved entry echoes the input.
    let out = machine.run(&sealed, &["--input", &input, "--export", "echo"]);
    out.ok();
    assert_eq!(out.stdout, "hello, sandbox");

    let out = machine.run(&sealed, &["--input", &input, "--export", "trap"]);
    out.refused(41, &["guest `trap` trapped", "unreachable"]);
    // The unit is journalled before the guest runs: a trapping call used one
    // of the units bought.
    let usage = machine.usage(release.product_id);
    assert_eq!((usage.runtime_units, usage.bought_units), (2, 100));
}

#[tokio::test(flavor = "multi_thread")]
async fn runaway_loop_runs_out_of_fuel() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let (sealed, _) = faults(
        &chain,
        &actors,
        "fuel",
        &["--fuel", FUEL, "--max-memory-pages", PAGES],
    )
    .await;
    let machine = Machine::new(&chain, &actors);
    let out = machine.run(
        &sealed,
        &["--input", &small_input(actors.path()), "--export", "spin"],
    );
    out.refused(
        41,
        &[
            &format!("guest `spin` used all {FUEL} units of fuel"),
            "runaway loop",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn runaway_loop_hits_the_deadline() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    // No fuel limit in the manifest: the customer's cap (10^10) would take
    // far longer than the 150 ms deadline to burn.
    let (sealed, _) = faults(&chain, &actors, "deadline", &["--deadline-ms", "150"]).await;
    let machine = Machine::new(&chain, &actors);
    let out = machine.run(
        &sealed,
        &["--input", &small_input(actors.path()), "--export", "spin"],
    );
    out.refused(41, &["guest `spin` ran past its deadline of 150 ms"]);
    // The customer's own cap is 10 s: the manifest's deadline is what ended it.
    assert!(
        out.elapsed.as_secs() < 8,
        "the call took {:?}, the deadline was not enforced",
        out.elapsed
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_bomb_stops_at_the_limit() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let (sealed, _) = faults(
        &chain,
        &actors,
        "memory",
        &["--fuel", FUEL, "--max-memory-pages", PAGES],
    )
    .await;
    let machine = Machine::new(&chain, &actors);
    let out = machine.run(
        &sealed,
        &["--input", &small_input(actors.path()), "--export", "grow"],
    );
    out.refused(
        41,
        &[&format!(
            "guest `grow` grew memory past {PAGES} pages (asked for 5 pages)"
        )],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_export_is_named_with_the_available_ones() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let module = variant(&example("wat/text_redact.wat"), "missing", actors.path());
    let (sealed, release) = licensed(&chain, &actors, &module, "tr-missing", 1_000_000, &[]).await;
    let machine = Machine::new(&chain, &actors);
    let letter = example("inputs/letter.txt").display().to_string();

    let out = machine.run(&sealed, &["--input", &letter, "--export", "summarize"]);
    out.refused(41, &["module has no export `summarize`", "`redact`"]);
    let out = machine.run(&sealed, &["--invoke", "revision"]);
    out.refused(41, &["module has no export `revision`", "`version`"]);
    // A numeric call with the wrong number of arguments is refused before the guest runs.
    let out = machine.run(&sealed, &["--invoke", "version", "7"]);
    out.refused(
        41,
        &["bad argument for `version`", "takes 0 argument(s)", "got 1"],
    );
    // None of these calls reached the guest: bad input changes nothing, so
    // nothing is used, and nothing is bought for a call refused up front.
    let usage = machine.usage(release.product_id);
    assert_eq!(usage.runtime_units, 0, "{usage:?}");
    assert_eq!(usage.bought_units, 0, "{usage:?}");
    crate::common::Chain::assert_paid(chain.revenue(actors.vendor.address()).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn manifest_entry_that_is_not_a_bytes_abi_export_is_refused() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let module = variant(&example("wat/text_redact.wat"), "bad-entry", actors.path());
    // `packager seal --entry version` refuses (exit 23, see
    // packager_refuses_an_entry_of_the_wrong_type): `version` is () -> i32,
    // not the (i32, i32) -> i64 of the bytes ABI. A vendor who writes the
    // manifest by hand and signs it still gets the module refused at load.
    let sealed = seal(
        &module,
        &actors.vendor,
        "tr-bad-entry",
        CHAIN_ID,
        chain.registry,
        &actors.path().join("tr-bad-entry.plain.wasm"),
        &[],
    );
    let forged = rewrite_manifest(
        &std::fs::read(&sealed).unwrap(),
        actors.vendor.signing_key(),
        |m| m.entry = vec!["redact".into(), "version".into()],
    );
    let sealed = actors.path().join("tr-bad-entry.sealed.wasm");
    std::fs::write(&sealed, forged).unwrap();
    let vendor = chain.client(&actors.vendor.signer).await;
    let release = publish(&vendor, &sealed, PRICE_WEI).await;
    let customer = chain.client(&actors.customer.signer).await;
    license(
        &customer,
        release.product_id,
        1_000_000,
        actors.runtime.address(),
    )
    .await;
    let machine = Machine::new(&chain, &actors);
    let out = machine.run(&sealed, &["--invoke", "version"]);
    out.refused(
        40,
        &["entry `version` is not a bytes-ABI export", "`redact`"],
    );
    let usage = machine.usage(release.product_id);
    assert_eq!((usage.runtime_units, usage.bought_units), (0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn input_over_the_configured_maximum_is_refused_before_anything_runs() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let (sealed, release) = faults(
        &chain,
        &actors,
        "input",
        &["--fuel", FUEL, "--max-memory-pages", PAGES],
    )
    .await;
    let machine = Machine::new(&chain, &actors);
    let input = small_input(actors.path()); // 14 bytes

    let out = machine.run(
        &sealed,
        &[
            "--max-input-bytes",
            "14",
            "--input",
            &input,
            "--export",
            "echo",
        ],
    );
    out.ok();
    let before = machine.cache();
    let out = machine.run(
        &sealed,
        &[
            "--max-input-bytes",
            "13",
            "--input",
            &input,
            "--export",
            "echo",
        ],
    );
    out.refused(41, &["larger than", "13 bytes"]);
    machine.assert_nothing_compiled(&out, &before);
    assert_eq!(machine.usage(release.product_id).runtime_units, 1);
}

#[test]
fn packager_refuses_an_entry_of_the_wrong_type() {
    let dir = tempfile::tempdir().unwrap();
    let vendor = crate::common::Party::new(dir.path(), "vendor");
    let out = run(
        &bin("packager"),
        [
            "seal",
            &example("wat/text_redact.wat").display().to_string(),
            "--key",
            &vendor.key.display().to_string(),
            "--name",
            "tr",
            "--version",
            "1.0.0",
            "--chain-id",
            "31337",
            "--registry",
            "0x1111111111111111111111111111111111111111",
            "--entry",
            "version",
            "-o",
            &dir.path().join("tr.sealed.wasm").display().to_string(),
        ],
    );
    out.refused(
        23,
        &[
            "entry `version` has type () -> i32",
            "(i32, i32) -> i64",
            "sealbox_guest::entry!",
        ],
    );
    assert!(!dir.path().join("tr.sealed.wasm").exists());
}
