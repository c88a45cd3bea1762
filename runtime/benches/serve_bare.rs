//! The baseline server of `scripts/bench-serve`: axum + wasmtime with no
//! license, no journal, no meter, no metrics, no auth.
//!
//! Same route shape as `runtime serve`
//! (`POST /v1/products/{id}/invoke/{export}`, raw bytes in and out), same
//! engine configuration (the engine of a default [`Sandbox`]: pooling
//! allocator, fuel and epoch interruption), a fresh instance per request on
//! the blocking pool.
//!
//! Modes:
//! * `wasmtime` — bare wasmtime calls on the sandbox's engine;
//! * `sandbox` — `Program::call_bytes` (the sandbox's call path: limits,
//!   checks), still without licensing or metering. The difference between
//!   the two rows isolates the sandbox, the difference to `runtime serve`
//!   the licensing, journal, meter and metrics.
//! * `journal` — `sandbox` plus `Journal::admit` before each call: exactly
//!   the per-call journal write of `runtime serve`, without HTTP auth,
//!   metrics or loops (isolates the journal's share);
//! * `journal-fast`, `journal-group`, `journal-mmap` — prototypes of a
//!   cheaper admission that still survives a kill of the process (see
//!   [`FastJournal`], [`GroupJournal`], [`MmapCounter`]), to size the
//!   proposals in the report.
//!
//! Usage (the script builds it with `cargo bench --no-run` and runs it):
//! `serve_bare --wat FILE --listen ADDR [--mode wasmtime|sandbox] [--max-input-bytes N]`.
//! `serve_bare --journal-admits N` instead times N single-unit admissions in
//! a usage journal (the per-call SQLite write of `runtime serve`) and prints
//! µs per admission.
//! Without either (e.g. under a plain `cargo bench`) it prints this usage and exits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use sealbox_runtime::journal::UsageKey;
use sealbox_runtime::lease::{Lease, LeasePolicy};
use sealbox_runtime::sandbox::{GuestLimits, Program, Sandbox, SandboxConfig};
use sha2::{Digest, Sha256};
use wasmtime::{Engine, InstancePre, Linker, Module, Store};

const USAGE: &str = "serve_bare --wat FILE --listen ADDR [--mode wasmtime|sandbox|journal|journal-fast|journal-group|journal-mmap] [--max-input-bytes N]\n\
    serve_bare --journal-admits N\n\
    (the baseline server of scripts/bench-serve; run that script)";

enum Guest {
    Bare {
        engine: Engine,
        pre: InstancePre<()>,
        fuel: u64,
        deadline_ticks: u64,
    },
    Sandbox(Program, Admission),
}

/// How a call is admitted before the guest runs.
enum Admission {
    /// Not at all.
    None,
    /// `Journal::admit` (what `runtime serve` does).
    Journal(sealbox_runtime::journal::Journal, UsageKey, LeasePolicy),
    /// One cached, guarded UPDATE per call.
    Fast(FastJournal),
    /// Group commit by a writer thread.
    Group(GroupJournal),
    /// An atomic counter in a shared file mapping.
    Mmap(MmapCounter),
}

impl Admission {
    fn admit(&self) -> Result<(), String> {
        match self {
            Admission::None => Ok(()),
            Admission::Journal(journal, key, policy) => journal
                .admit(key, 1, sealbox_runtime::gate::unix_now(), policy)
                .map(drop)
                .map_err(|e| e.to_string()),
            Admission::Fast(j) => j.admit(),
            Admission::Group(j) => j.admit(),
            Admission::Mmap(c) => c.admit(),
        }
    }
}

struct App {
    guest: Guest,
    _sandbox: Sandbox,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    if let Some(n) = value("--journal-admits") {
        journal_admits(n.parse().expect("--journal-admits N"));
        return;
    }
    let Some(listen) = value("--listen") else {
        println!("{USAGE}");
        return;
    };
    let listen: SocketAddr = listen.parse().expect("--listen ADDR:PORT");
    let wat = PathBuf::from(value("--wat").expect("--wat FILE"));
    let mode = value("--mode").unwrap_or_else(|| "wasmtime".into());
    let max_input = value("--max-input-bytes")
        .map(|v| v.parse().expect("--max-input-bytes N"))
        .unwrap_or(SandboxConfig::default().max_input_bytes);

