//! A loaded, licensed product and its call path: admit a bought unit
//! (journal) → enter the kernel meter → run the guest.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use sealed_format::{Manifest, Metering};

use alloy::primitives::B256;
use sealbox_sandbox::component::{ComponentOutcome, ComponentProgram, Val};
use sealbox_sandbox::{CallError, NumValue, Program};

use crate::error::RuntimeError;
use crate::journal::{Journal, JournalError, Usage, UsageKey};
use crate::lease::LeaseRefusal;
use crate::metering::{KernelMeter, kernel_key};

/// The compiled code of a product: a core module on the bytes ABI (or
/// numeric exports), or a component called with typed values.
#[derive(Debug, Clone)]
pub enum Guest {
    /// A core module.
    Module(Program),
    /// A component.
    Component(ComponentProgram),
}

impl Guest {
    /// The names a caller can call: bytes-ABI entries of a module, exported
    /// functions of a component.
    pub fn entries(&self) -> Vec<String> {
        match self {
            Guest::Module(p) => p.entries(),
            Guest::Component(c) => c.functions().iter().map(|f| f.name().to_string()).collect(),
        }
    }
}

/// A sealed module that passed every check and is compiled, ready to call.
pub struct Product {
    manifest: Manifest,
    guest: Guest,
    key: UsageKey,
    kernel_key: u64,
    /// The counter slot `kernel_key` owns in the kernel meter (with `meter`).
    kernel_slot: Option<sealbox_ebpf::Slot>,
    journal: Arc<Journal>,
    meter: Option<Arc<KernelMeter>>,
    /// Units used at which the next block should be bought (`u64::MAX`: none set).
    buy_at: AtomicU64,
    /// A call reached `buy_at`, or found every bought unit used.
    wants_units: AtomicBool,
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
    /// A counter the meter cannot take (e.g. its map is full) fails a
    /// `kernel-required` module and falls back, with a warning, for a
    /// `kernel-preferred` one — the same rule as a meter that is not attached.
    pub fn new(
        manifest: Manifest,
        guest: Guest,
        key: UsageKey,
        journal: Arc<Journal>,
        mut meter: Option<Arc<KernelMeter>>,
    ) -> Result<Self, RuntimeError> {
        let kernel_key = kernel_key(&key);
        let mut kernel_slot = None;
        if let Some(attached) = &meter {
            match attached.register(kernel_key) {
                Ok(slot) => kernel_slot = Some(slot),
                Err(e) => match manifest.metering {
                    Metering::KernelRequired => {
                        return Err(RuntimeError::MeterRequired(e.into()));
                    }
                    Metering::KernelPreferred => {
                        tracing::warn!(
                            product = %manifest.name,
                            "the kernel meter cannot count this product ({e}); counting calls in the \
                             runtime only"
                        );
                        meter = None;
                    }
                },
            }
        }
        let product = Self {
            manifest,
            guest,
            key,
            kernel_key,
            kernel_slot,
            journal,
            meter,
            buy_at: AtomicU64::new(u64::MAX),
            wants_units: AtomicBool::new(false),
        };
        product.refresh_usage()?;
        Ok(product)
    }

    /// The signed manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The compiled code.
    pub fn guest(&self) -> &Guest {
        &self.guest
    }

    /// The compiled core module; an error naming the fix for a component.
    pub fn program(&self) -> Result<&Program, RuntimeError> {
        match &self.guest {
            Guest::Module(p) => Ok(p),
            Guest::Component(_) => Err(RuntimeError::Call(CallError::BadArgument {
                export: self.manifest.name.clone(),
                reason: "it is a component: call it with typed values (`runtime run --invoke \
                         'name(args)'`, or POST /v1/products/{id}/call/{function} with JSON)"
                    .into(),
            })),
        }
    }

    /// The compiled component; an error naming the fix for a core module.
    pub fn component(&self) -> Result<&ComponentProgram, RuntimeError> {
        match &self.guest {
            Guest::Component(c) => Ok(c),
            Guest::Module(_) => Err(RuntimeError::Call(CallError::BadArgument {
                export: self.manifest.name.clone(),
                reason: "it is a core module: call it with bytes (`runtime run --input`, or POST \
                         /v1/products/{id}/invoke/{export})"
                    .into(),
            })),
        }
    }

