//! The real `packager` binary against a real anvil and a freshly deployed `LicenseRegistry`:
//! publish (new product, idempotent re-run, repricing, a second encrypted release, a code hash a
//! stranger published first under another product), refusals that change nothing on chain,
//! revoke, and withdraw (vendor share; treasury fee collected from the vendors) after a real
//! purchase.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::TransactionReceipt;
use alloy::signers::local::PrivateKeySigner;
use common::{assert_exit, assert_ok, assert_ok_says, key_info, ok_json, packager};
use license_contract::{ProductRecord, Reason, RegistryClient, Release};
use sealbox_testkit::{Anvil, CHAIN_ID, Deploy, dead_rpc_url, dev_key, key_file};
use serde_json::Value;

/// An address with no code on the test chain.
const NOT_A_REGISTRY: &str = "0x4242424242424242424242424242424242424242";

/// A fresh anvil with a registry (fee 3000 bps, treasury = deployer = dev account 0) and key
/// files in a temp dir: `platform.key` (0), `vendor.key` (1), `customer.key` (2).
struct Chain {
    anvil: Anvil,
    url: String,
    /// The deployer's client; also used for reads.
    platform: RegistryClient,
    dir: tempfile::TempDir,
}

impl Chain {
    /// Spawns anvil, deploys the registry and writes the three key files.
    async fn new() -> Chain {
        let anvil = Anvil::spawn();
        let url = anvil.endpoint();
        let platform = anvil.deploy(Deploy::default()).await;
        let dir = tempfile::tempdir().unwrap();
        for (name, i) in [("platform.key", 0), ("vendor.key", 1), ("customer.key", 2)] {
            key_file(dir.path(), name, &dev_key(i));
        }
        Chain {
            anvil,
            url,
            platform,
            dir,
        }
    }

    /// The temp dir holding the key files; every `packager` run starts here.
    fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The registry's address, as the CLI takes it.
    fn registry(&self) -> String {
        self.platform.address().to_string()
    }

    /// Address of anvil dev account `i`.
    fn address(&self, i: usize) -> Address {
        dev_key(i).address()
    }

    /// The vendor's address (dev account 1, `vendor.key`).
    fn vendor(&self) -> Address {
        self.address(1)
    }

    /// Seals a module (distinct code per `tag`) for this chain and registry.
    fn seal(&self, tag: &str, name: &str, version: &str, extra: &[&str]) -> PathBuf {
        seal_for(
            self.dir(),
            tag,
            name,
            version,
            CHAIN_ID,
            &self.registry(),
            extra,
        )
    }

    /// `packager ARGS` run in this chain's temp dir.
    fn packager(&self, args: &[&str]) -> Output {
        packager(self.dir(), args)
    }

    /// `packager publish FILE --rpc URL --key KEY [extra]` against this chain.
    fn publish(&self, file: &str, key: &str, extra: &[&str]) -> Output {
        on_chain(self.dir(), &["publish", file], &self.url, key, extra)
    }

    /// `packager revoke FILE --rpc URL --key KEY [extra]` against this chain.
    fn revoke(&self, file: &str, key: &str, extra: &[&str]) -> Output {
        on_chain(self.dir(), &["revoke", file], &self.url, key, extra)
    }

    /// `packager withdraw --rpc URL --key KEY --registry REGISTRY [extra]` against this chain.
    fn withdraw(&self, key: &str, extra: &[&str]) -> Output {
        let registry = self.registry();
        let mut args = vec!["--registry", registry.as_str()];
        args.extend(extra);
        on_chain(self.dir(), &["withdraw"], &self.url, key, &args)
    }

    /// `packager publish FILE --rpc URL --key KEY --json [extra]`, which must succeed.
    fn publish_json(&self, file: &Path, key: &str, extra: &[&str]) -> Value {
        let mut args = vec!["--json"];
        args.extend(extra);
        ok_json(&self.publish(path_str(file), key, &args))
    }

    /// The chain's RPC provider.
    fn provider(&self) -> &DynProvider {
        self.platform.provider()
    }

    /// The latest block number.
    async fn block(&self) -> u64 {
        self.provider().get_block_number().await.unwrap()
    }

    /// How many transactions `who` has sent.
    async fn nonce(&self, who: Address) -> u64 {
        self.provider().get_transaction_count(who).await.unwrap()
    }

    /// `who`'s ETH balance in wei.
    async fn eth(&self, who: Address) -> U256 {
        self.provider().get_balance(who).await.unwrap()
    }

