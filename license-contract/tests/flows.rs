//! Full flows against a real anvil: vendor, customer, runtime signer, relayer, treasury.

mod common;

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::sol_types::SolStruct;
use common::{PRICE, PRODUCT, THAW, World, expect_revert, wei};
use license_contract::{Reason, USAGE_TYPE, UsageReceipt, bindings::LicenseRegistry, product_id};

#[tokio::test]
async fn license_lifecycle_deposit_settle_and_revenue_split() {
    let w = World::new(U256::ZERO).await;
    let customer = w.customer_address();
    let vendor = w.vendor.sender().unwrap();
    let treasury = w.treasury.sender().unwrap();

    // the product id is keccak256(abi.encode(vendor, name)) on both sides
    assert_eq!(w.product_id, product_id(vendor, PRODUCT));
    assert_eq!(
        w.vendor.contract_product_id(vendor, PRODUCT).await.unwrap(),
        w.product_id
    );
    let p = w
        .customer
        .product(w.product_id)
        .await
        .unwrap()
        .expect("registered");
    assert_eq!(
        (p.vendor, p.price, p.active),
        (vendor, U256::from(PRICE), true)
    );
    let r = w
        .customer
        .release(w.code_hash)
        .await
        .unwrap()
        .expect("published");
    assert_eq!((r.product_id, r.revoked), (w.product_id, false));

    // no escrow yet
    let s = w.status(Some(w.code_hash)).await;
    assert_eq!(s.reason, Reason::NoBalance);
    assert!(!s.active);

    w.deposit(wei(1_000)).await;
    let s = w.status(Some(w.code_hash)).await;
    assert_eq!((s.active, s.reason), (true, Reason::Ok));
    assert_eq!(s.balance, wei(1_000));
    assert_eq!(s.price, U256::from(PRICE));
    assert_eq!(s.affordable_units(), 1_000);

    // a relayer submits the runtime's receipts; the runtime key holds no ETH
    let first = w.settle(100).await;
    assert!(!first.ignored);
    assert_eq!(first.signer, w.runtime_key.address());
    assert_eq!((first.units_charged, first.wei_charged), (100, wei(100)));
    let second = w.settle(250).await;
    assert_eq!(
        (
            second.units_charged,
            second.wei_charged,
            second.signer_settled
        ),
        (150, wei(150), 250)
    );
    let replay = w.settle(250).await;
    assert!(replay.ignored);
    assert_eq!((replay.units_charged, replay.wei_charged), (0, U256::ZERO));

    let s = w.status(Some(w.code_hash)).await;
    assert_eq!(s.balance, wei(750));
    assert_eq!(s.settled_units, 250);
    assert_eq!(
        w.customer
            .signer_settled(w.product_id, customer, w.runtime_key.address())
            .await
            .unwrap(),
        250
    );

    // 30 % to the treasury, 70 % to the vendor, pulled by each
    let fee = wei(250) * U256::from(3000) / U256::from(10_000);
    assert_eq!(w.customer.pending_revenue(treasury).await.unwrap(), fee);
    assert_eq!(
        w.customer.pending_revenue(vendor).await.unwrap(),
        wei(250) - fee
    );
    let before = w.eth(vendor).await;
    let (paid, tx) = w.vendor.withdraw_revenue().await.unwrap();
    assert_eq!(paid, wei(250) - fee);
    assert_eq!(w.eth(vendor).await, before + paid - w.gas_cost(&tx).await);
    let (paid, _) = w.treasury.withdraw_revenue().await.unwrap();
    assert_eq!(paid, fee);
    assert_eq!(
        w.customer.pending_revenue(vendor).await.unwrap(),
        U256::ZERO
    );
    // the contract holds exactly the remaining escrow
    assert_eq!(w.eth(w.platform.address()).await, wei(750));
}

#[tokio::test]
async fn deposit_on_behalf_of_another_customer() {
    let w = World::new(U256::ZERO).await;
    let beneficiary = Address::repeat_byte(0x42);
    w.relayer
        .deposit(w.product_id, Some(beneficiary), wei(5))
        .await
        .unwrap();
    let s = w.status_of(beneficiary, None).await;
    assert_eq!((s.balance, s.reason), (wei(5), Reason::Ok));
    let payer = w.relayer.sender().unwrap();
    assert_eq!(w.status_of(payer, None).await.balance, U256::ZERO);
}

