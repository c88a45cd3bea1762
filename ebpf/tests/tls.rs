//! The TLS handshake meter on a real kernel with real sockets: exact counts
//! from concurrent client processes in the target cgroup, nothing from non-TLS
//! bytes or from outside the cgroup, one count per connection, counted ring
//! buffer drops, the connect allowance, server side hooks, pinned totals
//! across re-attach, the pinned links (counting and refusing go on after the
//! meter is dropped or its process SIGKILLed, a re-attach takes them over
//! without double counting, another target or side is refused,
//! `remove_pinned` detaches), and real `openssl s_client`/`s_server`
//! handshakes.
//!
//! Processes are put into a test's own cgroup (under the cgroup v2 mount) by
//! writing their pid into `cgroup.procs` between fork and exec. The client
//! and server processes are this test binary re-run as the ignored
//! `tls_helper` test, which does what `SEALBOX_TLS_HELPER` says (also: attach
//! a meter and wait to be killed); synthetic
//! TLS records over loopback stand in for real handshakes except in the
//! openssl test. Needs root and BPF; where there is none, SEALBOX_SKIP_BPF=1
//! skips (the testkit's BPF rule).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use sealbox_ebpf::{
    CgroupDir, MeterError, PinnedTls, Ports, ServerHook, Side, Tenancy, TlsConfig, TlsError,
    TlsEvent, TlsEvents, TlsMeter,
};
use sealbox_testkit::bpf::PinDir;

const HELPER_ENV: &str = "SEALBOX_TLS_HELPER";

// ---------------------------------------------------------------- TLS records

/// A syntactically valid TLS 1.2-style ClientHello record (47-byte body).
fn client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x03]; // legacy_version
    body.extend([0x5a; 32]); // random
    body.push(0); // session id length
    body.extend([0x00, 0x02, 0x13, 0x01]); // one cipher suite
    body.extend([0x01, 0x00]); // one compression method: null
    body.extend([0x00, 0x00]); // no extensions
    record(1, &body)
}

/// A ServerHello record.
fn server_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend([0xa5; 32]);
    body.push(0);
    body.extend([0x13, 0x01, 0x00, 0x00, 0x00]);
    record(2, &body)
}

fn record(handshake_type: u8, body: &[u8]) -> Vec<u8> {
    let hs_len = body.len() as u32;
    let rec_len = (body.len() + 4) as u16;
    let mut r = vec![0x16, 0x03, 0x01];
    r.extend(rec_len.to_be_bytes());
    r.push(handshake_type);
    r.extend(&hs_len.to_be_bytes()[1..]);
    r.extend(body);
    r
}

/// A fatal handshake_failure alert: what a server sends instead of a ServerHello.
const ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28];

/// Not TLS: plain HTTP, and an application-data record (type 0x17).
fn junk() -> Vec<u8> {
    let mut j = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    j.extend([0x17, 0x03, 0x03, 0x00, 0x30, 0x01]);
    j.extend([0u8; 0x2f]);
    j
}

// ---------------------------------------------------------------- helper mode

/// What a helper process did with its connects.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Outcome {
    ok: u32,
    eperm: u32,
    other: u32,
    slowest_refusal_us: u64,
}

impl Outcome {
    fn parse(line: &str) -> Outcome {
        let mut o = Outcome::default();
        for field in line.split_whitespace() {
            let (k, v) = field.split_once('=').expect("key=value");
            let v: u64 = v.parse().expect("a number");
            match k {
                "ok" => o.ok = v as u32,
                "eperm" => o.eperm = v as u32,
                "other" => o.other = v as u32,
                "slowest_refusal_us" => o.slowest_refusal_us = v,
                _ => panic!("unknown field {k}"),
            }
        }
        o
    }

    fn add(&mut self, other: Outcome) {
        self.ok += other.ok;
        self.eperm += other.eperm;
        self.other += other.other;
        self.slowest_refusal_us = self.slowest_refusal_us.max(other.slowest_refusal_us);
    }
}

/// Connects to `addr`, counting refusals; runs `talk` on a connection.
fn connect_and(addr: SocketAddr, outcome: &mut Outcome, talk: impl FnOnce(&mut TcpStream)) {
    let start = Instant::now();
    match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
        Ok(mut s) => {
            s.set_nodelay(true).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            talk(&mut s);
            outcome.ok += 1;
        }
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            outcome.eperm += 1;
            let us = start.elapsed().as_micros() as u64;
            outcome.slowest_refusal_us = outcome.slowest_refusal_us.max(us);
        }
        Err(_) => outcome.other += 1,
    }
}

/// Writes `bytes` and waits for the peer's answer (or its close).
fn say(s: &mut TcpStream, bytes: &[u8]) {
    s.write_all(bytes).unwrap();
    let mut buf = [0u8; 256];
    let _ = s.read(&mut buf);
}

/// `op addr n`: hello (n connections, each one ClientHello), mixed (n junk
/// connections and n hello connections), junk, twice (n connections, each
/// with two ClientHellos in separate segments), serve (accept n connections
/// on addr; reply ServerHello, or an alert to every odd one with `alerts`).
fn helper_run(spec: &str) {
    let f: Vec<&str> = spec.split(' ').collect();
    if f[0] == "meter" {
        return helper_meter(&f[1..]);
    }
    let addr: SocketAddr = f[1].parse().unwrap();
    let n: u32 = f[2].parse().unwrap();
    let mut out = Outcome::default();
    match f[0] {
        "hello" => (0..n).for_each(|_| connect_and(addr, &mut out, |s| say(s, &client_hello()))),
        "junk" => (0..n).for_each(|_| connect_and(addr, &mut out, |s| say(s, &junk()))),
        "mixed" => (0..n).for_each(|_| {
            connect_and(addr, &mut out, |s| say(s, &junk()));
            connect_and(addr, &mut out, |s| say(s, &client_hello()));
        }),
        "twice" => (0..n).for_each(|_| {
            connect_and(addr, &mut out, |s| {
                say(s, &client_hello());
                say(s, &client_hello());
            })
        }),
        "serve" => {
            let alerts = f.get(3) == Some(&"alerts");
            let listener = TcpListener::bind(addr).unwrap();
            println!("listening");
            std::io::stdout().flush().unwrap();
            for i in 0..n {
                let (mut s, _) = listener.accept().unwrap();
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf);
                if alerts && i % 2 == 1 {
                    s.write_all(&ALERT).unwrap();
                } else {
                    s.write_all(&server_hello()).unwrap();
                }
                out.ok += 1;
            }
        }
        other => panic!("unknown helper op {other}"),
    }
    println!(
        "RESULT ok={} eperm={} other={} slowest_refusal_us={}",
        out.ok, out.eperm, out.other, out.slowest_refusal_us
    );
}

