//! The wasmtime sandbox that sealed modules run in: the security boundary
//! between the vendor's code and the customer's machine. The runtime hands
//! it plaintext Wasm after the license check; everything the vendor's code
//! can do happens here, so this crate imports nothing from the rest of
//! Sealbox (no chain, HTTP, database or kernel code) and can be read and
//! audited on its own.
//!
//! What it guarantees:
//!
//! * **No imports at all.** [`Sandbox::compile`] refuses a module that
//!   imports anything (no WASI, no host functions, not even a memory),
//!   before compiling it and again on the compiled module: the guest cannot
//!   reach the customer's files, sockets, clock or environment. Its only
//!   output is the result of a call, to the caller.
//! * **Components: WASI without capabilities, nothing else.**
//!   [`Sandbox::compile_component`] loads a WebAssembly component, which may
//!   import only the WASI 0.2 interfaces of
//!   [`component::GRANTED_INTERFACES`] — no directories, sockets,
//!   environment or arguments; stdout and stderr captured per call with a
//!   cap — and refuses any other import (but type-only ones) by name before
//!   any instance exists. Calls are typed (WIT values from WAVE text or JSON)
//!   and run under the same limits.
//! * **Fuel.** Every call gets a deterministic instruction budget (the
//!   manifest's `fuel`, capped by [`SandboxConfig::max_fuel`]); running out
//!   ends the call with [`CallError::OutOfFuel`]. A customer may turn fuel
//!   metering off ([`SandboxConfig::consume_fuel`]); the deadline still holds.
//! * **Epoch deadline.** A ticker thread advances the engine's epoch every
//!   [`SandboxConfig::epoch_tick`]; a call (including the module's start
//!   function) that runs past its wall-clock deadline ends with
//!   [`CallError::DeadlineExceeded`], within one tick.
//! * **Memory cap.** A per-call `ResourceLimiter` ends a call that grows
//!   linear memory past the program's limit ([`CallError::MemoryLimit`])
//!   rather than letting `memory.grow` fail silently; a module whose initial
//!   memory is over the limit is refused at load. At most one memory and one
//!   table per module instance, tables capped too; a component's memories
//!   count together against the limit.
//! * **Pooling allocator, a fresh instance per call.** Instances come from
//!   wasmtime's pooling allocator ([`SandboxConfig::pool_instances`] slots,
//!   each slot a call in flight, of a module or a component; a full pool is
//!   [`CallError::PoolExhausted`], not a hang). No state survives from one call to the next: each starts
//!   from the module's initial image. By default the first MiB of each
//!   pooled memory stays resident and is reset with `memset` instead of
//!   `madvise` ([`SandboxConfig::keep_resident_bytes`]): no TLB shootdown
//!   and page faults on every call.
//! * **An authenticated compile cache.** `Module::deserialize` runs machine
//!   code from its input and is unsafe on bytes an attacker may have written,
//!   so a cached artifact is only deserialized after its HMAC-SHA256 verifies
//!   under a key kept in the private (0700) cache directory; the MAC covers
//!   the code hash and the engine fingerprint too. Anything else is logged
//!   and recompiled, never loaded. (wasmtime's own `cache` feature is not
//!   used.)
//! * **Bytes ABI v1.** A bytes entry is an export `(ptr: i32, len: i32) ->
//!   i64`; the guest exports `memory` and `sealbox_alloc(len: i32) -> i32`;
//!   the input is copied into the buffer `sealbox_alloc` returns and the
//!   result `(out_ptr << 32) | out_len` names the output range, which is
//!   bounds-checked and size-capped before it is copied out. Exports with
//!   only numeric parameters and results can be called with
//!   [`Program::call_numeric`].
//!
//! A trap, runaway loop or memory bomb ends only that call: the [`Program`]
//! keeps serving. [`SandboxError`] says why a sandbox or program could not be
//! set up, [`CallError`] why one call failed.
//!
//! In code:
//!
//! * One [`Sandbox`] (one wasmtime `Engine`) per process, with the pooling
//!   instance allocator and an epoch ticker thread.
//! * [`Sandbox::compile`] checks the code hash, refuses imports, checks the
//!   bytes ABI, and loads machine code from the authenticated cache keyed by
//!   code hash when it can.
//! * [`Program::call_bytes`] / [`Program::call_numeric`] run each call in a
//!   fresh instance under the program's fuel, deadline and memory limits.

