//! `runtime license …`: the customer's side of the registry.

use alloy::primitives::{Address, U256};
use anyhow::bail;
use sealbox_runtime::journal::UsageKey;

use super::context::{ChainArgs, RuntimeArgs, product_id};

/// `runtime license` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Deposit wei into the escrow that pays for a product's usage.
    Deposit(DepositArgs),
    /// Show the license: active, reason, balance, price, settled units, local usage.
    Status(Box<StatusArgs>),
    /// Authorize a runtime signer key to meter and settle usage for your license.
    Authorize(AuthorizeArgs),
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
    /// Customer to check (default: the key's own address).
    #[arg(long)]
    pub customer: Option<Address>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub chain: ChainArgs,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// Arguments of `runtime license authorize`.
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
    let license = client.license_status(product, customer, None).await?;
    let signer_status = client.signer_status(product, customer, me).await?;
    let journal = args.runtime.journal(args.chain.registry)?;
    let key = UsageKey {
        product: product.0,
        customer: customer.into_array(),
        signer: me.into_array(),
    };
    let kernel_key = sealbox_runtime::metering::kernel_key(&key);
    let kernel = sealbox_runtime::metering::read_pinned(&args.runtime.meter_pin_dir, kernel_key);
    if let Ok(k) = &kernel {
        journal.record_kernel_units(&key, k.epoch, k.count)?;
    }
    let usage = journal.usage(&key)?;
    if args.json {
        let value = serde_json::json!({
            "product_id": product,
            "customer": customer,
            "active": license.active,
            "reason": format!("{:?}", license.reason),
            "reason_text": license.reason.to_string(),
            "balance_wei": license.balance.to_string(),
            "available_wei": license.available.to_string(),
            "price_wei": license.price.to_string(),
            "settled_units": license.settled_units,
            "unpaid_units": license.unpaid_units,
            "block": license.block_number,
            "signer": {
                "address": me,
                "authorized": signer_status.authorized,
                "settled_units": signer_status.settled_units,
            },
            "usage": {
                "runtime_units": usage.runtime_units,
                "kernel_units": usage.kernel_units,
                "settled_units": usage.settled_units,
                "unsettled_units": usage.unsettled_units(),
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
            "settled     {} unit(s) over all signers",
            license.settled_units
        );
        println!(
            "signer      {me}: {}, settled {}",
            if signer_status.authorized {
                "authorized"
            } else {
                "NOT authorized"
            },
            signer_status.settled_units
        );
        println!(
            "usage       runtime {} / kernel {} / unsettled {}",
            usage.runtime_units,
            usage.kernel_units,
            usage.unsettled_units()
        );
        match &kernel {
            Ok(_) => println!(
                "kernel      meter maps pinned at {}",
                args.runtime.meter_pin_dir.display()
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
