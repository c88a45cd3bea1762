//! Keys of the test chains: anvil's dev accounts and 0600 key files. Funded
//! random keys come from [`Anvil::funded_key`](crate::Anvil::funded_key).

use std::path::{Path, PathBuf};

use alloy::signers::local::PrivateKeySigner;

/// Private keys of anvil's ten dev accounts (its default mnemonic's, public
/// knowledge), each funded with 10 000 ETH at genesis.
pub const DEV_KEYS: [&str; 10] = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
];

/// Anvil dev account `i` (0 to 9) as a signer. Account 0 deploys the
/// registries of [`Anvil::deploy`](crate::Anvil::deploy).
pub fn dev_key(i: usize) -> PrivateKeySigner {
    let hex = DEV_KEYS
        .get(i)
        .unwrap_or_else(|| panic!("anvil has dev accounts 0 to 9, not {i}"));
    hex.parse().expect("a dev key parses")
}

/// Writes `key` as a raw-hex key file `dir/name` (mode 0600, as the CLIs
/// require) and returns its path.
pub fn key_file(dir: &Path, name: &str, key: &PrivateKeySigner) -> PathBuf {
    let path = dir.join(name);
    sealbox_keyfile::write_raw(&path, key)
        .unwrap_or_else(|e| panic!("write the key file {}: {e}", path.display()));
    path
}