/// `meter PIN_DIR CGROUP PORT ALLOWANCE`: attaches a client-side meter to
/// CGROUP for PORT, grants ALLOWANCE, says `attached`, then waits to be killed.
fn helper_meter(f: &[&str]) {
    let cfg = TlsConfig {
        pin_dir: PathBuf::from(f[0]),
        ports: Ports::Only(vec![f[2].parse().unwrap()]),
        ..TlsConfig::new(f[1], Side::Client)
    };
    let meter = TlsMeter::attach(&cfg).unwrap();
    meter.set_allowance(f[3].parse().unwrap()).unwrap();
    println!("attached");
    std::io::stdout().flush().unwrap();
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Not a test: the body of a helper process (see the module docs).
#[test]
#[ignore = "run by the other tests as a helper process"]
fn tls_helper() {
    if let Ok(spec) = std::env::var(HELPER_ENV) {
        helper_run(&spec);
    }
}

/// A command whose process moves itself into `cgroup` between fork and exec.
fn in_cgroup(mut cmd: Command, cgroup: &Path) -> Command {
    let procs = std::fs::OpenOptions::new()
        .write(true)
        .open(cgroup.join("cgroup.procs"))
        .unwrap();
    // SAFETY: the closure only calls write(2) on an fd opened before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let fd = procs.as_raw_fd();
            if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

fn helper_command(spec: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "tls_helper",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(HELPER_ENV, spec)
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    cmd
}

/// Starts a helper in `cgroup` (or outside any test cgroup when `None`).
fn spawn_helper(spec: &str, cgroup: Option<&Path>) -> Child {
    let cmd = helper_command(spec);
    let mut cmd = match cgroup {
        Some(c) => in_cgroup(cmd, c),
        None => cmd,
    };
    cmd.spawn().expect("spawning a helper")
}

/// Waits for a helper and returns its RESULT line.
fn finish(child: Child) -> Outcome {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "helper failed: {:?}", out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        // libtest prints "test tls_helper ... " before the helper's own output.
        .find_map(|l| l.find("RESULT ").map(|at| &l[at + "RESULT ".len()..]))
        .unwrap_or_else(|| panic!("no RESULT from helper: {text}"));
    Outcome::parse(line)
}

/// Runs helpers concurrently, all with `spec`, and sums their outcomes.
fn run_concurrently(spec: &str, processes: usize, cgroup: Option<&Path>) -> Outcome {
    let children: Vec<Child> = (0..processes).map(|_| spawn_helper(spec, cgroup)).collect();
    let mut total = Outcome::default();
    for c in children {
        total.add(finish(c));
    }
    total
}

// ---------------------------------------------------------------- fixtures

/// A TCP server outside every test cgroup that answers each read with a
/// ServerHello record, on its own thread, until the process ends.
fn server() -> SocketAddr {
    server_on(Ipv4Addr::LOCALHOST.into())
}

fn server_on(ip: std::net::IpAddr) -> SocketAddr {
    let listener = TcpListener::bind(SocketAddr::new(ip, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&server_hello()).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A cgroup of the test's own, removed on drop.
fn test_cgroup() -> CgroupDir {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "sealbox-test-tls-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    CgroupDir::create_under_root(&name)
        .unwrap_or_else(|e| sealbox_testkit::bpf::missing(format!("no cgroup v2 here: {e}")))
}

fn config(cgroup: &CgroupDir, pins: &PinDir, side: Side, ports: &[u16]) -> TlsConfig {
    TlsConfig {
        pin_dir: pins.path.clone(),
        ports: Ports::Only(ports.to_vec()),
        ..TlsConfig::new(cgroup.path(), side)
    }
}

/// Attaches or fails saying BPF is unavailable.
#[track_caller]
fn attach(config: &TlsConfig) -> TlsMeter {
    TlsMeter::attach(config).unwrap_or_else(|e| {
        sealbox_testkit::bpf::missing(format!("the TLS meter cannot attach: {e}"))
    })
}

/// Attaches with an allowance no test exhausts: for tests about counting.
#[track_caller]
fn metering(config: &TlsConfig) -> TlsMeter {
    let meter = attach(config);
    meter.set_allowance(1 << 20).unwrap();
    meter
}

/// True (after saying so) when the test must skip under the testkit's BPF rule.
fn skip_bpf(test: &str) -> bool {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    sealbox_testkit::bpf::skip_if_unavailable(test, || {
        PROBE
            .get_or_init(|| {
                let cgroup = CgroupDir::create_under_root(&format!(
                    "sealbox-test-tls-probe-{}",
                    std::process::id()
                ))
                .map_err(|e| e.to_string())?;
                let pins = PinDir::new();
                TlsMeter::attach(&config(&cgroup, &pins, Side::Client, &[443]))
                    .map(drop)
                    .map_err(|e| format!("the TLS meter cannot attach: {e}"))
            })
            .clone()
    })
}

/// Everything waiting in the ring buffer.
fn read_all(events: &mut TlsEvents) -> Vec<TlsEvent> {
    let mut all = Vec::new();
    loop {
        let batch = events.read_batch(1000, Duration::from_millis(50)).unwrap();
        if batch.is_empty() {
            return all;
        }
        all.extend(batch);
    }
}

fn spec(op: &str, addr: SocketAddr, n: u32) -> String {
    format!("{op} {addr} {n}")
}

/// Reads `child`'s stdout until a line contains `word`.
fn wait_for_line(child: &mut Child, word: &str) {
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains(word) {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the helper exited before saying {word}"
        );
    }
}

/// `n` ClientHello connections from a helper in `cgroup`: (connected, EPERM).
fn hellos(cgroup: &CgroupDir, addr: SocketAddr, n: u32) -> (u32, u32) {
    let out = run_concurrently(&spec("hello", addr, n), 1, Some(cgroup.path()));
    assert_eq!(out.other, 0, "{out:?}");
    (out.ok, out.eperm)
}

/// The TLS programs attached to `cgroup` (from `bpftool cgroup show`), or
/// `None` without bpftool.
fn attached_programs(cgroup: &CgroupDir) -> Option<Vec<String>> {
    let out = Command::new("bpftool")
        .args(["cgroup", "show"])
        .arg(cgroup.path())
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with("tls_"))
        .map(str::to_string)
        .collect();
    names.sort();
    Some(names)
}

/// The sequence numbers of every event waiting in the pinned ring buffer.
fn pinned_seqs(pins: &PinDir) -> Vec<u64> {
    let mut seqs: Vec<u64> = read_all(&mut TlsEvents::open(&pins.path).unwrap())
        .iter()
        .map(|e| e.seq)
        .collect();
    seqs.sort_unstable();
    seqs
}

// ---------------------------------------------------------------- tests

#[test]
fn tls_meter_and_reader_are_send() {
    fn assert_send<T: Send>() {}
    assert_send::<TlsMeter>();
    assert_send::<TlsEvents>();
}

#[test]
fn counts_exactly_k_handshakes_from_concurrent_clients_and_nothing_else() {
    if skip_bpf("counts_exactly_k_handshakes_from_concurrent_clients_and_nothing_else") {
        return;
    }
    let cgroup = test_cgroup();
    let pins = PinDir::new();
    let addr = server();
    let mut meter = metering(&config(&cgroup, &pins, Side::Client, &[addr.port()]));
    let mut events = meter.take_events().unwrap();
    assert!(meter.take_events().is_none(), "one reader per meter");

    // 4 processes in the cgroup, each 15 junk connections and 15 handshakes.
    let (processes, each) = (4, 15);
    let inside = run_concurrently(&spec("mixed", addr, each), processes, Some(cgroup.path()));
    assert_eq!(inside.ok, 2 * processes as u32 * each, "{inside:?}");
    // The same traffic from outside the cgroup: this process and a helper.
    for _ in 0..5 {
        let mut s = TcpStream::connect(addr).unwrap();
        say(&mut s, &client_hello());
    }
    let outside = run_concurrently(&spec("hello", addr, 10), 1, None);
    assert_eq!(outside.ok, 10);

    let k = u64::from(processes as u32 * each);
    let tenant = meter.target_id();
    assert_eq!(meter.total(tenant).unwrap(), k, "exactly K counted");
    assert_eq!(
        meter.totals().unwrap().into_iter().collect::<Vec<_>>(),
        vec![(tenant, k)]
    );
    assert_eq!(meter.dropped().unwrap(), 0);
    let stats = meter.stats().unwrap();
    assert_eq!((stats.uncounted, stats.undeduplicated), (0, 0), "{stats:?}");

    let got = read_all(&mut events);
    let mut seqs: Vec<u64> = got.iter().map(|e| e.seq).collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=k).collect::<Vec<_>>(),
        "each sequence number once"
    );
    for e in &got {
        assert_eq!(e.tenant, tenant);
        assert_eq!(e.side, Side::Client);
        assert_eq!((e.handshake_type, e.ingress), (1, false));
        assert_eq!(e.remote, addr);
        assert_eq!(e.local.ip(), addr.ip());
        assert_ne!(e.cookie, 0);
    }
    let cookies: std::collections::HashSet<u64> = got.iter().map(|e| e.cookie).collect();
    assert_eq!(cookies.len() as u64, k, "one event per connection");
    assert_eq!(events.malformed(), 0);
}

