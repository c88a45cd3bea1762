//! Issue #13, item 4: a fleet. N runtime nodes (N = `SEALBOX_FLEET_NODES`,
//! default 3), each a `runtime serve` with its own state directory and its
//! own runtime signer authorized by the customer, each in its own network
//! namespace joined to the root namespace by a veth pair (a /30 per node);
//! one anvil in the root namespace, listening on loopback and on the root
//! side of every veth. A load generator spreads concurrent calls over the
//! nodes; one node is SIGKILLed mid-run and restarted on the same state
//! directory (and the same address). At the end, per signer, the chain's
//! bought units equal what the node's journal says it bought, cover what it
//! admitted, and what it admitted is exactly the answered calls (plus, for
//! the killed node, at most the calls cut off by the kill); the customer's
//! escrow paid exactly the units bought, split 70 / 30 to the wei.
//!
//! Without network namespaces (not root, no iproute2), or with
//! `SEALBOX_FLEET_NETNS=0`, the nodes run on loopback, and the test says so.
//! It prints the purchase transactions and their gas per signer (settlement
//! cost against N).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;

use crate::common::{
    Actors, Chain, Machine, PRICE_WEI, Party, Serving, example, ip_path, license, licensed, variant,
};

/// Units per purchase (`--prepay-min-units` = `--prepay-max-units`):
/// `SEALBOX_FLEET_BLOCK`, default 25; `SEALBOX_FLEET_BLOCK=serve` leaves the
/// sizing to serve (about a minute of calls at the measured rate).
fn block() -> Option<u64> {
    match std::env::var("SEALBOX_FLEET_BLOCK").as_deref() {
        Ok("serve") => None,
        Ok(v) => Some(
            v.parse()
                .expect("SEALBOX_FLEET_BLOCK is a number or `serve`"),
        ),
        Err(_) => Some(25),
    }
}
/// The port every node listens on inside its own namespace.
const PORT: u16 = 8080;
/// How long the load runs at least: longer only until every node, and the
/// restarted one since its restart, answered a call (a purchase whose
/// receipt is not there at once is seen at alloy's next poll, 7 s later for
/// an RPC URL off loopback), and never past `MAX_LOAD`.
const LOAD: Duration = Duration::from_secs(8);
const MAX_LOAD: Duration = Duration::from_secs(40);
/// When node 0 is killed, and how long it stays down.
const KILL_AT: Duration = Duration::from_secs(3);
const DOWN_FOR: Duration = Duration::from_millis(700);
/// Concurrent clients.
const WORKERS: usize = 8;
/// Upper bound on each client's requests (the loop is bounded in count and time).
const MAX_PER_WORKER: usize = 5_000;

// ---------------------------------------------------------------- namespaces

/// The test's network namespaces and veth pairs; deleted on drop, even when
/// the test fails.
struct Net {
    tag: String,
    octet: u32,
    made: Vec<usize>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new(ip_path())
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Net {
    /// `n` namespaces `sbxfleet-PID-K`, each with a veth pair:
    /// `10.O.(K+1).1/30` on the root side, `10.O.(K+1).2/30` inside.
    fn setup(n: usize) -> Result<Net, String> {
        Net::reap();
        let pid = std::process::id();
        let mut net = Net {
            tag: pid.to_string(),
            octet: 100 + pid % 100,
            made: Vec::new(),
        };
        for k in 0..n {
            let (ns, root, peer) = (net.ns(k), net.root_if(k), net.peer_if(k));
            ip(&["netns", "add", &ns])?;
            net.made.push(k);
            ip(&[
                "link", "add", &root, "type", "veth", "peer", "name", &peer, "netns", &ns,
            ])?;
            ip(&[
                "addr",
                "add",
                &format!("{}/30", net.root_addr(k)),
                "dev",
                &root,
            ])?;
            ip(&["link", "set", &root, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/30", net.node_addr(k)),
                "dev",
                &peer,
            ])?;
            ip(&["-n", &ns, "link", "set", &peer, "up"])?;
        }
        Ok(net)
    }

    /// Deletes what an earlier run that died without its drop (SIGKILL) left:
    /// the namespaces and veths of test processes that are gone.
    fn reap() {
        let Ok(out) = Command::new(ip_path()).args(["netns", "list"]).output() else {
            return;
        };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or_default();
            let Some((pid, k)) = name
                .strip_prefix("sbxfleet-")
                .and_then(|rest| rest.split_once('-'))
            else {
                continue;
            };
            if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
                let _ = ip(&["link", "del", &format!("sbf{pid}r{k}")]);
                let _ = ip(&["netns", "del", name]);
            }
        }
    }

    fn ns(&self, k: usize) -> String {
        format!("sbxfleet-{}-{k}", self.tag)
    }
    fn root_if(&self, k: usize) -> String {
        format!("sbf{}r{k}", self.tag)
    }
    fn peer_if(&self, k: usize) -> String {
        format!("sbf{}n{k}", self.tag)
    }
    fn root_addr(&self, k: usize) -> String {
        format!("10.{}.{}.1", self.octet, k + 1)
    }
    fn node_addr(&self, k: usize) -> String {
        format!("10.{}.{}.2", self.octet, k + 1)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for &k in &self.made {
            let _ = ip(&["link", "del", &self.root_if(k)]);
            let _ = ip(&["netns", "del", &self.ns(k)]);
        }
    }
}

