//! Gas of every operation on a real anvil, compared with the committed `gas-snapshot.json`.
//!
//! Fails when a figure grows by more than the snapshot's tolerance, or when a repeat `settle`
//! costs more than the budget. `SEALBOX_UPDATE_GAS_SNAPSHOT=1` rewrites the snapshot.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use alloy::primitives::{B256, U256};
use alloy::signers::local::PrivateKeySigner;
use common::PRICE;
use license_contract::{DeployParams, RegistryClient};
use sealbox_testkit::{Anvil, dev_key};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Snapshot {
    /// Allowed growth per figure, in percent.
    tolerance_percent: f64,
    /// Hard budget of a repeat settle (transaction gas).
    repeat_settle_budget: u64,
    /// Transaction gas (including the 21000 base and calldata) per operation.
    gas: BTreeMap<String, u64>,
}

const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/gas-snapshot.json");

async fn measure() -> BTreeMap<String, u64> {
    let anvil = Anvil::spawn();
    let url = anvil.endpoint();
    let mut gas = BTreeMap::new();
    let params = DeployParams {
        fee_bps: 3000,
        treasury: Some(dev_key(4).address()),
        thaw_seconds: 3600,
        expected_chain_id: None,
    };
    // The deploy is measured, so it is made here (not with Anvil::deploy).
    let (platform, tx) = RegistryClient::deploy(&url, dev_key(0), params)
        .await
        .unwrap();
    gas.insert("deploy".into(), tx.gas_used);
    let reg = platform.address();
    let vendor = anvil.client(reg, Some(dev_key(1))).await;
    let customer = anvil.client(reg, Some(dev_key(2))).await;
    let relayer = anvil.client(reg, Some(dev_key(3))).await;
    let c = customer.sender().unwrap();
    // a fixed runtime key keeps signatures (and so calldata gas) identical from run to run
    let runtime = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x11)).unwrap();

    let (pid, tx) = vendor
        .register_product("gas-product", U256::from(PRICE))
        .await
        .unwrap();
    gas.insert("register_product".into(), tx.gas_used);
    let tx = vendor
        .publish_release(pid, B256::repeat_byte(0xAB))
        .await
        .unwrap();
    gas.insert("publish_release".into(), tx.gas_used);
    let tx = customer
        .deposit(pid, None, U256::from(PRICE) * U256::from(1_000_000))
        .await
        .unwrap();
    gas.insert("deposit_first".into(), tx.gas_used);
    let tx = customer
        .deposit(pid, None, U256::from(PRICE))
        .await
        .unwrap();
    gas.insert("deposit_topup".into(), tx.gas_used);
    let tx = customer
        .authorize_signer(pid, runtime.address())
        .await
        .unwrap();
    gas.insert("authorize_signer".into(), tx.gas_used);

    // a buyer id with no zero byte and a realistic expiry keep calldata gas representative
    let buyer = B256::repeat_byte(0x22);
    let receipt_for = |buyer: B256, n: u64| {
        customer
            .sign_usage(&runtime, pid, c, buyer, n, PRICE.into(), 2_000_000_000)
            .unwrap()
    };
    let receipt = |n: u64| receipt_for(buyer, n);
    let st = relayer.settle(&receipt(1_000)).await.unwrap();
    assert_eq!(st.units_charged, 1_000);
    gas.insert("settle_first".into(), st.tx.gas_used);
    let st = relayer.settle(&receipt(2_000)).await.unwrap();
    assert_eq!(st.units_charged, 1_000);
    gas.insert("settle_repeat".into(), st.tx.gas_used);
    let st = relayer.settle(&receipt(2_000)).await.unwrap();
    assert!(st.ignored);
    gas.insert("settle_stale_ignored".into(), st.tx.gas_used);
    let st = relayer
        .settle(&receipt_for(B256::repeat_byte(0x33), 1_000))
        .await
        .unwrap();
    assert_eq!(st.units_charged, 1_000);
    gas.insert("settle_first_for_new_buyer".into(), st.tx.gas_used);

    // the vendor's slot keeps the uncollected fee: still non-zero after its withdrawal
    let (_, tx) = vendor.withdraw_revenue().await.unwrap();
    gas.insert("withdraw_revenue".into(), tx.gas_used);
    let st = relayer.settle(&receipt(3_000)).await.unwrap();
    gas.insert("settle_after_vendor_withdrew".into(), st.tx.gas_used);
    let v = vendor.sender().unwrap();
    let (fee, tx) = relayer.collect_fees(&[v]).await.unwrap();
    assert!(!fee.is_zero());
    gas.insert("collect_fees_one_vendor".into(), tx.gas_used);
    // fee collected and share withdrawn: the vendor's slot is 0 again
    vendor.withdraw_revenue().await.unwrap();
    let st = relayer.settle(&receipt(4_000)).await.unwrap();
    gas.insert("settle_after_vendor_slot_emptied".into(), st.tx.gas_used);
    let treasury = anvil.client(reg, Some(dev_key(4))).await;
    let (_, tx) = treasury.withdraw_revenue().await.unwrap();
    gas.insert("withdraw_revenue_treasury".into(), tx.gas_used);

    let tx = customer
        .request_withdrawal(pid, U256::from(PRICE))
        .await
        .unwrap();
    gas.insert("request_withdrawal".into(), tx.gas_used);
    anvil.advance_time(3600).await;
    let (_, tx) = customer.complete_withdrawal(pid).await.unwrap();
    gas.insert("complete_withdrawal".into(), tx.gas_used);
    gas
}

