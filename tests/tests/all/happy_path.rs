//! The happy path on a real anvil: a vendor seals the example algorithms
//! (plain, and encrypted to the customer), publishes them, the customer
//! deposits and authorizes a runtime key, and `runtime run` gives the answers
//! the algorithms' READMEs derive by hand; every call is counted in the
//! journal, and a second start loads the compiled module from the cache.

use std::path::Path;

use serde_json::{Value, json};

use crate::common::{
    Actors, Chain, Machine, Party, example, license, licensed, logged_compiling, manifest, pubkey,
    seal, variant,
};

/// The credit-score model of examples/algorithms/credit-score/README.md,
/// written again from the README's formula (not from the module's code).
fn expected_score(income: i64, debt: i64, late_payments: i64, history_months: i64) -> Value {
    let dti = if debt == 0 {
        0
    } else if income == 0 {
        50_000
    } else {
        (debt * 10_000 / income).min(50_000)
    };
    let income_term = 250 * i64::from((income.min(127_999) / 1000 + 1).ilog2());
    let history_term = 20 * history_months.min(120);
    let dti_term = -(dti * 3 / 10);
    let late_term = -600 * late_payments.min(10);
    let z = income_term + history_term + dti_term + late_term;
    let score = 575 + (275 * z).div_euclid(2000 + z.abs());
    let band = match score {
        740.. => "A",
        680..=739 => "B",
        620..=679 => "C",
        560..=619 => "D",
        _ => "E",
    };
    // Costs in the README's tie order; a stable sort keeps it for equal costs.
    let mut costs = [
        ("high_debt_to_income", dti * 3 / 10),
        ("late_payments", 600 * late_payments.min(10)),
        ("short_credit_history", 2400 - history_term),
        ("low_income", 1750 - income_term),
    ];
    costs.sort_by_key(|(_, cost)| std::cmp::Reverse(*cost));
    let reasons: Vec<&str> = costs
        .iter()
        .filter(|(_, cost)| *cost >= 600)
        .map(|(name, _)| *name)
        .collect();
    json!({"score": score, "band": band, "reasons": reasons})
}

fn applicant(dir: &Path, name: &str, income: i64, debt: i64, late: i64, months: i64) -> String {
    let path = dir.join(format!("{name}.json"));
    let body = json!({
        "income": income, "debt": debt, "age": 40,
        "late_payments": late, "credit_history_months": months,
    });
    std::fs::write(&path, body.to_string()).unwrap();
    path.display().to_string()
}

fn score_of(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout:?}"))
}

#[test]
fn expected_score_matches_the_readme_worked_example() {
    // The README works applicant.json through by hand: z = 138 → 592, band D.
    assert_eq!(
        expected_score(48_000, 21_000, 1, 40),
        json!({"score": 592, "band": "D",
               "reasons": ["short_credit_history", "high_debt_to_income", "late_payments"]})
    );
    // The README's extremes: 760 at z = 4150, 323 at z = −21 000.
    assert_eq!(expected_score(200_000, 0, 0, 300)["score"], 760);
    assert_eq!(expected_score(0, 1_000_000, 10, 0)["score"], 323);
}

