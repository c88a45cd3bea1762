//! The HTTP surface of `runtime serve`: bad requests are refused with the
//! right status before anything is billed, and the bearer token rules.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::serve_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_before_admission() {
    let chain = Chain::new().await;
    let score = chain.publish_credit_score(1000).await;
    let redact = chain.publish_text_redact(1000).await;
    let client = http();
    let serve = chain.serve(&[&score, &redact], &["--max-input-bytes", "1024"]);
    let redact_url = serve.invoke_url(&redact, "redact");

    // Over the limit by one byte: 413, refused before the guest.
    assert_refused(
        &client,
        &redact_url,
        vec![b'a'; 1025],
        413,
        "input-too-large",
    )
    .await;
    // Exactly at the limit: served (text without PII comes back unchanged).
    let out = post_ok(&client, &redact_url, vec![b'a'; 1024]).await;
    assert_eq!(out, "a".repeat(1024));

    // Not a product id, an unknown product, an unknown export.
    let not_an_id = serve.url("/v1/products/credit-score/invoke/score");
    assert_refused(&client, &not_an_id, "{}", 400, "bad-product-id").await;
    let unknown = format!("/v1/products/0x{}/invoke/score", "ab".repeat(32));
    assert_refused(&client, &serve.url(&unknown), "{}", 404, "unknown-product").await;
    let alloc = serve.invoke_url(&score, "sealbox_alloc");
    assert_refused(&client, &alloc, "{}", 400, "unknown-export").await;
    // A numeric export is not a bytes entry.
    let version = serve.invoke_url(&redact, "version");
    assert_refused(&client, &version, "", 400, "unknown-export").await;

    // A body cut short: the connection ends before Content-Length bytes arrive.
    let truncated = raw_request(
        &serve.base,
        &format!(
            "POST /v1/products/{}/invoke/score HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{\"income\":",
            score.product_id
        ),
    );
    assert!(truncated.starts_with("HTTP/1.1 400"), "{truncated}");
    assert!(truncated.contains("\"bad-body\""), "{truncated}");

    // Malformed JSON reaches the guest, which answers with its own error
    // document: the guest ran, so the call is billed like any other.
    let out = post_ok(
        &client,
        &serve.invoke_url(&score, "score"),
        "{\"income\": 4",
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["error"], "malformed_json");

    // Only the two calls that reached a guest were admitted.
    let text = metrics(&client, &serve, None).await;
    assert_eq!(runtime_calls(&text, "text-redact"), Some(1.0));
    assert_eq!(runtime_calls(&text, "credit-score"), Some(1.0));
    let errors = |name, kind| call_errors(&text, name, kind);
    assert_eq!(errors("text-redact", "input-too-large"), Some(1.0));
    assert_eq!(errors("text-redact", "unknown-export"), Some(1.0));
    assert_eq!(errors("credit-score", "unknown-export"), Some(1.0));
    assert_eq!(errors("credit-score", "bad-body"), Some(1.0));

    serve.shutdown();
    assert_eq!(chain.settled(&redact).await, 1);
    assert_eq!(chain.settled(&score).await, 1);
}

#[test]
fn refuses_a_public_address_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing else is valid either: the bind check must come first.
    let args: Vec<String> = [
        "serve",
        "--module",
        "/nonexistent.sealed.wasm",
        "--listen",
        "0.0.0.0:0",
        "--registry",
        "0x0000000000000000000000000000000000000001",
        "--key",
        "/nonexistent.key",
        "--state-dir",
        &dir.path().join("state").display().to_string(),
    ]
    .map(String::from)
    .to_vec();
    let Err(err) = Serve::start(&args, &dir.path().join("log")) else {
        panic!("runtime serve started on 0.0.0.0 without a token");
    };
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0 without a bearer token"),
        "{err}"
    );
    assert!(err.contains("--token"), "{err}");
    assert!(
        !dir.path().join("state").exists(),
        "nothing may be created before the refusal"
    );

    // A token too short to be one is refused too, by name.
    let mut short = args.clone();
    short.extend(["--token".to_string(), "secret".to_string()]);
    let Err(err) = Serve::start(&short, &dir.path().join("log2")) else {
        panic!("runtime serve accepted a 6-character token");
    };
    assert!(err.contains("at least 16"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_guards_every_route_but_healthz() {
    let chain = Chain::new().await;
    let redact = chain.publish_text_redact(1000).await;
    let client = http();
    // Off loopback with a token: starts (and is reached through loopback).
    let mut args = chain.serve_args(&[&redact]);
    set_flag(&mut args, "--listen", "0.0.0.0:0");
    args.extend(["--token".to_string(), TOKEN.to_string()]);
    let serve = chain.spawn_serve(&args);
    let base = serve.base.replace("0.0.0.0", "127.0.0.1");
    let url = format!("{base}/v1/products/{}/invoke/redact", redact.product_id);

    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);

    let no_header = client
        .post(&url)
        .body("a@b.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(no_header.status().as_u16(), 401);
    assert_eq!(
        no_header.headers()["www-authenticate"].to_str().unwrap(),
        "Bearer realm=\"sealbox\""
    );
    assert_eq!(
        error_kind(&no_header.bytes().await.unwrap()),
        "unauthorized"
    );
    let wrong = client
        .post(&url)
        .bearer_auth("test-token-0123456789abcdeF")
        .body("a@b.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let metrics_anon = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(metrics_anon.status().as_u16(), 401);

    let ok = client
        .post(&url)
        .bearer_auth(TOKEN)
        .body("a@b.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(ok.text().await.unwrap(), "[EMAIL]");

    let text = client
        .get(format!("{base}/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        sample(&text, "sealbox_unauthorized_requests_total", &[]),
        Some(3.0)
    );
    // The refused calls were not admitted.
    assert_eq!(runtime_calls(&text, "text-redact"), Some(1.0));
    assert!(
        !serve.stderr().contains(TOKEN),
        "the token must not be logged"
    );
    drop(serve);
}

/// Sends `request` on a fresh connection, closes the sending side, returns the raw response.
fn raw_request(base: &str, request: &str) -> String {
    let addr = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}
