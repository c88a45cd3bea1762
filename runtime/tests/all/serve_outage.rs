//! An RPC outage while serving: calls go on on the units already bought,
//! then are refused 402 once those are used (nothing can be bought); buying
//! retries with backoff and resumes once the RPC is back. No unit ever runs
//! unbought.
//!
//! The outage is real: the runtime reaches anvil through a TCP relay in this
//! test that, when switched off, cuts open connections and drops new ones.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::serve_support::*;

/// A TCP relay to `target` that can be switched off and on.
struct Relay {
    addr: SocketAddr,
    down: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (down, watch) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let mut watch = watch.clone();
                if *watch.borrow() {
                    continue; // dropped: the client sees the connection close
                }
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = watch.wait_for(|down| *down) => {}
                    }
                });
            }
        });
        Relay { addr, down, task }
    }

    fn set_down(&self, down: bool) {
        self.down.send_replace(down);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_outage_runs_on_bought_units_and_buys_again_after_it() {
    const BLOCK: u64 = 10;
    let chain = Chain::new().await;
    let redact = chain.publish_text_redact(1000).await;
    let relay = Relay::start(SocketAddr::from(([127, 0, 0, 1], chain.anvil.port()))).await;
    let mut args = chain.serve_args(&[&redact]);
    set_flag(&mut args, "--rpc", format!("http://{}", relay.addr));
    let cadence = Cadence {
        refresh_secs: 1,
        ..Cadence::blocks(BLOCK)
    };
    args.extend(cadence.args());
    let serve = chain.spawn_serve(&args);
    let client = http();
    let url = serve.invoke_url(&redact, "redact");
    let mut answered = 0u64;
    // Calls while the answer is `from`, until it is `to`, for at most `secs`.
    let until = |(from, to), secs, what| {
        let limit = Duration::from_secs(secs);
        post_until(&client, &url, "a@b.example.com", (from, to), limit, what)
    };

    // The first block is mined before the runtime has its receipt: cut the
    // RPC only once the runtime has recorded it.
    let labels = [("name", "text-redact")];
    let ok = [("name", "text-redact"), ("result", "ok")];
    let limit = Duration::from_secs(30);
    eventually(limit, "the runtime to record its first block", || async {
        let text = metrics(&client, &serve, None).await;
        let recorded = bought_units(&text, "text-redact") == Some(BLOCK as f64)
            && sample(&text, "sealbox_purchases_total", &ok) == Some(1.0);
        recorded.then_some(())
    })
    .await;
    assert_eq!(chain.bought(&redact).await, BLOCK);
    for _ in 0..2 {
        assert_eq!(post_ok(&client, &url, "a@b.example.com").await, "[EMAIL]");
        answered += 1;
    }

    // Outage: the 8 units left run…
    relay.set_down(true);
    let used_up = until((200, 402), 20, "the bought units to run out in the outage").await;
    assert_eq!(
        used_up.before.len() as u64,
        BLOCK - answered,
        "exactly the units bought before the outage run in it"
    );
    answered += used_up.before.len() as u64;
    // …then calls are refused, not run: the next block cannot be bought.
    assert_eq!(error_kind(&used_up.after), "prepaying");
    assert_refused(&client, &url, "a@b.example.com", 402, "prepaying").await;
    let what = "a failed license check in the outage";
    let text = eventually(limit, what, || async {
        let text = metrics(&client, &serve, None).await;
        let errors = [("name", "text-redact"), ("result", "error")];
        let failed = sample(&text, "sealbox_license_checks_total", &errors).unwrap();
        (failed >= 1.0).then_some(text)
    })
    .await;
    let failed = [("name", "text-redact"), ("result", "failed")];
    assert!(sample(&text, "sealbox_purchases_total", &failed).unwrap() >= 1.0);
    assert_eq!(sample(&text, "sealbox_purchases_total", &ok), Some(1.0));
    assert_eq!(runtime_calls(&text, "text-redact"), Some(answered as f64));
    assert_eq!(prepaid_units(&text, "text-redact"), Some(0.0));
    assert_eq!(bought_units(&text, "text-redact"), Some(BLOCK as f64));
    assert!(call_errors(&text, "text-redact", "prepaying").unwrap() >= 2.0);
    assert_eq!(
        chain.bought(&redact).await,
        BLOCK,
        "nothing can be bought during the outage"
    );

    // The RPC is back: the retrying purchase goes through and calls run again.
    relay.set_down(false);
    let resumed = until((402, 200), 40, "buying to resume after the outage").await;
    for refusal in &resumed.before {
        assert_eq!(error_kind(refusal), "prepaying");
    }
    answered += 1;
    for _ in 0..5 {
        let (out, _) = post_paid(&client, &url, "a@b.example.com").await;
        assert_eq!(out, "[EMAIL]");
        answered += 1;
    }
    let text = metrics(&client, &serve, None).await;
    assert!(sample(&text, "sealbox_purchases_total", &ok).unwrap() >= 2.0);
    assert_eq!(runtime_calls(&text, "text-redact"), Some(answered as f64));
    assert_eq!(
        sample(&text, "sealbox_call_duration_seconds_count", &labels),
        Some(answered as f64)
    );
    serve.shutdown();

    // No unit ran unbought; the refused calls never ran.
    assert_eq!(chain.journal_usage(&redact).used_units(), answered);
    let bought = chain.bought(&redact).await;
    assert!(
        bought >= answered,
        "{answered} calls ran on {bought} bought units"
    );
    assert!(
        bought - answered <= 2 * BLOCK,
        "bought {bought} for {answered} calls"
    );
    chain.assert_revenue(bought).await;
}