    /// The names a caller can call (see [`Guest::entries`]).
    pub fn entries(&self) -> Vec<String> {
        self.guest.entries()
    }

    /// The release being run (SHA-256 of the plaintext module): every license
    /// re-check and purchase checks this release, not just the product.
    pub fn code_hash(&self) -> B256 {
        B256::from(self.manifest.code_hash.0)
    }

    /// The usage counter this product's calls go to.
    pub fn usage_key(&self) -> &UsageKey {
        &self.key
    }

    /// Asks to be told (see [`Product::wants_units`]) once `used` units are used:
    /// the point where a buying loop should buy the next block.
    pub fn buy_when_used(&self, used: u64) {
        self.buy_at.store(used, Ordering::Relaxed);
    }

    /// Whether a call reached the point set by [`Product::buy_when_used`] or
    /// was refused for want of a bought unit since the last
    /// [`Product::take_wants_units`].
    pub fn wants_units(&self) -> bool {
        self.wants_units.load(Ordering::Relaxed)
    }

    /// Reads and clears [`Product::wants_units`].
    pub fn take_wants_units(&self) -> bool {
        self.wants_units.swap(false, Ordering::Relaxed)
    }

    /// Whether calls are counted by the kernel meter too.
    pub fn kernel_metered(&self) -> bool {
        self.meter.is_some()
    }

    /// The bytes-ABI export to call when the caller names none: the only entry.
    pub fn default_export(&self) -> Option<String> {
        let entries = self.guest.entries();
        match entries.as_slice() {
            [only] => Some(only.clone()),
            _ => None,
        }
    }

    /// Calls a bytes-ABI export with `input`. A call the sandbox refuses
    /// up front (unknown export, input too large) is not billed; one that
    /// passes is admitted and metered, then runs.
    pub fn call_bytes(&self, export: &str, input: &[u8]) -> Result<Vec<u8>, RuntimeError> {
        let call = self.program()?.bytes_call(export, input)?;
        self.admit()?;
        Ok(call.run()?)
    }

    /// Calls a numeric export with arguments parsed from text; billed like
    /// [`Product::call_bytes`] only once the export and arguments check out.
    pub fn call_numeric(&self, export: &str, args: &[&str]) -> Result<Vec<NumValue>, RuntimeError> {
        let call = self.program()?.numeric_call(export, args)?;
        self.admit()?;
        Ok(call.run()?)
    }

    /// Calls a component's function with typed arguments; billed like
    /// [`Product::call_bytes`] only once the function and the arguments'
    /// types check out. What the guest printed is logged.
    pub fn call_typed(&self, function: &str, args: Vec<Val>) -> Result<Vec<Val>, RuntimeError> {
        let call = self.component()?.call(function, args)?;
        self.admit()?;
        let outcome = call.run();
        if let Ok(ComponentOutcome { stdout, stderr, .. }) = &outcome {
            for (stream, text) in [("stdout", stdout), ("stderr", stderr)] {
                if !text.is_empty() {
                    tracing::info!(product = %self.manifest.name, function, stream, "guest output: {text}");
                }
            }
        }
        Ok(outcome?.results)
    }

    /// The unit must have been bought; it is written to the journal before
    /// the guest runs, so a crash during or after the call cannot lose it.
    fn admit(&self) -> Result<(), RuntimeError> {
        match self.journal.admit(&self.key, 1) {
            Ok(used) => {
                if used >= self.buy_at.load(Ordering::Relaxed) {
                    self.wants_units.store(true, Ordering::Relaxed);
                }
            }
            Err(e) => {
                if matches!(e, JournalError::Refused(LeaseRefusal::NotBought { .. })) {
                    self.wants_units.store(true, Ordering::Relaxed);
                }
                return Err(e.into());
            }
        }
        if let Some(slot) = self.kernel_slot {
            sealbox_ebpf::meter_call(slot);
        }
        Ok(())
    }

    /// Reads the kernel meter's count for this counter, records it in the
    /// journal (a write), and returns the counter's usage. Blocking (SQLite,
    /// the BPF map): async code calls it on the blocking pool.
    pub fn refresh_usage(&self) -> Result<Usage, RuntimeError> {
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