#![deny(missing_docs)]

mod abi;
mod cache;
pub mod component;
mod config;
mod engine;
mod error;
mod limiter;
mod program;
mod slots;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::{Engine, Linker, Module};

pub use abi::{ALLOC_EXPORT, MEMORY_EXPORT};
pub use config::{DEFAULT_CACHE_DIR, EffectiveLimits, GuestLimits, SandboxConfig, WASM_PAGE_BYTES};
pub use error::{CallError, SandboxError};
pub use program::{BytesCall, CompileStats, NumValue, NumericCall, Program};

use cache::ModuleCache;
use engine::EpochTicker;
use program::{CallState, ProgramInner};

/// State shared by the sandbox and every program it produced; the epoch
/// ticker stops when the last of them is dropped.
pub(crate) struct Shared {
    engine: Engine,
    max_input_bytes: usize,
    max_output_bytes: usize,
    max_table_elements: usize,
    epoch_tick: Duration,
    slots: Arc<slots::CallSlots>,
    _ticker: EpochTicker,
}

/// The process's WebAssembly sandbox: one engine, one pool, one module cache.
pub struct Sandbox {
    shared: Arc<Shared>,
    config: SandboxConfig,
    cache: Option<ModuleCache>,
    compilations: AtomicU64,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("config", &self.config)
            .field("cache", &self.cache)
            .field("compilations", &self.compilations())
            .finish()
    }
}

impl Sandbox {
    /// Creates the engine (pooling allocator sized by `cfg`), starts the
    /// epoch ticker and opens the module cache (creating the directory 0700
    /// and its key 0600 on first use).
    pub fn new(cfg: SandboxConfig) -> Result<Sandbox, SandboxError> {
        cfg.validate()?;
        let engine = engine::build_engine(&cfg)?;
        let cache = match &cfg.cache_dir {
            Some(dir) => Some(ModuleCache::open(dir, engine::engine_fingerprint(&engine))?),
            None => None,
        };
        let ticker = EpochTicker::start(&engine, cfg.epoch_tick)?;
        Ok(Sandbox {
            shared: Arc::new(Shared {
                engine,
                max_input_bytes: cfg.max_input_bytes,
                max_output_bytes: cfg.max_output_bytes,
                max_table_elements: cfg.max_table_elements,
                epoch_tick: cfg.epoch_tick,
                slots: slots::CallSlots::new(cfg.pool_instances),
                _ticker: ticker,
            }),
            config: cfg,
            cache,
            compilations: AtomicU64::new(0),
        })
    }

    /// Loads a plaintext module as a [`Program`].
    ///
    /// In order: limits resolved against the config → SHA-256 of `wasm`
    /// must equal `code_hash` → any import refused → machine code from the
    /// cache if an authenticated entry exists, else compiled (and cached) →
    /// exports checked against the bytes ABI → initial memory within the
    /// limit → pre-linked. Nothing is compiled if an earlier step fails.
    pub fn compile(
        &self,
        code_hash: [u8; 32],
        wasm: &[u8],
        limits: &GuestLimits,
    ) -> Result<Program, SandboxError> {
        let limits = self.config.resolve(limits)?;
        let actual: [u8; 32] = Sha256::digest(wasm).into();
        if actual != code_hash {
            return Err(SandboxError::CodeHashMismatch {
                expected: format!("0x{}", hex::encode(code_hash)),
                actual: format!("0x{}", hex::encode(actual)),
            });
        }
        abi::check_no_imports(wasm)?;

        let started = Instant::now();
        let (module, from_cache) = self.load_or_compile(&code_hash, wasm)?;
        let stats = CompileStats {
            from_cache,
            elapsed: started.elapsed(),
        };

        // Defence in depth: the pre-check parsed the same bytes.
        if let Some(import) = module.imports().next() {
            return Err(SandboxError::ImportsNotAllowed {
                imports: vec![format!("{}::{}", import.module(), import.name())],
            });
        }
        let resources = module.resources_required();
        if resources.num_memories > 1 || resources.num_tables > 1 {
            return Err(SandboxError::Unsupported(format!(
                "it declares {} memories and {} tables; a guest gets at most one of each",
                resources.num_memories, resources.num_tables
            )));
        }
        if let Some(initial_pages) = resources.max_initial_memory_size
            && initial_pages > limits.memory_pages
        {
            return Err(SandboxError::MemoryTooLarge {
                initial_pages,
                limit_pages: limits.memory_pages,
            });
        }
        if let Some(initial) = resources.max_initial_table_size
            && initial > self.config.max_table_elements as u64
        {
            return Err(SandboxError::Unsupported(format!(
                "its table starts with {initial} elements, more than max_table_elements = {}",
                self.config.max_table_elements
            )));
        }
        let exports = abi::inspect_exports(&module)?;
        let pre = Linker::<CallState>::new(&self.shared.engine)
            .instantiate_pre(&module)
            .map_err(|e| SandboxError::Engine(format!("{e:#}")))?;

        Ok(Program {
            shared: Arc::clone(&self.shared),
            inner: Arc::new(ProgramInner {
                code_hash,
                pre,
                exports,
                limits,
                deadline_ticks: engine::deadline_ticks(limits.deadline_ms, self.shared.epoch_tick),
                stats,
            }),
        })
    }

