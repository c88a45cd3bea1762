//! The server's connection to the registry: made lazily, kept while it
//! works, made again after the RPC was unreachable at start.

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use license_contract::{RegistryClient, RegistryError};
use tokio::sync::Mutex;

/// Where the registry is and the wallet that pays for settlement gas.
pub struct ChainLink {
    rpc: String,
    registry: Address,
    chain_id: Option<u64>,
    wallet: PrivateKeySigner,
    client: Mutex<Option<RegistryClient>>,
}

impl std::fmt::Debug for ChainLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainLink")
            .field("rpc", &self.rpc)
            .field("registry", &self.registry)
            .field("wallet", &self.wallet.address())
            .finish()
    }
}

impl ChainLink {
    /// A link to `registry` through `rpc`, starting from `client` when the
    /// caller is already connected (`None` = connect on first use). A later
    /// connection must serve `chain_id` when it is known (the products were
    /// checked against it).
    pub fn new(
        rpc: String,
        registry: Address,
        chain_id: Option<u64>,
        wallet: PrivateKeySigner,
        client: Option<RegistryClient>,
    ) -> Self {
        Self {
            rpc,
            registry,
            chain_id: client.as_ref().map(RegistryClient::chain_id).or(chain_id),
            wallet,
            client: Mutex::new(client),
        }
    }

    /// The connected client, connecting first if needed. The client checks the
    /// registry's code and EIP-712 domain on connect, so a reconnection to a
    /// wrong endpoint fails here rather than signing for the wrong domain.
    pub async fn client(&self) -> Result<RegistryClient, RegistryError> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        let client = RegistryClient::connect(
            &self.rpc,
            self.registry,
            self.chain_id,
            Some(self.wallet.clone()),
        )
        .await?;
        tracing::info!(rpc = %self.rpc, "connected to the registry");
        *slot = Some(client.clone());
        Ok(client)
    }
}
