//! A typed async client for a deployed `LicenseRegistry`, over alloy's HTTP transport.
//!
//! Every transaction waits for its receipt and returns [`TxInfo`] (hash, gas, block). Failures are
//! [`RegistryError`]s: contract reverts are decoded into the registry's custom errors, funding
//! problems and unreachable endpoints get their own variants.

use alloy::eips::BlockNumberOrTag;
use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{Filter, TransactionReceipt, TransactionRequest};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{Eip712Domain, SolEvent, SolInterface, decode_revert_reason};
use alloy::transports::http::reqwest::{self, Url};
use alloy::transports::{RpcError, TransportErrorKind};

use crate::bindings::LicenseRegistry::{self, LicenseRegistryErrors, LicenseRegistryInstance};
use crate::error::RegistryError;
use crate::receipt::{SignedUsage, UsageReceipt, usage_domain};
use crate::revert::ContractRevert;
use crate::status::{LicenseStatus, ProductRecord, RegistryInfo, Release, SignerStatus};

/// How often a pending transaction's receipt (and any other poll) is asked for: what alloy
/// uses for a node on loopback, whatever the node's address.
pub const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// The longest one JSON-RPC request may take, connection included. Without it a request on a
/// connection that went silent (a partition, a NAT that dropped its state) waits forever, and
/// so does whatever waits on it: found by the chaos soak (tests/tests/all/soak.rs), where the
/// buying loop of `runtime serve` hung on such a connection and every call after the prepaid
/// block was refused with 402 although the RPC was back.
pub const RPC_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The longest a TCP (and TLS) connection to the RPC endpoint may take to open.
pub const RPC_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Default platform fee: 3000 basis points (30 % treasury, 70 % vendor).
pub const DEFAULT_FEE_BPS: u16 = 3000;
/// Default thaw period of withdrawals: one day.
pub const DEFAULT_THAW_SECONDS: u64 = 86_400;

/// Deployment parameters of a new registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeployParams {
    /// Platform fee in basis points (≤ 10000).
    pub fee_bps: u16,
    /// Receives the fee; `None` = the deployer.
    pub treasury: Option<Address>,
    /// Withdrawal delay in seconds.
    pub thaw_seconds: u64,
    /// Refuse to deploy unless the endpoint serves this chain id.
    pub expected_chain_id: Option<u64>,
}

impl Default for DeployParams {
    fn default() -> Self {
        DeployParams {
            fee_bps: DEFAULT_FEE_BPS,
            treasury: None,
            thaw_seconds: DEFAULT_THAW_SECONDS,
            expected_chain_id: None,
        }
    }
}

/// A mined, successful transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxInfo {
    /// Transaction hash.
    pub hash: B256,
    /// Gas the transaction used.
    pub gas_used: u64,
    /// Block it was mined in.
    pub block_number: u64,
}

impl TxInfo {
    fn from_receipt(r: &TransactionReceipt) -> Self {
        TxInfo {
            hash: r.transaction_hash,
            gas_used: r.gas_used,
            block_number: r.block_number.unwrap_or_default(),
        }
    }
}

/// What a `settle` (purchase) transaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settlement {
    /// The transaction.
    pub tx: TxInfo,
    /// The receipt was at or below the buyer's counter: nothing changed.
    pub ignored: bool,
    /// Signer the receipt recovered to.
    pub signer: Address,
    /// The buyer the receipt was signed for.
    pub buyer: B256,
    /// Units bought by this transaction (0 when ignored).
    pub units_charged: u64,
    /// Wei charged by this transaction (vendor share + fee; 0 when ignored).
    pub wei_charged: U256,
    /// The buyer's cumulative units bought after this transaction (for an ignored receipt: the
    /// counter the chain already held).
    pub buyer_cumulative: u64,
    /// Price per unit charged (0 when ignored).
    pub price: U256,
}

/// Client of one `LicenseRegistry` deployment, optionally with a signing wallet for transactions.
#[derive(Clone)]
pub struct RegistryClient {
    chain: Chain,
    contract: LicenseRegistryInstance<DynProvider>,
    salt: B256,
    domain: Eip712Domain,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("url", &self.chain.url)
            .field("chain_id", &self.chain.chain_id)
            .field("registry", self.contract.address())
            .field("sender", &self.chain.sender)
            .finish()
    }
}