#[tokio::test(flavor = "multi_thread")]
async fn credit_score_plain_and_encrypted_to_the_customer() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let module = variant(&example("wat/credit_score.wat"), "happy", actors.path());
    let (plain, release) = licensed(
        &chain,
        &actors,
        &module,
        "credit-score-happy",
        1_000_000,
        &[],
    )
    .await;

    // The same plaintext encrypted to the customer: same code hash, so the
    // same published release.
    let encrypted = seal(
        &module,
        &actors.vendor,
        "credit-score-happy",
        crate::common::CHAIN_ID,
        chain.registry,
        &actors.path().join("credit-score.encrypted.sealed.wasm"),
        &["--recipient", &pubkey(&actors.customer)],
    );
    let m = manifest(&encrypted);
    assert_eq!(m.code_hash, release.code_hash);
    assert!(m.encryption.is_some());
    let plaintext = std::fs::read(&module).unwrap();
    let sealed_bytes = std::fs::read(&encrypted).unwrap();
    let probe = &plaintext[plaintext.len() / 2..plaintext.len() / 2 + 64];
    assert!(
        !sealed_bytes.windows(probe.len()).any(|w| w == probe),
        "the encrypted module still contains plaintext code"
    );

    // Plain module, first start: compiles and caches.
    let machine = Machine::new(&chain, &actors);
    let input = example("inputs/applicant.json").display().to_string();
    let out = machine.run(&plain, &["--input", &input]);
    out.ok();
    assert_eq!(score_of(&out.stdout), expected_score(48_000, 21_000, 1, 40));
    assert!(logged_compiling(&out));
    let cache = machine.cache();
    assert_eq!(
        cache.len(),
        1,
        "one compiled module in the cache: {cache:?}"
    );
    assert!(cache.has(release.code_hash));
    let status = machine.status(&plain);
    assert_eq!(status["usage"]["runtime_units"], 1, "{status:#}");
    assert_eq!(status["active"], true);

    // Warm starts: other applicants, the same cache entry (not rewritten).
    let cases = [
        ("strong", 200_000, 0, 0, 200),
        ("weak", 10_000, 60_000, 12, 3),
        ("middling", 70_000, 14_000, 0, 90),
    ];
    for (name, income, debt, late, months) in cases {
        let file = applicant(actors.path(), name, income, debt, late, months);
        let out = machine.run(&plain, &["--input", &file]);
        out.ok();
        assert_eq!(
            score_of(&out.stdout),
            expected_score(income, debt, late, months),
            "applicant {name}"
        );
        assert_eq!(
            machine.cache(),
            cache,
            "a warm start must not compile again"
        );
    }
    let status = machine.status(&plain);
    assert_eq!(status["usage"]["runtime_units"], 4, "{status:#}");
    // The first call bought a default block of 100 units; four are used.
    assert_eq!(status["usage"]["bought_units"], 100, "{status:#}");
    assert_eq!(status["usage"]["used_units"], 4, "{status:#}");
    assert_eq!(status["usage"]["unused_units"], 96, "{status:#}");
    assert_eq!(status["signer"]["authorized"], true);

    // The encrypted module on a second machine with its own runtime key
    // (authorized too), decrypting with the customer's key.
    let second = Party::new(actors.path(), "runtime-2");
    // It pays the gas of its own purchases.
    chain.fund(second.address()).await;
    let customer = chain.client(&actors.customer.signer).await;
    license(&customer, release.product_id, 0, second.address()).await;
    let mut other = Machine::with_key(&chain, &actors, &second);
    other.decrypt_key = Some(actors.customer.key.clone());
    let out = other.run(&encrypted, &["--input", &input]);
    out.ok();
    assert_eq!(score_of(&out.stdout), expected_score(48_000, 21_000, 1, 40));
    assert!(other.cache().has(release.code_hash));
    let status = other.status(&encrypted);
    assert_eq!(status["usage"]["runtime_units"], 1, "{status:#}");
    // Its own block, bought by its own state directory.
    assert_eq!(status["usage"]["bought_units"], 100, "{status:#}");
    assert_eq!(status["bought_units"], 200, "both blocks: {status:#}");
    // Without the customer's key the runtime key is not a recipient.
    other.decrypt_key = None;
    other
        .run(&encrypted, &["--input", &input])
        .refused(18, &["check `not-recipient`"]);
    // Two blocks of 100 bought, nothing else: that is what the vendor earned.
    crate::common::Chain::assert_paid(chain.revenue(actors.vendor.address()).await, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn text_redact_numeric_and_bytes_exports() {
    let chain = Chain::shared().await;
    let actors = Actors::new(&chain).await;
    let module = variant(&example("wat/text_redact.wat"), "happy", actors.path());
    let (sealed, _) = licensed(
        &chain,
        &actors,
        &module,
        "text-redact-happy",
        1_000_000,
        &[],
    )
    .await;
    let machine = Machine::new(&chain, &actors);

    let out = machine.run(&sealed, &["--invoke", "version"]);
    out.ok();
    assert_eq!(
        out.stdout, "1\n",
        "the rule-set version of text-redact's README"
    );

    let letter = example("inputs/letter.txt").display().to_string();
    let out = machine.run(&sealed, &["--input", &letter]);
    out.ok();
    let expected = std::fs::read_to_string(example("inputs/letter.expected.txt")).unwrap();
    assert_eq!(
        out.stdout, expected,
        "redaction of letter.txt (expected written by hand)"
    );

    let status = machine.status(&sealed);
    assert_eq!(status["usage"]["runtime_units"], 2, "{status:#}");
    assert_eq!(status["usage"]["bought_units"], 100, "{status:#}");
}
