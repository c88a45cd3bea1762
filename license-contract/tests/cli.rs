//! The `registry` binary against a real anvil: deploy prints only the address; status reads it back.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use alloy::primitives::{Address, U256};
use common::{PRICE, dev_key, spawn_anvil};
use license_contract::RegistryClient;

fn registry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_registry"))
        .args(args)
        .env_remove("SEALBOX_PASSWORD")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn key_file(dir: &Path, key: &alloy::signers::local::PrivateKeySigner) -> String {
    let path = dir.join("platform.key");
    sealbox_keyfile::write_raw(&path, key).unwrap();
    path.to_str().unwrap().to_owned()
}

#[tokio::test]
async fn deploy_prints_only_the_address_and_status_reads_it() {
    let anvil = spawn_anvil();
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), &dev_key(&anvil, 0));
    let treasury = dev_key(&anvil, 4).address().to_string();
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
    assert!(out.status.success(), "deploy failed: {}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(
        text.lines().count(),
        1,
        "stdout must hold only the address: {text:?}"
    );
    let address: Address = text
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("not an address {text:?}: {e}"));

    let client = RegistryClient::connect(&url, address, Some(31337), Some(dev_key(&anvil, 1)))
        .await
        .unwrap();
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
    let customer = dev_key(&anvil, 2).address();
    client
        .deposit(pid, Some(customer), U256::from(PRICE) * U256::from(3))
        .await
        .unwrap();
    let (pid_s, cust_s, addr_s) = (pid.to_string(), customer.to_string(), address.to_string());

    let out = registry(&[
        "status",
        "--rpc",
        &url,
        "--registry",
        &addr_s,
        "--product",
        &pid_s,
        "--customer",
        &cust_s,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("fee 2500 bps (25.00 %"), "{text}");
    assert!(
        text.contains("ACTIVE") && !text.contains("INACTIVE"),
        "{text}"
    );
    assert!(text.contains("affordable 3 more"), "{text}");

    let out = registry(&[
        "status",
        "--rpc",
        &url,
        "--registry",
        &addr_s,
        "--product",
        &pid_s,
        "--customer",
        &cust_s,
        "--code-hash",
        &format!("0x{}", "ab".repeat(32)),
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["license"]["reason"], "UnknownRelease");
    assert_eq!(v["license"]["active"], false);
    assert_eq!(
        v["product"]["vendor"].as_str().unwrap().to_lowercase(),
        dev_key(&anvil, 1).address().to_string().to_lowercase()
    );
    assert_eq!(v["registry"]["fee_bps"], 2500);
}

#[test]
fn deploy_refuses_a_world_readable_key_file_and_sends_nothing() {
    let anvil = spawn_anvil();
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), &dev_key(&anvil, 0));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = registry(&["deploy", "--rpc", &anvil.endpoint(), "--key", &key]);
    assert!(!out.status.success());
    assert!(stdout(&out).is_empty());
    let err = stderr(&out);
    assert!(err.contains("0600") || err.contains("mode"), "{err}");
    assert!(
        !err.contains(&hex::encode(dev_key(&anvil, 0).to_bytes())),
        "key material leaked: {err}"
    );
}

#[test]
fn errors_are_messages_not_blobs() {
    let anvil = spawn_anvil();
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), &dev_key(&anvil, 0));

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("http://127.0.0.1:{port}");
    let out = registry(&["deploy", "--rpc", &dead, "--key", &key]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot reach the Ethereum RPC endpoint"),
        "{}",
        stderr(&out)
    );

    let out = registry(&[
        "deploy",
        "--rpc",
        &anvil.endpoint(),
        "--key",
        &key,
        "--chain-id",
        "5",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("serves chain id 31337"),
        "{}",
        stderr(&out)
    );

    let nobody = Address::repeat_byte(0x44).to_string();
    let out = registry(&["status", "--rpc", &anvil.endpoint(), "--registry", &nobody]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no contract at"), "{}", stderr(&out));

    let out = registry(&[
        "deploy",
        "--rpc",
        &anvil.endpoint(),
        "--key",
        &key,
        "--fee-bps",
        "10001",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("10001"), "{}", stderr(&out));

    let out = registry(&["status", "--rpc", &anvil.endpoint(), "--registry", "0x1234"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not a 20-byte 0x-hex address"),
        "{}",
        stderr(&out)
    );

    let out = registry(&[
        "status",
        "--rpc",
        &anvil.endpoint(),
        "--registry",
        &nobody,
        "--customer",
        &nobody,
    ]);
    assert!(
        !out.status.success(),
        "--customer without --product must be refused"
    );
}