#[test]
fn a_second_client_hello_on_one_connection_counts_once() {
    if skip_bpf("a_second_client_hello_on_one_connection_counts_once") {
        return;
    }
    let cgroup = test_cgroup();
    let pins = PinDir::new();
    let addr = server();
    let meter = metering(&config(&cgroup, &pins, Side::Client, &[addr.port()]));
    // Each connection sends the record twice, in two segments that both start
    // with it (the second after the server's answer), as a retransmission or a
    // ClientHello after a HelloRetryRequest would.
    let out = run_concurrently(&spec("twice", addr, 6), 1, Some(cgroup.path()));
    assert_eq!(out.ok, 6);
    assert_eq!(meter.total(meter.target_id()).unwrap(), 6);
}

#[test]
fn ports_outside_the_metered_set_do_not_count() {
    if skip_bpf("ports_outside_the_metered_set_do_not_count") {
        return;
    }
    let cgroup = test_cgroup();
    let pins = PinDir::new();
    let (metered, other) = (server(), server());
    let meter = metering(&config(&cgroup, &pins, Side::Client, &[metered.port()]));
    run_concurrently(&spec("hello", other, 4), 1, Some(cgroup.path()));
    run_concurrently(&spec("hello", metered, 3), 1, Some(cgroup.path()));
    assert_eq!(meter.total(meter.target_id()).unwrap(), 3);
}

#[test]
fn ipv6_handshakes_count() {
    if skip_bpf("ipv6_handshakes_count") {
        return;
    }
    let cgroup = test_cgroup();
    let pins = PinDir::new();
    let addr = server_on(std::net::Ipv6Addr::LOCALHOST.into());
    let mut meter = metering(&config(&cgroup, &pins, Side::Client, &[addr.port()]));
    let out = run_concurrently(&spec("hello", addr, 4), 1, Some(cgroup.path()));
    assert_eq!(out.ok, 4);
    assert_eq!(meter.total(meter.target_id()).unwrap(), 4);
    let got = read_all(&mut meter.take_events().unwrap());
    assert_eq!(got.len(), 4);
    assert!(got.iter().all(|e| e.remote == addr), "{got:?}");
}

