//! `runtime serve` settles what it served: by units, at shutdown, by time,
//! and never twice across restarts. Real anvil, real HTTP, the real binary.

use std::time::Duration;

use alloy::primitives::U256;

use crate::serve_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admitted_call_is_settled_on_chain_exactly_once() {
    let chain = Chain::new().await;
    let redact = chain
        .publish(
            "text_redact.wat",
            "text-redact",
            PRICE,
            U256::from(PRICE) * U256::from(1000),
        )
        .await;
    let letter = example("inputs/letter.txt");
    let expected = example("inputs/letter.expected.txt");
    let client = http();

    let serve = chain.serve(
        &[&redact],
        &[
            "--settle-every-units",
            "10",
            "--settle-every-secs",
            "3600",
            "--refresh-secs",
            "3600",
        ],
    );
    let url = serve.invoke_url(&redact, "redact");

    // 10 calls: the unit trigger settles exactly these 10.
    for _ in 0..10 {
        let (status, out) = post(&client, &url, letter.clone()).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&out));
        assert_eq!(out, expected);
    }
    let settled = eventually(
        Duration::from_secs(30),
        "the first unit-triggered settlement",
        || async {
            let s = chain.settled(&redact).await;
            (s > 0).then_some(s)
        },
    )
    .await;
    assert_eq!(settled, 10);

    // 15 more from 5 concurrent clients: the trigger fires again at the 20th unit.
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let (client, url, letter) = (client.clone(), url.clone(), letter.clone());
        tasks.push(tokio::spawn(async move {
            let mut outs = Vec::new();
            for _ in 0..3 {
                outs.push(post(&client, &url, letter.clone()).await);
            }
            outs
        }));
    }
    for task in tasks {
        for (status, out) in task.await.unwrap() {
            assert_eq!(status, 200);
            assert_eq!(out, expected);
        }
    }
    let settled = eventually(
        Duration::from_secs(30),
        "the second unit-triggered settlement",
        || async {
            let s = chain.settled(&redact).await;
            (s >= 20).then_some(s)
        },
    )
    .await;
    assert!(
        settled <= 25,
        "settled {settled} units but only 25 calls were made"
    );

    let text = metrics(&client, &serve, None).await;
    let labels = [("name", "text-redact")];
    assert_eq!(
        sample(
            &text,
            "sealbox_calls_total",
            &[("name", "text-redact"), ("counter", "runtime")]
        ),
        Some(25.0)
    );
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
    let (status, lines) = serve.terminate();
    assert!(status.success(), "exit {status}; stdout {lines:?}");
    assert_eq!(chain.settled(&redact).await, 25);
    let vendor_revenue = chain
        .vendor
        .pending_revenue(chain.vendor.sender().unwrap())
        .await
        .unwrap();
    // Default fee 3000 bps: the vendor gets 70 %.
    assert_eq!(vendor_revenue, U256::from(25 * PRICE * 7 / 10));

    // Restart on the same journal: the journal and the chain agree, so nothing
    // is charged twice; two new calls are settled by the time trigger alone.
    let serve = chain.serve(
        &[&redact],
        &[
            "--settle-every-units",
            "1000",
            "--settle-every-secs",
            "1",
            "--refresh-secs",
            "3600",
        ],
    );
    let text = metrics(&client, &serve, None).await;
    assert_eq!(
        sample(&text, "sealbox_settled_units_total", &labels),
        Some(25.0)
    );
    assert_eq!(sample(&text, "sealbox_unsettled_units", &labels), Some(0.0));
    for _ in 0..2 {
        assert_eq!(
            post(
                &client,
                &serve.invoke_url(&redact, "redact"),
                "call +44 20 7946 0958"
            )
            .await
            .0,
            200
        );
    }
    let settled = eventually(
        Duration::from_secs(30),
        "the time-triggered settlement",
        || async {
            let s = chain.settled(&redact).await;
            (s > 25).then_some(s)
        },
    )
    .await;
    assert_eq!(settled, 27);
    let (status, _) = serve.terminate();
    assert!(status.success());
    assert_eq!(chain.settled(&redact).await, 27);
    let vendor_revenue = chain
        .vendor
        .pending_revenue(chain.vendor.sender().unwrap())
        .await
        .unwrap();
    assert_eq!(vendor_revenue, U256::from(27 * PRICE * 7 / 10));
}