    /// The registered product `id`, which must exist.
    async fn product(&self, id: B256) -> ProductRecord {
        self.platform.product(id).await.unwrap().unwrap()
    }

    /// The release `code_hash` of `product_id`, which must be published.
    async fn release(&self, product_id: B256, code_hash: B256) -> Release {
        self.platform
            .release(product_id, code_hash)
            .await
            .unwrap()
            .unwrap()
    }

    /// A client of the registry transacting with dev account `i`.
    async fn client(&self, i: usize) -> RegistryClient {
        self.anvil
            .client(self.platform.address(), Some(dev_key(i)))
            .await
    }

    /// Why `customer`'s license for `product_id` running `code_hash` is (in)active.
    async fn license_reason(&self, product_id: B256, customer: Address, code_hash: B256) -> Reason {
        self.platform
            .license_status(product_id, customer, Some(code_hash))
            .await
            .unwrap()
            .reason
    }

    /// The receipt of the mined transaction `hash`.
    async fn receipt(&self, hash: B256) -> TransactionReceipt {
        let receipt = self.provider().get_transaction_receipt(hash).await.unwrap();
        receipt.unwrap_or_else(|| panic!("no receipt for {hash}"))
    }

    /// Checks every transaction a JSON report lists against its on-chain receipt; returns the
    /// wei the sender paid for gas.
    async fn check_txs(&self, report: &Value, actions: &[&str]) -> U256 {
        let txs = report["transactions"].as_array().unwrap();
        let listed: Vec<_> = txs.iter().map(|t| t["action"].as_str().unwrap()).collect();
        assert_eq!(listed, actions);
        let mut gas_total = 0;
        let mut cost = U256::ZERO;
        for tx in txs {
            let receipt = self
                .receipt(tx["hash"].as_str().unwrap().parse().unwrap())
                .await;
            assert!(receipt.status(), "{tx}");
            assert_eq!(tx["gas_used"], receipt.gas_used, "{tx}");
            assert_eq!(tx["block"], receipt.block_number.unwrap(), "{tx}");
            gas_total += receipt.gas_used;
            cost += paid_for_gas(&receipt);
            println!(
                "gas {:<17} {}",
                tx["action"].as_str().unwrap(),
                receipt.gas_used
            );
        }
        assert_eq!(report["gas_used"], gas_total);
        cost
    }
}

/// A path as a command-line argument.
fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Wei the sender of a mined transaction paid for its gas.
fn paid_for_gas(receipt: &TransactionReceipt) -> U256 {
    U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price)
}

/// `packager VERB... --rpc URL --key KEY [extra]` run in `dir`: the shape of every chain command.
fn on_chain(dir: &Path, verb: &[&str], url: &str, key: &str, extra: &[&str]) -> Output {
    let mut args = verb.to_vec();
    args.extend(["--rpc", url, "--key", key]);
    args.extend(extra);
    packager(dir, &args)
}

/// Writes an ABI v1 module whose data segment carries `tag` (so each tag has its own code hash)
/// and seals it with `vendor.key`.
fn seal_for(
    dir: &Path,
    tag: &str,
    name: &str,
    version: &str,
    chain_id: u64,
    registry: &str,
    extra: &[&str],
) -> PathBuf {
    let wat = dir.join(format!("{tag}.wat"));
    std::fs::write(
        &wat,
        format!(
            r#"(module
  (memory (export "memory") 1)
  (data (i32.const 16) "{tag}")
  (func (export "sealbox_alloc") (param i32) (result i32) i32.const 1024)
  (func (export "echo") (param i32 i32) (result i64)
    local.get 0 i64.extend_i32_u i64.const 32 i64.shl local.get 1 i64.extend_i32_u i64.or))"#
        ),
    )
    .unwrap();
    let out = dir.join(format!("{tag}.sealed.wasm"));
    let chain_id = chain_id.to_string();
    let mut args = vec![
        "seal",
        path_str(&wat),
        "--key",
        "vendor.key",
        "--name",
        name,
        "--version",
        version,
        "--chain-id",
        &chain_id,
        "--registry",
        registry,
        "-o",
        path_str(&out),
    ];
    args.extend(extra);
    assert_ok(&packager(dir, &args));
    out
}

