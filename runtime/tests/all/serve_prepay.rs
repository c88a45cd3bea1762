//! `runtime serve` pays before use: every call runs on a unit its state
//! directory bought on chain before the call, blocks are bought ahead so
//! that serving rarely waits, a call that finds no bought unit is refused
//! (not run, not counted), and a restart runs on what was already bought.
//! Real anvil, real HTTP, the real binary.

use std::time::Duration;

use alloy::primitives::U256;
use license_contract::Reason;

use crate::serve_support::*;

/// Blocks of exactly this many units in these tests.
const BLOCK: u64 = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_runs_on_a_unit_bought_before_it() {
    let chain = Chain::new().await;
    let redact = chain.publish_text_redact(1000).await;
    let letter = example("inputs/letter.txt");
    let expected = String::from_utf8(example("inputs/letter.expected.txt")).unwrap();
    let client = http();
    let limit = Duration::from_secs(30);

    let serve = chain.serve_with(&[&redact], Cadence::blocks(BLOCK));
    let url = serve.invoke_url(&redact, "redact");

    // Before any call, the server buys one block: exactly BLOCK units.
    let what = "the first block";
    let first = chain.wait_bought(&redact, limit, what, |b| b > 0).await;
    assert_eq!(first, BLOCK);
    wait_prepaid(&client, &serve, None, &["text-redact"]).await;
    chain.assert_revenue(BLOCK).await;

    // Half the block used: exactly one block is bought ahead, no more.
    for _ in 0..BLOCK / 2 {
        assert_eq!(post_ok(&client, &url, letter.clone()).await, expected);
    }
    let what = "the block bought ahead";
    let ahead = chain.wait_bought(&redact, limit, what, |b| b > BLOCK).await;
    // A few rounds of the buying loop (every 500 ms) with more than half a block unused.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let text = metrics(&client, &serve, None).await;
    let ok = [("name", "text-redact"), ("result", "ok")];
    assert_eq!(
        (ahead, chain.bought(&redact).await),
        (2 * BLOCK, 2 * BLOCK),
        "{} units used of {BLOCK}: the rest of the block and one block ahead are enough",
        BLOCK / 2
    );
    assert_eq!(sample(&text, "sealbox_purchases_total", &ok), Some(2.0));
    assert_eq!(
        prepaid_units(&text, "text-redact"),
        Some((2 * BLOCK - BLOCK / 2) as f64)
    );

    // 5 calls more, then 15 from 5 concurrent clients. A call that finds
    // every bought unit used is refused `prepaying` and retried.
    let mut refused = 0;
    for _ in 0..BLOCK / 2 {
        let (out, r) = post_paid(&client, &url, letter.clone()).await;
        assert_eq!(out, expected);
        refused += r;
    }
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let (client, url, letter) = (client.clone(), url.clone(), letter.clone());
        tasks.push(tokio::spawn(async move {
            let mut outs = Vec::new();
            for _ in 0..3 {
                outs.push(post_paid(&client, &url, letter.clone()).await);
            }
            outs
        }));
    }
    for task in tasks {
        for (out, r) in task.await.unwrap() {
            assert_eq!(out, expected);
            refused += r;
        }
    }
    const CALLS: u64 = 25;

    let text = metrics(&client, &serve, None).await;
    let labels = [("name", "text-redact")];
    // Used: exactly the calls that ran; the refused ones were not counted.
    assert_eq!(runtime_calls(&text, "text-redact"), Some(CALLS as f64));
    assert_eq!(
        sample(&text, "sealbox_call_duration_seconds_count", &labels),
        Some(CALLS as f64)
    );
    let prepaying = call_errors(&text, "text-redact", "prepaying").unwrap_or(0.0);
    assert_eq!(
        prepaying, refused as f64,
        "every prepaying refusal is counted as one"
    );
    // 25 units need at least three blocks of 10.
    let purchases = sample(&text, "sealbox_purchases_total", &ok).unwrap();
    assert!(purchases >= 3.0, "{purchases} purchases for {CALLS} units");
    assert!(sample(&text, "sealbox_purchase_gas_total", &labels).unwrap() > 0.0);
    assert!(sample(&text, "sealbox_purchase_gas_last", &labels).unwrap() > 0.0);
    assert_eq!(
        sample(&text, "sealbox_price_wei", &labels),
        Some(PRICE as f64)
    );
    assert_eq!(
        sample(&text, "sealbox_kernel_meter_attached", &labels),
        Some(0.0)
    );

    // SIGTERM: a purchase in flight completes; nothing is owed, nothing settled.
    serve.shutdown();
    let bought = chain.bought(&redact).await;
    assert!(
        bought >= CALLS,
        "ran {CALLS} calls on {bought} bought units"
    );
    assert!(
        bought - CALLS <= 2 * BLOCK,
        "bought {bought} for {CALLS} calls: more than the rest of the block and one block ahead"
    );
    assert_eq!(bought % BLOCK, 0, "every purchase is one block of {BLOCK}");
    chain.assert_revenue(bought).await;
    let usage = chain.journal_usage(&redact);
    assert_eq!(usage.runtime_units, CALLS);
    assert_eq!(usage.used_units(), CALLS);
    assert_eq!(
        usage.bought_units, bought,
        "the journal agrees with the chain"
    );

    // Restart on the same state directory (the same buyer), with blocks of 2:
    // the units left (at least 5: bought is a multiple of 10 and ≥ 25) run
    // the next calls, and nothing is bought or charged twice.
    let serve = chain.serve_with(&[&redact], Cadence::blocks(2));
    let text = metrics(&client, &serve, None).await;
    assert_eq!(runtime_calls(&text, "text-redact"), Some(CALLS as f64));
    assert_eq!(bought_units(&text, "text-redact"), Some(bought as f64));
    assert_eq!(
        prepaid_units(&text, "text-redact"),
        Some((bought - CALLS) as f64)
    );
    let url = serve.invoke_url(&redact, "redact");
    for _ in 0..2 {
        let out = post_ok(&client, &url, "call +44 20 7946 0958").await;
        assert_eq!(out, "call [PHONE]");
    }
    // A few rounds of the buying loop (every 500 ms) find enough units left.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let text = metrics(&client, &serve, None).await;
    assert_eq!(
        runtime_calls(&text, "text-redact"),
        Some((CALLS + 2) as f64)
    );
    assert_eq!(sample(&text, "sealbox_purchases_total", &ok), Some(0.0));
    serve.shutdown();
    assert_eq!(
        chain.bought(&redact).await,
        bought,
        "no purchase after the restart"
    );
    chain.assert_revenue(bought).await;
    assert_eq!(chain.journal_usage(&redact).used_units(), CALLS + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_buys_nothing_while_bought_units_remain() {
    let chain = Chain::new().await;
    let redact = chain.publish_text_redact(1000).await;
    let client = http();
    let serve = chain.serve_with(&[&redact], Cadence::blocks(BLOCK));
    wait_prepaid(&client, &serve, None, &["text-redact"]).await;
    let url = serve.invoke_url(&redact, "redact");
    for _ in 0..3 {
        assert_eq!(post_ok(&client, &url, "a@b.example.com").await, "[EMAIL]");
    }
    serve.shutdown();
    assert_eq!(
        chain.bought(&redact).await,
        BLOCK,
        "3 of 10 used: nothing bought ahead"
    );

    // Restarted with the default largest block and blocks of at least 2: 7
    // units are left, more than half a block, and nobody has called yet, so
    // there is nothing to buy (the calls counted before the restart are no
    // call rate of this process).
    let cadence = Cadence {
        min_units: 2,
        max_units: 1_000_000,
        refresh_secs: 3600,
    };
    let serve = chain.serve_with(&[&redact], cadence);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let text = metrics(&client, &serve, None).await;
    let ok = [("name", "text-redact"), ("result", "ok")];
    assert_eq!(
        sample(&text, "sealbox_purchases_total", &ok),
        Some(0.0),
        "7 units were left, yet the restarted server bought {} units in all",
        chain.bought(&redact).await
    );
    assert_eq!(
        prepaid_units(&text, "text-redact"),
        Some((BLOCK - 3) as f64)
    );
    let url = serve.invoke_url(&redact, "redact");
    for _ in 0..3 {
        assert_eq!(post_ok(&client, &url, "a@b.example.com").await, "[EMAIL]");
    }
    serve.shutdown();
    // The 3 calls ran on the units bought before the restart; the rate they
    // show may already make the loop buy the next block ahead (a minute of
    // calls), which is then paid in full like any other.
    assert_eq!(chain.journal_usage(&redact).used_units(), 6);
    let bought = chain.bought(&redact).await;
    assert!(bought >= BLOCK, "bought {bought}");
    chain.assert_revenue(bought).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_finds_no_bought_unit_is_refused_and_not_counted() {
    let chain = Chain::new().await;
    let redact = chain.publish_text_redact(1000).await;
    let client = http();
    let serve = chain.serve_with(&[&redact], Cadence::blocks(BLOCK));
    let url = serve.invoke_url(&redact, "redact");
    wait_prepaid(&client, &serve, None, &["text-redact"]).await;
    assert_eq!(chain.bought(&redact).await, BLOCK);

    // The chain stops mining: the next purchase (sent at half the block)
    // waits in the mempool, and the block runs out.
    chain
        .anvil
        .rpc("evm_setAutomine", serde_json::json!([false]))
        .await;
    for _ in 0..BLOCK {
        assert_eq!(post_ok(&client, &url, "a@b.example.com").await, "[EMAIL]");
    }
    for _ in 0..2 {
        let resp = client
            .post(&url)
            .body("a@b.example.com")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 402);
        assert_eq!(resp.headers()["retry-after"].to_str().unwrap(), "1");
        assert_eq!(error_kind(&resp.bytes().await.unwrap()), "prepaying");
    }
    let text = metrics(&client, &serve, None).await;
    assert_eq!(runtime_calls(&text, "text-redact"), Some(BLOCK as f64));
    assert_eq!(call_errors(&text, "text-redact", "prepaying"), Some(2.0));
    assert_eq!(prepaid_units(&text, "text-redact"), Some(0.0));
    assert_eq!(bought_units(&text, "text-redact"), Some(BLOCK as f64));
    assert_eq!(
        chain.bought(&redact).await,
        BLOCK,
        "the purchase is not mined"
    );

    // Mined: the next block is bought and calls run again.
    chain.anvil.rpc("evm_mine", serde_json::json!([])).await;
    chain
        .anvil
        .rpc("evm_setAutomine", serde_json::json!([true]))
        .await;
    let limit = Duration::from_secs(30);
    let what = "calls to run after the purchase is mined";
    let resumed = post_until(&client, &url, "a@b.example.com", (402, 200), limit, what).await;
    for refusal in &resumed.before {
        assert_eq!(error_kind(refusal), "prepaying");
    }
    assert_eq!(String::from_utf8(resumed.after).unwrap(), "[EMAIL]");
    let used = BLOCK + 1;

    serve.shutdown();
    assert_eq!(chain.journal_usage(&redact).used_units(), used);
    let bought = chain.bought(&redact).await;
    assert!(
        bought >= 2 * BLOCK,
        "the stuck purchase was mined: {bought}"
    );
    assert!(
        bought - used <= 2 * BLOCK,
        "bought {bought} for {used} calls"
    );
    chain.assert_revenue(bought).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escrow_for_q_units_runs_exactly_q_calls() {
    const Q: u64 = 25;
    let chain = Chain::new().await;
    let redact = chain.publish_text_redact(Q).await;
    let client = http();
    let serve = chain.serve_with(&[&redact], Cadence::blocks(BLOCK));
    let url = serve.invoke_url(&redact, "redact");
    wait_prepaid(&client, &serve, None, &["text-redact"]).await;

    // Blocks of 10, 10, then the 5 the escrow still pays for.
    for i in 0..Q {
        let body = format!("call {i}: 555 123 4567");
        let (out, _) = post_paid(&client, &url, body).await;
        assert_eq!(out, format!("call {i}: [PHONE]"));
    }
    // The buying loop's next license check finds the escrow empty…
    let labels = [("name", "text-redact")];
    eventually(
        Duration::from_secs(30),
        "the escrow to be seen empty",
        || async {
            let text = metrics(&client, &serve, None).await;
            let available = sample(&text, "sealbox_escrow_available_wei", &labels);
            (available == Some(0.0)).then_some(())
        },
    )
    .await;
    // …so call Q+1 is refused for good: no unit is bought, none can be.
    assert_refused(&client, &url, "555 123 4567", 402, "not-bought").await;

    let text = metrics(&client, &serve, None).await;
    assert_eq!(runtime_calls(&text, "text-redact"), Some(Q as f64));
    assert_eq!(call_errors(&text, "text-redact", "not-bought"), Some(1.0));
    assert_eq!(bought_units(&text, "text-redact"), Some(Q as f64));
    assert_eq!(prepaid_units(&text, "text-redact"), Some(0.0));
    serve.shutdown();

    assert_eq!(chain.bought(&redact).await, Q);
    assert_eq!(chain.journal_usage(&redact).used_units(), Q);
    chain.assert_revenue(Q).await;
    let license = chain
        .customer
        .license_status(redact.product_id, chain.customer_address(), None)
        .await
        .unwrap();
    assert_eq!(
        license.balance,
        U256::ZERO,
        "the Q units used the whole escrow"
    );
    assert_eq!(license.available, U256::ZERO);
    assert_eq!(license.reason, Reason::NoBalance);
    assert_eq!(license.bought_units, Q);
}