#[test]
fn per_cgroup_tenancy_bills_each_child_cgroup() {
    if skip_bpf("per_cgroup_tenancy_bills_each_child_cgroup") {
        return;
    }
    let cgroup = test_cgroup();
    let a = CgroupDir::create(cgroup.path().join("a")).unwrap();
    let b = CgroupDir::create(cgroup.path().join("b")).unwrap();
    let pins = PinDir::new();
    let addr = server();
    let meter = metering(&TlsConfig {
        tenancy: Tenancy::PerCgroup,
        ..config(&cgroup, &pins, Side::Client, &[addr.port()])
    });
    run_concurrently(&spec("hello", addr, 2), 1, Some(a.path()));
    run_concurrently(&spec("hello", addr, 3), 1, Some(b.path()));
    let totals = meter.totals().unwrap();
    let id = |p: &Path| sealbox_ebpf::cgroup_id(p).unwrap();
    assert_eq!(totals.get(&id(a.path())), Some(&2), "{totals:?}");
    assert_eq!(totals.get(&id(b.path())), Some(&3), "{totals:?}");
    assert_eq!(totals.len(), 2);
    drop(meter);
    drop((a, b));
}

#[test]
fn a_tiny_ring_buffer_overflows_and_counts_what_it_dropped() {
    if skip_bpf("a_tiny_ring_buffer_overflows_and_counts_what_it_dropped") {
        return;
    }
    let cgroup = test_cgroup();
    let pins = PinDir::new();
    let addr = server();
    let mut meter = metering(&TlsConfig {
        ring_bytes: 4096, // 51 events of 72 bytes + 8-byte headers
        ..config(&cgroup, &pins, Side::Client, &[addr.port()])
    });
    let k = 120u64;
    run_concurrently(&spec("hello", addr, k as u32), 1, Some(cgroup.path()));
    let total = meter.total(meter.target_id()).unwrap();
    assert_eq!(total, k);
    let delivered = read_all(&mut meter.take_events().unwrap());
    let dropped = meter.dropped().unwrap();
    assert!(dropped > 0, "a 4 KiB ring buffer cannot hold {k} events");
    assert_eq!(
        dropped + delivered.len() as u64,
        total,
        "dropped + delivered == total"
    );
    // The consumer's view: the last seq it saw, and what it must bill without events.
    let last = delivered.iter().map(|e| e.seq).max().unwrap();
    assert!(last <= total);
    let distinct: std::collections::HashSet<u64> = delivered.iter().map(|e| e.seq).collect();
    assert_eq!(distinct.len(), delivered.len());
}

#[test]
fn allowance_admits_exactly_n_concurrent_connects_and_refuses_the_next_at_once() {
    if skip_bpf("allowance_admits_exactly_n_concurrent_connects_and_refuses_the_next_at_once") {
        return;
    }
    let cgroup = test_cgroup();
    let pins = PinDir::new();
    let (addr, unmetered) = (server(), server());
    let mut meter = attach(&config(&cgroup, &pins, Side::Client, &[addr.port()]));
    assert!(meter.enforcing().unwrap(), "enforcement is the default");
    assert_eq!(meter.allowance().unwrap(), 0, "nothing granted yet");

    let n = 5;
    meter.set_allowance(n).unwrap();
    assert_eq!(meter.allowance().unwrap(), n);
    // 4 processes × 3 connects at once: exactly n get through.
    let out = run_concurrently(&spec("hello", addr, 3), 4, Some(cgroup.path()));
    assert_eq!(
        (out.ok, out.eperm, out.other),
        (n as u32, 12 - n as u32, 0),
        "{out:?}"
    );
    assert!(out.slowest_refusal_us < 100_000, "refused at once: {out:?}");
    assert_eq!(meter.total(meter.target_id()).unwrap(), n);
    assert_eq!(meter.allowance().unwrap(), 0);
    assert_eq!(meter.refused().unwrap(), 12 - n);

    // The next one fails at once with EPERM …
    let next = run_concurrently(&spec("hello", addr, 1), 1, Some(cgroup.path()));
    assert_eq!((next.ok, next.eperm), (0, 1));
    assert!(next.slowest_refusal_us < 100_000, "{next:?}");
    // … but only for the metered ports, and only inside the cgroup.
    let other = run_concurrently(&spec("hello", unmetered, 2), 1, Some(cgroup.path()));
    assert_eq!((other.ok, other.eperm), (2, 0));
    let outside = run_concurrently(&spec("hello", addr, 2), 1, None);
    assert_eq!((outside.ok, outside.eperm), (2, 0));

    // Enforcement off: through, and counted as over the allowance.
    meter.set_enforcement(false).unwrap();
    let billed_later = run_concurrently(&spec("hello", addr, 2), 1, Some(cgroup.path()));
    assert_eq!((billed_later.ok, billed_later.eperm), (2, 0));
    assert_eq!(meter.stats().unwrap().over_allowance, 2);
    meter.set_enforcement(true).unwrap();

    // A top-up of 1 lets exactly one more through.
    meter.add_allowance(1).unwrap();
    let topped = run_concurrently(&spec("hello", addr, 2), 1, Some(cgroup.path()));
    assert_eq!((topped.ok, topped.eperm), (1, 1));
    assert_eq!(meter.refused().unwrap(), 12 - n + 2);
    assert_eq!(meter.total(meter.target_id()).unwrap(), n + 2 + 1);
    let quota = meter.quota().unwrap();
    assert_eq!(
        (quota.granted, quota.admitted),
        (n + 2 + 1, n + 2 + 1),
        "{quota:?}"
    );
}