/// The manifest's product id and code hash of a sealed file.
fn ids(file: &Path) -> (B256, B256) {
    let sealed = std::fs::read(file).unwrap();
    let opened = sealed_format::open(&sealed).unwrap();
    (opened.manifest.product_id, opened.manifest.code_hash)
}

/// Exit code 1 and every needle in stderr.
#[track_caller]
fn assert_refused(out: &Output, needles: &[&str]) {
    assert_exit(out, 1, needles);
}

#[tokio::test]
async fn publish_registers_then_is_idempotent_and_reprices() {
    let chain = Chain::new().await;
    let v1 = chain.seal("echo-v1", "echo", "1.0.0", &[]);
    let (product_id, code_hash) = ids(&v1);
    assert_eq!(
        product_id,
        license_contract::product_id(chain.vendor(), "echo")
    );

    let report = chain.publish_json(
        &v1,
        "vendor.key",
        &["--price", "1000", "--registry", &chain.registry()],
    );
    assert_eq!(report["product_id"], product_id.to_string());
    assert_eq!(report["code_hash"], code_hash.to_string());
    assert_eq!(report["product"]["status"], "registered");
    assert_eq!(report["product"]["price"], "1000");
    assert_eq!(report["release"]["status"], "published");
    chain
        .check_txs(&report, &["register-product", "publish-release"])
        .await;
    let product = chain.product(product_id).await;
    assert_eq!(
        (product.vendor, product.price, product.active),
        (chain.vendor(), U256::from(1000), true)
    );
    let release = chain.release(product_id, code_hash).await;
    assert_eq!((release.product_id, release.revoked), (product_id, false));

    // Again: reported, nothing sent.
    let (block, nonce) = (chain.block().await, chain.nonce(chain.vendor()).await);
    let again = chain.publish_json(&v1, "vendor.key", &["--price", "1000"]);
    assert_eq!(again["product"]["status"], "unchanged");
    assert_eq!(again["release"]["status"], "already-published");
    assert_eq!(again["transactions"], serde_json::json!([]));
    assert_eq!(
        (chain.block().await, chain.nonce(chain.vendor()).await),
        (block, nonce)
    );

    // A different price updates it (text output), in exactly one transaction.
    let out = chain.publish(path_str(&v1), "vendor.key", &["--price", "2500"]);
    assert_ok_says(
        &out,
        &[
            "price updated from 1000 to 2500 wei per unit",
            "already published",
        ],
    );
    assert_eq!(chain.nonce(chain.vendor()).await, nonce + 1);
    assert_eq!(chain.product(product_id).await.price, U256::from(2500));

    // A second release, encrypted for the customer, without --price: the price stays.
    let (_, pubkey) = key_info(&chain.packager(&["pubkey", "--key", "customer.key"]));
    let v2 = chain.seal("echo-v2", "echo", "2.0.0", &["--recipient", &pubkey]);
    let (v2_product, v2_hash) = ids(&v2);
    assert_eq!(v2_product, product_id);
    assert_ne!(v2_hash, code_hash);
    let report = chain.publish_json(&v2, "vendor.key", &[]);
    assert_eq!(report["product"]["status"], "unchanged");
    assert_eq!(report["product"]["price"], "2500");
    assert_eq!(report["release"]["status"], "published");
    chain.check_txs(&report, &["publish-release"]).await;
    assert!(!chain.release(product_id, v2_hash).await.revoked);
    assert_eq!(chain.product(product_id).await.price, U256::from(2500));
}

