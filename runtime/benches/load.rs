//! Cold start of each example and the cost of a license check, side by side.
//!
//! 1. Cold start per example (encrypted to one recipient): verify (`open`),
//!    decrypt + code hash, compile without cache, and a warm start from the
//!    authenticated cache — in ms.
//! 2. License admission: a call admitted from the stored lease (a
//!    compare-and-swap on the usage journal's shared counter file) versus one
//!    `licenseStatus` `eth_call` over HTTP to a local anvil — in µs, same run.
//!
//! Run: `cargo bench -p sealbox-runtime --bench load` (anvil from
//! `license-contract/node_modules/.bin/anvil`, or `SEALBOX_ANVIL`).

use std::path::Path;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use k256::ecdsa::SigningKey;
use sealbox_runtime::journal::{Journal, UsageKey};
use sealbox_runtime::lease::Lease;
use sealbox_sandbox::{GuestLimits, Sandbox, SandboxConfig};
use sealbox_testkit::{Anvil, Deploy, dev_key};

const ROUNDS: usize = 5;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    cold_starts(&root);
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    rt.block_on(license_checks());
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn cold_starts(root: &Path) {
    println!("== cold start per example (median of {ROUNDS}; encrypted to 1 recipient)");
    println!(
        "| example | wasm KiB | verify ms | decrypt ms | compile ms | cold total ms | warm (cache) ms |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let vendor = SigningKey::random(&mut rand::thread_rng());
    let customer = SigningKey::random(&mut rand::thread_rng());
    for name in ["credit_score", "text_redact"] {
        let wasm = wat::parse_file(root.join(format!("examples/wat/{name}.wat"))).expect("fixture");
        let mut opts =
            sealed_format::SealOptions::new(name, "1.0.0", 31337, Address::repeat_byte(0x11));
        opts.recipients = vec![k256::PublicKey::from(*customer.verifying_key())];
        let sealed = sealed_format::seal(&wasm, &opts, &vendor, &[]).expect("seal");
        let (mut verify, mut decrypt, mut compile, mut warm) = (vec![], vec![], vec![], vec![]);
        for _ in 0..ROUNDS {
            let cache = tempfile::tempdir().expect("tempdir");
            let sandbox = Sandbox::new(SandboxConfig {
                cache_dir: Some(cache.path().join("modules")),
                ..SandboxConfig::default()
            })
            .expect("sandbox");
            let t = Instant::now();
            let opened = sealed_format::open(&sealed).expect("open");
            verify.push(t.elapsed());
            let t = Instant::now();
            let plain = opened.plaintext(Some(&customer)).expect("decrypt");
            decrypt.push(t.elapsed());
            let hash = opened.manifest.code_hash.0;
            let t = Instant::now();
            let program = sandbox
                .compile(hash, &plain, &GuestLimits::default())
                .expect("compile");
            compile.push(t.elapsed());
            assert!(!program.from_cache());
            drop(program);
            let t = Instant::now();
            let program = sandbox
                .compile(hash, &plain, &GuestLimits::default())
                .expect("warm");
            warm.push(t.elapsed());
            assert!(program.from_cache(), "second compile must hit the cache");
        }
        let (v, d, c, w) = (
            median(verify),
            median(decrypt),
            median(compile),
            median(warm),
        );
        println!(
            "| {name} | {:.1} | {:.3} | {:.3} | {:.2} | {:.2} | {:.2} |",
            wasm.len() as f64 / 1024.0,
            ms(v),
            ms(d),
            ms(c),
            ms(v + d + c),
            ms(w)
        );
    }
}

async fn license_checks() {
    const N: u32 = 2_000;
    let anvil = Anvil::spawn();
    let customer = dev_key(2);
    let registry = anvil.deploy(Deploy::default()).await.address();
    let as_vendor = anvil.client(registry, Some(dev_key(1))).await;
    let (product, _) = as_vendor
        .register_product("bench", U256::from(1))
        .await
        .expect("register");
    let as_customer = anvil.client(registry, Some(customer.clone())).await;
    as_customer
        .deposit(product, None, U256::from(1_000_000_000u64))
        .await
        .expect("deposit");

    let t = Instant::now();
    for _ in 0..N {
        let status = as_customer
            .license_status(product, customer.address(), None)
            .await
            .expect("status");
        assert!(status.active);
    }
    let rpc = t.elapsed() / N;

    let dir = tempfile::tempdir().expect("tempdir");
    let journal = Journal::open(&dir.path().join("journal.db")).expect("journal");
    let key = UsageKey {
        deployment: [4; 32],
        buyer: [5; 32],
        product: product.0,
        customer: customer.address().into_array(),
        signer: customer.address().into_array(),
    };
    // Units bought far ahead: admission never runs out in the benchmark.
    let lease = Lease {
        checked_at: sealbox_runtime::clock::unix_now(),
        block: 1,
        block_timestamp: sealbox_runtime::clock::unix_now(),
        price_wei: 1,
        available_wei: 0,
        bought_units: 0,
        bought_block: 1,
        inactive: None,
        signer_deauthorized: false,
        cannot_buy: None,
        release: [0; 32],
    };
    journal.store_lease(&key, &lease).expect("lease");
    journal
        .record_bought(&key, 1 << 62, 1)
        .expect("record a purchase");
    let t = Instant::now();
    for _ in 0..N {
        journal.admit(&key, 1).expect("admit");
    }
    let local = t.elapsed() / N;
    println!();
    println!("== license admission, {N} sequential checks each");
    println!("| path | µs per check |");
    println!("|---|---:|");
    println!(
        "| lease in the journal (check + count on the shared counter) | {:.3} |",
        local.as_secs_f64() * 1e6
    );
    println!(
        "| licenseStatus eth_call over HTTP (anvil) | {:.1} |",
        rpc.as_secs_f64() * 1e6
    );
    println!(
        "| ratio rpc / lease | {:.1} |",
        rpc.as_secs_f64() / local.as_secs_f64()
    );
}