impl RegistryClient {
    /// Connects to the registry at `registry` through `rpc_url`. Verifies that the endpoint answers,
    /// serves `expected_chain_id` (when given), has code at `registry`, and that this code is a
    /// `LicenseRegistry` with the EIP-712 domain this client signs for (name, version, chain id,
    /// address and the deployment salt it reads from the contract). `wallet` (if any) signs
    /// transactions; without one the client is read-only.
    pub async fn connect(
        rpc_url: &str,
        registry: Address,
        expected_chain_id: Option<u64>,
        wallet: Option<PrivateKeySigner>,
    ) -> Result<Self, RegistryError> {
        let chain = Chain::connect(rpc_url, wallet).await?;
        chain.expect_chain_id(expected_chain_id)?;
        let code = chain
            .provider
            .get_code_at(registry)
            .await
            .map_err(|e| chain.classify("read the registry's code", e.into()))?;
        if code.is_empty() {
            return Err(RegistryError::NoContract {
                address: registry,
                chain_id: chain.chain_id,
            });
        }
        let salt = LicenseRegistry::new(registry, chain.provider.clone())
            .deploymentSalt()
            .call()
            .await
            .map_err(|e| RegistryError::NotARegistry {
                address: registry,
                reason: format!("deploymentSalt() failed (a registry older than version 2?): {e}"),
            })?;
        let client = Self::at(chain, registry, salt);
        let separator = client
            .contract
            .domainSeparator()
            .call()
            .await
            .map_err(|e| RegistryError::NotARegistry {
                address: registry,
                reason: format!("domainSeparator() failed: {e}"),
            })?;
        if separator != client.domain.separator() {
            return Err(RegistryError::NotARegistry {
                address: registry,
                reason: "its EIP-712 domain separator differs from this client's (name, version, chain id, address, \
                         salt)"
                    .into(),
            });
        }
        Ok(client)
    }

    /// Deploys a new registry with `wallet` as deployer (and default treasury); returns the
    /// connected client and the deployment transaction.
    pub async fn deploy(
        rpc_url: &str,
        wallet: PrivateKeySigner,
        params: DeployParams,
    ) -> Result<(Self, TxInfo), RegistryError> {
        let deployer = wallet.address();
        let chain = Chain::connect(rpc_url, Some(wallet)).await?;
        chain.expect_chain_id(params.expected_chain_id)?;
        let tx = LicenseRegistry::deploy_builder(
            chain.provider.clone(),
            U256::from(params.fee_bps),
            params.treasury.unwrap_or(deployer),
            params.thaw_seconds,
        )
        .into_transaction_request();
        let action = "deploy the LicenseRegistry";
        let receipt = chain.send(action, tx).await?;
        let address = receipt
            .contract_address
            .ok_or(RegistryError::MissingEvent {
                action,
                tx_hash: receipt.transaction_hash,
                event: "contractAddress",
            })?;
        let salt = LicenseRegistry::new(address, chain.provider.clone())
            .deploymentSalt()
            .call()
            .await
            .map_err(|e| chain.classify("read the new registry's deployment salt", e))?;
        Ok((
            Self::at(chain, address, salt),
            TxInfo::from_receipt(&receipt),
        ))
    }

    fn at(chain: Chain, registry: Address, salt: B256) -> Self {
        let domain = usage_domain(chain.chain_id, registry, salt);
        let contract = LicenseRegistry::new(registry, chain.provider.clone());
        RegistryClient {
            chain,
            contract,
            salt,
            domain,
        }
    }

    /// Registry address.
    pub fn address(&self) -> Address {
        *self.contract.address()
    }

    /// Chain id of the endpoint.
    pub fn chain_id(&self) -> u64 {
        self.chain.chain_id
    }

    /// Address of the wallet that signs transactions, if any.
    pub fn sender(&self) -> Option<Address> {
        self.chain.sender
    }

    /// The underlying provider (for reads the client does not wrap, e.g. balances or blocks).
    pub fn provider(&self) -> &DynProvider {
        &self.chain.provider
    }

    /// The EIP-712 domain receipts for this registry are signed under.
    pub fn domain(&self) -> &Eip712Domain {
        &self.domain
    }

    /// The registry's EIP-712 deployment salt (read once, when the client connected or deployed).
    pub fn deployment_salt(&self) -> B256 {
        self.salt
    }

