//! `runtime serve` settles what it served: by units, at shutdown, by time,
//! and never twice across restarts. Real anvil, real HTTP, the real binary.

use std::time::Duration;

use alloy::primitives::U256;

use crate::serve_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admitted_call_is_settled_on_chain_exactly_once() {
    let chain = Chain::new().await;
    let redact = chain.publish_text_redact(1000).await;
    let letter = example("inputs/letter.txt");
    let expected = String::from_utf8(example("inputs/letter.expected.txt")).unwrap();
    let client = http();
    let limit = Duration::from_secs(30);

    let cadence = Cadence {
        settle_units: 10,
        ..Cadence::QUIET
    };
    let serve = chain.serve_with(&[&redact], cadence);
    let url = serve.invoke_url(&redact, "redact");

    // 10 calls: the unit trigger settles exactly these 10.
    for _ in 0..10 {
        assert_eq!(post_ok(&client, &url, letter.clone()).await, expected);
    }
    let what = "the first unit-triggered settlement";
    let settled = chain.wait_settled(&redact, limit, what, |s| s > 0).await;
    assert_eq!(settled, 10);

    // 15 more from 5 concurrent clients: the trigger fires again at the 20th unit.
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let (client, url, letter) = (client.clone(), url.clone(), letter.clone());
        tasks.push(tokio::spawn(async move {
            let mut outs = Vec::new();
            for _ in 0..3 {
                outs.push(post_ok(&client, &url, letter.clone()).await);
            }
            outs
        }));
    }
    for task in tasks {
        for out in task.await.unwrap() {
            assert_eq!(out, expected);
        }
    }
    let what = "the second unit-triggered settlement";
    let settled = chain.wait_settled(&redact, limit, what, |s| s >= 20).await;
    assert!(
        settled <= 25,
        "settled {settled} units but only 25 calls were made"
    );

    let text = metrics(&client, &serve, None).await;
    let labels = [("name", "text-redact")];
    assert_eq!(runtime_calls(&text, "text-redact"), Some(25.0));
    assert_eq!(
        sample(&text, "sealbox_call_duration_seconds_count", &labels),
        Some(25.0)
    );
    assert!(sample(&text, "sealbox_settle_gas_total", &labels).unwrap() > 0.0);
    assert!(sample(&text, "sealbox_settle_gas_last", &labels).unwrap() > 0.0);
    assert_eq!(
        sample(&text, "sealbox_kernel_meter_attached", &labels),
        Some(0.0)
    );

    // SIGTERM: the last round settles the remaining units.
    serve.shutdown();
    assert_eq!(chain.settled(&redact).await, 25);
    // Default fee 3000 bps: the vendor gets 70 %.
    assert_eq!(
        chain.vendor_revenue().await,
        U256::from(25 * PRICE * 7 / 10)
    );

    // Restart on the same journal: the journal and the chain agree, so nothing
    // is charged twice; two new calls are settled by the time trigger alone.
    let cadence = Cadence {
        settle_secs: 1,
        ..Cadence::QUIET
    };
    let serve = chain.serve_with(&[&redact], cadence);
    let text = metrics(&client, &serve, None).await;
    assert_eq!(
        sample(&text, "sealbox_settled_units_total", &labels),
        Some(25.0)
    );
    assert_eq!(sample(&text, "sealbox_unsettled_units", &labels), Some(0.0));
    let url = serve.invoke_url(&redact, "redact");
    for _ in 0..2 {
        let out = post_ok(&client, &url, "call +44 20 7946 0958").await;
        assert_eq!(out, "call [PHONE]");
    }
    let what = "the time-triggered settlement";
    let settled = chain.wait_settled(&redact, limit, what, |s| s > 25).await;
    assert_eq!(settled, 27);
    serve.shutdown();
    assert_eq!(chain.settled(&redact).await, 27);
    assert_eq!(
        chain.vendor_revenue().await,
        U256::from(27 * PRICE * 7 / 10)
    );
}
