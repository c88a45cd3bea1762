//! Components: WebAssembly components called with typed values, under the
//! same limits as a core module (fuel, deadline, memory cap for all of a
//! call's memories together, pooled instances, a fresh instance per call,
//! the authenticated compile cache).
//!
//! A component may import WASI 0.2 without capabilities, and interfaces that
//! carry only types, and nothing else (see [`GRANTED_INTERFACES`]); anything
//! else is refused by name before any instance of it exists. Calls take
//! [`Val`]s, parsed from WAVE text ([`ComponentProgram::wave_call`]) or JSON
//! ([`ComponentProgram::json_call`]) against the function's WIT signature.

mod json;
mod signature;
mod wasi;

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest, Sha256};
use wasmtime::Store;
use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::wasm_wave::untyped::UntypedFuncCall;
use wasmtime::component::{Component, ComponentExportIndex, InstancePre, Type};

pub use json::{JsonMismatch, from_json, to_json};
pub use signature::{func_text, type_text};
pub use wasi::{GRANTED_INTERFACES, OUTPUT_CAP_BYTES, is_granted};
/// A component value: the arguments and results of typed calls.
pub use wasmtime::component::Val;

use super::config::{EffectiveLimits, GuestLimits};
use super::engine;
use super::error::{CallError, SandboxError};
use super::limiter::{GuestLimiter, StoreCounts};
use super::program::{CompileStats, classify, engine_error};
use super::{Sandbox, Shared};
use wasi::ComponentState;

/// Most core instances, tables and memories one component call may create.
/// componentize-py's output instantiates about a dozen core modules.
pub(crate) const COMPONENT_COUNTS: StoreCounts = StoreCounts {
    instances: 64,
    tables: 16,
    memories: 8,
};

/// An exported function of a component: `name` at the top level, or
/// `interface#name` inside an exported interface.
#[derive(Clone)]
pub struct Function {
    name: String,
    index: ComponentExportIndex,
    ty: ComponentFunc,
}

impl Function {
    /// The name calls use.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Parameter names and types, in order.
    pub fn params(&self) -> Vec<(String, Type)> {
        self.ty.params().map(|(n, t)| (n.to_string(), t)).collect()
    }

    /// Result types (zero or one in today's WIT).
    pub fn results(&self) -> Vec<Type> {
        self.ty.results().collect()
    }

    /// `name(param: type, …) -> result`, WIT-like.
    pub fn signature(&self) -> String {
        func_text(&self.name, &self.ty)
    }
}

impl fmt::Debug for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.signature())
    }
}

struct ComponentInner {
    code_hash: [u8; 32],
    pre: InstancePre<ComponentState>,
    functions: Vec<Function>,
    imports: Vec<String>,
    limits: EffectiveLimits,
    deadline_ticks: u64,
    stats: CompileStats,
}

/// A component ready to call: imports granted, compiled (or loaded from the
/// cache), exports listed, pre-linked. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct ComponentProgram {
    shared: Arc<Shared>,
    inner: Arc<ComponentInner>,
}

impl fmt::Debug for ComponentProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ComponentProgram")
            .field("code_hash", &hex::encode(self.inner.code_hash))
            .field("functions", &self.inner.functions)
            .field("imports", &self.inner.imports)
            .field("limits", &self.inner.limits)
            .field("stats", &self.inner.stats)
            .finish()
    }
}