#[test]
fn server_side_counts_served_handshakes_on_egress_and_attempts_on_ingress() {
    if skip_bpf("server_side_counts_served_handshakes_on_egress_and_attempts_on_ingress") {
        return;
    }
    let cgroup = test_cgroup();
    let (pins_egress, pins_ingress) = (PinDir::new(), PinDir::new());
    let port = free_port();
    let egress = attach(&config(&cgroup, &pins_egress, Side::Server, &[port]));
    let mut ingress = attach(&TlsConfig {
        server_hook: ServerHook::IngressClientHello,
        ..config(&cgroup, &pins_ingress, Side::Server, &[port])
    });
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    // The server (in the cgroup) answers every other ClientHello with an alert.
    let k = 6;
    let mut child = spawn_helper(&format!("serve {addr} {k} alerts"), Some(cgroup.path()));
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("listening") {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the server helper exited"
        );
    }
    for _ in 0..k {
        let mut s = TcpStream::connect(addr).unwrap();
        say(&mut s, &client_hello());
    }
    let status = child.wait().unwrap();
    assert!(status.success());

    let tenant = egress.target_id();
    assert_eq!(
        egress.total(tenant).unwrap(),
        k / 2,
        "ServerHellos sent: served handshakes"
    );
    assert_eq!(
        ingress.total(tenant).unwrap(),
        k,
        "ClientHellos received: attempts"
    );
    assert_eq!(
        egress.refused().unwrap(),
        0,
        "the server side refuses nothing"
    );
    let got = read_all(&mut ingress.take_events().unwrap());
    assert_eq!(got.len() as u64, k);
    for e in &got {
        assert_eq!(
            (e.side, e.handshake_type, e.ingress),
            (Side::Server, 1, true)
        );
        assert_eq!(e.local, addr);
    }
}

#[test]
fn pinned_totals_survive_detach_and_reattach() {
    if skip_bpf("pinned_totals_survive_detach_and_reattach") {
        return;
    }
    let cgroup = test_cgroup();
    let pins = PinDir::new();
    let addr = server();
    let cfg = config(&cgroup, &pins, Side::Client, &[addr.port()]);
    let meter = attach(&cfg);
    meter.set_allowance(100).unwrap();
    let (tenant, epoch) = (meter.target_id(), meter.epoch());
    assert!(
        matches!(TlsMeter::attach(&cfg), Err(TlsError::Busy { .. })),
        "one meter per pin dir"
    );
    assert!(!meter.reused_links(), "the first attach attaches");
    run_concurrently(&spec("hello", addr, 3), 1, Some(cgroup.path()));
    assert_eq!(meter.total(tenant).unwrap(), 3);
    drop(meter);

    // No meter: the pinned programs still count (and take from the allowance).
    let out = run_concurrently(&spec("hello", addr, 2), 1, Some(cgroup.path()));
    assert_eq!((out.ok, out.eperm), (2, 0));
    let pinned = PinnedTls::open(&pins.path).unwrap();
    assert_eq!(pinned.total(tenant).unwrap(), 5);
    assert_eq!(pinned.quota().unwrap().remaining(), 95);
    assert_eq!(pinned.epoch(), epoch);

    // A ring buffer of another size is refused, not silently replaced.
    let resized = TlsMeter::attach(&TlsConfig {
        ring_bytes: cfg.ring_bytes * 2,
        ..cfg.clone()
    });
    assert!(
        matches!(resized, Err(TlsError::RingSize { .. })),
        "{resized:?}"
    );

    let mut meter = attach(&cfg);
    assert!(meter.reused_links(), "took the pinned links over");
    assert_eq!(meter.epoch(), epoch);
    assert_eq!(meter.total(tenant).unwrap(), 5);
    assert_eq!(meter.allowance().unwrap(), 95);
    run_concurrently(&spec("hello", addr, 2), 1, Some(cgroup.path()));
    assert_eq!(meter.total(tenant).unwrap(), 7);
    // The events of the first attach and of the time without a meter were
    // never read: the pinned ring buffer kept them.
    let seqs: Vec<u64> = read_all(&mut meter.take_events().unwrap())
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6, 7]);
    meter.detach_and_unpin().unwrap();
}

#[test]
fn counting_and_refusing_go_on_after_the_meter_is_dropped() {
    if skip_bpf("counting_and_refusing_go_on_after_the_meter_is_dropped") {
        return;
    }
    let cgroup = test_cgroup();
    let pins = PinDir::new();
    let addr = server();
    let meter = attach(&config(&cgroup, &pins, Side::Client, &[addr.port()]));
    meter.set_allowance(4).unwrap();
    let tenant = meter.target_id();
    drop(meter);

    // No meter anywhere: 4 through, then EPERM, all counted.
    assert_eq!(hellos(&cgroup, addr, 6), (4, 2));
    let pinned = PinnedTls::open(&pins.path).unwrap();
    assert_eq!(pinned.total(tenant).unwrap(), 4);
    let stats = pinned.stats().unwrap();
    assert_eq!((stats.refused, stats.dropped), (2, 0), "{stats:?}");
    let quota = pinned.quota().unwrap();
    assert_eq!((quota.granted, quota.admitted), (4, 4));
    assert_eq!(pinned_seqs(&pins), vec![1, 2, 3, 4], "events kept coming");
    // Still nothing outside the cgroup.
    let outside = run_concurrently(&spec("hello", addr, 2), 1, None);
    assert_eq!((outside.ok, outside.eperm), (2, 0));
    assert_eq!(pinned.total(tenant).unwrap(), 4);
    TlsMeter::remove_pinned(&pins.path).unwrap();
}

#[test]
fn enforcement_switched_off_stays_off_after_the_meter_is_dropped() {
    if skip_bpf("enforcement_switched_off_stays_off_after_the_meter_is_dropped") {
        return;
    }
    let cgroup = test_cgroup();
    let pins = PinDir::new();
    let addr = server();
    let mut meter = attach(&config(&cgroup, &pins, Side::Client, &[addr.port()]));
    meter.set_allowance(1).unwrap();
    meter.set_enforcement(false).unwrap();
    let tenant = meter.target_id();
    drop(meter);

    // Overage: through, counted, and over the allowance, to bill afterwards.
    assert_eq!(hellos(&cgroup, addr, 3), (3, 0));
    let pinned = PinnedTls::open(&pins.path).unwrap();
    assert_eq!(pinned.total(tenant).unwrap(), 3);
    let stats = pinned.stats().unwrap();
    assert_eq!((stats.over_allowance, stats.refused), (2, 0), "{stats:?}");
    // A meter attaching again writes its own switch (TlsConfig::enforce, on).
    let meter = attach(&config(&cgroup, &pins, Side::Client, &[addr.port()]));
    assert!(meter.reused_links());
    assert!(meter.enforcing().unwrap());
    drop(meter);
    assert_eq!(hellos(&cgroup, addr, 1), (0, 1));
    TlsMeter::remove_pinned(&pins.path).unwrap();
}

