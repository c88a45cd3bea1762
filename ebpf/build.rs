//! Compiles `bpf/meter.bpf.c` and `bpf/tls.bpf.c` with clang into
//! `$OUT_DIR/meter.bpf.o` and `$OUT_DIR/tls.bpf.o`.
//!
//! Needs clang (Debian 12's `clang` = 14 works) and the libbpf and kernel uapi
//! headers (`libbpf-dev`, `linux-libc-dev`). No `vmlinux.h`: the uprobe only
//! reads user registers through the uapi `struct pt_regs`, and the TLS
//! programs read packets and sockets through the uapi `__sk_buff`,
//! `bpf_sock_addr` and IP/TCP headers.
use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

const APT_HINT: &str = "install the BPF toolchain: `apt-get install clang llvm libbpf-dev linux-libc-dev` \
     (or set BPF_CLANG to a clang that can target bpf)";

fn main() {
    let manifest_dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-env-changed=BPF_CLANG");
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if arch != "x86_64" {
        panic!(
            "sealbox-ebpf supports x86_64 only (the probed entry starts with an x86 nop5 and the \
             BPF program reads x86 pt_regs); target arch is `{arch}`"
        );
    }

    for header in ["/usr/include/bpf/bpf_helpers.h", "/usr/include/linux/bpf.h"] {
        if !Path::new(header).exists() {
            panic!("missing {header}: {APT_HINT}");
        }
    }

    // meter.bpf.c: plain BPF v1 (its only atomic add discards the result).
    compile(&manifest_dir, &out_dir, "meter", &[]);
    // tls.bpf.c: fetch-and-add with a result and compare-and-swap need BPF v3
    // atomics (kernel 5.12+).
    compile(&manifest_dir, &out_dir, "tls", &["-mcpu=v3"]);
}

/// Compiles `bpf/<name>.bpf.c` into `$OUT_DIR/<name>.bpf.o`.
fn compile(manifest_dir: &Path, out_dir: &Path, name: &str, extra: &[&str]) {
    let src = manifest_dir.join("bpf").join(format!("{name}.bpf.c"));
    let out = out_dir.join(format!("{name}.bpf.o"));
    println!("cargo:rerun-if-changed={}", src.display());
    let clang = env::var("BPF_CLANG").unwrap_or_else(|_| "clang".into());
    let mut cmd = Command::new(&clang);
    cmd.args([
        "-O2",
        "-g",
        "-target",
        "bpf",
        "-D__TARGET_ARCH_x86",
        "-Wall",
        "-Werror",
    ]);
    cmd.args(extra);
    // <linux/types.h> includes <asm/types.h>, which Debian keeps in the multiarch dir;
    // `-target bpf` does not search it by itself.
    let multiarch = Path::new("/usr/include/x86_64-linux-gnu");
    if multiarch.is_dir() {
        cmd.arg("-I").arg(multiarch);
    }
    cmd.arg("-c").arg(&src).arg("-o").arg(&out);

    let output = match cmd.output() {
        Ok(o) => o,
        Err(e) => panic!(
            "cannot run `{clang}` to compile {}: {e}; {APT_HINT}",
            src.display()
        ),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("file not found") {
            format!("a header is missing; {APT_HINT}")
        } else if stderr.contains("No available targets") || stderr.contains("unknown target") {
            format!("`{clang}` cannot target bpf; {APT_HINT}")
        } else {
            "fix the BPF program".to_string()
        };
        panic!("clang failed on {}: {hint}\n{stderr}", src.display());
    }
}
