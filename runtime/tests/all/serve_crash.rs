//! SIGKILL under load, then restart: admitted units are never lost and never
//! double-counted.
//!
//! Invariant asserted: after the restarted server has settled,
//!   on-chain settled units == units admitted in the journal, and
//!   (calls answered 200) <= settled <= (calls answered 200) + (calls left
//!   unanswered by the kill).
//! A unit is journaled before its guest runs, so every 200 is in the journal;
//! a call in flight at the kill may have been admitted without an answer,
//! and is then billed (at most one per unanswered call). Receipts are
//! cumulative, so settlements before the kill, after the restart and at the
//! final shutdown never charge a unit twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sealbox_runtime::journal::{Journal, UsageKey};

use crate::serve_support::*;

const WORKERS: u64 = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_and_doubles_nothing() {
    let chain = Chain::new().await;
    let redact = chain.publish_text_redact(100_000).await;
    let client = http();
    let cadence = Cadence {
        settle_units: 20,
        ..Cadence::QUIET
    };
    let serve = chain.serve_with(&[&redact], cadence);
    let url = serve.invoke_url(&redact, "redact");

    let ok = Arc::new(AtomicU64::new(0));
    let unanswered = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (client, url, ok, unanswered) =
            (client.clone(), url.clone(), ok.clone(), unanswered.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let body = format!("worker {w}: call +1 415 555 0100 now");
                match client.post(&url).body(body).send().await {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        match resp.bytes().await {
                            Ok(out) => {
                                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&out));
                                assert_eq!(out, format!("worker {w}: call [PHONE] now").as_bytes());
                                ok.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(_) => {
                                unanswered.fetch_add(1, Ordering::SeqCst);
                                return;
                            }
                        }
                    }
                    Err(_) => {
                        unanswered.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                }
            }
        }));
    }
    // Kill it mid-stream, after some unit-triggered settlements happened.
    eventually(Duration::from_secs(60), "150 answered calls", || async {
        (ok.load(Ordering::SeqCst) >= 150).then_some(())
    })
    .await;
    let settled_before = chain.settled(&redact).await;
    serve.kill9();
    for w in workers {
        w.await.unwrap();
    }
    let ok = ok.load(Ordering::SeqCst);
    let unanswered = unanswered.load(Ordering::SeqCst);
    assert!(unanswered <= WORKERS);
    assert!(settled_before > 0, "no settlement happened under load");

    // Restart on the same journal: the backlog is settled at start.
    let serve = chain.serve_with(&[&redact], cadence);
    let text = metrics(&client, &serve, None).await;
    let admitted = runtime_calls(&text, "text-redact").unwrap() as u64;
    let settled = chain
        .wait_settled(
            &redact,
            Duration::from_secs(30),
            "the backlog settlement after restart",
            |s| s >= admitted,
        )
        .await;
    assert_eq!(
        settled, admitted,
        "settled on chain must equal the units the journal admitted"
    );
    assert!(
        ok <= settled && settled <= ok + unanswered,
        "{ok} calls answered 200, {unanswered} unanswered at the kill, {settled} settled"
    );

    // Shutting down again charges nothing more.
    serve.shutdown();
    assert_eq!(chain.settled(&redact).await, admitted);
    let journal = Journal::open(
        &chain
            .state_dir()
            .join(format!("journal-{}.db", chain.registry)),
    )
    .unwrap();
    let usage = journal
        .usage(&UsageKey {
            product: redact.product_id.0,
            customer: chain.customer_address().into_array(),
            signer: chain.runtime_key.address().into_array(),
        })
        .unwrap();
    assert_eq!(usage.runtime_units, admitted);
    assert_eq!(usage.settled_units, admitted);
    eprintln!(
        "kill test: {ok} answered, {unanswered} unanswered, {settled_before} settled before the kill, {admitted} admitted = settled"
    );
}
