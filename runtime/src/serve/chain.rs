//! The server's connection to the registry: made lazily, kept while it
//! works, made again after the RPC was unreachable at start.

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use license_contract::RegistryClient;
use tokio::sync::Mutex;

use crate::deployment::Deployment;
use crate::error::RuntimeError;
use crate::journal::LastDeployment;

/// Where the registry is and the wallet that pays for the purchases' gas.
pub struct ChainLink {
    rpc: String,
    registry: Address,
    deployment: LastDeployment,
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
    /// connection must reach `deployment` (the products' counts belong to it):
    /// a restarted chain with the registry at the same address is refused.
    pub fn new(
        rpc: String,
        registry: Address,
        deployment: LastDeployment,
        wallet: PrivateKeySigner,
        client: Option<RegistryClient>,
    ) -> Self {
        Self {
            rpc,
            registry,
            deployment,
            wallet,
            client: Mutex::new(client),
        }
    }

    /// The connected client, connecting first if needed. The client checks the
    /// registry's code and EIP-712 domain on connect, so a reconnection to a
    /// wrong endpoint fails here rather than signing for the wrong domain.
    pub async fn client(&self) -> Result<RegistryClient, RuntimeError> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        let client = RegistryClient::connect(
            &self.rpc,
            self.registry,
            Some(self.deployment.chain_id),
            Some(self.wallet.clone()),
        )
        .await?;
        let found = Deployment::of(&client).await?.id();
        if found != self.deployment.id {
            return Err(RuntimeError::DeploymentMismatch {
                expected: self.deployment.id.into(),
                found: found.into(),
            });
        }
        tracing::info!(rpc = %self.rpc, "connected to the registry");
        *slot = Some(client.clone());
        Ok(client)
    }
}