impl Sandbox {
    /// Loads a plaintext component as a [`ComponentProgram`].
    ///
    /// In order: limits resolved → SHA-256 of `wasm` must equal `code_hash`
    /// → machine code from the authenticated cache, else compiled (and
    /// cached; compiling runs none of the guest's code) → every import
    /// granted WASI or type-only, else refused by name → initial memories
    /// within the limit → exported functions listed → pre-linked against the
    /// granted WASI. No instance exists before every check has passed.
    pub fn compile_component(
        &self,
        code_hash: [u8; 32],
        wasm: &[u8],
        limits: &GuestLimits,
    ) -> Result<ComponentProgram, SandboxError> {
        let limits = self.config.resolve(limits)?;
        // `\0asm`, version 13, layer 1; a core module has version 1, layer 0.
        if wasm.get(..8) != Some(b"\0asm\x0d\0\x01\0".as_slice()) {
            return Err(SandboxError::Unsupported(
                "it is a core module (or not Wasm), not a component".into(),
            ));
        }
        let actual: [u8; 32] = Sha256::digest(wasm).into();
        if actual != code_hash {
            return Err(SandboxError::CodeHashMismatch {
                expected: format!("0x{}", hex::encode(code_hash)),
                actual: format!("0x{}", hex::encode(actual)),
            });
        }
        let started = Instant::now();
        let engine = &self.shared.engine;
        let (component, from_cache) = self.load_or_compile_with(
            &code_hash,
            // SAFETY: only called by the cache on authenticated artifacts of
            // `Component::serialize` on this engine configuration.
            |body| unsafe { Component::deserialize(engine, body) },
            || {
                Component::from_binary(engine, wasm)
                    .map_err(|e| SandboxError::InvalidModule(format!("{e:#}")))
            },
            Component::serialize,
        )?;
        let stats = CompileStats {
            from_cache,
            elapsed: started.elapsed(),
        };
        let imports = wasi::check_imports(&component, engine)?;

        if let Some(resources) = component.resources_required()
            && let Some(initial_pages) = resources.max_initial_memory_size
            && initial_pages > limits.memory_pages
        {
            return Err(SandboxError::MemoryTooLarge {
                initial_pages,
                limit_pages: limits.memory_pages,
            });
        }
        let functions = exported_functions(&component, engine)?;
        let linker = wasi::granted_linker(engine, &imports)?;
        let pre = linker.instantiate_pre(&component).map_err(|e| {
            // Defence in depth: the import check above read the same bytes.
            SandboxError::Unsupported(format!("cannot link its imports: {e:#}"))
        })?;
        Ok(ComponentProgram {
            shared: Arc::clone(&self.shared),
            inner: Arc::new(ComponentInner {
                code_hash,
                pre,
                functions,
                imports: imports.all,
                limits,
                deadline_ticks: engine::deadline_ticks(limits.deadline_ms, self.shared.epoch_tick),
                stats,
            }),
        })
    }
}

