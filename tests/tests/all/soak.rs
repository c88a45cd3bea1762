//! Issue #14, item 3: the chaos soak. `runtime serve` under steady load from
//! `wrk` while a driver injects one fault per segment, in a fixed cycle:
//!
//! | fault | how |
//! |---|---|
//! | `steady` | none (the baseline segment) |
//! | `rpc-cut` | the runtime's RPC goes through a [`CuttableProxy`]; for longer than two license refreshes it forwards nothing, and every connection open during the cut stays dead afterwards (a partition that drops state: only new connections work again) |
//! | `anvil-restart` | anvil stops (SIGTERM, it saves its state) and starts again from it on the same port |
//! | `disk-full` | the state directory is a small tmpfs; a file fills it to ENOSPC for a few seconds |
//! | `sigkill` | the runtime is SIGKILLed mid-load and started again on the same state directory and address |
//! | `signer-rotation` | the customer authorizes a fresh runtime key; the runtime stops (SIGTERM), `runtime settle` finishes the old key's purchases, the old key is deauthorized, the runtime starts with the new key (docs/DEPLOY.md) |
//!
//! After every fault one request is retried until it is answered 200: the
//! time to recover, bounded. At the end, per signer: the chain's bought units
//! equal the journal's, cover what was admitted, and leave at most the
//! prepaid tail (two blocks) unused; the kernel count equals the runtime's
//! (less at most one call per SIGKILL, killed between the journal and the
//! probe); summed over signers, admitted units are the 200 answers plus at
//! most the calls cut off by the kills or left in flight when a `wrk` run
//! ends; the customer's escrow paid exactly the units bought, split 70 / 30
//! to the wei; and within each runtime process
//! that lived through several segments, open sockets, other descriptors and
//! resident memory grew by no more than [`SOCKET_SLACK`], [`FD_SLACK`] and
//! [`RSS_SLACK_KIB`].
//!
//! `SEALBOX_SOAK_SECONDS` (default 60: the cycle once, the smoke run of the
//! test command) sets the length; `scripts/soak` runs it for 10 minutes. It
//! prints a table of faults and outcomes, the request
//! rate, p99 latency, RSS and descriptors.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, U256};
use sealbox_testkit::proxy::CuttableProxy;

use crate::common::{
    Actors, Chain, Machine, PRICE_WEI, Party, PinDir, Serving, example, licensed, variant,
};

/// Length of one segment: one `wrk` run, one fault.
const SEGMENT: Duration = Duration::from_secs(10);
/// When, into a segment, its fault starts.
const FAULT_AT: Duration = Duration::from_secs(2);
/// How long a cut, a halted chain or a full disk lasts.
const HOLD: Duration = Duration::from_secs(5);
/// `--refresh-secs`: the cut outlasts two refreshes.
const REFRESH_SECS: u64 = 2;
/// Units per purchase (`--prepay-min-units` = `--prepay-max-units`): small,
/// so that purchases happen during every fault.
const BLOCK: u64 = 1_000;
/// `wrk` connections (and so the most calls in flight at a kill).
const CONNECTIONS: u64 = 8;
/// How long a fault may take to recover from (first 200 after it ends).
const RECOVERY: Duration = Duration::from_secs(60);
/// The state directory's tmpfs.
const TMPFS_SIZE: &str = "16m";
/// How much a runtime process's resident memory may grow from its first
/// sample to its last (allocator high-water marks, SQLite's page cache).
const RSS_SLACK_KIB: u64 = 16 * 1024;
/// How many more sockets a runtime process may hold at its last sample than
/// at its first: its RPC client keeps idle connections for 90 s, one per
/// request that ran concurrently (buying, license refresh, balance), so
/// their number varies (a socket leaked per call or per purchase would be
/// thousands).
const SOCKET_SLACK: u64 = 8;
/// The same for every other descriptor (files, the journal, BPF maps,
/// pipes, eventfds), which should not vary at all. Once (one full-suite run of
/// about ten on 2026-12-02) a process held 3 more after its disk-full segment,
/// once and not again; it did not reproduce alone or under load, so which
/// descriptors they were is unknown. A failure now lists the new ones. A leak
/// that grows with calls, purchases or repeated faults still fails.
const FD_SLACK: u64 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Steady,
    RpcCut,
    AnvilRestart,
    DiskFull,
    Sigkill,
    SignerRotation,
}

