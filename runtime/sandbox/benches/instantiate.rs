//! Sandbox overhead, measured side by side in one run.
//!
//! 1. Warm call: `Program::call_bytes` (fresh store with limits + pooled
//!    `InstancePre::instantiate` + alloc + copy in + entry + copy out) versus
//!    the same steps done with bare wasmtime on the sandbox's own engine and
//!    the same plaintext module. Goal: ratio <= 1.1.
//! 2. Cold compile versus warm start from the authenticated cache.
//! 3. What the fuel and epoch instrumentation cost a compute-bound guest.
//! 4. A std guest (examples/algorithms/name-match: std, serde_json, strsim)
//!    beside a no_std one (credit-score), warm calls on their sample inputs.
//!
//! Run: `cargo bench -p sealbox-sandbox --bench instantiate` (section 4 needs
//! `examples/algorithms/build.sh` to have built name_match.wasm; `scripts/bench
//! sandbox` runs it first).

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use sealbox_sandbox::{GuestLimits, Sandbox, SandboxConfig};
use sha2::{Digest, Sha256};
use wasmtime::{Config, Engine, Instance, InstancePre, Linker, Module, Store, TypedFunc};

const ROUNDS: usize = 7;
const ITERS: u32 = 20_000;
const INPUT: &[u8] = b"{\"hello\":\"world\"}";