/// Every exported function, top-level and one interface deep, sorted.
fn exported_functions(
    component: &Component,
    engine: &wasmtime::Engine,
) -> Result<Vec<Function>, SandboxError> {
    let ty = component.component_type();
    let mut functions = Vec::new();
    for (name, item) in ty.exports(engine) {
        match item.ty {
            ComponentItem::ComponentFunc(f) => {
                let index = component.get_export_index(None, name);
                functions.push((name.to_string(), index, f));
            }
            ComponentItem::ComponentInstance(instance) => {
                let Some(outer) = component.get_export_index(None, name) else {
                    continue;
                };
                for (inner, item) in instance.exports(engine) {
                    if let ComponentItem::ComponentFunc(f) = item.ty {
                        let index = component.get_export_index(Some(&outer), inner);
                        functions.push((format!("{name}#{inner}"), index, f));
                    }
                }
            }
            _ => {}
        }
    }
    let mut out: Vec<Function> = functions
        .into_iter()
        .map(|(name, index, ty)| {
            let index = index.ok_or_else(|| {
                SandboxError::Engine(format!("export `{name}` has no index in its component"))
            })?;
            Ok(Function { name, index, ty })
        })
        .collect::<Result<_, SandboxError>>()?;
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The result of one component call, with what the guest printed.
#[derive(Debug, Clone)]
pub struct ComponentOutcome {
    /// The function's results (zero or one).
    pub results: Vec<Val>,
    /// The guest's stdout, capped at [`OUTPUT_CAP_BYTES`].
    pub stdout: String,
    /// The guest's stderr, capped at [`OUTPUT_CAP_BYTES`].
    pub stderr: String,
}

impl ComponentProgram {
    /// SHA-256 of the plaintext component.
    pub fn code_hash(&self) -> [u8; 32] {
        self.inner.code_hash
    }

    /// Exported functions, sorted by name.
    pub fn functions(&self) -> &[Function] {
        &self.inner.functions
    }

    /// The component's imports (all granted), e.g. `wasi:io/streams@0.2.3`.
    pub fn imports(&self) -> &[String] {
        &self.inner.imports
    }

    /// The limits each call runs under.
    pub fn limits(&self) -> EffectiveLimits {
        self.inner.limits
    }

    /// How this program was produced (cache hit or compilation, time).
    pub fn compile_stats(&self) -> CompileStats {
        self.inner.stats
    }

    /// The exported function `name`, or an error listing those that exist.
    pub fn function(&self, name: &str) -> Result<&Function, CallError> {
        self.inner
            .functions
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| CallError::MissingExport {
                name: name.to_string(),
                available: self.inner.functions.iter().map(|f| f.signature()).collect(),
            })
    }

    /// The same program with only the functions `names` (e.g. the manifest's
    /// `entry` list: the world's exports) callable, each of which must exist.
    /// A component may export more than its world (componentize-py adds an
    /// `init`); those are not the product and are not callable.
    pub fn only<S: AsRef<str>>(self, names: &[S]) -> Result<Self, SandboxError> {
        let available = || {
            self.inner
                .functions
                .iter()
                .map(|f| f.name.clone())
                .collect()
        };
        if let Some(missing) = names.iter().find(|n| self.function(n.as_ref()).is_err()) {
            return Err(SandboxError::MissingEntry {
                name: missing.as_ref().to_string(),
                available: available(),
            });
        }
        let functions = self
            .inner
            .functions
            .iter()
            .filter(|f| names.iter().any(|n| n.as_ref() == f.name))
            .cloned()
            .collect();
        let inner = ComponentInner {
            code_hash: self.inner.code_hash,
            pre: self.inner.pre.clone(),
            functions,
            imports: self.inner.imports.clone(),
            limits: self.inner.limits,
            deadline_ticks: self.inner.deadline_ticks,
            stats: self.inner.stats,
        };
        Ok(ComponentProgram {
            shared: self.shared,
            inner: Arc::new(inner),
        })
    }

    /// Parses a call in WAVE syntax, e.g. `score({income: 52000, debt: 1200})`,
    /// against the function's parameter types. Runs nothing.
    pub fn wave_call(&self, text: &str) -> Result<ComponentCall<'_>, CallError> {
        let call = UntypedFuncCall::parse(text).map_err(|e| CallError::BadArgument {
            export: text.split('(').next().unwrap_or(text).trim().to_string(),
            reason: format!("not a WAVE call `name(args…)`: {e}"),
        })?;
        let function = self.function(call.name())?;
        let types: Vec<Type> = function.ty.params().map(|(_, t)| t).collect();
        let args =
            call.to_wasm_params::<Val>(types.iter())
                .map_err(|e| CallError::BadArgument {
                    export: function.name.clone(),
                    reason: format!("{e} (signature: {})", function.signature()),
                })?;
        Ok(ComponentCall {
            program: self,
            function,
            args,
        })
    }

    /// Maps a JSON value to `name`'s parameters: an object with one member per
    /// parameter (by WIT name), or an array of them in order. Runs nothing.
    pub fn json_call(
        &self,
        name: &str,
        body: &serde_json::Value,
    ) -> Result<ComponentCall<'_>, CallError> {
        let function = self.function(name)?;
        let params = function.params();
        let bad = |m: JsonMismatch| CallError::BadArgument {
            export: function.name.clone(),
            reason: m.to_string(),
        };
        let args = match body {
            serde_json::Value::Object(object) => {
                if let Some(extra) = object.keys().find(|k| !params.iter().any(|(p, _)| p == *k)) {
                    let names: Vec<&str> = params.iter().map(|(p, _)| p.as_str()).collect();
                    return Err(bad(JsonMismatch {
                        path: extra.clone(),
                        reason: format!(
                            "unknown parameter (the parameters are {})",
                            names.join(", ")
                        ),
                    }));
                }
                params
                    .iter()
                    .map(|(p, ty)| match object.get(p) {
                        Some(v) => from_json(ty, v, p),
                        None => Err(JsonMismatch {
                            path: p.clone(),
                            reason: format!("missing parameter of type {}", type_text(ty)),
                        }),
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(bad)?
            }
            serde_json::Value::Array(items) if items.len() == params.len() => params
                .iter()
                .zip(items)
                .map(|((p, ty), v)| from_json(ty, v, p))
                .collect::<Result<Vec<_>, _>>()
                .map_err(bad)?,
            _ => {
                return Err(bad(JsonMismatch {
                    path: String::new(),
                    reason: format!(
                        "expected an object of the parameters by name, or an array of {} (signature: {})",
                        params.len(),
                        function.signature()
                    ),
                }));
            }
        };
        Ok(ComponentCall {
            program: self,
            function,
            args,
        })
    }

    /// A call of `name` with `args`, checked against its signature (count
    /// and types). Runs nothing.
    pub fn call(&self, name: &str, args: Vec<Val>) -> Result<ComponentCall<'_>, CallError> {
        let function = self.function(name)?;
        let params = function.params();
        let fits = args.len() == params.len()
            && args
                .iter()
                .zip(&params)
                .all(|(v, (_, t))| val_has_type(v, t));
        if !fits {
            return Err(CallError::BadArgument {
                export: function.name.clone(),
                reason: format!("the arguments do not fit {}", function.signature()),
            });
        }
        Ok(ComponentCall {
            program: self,
            function,
            args,
        })
    }

    fn instantiate(
        &self,
    ) -> Result<(Store<ComponentState>, wasmtime::component::Instance), CallError> {
        let slot = self.shared.slots.take()?;
        let mut store = Store::new(
            &self.shared.engine,
            ComponentState::new(GuestLimiter::new(
                self.inner.limits.memory_pages,
                self.shared.max_table_elements,
                COMPONENT_COUNTS,
                slot,
            )),
        );
        store.limiter(|state| &mut state.limiter);
        if let Some(fuel) = self.inner.limits.fuel {
            store
                .set_fuel(fuel)
                .map_err(|e| engine_error("(store)", &format!("{e:#}")))?;
        }
        store.set_epoch_deadline(self.inner.deadline_ticks);
        match self.inner.pre.instantiate(&mut store) {
            Ok(instance) => Ok((store, instance)),
            Err(e) => {
                if let Some(pool) = e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>() {
                    return Err(CallError::PoolExhausted(pool.to_string()));
                }
                let fault = match self.classify(e, "start") {
                    CallError::Engine { message, .. } => CallError::Instantiate(message),
                    guest_fault => guest_fault,
                };
                Err(with_stderr(fault, &store))
            }
        }
    }

    fn classify(&self, err: wasmtime::Error, function: &str) -> CallError {
        if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
            return CallError::Exited {
                export: function.to_string(),
                code: exit.0,
            };
        }
        classify(err, function, &self.inner.limits)
    }
}