const CYCLE: [Fault; 6] = [
    Fault::Steady,
    Fault::RpcCut,
    Fault::AnvilRestart,
    Fault::DiskFull,
    Fault::Sigkill,
    Fault::SignerRotation,
];

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Steady => "steady",
            Fault::RpcCut => "rpc-cut",
            Fault::AnvilRestart => "anvil-restart",
            Fault::DiskFull => "disk-full",
            Fault::Sigkill => "sigkill",
            Fault::SignerRotation => "signer-rotation",
        }
    }
}

fn soak_length() -> Duration {
    let seconds = match std::env::var("SEALBOX_SOAK_SECONDS") {
        Ok(v) => v
            .parse()
            .expect("SEALBOX_SOAK_SECONDS is a whole number of seconds"),
        Err(_) => 60,
    };
    Duration::from_secs(seconds)
}

// ---------------------------------------------------------------- the state tmpfs

/// A tmpfs of [`TMPFS_SIZE`] mounted on a directory; unmounted on drop.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path) -> Tmpfs {
        std::fs::create_dir_all(path).expect("create the state directory");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={TMPFS_SIZE},mode=0700"))
            .arg("tmpfs")
            .arg(path)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "the soak needs root to mount a small tmpfs as the state directory (the disk-full \
             fault): mount -t tmpfs on {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs {
            path: path.to_path_buf(),
        }
    }

    /// Writes a file until the disk is full; returns it and its size.
    fn fill(&self) -> (PathBuf, u64) {
        let path = self.path.join("soak-filler");
        let mut file = std::fs::File::create(&path).expect("create the filler");
        let chunk = vec![0xa5u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("fill {}: {e}", path.display()),
            }
        }
        let _ = file.sync_all();
        (path, written)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

// ---------------------------------------------------------------- load

/// One `wrk` run's result.
#[derive(Debug, Default, Clone)]
struct Load {
    /// Responses by HTTP status.
    statuses: BTreeMap<u16, u64>,
    /// Connect, read, write and timeout errors (no response).
    socket_errors: u64,
    p99_us: u64,
    seconds: f64,
}

impl Load {
    fn count(&self, status: u16) -> u64 {
        self.statuses.get(&status).copied().unwrap_or(0)
    }

    fn others(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(s, _)| !matches!(s, 200 | 402 | 500 | 503))
            .map(|(_, n)| n)
            .sum()
    }
}

/// The wrk script: POSTs the applicant, counts responses by status in every
/// thread, and prints the totals in a form [`wrk`] parses.
fn wrk_script(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("soak.lua");
    let script = format!(
        r#"wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[{body}]==]
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) counts = {{}} end
function response(status, headers, body) counts[status] = (counts[status] or 0) + 1 end
function done(summary, latency, requests)
  local total = {{}}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("counts")) do total[k] = (total[k] or 0) + v end
  end
  for k, v in pairs(total) do io.write(string.format("soak-status %d %d\n", k, v)) end
  local e = summary.errors
  io.write(string.format("soak-errors %d\n", e.connect + e.read + e.write + e.timeout))
  io.write(string.format("soak-p99 %d\n", latency:percentile(99)))
  io.write(string.format("soak-us %d\n", summary.duration))
end
"#
    );
    std::fs::write(&path, script).expect("write the wrk script");
    path
}

