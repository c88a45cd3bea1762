//! A real Prometheus scrapes `runtime serve`'s /metrics (with the bearer
//! token) and its query API reports the calls that were made and the units
//! bought for them.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::serve_support::*;
use sealbox_testkit::Port;

/// Path of the Prometheus server: $SEALBOX_PROMETHEUS, else the Debian package's.
fn prometheus_path() -> PathBuf {
    let p = std::env::var_os("SEALBOX_PROMETHEUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus"));
    assert!(
        p.exists(),
        "Prometheus not found at {}: `apt-get install prometheus` (scripts/setup does), or set SEALBOX_PROMETHEUS",
        p.display()
    );
    p
}

/// A Prometheus process, killed on drop.
struct Prometheus {
    child: Child,
    base: String,
    /// Its port, reserved until it is gone (it binds alongside, as anvil does).
    _port: Port,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The single value of an instant query, if the result has exactly one series.
async fn query(client: &reqwest::Client, prom: &Prometheus, q: &str) -> Option<f64> {
    let resp = client
        .get(format!("{}/api/v1/query", prom.base))
        .query(&[("query", q)])
        .send()
        .await
        .ok()?;
    let v: serde_json::Value = resp.json().await.ok()?;
    assert_eq!(v["status"], "success", "query {q}: {v}");
    let result = v["data"]["result"].as_array()?;
    match result.as_slice() {
        [one] => one["value"][1].as_str()?.parse().ok(),
        [] => None,
        many => panic!("query {q} matched {} series: {v}", many.len()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_calls_that_were_made() {
    let chain = Chain::new().await;
    let redact = chain.publish_text_redact(1000).await;
    let client = http();
    // The token comes from a 0600 file; blocks of exactly 100 units.
    let token_file = chain.token_file();
    let args = ["--token-file", &token_file, "--prepay-max-units", "100"];
    let serve = chain.serve(&[&redact], &args);
    let url = serve.invoke_url(&redact, "redact");
    wait_prepaid(&client, &serve, Some(TOKEN), &["text-redact"]).await;
    let call = |n: usize| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let mut tasks = Vec::new();
            for i in 0..n {
                let (client, url) = (client.clone(), url.clone());
                tasks.push(tokio::spawn(async move {
                    let body = format!("ticket {i}: write to ops{i}@example.com");
                    let resp = client
                        .post(&url)
                        .bearer_auth(TOKEN)
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(resp.status().as_u16(), 200);
                    assert_eq!(
                        resp.text().await.unwrap(),
                        format!("ticket {i}: write to [EMAIL]")
                    );
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        }
    };
    call(20).await;

    let dir = tempfile::tempdir().unwrap();
    let target = serve.base.trim_start_matches("http://");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: sealbox\n    scrape_interval: 1s\n    scrape_timeout: 1s\n\
         \x20   authorization:\n      type: Bearer\n      credentials: {TOKEN}\n\
         \x20   static_configs:\n      - targets: ['{target}']\n"
    );
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    let port = Port::reserve();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let child = sealbox_testkit::command(prometheus_path())
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{}", port.number()))
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let prom = Prometheus {
        child,
        base: port.url(),
        _port: port,
    };
    let log_text =
        || std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();

    let calls = r#"sealbox_calls_total{job="sealbox",name="text-redact",counter="runtime"}"#;
    let seen = eventually(
        Duration::from_secs(60),
        "Prometheus to scrape 20 calls",
        || async { query(&client, &prom, calls).await.filter(|v| *v >= 20.0) },
    )
    .await;
    assert_eq!(seen, 20.0, "{}", log_text());
    assert_eq!(
        query(&client, &prom, r#"up{job="sealbox"}"#).await,
        Some(1.0)
    );

    call(17).await;
    let seen = eventually(
        Duration::from_secs(30),
        "Prometheus to scrape 37 calls",
        || async { query(&client, &prom, calls).await.filter(|v| *v > 20.0) },
    )
    .await;
    assert_eq!(seen, 37.0);
    let latency = r#"sealbox_call_duration_seconds_count{job="sealbox",name="text-redact"}"#;
    assert_eq!(query(&client, &prom, latency).await, Some(37.0));
    let errors = r#"sum(sealbox_call_errors_total{job="sealbox"}) or vector(0)"#;
    assert_eq!(query(&client, &prom, errors).await, Some(0.0));

    // Units bought: as many as the chain says this buyer bought, and what is
    // left unused of them. 37 calls used less than half of the one default
    // block of 100 bought at start, so no other block was bought.
    let bought = chain.bought(&redact).await;
    assert_eq!(bought, 100);
    let series = |name: &str| format!(r#"{name}{{job="sealbox",name="text-redact"}}"#);
    let seen = eventually(
        Duration::from_secs(30),
        "Prometheus to scrape the units bought",
        || async {
            let v = query(&client, &prom, &series("sealbox_bought_units_total")).await;
            v.filter(|v| *v == bought as f64)
        },
    )
    .await;
    assert_eq!(seen, bought as f64);
    assert_eq!(
        query(&client, &prom, &series("sealbox_prepaid_units")).await,
        Some((bought - 37) as f64)
    );
    assert_eq!(
        query(&client, &prom, &series("sealbox_price_wei")).await,
        Some(PRICE as f64)
    );
    assert_eq!(
        query(&client, &prom, &series("sealbox_license_active")).await,
        Some(1.0)
    );
    let purchases = r#"sealbox_purchases_total{job="sealbox",name="text-redact",result="ok"}"#;
    assert_eq!(query(&client, &prom, purchases).await, Some(1.0));
    let gas = query(&client, &prom, &series("sealbox_purchase_gas_total")).await;
    assert!(gas.unwrap() > 0.0);
    let balance = query(
        &client,
        &prom,
        r#"sealbox_signer_balance_wei{job="sealbox"}"#,
    )
    .await;
    assert!(
        balance.unwrap() > 0.0,
        "the signer's gas balance is reported"
    );
    assert_eq!(
        query(
            &client,
            &prom,
            r#"sealbox_signer_balance_low{job="sealbox"}"#
        )
        .await,
        Some(0.0)
    );
    drop(prom);
    drop(serve);
}
