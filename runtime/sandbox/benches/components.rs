//! Components beside core modules, measured side by side in one run.
//!
//! 1. Warm call: the credit-score algorithm as the core module
//!    (`examples/wat/credit_score.wat`, JSON bytes in and out) and as the Rust
//!    component (`examples/components/wat/credit_score_rs.wat`, typed values
//!    in and out), same applicant, same sandbox; then the Python and
//!    JavaScript components. Goal: the Rust component within 1.2× of the
//!    core module.
//! 2. Start: compile (cold) and load from the authenticated cache (warm) for
//!    each, with where a cached start's time goes: reading the entry,
//!    authenticating it (HMAC-SHA256 over the whole artifact), and the rest
//!    (wasmtime's deserialization, the import and export checks, linking).
//!    Goal: a cached start of the Python component under 250 ms.
//!
//! Run: `scripts/bench components` (it builds the components first), or
//! `cargo bench -p sealbox-sandbox --bench components` after
//! `examples/components/build.sh`.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sealbox_sandbox::component::{ComponentProgram, Val};
use sealbox_sandbox::{GuestLimits, Program, Sandbox, SandboxConfig};
use sha2::{Digest, Sha256};

const ROUNDS: usize = 7;
const APPLICANT_JSON: &[u8] =
    br#"{"income":48000,"debt":21000,"age":34,"late_payments":1,"credit_history_months":40}"#;
const APPLICANT_WAVE: &str =
    "score({income: 48000, debt: 21000, age: 34, late-payments: 1, credit-history-months: 40})";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> Vec<u8> {
    let path = repo().join(rel);
    if rel.ends_with(".wat") {
        return wat::parse_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run examples/components/build.sh first; scripts/bench components does)",
            path.display()
        )
    })
}

fn hash(wasm: &[u8]) -> [u8; 32] {
    Sha256::digest(wasm).into()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Mean ns per call of `f` over `iters` calls.
fn per_call(iters: u32, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed().as_nanos() as f64 / f64::from(iters)
}

fn main() {
    let cache = tempfile::tempdir().expect("tempdir");
    let cfg = SandboxConfig {
        cache_dir: Some(cache.path().join("modules")),
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::new(cfg.clone()).expect("sandbox");
    let limits = GuestLimits::default();

    let core_wasm = read("examples/wat/credit_score.wat");
    let core = sandbox
        .compile(hash(&core_wasm), &core_wasm, &limits)
        .expect("core module");
    let components: Vec<(&str, Vec<u8>)> = vec![
        ("rust", read("examples/components/wat/credit_score_rs.wat")),
        (
            "python",
            read("examples/components/target/credit_score_py.wasm"),
        ),
        (
            "javascript",
            read("examples/components/target/credit_score_js.wasm"),
        ),
    ];

    println!("== start: cold compile, then a cached start in a new sandbox (same cache)");
    println!(
        "{:<12} {:>10} {:>12} {:>12} {:>10} {:>10} {:>12}",
        "guest", "wasm(KB)", "compile(ms)", "cached(ms)", "read(ms)", "hmac(ms)", "artifact(KB)"
    );
    let mut loaded: Vec<(&str, ComponentProgram)> = Vec::new();
    for (name, wasm) in &components {
        let started = Instant::now();
        let program = sandbox
            .compile_component(hash(wasm), wasm, &limits)
            .expect("compile");
        let compile = started.elapsed();
        assert!(!program.compile_stats().from_cache);
        let (cached, read_ms, hmac_ms, artifact) = cached_start(&cfg, &sandbox, wasm, &limits);
        println!(
            "{:<12} {:>10} {:>12.1} {:>12.1} {:>10.1} {:>10.1} {:>12}",
            name,
            wasm.len() / 1024,
            ms(compile),
            ms(cached),
            read_ms,
            hmac_ms,
            artifact / 1024
        );
        loaded.push((name, program));
    }
    let (cached, read_ms, hmac_ms, artifact) = cached_start(&cfg, &sandbox, &core_wasm, &limits);
    println!(
        "{:<12} {:>10} {:>12} {:>12.1} {:>10.1} {:>10.1} {:>12}",
        "core module",
        core_wasm.len() / 1024,
        "-",
        ms(cached),
        read_ms,
        hmac_ms,
        artifact / 1024
    );

    println!("\n== warm call: the same applicant, a fresh instance per call");
    let rust = &loaded[0].1;
    let args = rust.wave_call(APPLICANT_WAVE).expect("wave").into_args();
    let core_call = || black_box(core_score(&core));
    let rust_call = || black_box(component_score(rust, &args));
    core_call();
    rust_call();
    println!("round  core-module(ns)  rust-component(ns)  ratio");
    let mut ratios = Vec::new();
    for round in 0..ROUNDS {
        let c = per_call(5_000, || {
            core_call();
        });
        let r = per_call(5_000, || {
            rust_call();
        });
        ratios.push(r / c);
        println!("{round:>5}  {c:>15.0}  {r:>18.0}  {:>5.2}", r / c);
    }
    println!(
        "median ratio rust component / core module: {:.2} (goal <= 1.2)",
        median(ratios)
    );

    for (name, program) in &loaded[1..] {
        let args = program.wave_call(APPLICANT_WAVE).expect("wave").into_args();
        component_score(program, &args);
        let times: Vec<f64> = (0..ROUNDS)
            .map(|_| per_call(20, || drop(component_score(program, &args))))
            .collect();
        println!(
            "{name} component: median {:.0} µs per call",
            median(times) / 1000.0
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A cached start in a fresh sandbox on `cfg`'s cache: total ms, and the
/// parts measured alone on the entry's bytes — reading the file and SHA-256
/// over it (what HMAC-SHA256 costs, within a block) — and the entry's size.
fn cached_start(
    cfg: &SandboxConfig,
    warm: &Sandbox,
    wasm: &[u8],
    limits: &GuestLimits,
) -> (Duration, f64, f64, usize) {
    let code_hash = hash(wasm);
    let entry = warm.cache_entry_path(&code_hash).expect("cache on");
    if !entry.is_file() {
        // Core modules are compiled through `compile`, components here.
        warm.compile(code_hash, wasm, limits).map(drop).ok();
    }
    let fresh = Sandbox::new(cfg.clone()).expect("sandbox");
    let started = Instant::now();
    let from_cache = if wasm.starts_with(b"\0asm\x0d\0\x01\0") {
        fresh
            .compile_component(code_hash, wasm, limits)
            .expect("cached component")
            .compile_stats()
            .from_cache
    } else {
        fresh
            .compile(code_hash, wasm, limits)
            .expect("cached module")
            .compile_stats()
            .from_cache
    };
    let total = started.elapsed();
    assert!(from_cache, "the second start loads from the cache");
    let started = Instant::now();
    let bytes = std::fs::read(&entry).expect("entry");
    let read_ms = ms(started.elapsed());
    let started = Instant::now();
    black_box(Sha256::digest(&bytes));
    let hmac_ms = ms(started.elapsed());
    (total, read_ms, hmac_ms, bytes.len())
}

fn core_score(core: &Program) -> Vec<u8> {
    core.call_bytes("score", APPLICANT_JSON).expect("core call")
}

fn component_score(program: &ComponentProgram, args: &[Val]) -> Vec<Val> {
    program
        .call("score", args.to_vec())
        .expect("typed call")
        .run()
        .expect("component call")
        .results
}
