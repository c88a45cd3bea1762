//! Plumbing shared by the on-chain subcommands (publish, revoke, withdraw): running async client
//! calls, connecting to a registry, wei amounts, and reporting the transactions a command sent.

use std::future::Future;

use alloy::primitives::U256;
use alloy::primitives::utils::format_ether;
use anyhow::Context;
use license_contract::{RegistryClient, RegistryError, TxInfo};
use sealbox_keyfile::PrivateKeySigner;
use sealed_format::{Address, Manifest};
use serde_json::{Value, json};

/// Largest price per unit the registry stores (`uint88`).
pub fn max_price() -> U256 {
    (U256::from(1u8) << 88) - U256::from(1u8)
}

/// Parses a price per unit in wei (decimal digits), at most [`max_price`].
pub fn parse_price(text: &str) -> Result<U256, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{text:?} is not an amount of wei (decimal digits only, e.g. 1000000000 for 1 gwei)"
        ));
    }
    let price = U256::from_str_radix(text, 10)
        .map_err(|e| format!("{text:?} is not an amount of wei: {e}"))?;
    if price > max_price() {
        return Err(format!(
            "a price of {price} wei per unit is above the registry's maximum {} (2^88 - 1)",
            max_price()
        ));
    }
    Ok(price)
}

/// Runs `future` to completion on a single-threaded runtime (the CLI does one thing at a time).
pub fn block_on<F: Future>(future: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(runtime.block_on(future))
}

/// Connects to the registry a module's manifest names, refusing unless the endpoint serves the
/// manifest's chain id; `wallet` signs the transactions.
pub async fn connect_for_module(
    rpc: &str,
    manifest: &Manifest,
    wallet: PrivateKeySigner,
) -> anyhow::Result<RegistryClient> {
    RegistryClient::connect(
        rpc,
        manifest.registry,
        Some(manifest.chain_id),
        Some(wallet),
    )
    .await
    .map_err(|err| match err {
        // Say which side to fix: the module fixes the chain id, the endpoint serves another.
        RegistryError::WrongChain { url, actual, .. } => anyhow::anyhow!(
            "the module is sealed for chain id {}, but {url} serves chain id {actual}: use an \
                 RPC endpoint of chain {} (or re-seal the module with --chain-id {actual})",
            manifest.chain_id,
            manifest.chain_id
        ),
        other => anyhow::Error::new(other).context(format!(
            "cannot use the registry {} on chain {} named in the module's manifest",
            manifest.registry, manifest.chain_id
        )),
    })
}

/// A transaction a command sent, with what it was for.
#[derive(Debug, Clone, Copy)]
pub struct SentTx {
    /// What the transaction did, e.g. `register-product`.
    pub action: &'static str,
    /// Hash, gas and block.
    pub info: TxInfo,
}

impl SentTx {
    /// The transaction as a JSON object.
    pub fn to_json(self) -> Value {
        json!({
            "action": self.action,
            "hash": self.info.hash.to_string(),
            "gas_used": self.info.gas_used,
            "block": self.info.block_number,
        })
    }

    /// Prints the transaction as one `tx` line.
    pub fn print(self) {
        println!(
            "tx         {:<17} {} gas {} block {}",
            self.action, self.info.hash, self.info.gas_used, self.info.block_number
        );
    }
}

/// Total gas of `txs`.
pub fn total_gas(txs: &[SentTx]) -> u64 {
    txs.iter().map(|t| t.info.gas_used).sum()
}

/// `amount` as `N wei (X ETH)`.
pub fn wei_text(amount: U256) -> String {
    format!("{amount} wei ({} ETH)", format_ether(amount))
}

/// The registry a module-bound command talks to: the manifest's, which `--registry` (if given)
/// must repeat, so a typo cannot send the command to another deployment.
pub fn manifest_registry(manifest: Address, given: Option<Address>) -> anyhow::Result<Address> {
    match given {
        Some(given) if given != manifest => anyhow::bail!(
            "--registry {given} does not match the registry {manifest} the module is sealed for; \
             a module is published only to the registry named in its manifest (re-seal it for \
             {given}, or drop --registry)"
        ),
        _ => Ok(manifest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_decimal_wei_within_uint88() {
        assert_eq!(parse_price("0"), Ok(U256::ZERO));
        assert_eq!(parse_price("1000000000"), Ok(U256::from(1_000_000_000u64)));
        let max = "309485009821345068724781055";
        assert_eq!(parse_price(max), Ok(max_price()));
        assert!(
            parse_price("309485009821345068724781056")
                .unwrap_err()
                .contains("maximum")
        );
        for bad in ["", "-1", "1.5", "0x10", "1gwei", " 1"] {
            assert!(
                parse_price(bad)
                    .unwrap_err()
                    .contains("not an amount of wei"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn registry_override_must_match_the_manifest() {
        let a = Address::repeat_byte(1);
        let b = Address::repeat_byte(2);
        assert_eq!(manifest_registry(a, None).unwrap(), a);
        assert_eq!(manifest_registry(a, Some(a)).unwrap(), a);
        let err = manifest_registry(a, Some(b)).unwrap_err().to_string();
        assert!(
            err.contains(&a.to_string()) && err.contains(&b.to_string()),
            "{err}"
        );
    }
}

/// The options of a vendor command that sends one transaction for a sealed module (`revoke`,
/// `customer`): the endpoint, the vendor's key, the registry to insist on, the output form.
#[derive(Debug, clap::Args)]
pub struct VendorTxArgs {
    /// JSON-RPC endpoint (http or https) of the chain the module is sealed for.
    #[arg(long, value_name = "URL")]
    pub rpc: String,
    /// The vendor's key (pays the gas): keystore v3 JSON, 0600 raw hex file, or env:VARNAME.
    #[arg(long, value_name = "FILE")]
    pub key: std::path::PathBuf,
    /// The registry address; if given it must equal the manifest's.
    #[arg(long, value_name = "ADDR", value_parser = crate::keys::parse_address)]
    pub registry: Option<Address>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}