/// Runs `wrk` against `url` for `duration`.
fn wrk(url: &str, script: &Path, duration: Duration) -> Load {
    let out = Command::new("wrk")
        .args(["-t2", &format!("-c{CONNECTIONS}"), "--timeout", "5s"])
        .arg(format!("-d{}s", duration.as_secs()))
        .arg("-s")
        .arg(script)
        .arg(url)
        .output()
        .expect("run wrk (scripts/setup installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "wrk failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut load = Load::default();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["soak-status", s, n] => {
                load.statuses.insert(s.parse().unwrap(), n.parse().unwrap());
            }
            ["soak-errors", n] => load.socket_errors = n.parse().unwrap(),
            ["soak-p99", n] => load.p99_us = n.parse().unwrap(),
            ["soak-us", n] => load.seconds = n.parse::<f64>().unwrap() / 1e6,
            _ => {}
        }
    }
    assert!(load.seconds > 0.0, "no totals from wrk:\n{text}");
    load
}

/// Retries one call until it is answered 200; how long that took.
async fn recovered(url: &str, body: &str) -> Duration {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < RECOVERY {
        match client
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
        {
            Ok(r) if r.status() == 200 => return started.elapsed(),
            Ok(r) => last = format!("{} {}", r.status(), r.text().await.unwrap_or_default()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("serve did not answer 200 within {RECOVERY:?} of the fault's end; last: {last}");
}

// ---------------------------------------------------------------- process samples

/// Resident memory and open descriptors of a process.
#[derive(Debug, Clone, Default)]
struct Sample {
    rss_kib: u64,
    /// Open sockets.
    sockets: u64,
    /// Every other open descriptor.
    fds: u64,
    /// What those other descriptors are (`N -> target`), for a failure message.
    others: Vec<String>,
}

impl Sample {
    fn of(pid: u32) -> Sample {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let (mut sockets, mut fds, mut others) = (0, 0, Vec::new());
        for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
            .flatten()
        {
            match std::fs::read_link(entry.path()) {
                Ok(target) if target.to_string_lossy().starts_with("socket:") => sockets += 1,
                target => {
                    fds += 1;
                    let target = target.map_or("?".into(), |t| t.display().to_string());
                    others.push(format!(
                        "{} -> {target}",
                        entry.file_name().to_string_lossy()
                    ));
                }
            }
        }
        others.sort();
        Sample {
            rss_kib,
            sockets,
            fds,
            others,
        }
    }
}

/// One runtime process: its samples after its first and its last segment.
struct Lifetime {
    pid: u32,
    first: Sample,
    last: Sample,
    segments: usize,
}

// ---------------------------------------------------------------- the soak

/// One segment: its fault, the load's outcome, the time to the first 200
/// after the fault ended.
struct Row {
    fault: Fault,
    load: Load,
    recovery: Duration,
}

/// Everything the driver acts on.
struct Soak {
    chain: Chain,
    actors: Actors,
    machine: Machine,
    proxy: CuttableProxy,
    tmpfs: Tmpfs,
    sealed: PathBuf,
    product: B256,
    deposit: u64,
    listen: String,
    url: String,
    body: String,
    serving: Serving,
    /// Runtime keys rotated in, in order (the first key is `actors.runtime`).
    rotated: Vec<Party>,
    kills: u64,
    /// What every stopped or killed `serve` printed on stderr.
    logs: Vec<String>,
    _pin_dir: PinDir,
}

impl Soak {
    async fn new() -> Soak {
        let chain = Chain::start_persistent().await;
        let actors = Actors::new(&chain).await;
        let module = variant(&example("wat/credit_score.wat"), "soak", actors.path());
        let deposit = 10u64.pow(17); // 1e14 units at PRICE_WEI
        let (sealed, release) = licensed(
            &chain,
            &actors,
            &module,
            "soak",
            deposit,
            &["--metering", "kernel-preferred"],
        )
        .await;
        let anvil: SocketAddr = chain
            .url
            .trim_start_matches("http://")
            .parse()
            .expect("anvil's address");
        let proxy = CuttableProxy::start(anvil);
        let pin_dir = PinDir::new();
        let mut machine = Machine::new(&chain, &actors);
        machine.rpc = proxy.url();
        // kernel-preferred: without BPF the runtime counts alone, and the
        // accounts apply the BPF rule (fail, or with SEALBOX_SKIP_BPF=1 say so).
        machine.kernel_meter = Some(pin_dir.path.clone());
        let tmpfs = Tmpfs::mount(&machine.state_dir());
        let body = std::fs::read_to_string(example("inputs/applicant.json")).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let listen = format!("127.0.0.1:{port}");
        let url = format!(
            "http://{listen}/v1/products/{}/invoke/score",
            release.product_id
        );
        let serving = start(&machine, &listen, &sealed);
        Soak {
            chain,
            actors,
            machine,
            proxy,
            tmpfs,
            sealed,
            product: release.product_id,
            deposit,
            listen,
            url,
            body,
            serving,
            rotated: vec![],
            kills: 0,
            logs: vec![],
            _pin_dir: pin_dir,
        }
    }

    /// The chain's genesis block hash (part of the deployment id).
    async fn genesis(&self) -> B256 {
        self.chain
            .reader()
            .await
            .genesis_hash()
            .await
            .expect("read the genesis block")
    }

    /// The runtime key in use.
    fn signer(&self) -> Address {
        self.rotated
            .last()
            .map(Party::address)
            .unwrap_or_else(|| self.actors.runtime.address())
    }

    /// Injects `fault` and ends it; a note for the table.
    async fn inject(&mut self, fault: Fault) -> String {
        match fault {
            Fault::Steady => String::new(),
            Fault::RpcCut => {
                self.proxy.cut();
                tokio::time::sleep(HOLD).await;
                self.proxy.restore();
                format!("{} connection(s) silenced so far", self.proxy.silenced())
            }
            Fault::AnvilRestart => {
                let genesis = self.genesis().await;
                self.chain.halt();
                tokio::time::sleep(HOLD).await;
                self.chain.resume();
                let after = self.genesis().await;
                assert_eq!(
                    genesis, after,
                    "anvil came back from its state file with another genesis block: to the \
                     runtime a new deployment (test harness, not the runtime)"
                );
                String::new()
            }
            Fault::DiskFull => {
                let (filler, bytes) = self.tmpfs.fill();
                tokio::time::sleep(HOLD).await;
                std::fs::remove_file(&filler).expect("remove the filler");
                format!("{} KiB filled", bytes / 1024)
            }
            Fault::Sigkill => {
                let out = self.serving.kill();
                self.logs.push(out.stderr.clone());
                self.kills += 1;
                self.serving = start(&self.machine, &self.listen, &self.sealed);
                format!("killed ({:?}) and restarted", out.code)
            }
            Fault::SignerRotation => self.rotate().await,
        }
    }

    /// The rotation of the runtime key, as docs/DEPLOY.md describes it.
    async fn rotate(&mut self) -> String {
        let fresh = Party::new(
            self.actors.path(),
            &format!("runtime-{}", self.rotated.len() + 1),
        );
        self.chain.fund(fresh.address()).await;
        let customer = self.chain.client(&self.actors.customer.signer).await;
        customer
            .authorize_signer(self.product, fresh.address())
            .await
            .expect("authorize the new signer");
        let out = self.serving.stop();
        assert_eq!(
            out.code,
            Some(0),
            "serve did not stop cleanly:\n{}",
            out.stderr
        );
        self.machine.settle(&[]).ok();
        let old = self.signer();
        customer
            .deauthorize_signer(self.product, old)
            .await
            .expect("deauthorize the old signer");
        self.machine.rekey(&fresh);
        self.rotated.push(fresh);
        self.serving = start(&self.machine, &self.listen, &self.sealed);
        format!("{old} → {}", self.signer())
    }
}

/// `runtime serve` of the soak, on its fixed address.
fn start(machine: &Machine, listen: &str, sealed: &Path) -> Serving {
    let block = BLOCK.to_string();
    let refresh = REFRESH_SECS.to_string();
    let mut serving = machine.serve_on(
        listen,
        &[sealed],
        &[
            "--prepay-min-units",
            &block,
            "--prepay-max-units",
            &block,
            "--refresh-secs",
            &refresh,
        ],
    );
    assert!(serving.running(), "serve did not start");
    serving
}

#[tokio::test(flavor = "multi_thread")]
async fn chaos_soak_keeps_exact_accounts() {
    let segments = (soak_length().as_secs() / SEGMENT.as_secs()).max(1) as usize;
    let mut soak = Soak::new().await;
    let script = wrk_script(soak.actors.path(), &soak.body);
    let first = recovered(&soak.url, &soak.body).await;
    eprintln!(
        "soak: serving at {}, first call answered after {first:?}; {segments} segments of {SEGMENT:?}",
        soak.listen
    );

    let mut rows: Vec<Row> = vec![];
    let mut lifetimes: Vec<Lifetime> = vec![];
    let started = Instant::now();
    for i in 0..segments {
        let fault = CYCLE[i % CYCLE.len()];
        let load = {
            let (url, script) = (soak.url.clone(), script.clone());
            std::thread::spawn(move || wrk(&url, &script, SEGMENT))
        };
        tokio::time::sleep(FAULT_AT).await;
        let fault_started = Instant::now();
        let note = soak.inject(fault).await;
        let fault_time = fault_started.elapsed();
        let recovery = recovered(&soak.url, &soak.body).await;
        let load = load.join().expect("the wrk thread");
        if let Some(pid) = soak.serving.pid() {
            let now = Sample::of(pid);
            match lifetimes.last_mut() {
                Some(l) if l.pid == pid => {
                    l.last = now;
                    l.segments += 1;
                }
                _ => lifetimes.push(Lifetime {
                    pid,
                    first: now.clone(),
                    last: now,
                    segments: 1,
                }),
            }
        }
        eprintln!(
            "soak: segment {i:>3} {:<16} 200 {:>7} 402 {:>6} 5xx {:>4} socket errors {:>6} p99 {:>6.1} ms; fault {fault_time:.1?}, recovered in {recovery:.1?} {note}",
            fault.name(),
            load.count(200),
            load.count(402),
            load.count(500) + load.count(503),
            load.socket_errors,
            load.p99_us as f64 / 1000.0,
        );
        rows.push(Row {
            fault,
            load,
            recovery,
        });
    }
    let elapsed = started.elapsed();
    let out = soak.serving.stop();
    assert_eq!(
        out.code,
        Some(0),
        "serve did not stop cleanly:\n{}",
        out.stderr
    );

    let (admitted, bought, kernel) = check_accounts(&mut soak).await;
    // Every recovery probe ended with exactly one 200, and so did the first call.
    let answered = rows.iter().map(|r| r.load.count(200)).sum::<u64>() + segments as u64 + 1;
    // Admitted but never counted as answered: the calls in flight at a
    // SIGKILL, and those in flight when a wrk run ends (wrk stops at its
    // deadline without waiting for them), at most CONNECTIONS each.
    let uncounted = (soak.kills + segments as u64) * CONNECTIONS;
    assert!(
        answered <= admitted && admitted <= answered + uncounted,
        "admitted {admitted} units for {answered} answered calls; at most {uncounted} may be \
         admitted unanswered ({} SIGKILL(s) and {segments} wrk run(s), {CONNECTIONS} \
         connections)",
        soak.kills
    );
    report(&rows, &lifetimes, elapsed, kernel);
    // What serve said about the faults: its distinct warnings and errors,
    // with how often each came (the text up to its first digit or colon
    // after the level, so retries of one failure count as one kind).
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for line in soak.logs.iter().flat_map(|l| l.lines()) {
        let Some(at) = line.find(" WARN ").or_else(|| line.find(" ERROR ")) else {
            continue;
        };
        let kind: String = line[at..].chars().take(110).collect();
        *kinds.entry(kind).or_default() += 1;
    }
    eprintln!("soak: serve's warnings and errors, by kind:");
    for (kind, n) in &kinds {
        eprintln!("  {n:>5} × {kind}");
    }
    eprintln!(
        "soak: {admitted} units admitted for {answered} answered calls, {bought} bought by {} \
         signer(s), {} SIGKILL(s)",
        soak.rotated.len() + 1,
        soak.kills
    );
    for l in lifetimes.iter().filter(|l| l.segments >= 3) {
        assert!(
            l.last.sockets <= l.first.sockets + SOCKET_SLACK,
            "runtime {}: open sockets grew from {} to {} over {} segments",
            l.pid,
            l.first.sockets,
            l.last.sockets,
            l.segments
        );
        assert!(
            l.last.fds <= l.first.fds + FD_SLACK,
            "runtime {}: open descriptors grew from {} to {} over {} segments; new: {:?}",
            l.pid,
            l.first.fds,
            l.last.fds,
            l.segments,
            l.last
                .others
                .iter()
                .filter(|o| !l.first.others.contains(o))
                .collect::<Vec<_>>()
        );
        assert!(
            l.last.rss_kib <= l.first.rss_kib + RSS_SLACK_KIB,
            "runtime {}: resident memory grew from {} KiB to {} KiB over {} segments",
            l.pid,
            l.first.rss_kib,
            l.last.rss_kib,
            l.segments
        );
    }
}

/// Checks every signer's accounts (see the module docs) and the escrow;
/// returns the units admitted and bought over all signers, and whether the
/// kernel counted.
async fn check_accounts(soak: &mut Soak) -> (u64, u64, bool) {
    let m = &mut soak.machine;
    m.rekey(&soak.actors.runtime);
    let pinned = m.status(&soak.sealed)["kernel_meter"]["pinned"] == true;
    let kernel = pinned || {
        sealbox_testkit::bpf::unavailable(
            "chaos_soak_keeps_exact_accounts",
            "the runtime's kernel meter pinned no counter",
        );
        false
    };
    let mut admitted = 0u64;
    let mut bought = 0u64;
    eprintln!("\nsoak: accounts per signer");
    eprintln!("| signer | bought (chain) | bought (journal) | admitted | kernel | unused |");
    eprintln!("|---|---|---|---|---|---|");
    for party in std::iter::once(&soak.actors.runtime).chain(&soak.rotated) {
        let who = party.address();
        m.rekey(party);
        m.settle(&[]).ok();
        let on_chain = m.bought_on(&soak.chain, soak.product).await;
        let usage = m.usage(soak.product);
        let kernel_units = m.status(&soak.sealed)["usage"]["kernel_units"]
            .as_u64()
            .unwrap_or(0);
        eprintln!(
            "| {who} | {on_chain} | {} | {} | {} | {} |",
            usage.bought_units,
            usage.runtime_units,
            if kernel {
                kernel_units.to_string()
            } else {
                "—".into()
            },
            on_chain.saturating_sub(usage.runtime_units),
        );
        if on_chain != usage.bought_units {
            dump_journal(&m.state_dir(), soak.chain.registry);
        }
        assert_eq!(
            on_chain, usage.bought_units,
            "signer {who}: the chain and the journal disagree on units bought"
        );
        assert!(
            usage.runtime_units <= on_chain,
            "signer {who}: admitted {} units beyond the {on_chain} bought",
            usage.runtime_units
        );
        assert!(
            on_chain - usage.runtime_units <= 2 * BLOCK,
            "signer {who}: {} units bought and never used, more than the prepaid tail of two \
             blocks",
            on_chain - usage.runtime_units
        );
        if kernel {
            assert!(
                kernel_units <= usage.runtime_units
                    && usage.runtime_units - kernel_units <= soak.kills,
                "signer {who}: kernel count {kernel_units} against the runtime's {} ({} \
                 SIGKILLs)",
                usage.runtime_units,
                soak.kills
            );
        }
        admitted += usage.runtime_units;
        bought += on_chain;
    }
    let revenue = soak.chain.revenue(soak.actors.vendor.address()).await;
    Chain::assert_paid(revenue, bought);
    assert_eq!(
        soak.chain
            .license_of(soak.product, soak.actors.customer.address())
            .await
            .balance,
        U256::from(soak.deposit - bought * PRICE_WEI),
        "the escrow did not pay exactly the units bought"
    );
    (admitted, bought, kernel)
}

/// The tables: outcomes per fault, rate and p99, runtime processes.
fn report(rows: &[Row], lifetimes: &[Lifetime], elapsed: Duration, kernel: bool) {
    eprintln!(
        "\nsoak: {} segments in {elapsed:.0?}, kernel meter {}",
        rows.len(),
        if kernel {
            "on"
        } else {
            "off (SEALBOX_SKIP_BPF=1)"
        }
    );
    eprintln!(
        "| fault | segments | 200 | 402 | 500 | 503 | other | socket errors | p99 ms (max) | recovery (max) |"
    );
    eprintln!("|---|---|---|---|---|---|---|---|---|---|");
    for fault in CYCLE {
        let of: Vec<&Row> = rows.iter().filter(|r| r.fault == fault).collect();
        if of.is_empty() {
            continue;
        }
        let sum = |f: &dyn Fn(&Load) -> u64| of.iter().map(|r| f(&r.load)).sum::<u64>();
        eprintln!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.1?} |",
            fault.name(),
            of.len(),
            sum(&|l| l.count(200)),
            sum(&|l| l.count(402)),
            sum(&|l| l.count(500)),
            sum(&|l| l.count(503)),
            sum(&|l| l.others()),
            sum(&|l| l.socket_errors),
            of.iter().map(|r| r.load.p99_us).max().unwrap_or(0) as f64 / 1000.0,
            of.iter().map(|r| r.recovery).max().unwrap_or_default(),
        );
    }
    let total: f64 = rows.iter().map(|r| r.load.seconds).sum();
    let ok: u64 = rows.iter().map(|r| r.load.count(200)).sum();
    let steady: Vec<&Row> = rows.iter().filter(|r| r.fault == Fault::Steady).collect();
    let steady_ok: u64 = steady.iter().map(|r| r.load.count(200)).sum();
    let steady_time: f64 = steady.iter().map(|r| r.load.seconds).sum();
    let steady_p99 = steady.iter().map(|r| r.load.p99_us).max().unwrap_or(0);
    eprintln!(
        "\nsoak: {:.0} calls/s answered 200 over the whole run; in steady segments {:.0}/s, p99 \
         {:.1} ms",
        ok as f64 / total,
        steady_ok as f64 / steady_time,
        steady_p99 as f64 / 1000.0,
    );
    eprintln!(
        "| runtime pid | segments | RSS KiB first → last | sockets first → last | other fds first → last |"
    );
    eprintln!("|---|---|---|---|---|");
    for l in lifetimes {
        eprintln!(
            "| {} | {} | {} → {} | {} → {} | {} → {} |",
            l.pid,
            l.segments,
            l.first.rss_kib,
            l.last.rss_kib,
            l.first.sockets,
            l.last.sockets,
            l.first.fds,
            l.last.fds
        );
    }
    for l in lifetimes {
        let (gone, new) = (
            l.first.others.iter().filter(|o| !l.last.others.contains(o)),
            l.last.others.iter().filter(|o| !l.first.others.contains(o)),
        );
        let (gone, new): (Vec<_>, Vec<_>) = (gone.collect(), new.collect());
        if !gone.is_empty() || !new.is_empty() {
            eprintln!(
                "soak: runtime {} descriptors closed {gone:?}, opened {new:?}",
                l.pid
            );
        }
    }
}

/// Prints every counter of the journal (for a failed check).
fn dump_journal(state_dir: &Path, registry: Address) {
    let path = state_dir.join(format!("journal-v2-{registry}.db"));
    let journal = sealbox_runtime::journal::Journal::open(&path).expect("open the journal");
    eprintln!(
        "journal {}: last deployment {:?}",
        path.display(),
        journal
            .last_deployment()
            .ok()
            .flatten()
            .map(|d| alloy::primitives::hex::encode(&d.id[..6]))
    );
    for key in journal.keys().expect("read the journal") {
        eprintln!(
            "  deployment {} buyer {} signer {} product {}: {:?}",
            alloy::primitives::hex::encode(&key.deployment[..6]),
            alloy::primitives::hex::encode(&key.buyer[..6]),
            Address::from(key.signer),
            alloy::primitives::hex::encode(&key.product[..6]),
            journal.usage(&key)
        );
    }
}
