//! Every bad input gets a clear, typed error and changes nothing (real anvil, no mocks).

mod common;

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use common::{BUYER, EXPIRES, PRICE, PRODUCT, World, expect_revert, revert_name, wei};
use license_contract::{
    DeployParams, RegistryClient, RegistryError, SignedUsage, UsageReceipt, usage_domain,
};
use sealbox_testkit::{Anvil, dead_rpc_url, dev_key};

/// A 500-unit receipt for the fixture customer, signed by the authorized runtime key but under
/// the EIP-712 domain of `registry` on `chain_id` with deployment salt `salt`.
fn receipt_signed_for(w: &World, chain_id: u64, registry: Address, salt: B256) -> SignedUsage {
    let receipt = UsageReceipt {
        product_id: w.product_id,
        customer: w.customer_address(),
        buyer: BUYER,
        cumulative_units: 500,
        max_price: PRICE.into(),
        expires_at: EXPIRES,
    };
    receipt
        .sign(&w.runtime_key, &usage_domain(chain_id, registry, salt))
        .unwrap()
}

#[tokio::test]
async fn unreachable_rpc_is_reported_as_such() {
    // a port nobody listens on
    let url = dead_rpc_url();
    let err = RegistryClient::connect(&url, Address::repeat_byte(1), None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&url) && err.to_string().contains("cannot reach"),
        "{err}"
    );

    let err = RegistryClient::deploy(&url, PrivateKeySigner::random(), DeployParams::default())
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err:?}");
}

#[tokio::test]
async fn malformed_rpc_url_is_rejected() {
    for url in ["not a url", "ftp://127.0.0.1:8545"] {
        let err = RegistryClient::connect(url, Address::ZERO, None, None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::InvalidRpcUrl { .. }),
            "{url}: {err:?}"
        );
    }
}

#[tokio::test]
async fn wrong_chain_id_is_refused_before_anything_happens() {
    let w = World::new(U256::ZERO).await;
    let err = RegistryClient::connect(&w.url, w.platform.address(), Some(1), None)
        .await
        .unwrap_err();
    match &err {
        RegistryError::WrongChain {
            expected, actual, ..
        } => assert_eq!((*expected, *actual), (1, 31337)),
        other => panic!("expected WrongChain, got {other:?}"),
    }
    let key = dev_key(5);
    let nonce_before = w
        .platform
        .provider()
        .get_transaction_count(key.address())
        .await
        .unwrap();
    let params = DeployParams {
        expected_chain_id: Some(1),
        ..DeployParams::default()
    };
    let err = RegistryClient::deploy(&w.url, key.clone(), params)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::WrongChain { .. }), "{err:?}");
    assert_eq!(
        w.platform
            .provider()
            .get_transaction_count(key.address())
            .await
            .unwrap(),
        nonce_before,
        "nothing sent"
    );
}

#[tokio::test]
async fn address_without_code_is_not_a_registry() {
    let anvil = Anvil::spawn();
    let nobody = Address::repeat_byte(0x5A);
    let err = RegistryClient::connect(&anvil.endpoint(), nobody, None, None)
        .await
        .unwrap_err();
    match &err {
        RegistryError::NoContract { address, chain_id } => {
            assert_eq!((*address, *chain_id), (nobody, 31337))
        }
        other => panic!("expected NoContract, got {other:?}"),
    }
}

#[tokio::test]
async fn contract_that_is_not_a_registry_is_refused() {
    let anvil = Anvil::spawn();
    let key = dev_key(0);
    let provider = alloy::providers::ProviderBuilder::new()
        .wallet(key)
        .connect_http(anvil.endpoint().parse().unwrap());
    // init code deploying runtime `PUSH1 32 PUSH1 0 RETURN`: answers every call with 32 zero bytes
    let init = Bytes::from_static(&[
        0x64, 0x60, 0x20, 0x60, 0x00, 0xf3, 0x60, 0x00, 0x52, 0x60, 0x05, 0x60, 0x1b, 0xf3,
    ]);
    let receipt = provider
        .send_transaction(TransactionRequest::default().with_deploy_code(init))
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let other = receipt.contract_address.unwrap();
    assert!(!provider.get_code_at(other).await.unwrap().is_empty());
    let err = RegistryClient::connect(&anvil.endpoint(), other, None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::NotARegistry { .. }), "{err:?}");
}

