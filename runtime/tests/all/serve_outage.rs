//! An RPC outage while serving: calls go on under the stored lease until it
//! is too old (then 402), settlement retries with backoff, and everything
//! admitted is settled once the RPC is back.
//!
//! The outage is real: the runtime reaches anvil through a TCP relay in this
//! test that, when switched off, cuts open connections and drops new ones.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use alloy::primitives::U256;
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
    let redact = chain
        .publish(
            "text_redact.wat",
            "text-redact",
            PRICE,
            U256::from(1000 * PRICE),
        )
        .await;
    let relay = Relay::start(SocketAddr::from(([127, 0, 0, 1], chain.anvil.port()))).await;
    let mut args = chain.serve_args(&[&redact]);
    let rpc = args.iter().position(|a| a == "--rpc").unwrap() + 1;
    args[rpc] = format!("http://{}", relay.addr);
    args.extend(
        [
            "--settle-every-units",
            "1000",
            "--settle-every-secs",
            "1",
            "--refresh-secs",
            "1",
            "--lease-max-age",
            "4",
        ]
        .map(String::from),
    );
    let serve =
        Serve::start(&args, &chain.dir.path().join("outage.log")).unwrap_or_else(|e| panic!("{e}"));
    let client = http();
    let url = serve.invoke_url(&redact, "redact");
    let mut answered = 0u64;

    for _ in 0..5 {
        assert_eq!(post(&client, &url, "a@b.example.com").await.0, 200);
        answered += 1;
    }
    eventually(
        Duration::from_secs(30),
        "the time-triggered settlement",
        || async { (chain.settled(&redact).await == 5).then_some(()) },
    )
    .await;

    // Outage: the lease keeps the product running for a while…
    relay.set_down(true);
    for _ in 0..2 {
        let (status, body) = post(&client, &url, "a@b.example.com").await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        answered += 1;
    }
    // …until it is older than --lease-max-age; then calls are refused, not run.
    let deadline = Instant::now() + Duration::from_secs(20);
    let refusal = loop {
        let (status, body) = post(&client, &url, "a@b.example.com").await;
        match status {
            200 => answered += 1,
            402 => break body,
            other => panic!("unexpected {other}: {}", String::from_utf8_lossy(&body)),
        }
        assert!(
            Instant::now() < deadline,
            "the lease never expired during the outage"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(error_kind(&refusal), "lease-expired");
    let text = metrics(&client, &serve, None).await;
    let labels = [("name", "text-redact")];
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
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = post(&client, &url, "a@b.example.com").await;
        match status {
            200 => {
                answered += 1;
                break;
            }
            402 => assert_eq!(error_kind(&body), "lease-expired"),
            other => panic!("unexpected {other}: {}", String::from_utf8_lossy(&body)),
        }
        assert!(
            Instant::now() < deadline,
            "the lease was not renewed after the outage"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let settled = eventually(
        Duration::from_secs(40),
        "the settlement after the outage",
        || async {
            let s = chain.settled(&redact).await;
            (s == answered).then_some(s)
        },
    )
    .await;
    assert_eq!(settled, answered);
    let (status, _) = serve.terminate();
    assert!(status.success());
    assert_eq!(
        chain.settled(&redact).await,
        answered,
        "refused calls were never billed"
    );
}