#[tokio::test]
async fn withdrawal_waits_for_the_thaw_and_settlement_still_charges() {
    let w = World::new(wei(1_000)).await;
    let customer = w.customer_address();

    w.customer
        .request_withdrawal(w.product_id, wei(1_000))
        .await
        .unwrap();
    let s = w.status(None).await;
    assert_eq!(s.reason, Reason::WithdrawalPending);
    assert_eq!((s.thawing, s.available), (wei(1_000), U256::ZERO));
    assert!(s.thaw_end >= s.block_timestamp + THAW - 1);

    // too early: refused, nothing changes
    let err = expect_revert(
        w.customer.complete_withdrawal(w.product_id).await,
        "ThawNotOver",
    );
    assert!(
        err.to_string()
            .contains("wait until the thaw period has passed"),
        "{err}"
    );
    assert_eq!(w.balance().await, wei(1_000));

    // usage run before leaving is still paid during the thaw
    assert_eq!(w.settle(300).await.units_charged, 300);

    w.advance(THAW).await;
    let before = w.eth(customer).await;
    let (paid, tx) = w.customer.complete_withdrawal(w.product_id).await.unwrap();
    assert_eq!(paid, wei(700), "capped by what settlement left");
    assert_eq!(w.eth(customer).await, before + paid - w.gas_cost(&tx).await);
    let s = w.status(None).await;
    assert_eq!(
        (s.balance, s.thawing, s.reason),
        (U256::ZERO, U256::ZERO, Reason::NoBalance)
    );
}

#[tokio::test]
async fn cancelled_withdrawal_restores_the_license() {
    let w = World::new(wei(10)).await;
    w.customer
        .request_withdrawal(w.product_id, wei(10))
        .await
        .unwrap();
    assert_eq!(w.status(None).await.reason, Reason::WithdrawalPending);
    w.customer.cancel_withdrawal(w.product_id).await.unwrap();
    assert_eq!(w.status(None).await.reason, Reason::Ok);
    expect_revert(
        w.customer.cancel_withdrawal(w.product_id).await,
        "NoWithdrawalPending",
    );
}

#[tokio::test]
async fn shortfall_makes_the_license_inactive_until_paid() {
    let w = World::new(U256::ZERO).await;
    let one_eth = U256::from(10u64).pow(U256::from(18));
    w.vendor.set_price(w.product_id, one_eth).await.unwrap();
    w.deposit(one_eth * U256::from(5) / U256::from(2)).await;

    let receipt = w.receipt(5);
    let st = w.relayer.settle(&receipt).await.unwrap();
    assert_eq!(
        (st.units_charged, st.wei_charged, st.unpaid_units),
        (2, one_eth * U256::from(2), 3)
    );
    let s = w.status(None).await;
    assert_eq!(
        (s.reason, s.unpaid_units, s.active),
        (Reason::Exhausted, 3, false)
    );
    assert!(
        s.reason
            .remedy()
            .contains("settle the latest receipt again")
    );

    w.deposit(one_eth * U256::from(10)).await;
    assert_eq!(w.status(None).await.reason, Reason::Exhausted);
    let st = w.relayer.settle(&receipt).await.unwrap();
    assert_eq!((st.units_charged, st.unpaid_units), (3, 0));
    let s = w.status(None).await;
    assert_eq!((s.reason, s.settled_units), (Reason::Ok, 5));
    assert!(w.relayer.settle(&receipt).await.unwrap().ignored);
}

#[tokio::test]
async fn vendor_controls_product_release_and_customer() {
    let w = World::new(wei(100)).await;
    let c = w.customer_address();
    let status = |code: Option<B256>| {
        let w = &w;
        async move { w.status(code).await.reason }
    };
    assert_eq!(
        status(Some(B256::repeat_byte(9))).await,
        Reason::UnknownRelease
    );

    let (other, _) = w
        .vendor
        .register_product("other", U256::from(1))
        .await
        .unwrap();
    w.vendor
        .publish_release(other, B256::repeat_byte(0x77))
        .await
        .unwrap();
    assert_eq!(
        status(Some(B256::repeat_byte(0x77))).await,
        Reason::ReleaseOfOtherProduct
    );

    w.vendor.revoke_customer(w.product_id, c).await.unwrap();
    assert_eq!(status(Some(w.code_hash)).await, Reason::CustomerRevoked);
    w.vendor.reinstate_customer(w.product_id, c).await.unwrap();
    assert_eq!(status(Some(w.code_hash)).await, Reason::Ok);

    w.vendor.set_active(w.product_id, false).await.unwrap();
    assert_eq!(status(Some(w.code_hash)).await, Reason::ProductInactive);
    w.vendor.set_active(w.product_id, true).await.unwrap();

    w.vendor.revoke_release(w.code_hash).await.unwrap();
    assert_eq!(status(Some(w.code_hash)).await, Reason::ReleaseRevoked);
    assert_eq!(
        status(None).await,
        Reason::Ok,
        "account-only status skips the release"
    );
    assert!(
        w.customer
            .release(w.code_hash)
            .await
            .unwrap()
            .unwrap()
            .revoked
    );

    assert_eq!(
        w.customer
            .license_status(B256::repeat_byte(1), c, None)
            .await
            .unwrap()
            .reason,
        Reason::UnknownProduct
    );
}

