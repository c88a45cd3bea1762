//! Every bad input gets a clear, typed error and changes nothing (real anvil, no mocks).

mod common;

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use common::{
    PRICE, PRODUCT, World, dead_rpc_url, dev_key, expect_revert, revert_name, spawn_anvil, wei,
};
use license_contract::{
    DeployParams, RegistryClient, RegistryError, SignedUsage, UsageReceipt, usage_domain,
};

/// A 500-unit receipt for the fixture customer, signed by the authorized runtime key but under
/// the EIP-712 domain of `registry` on `chain_id`.
fn receipt_signed_for(w: &World, chain_id: u64, registry: Address) -> SignedUsage {
    let receipt = UsageReceipt {
        product_id: w.product_id,
        customer: w.customer_address(),
        cumulative_units: 500,
        timestamp: 1,
    };
    receipt
        .sign(&w.runtime_key, &usage_domain(chain_id, registry))
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
    let key = dev_key(&w.anvil, 5);
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
    let anvil = spawn_anvil();
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
    let anvil = spawn_anvil();
    let key = dev_key(&anvil, 0);
    let provider = alloy::providers::ProviderBuilder::new()
        .wallet(key)
        .connect_http(anvil.endpoint_url());
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
    let anvil = spawn_anvil();
    let params = DeployParams {
        fee_bps: 10_001,
        ..DeployParams::default()
    };
    let err = RegistryClient::deploy(&anvil.endpoint(), dev_key(&anvil, 0), params)
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
    let err = RegistryClient::deploy(&anvil.endpoint(), dev_key(&anvil, 0), params)
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
        w.customer.revoke_release(w.code_hash).await,
        w.customer.revoke_customer(w.product_id, customer).await,
    ] {
        expect_revert(res, "NotVendor");
    }
    let p = w.customer.product(w.product_id).await.unwrap().unwrap();
    assert_eq!((p.price, p.active), (U256::from(PRICE), true), "unchanged");
    assert!(
        w.customer
            .release(B256::repeat_byte(3))
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
    expect_revert(
        w.vendor.publish_release(w.product_id, w.code_hash).await,
        "ReleaseExists",
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
        .sign_usage(&stranger, w.product_id, w.customer_address(), 500, 1)
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
    let signed = receipt_signed_for(&w, 1, w.platform.address());
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
    let signed = receipt_signed_for(&w, 31337, Address::repeat_byte(0x99));
    expect_revert(w.relayer.settle(&signed).await, "SignerNotAuthorized");
    assert_eq!(w.balance().await, wei(1000));
}

#[tokio::test]
async fn stale_receipt_is_ignored_without_charging() {
    let w = World::new(wei(1000)).await;
    w.settle(100).await;
    let before = w.balance().await;
    let st = w.settle(60).await;
    assert!(st.ignored);
    assert_eq!(
        (st.units_charged, st.wei_charged, st.signer_settled),
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

    for (tampered, refusal) in [
        (high_s, "SignatureSMalleable"),
        (bad_v, "InvalidSignatureV"),
        (zero_r, "InvalidSignature"),
        (inflated, "SignerNotAuthorized"),
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