#[tokio::test]
async fn refusals_change_nothing_on_chain() {
    let chain = Chain::new().await;
    let module = chain.seal("solo", "solo", "1.0.0", &[]);
    let (product_id, code_hash) = ids(&module);
    let file = path_str(&module);
    let block = chain.block().await;
    let customer = chain.address(2);

    // Not the vendor's key: refused before any network access.
    assert_refused(
        &chain.publish(file, "customer.key", &["--price", "1"]),
        &[
            &format!("is for {customer}"),
            &format!("belongs to vendor {}", chain.vendor()),
        ],
    );

    // A new product needs a price.
    assert_refused(
        &chain.publish(file, "vendor.key", &[]),
        &[
            "is not registered yet: pass --price WEI",
            &product_id.to_string(),
        ],
    );

    // Prices beyond the contract's uint88 are usage errors.
    assert_exit(
        &chain.publish(file, "vendor.key", &["--price", "1e9"]),
        2,
        &["not an amount of wei"],
    );

    // --registry must repeat the manifest's.
    assert_refused(
        &chain.publish(
            file,
            "vendor.key",
            &["--price", "1", "--registry", NOT_A_REGISTRY],
        ),
        &["does not match the registry", &chain.registry()],
    );

    // Sealed for another chain.
    let other_chain = seal_for(
        chain.dir(),
        "chain1",
        "solo",
        "1.0.0",
        1,
        &chain.registry(),
        &[],
    );
    assert_refused(
        &chain.publish(path_str(&other_chain), "vendor.key", &["--price", "1"]),
        &["sealed for chain id 1", "serves chain id 31337"],
    );

    // Sealed for an address that holds no registry.
    let nowhere = seal_for(
        chain.dir(),
        "nowhere",
        "solo",
        "1.0.0",
        CHAIN_ID,
        NOT_A_REGISTRY,
        &[],
    );
    assert_refused(
        &chain.publish(path_str(&nowhere), "vendor.key", &["--price", "1"]),
        &["no contract at", "named in the module's manifest"],
    );

    // Revoking what is not published, and revoking with a stranger's key.
    assert_refused(
        &chain.revoke(file, "vendor.key", &[]),
        &["is not published", &code_hash.to_string()],
    );
    assert_refused(
        &chain.revoke(file, "customer.key", &[]),
        &["belongs to vendor"],
    );

    // A tampered module is refused with its check's exit code.
    let mut bytes = std::fs::read(&module).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(chain.dir().join("tampered.wasm"), &bytes).unwrap();
    assert_exit(
        &chain.publish("tampered.wasm", "vendor.key", &["--price", "1"]),
        13,
        &[],
    );

    assert_eq!(chain.block().await, block, "a refusal mined a block");
    assert_eq!(chain.nonce(chain.vendor()).await, 0);
    assert_eq!(chain.nonce(customer).await, 0);
    assert!(chain.platform.product(product_id).await.unwrap().is_none());
    assert!(
        chain
            .platform
            .release(product_id, code_hash)
            .await
            .unwrap()
            .is_none()
    );
}

#[test]
fn unreachable_or_invalid_rpc_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sealbox_keyfile::write_raw(&d.join("vendor.key"), &PrivateKeySigner::random()).unwrap();
    let module = seal_for(
        d,
        "offline",
        "offline",
        "1.0.0",
        CHAIN_ID,
        NOT_A_REGISTRY,
        &[],
    );
    // A port nobody listens on.
    let url = dead_rpc_url();
    let file = path_str(&module);
    for out in [
        on_chain(d, &["publish", file], &url, "vendor.key", &["--price", "1"]),
        on_chain(d, &["revoke", file], &url, "vendor.key", &[]),
        on_chain(
            d,
            &["withdraw"],
            &url,
            "vendor.key",
            &["--registry", NOT_A_REGISTRY],
        ),
    ] {
        assert_refused(&out, &["cannot reach the Ethereum RPC endpoint", &url]);
    }
    let out = on_chain(
        d,
        &["publish", file],
        "ws://127.0.0.1:8545",
        "vendor.key",
        &["--price", "1"],
    );
    assert_refused(&out, &["invalid RPC URL", "not http or https"]);
}

#[tokio::test]
async fn revoke_pulls_a_release_once_and_for_good() {
    let chain = Chain::new().await;
    let module = chain.seal("broken", "filter", "0.9.0", &[]);
    let (product_id, code_hash) = ids(&module);
    let file = path_str(&module);
    chain.publish_json(&module, "vendor.key", &["--price", "5"]);
    let customer = chain.address(2);
    assert_ne!(
        chain.license_reason(product_id, customer, code_hash).await,
        Reason::ReleaseRevoked
    );

    let report = ok_json(&chain.revoke(file, "vendor.key", &["--json"]));
    assert_eq!(report["release"]["status"], "revoked");
    chain.check_txs(&report, &["revoke-release"]).await;
    assert!(chain.release(product_id, code_hash).await.revoked);
    assert_eq!(
        chain.license_reason(product_id, customer, code_hash).await,
        Reason::ReleaseRevoked
    );

    // Again: reported, nothing sent; publishing it again is refused.
    let nonce = chain.nonce(chain.vendor()).await;
    assert_ok_says(
        &chain.revoke(file, "vendor.key", &[]),
        &["already revoked, nothing to do"],
    );
    assert_refused(
        &chain.publish(file, "vendor.key", &["--price", "5"]),
        &["was published and then revoked", "seal a new build"],
    );
    assert_eq!(chain.nonce(chain.vendor()).await, nonce);
}