// ---------------------------------------------------------------- nodes

/// One fleet node: a machine (state directory, cache) with its own signer.
struct Node {
    machine: Machine,
    signer: Party,
    token: String,
    token_file: PathBuf,
    /// `Some(namespace, address)` in a namespace; `None` on loopback.
    netns: Option<(String, String)>,
    server: Option<Serving>,
}

impl Node {
    fn start(&mut self, sealed: &Path) -> String {
        let token = self.token_file.display().to_string();
        let mut args: Vec<String> = vec!["--token-file".into(), token];
        if let Some(block) = block() {
            args.extend([
                "--prepay-min-units".into(),
                block.to_string(),
                "--prepay-max-units".into(),
                block.to_string(),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let server = match &self.netns {
            Some((ns, addr)) => {
                self.machine
                    .serve_in(ns, &format!("{addr}:{PORT}"), &[sealed], &args)
            }
            None => self.machine.serve(&[sealed], &args),
        };
        let url = server.url.clone();
        self.server = Some(server);
        url
    }
}

// ---------------------------------------------------------------- load

#[derive(Default)]
struct Counts {
    /// 200 with the whole answer read.
    ok: AtomicU64,
    /// 402 (prepaying) or 503 (queue full): neither run nor billed.
    refused: AtomicU64,
    /// No answer (connection refused or cut, timeout): maybe admitted.
    failed: AtomicU64,
    /// Anything else, with its text.
    unexpected: Mutex<Vec<String>>,
}

/// What the load generator's clients share.
struct Load {
    client: reqwest::Client,
    /// Each node's base URL (node 0's is replaced when it restarts).
    urls: RwLock<Vec<String>>,
    tokens: Vec<String>,
    product: B256,
    body: Vec<u8>,
    counts: Vec<Counts>,
    /// Set when the load is over.
    stop: AtomicBool,
    /// The hard end of the load.
    until: Instant,
}

impl Load {
    fn answered(&self, k: usize) -> u64 {
        self.counts[k].ok.load(Ordering::Relaxed)
    }

    /// Waits until `done` holds, or `limit` passed: whether it held.
    async fn wait_for(&self, limit: Instant, done: impl Fn(&Load) -> bool) -> bool {
        while !done(self) {
            if Instant::now() >= limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }
}

/// Client `w`: calls the nodes in turn until `load.until`.
async fn worker(w: usize, load: Arc<Load>) {
    let Load {
        client,
        urls,
        tokens,
        product,
        body,
        counts,
        stop,
        until,
    } = load.as_ref();
    let (n, until) = (tokens.len(), *until);
    for i in 0..MAX_PER_WORKER {
        if stop.load(Ordering::Relaxed) || Instant::now() >= until {
            break;
        }
        let k = (w + i) % n;
        let base = urls.read().unwrap()[k].clone();
        let url = format!("{base}/v1/products/{product}/invoke/score");
        let sent = client
            .post(&url)
            .bearer_auth(&tokens[k])
            .body(body.clone())
            .send()
            .await;
        let c = &counts[k];
        match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let text = response.text().await;
                match (status, text) {
                    (200, Ok(t)) if !t.is_empty() => {
                        c.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    (200, Err(_)) => {
                        c.failed.fetch_add(1, Ordering::Relaxed);
                    }
                    (402 | 503, _) => {
                        c.refused.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    (s, t) => c
                        .unexpected
                        .lock()
                        .unwrap()
                        .push(format!("node {k}: {s} {t:?}")),
                }
            }
            Err(_) => {
                c.failed.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Purchase transactions (signer nonces) and their gas, per signer.
async fn settlement_cost(chain: &Chain, signers: &[Address]) -> (Vec<u64>, Vec<u64>) {
    let mut txs = Vec::new();
    for s in signers {
        txs.push(chain.nonce(*s).await);
    }
    let reader = chain.reader().await;
    let provider = reader.provider();
    let latest = provider.get_block_number().await.expect("block number");
    let mut gas = vec![0u64; signers.len()];
    for b in 0..=latest {
        let receipts = provider
            .get_block_receipts(b.into())
            .await
            .expect("block receipts")
            .unwrap_or_default();
        for r in receipts {
            if let Some(i) = signers.iter().position(|s| *s == r.from) {
                gas[i] += r.gas_used;
            }
        }
    }
    (txs, gas)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fleet_with_a_killed_node_settles_every_signer_exactly() {
    let started = Instant::now();
    let n: usize = std::env::var("SEALBOX_FLEET_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .clamp(1, 9);

    // Namespaces first: anvil must listen on the root side of every veth.
    let net = match std::env::var("SEALBOX_FLEET_NETNS").as_deref() {
        Ok("0") => Err("SEALBOX_FLEET_NETNS=0".to_string()),
        _ => Net::setup(n),
    };
    let net = match net {
        Ok(net) => Some(net),
        Err(e) => {
            eprintln!("fleet: network namespaces unavailable ({e}); the nodes run on loopback");
            None
        }
    };
    let chain = match &net {
        Some(net) => {
            let hosts: Vec<String> = std::iter::once("127.0.0.1".to_string())
                .chain((0..n).map(|k| net.root_addr(k)))
                .collect();
            Chain::start_with(&["--host", &hosts.join(",")]).await
        }
        None => Chain::start().await,
    };
    let anvil_port = chain.url.rsplit(':').next().unwrap().to_string();

    let actors = Actors::new(&chain).await;
    let module = variant(&example("wat/credit_score.wat"), "fleet", actors.path());
    const ESCROW_UNITS: u64 = 1_000_000;
    let (sealed, release) = licensed(
        &chain,
        &actors,
        &module,
        "cs-fleet",
        ESCROW_UNITS * PRICE_WEI,
        &[],
    )
    .await;
    let product = release.product_id;
    let customer = chain.client(&actors.customer.signer).await;

    let mut nodes = Vec::new();
    for k in 0..n {
        let signer = Party::new(actors.path(), &format!("node-{k}"));
        chain.fund(signer.address()).await;
        license(&customer, product, 0, signer.address()).await;
        let mut machine = Machine::with_key(&chain, &actors, &signer);
        let netns = net.as_ref().map(|net| {
            machine.rpc = format!("http://{}:{anvil_port}", net.root_addr(k));
            (net.ns(k), net.node_addr(k))
        });
        let token = alloy::primitives::hex::encode(PrivateKeySigner::random().to_bytes());
        let token_file = actors.path().join(format!("node-{k}.token"));
        std::fs::write(&token_file, &token).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        nodes.push(Node {
            machine,
            signer,
            token,
            token_file,
            netns,
            server: None,
        });
    }
    let urls: Vec<String> = nodes.iter_mut().map(|node| node.start(&sealed)).collect();
    if net.is_some() {
        for (k, url) in urls.iter().enumerate() {
            assert!(!url.contains("127.0.0.1"), "node {k} listens on {url}");
        }
    }
    // The load, spread over the nodes.
    let load_started = Instant::now();
    let load = Arc::new(Load {
        client: reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        urls: RwLock::new(urls),
        tokens: nodes.iter().map(|n| n.token.clone()).collect(),
        product,
        body: std::fs::read(example("inputs/applicant.json")).unwrap(),
        counts: (0..n).map(|_| Counts::default()).collect(),
        stop: AtomicBool::new(false),
        until: load_started + MAX_LOAD,
    });
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| tokio::spawn(worker(w, load.clone())))
        .collect();

    // Node 0 is SIGKILLed mid-run (once it has answered), then restarted on
    // the same state directory.
    tokio::time::sleep(KILL_AT).await;
    assert!(
        load.wait_for(load.until, |l| l.answered(0) > 0).await,
        "node 0 answered nothing before the kill"
    );
    let killed = nodes[0].server.as_mut().unwrap().kill();
    assert_eq!(killed.code, None, "SIGKILL: {}", killed.dump());
    tokio::time::sleep(DOWN_FOR).await;
    let url = tokio::task::block_in_place(|| nodes[0].start(&sealed));
    load.urls.write().unwrap()[0] = url;
    let answered_before_restart = load.answered(0);
    tokio::time::sleep_until((load_started + LOAD).into()).await;
    load.wait_for(load.until, |l| {
        l.answered(0) > answered_before_restart && (0..n).all(|k| l.answered(k) > 0)
    })
    .await;
    load.stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let load_time = load_started.elapsed();

    // Each node stops (SIGTERM) and settles what it left in flight.
    for (k, node) in nodes.iter_mut().enumerate() {
        let out = node.server.take().unwrap().stop();
        assert_eq!(
            out.code,
            Some(0),
            "node {k} did not stop cleanly\n{}",
            out.dump()
        );
        node.machine.settle(&[]).ok();
    }

    // Per signer: chain == journal ≥ admitted == answered (+ cut off by the kill).
    let mut bought_total = 0;
    let mut ok_total = 0;
    let mut report = Vec::new();
    for (k, node) in nodes.iter().enumerate() {
        let c = &load.counts[k];
        let unexpected = c.unexpected.lock().unwrap().clone();
        assert!(unexpected.is_empty(), "unexpected answers: {unexpected:?}");
        let (ok, failed, refused) = (
            c.ok.load(Ordering::Relaxed),
            c.failed.load(Ordering::Relaxed),
            c.refused.load(Ordering::Relaxed),
        );
        let bought = node.machine.bought_on(&chain, product).await;
        let usage = node.machine.usage(product);
        let admitted = usage.runtime_units;
        report.push(format!(
            "node {k} ({}): answered {ok}, failed {failed}, refused {refused}, admitted {admitted}, bought {bought}",
            node.signer.address()
        ));
        assert_eq!(
            usage.bought_units, bought,
            "node {k}: the journal's bought units are the chain's"
        );
        assert!(ok > 0, "node {k} answered nothing");
        assert!(
            admitted >= ok,
            "node {k}: answered calls lost: {}",
            report[k]
        );
        if k == 0 {
            assert!(
                ok > answered_before_restart,
                "the restarted node answered nothing: {}",
                report[k]
            );
            assert!(
                admitted <= ok + failed,
                "node {k}: admitted more than answered + cut off: {}",
                report[k]
            );
        } else {
            assert_eq!(failed, 0, "node {k} was never killed: {}", report[k]);
            assert_eq!(admitted, ok, "node {k}: admitted ≠ answered: {}", report[k]);
        }
        assert!(
            bought >= admitted,
            "node {k} ran unpaid calls: {}",
            report[k]
        );
        if let Some(block) = block() {
            assert!(
                bought - admitted <= 2 * block,
                "node {k}: more than two blocks unused: {}",
                report[k]
            );
        }
        bought_total += bought;
        ok_total += ok;
    }
    let status = chain.license_of(product, actors.customer.address()).await;
    assert_eq!(status.bought_units, bought_total, "{report:#?}");
    assert_eq!(
        status.balance,
        U256::from((ESCROW_UNITS - bought_total) * PRICE_WEI)
    );
    Chain::assert_paid(chain.revenue(actors.vendor.address()).await, bought_total);

    // What settlement cost: one purchase transaction per block, per signer.
    let signers: Vec<Address> = nodes.iter().map(|n| n.signer.address()).collect();
    let (txs, gas) = settlement_cost(&chain, &signers).await;
    let purchases: u64 = txs.iter().sum();
    let gas_total: u64 = gas.iter().sum();
    for (k, node) in nodes.iter().enumerate() {
        let bought = node.machine.bought_on(&chain, product).await;
        assert!(
            txs[k] > 0,
            "node {k} bought {bought} units without a transaction"
        );
        if let Some(block) = block() {
            assert_eq!(
                txs[k] * block,
                bought,
                "node {k}: {} purchase(s) of {block} units each",
                txs[k]
            );
        }
    }
    eprintln!(
        "fleet: N={n} netns={} block {:?} load {:.1}s, {ok_total} calls answered, {bought_total} units bought in \
         {purchases} purchase tx ({txs:?} per signer), gas {gas_total} ({} per purchase, {gas:?} per signer), \
         whole test {:.1}s\n{}",
        net.is_some(),
        block(),
        load_time.as_secs_f64(),
        gas_total / purchases.max(1),
        started.elapsed().as_secs_f64(),
        report.join("\n")
    );
    drop(nodes);
    drop(chain);
    drop(net);
}
