//! The server's shared state: the served products, the call pool, the
//! buying loop's wake-up and the signer's gas balance.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use alloy::primitives::{B256, U256};
use tokio::sync::Notify;

use super::auth::BearerToken;
use super::metrics::ProductStats;
use super::pool::CallPool;
use crate::journal::Journal;
use crate::product::Product;

/// One served product.
pub(crate) struct Served {
    pub(crate) product: Arc<Product>,
    pub(crate) id: B256,
    pub(crate) name: String,
    pub(crate) version: String,
    /// Bytes-ABI entries of a module, functions of a component; a request for
    /// anything else is refused before admission.
    pub(crate) entries: Vec<String>,
    pub(crate) stats: ProductStats,
}

impl Served {
    pub(crate) fn new(product: Product) -> Self {
        let manifest = product.manifest();
        let id = manifest.product_id;
        let name = manifest.name.clone();
        let version = manifest.version.clone();
        let entries = product.entries();
        let stats = ProductStats::new(id, &name, product.kernel_metered());
        Self {
            product: Arc::new(product),
            id,
            name,
            version,
            entries,
            stats,
        }
    }

    /// `name version` for messages.
    pub(crate) fn label(&self) -> String {
        format!("{} {}", self.name, self.version)
    }
}

/// State shared by the handlers and the loops.
pub(crate) struct App {
    pub(crate) products: Vec<Arc<Served>>,
    by_id: HashMap<B256, Arc<Served>>,
    pub(crate) journal: Arc<Journal>,
    pub(crate) token: Option<BearerToken>,
    pub(crate) max_input_bytes: usize,
    /// The worker threads guest calls run on.
    pub(crate) pool: CallPool,
    /// Woken when a product's next block of units should be bought now.
    pub(crate) buy_wake: Notify,
    unauthorized: AtomicU64,
    /// The signer's ETH balance (it pays every purchase's gas), as last read.
    signer_balance: Mutex<Option<U256>>,
}

impl App {
    pub(crate) fn new(
        products: Vec<Arc<Served>>,
        journal: Arc<Journal>,
        token: Option<BearerToken>,
        max_input_bytes: usize,
        pool: CallPool,
    ) -> Self {
        let by_id = products.iter().map(|s| (s.id, Arc::clone(s))).collect();
        Self {
            products,
            by_id,
            journal,
            token,
            max_input_bytes,
            pool,
            buy_wake: Notify::new(),
            unauthorized: AtomicU64::new(0),
            signer_balance: Mutex::new(None),
        }
    }

    pub(crate) fn find(&self, id: &B256) -> Option<&Arc<Served>> {
        self.by_id.get(id)
    }

    /// Wakes the buying loop when the product's last call asked for more units.
    pub(crate) fn after_call(&self, served: &Served) {
        if served.product.wants_units() {
            self.buy_wake.notify_one();
        }
    }

    /// Records the signer's ETH balance.
    pub(crate) fn set_signer_balance(&self, wei: U256) {
        *self
            .signer_balance
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(wei);
    }

    /// The signer's ETH balance as last read (`None` = never read).
    pub(crate) fn signer_balance(&self) -> Option<U256> {
        *self
            .signer_balance
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Stops taking calls and waits until every queued and running call has
    /// finished (their units are admitted by then).
    pub(crate) async fn drain_calls(self: &Arc<Self>) {
        let app = Arc::clone(self);
        if let Err(e) = tokio::task::spawn_blocking(move || app.pool.close_and_join()).await {
            tracing::warn!("waiting for the call workers failed: {e}");
        }
    }

    /// Calls answered with output, and invoke requests refused or failed.
    pub(crate) fn call_totals(&self) -> (u64, u64) {
        self.products.iter().fold((0, 0), |(ok, failed), s| {
            (ok + s.stats.calls_ok(), failed + s.stats.errors_total())
        })
    }

    pub(crate) fn unauthorized(&self) {
        self.unauthorized.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn unauthorized_total(&self) -> u64 {
        self.unauthorized.load(Ordering::Relaxed)
    }
}