#[tokio::test]
async fn customer_revoke_and_reinstate_change_the_license_once_each() {
    let chain = Chain::new().await;
    let module = chain.seal("standing", "scorer", "1.0.0", &[]);
    let (product_id, code_hash) = ids(&module);
    let file = path_str(&module);
    chain.publish_json(&module, "vendor.key", &["--price", "5"]);
    let customer = chain.address(2);
    let customer_arg = customer.to_string();
    let customer_cmd = |action: &str, key: &str, extra: &[&str]| {
        let mut args = vec![action, file, "--customer", customer_arg.as_str()];
        args.extend_from_slice(extra);
        on_chain(chain.dir(), &["customer"], &chain.url, key, &args)
    };
    assert_ne!(
        chain.license_reason(product_id, customer, code_hash).await,
        Reason::CustomerRevoked
    );

    // Only the vendor may; nothing changes when another key tries.
    let nonce = chain.nonce(chain.vendor()).await;
    assert_refused(&customer_cmd("revoke", "customer.key", &[]), &["vendor"]);

    let report = ok_json(&customer_cmd("revoke", "vendor.key", &["--json"]));
    assert_eq!(report["status"], "revoked");
    chain.check_txs(&report, &["revoke-customer"]).await;
    assert_eq!(
        chain.license_reason(product_id, customer, code_hash).await,
        Reason::CustomerRevoked
    );
    assert_eq!(chain.nonce(chain.vendor()).await, nonce + 1);

    // Again: reported, nothing sent.
    assert_ok_says(
        &customer_cmd("revoke", "vendor.key", &[]),
        &["already revoked, nothing to do"],
    );
    assert_eq!(chain.nonce(chain.vendor()).await, nonce + 1);

    let report = ok_json(&customer_cmd("reinstate", "vendor.key", &["--json"]));
    assert_eq!(report["status"], "reinstated");
    chain.check_txs(&report, &["reinstate-customer"]).await;
    assert_ne!(
        chain.license_reason(product_id, customer, code_hash).await,
        Reason::CustomerRevoked
    );
    assert_ok_says(
        &customer_cmd("reinstate", "vendor.key", &[]),
        &["not revoked, nothing to do"],
    );
    assert_eq!(chain.nonce(chain.vendor()).await, nonce + 2);
}

