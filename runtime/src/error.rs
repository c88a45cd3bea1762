//! The runtime's errors: each names the check or step that failed and maps to
//! its own process exit code, so scripts can tell "unlicensed" from "tampered".

use alloy::primitives::Address;
use license_contract::{Reason, RegistryError};
use sealbox_report::Exit;
use sealbox_sandbox::{CallError, SandboxError};
use sealed_format::FormatError;

use crate::journal::JournalError;
use crate::lease::LeaseRefusal;
use crate::metering::MeterUnavailable;
use crate::state_dir::StateDirError;

/// The exit codes `runtime` uses (rows of the shared table), for `--help`.
pub fn exit_codes() -> Vec<Exit> {
    let own: &[Exit] = &[
        Exit::ChainMismatch,
        Exit::RegistryMismatch,
        Exit::ChainUnreachable,
        Exit::Unlicensed,
        Exit::SignerNotAuthorized,
        Exit::NoUnits,
        Exit::MeterRequired,
        Exit::State,
        Exit::Purchase,
        Exit::WrongUnit,
        Exit::Sandbox,
        Exit::Guest,
    ];
    [Exit::OPENING, own].concat()
}

/// Why loading or running a sealed module failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A check of the sealed file itself failed (signature, hash, manifest, decryption…).
    #[error("sealed module rejected at check `{check}`: {0}", check = .0.check())]
    Format(#[from] FormatError),
    /// The manifest names another chain than the one the customer trusts.
    #[error(
        "chain mismatch: the module is bound to chain {manifest} but the configured RPC serves \
         chain {configured}"
    )]
    ChainMismatch {
        /// Chain id in the manifest.
        manifest: u64,
        /// Chain id of the configured RPC (or of the stored lease when offline).
        configured: u64,
    },
    /// The manifest names another registry than the one the customer trusts.
    #[error(
        "registry mismatch: the module names registry {manifest} but this runtime trusts \
         {configured}; a vendor cannot choose the registry that licenses its own module"
    )]
    RegistryMismatch {
        /// Registry in the manifest.
        manifest: Address,
        /// Registry the customer configured.
        configured: Address,
    },
    /// The manifest bills another unit than the one this command meters
    /// (e.g. a `tls_handshake` tariff given to `runtime run`, which bills calls).
    #[error("the module bills per `{unit}`, but `runtime {command}` meters `{expected}`{hint}")]
    WrongUnit {
        /// The manifest's `unit`.
        unit: String,
        /// The unit this command meters.
        expected: String,
        /// The subcommand.
        command: &'static str,
        /// What to run instead, when known (starts with "; ").
        hint: &'static str,
    },
    /// The RPC now serves another deployment of the registry than the one
    /// this process's counts belong to (a restarted development chain).
    #[error(
        "the RPC now serves another deployment of the registry (id {found}, expected {expected}: \
         a restarted or different chain); its counts are not this deployment's, restart the \
         runtime to run there"
    )]
    DeploymentMismatch {
        /// The deployment this process started with.
        expected: alloy::primitives::B256,
        /// The deployment the RPC serves now.
        found: alloy::primitives::B256,
    },
    /// A registry client call failed (RPC unreachable, wrong chain, no
    /// registry at the address, a read reverted…); the client's message names
    /// the action that failed and what to do.
    #[error("the chain: {0}")]
    Chain(#[from] RegistryError),
    /// The RPC is unreachable and nothing on record lets the module run offline.
    #[error("the chain cannot be reached and the module cannot run offline: {0}")]
    Offline(String),
    /// The chain says the customer is not licensed for this release.
    #[error("not licensed: {reason} for customer {customer} ({})", .reason.remedy())]
    Unlicensed {
        /// The contract's reason code.
        reason: Reason,
        /// The customer checked.
        customer: Address,
    },
    /// The runtime's key may not sign usage receipts for this customer.
    #[error(
        "signer {signer} is not authorized to meter usage for customer {customer}; the customer \
         runs `runtime license authorize --signer {signer}` with their own key"
    )]
    SignerNotAuthorized {
        /// The runtime's signer.
        signer: Address,
        /// The customer.
        customer: Address,
    },
    /// The lease does not admit another call (license lapsed, or every bought unit used).
    #[error("call refused: {0}")]
    Lease(#[from] LeaseRefusal),
    /// No unit can be bought now (no escrow, a withdrawal pending).
    #[error("cannot buy units: {0}")]
    CannotBuy(String),
    /// The product's price is above the customer's `--max-price`.
    #[error(
        "the product's price is {price} wei per unit, above the --max-price of {cap} wei this \
         runtime may pay; nothing was bought (raise --max-price to accept the new price)"
    )]
    PriceAboveCap {
        /// The price on chain.
        price: u128,
        /// The customer's cap.
        cap: u128,
    },
    /// A purchase transaction failed or was refused by the contract.
    #[error("buying units failed: {0}")]
    Purchase(#[source] RegistryError),
    /// The state directory cannot be used (locked by another process, unreadable).
    #[error("{0}")]
    StateDir(#[from] StateDirError),
    /// The usage journal failed.
    #[error("{0}")]
    Journal(JournalError),
    /// The module requires the kernel meter and it could not be attached.
    #[error(
        "the module requires kernel metering (`kernel-required`) but the eBPF meter is not \
         attached: {0}"
    )]
    MeterRequired(#[source] MeterUnavailable),
    /// The sandbox refused the module (imports, ABI, limits) or could not start.
    #[error("{0}")]
    Sandbox(#[from] SandboxError),
    /// The guest call failed (trap, runaway loop, memory limit, bad export…).
    #[error("{0}")]
    Call(#[from] CallError),
    /// A tariff answered outside the tariff ABI (layout, flags, monotony).
    #[error("{0}")]
    Tariff(#[from] crate::event_meter::tariff::TariffError),
}

impl From<JournalError> for RuntimeError {
    fn from(e: JournalError) -> Self {
        match e {
            JournalError::Refused(r) => RuntimeError::Lease(r),
            other => RuntimeError::Journal(other),
        }
    }
}

impl RuntimeError {
    /// Short stable name of the failed step, for logs, JSON errors and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            RuntimeError::Format(e) => e.check().name(),
            RuntimeError::ChainMismatch { .. } => "chain-mismatch",
            RuntimeError::RegistryMismatch { .. } => "registry-mismatch",
            RuntimeError::WrongUnit { .. } => "wrong-unit",
            RuntimeError::DeploymentMismatch { .. } => "deployment-mismatch",
            RuntimeError::Chain(_) => "chain",
            RuntimeError::Offline(_) => "offline",
            RuntimeError::Unlicensed { .. } => "unlicensed",
            RuntimeError::SignerNotAuthorized { .. } => "signer-not-authorized",
            RuntimeError::Lease(LeaseRefusal::NotBought {
                cannot_buy: None, ..
            }) => "prepaying",
            RuntimeError::Lease(LeaseRefusal::NotBought { .. }) => "not-bought",
            RuntimeError::Lease(LeaseRefusal::Inactive(_)) => "unlicensed",
            RuntimeError::Lease(LeaseRefusal::SignerDeauthorized(_)) => "signer-not-authorized",
            RuntimeError::CannotBuy(_) => "cannot-buy",
            RuntimeError::PriceAboveCap { .. } => "price-above-cap",
            RuntimeError::Purchase(_) => "purchase",
            RuntimeError::StateDir(_) => "state-dir",
            RuntimeError::Journal(_) => "journal",
            RuntimeError::MeterRequired(_) => "meter-required",
            RuntimeError::Sandbox(_) => "sandbox",
            RuntimeError::Call(_) => "call",
            RuntimeError::Tariff(_) => "tariff",
        }
    }

    /// Process exit code, a row of the shared table (`sealbox_report::Exit`): 10–20 for the
    /// sealed-file checks (as `packager verify`), 30–39 for trust, licensing, buying and the
    /// billing unit, 40–41 for the sandbox and the guest.
    pub fn exit_code(&self) -> Exit {
        match self {
            RuntimeError::Format(e) => {
                Exit::from_code(e.check().exit_code()).unwrap_or(Exit::Failure)
            }
            RuntimeError::ChainMismatch { .. } | RuntimeError::DeploymentMismatch { .. } => {
                Exit::ChainMismatch
            }
            RuntimeError::RegistryMismatch { .. } => Exit::RegistryMismatch,
            RuntimeError::Chain(_) | RuntimeError::Offline(_) => Exit::ChainUnreachable,
            RuntimeError::Unlicensed { .. } => Exit::Unlicensed,
            RuntimeError::SignerNotAuthorized { .. }
            | RuntimeError::Lease(LeaseRefusal::SignerDeauthorized(_)) => Exit::SignerNotAuthorized,
            RuntimeError::Lease(_)
            | RuntimeError::CannotBuy(_)
            | RuntimeError::PriceAboveCap { .. } => Exit::NoUnits,
            RuntimeError::MeterRequired(_) => Exit::MeterRequired,
            RuntimeError::Journal(_) | RuntimeError::StateDir(_) => Exit::State,
            RuntimeError::Purchase(_) => Exit::Purchase,
            RuntimeError::WrongUnit { .. } => Exit::WrongUnit,
            RuntimeError::Sandbox(_) => Exit::Sandbox,
            RuntimeError::Call(_) | RuntimeError::Tariff(_) => Exit::Guest,
        }
    }

    /// Whether the failure was a license or payment refusal (HTTP 402 when serving).
    pub fn is_payment_refusal(&self) -> bool {
        matches!(
            self,
            RuntimeError::Unlicensed { .. }
                | RuntimeError::Lease(_)
                | RuntimeError::SignerNotAuthorized { .. }
                | RuntimeError::CannotBuy(_)
                | RuntimeError::PriceAboveCap { .. }
        )
    }
}
