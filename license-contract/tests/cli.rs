//! The `registry` binary against a real anvil: deploy prints only the address; status reads it back.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use alloy::primitives::{Address, B256, U256};
use common::PRICE;
use sealbox_testkit::{Anvil, bin, command, dead_rpc_url, dev_key};

/// Runs `registry ARGS` without any `SEALBOX_*` variable the test runner may have.
fn registry(args: &[&str]) -> Output {
    command(bin("registry")).args(args).output().unwrap()
}

/// Runs `registry HEAD... TAIL...`: a fixed command line with the options under test appended.
fn registry_with(head: &[&str], tail: &[&str]) -> Output {
    registry(&[head, tail].concat())
}

/// What the run printed on stdout (lossy UTF-8).
fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What the run printed on stderr (lossy UTF-8).
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The run succeeded; returns its stdout.
#[track_caller]
fn ok_stdout(out: &Output) -> String {
    assert!(out.status.success(), "failed: {}", stderr(out));
    stdout(out)
}

/// The run failed and its stderr holds `needle`.
#[track_caller]
fn assert_refused(out: &Output, needle: &str) {
    assert!(!out.status.success(), "succeeded: {}", stdout(out));
    assert!(
        stderr(out).contains(needle),
        "{needle:?} not in: {}",
        stderr(out)
    );
}

/// Writes `key` as a raw key file `platform.key` in `dir`; returns its path.
fn key_file(dir: &Path, key: &alloy::signers::local::PrivateKeySigner) -> String {
    let path = sealbox_testkit::key_file(dir, "platform.key", key);
    path.to_str().unwrap().to_owned()
}

#[tokio::test]
async fn deploy_prints_only_the_address_and_status_reads_it() {
    let anvil = Anvil::spawn();
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), &dev_key(0));
    let treasury = dev_key(4).address().to_string();
    let url = anvil.endpoint();
    let out = registry(&[
        "deploy",
        "--rpc",
        &url,
        "--key",
        &key,
        "--fee-bps",
        "2500",
        "--treasury",
        &treasury,
        "--thaw-seconds",
        "60",
    ]);
    let text = ok_stdout(&out);
    assert_eq!(
        text.lines().count(),
        1,
        "stdout must hold only the address: {text:?}"
    );
    let address: Address = text
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("not an address {text:?}: {e}"));

    let client = anvil.client(address, Some(dev_key(1))).await;
    let info = client.info().await.unwrap();
    assert_eq!(
        (info.fee_bps, info.thaw_seconds, info.treasury.to_string()),
        (2500, 60, treasury.clone())
    );

    // a product and a customer with escrow, then status in text and JSON
    let (pid, _) = client
        .register_product("cli-product", U256::from(PRICE))
        .await
        .unwrap();
    let customer = dev_key(2).address();
    client
        .deposit(pid, Some(customer), U256::from(PRICE) * U256::from(3))
        .await
        .unwrap();
    let (pid_s, cust_s, addr_s) = (pid.to_string(), customer.to_string(), address.to_string());
    let status = |extra: &[&str]| {
        let head = [
            "status",
            "--rpc",
            &url,
            "--registry",
            &addr_s,
            "--product",
            &pid_s,
            "--customer",
            &cust_s,
        ];
        ok_stdout(&registry_with(&head, extra))
    };

    let text = status(&[]);
    assert!(text.contains("fee 2500 bps (25.00 %"), "{text}");
    assert!(
        text.contains("ACTIVE") && !text.contains("INACTIVE"),
        "{text}"
    );
    assert!(text.contains("available balance buys 3 more"), "{text}");
    assert!(
        text.contains(&format!(
            "EIP-712 deployment salt {}",
            client.deployment_salt()
        )),
        "{text}"
    );

    let code_hash = format!("0x{}", "ab".repeat(32));
    let v: serde_json::Value =
        serde_json::from_str(&status(&["--code-hash", &code_hash, "--json"])).unwrap();
    assert_eq!(v["license"]["reason"], "UnknownRelease");
    assert_eq!(v["license"]["active"], false);
    assert_eq!(v["release"], serde_json::Value::Null);

    // a published release, shown with --product only (no customer)
    let published = B256::repeat_byte(0xCD);
    client.publish_release(pid, published).await.unwrap();
    let hash_s = published.to_string();
    let text = ok_stdout(&registry(&[
        "status",
        "--rpc",
        &url,
        "--registry",
        &addr_s,
        "--product",
        &pid_s,
        "--code-hash",
        &hash_s,
    ]));
    assert!(
        text.contains(&format!("release {hash_s}: published")),
        "{text}"
    );
    assert!(!text.contains("license of"), "{text}");
    client.revoke_release(pid, published).await.unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&status(&["--code-hash", &hash_s, "--json"])).unwrap();
    assert_eq!(v["release"]["revoked"], true);
    assert_eq!(v["license"]["reason"], "ReleaseRevoked");
    assert_eq!(
        v["product"]["vendor"].as_str().unwrap().to_lowercase(),
        dev_key(1).address().to_string().to_lowercase()
    );
    assert_eq!(v["registry"]["fee_bps"], 2500);
}

#[test]
fn deploy_refuses_a_world_readable_key_file_and_sends_nothing() {
    let anvil = Anvil::spawn();
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), &dev_key(0));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = registry(&["deploy", "--rpc", &anvil.endpoint(), "--key", &key]);
    assert!(!out.status.success());
    assert!(stdout(&out).is_empty());
    let err = stderr(&out);
    assert!(err.contains("0600") || err.contains("mode"), "{err}");
    assert!(
        !err.contains(&hex::encode(dev_key(0).to_bytes())),
        "key material leaked: {err}"
    );
}

#[test]
fn errors_are_messages_not_blobs() {
    let anvil = Anvil::spawn();
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), &dev_key(0));
    let endpoint = anvil.endpoint();
    let deploy =
        |rpc: &str, extra: &[&str]| registry_with(&["deploy", "--rpc", rpc, "--key", &key], extra);
    let status = |extra: &[&str]| registry_with(&["status", "--rpc", &endpoint], extra);

    let out = deploy(&dead_rpc_url(), &[]);
    assert_refused(&out, "cannot reach the Ethereum RPC endpoint");

    let out = deploy(&endpoint, &["--chain-id", "5"]);
    assert_refused(&out, "serves chain id 31337");

    let nobody = Address::repeat_byte(0x44).to_string();
    let out = status(&["--registry", &nobody]);
    assert_refused(&out, "no contract at");

    let out = deploy(&endpoint, &["--fee-bps", "10001"]);
    assert_refused(&out, "10001");

    let out = status(&["--registry", "0x1234"]);
    assert_refused(&out, "not a 20-byte 0x-hex address");

    let out = status(&["--registry", &nobody, "--customer", &nobody]);
    assert!(
        !out.status.success(),
        "--customer without --product must be refused"
    );
    let hash = format!("0x{}", "ab".repeat(32));
    let out = status(&["--registry", &nobody, "--code-hash", &hash]);
    assert!(
        !out.status.success(),
        "--code-hash without --product must be refused"
    );
}
