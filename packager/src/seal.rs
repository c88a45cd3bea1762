//! `packager seal`: seal a Wasm module.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sealed_format::{Address, Limits, Metering, SealOptions, WorldSource};

use crate::keys;

/// Metering policy, as written in the manifest.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum MeteringArg {
    /// Refuse to run unless the kernel (eBPF) meter is attached.
    KernelRequired,
    /// Prefer the kernel meter; fall back to userspace counting with a warning.
    KernelPreferred,
}

/// Arguments of `packager seal`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The module or component to seal: binary .wasm, or text .wat.
    #[arg(value_name = "IN")]
    input: PathBuf,
    /// Vendor key: keystore v3 JSON, 0600 raw hex file, or env:VARNAME.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Product name (with the vendor address it makes the on-chain product id).
    #[arg(long)]
    name: String,
    /// Release version label, e.g. 1.2.0.
    #[arg(long = "version", value_name = "VER")]
    release: String,
    /// Chain id of the license registry.
    #[arg(long, value_name = "ID")]
    chain_id: u64,
    /// Address of the LicenseRegistry contract.
    #[arg(long, value_name = "ADDR", value_parser = keys::parse_address)]
    registry: Address,
    /// Billing unit: `call`, or a kernel event unit such as `tls_handshake`.
    #[arg(long, default_value = "call")]
    unit: String,
    /// Whether the module may run without the kernel meter.
    #[arg(long, value_enum, default_value = "kernel-required")]
    metering: MeteringArg,
    /// Memory limit in 64 KiB pages.
    #[arg(long, value_name = "N")]
    max_memory_pages: Option<u32>,
    /// Fuel (instruction budget) per call.
    #[arg(long, value_name = "N")]
    fuel: Option<u64>,
    /// Wall-clock deadline per call, in milliseconds.
    #[arg(long, value_name = "N")]
    deadline_ms: Option<u64>,
    /// Entry function (repeatable). Default: every export of type (i32, i32) -> i64 of a
    /// module; every function a component's WIT world exports.
    #[arg(long = "entry", value_name = "NAME")]
    entries: Vec<String>,
    /// For a component: the WIT file of the package whose world it implements. Its source goes
    /// into the manifest; the component must export the world's functions with the same types.
    #[arg(long, value_name = "FILE")]
    wit: Option<PathBuf>,
    /// For a component: the world in the --wit package (default: its only world).
    #[arg(long, value_name = "NAME", requires = "wit")]
    world: Option<String>,
    /// Encrypt for this customer public key (repeatable; SEC1 hex from `packager pubkey`).
    /// Without any, the code stays in plaintext (signed, not secret).
    #[arg(long = "recipient", value_name = "PUBKEY", value_parser = keys::parse_pubkey)]
    recipients: Vec<k256::PublicKey>,
    /// Co-signer key file (repeatable), e.g. the platform's.
    #[arg(long = "cosign", value_name = "FILE")]
    cosigners: Vec<PathBuf>,
    /// Where to write the sealed module (written atomically).
    #[arg(short = 'o', long = "out", value_name = "OUT")]
    out: PathBuf,
}

/// Seals `IN` into `OUT`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let plaintext = read_module(&args.input)?;
    let vendor = keys::load(&args.key, "vendor")?;
    let cosigners = args
        .cosigners
        .iter()
        .map(|path| keys::load(path, "co-signer"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let cosign_keys: Vec<_> = cosigners.iter().map(|s| s.credential()).collect();
    let component = match &args.wit {
        Some(path) => Some(WorldSource {
            wit: std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the WIT file {}", path.display()))?,
            world: args.world.clone(),
        }),
        None => None,
    };

    let opts = SealOptions {
        name: args.name,
        version: args.release,
        chain_id: args.chain_id,
        registry: args.registry,
        unit: args.unit,
        metering: match args.metering {
            MeteringArg::KernelRequired => Metering::KernelRequired,
            MeteringArg::KernelPreferred => Metering::KernelPreferred,
        },
        limits: Limits {
            max_memory_pages: args.max_memory_pages,
            fuel: args.fuel,
            deadline_ms: args.deadline_ms,
        },
        entry: (!args.entries.is_empty()).then_some(args.entries),
        recipients: args.recipients,
        component,
    };
    let sealed = sealed_format::seal(&plaintext, &opts, vendor.credential(), &cosign_keys)
        .with_context(|| format!("cannot seal {}", args.input.display()))?;
    // Re-open what was produced, never putting in place a file the runtime would refuse; the
    // check runs while the bytes are written and synced to a temporary file.
    let opened = write_atomically(&args.out, &sealed, || {
        sealed_format::open(&sealed).context("the sealed module does not verify")
    })?;

    let m = &opened.manifest;
    println!(
        "sealed {} -> {} ({} bytes)",
        args.input.display(),
        args.out.display(),
        sealed.len()
    );
    println!("product   {} {} ({})", m.name, m.version, m.product_id);
    println!("vendor    {}", m.vendor);
    for cosigner in opened.cosigners() {
        println!("cosigner  {cosigner}");
    }
    println!("code_hash {}", m.code_hash);
    if let Some(c) = &m.component {
        println!("world     {}", c.world_name());
    }
    println!("entry     {}", m.entry.join(", "));
    match &m.encryption {
        None => println!("encrypted no"),
        Some(e) => println!("encrypted yes, for {} recipient(s)", e.recipients.len()),
    }
    Ok(())
}

/// Reads a `.wat` (text) or binary module.
fn read_module(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "wat") {
        return wat::parse_bytes(&bytes)
            .map(|b| b.into_owned())
            .with_context(|| format!("{} is not valid WebAssembly text", path.display()));
    }
    Ok(bytes)
}

/// Writes `bytes` to a temporary file next to `path` and syncs it while `check` runs on another
/// thread, then renames the file into place if both succeeded: a failure of either never
/// leaves a partial or unchecked output.
fn write_atomically<T: Send>(
    path: &Path,
    bytes: &[u8],
    check: impl FnOnce() -> anyhow::Result<T> + Send,
) -> anyhow::Result<T> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let (checked, written) = std::thread::scope(|scope| {
        let checked = scope.spawn(check);
        let written = std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()));
        let checked = checked
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (checked, written)
    });
    let result = checked.and_then(|value| {
        written
            .and_then(|()| std::fs::rename(&tmp, path))
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(value)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