#[tokio::test]
async fn gas_stays_within_the_committed_snapshot() {
    let measured = measure().await;
    let text = std::fs::read_to_string(SNAPSHOT).unwrap_or_else(|e| {
        panic!("cannot read {SNAPSHOT}: {e}; run with SEALBOX_UPDATE_GAS_SNAPSHOT=1 to create it")
    });
    let mut snap: Snapshot =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{SNAPSHOT} is malformed: {e}"));

    println!(
        "{:<34} {:>10} {:>10} {:>8}",
        "operation", "gas", "snapshot", "change"
    );
    let mut failures = Vec::new();
    for (op, &g) in &measured {
        let old = snap.gas.get(op).copied();
        let change = old.map(|o| (g as f64 - o as f64) * 100.0 / o as f64);
        println!(
            "{op:<34} {g:>10} {:>10} {:>8}",
            old.map_or("-".into(), |o| o.to_string()),
            change.map_or("new".into(), |c| format!("{c:+.2}%"))
        );
        match change {
            None => failures.push(format!("{op}: not in the snapshot")),
            Some(c) if c > snap.tolerance_percent => failures.push(format!(
                "{op}: {g} gas is {c:+.2}% over the snapshot's {}",
                old.unwrap_or_default()
            )),
            _ => {}
        }
    }
    let repeat = measured["settle_repeat"];
    if repeat > snap.repeat_settle_budget {
        failures.push(format!(
            "settle_repeat: {repeat} gas exceeds the budget of {}",
            snap.repeat_settle_budget
        ));
    }

    if std::env::var_os("SEALBOX_UPDATE_GAS_SNAPSHOT").is_some() {
        snap.gas = measured;
        let out = serde_json::to_string_pretty(&snap).unwrap() + "\n";
        std::fs::write(Path::new(SNAPSHOT), out).unwrap();
        println!("updated {SNAPSHOT}");
        assert!(
            repeat <= snap.repeat_settle_budget,
            "settle_repeat {repeat} over budget"
        );
        return;
    }
    assert!(
        failures.is_empty(),
        "gas regressions (rerun with SEALBOX_UPDATE_GAS_SNAPSHOT=1 if intended):\n{}",
        failures.join("\n")
    );
}