#[test]
fn counting_and_refusing_go_on_after_the_metering_process_is_sigkilled() {
    if skip_bpf("counting_and_refusing_go_on_after_the_metering_process_is_sigkilled") {
        return;
    }
    let cgroup = test_cgroup();
    let pins = PinDir::new();
    let addr = server();
    let tenant = sealbox_ebpf::cgroup_id(cgroup.path()).unwrap();
    // A helper process (outside the cgroup) attaches, grants 3 and is killed.
    let mut child = spawn_helper(
        &format!(
            "meter {} {} {} 3",
            pins.path.display(),
            cgroup.path().display(),
            addr.port()
        ),
        None,
    );
    wait_for_line(&mut child, "attached");
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );

    assert_eq!(hellos(&cgroup, addr, 5), (3, 2));
    let pinned = PinnedTls::open(&pins.path).unwrap();
    assert_eq!(pinned.total(tenant).unwrap(), 3);
    assert_eq!(pinned.stats().unwrap().refused, 2);
    assert_eq!(pinned_seqs(&pins), vec![1, 2, 3]);

    // A restarted meter takes the links over and counts on exactly.
    let meter = attach(&config(&cgroup, &pins, Side::Client, &[addr.port()]));
    assert!(meter.reused_links());
    assert_eq!(meter.total(tenant).unwrap(), 3);
    meter.add_allowance(2).unwrap();
    assert_eq!(hellos(&cgroup, addr, 3), (2, 1));
    assert_eq!(meter.total(tenant).unwrap(), 5);
    assert_eq!(meter.refused().unwrap(), 3);
    meter.detach_and_unpin().unwrap();
}

#[test]
fn reattaching_reuses_the_pinned_links_and_counts_exactly() {
    if skip_bpf("reattaching_reuses_the_pinned_links_and_counts_exactly") {
        return;
    }
    let cgroup = test_cgroup();
    let pins = PinDir::new();
    let addr = server();
    let cfg = config(&cgroup, &pins, Side::Client, &[addr.port()]);
    let mut tenant = 0;
    for round in 0..3u64 {
        let meter = metering(&cfg);
        tenant = meter.target_id();
        assert_eq!(meter.reused_links(), round > 0, "round {round}");
        if let Some(names) = attached_programs(&cgroup) {
            assert_eq!(
                names,
                ["tls_connect4", "tls_connect6", "tls_egress"],
                "each program attached once, round {round}"
            );
        }
        // 3 with the meter, 2 without: 5 a round, each counted once.
        assert_eq!(hellos(&cgroup, addr, 3), (3, 0));
        assert_eq!(meter.total(tenant).unwrap(), 5 * round + 3);
        drop(meter);
        assert_eq!(hellos(&cgroup, addr, 2), (2, 0));
    }
    let pinned = PinnedTls::open(&pins.path).unwrap();
    assert_eq!(pinned.total(tenant).unwrap(), 15, "no double counting");
    assert_eq!(pinned.quota().unwrap().admitted, 15, "one unit per connect");
    assert_eq!(pinned_seqs(&pins), (1..=15).collect::<Vec<_>>());
    TlsMeter::remove_pinned(&pins.path).unwrap();
}

#[test]
fn a_pinned_meter_refuses_another_target_or_side() {
    if skip_bpf("a_pinned_meter_refuses_another_target_or_side") {
        return;
    }
    let (a, b) = (test_cgroup(), test_cgroup());
    let pins = PinDir::new();
    let addr = server();
    let meter = attach(&config(&a, &pins, Side::Client, &[addr.port()]));
    meter.set_allowance(2).unwrap();
    let tenant = meter.target_id();
    drop(meter);

    // Another target, another side, another server hook: refused, and
    // nothing of theirs written (their enforcement off, their ports).
    let other_port = free_port();
    let refused = [
        config(&b, &pins, Side::Client, &[other_port]),
        config(&a, &pins, Side::Server, &[other_port]),
        TlsConfig {
            server_hook: ServerHook::IngressClientHello,
            ..config(&a, &pins, Side::Server, &[other_port])
        },
    ];
    for cfg in refused {
        let cfg = TlsConfig {
            enforce: false,
            ..cfg
        };
        match TlsMeter::attach(&cfg) {
            Err(e @ TlsError::PinnedElsewhere { .. }) => {
                let text = e.to_string();
                assert!(text.contains("remove_pinned"), "{text}");
                assert!(text.contains(&tenant.to_string()), "{text}");
            }
            other => panic!("expected PinnedElsewhere for {cfg:?}, got {other:?}"),
        }
    }
    // The pinned meter is as it was: enforcing, its port, counting a only.
    assert_eq!(hellos(&a, addr, 3), (2, 1));
    assert_eq!(hellos(&b, addr, 2), (2, 0));
    let pinned = PinnedTls::open(&pins.path).unwrap();
    assert_eq!(
        pinned.totals().unwrap().into_iter().collect::<Vec<_>>(),
        vec![(tenant, 2)]
    );
    // The same target and side is taken over.
    let meter = attach(&config(&a, &pins, Side::Client, &[addr.port()]));
    assert!(meter.reused_links());
    meter.detach_and_unpin().unwrap();
    // Once removed, the pin directory is free for another target.
    let meter = attach(&config(&b, &pins, Side::Client, &[addr.port()]));
    assert!(!meter.reused_links());
    meter.detach_and_unpin().unwrap();
}

