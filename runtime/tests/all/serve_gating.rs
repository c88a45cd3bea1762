//! Per-product license gating in `runtime serve`: one product whose escrow
//! runs out, whose license lapses or whose signer is deauthorized answers
//! 402 while the other goes on; a block already bought runs to its end when
//! only the money for the next one is missing.

use std::time::Duration;

use alloy::primitives::U256;
use license_contract::Reason;

use crate::serve_support::*;

/// `score` on examples/inputs/applicant.json, derived by hand in
/// examples/algorithms/credit-score/README.md.
const SCORE: &str = r#"{"score":592,"band":"D","reasons":["short_credit_history","high_debt_to_income","late_payments"]}"#;

/// The default block (`--prepay-min-units`), bought at start.
const BLOCK: u64 = 100;

/// Waits until the server's last license check of product `name` found that
/// nothing more can be bought (its stored escrow available is 0).
async fn wait_cannot_buy(client: &reqwest::Client, serve: &Serve, name: &str) {
    eventually(
        Duration::from_secs(30),
        "the server to see that nothing more can be bought",
        || async {
            let text = metrics(client, serve, None).await;
            let available = sample(&text, "sealbox_escrow_available_wei", &[("name", name)]);
            (available == Some(0.0)).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_escrow_refuses_that_product_while_another_serves() {
    let chain = Chain::new().await;
    // The escrow of credit-score pays for exactly 5 units: its first block is
    // those 5, not the default 100.
    let score = chain.publish_credit_score(5).await;
    let redact = chain.publish_text_redact(1000).await;
    let serve = chain.serve_with(&[&score, &redact], Cadence::QUIET);
    let (client, applicant) = (http(), example("inputs/applicant.json"));
    wait_prepaid(&client, &serve, None, &["credit-score", "text-redact"]).await;
    assert_eq!(chain.bought(&score).await, 5);
    assert_eq!(chain.bought(&redact).await, BLOCK);
    let score_url = serve.invoke_url(&score, "score");
    let redact_url = serve.invoke_url(&redact, "redact");

    for _ in 0..5 {
        let out = post_ok(&client, &score_url, applicant.clone()).await;
        assert_eq!(out, SCORE);
        let out = post_ok(&client, &redact_url, "mail me at a.b@example.org").await;
        assert_eq!(out, "mail me at [EMAIL]");
    }
    // The sixth unit was never bought and cannot be: refused before the guest runs.
    wait_cannot_buy(&client, &serve, "credit-score").await;
    assert_refused(&client, &score_url, applicant.clone(), 402, "not-bought").await;
    // The other product is not affected.
    for _ in 0..3 {
        let out = post_ok(&client, &redact_url, "call 555 123 4567").await;
        assert_eq!(out, "call [PHONE]");
    }

    let text = metrics(&client, &serve, None).await;
    let s = [("name", "credit-score")];
    assert_eq!(runtime_calls(&text, "credit-score"), Some(5.0));
    assert_eq!(call_errors(&text, "credit-score", "not-bought"), Some(1.0));
    assert_eq!(sample(&text, "sealbox_escrow_available_wei", &s), Some(0.0));
    assert_eq!(bought_units(&text, "credit-score"), Some(5.0));
    assert_eq!(prepaid_units(&text, "credit-score"), Some(0.0));
    // Still licensed: only the money is missing.
    assert_eq!(sample(&text, "sealbox_license_active", &s), Some(1.0));
    assert_eq!(runtime_calls(&text, "text-redact"), Some(8.0));

    serve.shutdown();
    assert_eq!(chain.bought(&score).await, 5);
    assert_eq!(
        chain.bought(&redact).await,
        BLOCK,
        "8 calls used less than half a block"
    );
    chain.assert_revenue(5 + BLOCK).await;
    let license = chain
        .customer
        .license_status(score.product_id, chain.customer_address(), None)
        .await
        .unwrap();
    assert_eq!(
        license.available,
        U256::ZERO,
        "the 5 units bought used the whole escrow"
    );
    assert_eq!(license.balance, U256::ZERO);
    assert_eq!(license.reason, Reason::NoBalance);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bought_block_runs_to_its_end_after_the_escrow_is_withdrawn() {
    const SMALL: u64 = 10;
    let chain = Chain::new().await;
    let score = chain.publish_credit_score(1000).await;
    let redact = chain.publish_text_redact(1000).await;
    let serve = chain.serve_with(&[&score, &redact], Cadence::blocks(SMALL));
    let (client, applicant) = (http(), example("inputs/applicant.json"));
    wait_prepaid(&client, &serve, None, &["credit-score", "text-redact"]).await;
    assert_eq!(chain.bought(&score).await, SMALL);
    let score_url = serve.invoke_url(&score, "score");
    let redact_url = serve.invoke_url(&redact, "redact");

    // The customer asks for everything left in the escrow back: the license
    // holds, but nothing more can be bought.
    let (customer, id) = (chain.customer_address(), score.product_id);
    let license = || chain.customer.license_status(id, customer, None);
    let before = license().await.unwrap();
    assert_eq!(before.available, U256::from(990 * PRICE));
    chain
        .customer
        .request_withdrawal(score.product_id, before.available)
        .await
        .unwrap();
    let after = license().await.unwrap();
    assert_eq!(after.available, U256::ZERO);
    assert_eq!(after.reason, Reason::WithdrawalPending);

    // The stranded block runs to its end…
    for _ in 0..SMALL {
        assert_eq!(post_ok(&client, &score_url, applicant.clone()).await, SCORE);
    }
    // …then the product stops, the other one goes on.
    wait_cannot_buy(&client, &serve, "credit-score").await;
    assert_refused(&client, &score_url, applicant.clone(), 402, "not-bought").await;
    assert_eq!(
        post_ok(&client, &redact_url, "x@y.example.com").await,
        "[EMAIL]"
    );
    let text = metrics(&client, &serve, None).await;
    let s = [("name", "credit-score")];
    assert_eq!(runtime_calls(&text, "credit-score"), Some(SMALL as f64));
    assert_eq!(call_errors(&text, "credit-score", "not-bought"), Some(1.0));
    assert_eq!(prepaid_units(&text, "credit-score"), Some(0.0));
    assert_eq!(sample(&text, "sealbox_license_active", &s), Some(1.0));
    let failed = [("name", "credit-score"), ("result", "failed")];
    assert!(sample(&text, "sealbox_purchases_total", &failed).unwrap() >= 1.0);
    assert_eq!(
        chain.bought(&score).await,
        SMALL,
        "nothing bought after the request"
    );
    assert_eq!(license().await.unwrap().balance, U256::from(990 * PRICE));

    // Withdrawal cancelled: buying resumes at the next attempt, without a restart.
    chain
        .customer
        .cancel_withdrawal(score.product_id)
        .await
        .unwrap();
    let limit = Duration::from_secs(30);
    let what = "credit-score to run again after the cancellation";
    let resumed = post_until(
        &client,
        &score_url,
        applicant.clone(),
        (402, 200),
        limit,
        what,
    )
    .await;
    for refusal in &resumed.before {
        let kind = error_kind(refusal);
        assert!(kind == "not-bought" || kind == "prepaying", "{kind}");
    }
    assert_eq!(String::from_utf8(resumed.after).unwrap(), SCORE);
    let used = SMALL + 1;

    serve.shutdown();
    assert_eq!(chain.journal_usage(&score).used_units(), used);
    let bought = chain.bought(&score).await;
    assert!(
        bought > SMALL && bought - used <= 2 * SMALL,
        "bought {bought}"
    );
    let redact_bought = chain.bought(&redact).await;
    assert_eq!(redact_bought, SMALL, "one call used less than half a block");
    chain.assert_revenue(bought + redact_bought).await;
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
    wait_prepaid(&client, &serve, None, &["credit-score", "text-redact"]).await;
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
    // Calls before the refresh notices still run (on bought units): count them.
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
    // The units bought and not used wait, unused, for the license to come back.
    assert_eq!(runtime_calls(&text, "credit-score"), Some(score_ok as f64));
    assert_eq!(
        prepaid_units(&text, "credit-score"),
        Some((BLOCK - score_ok) as f64)
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
    // Exactly the calls answered 200 were counted; the refused ones never ran.
    assert_eq!(chain.journal_usage(&score).used_units(), score_ok);
    assert_eq!(chain.journal_usage(&redact).used_units(), 1);
    // Each used less than half of the one block bought at start.
    assert!(score_ok < BLOCK / 2, "{score_ok} calls");
    assert_eq!(chain.bought(&score).await, BLOCK);
    assert_eq!(chain.bought(&redact).await, BLOCK);
    chain.assert_revenue(2 * BLOCK).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deauthorized_signer_stops_at_the_next_refresh() {
    let chain = Chain::new().await;
    let score = chain.publish_credit_score(1000).await;
    let redact = chain.publish_text_redact(1000).await;
    let cadence = Cadence {
        refresh_secs: 1,
        ..Cadence::QUIET
    };
    let serve = chain.serve_with(&[&score, &redact], cadence);
    let (client, applicant) = (http(), example("inputs/applicant.json"));
    wait_prepaid(&client, &serve, None, &["credit-score", "text-redact"]).await;
    let score_url = serve.invoke_url(&score, "score");
    let redact_url = serve.invoke_url(&redact, "redact");
    assert_eq!(post_ok(&client, &score_url, applicant.clone()).await, SCORE);
    let limit = Duration::from_secs(20);

    // The customer deauthorizes the runtime's key for credit-score (only).
    let signer = chain.runtime_key.address();
    chain
        .customer
        .deauthorize_signer(score.product_id, signer)
        .await
        .unwrap();
    let what = "credit-score to refuse after the deauthorization";
    let stopped = post_until(
        &client,
        &score_url,
        applicant.clone(),
        (200, 402),
        limit,
        what,
    )
    .await;
    let score_ok = 1 + stopped.before.len() as u64;
    assert_eq!(error_kind(&stopped.after), "signer-not-authorized");
    // The calls after it are refused too, and not counted.
    for _ in 0..3 {
        assert_refused(
            &client,
            &score_url,
            applicant.clone(),
            402,
            "signer-not-authorized",
        )
        .await;
    }
    assert_eq!(
        post_ok(&client, &redact_url, "x@y.example.com").await,
        "[EMAIL]"
    );
    let text = metrics(&client, &serve, None).await;
    assert_eq!(runtime_calls(&text, "credit-score"), Some(score_ok as f64));
    assert_eq!(
        call_errors(&text, "credit-score", "signer-not-authorized"),
        Some(4.0)
    );
    assert_eq!(
        sample(&text, "sealbox_license_active", &[("name", "credit-score")]),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, "sealbox_license_active", &[("name", "text-redact")]),
        Some(1.0)
    );

    // Authorized again: the next refresh resumes on the units this buyer
    // bought before (the chain kept its counter).
    chain
        .customer
        .authorize_signer(score.product_id, signer)
        .await
        .unwrap();
    let what = "credit-score to run after the re-authorization";
    let resumed = post_until(
        &client,
        &score_url,
        applicant.clone(),
        (402, 200),
        limit,
        what,
    )
    .await;
    for refusal in &resumed.before {
        assert_eq!(error_kind(refusal), "signer-not-authorized");
    }
    assert_eq!(String::from_utf8(resumed.after).unwrap(), SCORE);

    serve.shutdown();
    assert_eq!(chain.journal_usage(&score).used_units(), score_ok + 1);
    assert!(score_ok + 1 < BLOCK / 2, "{score_ok} calls");
    assert_eq!(
        chain.bought(&score).await,
        BLOCK,
        "one block, bought at start"
    );
    assert_eq!(chain.bought(&redact).await, BLOCK);
    chain.assert_revenue(2 * BLOCK).await;
}
