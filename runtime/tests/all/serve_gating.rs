//! Per-product license gating in `runtime serve`: one product whose escrow
//! runs out or whose license lapses answers 402 while the other goes on.

use std::time::{Duration, Instant};

use alloy::primitives::U256;

use crate::serve_support::*;

/// `score` on examples/inputs/applicant.json, derived by hand in
/// examples/algorithms/credit-score/README.md.
const SCORE: &str = r#"{"score":592,"band":"D","reasons":["short_credit_history","high_debt_to_income","late_payments"]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_escrow_refuses_that_product_while_another_serves() {
    let chain = Chain::new().await;
    // The escrow of credit-score pays for exactly 5 units.
    let score = chain
        .publish(
            "credit_score.wat",
            "credit-score",
            PRICE,
            U256::from(5 * PRICE),
        )
        .await;
    let redact = chain
        .publish(
            "text_redact.wat",
            "text-redact",
            PRICE,
            U256::from(1000 * PRICE),
        )
        .await;
    let client = http();
    let serve = chain.serve(
        &[&score, &redact],
        &[
            "--settle-every-units",
            "1000",
            "--settle-every-secs",
            "3600",
            "--refresh-secs",
            "3600",
        ],
    );
    let applicant = example("inputs/applicant.json");
    let score_url = serve.invoke_url(&score, "score");
    let redact_url = serve.invoke_url(&redact, "redact");

    for i in 0..5 {
        let (status, out) = post(&client, &score_url, applicant.clone()).await;
        assert_eq!(status, 200, "call {i}: {}", String::from_utf8_lossy(&out));
        assert_eq!(String::from_utf8(out).unwrap(), SCORE);
        let (status, out) = post(&client, &redact_url, "mail me at a.b@example.org").await;
        assert_eq!(status, 200);
        assert_eq!(String::from_utf8(out).unwrap(), "mail me at [EMAIL]");
    }
    // The sixth unit is not covered by the escrow: refused before the guest runs.
    let (status, body) = post(&client, &score_url, applicant.clone()).await;
    assert_eq!(status, 402, "{}", String::from_utf8_lossy(&body));
    assert_eq!(error_kind(&body), "escrow-exhausted");
    // The other product is not affected.
    for _ in 0..3 {
        let (status, out) = post(&client, &redact_url, "call 555 123 4567").await;
        assert_eq!(status, 200);
        assert_eq!(String::from_utf8(out).unwrap(), "call [PHONE]");
    }

    let text = metrics(&client, &serve, None).await;
    let s = [("name", "credit-score")];
    assert_eq!(
        sample(
            &text,
            "sealbox_calls_total",
            &[("name", "credit-score"), ("counter", "runtime")]
        ),
        Some(5.0)
    );
    assert_eq!(
        sample(
            &text,
            "sealbox_call_errors_total",
            &[("name", "credit-score"), ("kind", "escrow-exhausted")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "sealbox_escrow_balance_wei", &s),
        Some((5 * PRICE) as f64)
    );
    assert_eq!(sample(&text, "sealbox_unsettled_units", &s), Some(5.0));
    assert_eq!(
        sample(
            &text,
            "sealbox_calls_total",
            &[("name", "text-redact"), ("counter", "runtime")]
        ),
        Some(8.0)
    );

    let (status, _) = serve.terminate();
    assert!(status.success());
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
    let score = chain
        .publish(
            "credit_score.wat",
            "credit-score",
            PRICE,
            U256::from(1000 * PRICE),
        )
        .await;
    let redact = chain
        .publish(
            "text_redact.wat",
            "text-redact",
            PRICE,
            U256::from(1000 * PRICE),
        )
        .await;
    let client = http();
    let serve = chain.serve(
        &[&score, &redact],
        &[
            "--settle-every-units",
            "1000",
            "--settle-every-secs",
            "3600",
            "--refresh-secs",
            "1",
        ],
    );
    let applicant = example("inputs/applicant.json");
    let score_url = serve.invoke_url(&score, "score");
    let redact_url = serve.invoke_url(&redact, "redact");
    assert_eq!(post(&client, &score_url, applicant.clone()).await.0, 200);

    // The vendor revokes the customer: the next refresh stops credit-score only.
    chain
        .vendor
        .revoke_customer(score.product_id, chain.customer_address())
        .await
        .unwrap();
    // Calls before the refresh notices still run (and are billed): count them.
    let mut score_ok = 1;
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        let (status, body) = post(&client, &score_url, applicant.clone()).await;
        match status {
            200 => score_ok += 1,
            402 => break body,
            other => panic!("unexpected {other}: {}", String::from_utf8_lossy(&body)),
        }
        assert!(
            Instant::now() < deadline,
            "credit-score still answers 200 after the revocation"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(error_kind(&body), "unlicensed");
    let (status, out) = post(&client, &redact_url, "x@y.example.com").await;
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8(out).unwrap(), "[EMAIL]");
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
    chain
        .vendor
        .reinstate_customer(score.product_id, chain.customer_address())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let out = loop {
        let (status, body) = post(&client, &score_url, applicant.clone()).await;
        match status {
            200 => break body,
            402 => assert_eq!(error_kind(&body), "unlicensed"),
            other => panic!("unexpected {other}: {}", String::from_utf8_lossy(&body)),
        }
        assert!(
            Instant::now() < deadline,
            "credit-score still refused after the reinstatement"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    score_ok += 1;
    assert_eq!(String::from_utf8(out).unwrap(), SCORE);

    let (status, _) = serve.terminate();
    assert!(status.success());
    // Exactly the calls answered 200 were billed; the refused ones were never admitted.
    assert_eq!(chain.settled(&score).await, score_ok);
    assert_eq!(chain.settled(&redact).await, 1);
}