    /// Hash of the chain's genesis block (block 0), e.g. to tell a restarted dev chain from the
    /// one a runtime's state was made on.
    pub async fn genesis_hash(&self) -> Result<B256, RegistryError> {
        let action = "read the genesis block";
        let block = self
            .chain
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(0))
            .await
            .map_err(|e| self.chain.classify(action, e.into()))?;
        block
            .map(|b| b.header.hash)
            .ok_or_else(|| RegistryError::NoGenesisBlock {
                url: self.chain.url.clone(),
            })
    }

    /// Builds and signs a purchase receipt for this registry's domain: `buyer` has bought
    /// `cumulative_units` units in total, at no more than `max_price` wei per unit, valid until
    /// unix time `expires_at`.
    #[allow(clippy::too_many_arguments)]
    pub fn sign_usage<S: SignerSync>(
        &self,
        signer: &S,
        product_id: B256,
        customer: Address,
        buyer: B256,
        cumulative_units: u64,
        max_price: u128,
        expires_at: u64,
    ) -> Result<SignedUsage, RegistryError> {
        UsageReceipt {
            product_id,
            customer,
            buyer,
            cumulative_units,
            max_price,
            expires_at,
        }
        .sign(signer, &self.domain)
    }

    // ------------------------------------------------------------------ reads

    /// Parameters fixed at deployment.
    pub async fn info(&self) -> Result<RegistryInfo, RegistryError> {
        let action = "read the registry parameters";
        let fee = self
            .contract
            .feeBps()
            .call()
            .await
            .map_err(|e| self.chain.classify(action, e))?;
        let treasury = self
            .contract
            .treasury()
            .call()
            .await
            .map_err(|e| self.chain.classify(action, e))?;
        let thaw = self
            .contract
            .thawSeconds()
            .call()
            .await
            .map_err(|e| self.chain.classify(action, e))?;
        Ok(RegistryInfo {
            address: self.address(),
            chain_id: self.chain_id(),
            fee_bps: u16::try_from(fee).unwrap_or(u16::MAX),
            treasury,
            thaw_seconds: thaw,
            deployment_salt: self.salt,
        })
    }

    /// A product, or `None` if it is not registered.
    pub async fn product(&self, product_id: B256) -> Result<Option<ProductRecord>, RegistryError> {
        let p = self
            .contract
            .products(product_id)
            .call()
            .await
            .map_err(|e| self.chain.classify("read a product", e))?;
        Ok((!p.vendor.is_zero()).then(|| ProductRecord {
            id: product_id,
            vendor: p.vendor,
            price: U256::from(p.price),
            active: p.active,
        }))
    }

    /// A release of `product_id`, or `None` if this product has not published `code_hash`
    /// (another product may have).
    pub async fn release(
        &self,
        product_id: B256,
        code_hash: B256,
    ) -> Result<Option<Release>, RegistryError> {
        let r = self
            .contract
            .releaseOf(product_id, code_hash)
            .call()
            .await
            .map_err(|e| self.chain.classify("read a release", e))?;
        Ok(r.published.then_some(Release {
            product_id,
            code_hash,
            revoked: r.revoked,
        }))
    }

    /// The license of `customer` for `product_id`, running `code_hash` (`None` skips the release checks).
    pub async fn license_status(
        &self,
        product_id: B256,
        customer: Address,
        code_hash: Option<B256>,
    ) -> Result<LicenseStatus, RegistryError> {
        let s = self
            .contract
            .licenseStatus(product_id, customer, code_hash.unwrap_or_default())
            .call()
            .await
            .map_err(|e| self.chain.classify("read the license status", e))?;
        LicenseStatus::try_from(s)
    }

    /// A signer's authorization for (product, customer) and the cumulative units `buyer` has
    /// bought under it.
    pub async fn signer_status(
        &self,
        product_id: B256,
        customer: Address,
        signer: Address,
        buyer: B256,
    ) -> Result<SignerStatus, RegistryError> {
        let s = self
            .contract
            .signerStatus(product_id, customer, signer, buyer)
            .call()
            .await
            .map_err(|e| self.chain.classify("read the signer status", e))?;
        Ok(s.into())
    }

    /// Wei `account` may withdraw now: a vendor's share, or for the treasury the fees already
    /// collected (see [`RegistryClient::fee_owed`] for fees still held in vendors' slots).
    pub async fn pending_revenue(&self, account: Address) -> Result<U256, RegistryError> {
        self.contract
            .revenueOf(account)
            .call()
            .await
            .map_err(|e| self.chain.classify("read pending revenue", e))
    }

    /// Platform fee `vendor`'s sales accrued that has not been collected for the treasury yet.
    pub async fn fee_owed(&self, vendor: Address) -> Result<U256, RegistryError> {
        self.contract
            .feeOwedBy(vendor)
            .call()
            .await
            .map_err(|e| self.chain.classify("read the fee a vendor owes", e))
    }

    /// Every vendor that ever registered a product, from the registry's `ProductRegistered`
    /// logs (one `eth_getLogs` from block 0; endpoints that limit log ranges may refuse it).
    pub async fn vendors(&self) -> Result<Vec<Address>, RegistryError> {
        let filter = Filter::new()
            .address(self.address())
            .event_signature(LicenseRegistry::ProductRegistered::SIGNATURE_HASH)
            .from_block(0);
        let logs = self.chain.provider.get_logs(&filter).await.map_err(|e| {
            self.chain
                .classify("read the registry's product logs", e.into())
        })?;
        let mut vendors: Vec<Address> = logs
            .iter()
            .filter_map(|log| log.log_decode::<LicenseRegistry::ProductRegistered>().ok())
            .map(|log| log.inner.data.vendor)
            .collect();
        vendors.sort();
        vendors.dedup();
        Ok(vendors)
    }

    /// The digest the contract computes for a receipt (a cross-check of the EIP-712 encoding).
    pub async fn contract_usage_hash(&self, receipt: &UsageReceipt) -> Result<B256, RegistryError> {
        self.contract
            .hashUsage(receipt.to_sol())
            .call()
            .await
            .map_err(|e| self.chain.classify("hash a receipt", e))
    }

    /// The product id the contract computes for (vendor, name).
    pub async fn contract_product_id(
        &self,
        vendor: Address,
        name: &str,
    ) -> Result<B256, RegistryError> {
        self.contract
            .productIdOf(vendor, name.to_owned())
            .call()
            .await
            .map_err(|e| self.chain.classify("compute a product id", e))
    }

    // ------------------------------------------------------------------ vendor

    /// Registers a product owned by the wallet, active, at `price` wei per unit; returns its id.
    pub async fn register_product(
        &self,
        name: &str,
        price: U256,
    ) -> Result<(B256, TxInfo), RegistryError> {
        let action = "register the product";
        let tx = self
            .contract
            .registerProduct(name.to_owned(), price)
            .into_transaction_request();
        let receipt = self.chain.send(action, tx).await?;
        let ev = self.event::<LicenseRegistry::ProductRegistered>(action, &receipt)?;
        Ok((ev.productId, TxInfo::from_receipt(&receipt)))
    }

    /// Sets a product's price per unit (vendor only).
    pub async fn set_price(&self, product_id: B256, price: U256) -> Result<TxInfo, RegistryError> {
        self.transact(
            "set the price",
            self.contract
                .setPrice(product_id, price)
                .into_transaction_request(),
        )
        .await
    }

    /// Activates or deactivates a product (vendor only).
    pub async fn set_active(
        &self,
        product_id: B256,
        active: bool,
    ) -> Result<TxInfo, RegistryError> {
        self.transact(
            "set the product's active flag",
            self.contract
                .setActive(product_id, active)
                .into_transaction_request(),
        )
        .await
    }

    /// Publishes a release (SHA-256 of the plaintext Wasm) of a product (vendor only). Reverts
    /// `ReleaseExists` only if this product already published it.
    pub async fn publish_release(
        &self,
        product_id: B256,
        code_hash: B256,
    ) -> Result<TxInfo, RegistryError> {
        self.transact(
            "publish the release",
            self.contract
                .publishRelease(product_id, code_hash)
                .into_transaction_request(),
        )
        .await
    }

    /// Revokes a release of a product for good (vendor only).
    pub async fn revoke_release(
        &self,
        product_id: B256,
        code_hash: B256,
    ) -> Result<TxInfo, RegistryError> {
        self.transact(
            "revoke the release",
            self.contract
                .revokeRelease(product_id, code_hash)
                .into_transaction_request(),
        )
        .await
    }

    /// Revokes a customer's license (vendor only).
    pub async fn revoke_customer(
        &self,
        product_id: B256,
        customer: Address,
    ) -> Result<TxInfo, RegistryError> {
        self.transact(
            "revoke the customer",
            self.contract
                .revokeCustomer(product_id, customer)
                .into_transaction_request(),
        )
        .await
    }

    /// Lifts a customer revocation (vendor only).
    pub async fn reinstate_customer(
        &self,
        product_id: B256,
        customer: Address,
    ) -> Result<TxInfo, RegistryError> {
        self.transact(
            "reinstate the customer",
            self.contract
                .reinstateCustomer(product_id, customer)
                .into_transaction_request(),
        )
        .await
    }

    /// Moves the platform fee `vendors` accrued to the treasury's withdrawable revenue (anyone
    /// may send it); returns the amount moved.
    pub async fn collect_fees(&self, vendors: &[Address]) -> Result<(U256, TxInfo), RegistryError> {
        let action = "collect the platform fee";
        let receipt = self
            .chain
            .send(
                action,
                self.contract
                    .collectFees(vendors.to_vec())
                    .into_transaction_request(),
            )
            .await?;
        // one FeesCollected event per vendor that owed a fee
        let amount = receipt
            .inner
            .logs()
            .iter()
            .filter_map(|log| log.log_decode::<LicenseRegistry::FeesCollected>().ok())
            .fold(U256::ZERO, |sum, log| sum + log.inner.data.amount);
        Ok((amount, TxInfo::from_receipt(&receipt)))
    }

    /// Withdraws the wallet's accrued revenue; returns the amount paid.
    pub async fn withdraw_revenue(&self) -> Result<(U256, TxInfo), RegistryError> {
        let action = "withdraw revenue";
        let receipt = self
            .chain
            .send(action, self.contract.withdraw().into_transaction_request())
            .await?;
        let ev = self.event::<LicenseRegistry::RevenueWithdrawn>(action, &receipt)?;
        Ok((ev.amount, TxInfo::from_receipt(&receipt)))
    }

    // ------------------------------------------------------------------ customer

    /// Deposits `amount` wei into the escrow of (product, customer); `None` = the wallet's own escrow.
    pub async fn deposit(
        &self,
        product_id: B256,
        customer: Option<Address>,
        amount: U256,
    ) -> Result<TxInfo, RegistryError> {
        let tx = self
            .contract
            .deposit(product_id, customer.unwrap_or_default())
            .value(amount)
            .into_transaction_request();
        self.transact("deposit into the escrow", tx).await
    }

    /// Requests a withdrawal of `amount` wei from the wallet's escrow (restarts the thaw).
    pub async fn request_withdrawal(
        &self,
        product_id: B256,
        amount: U256,
    ) -> Result<TxInfo, RegistryError> {
        self.transact(
            "request a withdrawal",
            self.contract
                .requestWithdrawal(product_id, amount)
                .into_transaction_request(),
        )
        .await
    }

    /// Cancels the wallet's pending withdrawal.
    pub async fn cancel_withdrawal(&self, product_id: B256) -> Result<TxInfo, RegistryError> {
        self.transact(
            "cancel the withdrawal",
            self.contract
                .cancelWithdrawal(product_id)
                .into_transaction_request(),
        )
        .await
    }

    /// Completes the wallet's thawed withdrawal; returns the amount paid out.
    pub async fn complete_withdrawal(
        &self,
        product_id: B256,
    ) -> Result<(U256, TxInfo), RegistryError> {
        let action = "complete the withdrawal";
        let receipt = self
            .chain
            .send(
                action,
                self.contract
                    .completeWithdrawal(product_id)
                    .into_transaction_request(),
            )
            .await?;
        let ev = self.event::<LicenseRegistry::WithdrawalCompleted>(action, &receipt)?;
        Ok((ev.amount, TxInfo::from_receipt(&receipt)))
    }

    /// Authorizes a runtime signer key to buy units for the wallet's license of `product_id`.
    pub async fn authorize_signer(
        &self,
        product_id: B256,
        signer: Address,
    ) -> Result<TxInfo, RegistryError> {
        self.transact(
            "authorize the signer",
            self.contract
                .authorizeSigner(product_id, signer)
                .into_transaction_request(),
        )
        .await
    }

    /// Deauthorizes a runtime signer; its receipts stop settling at once (its buyers' counters
    /// are kept for a later re-authorization).
    pub async fn deauthorize_signer(
        &self,
        product_id: B256,
        signer: Address,
    ) -> Result<TxInfo, RegistryError> {
        self.transact(
            "deauthorize the signer",
            self.contract
                .deauthorizeSigner(product_id, signer)
                .into_transaction_request(),
        )
        .await
    }

    // ------------------------------------------------------------------ settlement

    /// Submits a signed purchase receipt (any wallet may; the runtime's signer usually submits
    /// its own and pays the gas). All or nothing: a purchase the escrow cannot pay reverts
    /// `InsufficientEscrow`, a price above the receipt's cap `PriceAboveCap`, an expired receipt
    /// `ReceiptExpired`. A stale or replayed receipt succeeds with `ignored = true` and charges
    /// nothing.
    pub async fn settle(&self, usage: &SignedUsage) -> Result<Settlement, RegistryError> {
        let action = "settle the purchase receipt";
        let tx = self
            .contract
            .settle(
                usage.receipt.to_sol(),
                Bytes::copy_from_slice(usage.signature.as_slice()),
            )
            .into_transaction_request();
        let receipt = self.chain.send(action, tx).await?;
        let info = TxInfo::from_receipt(&receipt);
        if let Some(ev) = decode_event::<LicenseRegistry::Settled>(&receipt) {
            return Ok(Settlement {
                tx: info,
                ignored: false,
                signer: ev.signer,
                buyer: ev.buyer,
                units_charged: ev.units,
                wei_charged: ev.amount,
                buyer_cumulative: ev.buyerCumulative,
                price: ev.price,
            });
        }
        let ev = self.event::<LicenseRegistry::ReceiptIgnored>(action, &receipt)?;
        Ok(Settlement {
            tx: info,
            ignored: true,
            signer: ev.signer,
            buyer: ev.buyer,
            units_charged: 0,
            wei_charged: U256::ZERO,
            buyer_cumulative: ev.bought,
            price: U256::ZERO,
        })
    }

    // ------------------------------------------------------------------ plumbing

    async fn transact(
        &self,
        action: &'static str,
        tx: TransactionRequest,
    ) -> Result<TxInfo, RegistryError> {
        self.chain
            .send(action, tx)
            .await
            .map(|r| TxInfo::from_receipt(&r))
    }

    fn event<E: SolEvent>(
        &self,
        action: &'static str,
        receipt: &TransactionReceipt,
    ) -> Result<E, RegistryError> {
        decode_event::<E>(receipt).ok_or(RegistryError::MissingEvent {
            action,
            tx_hash: receipt.transaction_hash,
            event: E::SIGNATURE,
        })
    }
}