    let wasm = wat::parse_file(&wat).expect("the module");
    let journal_dir = tempfile::tempdir().expect("tempdir");
    let cfg = SandboxConfig {
        cache_dir: None,
        max_input_bytes: max_input,
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::new(cfg.clone()).expect("sandbox");
    let guest = match mode.as_str() {
        "wasmtime" => {
            let engine = sandbox.engine().clone();
            let module = Module::from_binary(&engine, &wasm).expect("module");
            let pre = Linker::<()>::new(&engine)
                .instantiate_pre(&module)
                .expect("instantiate_pre");
            Guest::Bare {
                engine,
                pre,
                fuel: cfg.max_fuel,
                // The sandbox's own rule: deadline / tick + 1.
                deadline_ticks: cfg.max_deadline_ms * 1_000_000 / cfg.epoch_tick.as_nanos() as u64
                    + 1,
            }
        }
        "sandbox" | "journal" | "journal-fast" | "journal-group" | "journal-mmap" => {
            let hash: [u8; 32] = Sha256::digest(&wasm).into();
            let program = sandbox
                .compile(hash, &wasm, &GuestLimits::default())
                .expect("compile");
            let db = journal_dir.path().join("journal.db");
            let admission = match mode.as_str() {
                "journal" => {
                    let (journal, key) = lease_journal(&db);
                    Admission::Journal(journal, key, LeasePolicy::default())
                }
                "journal-fast" => Admission::Fast(FastJournal::open(&db)),
                "journal-group" => Admission::Group(GroupJournal::open(&db)),
                "journal-mmap" => Admission::Mmap(MmapCounter::open(&db)),
                _ => Admission::None,
            };
            Guest::Sandbox(program, admission)
        }
        other => panic!(
            "unknown --mode {other}: wasmtime, sandbox, journal, journal-fast, journal-group or journal-mmap"
        ),
    };
    let app = Arc::new(App {
        guest,
        _sandbox: sandbox,
    });
    let router = Router::new()
        .route("/v1/products/{product_id}/invoke/{export}", post(invoke))
        .layer(DefaultBodyLimit::max(max_input))
        .with_state(app);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await.expect("bind");
        println!(
            "listening on http://{}",
            listener.local_addr().expect("addr")
        );
        let shutdown = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        };
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
            .expect("serve");
    });
}

