//! `runtime license …`: the customer's side of the registry.

use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use anyhow::bail;
use sealbox_runtime::deployment::Deployment;
use sealbox_runtime::journal::UsageKey;

use super::context::{ChainArgs, StateArgs, product_id};

/// Below this many wei (20 purchases at 60,000 gas and 1 gwei) the signer's
/// balance is reported as low: it pays the gas of every purchase.
const LOW_SIGNER_BALANCE_WEI: u64 = 20 * 60_000 * 1_000_000_000;

/// `runtime license` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Deposit wei into the escrow that pays for a product's usage.
    Deposit(DepositArgs),
    /// Show the license: active, reason, balance, price, units bought / used / unused here.
    Status(Box<StatusArgs>),
    /// Authorize a runtime signer key to buy units for your license (it pays their gas).
    Authorize(AuthorizeArgs),
    /// Deauthorize a runtime signer key: it buys and runs nothing more, at once.
    Deauthorize(AuthorizeArgs),
    /// Withdraw escrow: request (starts the thaw), then --complete after it.
    Withdraw(WithdrawArgs),
}

/// Arguments of `runtime license deposit`.
#[derive(Debug, clap::Args)]
pub struct DepositArgs {
    /// Product: a sealed module or a 0x product id.
    pub product: String,
    /// Amount in wei.
    #[arg(long)]
    pub amount: U256,
    /// Deposit into this customer's escrow (default: the key's own).
    #[arg(long)]
    pub customer: Option<Address>,
    #[command(flatten)]
    pub chain: ChainArgs,
}

/// Arguments of `runtime license status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Product: a sealed module or a 0x product id.
    pub product: String,
    /// Customer to check (default: the key's own address). The counts shown are this
    /// state directory's, for the key as signer.
    #[arg(long)]
    pub customer: Option<Address>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub chain: ChainArgs,
    #[command(flatten)]
    pub state: StateArgs,
}

/// Arguments of `runtime license authorize` and `deauthorize`.
#[derive(Debug, clap::Args)]
pub struct AuthorizeArgs {
    /// Product: a sealed module or a 0x product id.
    pub product: String,
    /// The runtime signer's address.
    #[arg(long)]
    pub signer: Address,
    #[command(flatten)]
    pub chain: ChainArgs,
}

/// Arguments of `runtime license withdraw`.
#[derive(Debug, clap::Args)]
pub struct WithdrawArgs {
    /// Product: a sealed module or a 0x product id.
    pub product: String,
    /// Amount in wei to request (default: the whole balance).
    #[arg(long, conflicts_with = "complete")]
    pub amount: Option<U256>,
    /// Complete a withdrawal whose thaw period has passed.
    #[arg(long)]
    pub complete: bool,
    #[command(flatten)]
    pub chain: ChainArgs,
}

/// Runs a `runtime license` subcommand.
pub async fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Deposit(args) => deposit(args).await,
        Command::Status(args) => status(*args).await,
        Command::Authorize(args) => authorize(args).await,
        Command::Deauthorize(args) => deauthorize(args).await,
        Command::Withdraw(args) => withdraw(args).await,
    }
}

async fn deposit(args: DepositArgs) -> anyhow::Result<()> {
    let product = product_id(&args.product)?;
    let signer = args.chain.signer()?;
    let client = args.chain.connect(Some(signer)).await?;
    let tx = client.deposit(product, args.customer, args.amount).await?;
    println!(
        "deposited {} wei for product {product} (tx {}, gas {})",
        args.amount, tx.hash, tx.gas_used
    );
    Ok(())
}

