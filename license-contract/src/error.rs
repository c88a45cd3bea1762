//! The client's error type: every failure names what went wrong and, where it can, what to do.

use alloy::primitives::{Address, B256, U256};

use crate::revert::ContractRevert;

/// Errors of the registry client.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The RPC URL does not parse.
    #[error("invalid RPC URL {url:?}: {reason}")]
    InvalidRpcUrl {
        /// The URL as given.
        url: String,
        /// Why it does not parse.
        reason: String,
    },
    /// The RPC endpoint does not answer.
    #[error(
        "cannot reach the Ethereum RPC endpoint {url}: {source}; check the URL and that the node is running"
    )]
    Unreachable {
        /// The endpoint.
        url: String,
        /// Transport failure.
        #[source]
        source: Box<alloy::transports::TransportError>,
    },
    /// The endpoint serves another chain than the one configured.
    #[error(
        "wrong chain: {url} serves chain id {actual}, but chain id {expected} was expected; point to the right RPC \
         endpoint or fix the configured chain id"
    )]
    WrongChain {
        /// The endpoint.
        url: String,
        /// Expected chain id.
        expected: u64,
        /// Chain id the endpoint reports.
        actual: u64,
    },
    /// No code at the registry address.
    #[error(
        "no contract at {address} on chain {chain_id}: check the registry address (or deploy one with `registry deploy`)"
    )]
    NoContract {
        /// The address.
        address: Address,
        /// The chain.
        chain_id: u64,
    },
    /// Code exists but it does not behave like this version of `LicenseRegistry`.
    #[error("the contract at {address} is not a compatible LicenseRegistry: {reason}")]
    NotARegistry {
        /// The address.
        address: Address,
        /// What did not match.
        reason: String,
    },
    /// A transaction was requested from a read-only client.
    #[error("cannot {action}: no signing key loaded (pass --key FILE)")]
    NoWallet {
        /// What was attempted.
        action: &'static str,
    },
    /// The sender cannot pay value + gas.
    #[error(
        "cannot {action}: insufficient funds: account {account} holds {balance} wei, not enough for the value plus \
         gas; fund it and retry"
    )]
    InsufficientFunds {
        /// What was attempted.
        action: &'static str,
        /// The paying account.
        account: Address,
        /// Its balance.
        balance: U256,
    },
    /// The contract refused with one of its custom errors.
    #[error("cannot {action}: {revert}")]
    Reverted {
        /// What was attempted.
        action: &'static str,
        /// The decoded custom error.
        revert: ContractRevert,
    },
    /// The call reverted with data that is not a `LicenseRegistry` error.
    #[error("cannot {action}: the contract reverted ({reason}); is the registry address right?")]
    RevertedOther {
        /// What was attempted.
        action: &'static str,
        /// Decoded revert reason (panic code, reason string or unknown selector).
        reason: String,
    },
    /// The transaction was mined but failed.
    #[error(
        "cannot {action}: transaction {tx_hash} was mined but reverted; check the registry state and retry"
    )]
    TxFailed {
        /// What was attempted.
        action: &'static str,
        /// The failed transaction.
        tx_hash: B256,
    },
    /// The receipt lacks an event the contract always emits.
    #[error(
        "{action}: transaction {tx_hash} succeeded but emitted no {event} event; is the registry address right?"
    )]
    MissingEvent {
        /// What was attempted.
        action: &'static str,
        /// The transaction.
        tx_hash: B256,
        /// The expected event.
        event: &'static str,
    },
    /// The node does not serve the genesis block.
    #[error(
        "the node at {url} does not serve block 0 (the genesis block); use a full node or an archive RPC endpoint"
    )]
    NoGenesisBlock {
        /// The endpoint.
        url: String,
    },
    /// The contract returned a reason code this client does not know.
    #[error("the registry returned unknown license reason code {0}; upgrade the client")]
    UnknownReason(u8),
    /// Signing a receipt failed.
    #[error("signing the usage receipt failed: {0}")]
    Signing(#[source] alloy::signers::Error),
    /// A signature does not recover.
    #[error("the usage receipt signature is invalid: {0}")]
    BadSignature(#[source] alloy::primitives::SignatureError),
    /// Any other RPC failure.
    #[error("cannot {action}: RPC error: {source}")]
    Rpc {
        /// What was attempted.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: Box<alloy::contract::Error>,
    },
}

impl RegistryError {
    /// The decoded contract error, when the contract refused.
    pub fn revert(&self) -> Option<&ContractRevert> {
        match self {
            RegistryError::Reverted { revert, .. } => Some(revert),
            _ => None,
        }
    }
}