    /// Number of modules this sandbox has compiled (cache hits excluded).
    /// Lets callers prove that nothing was compiled, e.g. before a license
    /// check.
    pub fn compilations(&self) -> u64 {
        self.compilations.load(Ordering::Relaxed)
    }

    /// The configuration this sandbox was created with.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// Path the cache entry for `code_hash` has (or would have); `None` when
    /// the disk cache is disabled. For diagnostics and tests.
    pub fn cache_entry_path(&self, code_hash: &[u8; 32]) -> Option<std::path::PathBuf> {
        self.cache.as_ref().map(|c| c.entry_path(code_hash))
    }

    /// The underlying engine, for benchmarks and diagnostics that must use
    /// exactly the sandbox's engine configuration. Modules built directly on
    /// it bypass every check of [`Sandbox::compile`].
    pub fn engine(&self) -> &Engine {
        &self.shared.engine
    }

    fn load_or_compile(
        &self,
        code_hash: &[u8; 32],
        wasm: &[u8],
    ) -> Result<(Module, bool), SandboxError> {
        let engine = &self.shared.engine;
        self.load_or_compile_with(
            code_hash,
            // SAFETY: only called by the cache on authenticated artifacts of
            // `Module::serialize` on this engine configuration.
            |body| unsafe { Module::deserialize(engine, body) },
            || {
                Module::from_binary(engine, wasm)
                    .map_err(|e| SandboxError::InvalidModule(format!("{e:#}")))
            },
            Module::serialize,
        )
    }

    /// The artifact for `code_hash` from the authenticated cache, else
    /// compiled (counted) and stored. `true` with a cache hit.
    pub(crate) fn load_or_compile_with<T>(
        &self,
        code_hash: &[u8; 32],
        deserialize: impl FnOnce(&[u8]) -> wasmtime::Result<T>,
        compile: impl FnOnce() -> Result<T, SandboxError>,
        serialize: impl FnOnce(&T) -> wasmtime::Result<Vec<u8>>,
    ) -> Result<(T, bool), SandboxError> {
        if let Some(cache) = &self.cache {
            match cache.load_with(code_hash, deserialize) {
                Ok(Some(artifact)) => return Ok((artifact, true)),
                Ok(None) => {}
                Err(rejected) => tracing::warn!(
                    entry = %cache.entry_path(code_hash).display(),
                    reason = %rejected,
                    "ignoring compiled-module cache entry; recompiling"
                ),
            }
        }
        let artifact = compile()?;
        self.compilations.fetch_add(1, Ordering::Relaxed);
        if let Some(cache) = &self.cache {
            let stored = serialize(&artifact)
                .map_err(|e| std::io::Error::other(format!("{e:#}")))
                .and_then(|bytes| cache.store(code_hash, &bytes));
            if let Err(e) = stored {
                tracing::warn!(
                    entry = %cache.entry_path(code_hash).display(),
                    error = %e,
                    "cannot write compiled-module cache entry; the next start will compile again"
                );
            }
        }
        Ok((artifact, false))
    }
}
