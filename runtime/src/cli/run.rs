//! `runtime run`: one call of a sealed module.

use std::io::{Read, Write};
use std::path::PathBuf;

use alloy::primitives::Address;
use anyhow::{Context as _, bail};

use sealbox_runtime::product::Guest;
use sealbox_runtime::purchase::Buyer;
use sealbox_runtime::{Product, RuntimeError};
use sealbox_sandbox::CallError;
use sealbox_sandbox::component::{results_to_json, results_to_wave};

use super::context::{
    ChainArgs, PrepayArgs, RunSession, SandboxArgs, Session, StateArgs, read_file,
};

/// Arguments of `runtime run`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("call").required(true).args(["input", "invoke"])))]
pub struct Args {
    /// The sealed module (.sealed.wasm).
    pub sealed: PathBuf,
    #[command(flatten)]
    pub chain: ChainArgs,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    #[command(flatten)]
    pub prepay: PrepayArgs,
    /// Customer whose license is used (default: the key's own address; the key must be a
    /// signer the customer authorized).
    #[arg(long)]
    pub customer: Option<Address>,
    /// Input bytes for a bytes-ABI entry: a file, or - for stdin.
    #[arg(long, value_name = "FILE|-")]
    pub input: Option<String>,
    /// The bytes-ABI export to call (may be left out when the module has exactly one entry).
    #[arg(long, requires = "input")]
    pub export: Option<String>,
    /// Write the output here instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Call a numeric export of a module with the arguments that follow, e.g.
    /// `--invoke add 1 2`; or a component's function, in WAVE syntax, e.g.
    /// `--invoke 'score({income: 52000, debt: 1200, age: 40, late-payments: 0,
    /// credit-history-months: 60})'`, or by name with --json.
    #[arg(long, value_name = "CALL", num_args = 1.., allow_hyphen_values = true)]
    pub invoke: Option<Vec<String>>,
    /// With `--invoke FUNCTION` on a component: its arguments as JSON, an object of the
    /// parameters by name (or an array of them in order); `-` reads it from stdin. The result
    /// is printed as JSON too (without --json: WAVE).
    #[arg(long, value_name = "JSON|-", requires = "invoke")]
    pub json: Option<String>,
}

/// Runs `runtime run`.
pub async fn run(mut args: Args) -> anyhow::Result<()> {
    take_trailing_json(&mut args)?;
    let sealed = read_file(&args.sealed)?;
    let input = match &args.input {
        Some(spec) => Some(read_input(spec, args.sandbox.max_input_bytes)?),
        None => None,
    };
    let policy = args.prepay.policy()?;
    let run = RunSession::open(&args.chain, &args.state, &args.sandbox, args.customer).await?;
    let session = &run.session;
    let product = run.loader("run").load(&sealed).await?;

    if let Some(input) = input {
        // Bytes go to a core module only; a component says how to call it.
        product.program()?;
        let export = match args.export.clone().or_else(|| product.default_export()) {
            Some(export) => export,
            None => bail!(
                "the module has several entry exports ({}); choose one with --export",
                product.entries().join(", ")
            ),
        };
        // A call the sandbox would refuse is refused before anything is bought.
        product
            .program()?
            .bytes_call(&export, &input)
            .map_err(RuntimeError::Call)?;
        ensure_bought(session, &product, &policy).await?;
        let out = product.call_bytes(&export, &input)?;
        write_output(args.output.as_deref(), &out)?;
    } else if let (Some(invoke), Guest::Component(component)) = (&args.invoke, product.guest()) {
        let text = invoke.join(" ");
        // The call is parsed and typed before anything is bought.
        let call = match &args.json {
            Some(json) => {
                let body = read_json(json, args.sandbox.max_input_bytes)?;
                component.json_call(text.trim(), &body)
            }
            None => component.wave_call(&text),
        }
        .map_err(RuntimeError::Call)?;
        let function = call.function().name().to_string();
        let call_args = call.into_args();
        ensure_bought(session, &product, &policy).await?;
        let results = product.call_typed(&function, call_args)?;
        let printed = match &args.json {
            Some(_) => results_to_json(&results).to_string(),
            None => results_to_wave(&results).map_err(RuntimeError::Call)?,
        };
        write_output(args.output.as_deref(), format!("{printed}\n").as_bytes())?;
    } else if let Some(invoke) = &args.invoke {
        if args.json.is_some() {
            bail!("--json passes typed arguments to a component; this is a core module");
        }
        let (export, rest) = invoke
            .split_first()
            .context("--invoke needs the export name")?;
        let params: Vec<&str> = rest.iter().map(String::as_str).collect();
        product
            .program()?
            .numeric_call(export, &params)
            .map_err(RuntimeError::Call)?;
        ensure_bought(session, &product, &policy).await?;
        let results = product.call_numeric(export, &params)?;
        let text: Vec<String> = results.iter().map(ToString::to_string).collect();
        write_output(
            args.output.as_deref(),
            format!("{}\n", text.join(" ")).as_bytes(),
        )?;
    }
    let usage = product.refresh_usage()?;
    session.journal.sync()?;
    tracing::info!(
        runtime_units = usage.runtime_units,
        kernel_units = usage.kernel_units,
        bought_units = usage.bought_units,
        kernel_metered = product.kernel_metered(),
        "usage"
    );
    Ok(())
}