#[test]
fn remove_pinned_detaches_and_removes_every_pin() {
    if skip_bpf("remove_pinned_detaches_and_removes_every_pin") {
        return;
    }
    let cgroup = test_cgroup();
    let pins = PinDir::new();
    let addr = server();
    let cfg = config(&cgroup, &pins, Side::Client, &[addr.port()]);
    let meter = attach(&cfg);
    let (tenant, epoch) = (meter.target_id(), meter.epoch());
    // Not while a meter holds the directory.
    assert!(matches!(
        TlsMeter::remove_pinned(&pins.path),
        Err(TlsError::Busy { .. })
    ));
    drop(meter);
    assert_eq!(hellos(&cgroup, addr, 1), (0, 1), "enforced without a meter");
    let kept = PinnedTls::open(&pins.path).unwrap(); // holds the maps open

    TlsMeter::remove_pinned(&pins.path).unwrap();
    assert!(!pins.path.exists(), "the pin directory is gone");
    assert_eq!(
        attached_programs(&cgroup).unwrap_or_default(),
        Vec::<String>::new()
    );
    // Detached: nothing refused, nothing counted.
    assert_eq!(hellos(&cgroup, addr, 3), (3, 0));
    assert_eq!(kept.total(tenant).unwrap(), 0);
    assert_eq!(kept.stats().unwrap().refused, 1);
    assert!(matches!(
        PinnedTls::open(&pins.path),
        Err(TlsError::Pins(MeterError::NotPinned { .. }))
    ));
    TlsMeter::remove_pinned(&pins.path).unwrap(); // nothing left: fine

    // detach_and_unpin does the same for an attached meter; a new attach
    // started from zero (a new epoch).
    let meter = metering(&cfg);
    assert!(!meter.reused_links());
    assert_ne!(meter.epoch(), epoch);
    assert_eq!(hellos(&cgroup, addr, 2), (2, 0));
    assert_eq!(meter.total(tenant).unwrap(), 2);
    meter.detach_and_unpin().unwrap();
    assert!(!pins.path.exists());
    assert_eq!(hellos(&cgroup, addr, 2), (2, 0));
    assert_eq!(kept.total(tenant).unwrap(), 0);
}