async fn invoke(
    State(app): State<Arc<App>>,
    Path((_product, export)): Path<(String, String)>,
    input: Bytes,
) -> Response {
    let result = tokio::task::spawn_blocking(move || match &app.guest {
        Guest::Bare {
            engine,
            pre,
            fuel,
            deadline_ticks,
        } => bare_call(engine, pre, *fuel, *deadline_ticks, &export, &input),
        Guest::Sandbox(program, admission) => admission.admit().and_then(|()| {
            program
                .call_bytes(&export, &input)
                .map_err(|e| e.to_string())
        }),
    })
    .await;
    match result {
        Ok(Ok(out)) => ([(header::CONTENT_TYPE, "application/octet-stream")], out).into_response(),
        Ok(Err(e)) => (StatusCode::UNPROCESSABLE_ENTITY, e).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The bytes-ABI call with bare wasmtime: fresh store with fuel and an epoch
/// deadline, pooled instantiate, alloc, copy in, entry, copy out.
fn bare_call(
    engine: &Engine,
    pre: &InstancePre<()>,
    fuel: u64,
    deadline_ticks: u64,
    export: &str,
    input: &[u8],
) -> Result<Vec<u8>, String> {
    let mut store = Store::new(engine, ());
    store.set_fuel(fuel).map_err(|e| e.to_string())?;
    store.set_epoch_deadline(deadline_ticks);
    let instance = pre.instantiate(&mut store).map_err(|e| e.to_string())?;
    let memory = instance
        .get_memory(&mut store, "memory")
        .ok_or("no memory")?;
    let alloc = instance
        .get_typed_func::<i32, i32>(&mut store, "sealbox_alloc")
        .map_err(|e| e.to_string())?;
    let entry = instance
        .get_typed_func::<(i32, i32), i64>(&mut store, export)
        .map_err(|e| e.to_string())?;
    let ptr = alloc
        .call(&mut store, input.len() as i32)
        .map_err(|e| e.to_string())?;
    memory
        .write(&mut store, ptr as u32 as usize, input)
        .map_err(|e| e.to_string())?;
    let packed = entry
        .call(&mut store, (ptr, input.len() as i32))
        .map_err(|e| e.to_string())? as u64;
    let (ptr, len) = ((packed >> 32) as usize, (packed as u32) as usize);
    memory
        .data(&store)
        .get(ptr..ptr + len)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| "output out of bounds".to_string())
}

/// A journal at `db` holding a fresh lease with an escrow that never runs out.
fn lease_journal(db: &std::path::Path) -> (sealbox_runtime::journal::Journal, UsageKey) {
    let journal = sealbox_runtime::journal::Journal::open(db).expect("journal");
    let key = UsageKey {
        product: [1; 32],
        customer: [2; 20],
        signer: [3; 20],
    };
    let lease = Lease {
        checked_at: sealbox_runtime::gate::unix_now(),
        block: 1,
        balance_wei: u128::MAX,
        price_wei: 1,
        settled_units: 0,
        inactive: None,
    };
    journal.store_lease(&key, &lease).expect("lease");
    (journal, key)
}

/// Times `n` single-unit admissions in a fresh journal (WAL, synchronous=NORMAL,
/// as `runtime serve` opens it), one thread, and prints the mean in µs, next
/// to the prototypes.
fn journal_admits(n: u32) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (journal, key) = lease_journal(&dir.path().join("a.db"));
    let current = Admission::Journal(journal, key, LeasePolicy::default());
    let fast = Admission::Fast(FastJournal::open(&dir.path().join("b.db")));
    let group = Admission::Group(GroupJournal::open(&dir.path().join("c.db")));
    let mmap = Admission::Mmap(MmapCounter::open(&dir.path().join("d.db")));
    for (name, admission) in [
        ("Journal::admit", &current),
        ("prototype fast", &fast),
        ("prototype group", &group),
        ("prototype mmap", &mmap),
    ] {
        for _ in 0..1000 {
            admission.admit().expect("admit");
        }
        let started = std::time::Instant::now();
        for _ in 0..n {
            admission.admit().expect("admit");
        }
        let per = started.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        println!("journal admission, one thread, {name}: {per:.3} us per unit ({n} units)");
    }
}

const PROTO_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS usage (
    id INTEGER PRIMARY KEY, runtime_units INTEGER NOT NULL, settled_units INTEGER NOT NULL);
    INSERT OR IGNORE INTO usage VALUES (1, 0, 0);";

/// The guarded increment both prototypes run: admits only while the
/// unsettled units stay within what the (in-memory) lease covers.
const PROTO_ADMIT: &str = "UPDATE usage SET runtime_units = runtime_units + 1
    WHERE id = 1 AND runtime_units + 1 - settled_units <= ?1";

fn proto_open(db: &std::path::Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(db).expect("open");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("wal");
    conn.pragma_update(None, "synchronous", "NORMAL")
        .expect("sync");
    conn.execute_batch(PROTO_SCHEMA).expect("schema");
    conn
}

/// Prototype A: the lease kept in memory (refreshed on `store_lease`), one
/// cached prepared UPDATE per call in autocommit mode — the check and the
/// increment in one statement, committed before the guest runs.
struct FastJournal {
    conn: std::sync::Mutex<rusqlite::Connection>,
    cap: i64,
}

impl FastJournal {
    fn open(db: &std::path::Path) -> Self {
        Self {
            conn: std::sync::Mutex::new(proto_open(db)),
            cap: i64::MAX,
        }
    }