/// Buys a block of units (`--prepay-min-units`, or what the escrow pays) when
/// every bought unit is used, and waits until it is mined. Offline, only units
/// already bought run.
async fn ensure_bought(
    session: &Session,
    product: &Product,
    policy: &sealbox_runtime::purchase::PrepayPolicy,
) -> anyhow::Result<()> {
    if product.refresh_usage()?.unused_units() > 0 {
        return Ok(());
    }
    let Some(client) = &session.client else {
        // Admission refuses with the reason.
        return Ok(());
    };
    let buyer = Buyer {
        client,
        signer: &session.signer,
        journal: &session.journal,
        policy,
    };
    let bought = buyer
        .buy(product.usage_key(), product.code_hash(), policy.min_units)
        .await?;
    tracing::info!(
        units = bought.units(),
        cumulative = bought.cumulative,
        gas = bought.settlement.tx.gas_used,
        "bought units ahead"
    );
    Ok(())
}

/// `--invoke NAME --json ARGS` parses as `--invoke` with three values (its
/// values may start with `-`, for negative numbers): moves a `--json` among
/// them to `args.json`.
fn take_trailing_json(args: &mut Args) -> anyhow::Result<()> {
    let Some(invoke) = &mut args.invoke else {
        return Ok(());
    };
    let Some(at) = invoke.iter().position(|v| v == "--json") else {
        return Ok(());
    };
    let rest = invoke.split_off(at);
    match rest.as_slice() {
        [_, json] if args.json.is_none() => {
            args.json = Some(json.clone());
            Ok(())
        }
        _ => bail!("--json takes one value, the arguments as JSON (or - for stdin)"),
    }
}

/// The JSON of `--json`: the text itself, or stdin for `-`.
fn read_json(spec: &str, max: usize) -> anyhow::Result<serde_json::Value> {
    let text = if spec == "-" {
        read_input("-", max)?
    } else {
        spec.as_bytes().to_vec()
    };
    serde_json::from_slice(&text).context("--json is not valid JSON")
}

fn read_input(spec: &str, max: usize) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let limit = max as u64 + 1;
    if spec == "-" {
        std::io::stdin()
            .take(limit)
            .read_to_end(&mut buf)
            .context("cannot read the input from stdin")?;
    } else {
        std::fs::File::open(spec)
            .and_then(|f| f.take(limit).read_to_end(&mut buf))
            .with_context(|| format!("cannot read the input {spec}"))?;
    }
    if buf.len() > max {
        // The read stopped at max + 1 bytes; report the real size when it is known.
        let len = match spec {
            "-" => buf.len(),
            path => std::fs::metadata(path).map_or(buf.len(), |m| m.len() as usize),
        };
        return Err(RuntimeError::Call(CallError::InputTooLarge { len, limit: max }).into());
    }
    Ok(buf)
}

fn write_output(path: Option<&std::path::Path>, bytes: &[u8]) -> anyhow::Result<()> {
    match path {
        Some(path) => std::fs::write(path, bytes)
            .with_context(|| format!("cannot write the output {}", path.display())),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes)
                .and_then(|()| out.flush())
                .context("cannot write to stdout")
        }
    }
}
