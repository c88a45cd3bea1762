//! The HTTP surface of `runtime serve`: bad requests are refused with the
//! right status before anything is billed, requests from web pages are
//! refused before anything else, the bearer token rules, and the Unix socket.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::serve_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_before_admission() {
    let chain = Chain::new().await;
    let score = chain.publish_credit_score(1000).await;
    let redact = chain.publish_text_redact(1000).await;
    let client = http();
    let args = ["--max-input-bytes", "1024", "--prepay-max-units", "100"];
    let serve = chain.serve(&[&score, &redact], &args);
    let redact_url = serve.invoke_url(&redact, "redact");
    wait_prepaid(&client, &serve, None, &["credit-score", "text-redact"]).await;

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
            "POST /v1/products/{}/invoke/score HTTP/1.1\r\nHost: {}\r\nContent-Length: 100\r\n\r\n{{\"income\":",
            score.product_id,
            host_of(&serve.base),
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
    assert_eq!(chain.journal_usage(&redact).used_units(), 1);
    assert_eq!(chain.journal_usage(&score).used_units(), 1);
    // One default block each, bought at start; nothing refused was charged.
    assert_eq!(chain.bought(&redact).await, 100);
    assert_eq!(chain.bought(&score).await, 100);
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
    assert!(err.contains("--token-file"), "{err}");
    assert!(
        !dir.path().join("state").exists(),
        "nothing may be created before the refusal"
    );

    // A token too short to be one is refused too, by name.
    let file = dir.path().join("short-token");
    std::fs::write(&file, "secret\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut short = args.clone();
    short.extend(["--token-file".to_string(), file.display().to_string()]);
    let Err(err) = Serve::start(&short, &dir.path().join("log2")) else {
        panic!("runtime serve accepted a 6-character token");
    };
    assert!(err.contains("at least 16"), "{err}");

    // A token on the command line is refused, pointing at the ways that keep it secret.
    let mut argv = args.clone();
    argv.extend(["--token".to_string(), TOKEN.to_string()]);
    let Err(err) = Serve::start(&argv, &dir.path().join("log3")) else {
        panic!("runtime serve accepted --token on the command line");
    };
    assert!(err.contains("--token is not accepted"), "{err}");
    assert!(
        err.contains("--token-file") && err.contains("SEALBOX_TOKEN"),
        "{err}"
    );
    assert!(!dir.path().join("state").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_guards_every_route_but_healthz() {
    let chain = Chain::new().await;
    let redact = chain.publish_text_redact(1000).await;
    let client = http();
    // Off loopback with a token: starts (and is reached through loopback).
    let mut args = chain.serve_args(&[&redact]);
    set_flag(&mut args, "--listen", "0.0.0.0:0");
    args.extend(["--token-file".to_string(), chain.token_file()]);
    let serve = chain.spawn_serve(&args);
    let base = serve.base.replace("0.0.0.0", "127.0.0.1");
    wait_prepaid(&client, &serve, Some(TOKEN), &["text-redact"]).await;
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

/// `ADDR` of `http://ADDR`: what an HTTP client sends as `Host`.
fn host_of(base: &str) -> &str {
    base.trim_start_matches("http://")
}

/// The port of `http://IP:PORT`.
fn port_of(base: &str) -> &str {
    base.rsplit_once(':').unwrap().1
}

/// Sends `request` on a fresh connection, closes the sending side, returns the raw response.
fn raw_request(base: &str, request: &str) -> String {
    let mut stream = TcpStream::connect(host_of(base)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

/// Sends a complete `Connection: close` request (see [`http_request`]) and
/// returns the raw response. The sending side stays open: a server may drop
/// a connection whose client half-closed before the answer.
fn exchange(mut stream: impl Read + Write, request: &str) -> String {
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

/// [`exchange`] over TCP with the server at `http://ADDR`.
fn tcp_exchange(base: &str, request: &str) -> String {
    let stream = TcpStream::connect(host_of(base)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    exchange(stream, request)
}

/// [`exchange`] over the Unix socket at `path`.
fn unix_exchange(path: &Path, request: &str) -> String {
    let stream = UnixStream::connect(path).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    exchange(stream, request)
}

/// A complete HTTP/1.1 request: `method path`, the `headers` lines, `body`.
fn http_request(method: &str, path: &str, headers: &[&str], body: &str) -> String {
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    req
}

/// The status code and body of a raw response.
fn status_and_body(response: &str) -> (u16, &str) {
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body)
}

/// Asserts a raw response is a 403 JSON error of kind `kind`.
#[track_caller]
fn assert_forbidden(response: &str, kind: &str) {
    let (status, body) = status_and_body(response);
    assert_eq!(status, 403, "{response}");
    assert_eq!(error_kind(body.as_bytes()), kind, "{response}");
}

/// `sealbox_http_refused_total{reason}`.
fn refused(text: &str, reason: &str) -> Option<f64> {
    sample(text, "sealbox_http_refused_total", &[("reason", reason)])
}

/// The attack: a page the operator opens in a browser posts to the loopback
/// server (a "simple" request, no preflight), or rebinds its own name to
/// 127.0.0.1 to read the answers. Neither gets anything admitted or read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_pages_cannot_call_or_read_a_loopback_server() {
    let chain = Chain::new().await;
    let redact = chain.publish_text_redact(1000).await;
    let client = http();
    let serve = chain.serve(&[&redact], &[]);
    wait_prepaid(&client, &serve, None, &["text-redact"]).await;
    let path = format!("/v1/products/{}/invoke/redact", redact.product_id);
    let own_host = format!("Host: {}", host_of(&serve.base));
    let port = port_of(&serve.base);
    let before = metrics(&client, &serve, None).await;
    assert_eq!(runtime_calls(&before, "text-redact"), Some(0.0));

    // What `fetch(url, {method: "POST", mode: "no-cors", body})` or a
    // <form enctype="text/plain"> on http://evil.example sends.
    for origin in ["http://evil.example", "null"] {
        let cross_origin = http_request(
            "POST",
            &path,
            &[
                &own_host,
                &format!("Origin: {origin}"),
                "Content-Type: text/plain",
                "Sec-Fetch-Site: cross-site",
            ],
            "a@b.example.com",
        );
        assert_forbidden(
            &tcp_exchange(&serve.base, &cross_origin),
            "forbidden-origin",
        );
    }
    // A CORS preflight (for a non-simple request) is refused like any other.
    let preflight = http_request(
        "OPTIONS",
        &path,
        &[
            &own_host,
            "Origin: http://evil.example",
            "Access-Control-Request-Method: POST",
        ],
        "",
    );
    assert_forbidden(&tcp_exchange(&serve.base, &preflight), "forbidden-origin");
    // Sec-Fetch-Site alone (a page's request) is refused too.
    let fetched = http_request(
        "POST",
        &path,
        &[&own_host, "Sec-Fetch-Site: same-site"],
        "a@b.example.com",
    );
    assert_forbidden(&tcp_exchange(&serve.base, &fetched), "forbidden-origin");

    // DNS rebinding: evil.example now resolves to 127.0.0.1, so the browser
    // sends the page's own name as Host (and a same-origin GET, no Origin).
    let rebound_host = format!("Host: evil.example:{port}");
    let rebound_post = http_request("POST", &path, &[&rebound_host], "a@b.example.com");
    assert_forbidden(&tcp_exchange(&serve.base, &rebound_post), "forbidden-host");
    let rebound_read = http_request("GET", "/metrics", &[&rebound_host], "");
    assert_forbidden(&tcp_exchange(&serve.base, &rebound_read), "forbidden-host");
    let no_host = http_request("POST", &path, &[], "a@b.example.com");
    assert_forbidden(&tcp_exchange(&serve.base, &no_host), "forbidden-host");

    // Probes reach /healthz whatever the Host, but a page still cannot.
    let probe = http_request("GET", "/healthz", &[&rebound_host], "");
    assert_eq!(status_and_body(&tcp_exchange(&serve.base, &probe)).0, 200);
    let page_probe = http_request(
        "GET",
        "/healthz",
        &[&own_host, "Origin: http://evil.example"],
        "",
    );
    assert_forbidden(&tcp_exchange(&serve.base, &page_probe), "forbidden-origin");

    // Programs name the server: its address, localhost (any port: tunnels
    // and port mappings change it), or [::1].
    for host in [
        own_host.clone(),
        format!("Host: localhost:{port}"),
        "Host: localhost:9999".into(),
        format!("Host: [::1]:{port}"),
    ] {
        let call = http_request("POST", &path, &[&host], "a@b.example.com");
        let response = tcp_exchange(&serve.base, &call);
        let (status, body) = status_and_body(&response);
        assert_eq!((status, body), (200, "[EMAIL]"), "{host}: {response}");
    }
    let typed = http_request("GET", "/metrics", &[&own_host, "Sec-Fetch-Site: none"], "");
    assert_eq!(status_and_body(&tcp_exchange(&serve.base, &typed)).0, 200);

    // Only the four program calls were admitted; the refusals are counted.
    let after = metrics(&client, &serve, None).await;
    assert_eq!(runtime_calls(&after, "text-redact"), Some(4.0));
    assert_eq!(refused(&after, "origin"), Some(5.0));
    assert_eq!(refused(&after, "host"), Some(3.0));
    assert_eq!(call_errors(&after, "text-redact", "forbidden-origin"), None);
    serve.shutdown();
    assert_eq!(chain.journal_usage(&redact).used_units(), 4);
}

/// `--token-file`: a file others can read is refused by name; a private one
/// works, and the token never shows on the command line. SEALBOX_TOKEN works too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_comes_from_a_private_file_or_the_environment() {
    let chain = Chain::new().await;
    let redact = chain.publish_text_redact(1000).await;
    let client = http();
    let file = chain.token_file();
    let mut args = chain.serve_args(&[&redact]);
    args.extend(["--token-file".to_string(), file.clone()]);

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let log = chain.dir.path().join("insecure.log");
    let Err(err) = Serve::start(&args, &log) else {
        panic!("runtime serve read a token file others can read");
    };
    assert!(err.contains("exited with exit status: 1"), "{err}");
    assert!(
        err.contains(&format!("the token file {file} has mode 0644")),
        "{err}"
    );
    assert!(err.contains(&format!("chmod 600 {file}")), "{err}");
    assert!(!err.contains(TOKEN), "the token must not be printed: {err}");

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let serve = chain.spawn_serve(&args);
    chain
        .wait_bought(&redact, Duration::from_secs(60), "the first block", |b| {
            b > 0
        })
        .await;
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", serve.pid())).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline);
    assert!(cmdline.contains("--token-file"), "{cmdline}");
    assert!(
        !cmdline.contains(TOKEN),
        "the token is on the command line: {cmdline}"
    );
    let url = serve.invoke_url(&redact, "redact");
    assert_eq!(post(&client, &url, "a@b.example.com").await.0, 401);
    // The chain shows the first block a moment before serve has recorded it:
    // until then serve answers 402 with Retry-After (prepaying).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        let ok = client
            .post(&url)
            .bearer_auth(TOKEN)
            .body("a@b.example.com")
            .send()
            .await
            .unwrap();
        let status = ok.status().as_u16();
        let retry = ok.headers().contains_key("retry-after");
        if status == 402 && retry && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        break status;
    };
    assert_eq!(status, 200);
    serve.shutdown();

    // The environment instead of a file; both at once is ambiguous.
    let env_args = chain.serve_args(&[&redact]);
    let log = chain.dir.path().join("env.log");
    let serve = Serve::start_env(&env_args, &log, &[("SEALBOX_TOKEN", TOKEN)]).unwrap();
    assert_eq!(
        post(&client, &serve.invoke_url(&redact, "redact"), "x")
            .await
            .0,
        401
    );
    let text = metrics(&client, &serve, Some(TOKEN)).await;
    assert_eq!(runtime_calls(&text, "text-redact"), Some(1.0));
    serve.shutdown();
    let log = chain.dir.path().join("both.log");
    let Err(err) = Serve::start_env(&args, &log, &[("SEALBOX_TOKEN", TOKEN)]) else {
        panic!("runtime serve took a token from both --token-file and SEALBOX_TOKEN");
    };
    assert!(err.contains("both --token-file"), "{err}");
    assert_eq!(chain.journal_usage(&redact).used_units(), 1);
}

/// `--listen unix:PATH`: a 0600 socket, no token, no Host rule but still no
/// Origin; removed at shutdown; a regular file in the way is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_over_a_private_unix_socket() {
    let chain = Chain::new().await;
    let redact = chain.publish_text_redact(1000).await;
    let socket = chain.dir.path().join("http.sock");
    let mut args = chain.serve_args(&[&redact]);
    set_flag(&mut args, "--listen", format!("unix:{}", socket.display()));
    let serve = chain.spawn_serve(&args);
    assert_eq!(serve.base, format!("unix:{}", socket.display()));
    chain
        .wait_bought(&redact, Duration::from_secs(60), "the first block", |b| {
            b > 0
        })
        .await;

    let meta = std::fs::symlink_metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    let path = format!("/v1/products/{}/invoke/redact", redact.product_id);
    let call = http_request("POST", &path, &["Host: localhost"], "a@b.example.com");
    let response = unix_exchange(&socket, &call);
    assert_eq!(status_and_body(&response), (200, "[EMAIL]"), "{response}");
    let page = http_request(
        "POST",
        &path,
        &["Host: localhost", "Origin: null"],
        "a@b.example.com",
    );
    assert_forbidden(&unix_exchange(&socket, &page), "forbidden-origin");
    let metrics = unix_exchange(&socket, &http_request("GET", "/metrics", &[], ""));
    let (status, text) = status_and_body(&metrics);
    assert_eq!(status, 200, "{metrics}");
    assert_eq!(runtime_calls(text, "text-redact"), Some(1.0));
    assert_eq!(refused(text, "origin"), Some(1.0));

    let (status, lines) = serve.terminate();
    assert!(status.success(), "{status}: {lines:?}");
    assert!(!socket.exists(), "the socket outlived the server");
    assert_eq!(chain.journal_usage(&redact).used_units(), 1);

    // A regular file at the path is not the server's to delete.
    std::fs::write(&socket, "not a socket").unwrap();
    let log = chain.dir.path().join("not-a-socket.log");
    let Err(err) = Serve::start(&args, &log) else {
        panic!("runtime serve listened over a regular file");
    };
    assert!(err.contains("exists and is not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&socket).unwrap(), "not a socket");
}