#[tokio::test]
async fn bad_deploy_parameters_are_decoded() {
    let anvil = Anvil::spawn();
    let params = DeployParams {
        fee_bps: 10_001,
        ..DeployParams::default()
    };
    let err = RegistryClient::deploy(&anvil.endpoint(), dev_key(0), params)
        .await
        .unwrap_err();
    assert_eq!(revert_name(&err), Some("FeeTooHigh"), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("10001 basis points") && msg.contains("between 0 and 10000"),
        "{msg}"
    );

    let params = DeployParams {
        thaw_seconds: 20 * 365 * 86_400,
        ..DeployParams::default()
    };
    let err = RegistryClient::deploy(&anvil.endpoint(), dev_key(0), params)
        .await
        .unwrap_err();
    assert_eq!(revert_name(&err), Some("ThawTooLong"), "{err:?}");
}

#[tokio::test]
async fn read_only_client_cannot_transact() {
    let w = World::new(U256::ZERO).await;
    let ro = RegistryClient::connect(&w.url, w.platform.address(), None, None)
        .await
        .unwrap();
    assert_eq!(ro.sender(), None);
    let err = ro
        .deposit(w.product_id, None, U256::from(1))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::NoWallet { .. }), "{err:?}");
    assert!(err.to_string().contains("--key"), "{err}");
    // reads work
    assert!(ro.product(w.product_id).await.unwrap().is_some());
}

