//! An RPC outage while serving: calls go on under the stored lease until it
//! is too old (then 402), settlement retries with backoff, and everything
//! admitted is settled once the RPC is back.
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
async fn rpc_outage_runs_on_the_lease_and_settles_after_it() {
    let chain = Chain::new().await;
    let redact = chain.publish_text_redact(1000).await;
    let relay = Relay::start(SocketAddr::from(([127, 0, 0, 1], chain.anvil.port()))).await;
    let mut args = chain.serve_args(&[&redact]);
    set_flag(&mut args, "--rpc", format!("http://{}", relay.addr));
    let cadence = Cadence {
        settle_secs: 1,
        refresh_secs: 1,
        ..Cadence::QUIET
    };
    args.extend(cadence.args());
    args.extend(["--lease-max-age".to_string(), "4".to_string()]);
    let serve = chain.spawn_serve(&args);
    let client = http();
    let url = serve.invoke_url(&redact, "redact");
    let mut answered = 0u64;
    // Calls while the answer is `from`, until it is `to`, for at most `secs`.
    let until = |(from, to), secs, what| {
        let limit = Duration::from_secs(secs);
        post_until(&client, &url, "a@b.example.com", (from, to), limit, what)
    };

    for _ in 0..5 {
        assert_eq!(post_ok(&client, &url, "a@b.example.com").await, "[EMAIL]");
        answered += 1;
    }
    let limit = Duration::from_secs(30);
    let what = "the time-triggered settlement";
    chain.wait_settled(&redact, limit, what, |s| s == 5).await;
    // The settlement is mined before the runtime has its receipt: cut the RPC
    // only once the runtime has recorded it.
    let labels = [("name", "text-redact")];
    let what = "the runtime to record the settlement";
    eventually(limit, what, || async {
        let text = metrics(&client, &serve, None).await;
        let recorded = sample(&text, "sealbox_settled_units_total", &labels);
        (recorded == Some(5.0)).then_some(())
    })
    .await;

    // Outage: the lease keeps the product running for a while…
    relay.set_down(true);
    for _ in 0..2 {
        assert_eq!(post_ok(&client, &url, "a@b.example.com").await, "[EMAIL]");
        answered += 1;
    }
    // …until it is older than --lease-max-age; then calls are refused, not run.
    let expired = until((200, 402), 20, "the lease to expire in the outage").await;
    answered += expired.before.len() as u64;
    assert_eq!(error_kind(&expired.after), "lease-expired");
    let text = metrics(&client, &serve, None).await;
    assert!(
        sample(
            &text,
            "sealbox_license_checks_total",
            &[("name", "text-redact"), ("result", "error")]
        )
        .unwrap()
            >= 1.0
    );
    assert_eq!(
        sample(&text, "sealbox_unsettled_units", &labels),
        Some((answered - 5) as f64)
    );
    assert_eq!(
        chain.settled(&redact).await,
        5,
        "nothing can settle during the outage"
    );

    // The RPC is back: the refresh renews the lease, the retrying settlement goes through.
    relay.set_down(false);
    let renewed = until((402, 200), 30, "the lease to be renewed after it").await;
    for refusal in &renewed.before {
        assert_eq!(error_kind(refusal), "lease-expired");
    }
    answered += 1;
    let what = "the settlement after the outage";
    let limit = Duration::from_secs(40);
    let settled = chain
        .wait_settled(&redact, limit, what, |s| s == answered)
        .await;
    assert_eq!(settled, answered);
    serve.shutdown();
    assert_eq!(
        chain.settled(&redact).await,
        answered,
        "refused calls were never billed"
    );
}
