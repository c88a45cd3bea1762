//! SIGKILL under load, then restart on the same state directory: no unit is
//! lost, none runs twice, and none runs unbought.
//!
//! Invariants asserted:
//!   (calls answered 200) <= used (journal) <= (calls answered 200) + (calls
//!   left unanswered by the kill), and used <= bought on chain.
//! A unit is journaled before its guest runs, so every 200 is in the journal;
//! a call in flight at the kill may have used a unit without an answer (at
//! most one per unanswered call). The restarted server is the same buyer: it
//! goes on counting from the journal's count, on the units already bought.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::serve_support::*;

const WORKERS: u64 = 8;
/// Blocks of exactly this many units: several purchases happen under load.
const BLOCK: u64 = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_and_doubles_nothing() {
    let chain = Chain::new().await;
    let redact = chain.publish_text_redact(100_000).await;
    let client = http();
    let cadence = Cadence::blocks(BLOCK);
    let buyer = buyer_of(&chain.state_dir());
    let serve = chain.serve_with(&[&redact], cadence);
    let url = serve.invoke_url(&redact, "redact");
    wait_prepaid(&client, &serve, None, &["text-redact"]).await;

    let ok = Arc::new(AtomicU64::new(0));
    let prepaying = Arc::new(AtomicU64::new(0));
    let unanswered = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (client, url) = (client.clone(), url.clone());
        let (ok, prepaying, unanswered) = (ok.clone(), prepaying.clone(), unanswered.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let body = format!("worker {w}: call +1 415 555 0100 now");
                let Ok(resp) = client.post(&url).body(body).send().await else {
                    unanswered.fetch_add(1, Ordering::SeqCst);
                    return;
                };
                let status = resp.status().as_u16();
                let Ok(out) = resp.bytes().await else {
                    unanswered.fetch_add(1, Ordering::SeqCst);
                    return;
                };
                if status == 402 {
                    // The next block is being bought: not run, not counted.
                    assert_eq!(error_kind(&out), "prepaying");
                    prepaying.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&out));
                assert_eq!(out, format!("worker {w}: call [PHONE] now").as_bytes());
                ok.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    // Kill it mid-stream, after several purchases happened under load, just
    // after one more was mined (so that units are left for the restart).
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = chain.bought(&redact).await;
    loop {
        let bought = chain.bought(&redact).await;
        if ok.load(Ordering::SeqCst) >= 3 * BLOCK + 50 && bought > last {
            break;
        }
        last = bought;
        assert!(Instant::now() < deadline, "no purchase under load");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    serve.kill9();
    for w in workers {
        w.await.unwrap();
    }
    let ok = ok.load(Ordering::SeqCst);
    let unanswered = unanswered.load(Ordering::SeqCst);
    assert!(unanswered <= WORKERS);

    // What the killed server left: every 200 used a unit, no unit ran unbought.
    let bought = chain.bought(&redact).await;
    let usage = chain.journal_usage(&redact);
    let used = usage.used_units();
    assert!(
        ok <= used && used <= ok + unanswered,
        "{ok} calls answered 200, {unanswered} unanswered at the kill, {used} used"
    );
    assert!(used <= bought, "{used} units used, {bought} bought");
    assert!(usage.bought_units <= bought);
    assert!(
        bought >= 4 * BLOCK,
        "purchases happened under load: {bought}"
    );
    assert_eq!(bought % BLOCK, 0, "every purchase is one block");
    chain.assert_revenue(bought).await;

    // Restart on the same state directory: the same buyer, counting on from
    // the journal, on the units bought before the kill.
    assert_eq!(buyer_of(&chain.state_dir()), buyer);
    let serve = chain.serve_with(&[&redact], cadence);
    let text = metrics(&client, &serve, None).await;
    assert_eq!(runtime_calls(&text, "text-redact"), Some(used as f64));
    let left = bought - used;
    let url = serve.invoke_url(&redact, "redact");
    if left > BLOCK / 2 {
        // More than half a block left: no purchase needed.
        assert_eq!(bought_units(&text, "text-redact"), Some(bought as f64));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let text = metrics(&client, &serve, None).await;
        let ok = [("name", "text-redact"), ("result", "ok")];
        assert_eq!(sample(&text, "sealbox_purchases_total", &ok), Some(0.0));
        assert_eq!(chain.bought(&redact).await, bought, "{left} units left");
    } else {
        // Half a block or less: the restarted server buys one block for this buyer.
        let limit = Duration::from_secs(30);
        let what = "the purchase after the restart";
        let after = chain
            .wait_bought(&redact, limit, what, |b| b > bought)
            .await;
        assert_eq!(after, bought + BLOCK);
    }
    for i in 0..10 {
        let body = format!("restart {i}: 555 123 4567");
        let (out, _) = post_paid(&client, &url, body).await;
        assert_eq!(out, format!("restart {i}: [PHONE]"));
    }
    serve.shutdown();

    let usage = chain.journal_usage(&redact);
    assert_eq!(usage.used_units(), used + 10);
    assert_eq!(usage.runtime_units, used + 10);
    let final_bought = chain.bought(&redact).await;
    assert_eq!(
        usage.bought_units, final_bought,
        "the journal agrees with the chain"
    );
    assert!(final_bought >= used + 10);
    assert!(final_bought - (used + 10) <= 2 * BLOCK);
    chain.assert_revenue(final_bought).await;
    eprintln!(
        "kill test: {ok} answered, {unanswered} unanswered, {} refused prepaying, {used} used, \
         {bought} bought at the kill, {left} left; {final_bought} bought at the end",
        prepaying.load(Ordering::SeqCst)
    );
}