fn decode_event<E: SolEvent>(receipt: &TransactionReceipt) -> Option<E> {
    receipt.decoded_log::<E>().map(|log| log.data)
}

/// An endpoint, its chain id and the optional sending wallet.
#[derive(Clone)]
struct Chain {
    provider: DynProvider,
    url: String,
    chain_id: u64,
    sender: Option<Address>,
}

impl Chain {
    async fn connect(
        rpc_url: &str,
        wallet: Option<PrivateKeySigner>,
    ) -> Result<Self, RegistryError> {
        let url = rpc_url
            .parse::<Url>()
            .map_err(|e| RegistryError::InvalidRpcUrl {
                url: rpc_url.into(),
                reason: e.to_string(),
            })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(RegistryError::InvalidRpcUrl {
                url: rpc_url.into(),
                reason: format!("scheme {:?} is not http or https", url.scheme()),
            });
        }
        let sender = wallet.as_ref().map(|w| w.address());
        // Simple nonce management (ask the node every time): the default cached manager consumes a
        // nonce even when gas estimation then fails (a revert), leaving a gap that stalls every later
        // transaction of this client in the node's pool.
        let builder = ProviderBuilder::new()
            .disable_recommended_fillers()
            .with_simple_nonce_management()
            .with_gas_estimation()
            .fetch_chain_id();
        let http = reqwest::Client::builder()
            .connect_timeout(RPC_CONNECT_TIMEOUT)
            .timeout(RPC_TIMEOUT)
            .build()
            .map_err(|e| RegistryError::Unreachable {
                url: rpc_url.into(),
                source: Box::new(TransportErrorKind::custom(e)),
            })?;
        let provider = match wallet {
            Some(w) => builder
                .wallet(EthereumWallet::from(w))
                .connect_reqwest(http, url)
                .erased(),
            None => builder.connect_reqwest(http, url).erased(),
        };
        // alloy polls every 7 s for a node that is not on loopback, so a purchase's receipt
        // could be seen up to 7 s after it was mined, with 402s meanwhile (found by the fleet
        // test, tests/tests/all/fleet.rs, whose nodes reach anvil from network namespaces).
        provider.client().set_poll_interval(POLL_INTERVAL);
        let chain_id =
            provider
                .get_chain_id()
                .await
                .map_err(|source| RegistryError::Unreachable {
                    url: rpc_url.into(),
                    source: Box::new(source),
                })?;
        Ok(Chain {
            provider,
            url: rpc_url.into(),
            chain_id,
            sender,
        })
    }

    fn expect_chain_id(&self, expected: Option<u64>) -> Result<(), RegistryError> {
        match expected {
            Some(expected) if expected != self.chain_id => Err(RegistryError::WrongChain {
                url: self.url.clone(),
                expected,
                actual: self.chain_id,
            }),
            _ => Ok(()),
        }
    }

    /// Sends a transaction from the wallet and waits for its successful receipt.
    async fn send(
        &self,
        action: &'static str,
        tx: TransactionRequest,
    ) -> Result<TransactionReceipt, RegistryError> {
        let from = self.sender.ok_or(RegistryError::NoWallet { action })?;
        let pending = match self.provider.send_transaction(tx.from(from)).await {
            Ok(p) => p,
            Err(e) => {
                return Err(match self.classify(action, e.into()) {
                    RegistryError::InsufficientFunds {
                        action, account, ..
                    } => {
                        let balance = self.provider.get_balance(account).await.unwrap_or_default();
                        RegistryError::InsufficientFunds {
                            action,
                            account,
                            balance,
                        }
                    }
                    other => other,
                });
            }
        };
        let receipt = pending
            .get_receipt()
            .await
            .map_err(|e| RegistryError::Rpc {
                action,
                source: Box::new(e.into()),
            })?;
        if !receipt.status() {
            return Err(RegistryError::TxFailed {
                action,
                tx_hash: receipt.transaction_hash,
            });
        }
        Ok(receipt)
    }

    /// Classifies a failed call or transaction.
    fn classify(&self, action: &'static str, err: alloy::contract::Error) -> RegistryError {
        if let Some(data) = err.as_revert_data() {
            return decode_revert(action, &data);
        }
        let alloy::contract::Error::TransportError(t) = err else {
            return RegistryError::Rpc {
                action,
                source: Box::new(err),
            };
        };
        if let Some(resp) = t.as_error_resp() {
            let msg = resp.message.to_lowercase();
            if msg.contains("insufficient funds") || msg.contains("insufficient balance") {
                return RegistryError::InsufficientFunds {
                    action,
                    account: self.sender.unwrap_or_default(),
                    balance: U256::ZERO,
                };
            }
            if msg.contains("revert") {
                return RegistryError::RevertedOther {
                    action,
                    reason: "reverted without data".into(),
                };
            }
        }
        if matches!(t, RpcError::Transport(_)) {
            return RegistryError::Unreachable {
                url: self.url.clone(),
                source: Box::new(t),
            };
        }
        RegistryError::Rpc {
            action,
            source: Box::new(t.into()),
        }
    }
}

/// Decodes revert data into a registry custom error, or a readable description of anything else.
fn decode_revert(action: &'static str, data: &[u8]) -> RegistryError {
    if let Ok(error) = LicenseRegistryErrors::abi_decode(data) {
        return RegistryError::Reverted {
            action,
            revert: ContractRevert { error },
        };
    }
    let reason = match decode_revert_reason(data) {
        Some(r) => r,
        None if data.len() >= 4 => format!("unknown error selector 0x{}", hex::encode(&data[..4])),
        None => "reverted without data".into(),
    };
    RegistryError::RevertedOther { action, reason }
}