#[tokio::test]
async fn only_the_vendor_changes_a_product() {
    let w = World::new(U256::ZERO).await;
    let customer = w.customer_address();
    let err = expect_revert(
        w.customer.set_price(w.product_id, U256::from(1)).await,
        "NotVendor",
    );
    assert!(err.to_string().contains("vendor's key"), "{err}");
    assert!(err.to_string().contains(&customer.to_string()), "{err}");
    for res in [
        w.customer.set_active(w.product_id, false).await,
        w.customer
            .publish_release(w.product_id, B256::repeat_byte(3))
            .await,
        w.customer.revoke_release(w.product_id, w.code_hash).await,
        w.customer.revoke_customer(w.product_id, customer).await,
    ] {
        expect_revert(res, "NotVendor");
    }
    let p = w.customer.product(w.product_id).await.unwrap().unwrap();
    assert_eq!((p.price, p.active), (U256::from(PRICE), true), "unchanged");
    assert!(
        w.customer
            .release(w.product_id, B256::repeat_byte(3))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn duplicates_and_unknown_ids_are_refused() {
    let w = World::new(U256::ZERO).await;
    expect_revert(
        w.vendor.register_product(PRODUCT, U256::from(1)).await,
        "ProductExists",
    );
    expect_revert(
        w.vendor.register_product("", U256::from(1)).await,
        "EmptyName",
    );
    let err = expect_revert(
        w.vendor.publish_release(w.product_id, w.code_hash).await,
        "ReleaseExists",
    );
    assert_eq!(
        err.revert().and_then(|r| r.product_id()),
        Some(w.product_id)
    );
    expect_revert(
        w.vendor
            .revoke_release(w.product_id, B256::repeat_byte(0x5E))
            .await,
        "UnknownRelease",
    );
    expect_revert(
        w.vendor.publish_release(w.product_id, B256::ZERO).await,
        "ZeroCodeHash",
    );
    expect_revert(
        w.vendor.register_product("huge", U256::MAX).await,
        "PriceTooHigh",
    );

    let unknown = B256::repeat_byte(0xEE);
    let err = w
        .customer
        .deposit(unknown, None, U256::from(1))
        .await
        .unwrap_err();
    assert_eq!(
        err.revert().and_then(|r| r.product_id()),
        Some(unknown),
        "{err}"
    );
    assert!(err.to_string().contains("not registered"), "{err}");
    expect_revert(
        w.customer
            .authorize_signer(unknown, Address::repeat_byte(1))
            .await,
        "UnknownProduct",
    );
    expect_revert(
        w.customer.deposit(w.product_id, None, U256::ZERO).await,
        "ZeroDeposit",
    );
}

#[tokio::test]
async fn withdrawal_errors() {
    let w = World::new(wei(1)).await;
    let err = w
        .customer
        .request_withdrawal(w.product_id, wei(2))
        .await
        .unwrap_err();
    assert_eq!(
        err.revert().and_then(|r| r.balance()),
        Some(wei(1)),
        "{err}"
    );
    expect_revert(
        w.customer.complete_withdrawal(w.product_id).await,
        "NoWithdrawalPending",
    );
    expect_revert(w.relayer.withdraw_revenue().await, "NothingToWithdraw");
    assert_eq!(w.balance().await, wei(1));
}

#[tokio::test]
async fn insufficient_funds_is_a_clear_error() {
    let w = World::new(U256::ZERO).await;
    // an unfunded wallet
    let broke = RegistryClient::connect(
        &w.url,
        w.platform.address(),
        None,
        Some(PrivateKeySigner::random()),
    )
    .await
    .unwrap();
    let err = broke
        .deposit(w.product_id, None, U256::from(1))
        .await
        .unwrap_err();
    match &err {
        RegistryError::InsufficientFunds {
            account, balance, ..
        } => {
            assert_eq!((*account, *balance), (broke.sender().unwrap(), U256::ZERO));
        }
        other => panic!("expected InsufficientFunds, got {other:?}"),
    }
    assert!(err.to_string().contains("fund it"), "{err}");
    // a funded wallet depositing more than it holds
    let have = w.eth(w.customer_address()).await;
    let err = w
        .customer
        .deposit(w.product_id, None, have + U256::from(1))
        .await
        .unwrap_err();
    match &err {
        RegistryError::InsufficientFunds { balance, .. } => assert_eq!(*balance, have),
        other => panic!("expected InsufficientFunds, got {other:?}"),
    }
    assert_eq!(w.balance().await, U256::ZERO);
}

#[tokio::test]
async fn receipt_from_an_unauthorized_signer_does_not_charge() {
    let w = World::new(wei(1000)).await;
    let stranger = PrivateKeySigner::random();
    let forged = w
        .customer
        .sign_usage(
            &stranger,
            w.product_id,
            w.customer_address(),
            BUYER,
            500,
            PRICE.into(),
            EXPIRES,
        )
        .unwrap();
    let err = expect_revert(w.relayer.settle(&forged).await, "SignerNotAuthorized");
    assert_eq!(
        err.revert().and_then(|r| r.signer()),
        Some(stranger.address())
    );
    assert!(err.to_string().contains("must authorize"), "{err}");
    assert_eq!(w.balance().await, wei(1000));
}

#[tokio::test]
async fn receipt_signed_for_another_chain_does_not_charge() {
    let w = World::new(wei(1000)).await;
    let signed = receipt_signed_for(&w, 1, w.platform.address(), w.customer.deployment_salt());
    let err = expect_revert(w.relayer.settle(&signed).await, "SignerNotAuthorized");
    assert_ne!(
        err.revert().and_then(|r| r.signer()),
        Some(w.runtime_key.address())
    );
    assert_eq!(w.balance().await, wei(1000));
}

#[tokio::test]
async fn receipt_signed_for_another_registry_does_not_charge() {
    let w = World::new(wei(1000)).await;
    let signed = receipt_signed_for(
        &w,
        31337,
        Address::repeat_byte(0x99),
        w.customer.deployment_salt(),
    );
    expect_revert(w.relayer.settle(&signed).await, "SignerNotAuthorized");
    let signed = receipt_signed_for(&w, 31337, w.platform.address(), B256::repeat_byte(0x5A));
    expect_revert(w.relayer.settle(&signed).await, "SignerNotAuthorized");
    assert_eq!(w.balance().await, wei(1000));
}

/// Attack (d): the same registry redeployed at the same address on a fresh dev chain (later
/// genesis) with the same product, customer, escrow and authorized key: a receipt signed for the
/// first deployment does not settle on the second.
#[tokio::test]
async fn receipt_signed_for_another_deployment_at_the_same_address_does_not_charge() {
    let first = World::new(wei(1000)).await;
    let later = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600)
        .to_string();
    let fresh = Anvil::spawn_with(&["--timestamp", &later]);
    let second = World::build(fresh, wei(1000), first.runtime_key.clone()).await;
    assert_eq!(second.platform.address(), first.platform.address());
    assert_eq!(second.product_id, first.product_id);
    assert_ne!(
        second.customer.deployment_salt(),
        first.customer.deployment_salt()
    );
    assert_ne!(
        first.customer.genesis_hash().await.unwrap(),
        second.customer.genesis_hash().await.unwrap()
    );

    let signed_for_first = first.receipt(500);
    let err = expect_revert(
        second.relayer.settle(&signed_for_first).await,
        "SignerNotAuthorized",
    );
    assert_ne!(
        err.revert().and_then(|r| r.signer()),
        Some(first.runtime_key.address())
    );
    assert_eq!(second.balance().await, wei(1000));
    assert_eq!(second.signer_status(BUYER).await.bought_units, 0);
    // each deployment settles its own receipts
    assert_eq!(second.settle(500).await.units_charged, 500);
    assert_eq!(first.settle(500).await.units_charged, 500);
}

/// Attack (a): the vendor front-runs a pending purchase with a price rise: the purchase reverts,
/// nothing is charged; after a price cut the same receipt buys at the lower price.
#[tokio::test]
async fn vendor_front_running_a_purchase_with_a_price_rise_gets_nothing() {
    let w = World::new(wei(1000)).await;
    let pending = w.receipt(100); // cap = PRICE
    w.vendor
        .set_price(w.product_id, U256::from(PRICE * 3))
        .await
        .unwrap();
    let err = expect_revert(w.relayer.settle(&pending).await, "PriceAboveCap");
    let msg = err.to_string();
    assert!(
        msg.contains("the vendor raised the price above the signer's cap")
            && msg.contains(&(PRICE * 3).to_string()),
        "{msg}"
    );
    assert_eq!(w.balance().await, wei(1000), "nothing charged");
    assert_eq!(w.signer_status(BUYER).await.bought_units, 0);
    assert_eq!(
        w.vendor
            .pending_revenue(w.vendor.sender().unwrap())
            .await
            .unwrap(),
        U256::ZERO
    );

    w.vendor
        .set_price(w.product_id, U256::from(PRICE / 2))
        .await
        .unwrap();
    let st = w.relayer.settle(&pending).await.unwrap();
    assert_eq!(
        (st.units_charged, st.wei_charged, st.price),
        (100, wei(50), U256::from(PRICE / 2))
    );
    assert_eq!(w.balance().await, wei(950));
}

/// Attack (c): a purchase the escrow cannot pay reverts whole and changes nothing.
#[tokio::test]
async fn purchase_the_escrow_cannot_pay_is_refused_whole() {
    let w = World::new(wei(10)).await;
    let err = expect_revert(w.relayer.settle(&w.receipt(11)).await, "InsufficientEscrow");
    assert_eq!(err.revert().and_then(|r| r.balance()), Some(wei(10)));
    assert!(err.to_string().contains("deposit more"), "{err}");
    let s = w.status(None).await;
    assert_eq!((s.balance, s.bought_units), (wei(10), 0));
    assert_eq!(w.signer_status(BUYER).await.bought_units, 0);
    // exactly what the escrow pays goes through
    assert_eq!(w.settle(10).await.wei_charged, wei(10));
    assert_eq!(
        w.status(None).await.reason,
        license_contract::Reason::NoBalance
    );
}

/// Attack (e): an expired receipt does not settle, e.g. an old one replayed after a top-up.
#[tokio::test]
async fn expired_receipt_is_refused() {
    let w = World::new(U256::ZERO).await;
    let now = w.now().await;
    let old = w.receipt_with(BUYER, 5, PRICE.into(), now + 30);
    // too poor at first
    expect_revert(w.relayer.settle(&old).await, "InsufficientEscrow");
    w.advance(60).await;
    w.deposit(wei(100)).await;
    let err = expect_revert(w.relayer.settle(&old).await, "ReceiptExpired");
    assert!(err.to_string().contains("sign a new receipt"), "{err}");
    assert_eq!(w.balance().await, wei(100));
    let fresh = w.receipt_with(BUYER, 5, PRICE.into(), w.now().await + 30);
    assert_eq!(w.relayer.settle(&fresh).await.unwrap().units_charged, 5);
}

#[tokio::test]
async fn stale_receipt_is_ignored_without_charging() {
    let w = World::new(wei(1000)).await;
    w.settle(100).await;
    let before = w.balance().await;
    let st = w.settle(60).await;
    assert!(st.ignored);
    assert_eq!(
        (st.units_charged, st.wei_charged, st.buyer_cumulative),
        (0, U256::ZERO, 100)
    );
    assert_eq!(w.balance().await, before);
}

#[tokio::test]
async fn tampered_signatures_are_refused_with_their_reason() {
    let w = World::new(wei(1000)).await;
    let good = w.receipt(10);

    let mut high_s = good;
    // s' = n - s with v flipped recovers the same key; the contract refuses the malleable twin
    let n = U256::from_str_radix(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141",
        16,
    )
    .unwrap();
    let s = U256::from_be_slice(&good.signature[32..64]);
    high_s.signature[32..64].copy_from_slice(&(n - s).to_be_bytes::<32>());
    high_s.signature[64] = if good.signature[64] == 27 { 28 } else { 27 };

    let mut bad_v = good;
    bad_v.signature[64] = 29;

    let mut zero_r = good;
    zero_r.signature[..32].fill(0);

    let mut inflated = good;
    inflated.receipt.cumulative_units = 1_000_000;
    let mut other_buyer = good;
    other_buyer.receipt.buyer = B256::repeat_byte(0xEE);
    let mut raised_cap = good;
    raised_cap.receipt.max_price = u128::MAX;
    let mut extended = good;
    extended.receipt.expires_at = u64::MAX;

    for (tampered, refusal) in [
        (high_s, "SignatureSMalleable"),
        (bad_v, "InvalidSignatureV"),
        (zero_r, "InvalidSignature"),
        (inflated, "SignerNotAuthorized"),
        (other_buyer, "SignerNotAuthorized"),
        (raised_cap, "SignerNotAuthorized"),
        (extended, "SignerNotAuthorized"),
    ] {
        expect_revert(w.relayer.settle(&tampered).await, refusal);
    }

    assert_eq!(w.balance().await, wei(1000));
    assert_eq!(
        w.relayer.settle(&good).await.unwrap().units_charged,
        10,
        "the genuine receipt still settles"
    );
}

#[tokio::test]
async fn refused_transactions_do_not_stall_the_client() {
    let w = World::new(U256::ZERO).await;
    for _ in 0..5 {
        expect_revert(
            w.customer
                .deposit(B256::repeat_byte(0xEE), None, U256::from(1))
                .await,
            "UnknownProduct",
        );
    }
    // a consumed-but-unsent nonce would leave this transaction stuck in the pool forever
    let ok = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        w.customer.deposit(w.product_id, None, U256::from(7)),
    )
    .await
    .expect("the next transaction must be mined, not stuck behind a nonce gap");
    ok.unwrap();
    assert_eq!(w.balance().await, U256::from(7));
}