async fn status(args: StatusArgs) -> anyhow::Result<()> {
    let product = product_id(&args.product)?;
    let signer = args.chain.signer()?;
    let me = signer.address();
    let customer = args.customer.unwrap_or(me);
    let client = args.chain.connect(None).await?;
    let state = args.state.open_state(false)?;
    let buyer = B256::from(state.buyer());
    let license = client.license_status(product, customer, None).await?;
    let signer_status = client.signer_status(product, customer, me, buyer).await?;
    let gas_balance = client.provider().get_balance(me).await.ok();
    let deployment = Deployment::of(&client).await?;
    let journal = args.state.journal(&state, args.chain.registry)?;
    let key = UsageKey {
        deployment: deployment.id(),
        buyer: buyer.0,
        product: product.0,
        customer: customer.into_array(),
        signer: me.into_array(),
    };
    let kernel_key = sealbox_runtime::metering::kernel_key(&key);
    let kernel = sealbox_runtime::metering::read_pinned(&args.state.meter_pin_dir, kernel_key);
    if let Ok(k) = &kernel {
        journal.record_kernel_units(&key, k.epoch, k.count)?;
    }
    let usage = journal.usage(&key)?;
    let low = gas_balance.is_some_and(|b| b < U256::from(LOW_SIGNER_BALANCE_WEI));
    if args.json {
        let value = serde_json::json!({
            "product_id": product,
            "customer": customer,
            "deployment": B256::from(deployment.id()),
            "active": license.active,
            "reason": format!("{:?}", license.reason),
            "reason_text": license.reason.to_string(),
            "balance_wei": license.balance.to_string(),
            "available_wei": license.available.to_string(),
            "price_wei": license.price.to_string(),
            "bought_units": license.bought_units,
            "block": license.block_number,
            "signer": {
                "address": me,
                "authorized": signer_status.authorized,
                "gas_balance_wei": gas_balance.map(|b| b.to_string()),
                "gas_balance_low": low,
            },
            "buyer": buyer,
            "usage": {
                "bought_units": signer_status.bought_units,
                "used_units": usage.used_units(),
                "runtime_units": usage.runtime_units,
                "kernel_units": usage.kernel_units,
                "unused_units": signer_status.bought_units.saturating_sub(usage.used_units()),
            },
            "kernel_meter": match &kernel {
                Ok(k) => serde_json::json!({
                    "pinned": true,
                    "count": k.count,
                    "epoch": format!("{:#018x}", k.epoch),
                }),
                Err(e) => serde_json::json!({"pinned": false, "error": e.to_string()}),
            },
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("product     {product}");
        println!("customer    {customer}");
        println!(
            "license     {} ({})",
            if license.active { "ACTIVE" } else { "INACTIVE" },
            license.reason
        );
        println!(
            "balance     {} wei (available {} wei)",
            license.balance, license.available
        );
        println!("price       {} wei per unit", license.price);
        println!(
            "bought      {} unit(s) over all signers and state directories",
            license.bought_units
        );
        println!(
            "signer      {me}: {}, gas balance {}",
            if signer_status.authorized {
                "authorized"
            } else {
                "NOT authorized"
            },
            match gas_balance {
                Some(b) if low => format!("{b} wei — LOW: it pays for every purchase, top it up"),
                Some(b) => format!("{b} wei"),
                None => "unknown".into(),
            }
        );
        println!(
            "here        bought {} / used {} (runtime {}, kernel {}) / unused {}",
            signer_status.bought_units,
            usage.used_units(),
            usage.runtime_units,
            usage.kernel_units,
            signer_status
                .bought_units
                .saturating_sub(usage.used_units())
        );
        match &kernel {
            Ok(_) => println!(
                "kernel      meter maps pinned at {}",
                args.state.meter_pin_dir.display()
            ),
            Err(e) => println!("kernel      not available: {e}"),
        }
    }
    Ok(())
}

async fn authorize(args: AuthorizeArgs) -> anyhow::Result<()> {
    let product = product_id(&args.product)?;
    let client = args.chain.connect(Some(args.chain.signer()?)).await?;
    let tx = client.authorize_signer(product, args.signer).await?;
    println!(
        "authorized signer {} for product {product} (tx {}, gas {})",
        args.signer, tx.hash, tx.gas_used
    );
    Ok(())
}

async fn deauthorize(args: AuthorizeArgs) -> anyhow::Result<()> {
    let product = product_id(&args.product)?;
    let client = args.chain.connect(Some(args.chain.signer()?)).await?;
    let tx = client.deauthorize_signer(product, args.signer).await?;
    println!(
        "deauthorized signer {} for product {product} (tx {}, gas {}); it buys nothing more \
         and its runtimes stop at their next license check",
        args.signer, tx.hash, tx.gas_used
    );
    Ok(())
}

async fn withdraw(args: WithdrawArgs) -> anyhow::Result<()> {
    let product = product_id(&args.product)?;
    let signer = args.chain.signer()?;
    let me = signer.address();
    let client = args.chain.connect(Some(signer)).await?;
    if args.complete {
        let (amount, tx) = client.complete_withdrawal(product).await?;
        println!("withdrew {amount} wei from the escrow (tx {})", tx.hash);
        return Ok(());
    }
    let amount = match args.amount {
        Some(amount) => amount,
        None => client.license_status(product, me, None).await?.balance,
    };
    if amount.is_zero() {
        bail!("the escrow of {me} for product {product} is empty: nothing to withdraw");
    }
    let tx = client.request_withdrawal(product, amount).await?;
    let status = client.license_status(product, me, None).await?;
    println!(
        "requested a withdrawal of {amount} wei (tx {}); complete it after unix time {} with \
         `runtime license withdraw --complete`",
        tx.hash, status.thaw_end
    );
    Ok(())
}