fn main() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bytes_abi.wat");
    let wasm = wat::parse_file(&fixture).expect("fixture");
    let hash: [u8; 32] = Sha256::digest(&wasm).into();
    let cache = tempfile::tempdir().expect("tempdir");
    let cfg = SandboxConfig {
        cache_dir: Some(cache.path().join("modules")),
        ..SandboxConfig::default()
    };

    println!("== warm call: Program::call_bytes vs bare wasmtime (same engine, same module)");
    let sandbox = Sandbox::new(cfg.clone()).expect("sandbox");
    let program = sandbox
        .compile(hash, &wasm, &GuestLimits::default())
        .expect("compile");
    let engine = sandbox.engine().clone();
    let module = Module::from_binary(&engine, &wasm).expect("bare module");
    let pre = Linker::<()>::new(&engine)
        .instantiate_pre(&module)
        .expect("bare pre");

    let sandboxed = || program.call_bytes("echo", black_box(INPUT)).expect("call");
    let bare = || bare_call(&engine, &pre, black_box(INPUT));
    let bare_instantiate = || {
        let mut store = bare_store(&engine);
        black_box(pre.instantiate(&mut store).expect("instantiate"));
    };
    assert_eq!(sandboxed(), INPUT);
    assert_eq!(bare(), INPUT);

    let mut ratios = Vec::new();
    println!("round  program(ns)  bare(ns)  ratio  bare-instantiate-only(ns)");
    for round in 0..ROUNDS {
        // Alternate which side goes first so drift favours neither.
        let (p, b) = if round % 2 == 0 {
            let p = per_iter(&sandboxed);
            (p, per_iter(&bare))
        } else {
            let b = per_iter(&bare);
            (per_iter(&sandboxed), b)
        };
        let i = per_iter(&bare_instantiate);
        let ratio = p / b;
        ratios.push(ratio);
        println!("{round:>5}  {p:>11.0}  {b:>8.0}  {ratio:>5.3}  {i:>25.0}");
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "median ratio program/bare = {:.3} (min {:.3}, max {:.3}; goal <= 1.1)",
        ratios[ROUNDS / 2],
        ratios[0],
        ratios[ROUNDS - 1]
    );

    println!("\n== cold compile vs warm start (authenticated cache)");
    let big = synthetic_module(300);
    for (name, bytes) in [("bytes_abi.wat", wasm.clone()), ("synthetic 300 fns", big)] {
        let hash: [u8; 32] = Sha256::digest(&bytes).into();
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = SandboxConfig {
            cache_dir: Some(dir.path().join("modules")),
            ..SandboxConfig::default()
        };
        let cold_sb = Sandbox::new(cfg.clone()).expect("sandbox");
        let t = Instant::now();
        let cold = cold_sb
            .compile(hash, &bytes, &GuestLimits::default())
            .expect("cold");
        let cold_t = t.elapsed();
        assert!(!cold.from_cache());
        let t = Instant::now();
        let raw = Module::from_binary(cold_sb.engine(), &bytes).expect("raw");
        let raw_t = t.elapsed();
        let serialized = raw.serialize().expect("serialize").len();
        let warm_sb = Sandbox::new(cfg).expect("sandbox");
        let t = Instant::now();
        let warm = warm_sb
            .compile(hash, &bytes, &GuestLimits::default())
            .expect("warm");
        let warm_t = t.elapsed();
        assert!(warm.from_cache() && warm_sb.compilations() == 0);
        println!(
            "{name:<18} wasm {:>6} B, artifact {:>7} B: cold compile() {:>8.2} ms \
             (bare Module::from_binary {:>7.2} ms), warm compile() from cache {:>6.3} ms",
            bytes.len(),
            serialized,
            ms(cold_t),
            ms(raw_t),
            ms(warm_t)
        );
    }

    examples_side_by_side();

    println!("\n== instrumentation cost on compute-bound guests (best of 7, interleaved)");
    let kernels = wat::parse_str(
        r#"(module (memory 64)
             ;; tight arithmetic loop: the worst case for per-loop checks
             (func (export "sum") (param $n i64) (result i64) (local $i i64) (local $s i64)
               (block $done (loop $next
                 (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
                 (local.set $s (i64.add (local.get $s) (i64.mul (local.get $i) (i64.const 3))))
                 (local.set $i (i64.add (local.get $i) (i64.const 1)))
                 (br $next)))
               (local.get $s))
             ;; FNV-1a over 4 MiB of memory, $n passes: byte-at-a-time data processing
             (func (export "fnv") (param $n i64) (result i64) (local $p i32) (local $h i64)
               (local.set $h (i64.const 0xcbf29ce484222325))
               (block $all (loop $pass
                 (br_if $all (i64.eqz (local.get $n)))
                 (local.set $p (i32.const 0))
                 (block $done (loop $byte
                   (br_if $done (i32.ge_u (local.get $p) (i32.const 4194304)))
                   (local.set $h (i64.mul
                     (i64.xor (local.get $h) (i64.load8_u (local.get $p)))
                     (i64.const 0x100000001b3)))
                   (local.set $p (i32.add (local.get $p) (i32.const 1)))
                   (br $byte)))
                 (local.set $n (i64.sub (local.get $n) (i64.const 1)))
                 (br $pass)))
               (local.get $h)))"#,
    )
    .expect("wat");
    let variants = [
        ("none", false, false),
        ("epoch only", false, true),
        ("fuel only", true, false),
        ("fuel + epoch", true, true),
    ];
    let engines: Vec<_> = variants
        .iter()
        .map(|&(_, fuel, epoch)| {
            let mut config = Config::new();
            config.consume_fuel(fuel).epoch_interruption(epoch);
            let engine = Engine::new(&config).expect("engine");
            let module = Module::from_binary(&engine, &kernels).expect("module");
            (engine, module, fuel)
        })
        .collect();
    for (kernel, arg) in [("sum", 50_000_000i64), ("fnv", 10)] {
        // Rounds outside, variants inside: machine noise hits all alike.
        let mut best = vec![Duration::MAX; variants.len()];
        for _ in 0..7 {
            for (slot, (engine, module, fuel)) in engines.iter().enumerate() {
                let mut store = Store::new(engine, ());
                if *fuel {
                    store.set_fuel(u64::MAX).expect("fuel");
                }
                store.set_epoch_deadline(1 << 40);
                let instance = Instance::new(&mut store, module, &[]).expect("instance");
                let f: TypedFunc<i64, i64> =
                    instance.get_typed_func(&mut store, kernel).expect("kernel");
                let t = Instant::now();
                black_box(f.call(&mut store, black_box(arg)).expect("call"));
                best[slot] = best[slot].min(t.elapsed());
            }
        }
        println!("{kernel}({arg}):");
        for ((label, _, _), t) in variants.iter().zip(&best) {
            println!(
                "  {label:<14} {:>7.1} ms  ({:+.0}%)",
                ms(*t),
                (t.as_secs_f64() / best[0].as_secs_f64() - 1.0) * 100.0
            );
        }
    }
}

