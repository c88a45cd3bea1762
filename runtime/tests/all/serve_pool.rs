//! The call pool of `runtime serve`: calls run on `--call-workers` threads fed
//! by a queue of `--call-queue`; a call that finds the queue full is refused
//! at once with 503 and `Retry-After` (not run, not billed, counted in
//! `/metrics`), and every accepted call runs exactly once and is billed once.

use std::time::Duration;

use alloy::primitives::U256;

use crate::serve_support::*;

/// `spin` loops until the deadline ends it; `echo` returns its input.
const POOL_GUEST: &str = r#"
(module
  (memory (export "memory") 1)
  (func (export "sealbox_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "spin") (param i32 i32) (result i64)
    (loop $forever (br $forever))
    (i64.const 0))
  (func (export "echo") (param $ptr i32) (param $len i32) (result i64)
    (i64.or
      (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
      (i64.extend_i32_u (local.get $len)))))
"#;

async fn publish_pool_guest(chain: &Chain, units: u64) -> Sealed {
    let wasm = wat::parse_str(POOL_GUEST).unwrap();
    chain
        .publish_wasm(&wasm, "pool-guest", PRICE, U256::from(units * PRICE))
        .await
}

/// POSTs `body` to `url` in a task of its own.
fn post_later(
    client: &reqwest::Client,
    url: &str,
    body: &'static str,
) -> tokio::task::JoinHandle<(u16, Vec<u8>)> {
    let (client, url) = (client.clone(), url.to_string());
    tokio::spawn(async move { post(&client, &url, body).await })
}

fn gauge(text: &str, name: &str) -> f64 {
    sample(text, name, &[]).unwrap_or_else(|| panic!("no {name} in /metrics"))
}

/// Waits until `/metrics` shows `running` calls on workers and `queued` waiting.
async fn wait_pool(client: &reqwest::Client, serve: &Serve, running: f64, queued: f64) {
    eventually(
        Duration::from_secs(30),
        &format!("{running} call(s) running and {queued} queued"),
        || async {
            let text = metrics(client, serve, None).await;
            (gauge(&text, "sealbox_calls_running") == running
                && gauge(&text, "sealbox_call_queue_depth") == queued)
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_with_retry_after_and_bills_nothing() {
    let chain = Chain::new().await;
    let guest = publish_pool_guest(&chain, 1000).await;
    let client = http();
    let args = [
        "--call-workers",
        "1",
        "--call-queue",
        "1",
        "--max-deadline-ms",
        "2000",
    ];
    let serve = chain.serve(&[&guest], &args);
    wait_prepaid(&client, &serve, None, &["pool-guest"]).await;
    let text = metrics(&client, &serve, None).await;
    assert_eq!(gauge(&text, "sealbox_call_workers"), 1.0);
    assert_eq!(gauge(&text, "sealbox_call_queue_capacity"), 1.0);

    // The only worker spins until the deadline …
    let spin = post_later(&client, &serve.invoke_url(&guest, "spin"), "x");
    wait_pool(&client, &serve, 1.0, 0.0).await;
    // … one call waits in the queue …
    let echo = serve.invoke_url(&guest, "echo");
    let queued = post_later(&client, &echo, "queued");
    wait_pool(&client, &serve, 1.0, 1.0).await;
    // … and the next is refused at once, with a hint when to retry.
    let resp = client.post(&echo).body("refused").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap()),
        Some("1")
    );
    assert_eq!(error_kind(&resp.bytes().await.unwrap()), "queue-full");
    // A caller that gives up while queued: dropped unrun once a worker gets to it.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    // `queued` still waits for the spinning worker: refused again.
    assert_eq!(post(&client, &echo, "refused too").await.0, 503);

    let (status, out) = spin.await.unwrap();
    assert_eq!(status, 422, "{}", String::from_utf8_lossy(&out));
    assert_eq!(error_kind(&out), "deadline");
    let (status, out) = queued.await.unwrap();
    assert_eq!((status, out.as_slice()), (200, &b"queued"[..]));

    // With the worker free again, a call waits, its client leaves, the call is skipped.
    let spin = post_later(&client, &serve.invoke_url(&guest, "spin"), "x");
    wait_pool(&client, &serve, 1.0, 0.0).await;
    assert!(impatient.post(&echo).body("gone").send().await.is_err());
    let (status, _) = spin.await.unwrap();
    assert_eq!(status, 422);
    wait_pool(&client, &serve, 0.0, 0.0).await;
    assert_eq!(post_ok(&client, &echo, "after").await, "after");

    let text = metrics(&client, &serve, None).await;
    assert_eq!(call_errors(&text, "pool-guest", "queue-full"), Some(2.0));
    assert_eq!(gauge(&text, "sealbox_call_queue_rejected_total"), 2.0);
    assert_eq!(gauge(&text, "sealbox_call_queue_abandoned_total"), 1.0);
    // Billed: the two spins (they ran until the deadline), `queued` and `after`.
    assert_eq!(runtime_calls(&text, "pool-guest"), Some(4.0));
    serve.shutdown();
    assert_eq!(chain.journal_usage(&guest).used_units(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_call_runs_exactly_once_and_is_billed_once() {
    const CALLS: usize = 400;
    const CLIENTS: usize = 16;
    let chain = Chain::new().await;
    let guest = publish_pool_guest(&chain, 10_000).await;
    let client = http();
    let args = [
        "--call-workers",
        "2",
        "--call-queue",
        "64",
        "--prepay-min-units",
        "1000",
    ];
    let serve = chain.serve(&[&guest], &args);
    wait_prepaid(&client, &serve, None, &["pool-guest"]).await;
    let echo = serve.invoke_url(&guest, "echo");

    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (client, echo) = (client.clone(), echo.clone());
        tasks.push(tokio::spawn(async move {
            for i in (c..CALLS).step_by(CLIENTS) {
                let body = format!("call {i}");
                let (out, _) = post_paid(&client, &echo, body.clone()).await;
                assert_eq!(out, body, "each call answered with its own output");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }

    let text = metrics(&client, &serve, None).await;
    assert_eq!(runtime_calls(&text, "pool-guest"), Some(CALLS as f64));
    assert_eq!(gauge(&text, "sealbox_call_queue_rejected_total"), 0.0);
    assert_eq!(gauge(&text, "sealbox_call_queue_abandoned_total"), 0.0);
    let (status, lines) = serve.terminate();
    assert!(status.success(), "{lines:?}");
    let stopped = format!("stopped: {CALLS} call(s) answered, 0 refused or failed");
    assert!(lines.contains(&stopped), "{lines:?}");
    assert_eq!(chain.journal_usage(&guest).used_units(), CALLS as u64);
}
