//! Shared fixtures: a deployed registry with one client per role on a real
//! anvil (from `sealbox-testkit`, which also gives the dev keys and URLs).
#![allow(dead_code)]

use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use license_contract::{
    LicenseStatus, RegistryClient, RegistryError, Settlement, SignedUsage, SignerStatus, TxInfo,
};
use sealbox_testkit::{Anvil, Deploy, dev_key};

/// Price per unit of the fixture product: 1 gwei.
pub const PRICE: u64 = 1_000_000_000;
/// Thaw period of the fixture registry.
pub const THAW: u64 = 3600;
/// Name of the fixture product.
pub const PRODUCT: &str = "edge-detector";
/// Expiry of the fixture receipts: unix time 2,000,000,000 (2033), far after anvil's clock.
pub const EXPIRES: u64 = 2_000_000_000;
/// The fixture buyer (one runtime state directory).
pub const BUYER: B256 = B256::repeat_byte(0xB1);

/// The price of `units` units of the fixture product, in wei.
pub fn wei(units: u64) -> U256 {
    U256::from(units) * U256::from(PRICE)
}

/// Name of the contract error a call reverted with, if it did.
pub fn revert_name(e: &RegistryError) -> Option<&'static str> {
    e.revert().map(|r| r.name())
}

/// The call failed with the contract error `name`; returns the error for further checks.
#[track_caller]
pub fn expect_revert<T: std::fmt::Debug>(
    result: Result<T, RegistryError>,
    name: &str,
) -> RegistryError {
    let err = result.unwrap_err();
    assert_eq!(revert_name(&err), Some(name), "{err}");
    err
}

/// A registry deployed on its own anvil, with a client per role.
pub struct World {
    pub anvil: Anvil,
    pub url: String,
    pub platform: RegistryClient,
    pub vendor: RegistryClient,
    pub customer: RegistryClient,
    /// Submits receipts on behalf of others (anyone may).
    pub relayer: RegistryClient,
    pub treasury: RegistryClient,
    /// The runtime's receipt-signing key: authorized by the customer, never funded (the
    /// relayer submits its receipts).
    pub runtime_key: PrivateKeySigner,
    pub product_id: B256,
    pub code_hash: B256,
}

impl World {
    /// Deploys (fee 3000 bps, treasury = dev account 4, thaw 1 h), registers and publishes the
    /// fixture product, deposits `deposit` wei for the customer and authorizes a new runtime key.
    pub async fn new(deposit: U256) -> World {
        World::build(Anvil::spawn(), deposit, PrivateKeySigner::random()).await
    }

    /// [`World::new`] on a given anvil with a given runtime key. On a fresh anvil the registry
    /// lands at the same address every time (deployer dev account 0, nonce 0).
    pub async fn build(anvil: Anvil, deposit: U256, runtime_key: PrivateKeySigner) -> World {
        let url = anvil.endpoint();
        let platform = anvil
            .deploy(Deploy {
                fee_bps: 3000,
                treasury: Some(dev_key(4).address()),
                thaw_seconds: THAW,
            })
            .await;
        let reg = platform.address();
        let role = |i: usize| anvil.client(reg, Some(dev_key(i)));
        let vendor = role(1).await;
        let customer = role(2).await;
        let relayer = role(3).await;
        let treasury = role(4).await;
        let (product_id, _) = vendor
            .register_product(PRODUCT, U256::from(PRICE))
            .await
            .unwrap();
        let code_hash = B256::repeat_byte(0xC0);
        vendor.publish_release(product_id, code_hash).await.unwrap();
        if !deposit.is_zero() {
            customer.deposit(product_id, None, deposit).await.unwrap();
        }
        customer
            .authorize_signer(product_id, runtime_key.address())
            .await
            .unwrap();
        World {
            anvil,
            url,
            platform,
            vendor,
            customer,
            relayer,
            treasury,
            runtime_key,
            product_id,
            code_hash,
        }
    }

    /// The fixture customer's address (dev account 2).
    pub fn customer_address(&self) -> Address {
        self.customer.sender().unwrap()
    }

    /// A receipt for the fixture (product, customer, buyer) signed by the runtime key, capped
    /// at the fixture price and expiring at [`EXPIRES`].
    pub fn receipt(&self, cumulative: u64) -> SignedUsage {
        self.receipt_with(BUYER, cumulative, PRICE.into(), EXPIRES)
    }

    /// A receipt for the fixture (product, customer) signed by the runtime key, for `buyer`, with
    /// the given cap and expiry.
    pub fn receipt_with(
        &self,
        buyer: B256,
        cumulative: u64,
        max_price: u128,
        expires_at: u64,
    ) -> SignedUsage {
        self.customer
            .sign_usage(
                &self.runtime_key,
                self.product_id,
                self.customer_address(),
                buyer,
                cumulative,
                max_price,
                expires_at,
            )
            .unwrap()
    }

    /// The fixture buyer's counter and the runtime key's authorization.
    pub async fn signer_status(&self, buyer: B256) -> SignerStatus {
        self.customer
            .signer_status(
                self.product_id,
                self.customer_address(),
                self.runtime_key.address(),
                buyer,
            )
            .await
            .unwrap()
    }

    /// The chain's latest block timestamp.
    pub async fn now(&self) -> u64 {
        self.status(None).await.block_timestamp
    }

    /// The relayer settles `receipt(cumulative)`, which must not revert.
    pub async fn settle(&self, cumulative: u64) -> Settlement {
        self.relayer
            .settle(&self.receipt(cumulative))
            .await
            .unwrap()
    }

    /// The customer deposits `amount` wei more for the fixture product.
    pub async fn deposit(&self, amount: U256) -> TxInfo {
        self.customer
            .deposit(self.product_id, None, amount)
            .await
            .unwrap()
    }

    /// The fixture customer's license for the fixture product (`code_hash`: `None` skips the
    /// release checks).
    pub async fn status(&self, code_hash: Option<B256>) -> LicenseStatus {
        self.status_of(self.customer_address(), code_hash).await
    }

    /// `account`'s license for the fixture product.
    pub async fn status_of(&self, account: Address, code_hash: Option<B256>) -> LicenseStatus {
        self.customer
            .license_status(self.product_id, account, code_hash)
            .await
            .unwrap()
    }

    /// The fixture customer's escrow balance for the fixture product.
    pub async fn balance(&self) -> U256 {
        self.status(None).await.balance
    }

    /// Moves the chain's clock forward and mines a block.
    pub async fn advance(&self, seconds: u64) {
        self.anvil.advance_time(seconds).await;
    }

    /// ETH balance of an account.
    pub async fn eth(&self, who: Address) -> U256 {
        self.platform.provider().get_balance(who).await.unwrap()
    }

    /// Wei the sender of `tx` paid for its gas.
    pub async fn gas_cost(&self, tx: &TxInfo) -> U256 {
        let receipt = self
            .platform
            .provider()
            .get_transaction_receipt(tx.hash)
            .await
            .unwrap()
            .unwrap();
        U256::from(tx.gas_used) * U256::from(receipt.effective_gas_price)
    }
}