#[test]
fn links_of_a_removed_cgroup_are_replaced_not_refused() {
    if skip_bpf("links_of_a_removed_cgroup_are_replaced_not_refused") {
        return;
    }
    let pins = PinDir::new();
    let addr = server();
    let gone = test_cgroup();
    drop(attach(&config(&gone, &pins, Side::Client, &[addr.port()])));
    gone.remove().unwrap();
    // The kernel releases the removed cgroup's programs asynchronously:
    // until it has, the links still name it.
    let next = test_cgroup();
    let cfg = config(&next, &pins, Side::Client, &[addr.port()]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let meter = loop {
        match TlsMeter::attach(&cfg) {
            // `Busy` too: a child another test forks at this moment holds a copy of
            // the dropped meter's lock until it execs (the descriptor is close-on-exec).
            Err(TlsError::PinnedElsewhere { .. } | TlsError::Busy { .. })
                if Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            other => break other.unwrap(),
        }
    };
    assert!(!meter.reused_links());
    meter.set_allowance(1).unwrap();
    assert_eq!(hellos(&next, addr, 2), (1, 1));
    assert_eq!(meter.total(meter.target_id()).unwrap(), 1);
    meter.detach_and_unpin().unwrap();
}

/// `tls_layout` pinned in `pins`, as an array.
fn layout_array(pins: &PinDir) -> aya::maps::Array<aya::maps::MapData, u64> {
    let data = aya::maps::MapData::from_pin(pins.path.join("tls_layout")).unwrap();
    aya::maps::Map::from_map_data(data)
        .unwrap()
        .try_into()
        .unwrap()
}

#[test]
fn a_layout_v1_directory_is_taken_over_with_its_totals() {
    if skip_bpf("a_layout_v1_directory_is_taken_over_with_its_totals") {
        return;
    }
    let cgroup = test_cgroup();
    let pins = PinDir::new();
    let addr = server();
    let cfg = config(&cgroup, &pins, Side::Client, &[addr.port()]);
    // What a v1 build leaves: the same maps but tls_config and tls_ports, no
    // links, marker v1. Made by hand from a v2 directory.
    let meter = metering(&cfg);
    let epoch_v1 = meter.epoch();
    assert_eq!(hellos(&cgroup, addr, 2), (2, 0));
    drop(meter);
    for link in ["tls_egress_link", "tls_connect4_link", "tls_connect6_link"] {
        std::fs::remove_file(pins.path.join(link)).unwrap();
    }
    for map in ["tls_config", "tls_ports"] {
        std::fs::remove_file(pins.path.join(map)).unwrap();
    }
    let v1 = 0x5342_5854_0000_0001u64;
    layout_array(&pins).set(0, v1, 0).unwrap();
    // Removing a link pin detaches a moment later (the kernel's work queue).
    let deadline = Instant::now() + Duration::from_secs(10);
    while attached_programs(&cgroup).is_some_and(|p| !p.is_empty()) {
        assert!(
            Instant::now() < deadline,
            "the unpinned links stayed attached"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let meter = attach(&cfg);
    assert!(!meter.reused_links());
    assert_eq!(meter.epoch(), epoch_v1, "the same maps, not new ones");
    assert_eq!(meter.total(meter.target_id()).unwrap(), 2);
    assert_eq!(
        layout_array(&pins).get(&0, 0).unwrap(),
        0x5342_5854_0000_0000 | u64::from(sealbox_ebpf::TLS_LAYOUT_VERSION),
        "re-stamped with this version"
    );
    assert_eq!(sealbox_ebpf::TLS_LAYOUT_VERSION, 2);
    meter.set_allowance(1).unwrap();
    assert_eq!(hellos(&cgroup, addr, 2), (1, 1));
    assert_eq!(meter.total(meter.target_id()).unwrap(), 3);
    meter.detach_and_unpin().unwrap();
}

#[test]
fn attach_refuses_a_target_that_is_not_a_cgroup() {
    if skip_bpf("attach_refuses_a_target_that_is_not_a_cgroup") {
        return;
    }
    let pins = PinDir::new();
    let cfg = TlsConfig {
        pin_dir: pins.path.clone(),
        ..TlsConfig::new("/tmp", Side::Client)
    };
    assert!(matches!(
        TlsMeter::attach(&cfg),
        Err(TlsError::NotCgroup2 { .. })
    ));
    let bad_ring = TlsConfig {
        ring_bytes: 5000,
        ..cfg
    };
    assert!(matches!(
        TlsMeter::attach(&bad_ring),
        Err(TlsError::Config { .. })
    ));
}

#[test]
fn pinned_view_says_when_nothing_is_pinned() {
    let pins = PinDir::new();
    match PinnedTls::open(&pins.path) {
        Err(TlsError::Pins(MeterError::NotPinned { .. })) => {}
        other => panic!("expected NotPinned, got {other:?}"),
    }
}

#[test]
fn cgroup_dir_moves_a_pid_tree_and_cleans_up() {
    if skip_bpf("cgroup_dir_moves_a_pid_tree_and_cleans_up") {
        return;
    }
    // A shell with a child, both moved; the directory goes away afterwards.
    let mut sh = Command::new("sh")
        .args(["-c", "sleep 30 & wait"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let name = format!("sealbox-test-tls-tree-{}", std::process::id());
    let dir = CgroupDir::for_pid(sh.id(), &name).unwrap();
    let path = dir.path().to_owned();
    let pids = dir.pids().unwrap();
    assert!(pids.contains(&sh.id()), "{pids:?}");
    assert_eq!(pids.len(), 2, "the shell and its sleep: {pids:?}");
    let sleep = pids.iter().copied().find(|p| *p != sh.id()).unwrap();
    let _ = sh.kill();
    let _ = sh.wait();
    // The orphaned sleep is still in it: remove() moves it out first.
    dir.remove().unwrap();
    assert!(!path.exists());
    // SAFETY: kill(2) on the pid of the sleep this test started.
    unsafe { libc::kill(sleep as i32, libc::SIGKILL) };
}

// ---------------------------------------------------------------- openssl

fn openssl() -> Option<PathBuf> {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then(|| PathBuf::from("openssl"))
}

#[test]
fn real_openssl_handshakes_count_exactly_on_both_sides() {
    if skip_bpf("real_openssl_handshakes_count_exactly_on_both_sides") {
        return;
    }
    let Some(openssl) = openssl() else {
        eprintln!(
            "SKIPPED real_openssl_handshakes_count_exactly_on_both_sides: no openssl (apt-get install openssl)"
        );
        return;
    };
    let dir = std::env::temp_dir().join(format!("sealbox-tls-openssl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
    let made = Command::new(&openssl)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-subj", "/CN=localhost", "-days", "1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(made.success());

    let (client_cg, server_cg) = (test_cgroup(), test_cgroup());
    let (client_pins, server_pins) = (PinDir::new(), PinDir::new());
    let port = free_port();
    let client = attach(&config(&client_cg, &client_pins, Side::Client, &[port]));
    let server = attach(&config(&server_cg, &server_pins, Side::Server, &[port]));
    let k = 5u64;
    client.set_allowance(k).unwrap();
    // s_server in the server cgroup, s_client in the client cgroup.
    let mut srv = Command::new(&openssl);
    srv.args(["s_server", "-quiet", "-naccept", &k.to_string(), "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut srv = in_cgroup(srv, server_cg.path()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "s_server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The probe connection above was one accept of s_server's -naccept, and
    // sent no ClientHello: it must not count.
    for _ in 0..k - 1 {
        let mut cl = Command::new(&openssl);
        cl.args(["s_client", "-connect"])
            .arg(format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let status = in_cgroup(cl, client_cg.path()).status().unwrap();
        assert!(status.success(), "s_client failed");
    }
    let _ = srv.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        client.total(client.target_id()).unwrap(),
        k - 1,
        "ClientHellos sent"
    );
    assert_eq!(
        server.total(server.target_id()).unwrap(),
        k - 1,
        "ServerHellos sent"
    );
    assert_eq!(client.refused().unwrap(), 0);
    assert_eq!(client.quota().unwrap().admitted, k - 1);
}

// ---------------------------------------------------------------- measurement

/// `(run_cnt, run_time_ns)` per TLS program name, from `bpftool prog show`
/// (needs `kernel.bpf_stats_enabled=1`).
fn program_stats() -> std::collections::HashMap<String, (u64, u64)> {
    let out = Command::new("bpftool")
        .args(["prog", "show"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut stats = std::collections::HashMap::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let field = |name: &str| {
            words
                .iter()
                .position(|w| *w == name)
                .and_then(|i| words.get(i + 1))
                .and_then(|v| v.parse::<u64>().ok())
        };
        let Some(name) = words
            .iter()
            .position(|w| *w == "name")
            .and_then(|i| words.get(i + 1))
        else {
            continue;
        };
        if name.starts_with("tls_") {
            let e = stats.entry(name.to_string()).or_insert((0, 0));
            e.0 += field("run_cnt").unwrap_or(0);
            e.1 += field("run_time_ns").unwrap_or(0);
        }
    }
    stats
}

/// Not a test: prints the per-run cost of the programs (kernel BPF stats)
/// over many synthetic handshakes and non-TLS segments. Run alone:
/// `cargo test -p sealbox-ebpf --test tls -- --ignored --exact measure_program_cost --nocapture`.
#[test]
#[ignore = "a measurement, run by hand"]
fn measure_program_cost() {
    let stats_switch = Path::new("/proc/sys/kernel/bpf_stats_enabled");
    let before = std::fs::read_to_string(stats_switch).unwrap();
    std::fs::write(stats_switch, "1").unwrap();
    let cgroup = test_cgroup();
    let pins = PinDir::new();
    let addr = server();
    let mut meter = metering(&config(&cgroup, &pins, Side::Client, &[addr.port()]));
    let mut events = meter.take_events().unwrap();
    let n = 4000u32;
    let start = Instant::now();
    let out = run_concurrently(&spec("mixed", addr, n / 2), 2, Some(cgroup.path()));
    let elapsed = start.elapsed();
    let delivered = read_all(&mut events).len();
    let stats = program_stats();
    std::fs::write(stats_switch, before.trim()).unwrap();
    assert_eq!(out.ok, 2 * n);
    assert_eq!(meter.total(meter.target_id()).unwrap(), u64::from(n));
    println!(
        "{n} handshakes + {n} non-TLS connections from 2 processes in {elapsed:?}; {delivered} events delivered"
    );
    for (name, (count, ns)) in stats {
        println!(
            "{name}: {count} runs, {} ns per run",
            ns.checked_div(count).unwrap_or(0)
        );
    }
}
