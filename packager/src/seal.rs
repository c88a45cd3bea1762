//! `packager seal`: seal a Wasm module.

use std::path::{Path, PathBuf};

use anyhow::Context;
use sealed_format::{Address, Limits, Metering, SealOptions, WorldSource};

use crate::keys;
use crate::mapped::MappedFile;
use crate::sealed_output::SealedOutput;

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
    // Encrypted code is hashed and encrypted from memory, not re-read from the file after it
    // is written: map the input only when its code goes out as it is.
    let plaintext = read_module(&args.input, args.recipients.is_empty())?;
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
    let output = SealedOutput::create(&args.out)?;
    // The code goes to the file while it is hashed.
    let (unsigned, code_at) = sealed_format::prepare_with(
        &plaintext,
        &opts,
        vendor.credential(),
        &cosign_keys,
        |placement| output.place_code(placement),
    )
    .with_context(|| format!("cannot seal {}", args.input.display()))?;
    let code_at = code_at
        .transpose()
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let len = output.finish(&unsigned, code_at)?;

    let m = unsigned.manifest();
    println!(
        "sealed {} -> {} ({len} bytes)",
        args.input.display(),
        args.out.display(),
    );
    println!("product   {} {} ({})", m.name, m.version, m.product_id);
    println!("vendor    {}", m.vendor);
    for cosigner in &unsigned.signers()[1..] {
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

/// Reads a `.wat` (text) or binary module; a binary one is mapped if `map`, not copied.
fn read_module(path: &Path, map: bool) -> anyhow::Result<MappedFile> {
    let bytes = if map {
        MappedFile::read(path)
    } else {
        std::fs::read(path).map(MappedFile::Read)
    }
    .with_context(|| format!("cannot read {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "wat") {
        return wat::parse_bytes(&bytes)
            .map(|b| MappedFile::Read(b.into_owned()))
            .with_context(|| format!("{} is not valid WebAssembly text", path.display()));
    }
    Ok(bytes)
}