    fn admit(&self) -> Result<(), String> {
        let conn = self.conn.lock().map_err(|e| e.to_string())?;
        let mut stmt = conn
            .prepare_cached(PROTO_ADMIT)
            .map_err(|e| e.to_string())?;
        match stmt.execute([self.cap]).map_err(|e| e.to_string())? {
            1 => Ok(()),
            _ => Err("escrow exhausted".into()),
        }
    }
}

/// Prototype B: group commit. Calls hand their admission to one writer
/// thread and wait for its answer; the writer runs every admission queued
/// meanwhile in one transaction, so concurrent calls share one commit. A
/// call still runs only after its unit is committed.
struct GroupJournal {
    tx: std::sync::mpsc::Sender<std::sync::mpsc::SyncSender<bool>>,
}

impl GroupJournal {
    fn open(db: &std::path::Path) -> Self {
        let mut conn = proto_open(db);
        let (tx, rx) = std::sync::mpsc::channel::<std::sync::mpsc::SyncSender<bool>>();
        std::thread::spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut batch = vec![first];
                batch.extend(rx.try_iter());
                let t = conn.transaction().expect("begin");
                let answers: Vec<bool> = {
                    let mut stmt = t.prepare_cached(PROTO_ADMIT).expect("prepare");
                    batch
                        .iter()
                        .map(|_| stmt.execute([i64::MAX]).map(|n| n == 1).unwrap_or(false))
                        .collect()
                };
                let committed = t.commit().is_ok();
                for (reply, ok) in batch.into_iter().zip(answers) {
                    let _ = reply.send(ok && committed);
                }
            }
        });
        Self { tx }
    }

    fn admit(&self) -> Result<(), String> {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        self.tx.send(reply).map_err(|e| e.to_string())?;
        match answer.recv() {
            Ok(true) => Ok(()),
            _ => Err("not admitted".into()),
        }
    }
}

/// Prototype C: the admitted-units counter as an atomic in a `MAP_SHARED`
/// file mapping. A store into the mapping is in the kernel's page cache the
/// moment it completes, so a kill or crash of the process right after it
/// cannot lose the unit — the same guarantee as the WAL with
/// `synchronous=NORMAL` (an OS crash needs an `msync`, which would go where
/// `Journal::sync` is called today, before a receipt is signed). The escrow
/// check is a compare-and-swap against the in-memory lease's cap.
struct MmapCounter {
    ptr: *mut u8,
    cap: u64,
    settled: u64,
    _file: std::fs::File,
}

// SAFETY: the mapping is only accessed through an AtomicU64 at its start.
unsafe impl Send for MmapCounter {}
// SAFETY: as above; all access is atomic.
unsafe impl Sync for MmapCounter {}

impl Drop for MmapCounter {
    fn drop(&mut self) {
        // SAFETY: unmaps the mapping made in `open`; nothing uses it after drop.
        unsafe { libc::munmap(self.ptr.cast(), 4096) };
    }
}

impl MmapCounter {
    fn open(path: &std::path::Path) -> Self {
        use std::os::fd::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path.with_extension("units"))
            .expect("counter file");
        file.set_len(4096).expect("size");
        // SAFETY: a fresh shared read-write mapping of a 4096-byte file we keep open.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED, "mmap");
        Self {
            ptr: ptr.cast(),
            cap: u64::MAX,
            settled: 0,
            _file: file,
        }
    }

    fn admit(&self) -> Result<(), String> {
        use std::sync::atomic::{AtomicU64, Ordering};
        // SAFETY: the mapping is page-aligned, 4096 bytes long and lives as long as self.
        let units = unsafe { AtomicU64::from_ptr(self.ptr.cast::<u64>()) };
        let mut current = units.load(Ordering::Acquire);
        loop {
            if current + 1 - self.settled > self.cap {
                return Err("escrow exhausted".into());
            }
            match units.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(seen) => current = seen,
            }
        }
    }
}
