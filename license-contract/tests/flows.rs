//! Full flows against a real anvil: vendor, customer, runtime signer (buying units ahead),
//! relayer, treasury.

mod common;

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolStruct;
use common::{BUYER, EXPIRES, PRICE, PRODUCT, THAW, World, expect_revert, wei};
use license_contract::{Reason, USAGE_TYPE, UsageReceipt, bindings::LicenseRegistry, product_id};

#[tokio::test]
async fn license_lifecycle_deposit_buy_and_revenue_split() {
    let w = World::new(U256::ZERO).await;
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
        .release(w.product_id, w.code_hash)
        .await
        .unwrap()
        .expect("published");
    assert_eq!(
        (r.product_id, r.code_hash, r.revoked),
        (w.product_id, w.code_hash, false)
    );

    // no escrow yet: licensed, but nothing can be bought
    let s = w.status(Some(w.code_hash)).await;
    assert_eq!(s.reason, Reason::NoBalance);
    assert!(!s.active && s.reason.is_funding());

    w.deposit(wei(1_000)).await;
    let s = w.status(Some(w.code_hash)).await;
    assert_eq!((s.active, s.reason), (true, Reason::Ok));
    assert_eq!(s.balance, wei(1_000));
    assert_eq!(s.price, U256::from(PRICE));
    assert_eq!(s.affordable_units(), 1_000);

    // a relayer submits the runtime's purchases; the runtime key holds no ETH here
    let first = w.settle(100).await;
    assert!(!first.ignored);
    assert_eq!(
        (first.signer, first.buyer),
        (w.runtime_key.address(), BUYER)
    );
    assert_eq!((first.units_charged, first.wei_charged), (100, wei(100)));
    assert_eq!(
        (first.buyer_cumulative, first.price),
        (100, U256::from(PRICE))
    );
    let second = w.settle(250).await;
    assert_eq!(
        (
            second.units_charged,
            second.wei_charged,
            second.buyer_cumulative
        ),
        (150, wei(150), 250)
    );
    let replay = w.settle(250).await;
    assert!(replay.ignored);
    assert_eq!(
        (
            replay.units_charged,
            replay.wei_charged,
            replay.buyer_cumulative
        ),
        (0, U256::ZERO, 250)
    );

    let s = w.status(Some(w.code_hash)).await;
    assert_eq!((s.balance, s.bought_units), (wei(750), 250));
    let st = w.signer_status(BUYER).await;
    assert_eq!((st.authorized, st.bought_units), (true, 250));

    // 70 % to the vendor at once; 30 % accrues in the vendor's slot until collected
    let fee = wei(250) * U256::from(3000) / U256::from(10_000);
    assert_eq!(
        w.customer.pending_revenue(vendor).await.unwrap(),
        wei(250) - fee
    );
    assert_eq!(w.customer.fee_owed(vendor).await.unwrap(), fee);
    assert_eq!(
        w.customer.pending_revenue(treasury).await.unwrap(),
        U256::ZERO
    );
    let before = w.eth(vendor).await;
    let (paid, tx) = w.vendor.withdraw_revenue().await.unwrap();
    assert_eq!(paid, wei(250) - fee);
    assert_eq!(w.eth(vendor).await, before + paid - w.gas_cost(&tx).await);

    // anyone collects the fee for the treasury, from the vendors the logs name
    assert_eq!(w.relayer.vendors().await.unwrap(), vec![vendor]);
    let (moved, _) = w.relayer.collect_fees(&[vendor]).await.unwrap();
    assert_eq!(moved, fee);
    assert_eq!(w.customer.fee_owed(vendor).await.unwrap(), U256::ZERO);
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
async fn runtime_signer_buys_with_its_own_gas() {
    let w = World::new(wei(100)).await;
    // the runtime key pays for its purchases: fund it, then it submits its own receipt
    let runtime = w
        .anvil
        .client(w.platform.address(), Some(w.runtime_key.clone()))
        .await;
    let err = runtime.settle(&w.receipt(10)).await.unwrap_err();
    assert!(
        matches!(
            err,
            license_contract::RegistryError::InsufficientFunds { .. }
        ),
        "{err:?}"
    );
    w.relayer
        .provider()
        .send_transaction(
            alloy::rpc::types::TransactionRequest::default()
                .to(w.runtime_key.address())
                .value(U256::from(10u64).pow(U256::from(17)))
                .from(w.relayer.sender().unwrap()),
        )
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let st = runtime.settle(&w.receipt(10)).await.unwrap();
    assert_eq!((st.units_charged, st.wei_charged), (10, wei(10)));
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
async fn withdrawal_waits_for_the_thaw_and_purchases_still_draw_on_it() {
    let w = World::new(wei(1_000)).await;
    let customer = w.customer_address();

    w.customer
        .request_withdrawal(w.product_id, wei(1_000))
        .await
        .unwrap();
    let s = w.status(None).await;
    assert_eq!(s.reason, Reason::WithdrawalPending);
    assert!(s.reason.is_funding());
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

    // a purchase signed before the request still draws on the balance during the thaw
    assert_eq!(w.settle(300).await.units_charged, 300);

    w.advance(THAW).await;
    let before = w.eth(customer).await;
    let (paid, tx) = w.customer.complete_withdrawal(w.product_id).await.unwrap();
    assert_eq!(paid, wei(700), "capped by what the purchase left");
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

    // a release of another product is not a release of this one
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
        Reason::UnknownRelease
    );

    w.vendor.revoke_customer(w.product_id, c).await.unwrap();
    let s = w.status(Some(w.code_hash)).await;
    assert_eq!(s.reason, Reason::CustomerRevoked);
    assert!(!s.reason.is_funding(), "a revocation is a lapse");
    w.vendor.reinstate_customer(w.product_id, c).await.unwrap();
    assert_eq!(status(Some(w.code_hash)).await, Reason::Ok);

    w.vendor.set_active(w.product_id, false).await.unwrap();
    assert_eq!(status(Some(w.code_hash)).await, Reason::ProductInactive);
    w.vendor.set_active(w.product_id, true).await.unwrap();

    w.vendor
        .revoke_release(w.product_id, w.code_hash)
        .await
        .unwrap();
    assert_eq!(status(Some(w.code_hash)).await, Reason::ReleaseRevoked);
    assert_eq!(
        status(None).await,
        Reason::Ok,
        "account-only status skips the release"
    );
    assert!(
        w.customer
            .release(w.product_id, w.code_hash)
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    expect_revert(
        w.vendor.publish_release(w.product_id, w.code_hash).await,
        "ReleaseExists",
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

/// Attack (b): a stranger publishes the vendor's next code hash under a product of its own first.
#[tokio::test]
async fn stranger_publishing_the_vendors_code_hash_does_not_block_the_vendor() {
    let w = World::new(wei(100)).await;
    let build = B256::repeat_byte(0xD1);
    let (squat, _) = w
        .relayer
        .register_product("squat", U256::from(1))
        .await
        .unwrap();
    w.relayer.publish_release(squat, build).await.unwrap();
    expect_revert(
        w.relayer.publish_release(w.product_id, build).await,
        "NotVendor",
    );
    assert_eq!(w.status(Some(build)).await.reason, Reason::UnknownRelease);
    assert!(
        w.customer
            .release(w.product_id, build)
            .await
            .unwrap()
            .is_none()
    );

    w.vendor.publish_release(w.product_id, build).await.unwrap();
    let s = w.status(Some(build)).await;
    assert_eq!((s.reason, s.active), (Reason::Ok, true));
    for product in [w.product_id, squat] {
        let r = w.customer.release(product, build).await.unwrap().unwrap();
        assert_eq!((r.product_id, r.revoked), (product, false));
    }
}

/// Attack (g): deauthorization stops a signer at once, even for receipts signed before it.
#[tokio::test]
async fn deauthorized_signer_is_refused_immediately_and_keeps_its_counters() {
    let w = World::new(wei(1_000)).await;
    let signer = w.runtime_key.address();
    assert_eq!(w.settle(10).await.units_charged, 10);
    let pending = w.receipt(20); // signed while authorized
    w.customer
        .deauthorize_signer(w.product_id, signer)
        .await
        .unwrap();
    let st = w.signer_status(BUYER).await;
    assert_eq!((st.authorized, st.bought_units), (false, 10));
    let err = expect_revert(w.relayer.settle(&pending).await, "SignerNotAuthorized");
    assert_eq!(err.revert().and_then(|r| r.signer()), Some(signer), "{err}");
    assert_eq!(w.balance().await, wei(990), "nothing more charged");

    // re-authorized, it keeps its counter: the old receipt cannot charge again
    w.customer
        .authorize_signer(w.product_id, signer)
        .await
        .unwrap();
    assert!(w.settle(10).await.ignored);
    assert_eq!(w.settle(20).await.units_charged, 10);
}

/// Attack (f): two state directories (buyers) under one signer key never share a purchase.
#[tokio::test]
async fn buyers_and_signers_keep_separate_counters() {
    let w = World::new(wei(1_000)).await;
    let c = w.customer_address();
    let other_buyer = B256::repeat_byte(0xB2);
    assert_eq!(w.settle(100).await.units_charged, 100);
    // below the first buyer's counter, yet a purchase: the counter is per buyer
    let st = w
        .relayer
        .settle(&w.receipt_with(other_buyer, 40, PRICE.into(), EXPIRES))
        .await
        .unwrap();
    assert_eq!(
        (st.ignored, st.units_charged, st.buyer),
        (false, 40, other_buyer)
    );
    assert_eq!(w.signer_status(BUYER).await.bought_units, 100);
    assert_eq!(w.signer_status(other_buyer).await.bought_units, 40);

    // another signer with the same buyer id has its own counter too
    let second = PrivateKeySigner::random();
    w.customer
        .authorize_signer(w.product_id, second.address())
        .await
        .unwrap();
    let r2 = w
        .customer
        .sign_usage(&second, w.product_id, c, BUYER, 30, PRICE.into(), EXPIRES)
        .unwrap();
    assert_eq!(w.relayer.settle(&r2).await.unwrap().units_charged, 30);
    let s = w.status(None).await;
    assert_eq!((s.bought_units, s.balance), (170, wei(830)));
}

#[tokio::test]
async fn eip712_encoding_matches_the_contract() {
    let w = World::new(U256::ZERO).await;
    let receipt = UsageReceipt {
        product_id: w.product_id,
        customer: w.customer_address(),
        buyer: BUYER,
        cumulative_units: 123_456_789,
        max_price: 987_654_321_000,
        expires_at: 1_764_000_000,
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
    let salt = contract.deploymentSalt().call().await.unwrap();
    assert_eq!(w.customer.deployment_salt(), salt);
    assert_eq!(w.platform.deployment_salt(), salt, "deploy reads it too");
    assert_eq!(w.customer.domain().salt, Some(salt));
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
async fn registry_info_and_genesis_hash() {
    let w = World::new(U256::ZERO).await;
    let info = w.customer.info().await.unwrap();
    assert_eq!(info.fee_bps, 3000);
    assert_eq!(info.treasury, w.treasury.sender().unwrap());
    assert_eq!(info.thaw_seconds, THAW);
    assert_eq!(info.chain_id, 31337);
    assert_eq!(info.address, w.platform.address());
    assert_eq!(info.deployment_salt, w.customer.deployment_salt());

    let genesis = w.customer.genesis_hash().await.unwrap();
    let block0 = w
        .platform
        .provider()
        .get_block_by_number(0.into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(genesis, block0.header.hash);
    assert_ne!(genesis, B256::ZERO);
}
