//! A loaded, licensed product and its call path: admit under the lease
//! (journal) → enter the kernel meter → run the guest.

use std::sync::Arc;

use sealed_format::Manifest;

use crate::error::RuntimeError;
use crate::gate::unix_now;
use crate::journal::{Journal, Usage, UsageKey};
use crate::lease::LeasePolicy;
use crate::metering::{KernelMeter, kernel_key};
use crate::sandbox::{NumValue, Program};

/// A sealed module that passed every check and is compiled, ready to call.
pub struct Product {
    manifest: Manifest,
    program: Program,
    key: UsageKey,
    kernel_key: u64,
    journal: Arc<Journal>,
    meter: Option<Arc<KernelMeter>>,
    policy: LeasePolicy,
}

impl std::fmt::Debug for Product {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Product")
            .field("name", &self.manifest.name)
            .field("product_id", &self.manifest.product_id)
            .field("kernel_metered", &self.meter.is_some())
            .finish()
    }
}

impl Product {
    /// Wraps a compiled program; registers its counter with the kernel meter.
    pub fn new(
        manifest: Manifest,
        program: Program,
        key: UsageKey,
        journal: Arc<Journal>,
        meter: Option<Arc<KernelMeter>>,
        policy: LeasePolicy,
    ) -> Result<Self, RuntimeError> {
        let kernel_key = kernel_key(&key);
        if let Some(meter) = &meter {
            meter
                .register(kernel_key)
                .map_err(|e| RuntimeError::MeterRequired(e.to_string()))?;
        }
        let product = Self {
            manifest,
            program,
            key,
            kernel_key,
            journal,
            meter,
            policy,
        };
        product.usage()?;
        Ok(product)
    }

    /// The signed manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The compiled program.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// The usage counter this product's calls go to.
    pub fn usage_key(&self) -> &UsageKey {
        &self.key
    }

    /// Whether calls are counted by the kernel meter too.
    pub fn kernel_metered(&self) -> bool {
        self.meter.is_some()
    }

    /// The bytes-ABI export to call when the caller names none: the only entry.
    pub fn default_export(&self) -> Option<String> {
        let entries = self.program.entries();
        match entries.as_slice() {
            [only] => Some(only.clone()),
            _ => None,
        }
    }

    /// Calls a bytes-ABI export with `input`. A call the sandbox refuses
    /// up front (unknown export, input too large) is not billed; one that
    /// passes is admitted and metered, then runs.
    pub fn call_bytes(&self, export: &str, input: &[u8]) -> Result<Vec<u8>, RuntimeError> {
        let call = self.program.bytes_call(export, input)?;
        self.admit()?;
        Ok(call.run()?)
    }

    /// Calls a numeric export with arguments parsed from text; billed like
    /// [`Product::call_bytes`] only once the export and arguments check out.
    pub fn call_numeric(&self, export: &str, args: &[&str]) -> Result<Vec<NumValue>, RuntimeError> {
        let call = self.program.numeric_call(export, args)?;
        self.admit()?;
        Ok(call.run()?)
    }

    /// The unit is written to the journal before the guest runs, so a crash
    /// during or after the call cannot lose it.
    fn admit(&self) -> Result<(), RuntimeError> {
        self.journal.admit(&self.key, 1, unix_now(), &self.policy)?;
        sealbox_ebpf::meter_call(self.kernel_key);
        Ok(())
    }

    /// The counter's usage, with the kernel count refreshed from the meter.
    pub fn usage(&self) -> Result<Usage, RuntimeError> {
        if let Some(meter) = &self.meter {
            match crate::metering::read_attached(meter, self.kernel_key) {
                Ok(k) => self
                    .journal
                    .record_kernel_units(&self.key, k.epoch, k.count)?,
                Err(e) => tracing::warn!("reading the kernel meter failed: {e}"),
            }
        }
        Ok(self.journal.usage(&self.key)?)
    }
}