/// Attack (a) in the mempool, as a vendor would run it: with automine off the customer's purchase
/// is pending when the vendor sends `setPrice` with a higher tip; the block orders the price rise
/// first. The purchase is mined and reverts (`PriceAboveCap`): nothing is charged, nothing bought.
#[tokio::test]
async fn vendor_front_running_a_pending_purchase_in_the_mempool_gets_nothing() {
    let w = World::new(wei(1000)).await;
    let provider = w.relayer.provider().clone();
    let pending_txs = || {
        let provider = provider.clone();
        async move {
            let status: serde_json::Value = provider
                .raw_request("txpool_status".into(), ())
                .await
                .unwrap();
            status["pending"].as_str().map_or_else(
                || status["pending"].as_u64().unwrap_or(0),
                |hex| u64::from_str_radix(hex.trim_start_matches("0x"), 16).unwrap_or(0),
            )
        }
    };
    let _: serde_json::Value = provider
        .raw_request("evm_setAutomine".into(), (false,))
        .await
        .unwrap();

    // The customer's purchase of 100 units at PRICE goes into the mempool.
    let receipt = w.receipt(100);
    let relayer = w.relayer.clone();
    let purchase = tokio::spawn(async move { relayer.settle(&receipt).await });
    for _ in 0..200 {
        if pending_txs().await >= 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(pending_txs().await, 1, "the purchase is pending");

    // The vendor sees it and sends a price rise with a much higher tip.
    let registry = license_contract::bindings::LicenseRegistry::new(
        w.vendor.address(),
        w.vendor.provider().clone(),
    );
    let rise = registry
        .setPrice(w.product_id, U256::from(PRICE * 10))
        .max_priority_fee_per_gas(100_000_000_000)
        .max_fee_per_gas(200_000_000_000)
        .send()
        .await
        .unwrap();
    assert_eq!(pending_txs().await, 2);
    let _: serde_json::Value = provider.raw_request("evm_mine".into(), ()).await.unwrap();
    let rise = rise.get_receipt().await.unwrap();
    assert!(rise.status(), "the price rise was mined");

    let err = purchase.await.unwrap().unwrap_err();
    assert!(
        matches!(err, RegistryError::TxFailed { .. }),
        "the purchase must be mined and revert: {err}"
    );
    let mined = provider
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mined.transactions.len(), 2, "both in one block");
    assert_eq!(w.balance().await, wei(1000), "nothing charged");
    assert_eq!(
        w.signer_status(BUYER).await.bought_units,
        0,
        "nothing bought"
    );
    assert_eq!(
        w.vendor
            .pending_revenue(w.vendor.sender().unwrap())
            .await
            .unwrap(),
        U256::ZERO
    );
}
