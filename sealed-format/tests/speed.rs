//! Where verification time goes, in process (no start-up, no file I/O), on a module of
//! `SIZE_MB` (default 10) MB of data: one SHA-256 pass, the two passes `open` makes for a
//! plaintext module (signed hash and code hash, interleaved), `open`, `verify_code`, `seal`,
//! its two steps (`prepare`, then `sign`), and the one-pass format proposal of docs/FORMAT.md.
//!
//! `cargo test --release -p sealed-format --test speed -- --ignored --nocapture`

mod common;

use std::time::{Duration, Instant};

use sealed_format::{open, seal};
use sha2::{Digest, Sha256};

fn median(mut f: impl FnMut(), reps: usize) -> Duration {
    let mut times: Vec<Duration> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[reps / 2]
}

/// A valid module on the ABI with one data segment of `len` pseudo-random bytes.
fn big_module(len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    use wasm_encoder::{
        CodeSection, ConstExpr, DataSection, ExportKind, ExportSection, Function, FunctionSection,
        Instruction, MemorySection, MemoryType, Module, TypeSection, ValType,
    };
    let mut types = TypeSection::new();
    types.ty().function([ValType::I32], [ValType::I32]);
    types
        .ty()
        .function([ValType::I32, ValType::I32], [ValType::I64]);
    let mut funcs = FunctionSection::new();
    funcs.function(0);
    funcs.function(1);
    let mut memory = MemorySection::new();
    memory.memory(MemoryType {
        minimum: (len / 65536 + 1) as u64,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    let mut exports = ExportSection::new();
    exports.export("memory", ExportKind::Memory, 0);
    exports.export("sealbox_alloc", ExportKind::Func, 0);
    exports.export("run", ExportKind::Func, 1);
    let mut code = CodeSection::new();
    let mut alloc = Function::new([]);
    alloc.instruction(&Instruction::I32Const(0));
    alloc.instruction(&Instruction::End);
    code.function(&alloc);
    let mut run = Function::new([]);
    run.instruction(&Instruction::I64Const(0));
    run.instruction(&Instruction::End);
    code.function(&run);
    let mut datas = DataSection::new();
    datas.active(0, &ConstExpr::i32_const(0), data);
    let mut module = Module::new();
    module
        .section(&types)
        .section(&funcs)
        .section(&memory)
        .section(&exports)
        .section(&code)
        .section(&datas);
    module.finish()
}

#[test]
#[ignore = "timing; run in release with --nocapture"]
fn where_verify_time_goes() {
    let mb: usize = std::env::var("SIZE_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let module = big_module(mb * 1024 * 1024);
    let vendor = common::key();
    let sealed = seal(&module, &common::opts(), &vendor, &[]).unwrap();
    let size = sealed.len() as f64 / 1e6;
    let reps = 15;
    let report = |what: &str, t: Duration| {
        println!(
            "{what:<48} {:>7.2} ms {:>6.0} MB/s",
            t.as_secs_f64() * 1e3,
            size / t.as_secs_f64()
        );
    };
    report(
        "SHA-256, one pass (sha2)",
        median(
            || {
                std::hint::black_box(Sha256::digest(&sealed));
            },
            reps,
        ),
    );
    report(
        "SHA-256, two passes interleaved by 64 KiB",
        median(
            || {
                let (mut a, mut b) = (Sha256::new(), Sha256::new());
                for chunk in sealed.chunks(64 * 1024) {
                    a.update(chunk);
                    b.update(chunk);
                }
                std::hint::black_box((a.finalize(), b.finalize()));
            },
            reps,
        ),
    );
    report(
        "open (signed hash + code hash, one sweep)",
        median(
            || {
                std::hint::black_box(open(&sealed).unwrap());
            },
            reps,
        ),
    );
    report(
        "open + verify_code",
        median(
            || {
                open(&sealed).unwrap().verify_code(None).unwrap();
            },
            reps,
        ),
    );
    report(
        "open + plaintext (the module copied out)",
        median(
            || {
                std::hint::black_box(open(&sealed).unwrap().plaintext(None).unwrap());
            },
            reps,
        ),
    );
    report(
        "seal (validate, code hash, signed hash, copy)",
        median(
            || {
                std::hint::black_box(seal(&module, &common::opts(), &vendor, &[]).unwrap());
            },
            5,
        ),
    );
    report(
        "prepare (validate while the code is hashed)",
        median(
            || {
                std::hint::black_box(
                    sealed_format::prepare(&module, &common::opts(), &vendor, &[]).unwrap(),
                );
            },
            5,
        ),
    );
    report(
        "prepare + sign (the format's second pass)",
        median(
            || {
                let unsigned =
                    sealed_format::prepare(&module, &common::opts(), &vendor, &[]).unwrap();
                std::hint::black_box(unsigned.sign().unwrap());
            },
            5,
        ),
    );
    // The one-pass proposal of docs/FORMAT.md §7: the signature covers the manifest only (which
    // holds the code hash), so sealing hashes the code once.
    report(
        "one-pass proposal: prepare + sign the manifest",
        median(
            || {
                let unsigned =
                    sealed_format::prepare(&module, &common::opts(), &vendor, &[]).unwrap();
                let digest = Sha256::digest(unsigned.signed_parts()[0]);
                std::hint::black_box(vendor.sign_prehash_recoverable(&digest).unwrap());
            },
            5,
        ),
    );
}