/// Attaches what the guest wrote to stderr (a Python traceback, a JavaScript
/// error) to a failed call.
fn with_stderr(fault: CallError, store: &Store<ComponentState>) -> CallError {
    let stderr = store.data().stderr();
    if stderr.trim().is_empty() {
        fault
    } else {
        CallError::WithStderr {
            fault: Box::new(fault),
            stderr: stderr.trim_end().to_string(),
        }
    }
}

/// A typed call that passed the signature checks; run it with
/// [`ComponentCall::run`]. Callers that bill per call admit it in between.
pub struct ComponentCall<'a> {
    program: &'a ComponentProgram,
    function: &'a Function,
    args: Vec<Val>,
}

impl ComponentCall<'_> {
    /// The function called.
    pub fn function(&self) -> &Function {
        self.function
    }

    /// Runs the call in a fresh instance.
    pub fn run(self) -> Result<ComponentOutcome, CallError> {
        let ComponentCall {
            program,
            function,
            args,
        } = self;
        let (mut store, instance) = program.instantiate()?;
        let Some(func) = instance.get_func(&mut store, function.index) else {
            return Err(engine_error(&function.name, "function export vanished"));
        };
        let mut results = vec![Val::Bool(false); function.ty.results().len()];
        if let Err(e) = func.call(&mut store, &args, &mut results) {
            let fault = program.classify(e, &function.name);
            return Err(with_stderr(fault, &store));
        }
        Ok(ComponentOutcome {
            results,
            stdout: store.data().stdout(),
            stderr: store.data().stderr(),
        })
    }
}

/// Whether `v` is a value of type `t` (shallow for containers' contents:
/// wasmtime checks the rest when the call is made).
fn val_has_type(v: &Val, t: &Type) -> bool {
    matches!(
        (v, t),
        (Val::Bool(_), Type::Bool)
            | (Val::S8(_), Type::S8)
            | (Val::U8(_), Type::U8)
            | (Val::S16(_), Type::S16)
            | (Val::U16(_), Type::U16)
            | (Val::S32(_), Type::S32)
            | (Val::U32(_), Type::U32)
            | (Val::S64(_), Type::S64)
            | (Val::U64(_), Type::U64)
            | (Val::Float32(_), Type::Float32)
            | (Val::Float64(_), Type::Float64)
            | (Val::Char(_), Type::Char)
            | (Val::String(_), Type::String)
            | (Val::List(_), Type::List(_))
            | (Val::Record(_), Type::Record(_))
            | (Val::Tuple(_), Type::Tuple(_))
            | (Val::Variant(..), Type::Variant(_))
            | (Val::Enum(_), Type::Enum(_))
            | (Val::Option(_), Type::Option(_))
            | (Val::Result(_), Type::Result(_))
            | (Val::Flags(_), Type::Flags(_))
    )
}

impl ComponentCall<'_> {
    /// The arguments, for a caller that checks a call in one place and runs it
    /// in another (`runtime serve` checks in the handler, runs on a worker).
    pub fn into_args(self) -> Vec<Val> {
        self.args
    }
}

/// The results as WAVE text (comma-separated when there are several).
pub fn results_to_wave(results: &[Val]) -> Result<String, CallError> {
    let texts = results
        .iter()
        .map(|v| {
            v.to_wave()
                .map_err(|e| engine_error("(result)", &format!("cannot print as WAVE: {e:#}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(texts.join(", "))
}

/// The results as JSON: `null` for none, the value for one, an array else.
pub fn results_to_json(results: &[Val]) -> serde_json::Value {
    match results {
        [] => serde_json::Value::Null,
        [one] => to_json(one),
        many => serde_json::Value::Array(many.iter().map(to_json).collect()),
    }
}