#[tokio::test]
async fn deauthorized_signer_settles_during_thaw_then_stops() {
    let w = World::new(wei(1_000)).await;
    let c = w.customer_address();
    let signer = w.runtime_key.address();
    w.customer
        .deauthorize_signer(w.product_id, signer)
        .await
        .unwrap();
    let s = w
        .customer
        .signer_status(w.product_id, c, signer)
        .await
        .unwrap();
    assert!(s.authorized && s.valid_until != u64::MAX);
    assert_eq!(w.settle(10).await.units_charged, 10);

    w.advance(THAW).await;
    assert!(
        !w.customer
            .signer_status(w.product_id, c, signer)
            .await
            .unwrap()
            .authorized
    );
    let err = w.relayer.settle(&w.receipt(20)).await.unwrap_err();
    assert_eq!(err.revert().and_then(|r| r.signer()), Some(signer), "{err}");

    // re-authorized, it keeps its counter: the old receipt cannot charge again
    w.customer
        .authorize_signer(w.product_id, signer)
        .await
        .unwrap();
    assert!(w.settle(10).await.ignored);
    assert_eq!(w.settle(20).await.units_charged, 10);
}

#[tokio::test]
async fn fleet_of_signers_settles_independently() {
    let w = World::new(wei(1_000)).await;
    let c = w.customer_address();
    let second = alloy::signers::local::PrivateKeySigner::random();
    w.customer
        .authorize_signer(w.product_id, second.address())
        .await
        .unwrap();
    w.settle(100).await;
    let r2 = w
        .customer
        .sign_usage(&second, w.product_id, c, 40, 1)
        .unwrap();
    assert_eq!(w.relayer.settle(&r2).await.unwrap().units_charged, 40);
    let s = w.status(None).await;
    assert_eq!((s.settled_units, s.balance), (140, wei(860)));
}

#[tokio::test]
async fn eip712_encoding_matches_the_contract() {
    let w = World::new(U256::ZERO).await;
    let receipt = UsageReceipt {
        product_id: w.product_id,
        customer: w.customer_address(),
        cumulative_units: 123_456_789,
        timestamp: 1_764_000_000,
    };
    // same digest from alloy's SolStruct encoding and from the contract's hand-written one
    assert_eq!(
        receipt.signing_hash(w.customer.domain()),
        w.customer.contract_usage_hash(&receipt).await.unwrap()
    );
    let contract = LicenseRegistry::new(w.platform.address(), w.platform.provider().clone());
    assert_eq!(
        contract.USAGE_TYPEHASH().call().await.unwrap(),
        keccak256(USAGE_TYPE)
    );
    assert_eq!(LicenseRegistry::Usage::eip712_encode_type(), USAGE_TYPE);
    assert_eq!(
        contract.domainSeparator().call().await.unwrap(),
        w.customer.domain().separator()
    );
    // and the contract recovers the runtime key from a signature alloy made
    let signed = w.receipt(5);
    let recovered = contract
        .recoverSigner(
            signed.receipt.signing_hash(w.customer.domain()),
            signed.signature.to_vec().into(),
        )
        .call()
        .await
        .unwrap();
    assert_eq!(recovered, w.runtime_key.address());
    assert_eq!(
        signed.recover_signer(w.customer.domain()).unwrap(),
        w.runtime_key.address()
    );
}

#[tokio::test]
async fn registry_info_reports_deployment_parameters() {
    let w = World::new(U256::ZERO).await;
    let info = w.customer.info().await.unwrap();
    assert_eq!(info.fee_bps, 3000);
    assert_eq!(info.treasury, w.treasury.sender().unwrap());
    assert_eq!(info.thaw_seconds, THAW);
    assert_eq!(info.chain_id, 31337);
    assert_eq!(info.address, w.platform.address());
}
