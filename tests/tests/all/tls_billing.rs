//! Issue #10, the founding scenario end to end: TLS handshakes of a cgroup,
//! counted in the kernel, priced by a sealed tariff in `runtime meter`,
//! bought on chain ahead, refused in the kernel past what is bought, shown in
//! /metrics; the tariff replaced mid-stream (a tampered replacement refused),
//! and the meter SIGKILLed and restarted without losing or repeating an
//! event. The tariff is `tests/fixtures/flat_tariff.wat` (N units per
//! handshake); clients are processes moved into the target cgroup, sending
//! ClientHello records over loopback TCP.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sealbox_ebpf::CgroupDir;

use crate::common::{
    Actors, CHAIN_ID, Chain, Machine, PRICE_WEI, PinDir, Serving, example, fixture, license,
    licensed, publish, seal,
};

/// A minimal TLS 1.2 ClientHello record (type 0x16, version 3.1, 45 bytes:
/// handshake type 0x01, legacy_version 3.3, a zero random, no session id, one
/// cipher suite, no compression), which the kernel program recognises.
const CLIENT_HELLO: &str = "160301002d010000290303000000000000000000000000000000000000000000000000000000000000000000000213010100";

/// The client: N connections at once to 127.0.0.1:PORT, each sending a
/// ClientHello (or, with `junk`, plain bytes); prints `ok=… refused=…`.
const CLIENT: &str = r#"
import socket, sys, threading
port, n, kind = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
payload = bytes.fromhex(sys.argv[4]) if kind == "hello" else b"GET / HTTP/1.0\r\n\r\n"
ok, refused, lock = [0], [0], threading.Lock()
def one():
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(payload)
        s.recv(16)
        s.close()
        with lock: ok[0] += 1
    except PermissionError:
        with lock: refused[0] += 1
ts = [threading.Thread(target=one) for _ in range(n)]
[t.start() for t in ts]
[t.join() for t in ts]
print(f"ok={ok[0]} refused={refused[0]}")
"#;

/// A TCP server outside the cgroup: answers every connection with one byte
/// after reading what the client sent.
fn server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the test server");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 64];
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = stream.read(&mut buf);
                let _ = std::io::Write::write_all(&mut stream, b"x");
            });
        }
    });
    port
}