#[tokio::test]
async fn withdraw_pays_the_vendor_share_and_the_fee_exactly() {
    let chain = Chain::new().await;
    // An odd price, so the fee's rounding shows.
    let price = U256::from(1_000_000_007u64);
    let module = chain.seal("meter", "meter", "1.0.0", &[]);
    let (product_id, _) = ids(&module);
    chain.publish_json(&module, "vendor.key", &["--price", &price.to_string()]);
    let withdraw_json =
        |key: &str| ok_json(&chain.withdraw(key, &["--chain-id", "31337", "--json"]));

    // Nothing settled yet: a message, exit 0, no transaction.
    let report = withdraw_json("vendor.key");
    assert_eq!(
        (report["withdrawn"].clone(), report["amount_wei"].clone()),
        (Value::Bool(false), "0".into())
    );
    assert_eq!(chain.nonce(chain.vendor()).await, 2); // register + publish only

    // A customer deposits, authorizes a runtime key, and the runtime buys 13 units.
    let customer = chain.client(2).await;
    let customer_addr = chain.address(2);
    customer
        .deposit(product_id, None, U256::from(10u64).pow(U256::from(18)))
        .await
        .unwrap();
    let runtime_key = PrivateKeySigner::random();
    customer
        .authorize_signer(product_id, runtime_key.address())
        .await
        .unwrap();
    let receipt = customer
        .sign_usage(
            &runtime_key,
            product_id,
            customer_addr,
            B256::repeat_byte(0xB1),
            13,
            1_000_000_007,
            u64::MAX,
        )
        .unwrap();
    let settled = customer.settle(&receipt).await.unwrap();
    let charged = price * U256::from(13);
    assert_eq!(settled.wei_charged, charged);
    // 30 % fee rounded down, the rest to the vendor: 13 000 000 091 = 3 900 000 027 + 9 100 000 064.
    let fee = charged * U256::from(3000) / U256::from(10_000);
    let vendor_share = charged - fee;
    assert_eq!(
        (fee, vendor_share),
        (U256::from(3_900_000_027u64), U256::from(9_100_000_064u64))
    );

    let before = chain.eth(chain.vendor()).await;
    let report = withdraw_json("vendor.key");
    assert_eq!(report["withdrawn"], true);
    assert_eq!(report["account"], chain.vendor().to_string());
    assert_eq!(report["amount_wei"], vendor_share.to_string());
    let gas_cost = chain.check_txs(&report, &["withdraw"]).await;
    assert_eq!(
        chain.eth(chain.vendor()).await,
        before + vendor_share - gas_cost
    );
    assert_eq!(
        chain
            .platform
            .pending_revenue(chain.vendor())
            .await
            .unwrap(),
        U256::ZERO
    );

    // Withdrawn already: a clear message, exit 0, balance untouched.
    let after = chain.eth(chain.vendor()).await;
    assert_ok_says(&chain.withdraw("vendor.key", &[]), &["nothing to withdraw"]);
    assert_eq!(chain.eth(chain.vendor()).await, after);

    // The treasury (the deployer) collects the fee from the vendor's slot and takes it; text
    // output with one line per transaction.
    let treasury = chain.address(0);
    assert_eq!(chain.platform.fee_owed(chain.vendor()).await.unwrap(), fee);
    let before = chain.eth(treasury).await;
    let text = assert_ok_says(
        &chain.withdraw("platform.key", &[]),
        &[
            &format!("collected  {fee} wei"),
            "from 1 vendor(s)",
            &format!("withdrew   {fee} wei"),
        ],
    );
    let hashes: Vec<B256> = text
        .lines()
        .filter_map(|l| l.strip_prefix("tx")?.split_whitespace().nth(1))
        .map(|h| h.parse().unwrap())
        .collect();
    assert_eq!(hashes.len(), 2, "collect-fees and withdraw: {text}");
    let mut gas_cost = U256::ZERO;
    for hash in hashes {
        gas_cost += paid_for_gas(&chain.receipt(hash).await);
    }
    assert_eq!(chain.eth(treasury).await, before + fee - gas_cost);
    assert_eq!(
        chain.platform.pending_revenue(treasury).await.unwrap(),
        U256::ZERO
    );
    assert_eq!(
        chain.platform.fee_owed(chain.vendor()).await.unwrap(),
        U256::ZERO
    );
    // Again: nothing owed, nothing pending, nothing sent.
    let nonce = chain.nonce(treasury).await;
    let report = ok_json(&chain.withdraw("platform.key", &["--json"]));
    assert_eq!(
        (
            report["withdrawn"].clone(),
            report["fee_collected_wei"].clone()
        ),
        (Value::Bool(false), "0".into())
    );
    assert_eq!(chain.nonce(treasury).await, nonce);

    // A wrong chain id is refused before anything is sent.
    assert_refused(
        &chain.withdraw("vendor.key", &["--chain-id", "1"]),
        &["wrong chain", "chain id 1 was expected"],
    );
}

/// A stranger who publishes the vendor's code hash first, under a product of its own, neither
/// blocks `packager publish` nor licenses anything for the vendor's product; revoking the
/// vendor's release leaves the stranger's alone.
#[tokio::test]
async fn a_code_hash_published_by_a_stranger_does_not_block_publish() {
    let chain = Chain::new().await;
    let module = chain.seal("squatted", "squatted", "1.0.0", &[]);
    let (product_id, code_hash) = ids(&module);
    let stranger = chain.client(3).await;
    let (squat, _) = stranger
        .register_product("squat", U256::from(1))
        .await
        .unwrap();
    stranger.publish_release(squat, code_hash).await.unwrap();

    let report = chain.publish_json(&module, "vendor.key", &["--price", "7"]);
    assert_eq!(report["release"]["status"], "published");
    chain
        .check_txs(&report, &["register-product", "publish-release"])
        .await;
    let customer = chain.client(2).await;
    customer
        .deposit(product_id, None, U256::from(1_000))
        .await
        .unwrap();
    assert_eq!(
        chain
            .license_reason(product_id, chain.address(2), code_hash)
            .await,
        Reason::Ok
    );

    let report = ok_json(&chain.revoke(path_str(&module), "vendor.key", &["--json"]));
    assert_eq!(report["release"]["status"], "revoked");
    assert!(chain.release(product_id, code_hash).await.revoked);
    assert!(!chain.release(squat, code_hash).await.revoked);
}
