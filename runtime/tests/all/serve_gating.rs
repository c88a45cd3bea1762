//! Per-product license gating in `runtime serve`: one product whose escrow
//! runs out or whose license lapses answers 402 while the other goes on.

use std::time::Duration;

use alloy::primitives::U256;

use crate::serve_support::*;

/// `score` on examples/inputs/applicant.json, derived by hand in
/// examples/algorithms/credit-score/README.md.
const SCORE: &str = r#"{"score":592,"band":"D","reasons":["short_credit_history","high_debt_to_income","late_payments"]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_escrow_refuses_that_product_while_another_serves() {
    let chain = Chain::new().await;
    // The escrow of credit-score pays for exactly 5 units.
    let score = chain.publish_credit_score(5).await;
    let redact = chain.publish_text_redact(1000).await;
    let serve = chain.serve_with(&[&score, &redact], Cadence::QUIET);
    let (client, applicant) = (http(), example("inputs/applicant.json"));
    let score_url = serve.invoke_url(&score, "score");
    let redact_url = serve.invoke_url(&redact, "redact");

    for _ in 0..5 {
        let out = post_ok(&client, &score_url, applicant.clone()).await;
        assert_eq!(out, SCORE);
        let out = post_ok(&client, &redact_url, "mail me at a.b@example.org").await;
        assert_eq!(out, "mail me at [EMAIL]");
    }
    // The sixth unit is not covered by the escrow: refused before the guest runs.
    assert_refused(
        &client,
        &score_url,
        applicant.clone(),
        402,
        "escrow-exhausted",
    )
    .await;
    // The other product is not affected.
    for _ in 0..3 {
        let out = post_ok(&client, &redact_url, "call 555 123 4567").await;
        assert_eq!(out, "call [PHONE]");
    }

    let text = metrics(&client, &serve, None).await;
    let s = [("name", "credit-score")];
    assert_eq!(runtime_calls(&text, "credit-score"), Some(5.0));
    assert_eq!(
        call_errors(&text, "credit-score", "escrow-exhausted"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "sealbox_escrow_balance_wei", &s),
        Some((5 * PRICE) as f64)
    );
    assert_eq!(sample(&text, "sealbox_unsettled_units", &s), Some(5.0));
    assert_eq!(runtime_calls(&text, "text-redact"), Some(8.0));

    serve.shutdown();
    assert_eq!(chain.settled(&score).await, 5);
    assert_eq!(chain.settled(&redact).await, 8);
    let license = chain
        .customer
        .license_status(score.product_id, chain.customer_address(), None)
        .await
        .unwrap();
    assert_eq!(
        license.available,
        U256::ZERO,
        "the 5 units used the whole escrow"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lapsed_license_is_refused_after_refresh_and_restored_with_it() {
    let chain = Chain::new().await;
    let score = chain.publish_credit_score(1000).await;
    let redact = chain.publish_text_redact(1000).await;
    let cadence = Cadence {
        refresh_secs: 1,
        ..Cadence::QUIET
    };
    let serve = chain.serve_with(&[&score, &redact], cadence);
    let (client, applicant) = (http(), example("inputs/applicant.json"));
    let score_url = serve.invoke_url(&score, "score");
    assert_eq!(post_ok(&client, &score_url, applicant.clone()).await, SCORE);
    // Calls credit-score while it answers `from`, until it answers `to`.
    let score_until = |from_to, what| {
        let limit = Duration::from_secs(20);
        post_until(&client, &score_url, applicant.clone(), from_to, limit, what)
    };
    let (vendor, customer, id) = (&chain.vendor, chain.customer_address(), score.product_id);

    // The vendor revokes the customer: the next refresh stops credit-score only.
    vendor.revoke_customer(id, customer).await.unwrap();
    // Calls before the refresh notices still run (and are billed): count them.
    let revoked = score_until((200, 402), "credit-score to refuse after the revocation").await;
    let mut score_ok = 1 + revoked.before.len() as u64;
    assert_eq!(error_kind(&revoked.after), "unlicensed");
    let redact_url = serve.invoke_url(&redact, "redact");
    assert_eq!(
        post_ok(&client, &redact_url, "x@y.example.com").await,
        "[EMAIL]"
    );
    let text = metrics(&client, &serve, None).await;
    assert_eq!(
        sample(&text, "sealbox_license_active", &[("name", "credit-score")]),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, "sealbox_license_active", &[("name", "text-redact")]),
        Some(1.0)
    );

    // Reinstated: the next refresh lets it run again, without a restart.
    vendor.reinstate_customer(id, customer).await.unwrap();
    let reinstated = score_until((402, 200), "credit-score to run after the reinstatement").await;
    for refusal in &reinstated.before {
        assert_eq!(error_kind(refusal), "unlicensed");
    }
    score_ok += 1;
    assert_eq!(String::from_utf8(reinstated.after).unwrap(), SCORE);

    serve.shutdown();
    // Exactly the calls answered 200 were billed; the refused ones were never admitted.
    assert_eq!(chain.settled(&score).await, score_ok);
    assert_eq!(chain.settled(&redact).await, 1);
}