/// Runs the client `n` times at once from inside `cgroup` (`hello` or
/// `junk`) and returns (connected, refused with EPERM).
fn clients(cgroup: &Path, port: u16, n: usize, kind: &str) -> (usize, usize) {
    let procs = std::fs::OpenOptions::new()
        .write(true)
        .open(cgroup.join("cgroup.procs"))
        .expect("open cgroup.procs");
    let mut cmd = Command::new("python3");
    cmd.args([
        "-c",
        CLIENT,
        &port.to_string(),
        &n.to_string(),
        kind,
        CLIENT_HELLO,
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    // SAFETY: the closure only calls write(2) on an fd opened before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::write(procs.as_raw_fd(), b"0".as_ptr().cast(), 1) != 1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("run python3 (the test's TLS client)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |name: &str| -> usize {
        text.split_whitespace()
            .find_map(|f| f.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text:?}"))
    };
    (field("ok="), field("refused="))
}

/// ClientHellos from the test process itself, which is outside the cgroup.
fn outside_hellos(port: u16, n: usize) {
    for _ in 0..n {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        std::io::Write::write_all(&mut s, &hex(CLIENT_HELLO)).unwrap();
        let _ = s.read(&mut [0u8; 4]);
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// One sample of `runtime meter`'s /metrics: series name (with labels) → value.
async fn metrics(serving: &Serving) -> BTreeMap<String, f64> {
    let text = reqwest::get(format!("{}/metrics", serving.url))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("read /metrics");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// The value of the one series whose name starts with `metric` and which
/// contains every `labels` fragment.
fn value(m: &BTreeMap<String, f64>, metric: &str, labels: &[&str]) -> Option<f64> {
    m.iter()
        .find(|(k, _)| {
            k.starts_with(&format!("{metric}{{")) && labels.iter().all(|l| k.contains(l))
        })
        .map(|(_, v)| *v)
}

/// Polls /metrics until `ready` holds (15 s at most), returning the sample.
async fn wait_for(
    serving: &mut Serving,
    what: &str,
    ready: impl Fn(&BTreeMap<String, f64>) -> bool,
) -> BTreeMap<String, f64> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let m = metrics(serving).await;
        if ready(&m) {
            return m;
        }
        if Instant::now() > deadline || !serving.running() {
            let out = serving.stop();
            panic!(
                "{what} never happened; last /metrics: {m:#?}\n{}",
                out.dump()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A tariff product: the flat tariff at `units` per handshake, sealed for
/// `tls_handshake`, published, and licensed with `deposit` wei of escrow.
struct Tariffs {
    chain: std::sync::Arc<Chain>,
    actors: Actors,
    name: String,
}

impl Tariffs {
    async fn new(name: &str) -> Tariffs {
        let chain = Chain::shared().await;
        let actors = Actors::new(&chain).await;
        Tariffs {
            chain,
            actors,
            name: name.into(),
        }
    }

    /// Seals `wat` as a `tls_handshake` tariff of this product and publishes it.
    async fn release_file(&self, wat: &Path, tag: &str) -> PathBuf {
        let out = self
            .actors
            .path()
            .join(format!("{}-{tag}.sealed.wasm", self.name));
        let sealed = seal(
            wat,
            &self.actors.vendor,
            &self.name,
            CHAIN_ID,
            self.chain.registry,
            &out,
            &["--unit", "tls_handshake"],
        );
        let vendor = self.chain.client(&self.actors.vendor.signer).await;
        publish(&vendor, &sealed, PRICE_WEI).await;
        sealed
    }

    /// Seals a release of the flat tariff at `units` per handshake and publishes it.
    async fn release(&self, units: u64, version: &str) -> PathBuf {
        let text = std::fs::read_to_string(fixture("flat_tariff.wat")).unwrap();
        let marked = "(i64.load offset=16 (local.get $src)) (i64.const 1)";
        assert!(text.contains(marked), "the fixture's price line moved");
        let wat = self
            .actors
            .path()
            .join(format!("{}-{version}.wat", self.name));
        std::fs::write(
            &wat,
            text.replace(
                marked,
                &format!("(i64.load offset=16 (local.get $src)) (i64.const {units})"),
            ),
        )
        .unwrap();
        self.release_file(&wat, version).await
    }

    async fn license(&self, sealed: &Path, deposit: u64) -> Machine {
        let m = crate::common::manifest(sealed);
        let customer = self.chain.client(&self.actors.customer.signer).await;
        license(
            &customer,
            m.product_id,
            deposit,
            self.actors.runtime.address(),
        )
        .await;
        Machine::new(&self.chain, &self.actors)
    }
}

/// The BPF rule: without BPF (or cgroup v2) the test fails, unless opted out.
fn target(name: &str) -> Option<CgroupDir> {
    match CgroupDir::create_under_root(&format!("sealbox-e2e-{name}-{}", std::process::id())) {
        Ok(dir) => Some(dir),
        Err(e) => {
            sealbox_testkit::bpf::unavailable(name, format!("no cgroup v2 target: {e}"));
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn handshakes_are_billed_exactly_across_a_reload_a_tampered_file_and_a_sigkill() {
    let Some(cgroup) = target("billing") else {
        return;
    };
    let tariffs = Tariffs::new("tls-flat").await;
    let v1 = tariffs.release(1, "1").await;
    let machine = tariffs.license(&v1, 1_000_000).await;
    let live = tariffs.actors.path().join("tariff.sealed.wasm");
    std::fs::copy(&v1, &live).unwrap();
    let pins = PinDir::new();
    let port = server();
    let cg = cgroup.path().display().to_string();
    let args = [
        "--cgroup",
        &cg,
        "--port",
        &port.to_string(),
        "--tls-pin-dir",
        &pins.path.display().to_string(),
        "--prepay-min-units",
        "50",
        "--batch-ms",
        "50",
        "--refresh-secs",
        "1",
    ];
    let mut meter = machine.meter(&live, &args);
    let tenant = format!(
        "tenant=\"{}\"",
        sealbox_ebpf::cgroup_id(cgroup.path()).unwrap()
    );
    wait_for(&mut meter, "a first purchase", |m| {
        value(m, "sealbox_meter_allowance_remaining", &[]).is_some_and(|v| v >= 50.0)
    })
    .await;

    // 12 handshakes and 5 plain connections from the cgroup; 3 handshakes from outside.
    assert_eq!(clients(cgroup.path(), port, 12, "hello"), (12, 0));
    assert_eq!(clients(cgroup.path(), port, 5, "junk"), (5, 0));
    outside_hellos(port, 3);
    let m = wait_for(&mut meter, "12 units billed", |m| {
        value(m, "sealbox_meter_units_billed_total", &[&tenant]) == Some(12.0)
    })
    .await;
    assert_eq!(
        value(&m, "sealbox_meter_events_total", &[&tenant]),
        Some(12.0)
    );
    assert_eq!(
        value(&m, "sealbox_meter_billed_wei_total", &[&tenant]),
        Some(12.0 * PRICE_WEI as f64)
    );
    assert_eq!(
        value(&m, "sealbox_meter_ringbuf_dropped_total", &[]),
        Some(0.0)
    );
    let first_hash = crate::common::manifest(&v1).code_hash.to_string();
    assert!(value(&m, "sealbox_meter_tariff_info", &[&first_hash]).is_some());

    // A new release of the same product, at 2 units per handshake, replaces the file.
    let v2 = tariffs.release(2, "2").await;
    let second_hash = crate::common::manifest(&v2).code_hash.to_string();
    std::fs::copy(&v2, &live).unwrap();
    wait_for(&mut meter, "the reload", |m| {
        value(m, "sealbox_meter_tariff_info", &[&second_hash]).is_some()
    })
    .await;
    assert_eq!(clients(cgroup.path(), port, 5, "hello"), (5, 0));
    wait_for(&mut meter, "5 more handshakes at 2 units", |m| {
        value(m, "sealbox_meter_units_billed_total", &[&tenant]) == Some(22.0)
    })
    .await;

    // A tampered file is refused; the second tariff keeps billing.
    let mut tampered = std::fs::read(&v2).unwrap();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    std::fs::write(&live, tampered).unwrap();
    let m = wait_for(&mut meter, "the refusal", |m| {
        value(m, "sealbox_meter_tariff_refused_total", &[]) == Some(1.0)
    })
    .await;
    assert_eq!(
        value(&m, "sealbox_meter_tariff_reloads_total", &[]),
        Some(1.0)
    );
    assert_eq!(clients(cgroup.path(), port, 3, "hello"), (3, 0));
    wait_for(&mut meter, "3 more handshakes at 2 units", |m| {
        value(m, "sealbox_meter_units_billed_total", &[&tenant]) == Some(28.0)
    })
    .await;

    // SIGKILL right after 4 handshakes, then restart on the same state and pins:
    // each of them is billed once.
    std::fs::copy(&v2, &live).unwrap();
    assert_eq!(clients(cgroup.path(), port, 4, "hello"), (4, 0));
    meter.kill();
    let mut meter = machine.meter(&live, &args);
    let m = wait_for(
        &mut meter,
        "the 4 handshakes billed after the restart",
        |m| value(m, "sealbox_meter_events_billed_total", &[&tenant]) == Some(24.0),
    )
    .await;
    assert_eq!(
        value(&m, "sealbox_meter_events_total", &[&tenant]),
        Some(24.0)
    );

    // The vendor revokes the customer: at the next license check the kernel
    // refuses every metered connection, bought units left or not.
    let product = crate::common::manifest(&v2).product_id;
    let vendor = tariffs.chain.client(&tariffs.actors.vendor.signer).await;
    vendor
        .revoke_customer(product, tariffs.actors.customer.address())
        .await
        .expect("revoke the customer");
    wait_for(&mut meter, "the allowance emptied", |m| {
        value(m, "sealbox_meter_allowance_remaining", &[]) == Some(0.0)
    })
    .await;
    assert_eq!(clients(cgroup.path(), port, 2, "hello"), (0, 2));
    let stopped = meter.stop();
    assert_eq!(stopped.code, Some(0), "{}", stopped.dump());

    let usage = machine.usage(product);
    assert_eq!(usage.runtime_units, 12 + 5 * 2 + 3 * 2 + 4 * 2, "{usage:?}");
    let bought = machine.bought_on(&tariffs.chain, product).await;
    assert!(
        bought >= usage.runtime_units,
        "bought {bought}, used {usage:?}"
    );
    assert_eq!(usage.bought_units, bought);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_kernel_refuses_handshakes_past_the_units_bought() {
    let Some(cgroup) = target("quota") else {
        return;
    };
    let tariffs = Tariffs::new("tls-quota").await;
    // The example tariff: 2 units per handshake for the first 10 000.
    let sealed = tariffs
        .release_file(&example("wat/tls_tariff.wat"), "tiered")
        .await;
    // The escrow pays for 10 units: 5 handshakes (the meter inverts the tariff).
    let machine = tariffs.license(&sealed, 10 * PRICE_WEI).await;
    let pins = PinDir::new();
    let port = server();
    let cg = cgroup.path().display().to_string();
    let mut meter = machine.meter(
        &sealed,
        &[
            "--cgroup",
            &cg,
            "--port",
            &port.to_string(),
            "--tls-pin-dir",
            &pins.path.display().to_string(),
            "--prepay-min-units",
            "10",
            "--batch-ms",
            "50",
        ],
    );
    wait_for(&mut meter, "the 10 units bought", |m| {
        value(m, "sealbox_meter_allowance_remaining", &[]) == Some(5.0)
    })
    .await;
    let started = Instant::now();
    assert_eq!(clients(cgroup.path(), port, 8, "hello"), (5, 3));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refusals must be immediate, took {:?}",
        started.elapsed()
    );
    let tenant = format!(
        "tenant=\"{}\"",
        sealbox_ebpf::cgroup_id(cgroup.path()).unwrap()
    );
    let m = wait_for(&mut meter, "10 units billed", |m| {
        value(m, "sealbox_meter_units_billed_total", &[&tenant]) == Some(10.0)
    })
    .await;
    assert_eq!(value(&m, "sealbox_meter_refused_total", &[]), Some(3.0));
    // Connections to a port that is not metered are not refused.
    let other = server();
    assert_eq!(clients(cgroup.path(), other, 2, "hello"), (2, 0));
    let stopped = meter.stop();
    assert_eq!(stopped.code, Some(0), "{}", stopped.dump());
    let product = crate::common::manifest(&sealed).product_id;
    let usage = machine.usage(product);
    assert_eq!((usage.runtime_units, usage.bought_units), (10, 10));

    // Stopping the meter does not lift the refusal: the kernel programs stay
    // attached (pinned links) and keep counting and refusing.
    assert_eq!(clients(cgroup.path(), port, 2, "hello"), (0, 2));
    // The uninstall detaches them and removes the pins.
    machine.meter_uninstall(&pins.path).ok();
    assert!(!pins.path.exists());
    assert_eq!(clients(cgroup.path(), port, 2, "hello"), (2, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tariff_never_runs_per_call_and_a_call_product_never_bills_events() {
    let tariffs = Tariffs::new("tls-unit").await;
    let tariff = tariffs.release(1, "1").await;
    let machine = tariffs.license(&tariff, 1_000_000).await;
    let input = tariffs.actors.path().join("input.bin");
    std::fs::write(&input, [0u8; 16]).unwrap();
    let out = machine.run(&tariff, &["--input", &input.display().to_string()]);
    out.refused(
        39,
        &[
            "bills per `tls_handshake`",
            "`runtime run` meters `call`",
            "runtime meter",
        ],
    );
    assert!(!crate::common::logged_compiling(&out), "{}", out.dump());

    let (calls, _) = licensed(
        &tariffs.chain,
        &tariffs.actors,
        &example("wat/credit_score.wat"),
        "tls-unit-calls",
        1_000_000,
        &[],
    )
    .await;
    let pins = PinDir::new();
    let out = machine.meter_refused(
        &calls,
        &[
            "--cgroup",
            "/sys/fs/cgroup/unified",
            "--tls-pin-dir",
            &pins.path.display().to_string(),
        ],
    );
    out.refused(
        39,
        &[
            "bills per `call`",
            "`runtime meter` meters `tls_handshake`",
            "runtime serve",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tiny_ring_buffer_drops_events_but_not_their_bill() {
    let Some(cgroup) = target("ring") else {
        return;
    };
    let tariffs = Tariffs::new("tls-ring").await;
    let sealed = tariffs.release(1, "1").await;
    let machine = tariffs.license(&sealed, 1_000_000).await;
    let pins = PinDir::new();
    let port = server();
    let cg = cgroup.path().display().to_string();
    // One page: about 50 events of 72 bytes; the batch collects for 2 s, so
    // 300 handshakes made meanwhile overflow it.
    let mut meter = machine.meter(
        &sealed,
        &[
            "--cgroup",
            &cg,
            "--port",
            &port.to_string(),
            "--tls-pin-dir",
            &pins.path.display().to_string(),
            "--ring-bytes",
            "4096",
            "--prepay-min-units",
            "400",
            "--batch-ms",
            "2000",
        ],
    );
    wait_for(&mut meter, "a first purchase", |m| {
        value(m, "sealbox_meter_allowance_remaining", &[]).is_some_and(|v| v >= 400.0)
    })
    .await;
    assert_eq!(clients(cgroup.path(), port, 300, "hello"), (300, 0));
    let tenant = format!(
        "tenant=\"{}\"",
        sealbox_ebpf::cgroup_id(cgroup.path()).unwrap()
    );
    let m = wait_for(&mut meter, "300 units billed", |m| {
        value(m, "sealbox_meter_units_billed_total", &[&tenant]) == Some(300.0)
    })
    .await;
    let dropped = value(&m, "sealbox_meter_ringbuf_dropped_total", &[]).unwrap_or(0.0);
    assert!(
        dropped > 0.0 && dropped < 300.0,
        "the ring buffer should have overflowed: {m:#?}"
    );
    assert_eq!(
        value(&m, "sealbox_meter_events_total", &[&tenant]),
        Some(300.0)
    );
    meter.stop();
}