/// Section 4: warm `call_bytes` of a std guest beside a no_std one.
fn examples_side_by_side() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let std_module = examples.join("algorithms/target/sealbox/name_match.wasm");
    let modules = [
        (
            "credit-score (no_std)",
            wat::parse_file(examples.join("wat/credit_score.wat")).expect("credit_score.wat"),
            "score",
            examples.join("inputs/applicant.json"),
        ),
        (
            "name-match (std)",
            std::fs::read(&std_module).unwrap_or_else(|e| {
                panic!(
                    "{}: {e}; build it with examples/algorithms/build.sh",
                    std_module.display()
                )
            }),
            "screen",
            examples.join("inputs/screening.json"),
        ),
    ];
    println!(
        "\n== warm call of a std guest beside a no_std guest (median of {ROUNDS} rounds, interleaved)"
    );
    let sandbox = Sandbox::new(SandboxConfig::default()).expect("sandbox");
    let programs: Vec<_> = modules
        .iter()
        .map(|(_, wasm, export, input)| {
            let hash: [u8; 32] = Sha256::digest(wasm).into();
            let program = sandbox
                .compile(hash, wasm, &GuestLimits::default())
                .expect("compile");
            let input = std::fs::read(input).expect("sample input");
            let out = program.call_bytes(export, &input).expect("call");
            assert!(out.starts_with(b"{") && !out.starts_with(b"{\"error\""));
            (program, *export, input)
        })
        .collect();
    let mut times = vec![Vec::new(); programs.len()];
    for _ in 0..ROUNDS {
        for (slot, (program, export, input)) in programs.iter().enumerate() {
            let call = || program.call_bytes(export, black_box(input)).expect("call");
            times[slot].push(per_iter_n(&call, ITERS / 10));
        }
    }
    for ((label, wasm, _, _), mut t) in modules.iter().zip(times) {
        t.sort_by(f64::total_cmp);
        println!(
            "{label:<22} module {:>7} B: {:>8.0} ns per call",
            wasm.len(),
            t[ROUNDS / 2]
        );
    }
}

/// Nanoseconds per call of `f`, over `n` calls.
fn per_iter_n<R>(f: &impl Fn() -> R, n: u32) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        black_box(f());
    }
    t.elapsed().as_nanos() as f64 / f64::from(n)
}

/// Nanoseconds per call of `f`, over `ITERS` calls.
fn per_iter<R>(f: &impl Fn() -> R) -> f64 {
    let t = Instant::now();
    for _ in 0..ITERS {
        black_box(f());
    }
    t.elapsed().as_nanos() as f64 / f64::from(ITERS)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A store the engine's fuel and epoch settings allow to run.
fn bare_store(engine: &Engine) -> Store<()> {
    let mut store = Store::new(engine, ());
    store.set_fuel(u64::MAX).expect("fuel");
    store.set_epoch_deadline(1 << 40);
    store
}

/// The bytes-ABI call with bare wasmtime: the baseline the sandbox is
/// compared to (same steps, no limits, no checks, name lookups).
fn bare_call(engine: &Engine, pre: &InstancePre<()>, input: &[u8]) -> Vec<u8> {
    let mut store = bare_store(engine);
    let instance = pre.instantiate(&mut store).expect("instantiate");
    let memory = instance.get_memory(&mut store, "memory").expect("memory");
    let alloc = instance
        .get_typed_func::<i32, i32>(&mut store, "sealbox_alloc")
        .expect("alloc");
    let echo = instance
        .get_typed_func::<(i32, i32), i64>(&mut store, "echo")
        .expect("echo");
    let ptr = alloc
        .call(&mut store, input.len() as i32)
        .expect("alloc call");
    memory
        .write(&mut store, ptr as u32 as usize, input)
        .expect("write");
    let packed = echo
        .call(&mut store, (ptr, input.len() as i32))
        .expect("echo call") as u64;
    let (ptr, len) = ((packed >> 32) as usize, (packed as u32) as usize);
    memory.data(&store)[ptr..ptr + len].to_vec()
}

/// A module with `n` non-trivial functions, to time compilation.
fn synthetic_module(n: usize) -> Vec<u8> {
    let mut text = String::from("(module (memory (export \"memory\") 1)\n");
    for i in 0..n {
        text.push_str(&format!(
            "(func (export \"f{i}\") (param $a i64) (param $b i64) (result i64) (local $i i64)
               (block $d (loop $l
                 (br_if $d (i64.ge_u (local.get $i) (local.get $b)))
                 (local.set $a (i64.xor (i64.mul (local.get $a) (i64.const {k}))
                                        (i64.rotl (local.get $a) (local.get $i))))
                 (i64.store (i32.wrap_i64 (i64.and (local.get $i) (i64.const 1016))) (local.get $a))
                 (local.set $i (i64.add (local.get $i) (i64.const 1)))
                 (br $l)))
               (i64.add (local.get $a) (i64.load (i32.const 8))))\n",
            k = 2 * i + 1
        ));
    }
    text.push(')');
    wat::parse_str(&text).expect("synthetic wat")
}
