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
//!   the per-call admission of `runtime serve`, without HTTP auth, metrics
//!   or loops (isolates the journal's share).
//!
//! Usage (the script builds it with `cargo bench --no-run` and runs it):
//! `serve_bare --wat FILE --listen ADDR [--mode wasmtime|sandbox|journal] [--max-input-bytes N]`.
//! `serve_bare --journal-admits N` instead times N single-unit admissions in
//! a usage journal (the per-call admission of `runtime serve`), from one
//! thread and from two, and prints ns per admission.
//! Without either (e.g. under a plain `cargo bench`) it prints this usage and exits.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use sealbox_runtime::journal::{Journal, UsageKey};
use sealbox_runtime::lease::Lease;
use sealbox_sandbox::{GuestLimits, Program, Sandbox, SandboxConfig};
use sha2::{Digest, Sha256};
use wasmtime::{Engine, InstancePre, Linker, Module, ModuleExport, Store};

const USAGE: &str = "serve_bare --wat FILE --listen ADDR [--mode wasmtime|sandbox|journal] [--max-input-bytes N]\n\
    serve_bare --journal-admits N\n\
    (the baseline server of scripts/bench-serve; run that script)";

enum Guest {
    Bare {
        engine: Engine,
        pre: InstancePre<()>,
        exports: Exports,
        fuel: u64,
        deadline_ticks: u64,
    },
    Sandbox(Program, Option<Box<Ledger>>),
}

/// The exports a bytes-ABI call uses, resolved once per module (as the
/// sandbox does): looking them up by name on every call would handicap the
/// baseline.
struct Exports {
    memory: ModuleExport,
    alloc: ModuleExport,
    entries: HashMap<String, ModuleExport>,
}

impl Exports {
    fn of(module: &Module) -> Exports {
        let index = |name: &str| module.get_export_index(name).expect("export");
        Exports {
            memory: index("memory"),
            alloc: index("sealbox_alloc"),
            entries: module
                .exports()
                .filter(|e| e.ty().func().is_some() && e.name() != "sealbox_alloc")
                .map(|e| (e.name().to_owned(), index(e.name())))
                .collect(),
        }
    }
}

/// `Journal::admit` before each call, as `runtime serve` does it.
struct Ledger {
    journal: Journal,
    key: UsageKey,
}

impl Ledger {
    fn admit(&self) -> Result<(), String> {
        self.journal
            .admit(&self.key, 1)
            .map(drop)
            .map_err(|e| e.to_string())
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
                exports: Exports::of(&module),
                engine,
                pre,
                fuel: cfg.max_fuel,
                // The sandbox's own rule: deadline / tick + 1.
                deadline_ticks: cfg.max_deadline_ms * 1_000_000 / cfg.epoch_tick.as_nanos() as u64
                    + 1,
            }
        }
        "sandbox" | "journal" => {
            let hash: [u8; 32] = Sha256::digest(&wasm).into();
            let program = sandbox
                .compile(hash, &wasm, &GuestLimits::default())
                .expect("compile");
            let ledger = (mode == "journal")
                .then(|| Box::new(lease_journal(&journal_dir.path().join("journal.db"))));
            Guest::Sandbox(program, ledger)
        }
        other => panic!("unknown --mode {other}: wasmtime, sandbox or journal"),
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
    let result =
        tokio::task::spawn_blocking(move || match &app.guest {
            Guest::Bare {
                engine,
                pre,
                exports,
                fuel,
                deadline_ticks,
            } => bare_call(
                engine,
                pre,
                exports,
                *fuel,
                *deadline_ticks,
                &export,
                &input,
            ),
            Guest::Sandbox(program, ledger) => ledger
                .as_ref()
                .map_or(Ok(()), |l| l.admit())
                .and_then(|()| {
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
    exports: &Exports,
    fuel: u64,
    deadline_ticks: u64,
    export: &str,
    input: &[u8],
) -> Result<Vec<u8>, String> {
    let entry = exports.entries.get(export).ok_or("no such export")?;
    let mut store = Store::new(engine, ());
    store.set_fuel(fuel).map_err(|e| e.to_string())?;
    store.set_epoch_deadline(deadline_ticks);
    let instance = pre.instantiate(&mut store).map_err(|e| e.to_string())?;
    let memory = instance
        .get_module_export(&mut store, &exports.memory)
        .and_then(|e| e.into_memory())
        .ok_or("no memory")?;
    let func = |store: &mut Store<()>, index: &ModuleExport| {
        instance
            .get_module_export(&mut *store, index)
            .and_then(|e| e.into_func())
            .ok_or_else(|| "no function".to_string())
    };
    let alloc = func(&mut store, &exports.alloc)?
        .typed::<i32, i32>(&store)
        .map_err(|e| e.to_string())?;
    let entry = func(&mut store, entry)?
        .typed::<(i32, i32), i64>(&store)
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
fn lease_journal(db: &std::path::Path) -> Ledger {
    let journal = Journal::open(db).expect("journal");
    let key = UsageKey {
        deployment: [4; 32],
        buyer: [5; 32],
        product: [1; 32],
        customer: [2; 20],
        signer: [3; 20],
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
    Ledger { journal, key }
}

/// Times `n` single-unit admissions in a fresh journal (as `runtime serve`
/// opens it) from one thread, then `n` per thread from two threads at once,
/// and prints the mean cost of one admission in ns.
fn journal_admits(n: u32) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = lease_journal(&dir.path().join("journal.db"));
    for _ in 0..1000 {
        ledger.admit().expect("admit");
    }
    for threads in [1u32, 2] {
        let started = std::time::Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    for _ in 0..n {
                        ledger.admit().expect("admit");
                    }
                });
            }
        });
        let per = started.elapsed().as_secs_f64() * 1e9 / f64::from(n * threads);
        println!(
            "Journal::admit, {threads} thread(s): {per:.0} ns per unit ({} units)",
            n * threads
        );
    }
    let usage = ledger.journal.usage(&ledger.key).expect("usage");
    assert_eq!(
        usage.runtime_units,
        1000 + 3 * u64::from(n),
        "every admission counted"
    );
}
