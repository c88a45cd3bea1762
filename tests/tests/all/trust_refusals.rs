//! Issue #4, trust: modules bound to another chain or registry, signed by
//! someone other than the vendor, tampered with, encrypted to someone else, or
//! demanding a kernel meter that is not attached. Each is refused with the
//! failed check named on stderr and its own exit code, and nothing is compiled.

use alloy::primitives::Address;
use sealed_format::Check;

use crate::common::{
    Actors, CHAIN_ID, Chain, Machine, Party, example, licensed, manifest, seal, variant,
};

fn input() -> String {
    example("inputs/applicant.json").display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn module_bound_to_another_chain_is_refused() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let module = variant(
        &example("wat/credit_score.wat"),
        "wrong-chain",
        actors.path(),
    );
    let sealed = seal(
        &module,
        &actors.vendor,
        "cs-wrong-chain",
        1,
        chain.registry,
        &actors.path().join("wrong-chain.sealed.wasm"),
        &[],
    );
    let machine = Machine::new(&chain, &actors);
    let before = machine.cache();
    let out = machine.run(&sealed, &["--input", &input()]);
    out.refused(
        30,
        &[
            "chain mismatch",
            "bound to chain 1 ",
            &format!("serves chain {CHAIN_ID}"),
        ],
    );
    machine.assert_nothing_compiled(&out, &before);
}

#[tokio::test(flavor = "multi_thread")]
async fn module_naming_another_registry_is_refused() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let module = variant(
        &example("wat/credit_score.wat"),
        "wrong-registry",
        actors.path(),
    );
    let elsewhere = Address::repeat_byte(0x42);
    let sealed = seal(
        &module,
        &actors.vendor,
        "cs-wrong-registry",
        CHAIN_ID,
        elsewhere,
        &actors.path().join("wrong-registry.sealed.wasm"),
        &[],
    );
    let machine = Machine::new(&chain, &actors);
    let before = machine.cache();
    let out = machine.run(&sealed, &["--input", &input()]);
    out.refused(
        31,
        &[
            "registry mismatch",
            &elsewhere.to_string(),
            &chain.registry.to_string(),
        ],
    );
    machine.assert_nothing_compiled(&out, &before);
}

#[tokio::test(flavor = "multi_thread")]
async fn module_resigned_by_someone_else_fails_the_vendor_check() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let module = variant(&example("wat/credit_score.wat"), "resigned", actors.path());
    // The genuine module is published and licensed: only the signature is wrong.
    let (sealed, _) = licensed(&chain, &actors, &module, "cs-resigned", 1_000_000, &[]).await;
    let attacker = Party::new(actors.path(), "attacker");
    let forged = crate::common::resign(&std::fs::read(&sealed).unwrap(), attacker.signing_key());
    let check = sealed_format::open(&forged)
        .map(|_| ())
        .unwrap_err()
        .check();
    assert_eq!(
        check,
        Check::VendorMismatch,
        "the forged fixture is what the test means"
    );
    let forged_path = actors.path().join("forged.sealed.wasm");
    std::fs::write(&forged_path, forged).unwrap();

    let machine = Machine::new(&chain, &actors);
    let before = machine.cache();
    let out = machine.run(&forged_path, &["--input", &input()]);
    out.refused(
        i32::from(Check::VendorMismatch.exit_code()),
        &[
            "check `vendor-mismatch`",
            &actors.vendor.address().to_string(),
            &attacker.address().to_string(),
        ],
    );
    machine.assert_nothing_compiled(&out, &before);
    // The genuine module still runs on the same machine.
    machine.run(&sealed, &["--input", &input()]).ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn module_sealed_by_a_stranger_under_the_vendors_name_is_unlicensed() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let module = variant(&example("wat/credit_score.wat"), "stranger", actors.path());
    let (genuine, _) = licensed(&chain, &actors, &module, "cs-stranger", 1_000_000, &[]).await;
    // A stranger seals the very same code under the same product name with
    // their own key: a valid sealed module, but of a product nobody registered.
    let stranger = Party::new(actors.path(), "stranger");
    let copy = seal(
        &module,
        &stranger,
        "cs-stranger",
        CHAIN_ID,
        chain.registry,
        &actors.path().join("stranger.sealed.wasm"),
        &[],
    );
    assert_eq!(manifest(&copy).code_hash, manifest(&genuine).code_hash);
    assert_ne!(manifest(&copy).product_id, manifest(&genuine).product_id);

    let machine = Machine::new(&chain, &actors);
    let before = machine.cache();
    let out = machine.run(&copy, &["--input", &input()]);
    out.refused(33, &["not licensed", "unknown product"]);
    machine.assert_nothing_compiled(&out, &before);
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_code_fails_the_hash_check() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let module = variant(&example("wat/credit_score.wat"), "tampered", actors.path());
    let (sealed, _) = licensed(&chain, &actors, &module, "cs-tampered", 1_000_000, &[]).await;
    let mut bytes = std::fs::read(&sealed).unwrap();
    let last = bytes.len() - 1; // inside the e2e.variant custom section: still valid Wasm
    bytes[last] ^= 0x01;
    let tampered = actors.path().join("tampered.sealed.wasm");
    std::fs::write(&tampered, bytes).unwrap();

    let machine = Machine::new(&chain, &actors);
    let before = machine.cache();
    let out = machine.run(&tampered, &["--input", &input()]);
    out.refused(
        i32::from(Check::Hash.exit_code()),
        &["check `hash`", "hash mismatch"],
    );
    machine.assert_nothing_compiled(&out, &before);
}

#[tokio::test(flavor = "multi_thread")]
async fn encrypted_module_without_a_recipient_key_is_refused() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let module = variant(&example("wat/credit_score.wat"), "recipient", actors.path());
    let someone_else = Party::new(actors.path(), "someone-else");
    let recipient = crate::common::pubkey(&someone_else);
    let (sealed, _) = licensed(
        &chain,
        &actors,
        &module,
        "cs-recipient",
        1_000_000,
        &["--recipient", &recipient],
    )
    .await;

    // The license holds; the customer's key just cannot open the payload.
    let mut machine = Machine::new(&chain, &actors);
    machine.decrypt_key = Some(actors.customer.key.clone());
    let before = machine.cache();
    let out = machine.run(&sealed, &["--input", &input()]);
    out.refused(
        i32::from(Check::NotRecipient.exit_code()),
        &["check `not-recipient`"],
    );
    machine.assert_nothing_compiled(&out, &before);

    // With the recipient's key the same module runs.
    machine.decrypt_key = Some(someone_else.key.clone());
    machine.run(&sealed, &["--input", &input()]).ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn kernel_required_module_refuses_to_run_without_the_meter() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let module = variant(
        &example("wat/credit_score.wat"),
        "kernel-required",
        actors.path(),
    );
    let (sealed, release) = licensed(
        &chain,
        &actors,
        &module,
        "cs-kernel-required",
        1_000_000,
        &["--metering", "kernel-required"],
    )
    .await;
    let machine = Machine::new(&chain, &actors); // runs with --no-kernel-meter
    let before = machine.cache();
    let out = machine.run(&sealed, &["--input", &input()]);
    out.refused(36, &["requires kernel metering", "--no-kernel-meter"]);
    machine.assert_nothing_compiled(&out, &before);
    assert_eq!(machine.usage(release.product_id).runtime_units, 0);
}
