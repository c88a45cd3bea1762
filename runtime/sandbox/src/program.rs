//! A compiled, checked program and its calls. Every call runs in a fresh
//! instance from the pooling allocator, in its own store with its own fuel,
//! deadline and memory limit, so no state survives from one call (or one
//! customer's request) to the next.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Extern, Instance, InstancePre, Memory, Store, TypedFunc, Val};

use super::Shared;
use super::abi::{ALLOC_EXPORT, ENTRY_SIGNATURE, Exports, NumType};
use super::config::EffectiveLimits;
use super::error::{CallError, SandboxError};
use super::limiter::{GuestLimiter, MemoryLimitHit, StoreCounts};

/// What each call's store carries.
pub(crate) struct CallState {
    limiter: GuestLimiter,
}

/// How a program came to be compiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompileStats {
    /// True when the machine code came from the authenticated disk cache
    /// (no compilation happened).
    pub from_cache: bool,
    /// Time spent producing the module (compile, or cache read + verify +
    /// deserialize), excluding the import and hash checks.
    pub elapsed: Duration,
}

/// A numeric argument or result of `call_numeric`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NumValue {
    /// 32-bit integer.
    I32(i32),
    /// 64-bit integer.
    I64(i64),
    /// 32-bit float.
    F32(f32),
    /// 64-bit float.
    F64(f64),
}

impl fmt::Display for NumValue {
    /// Formats like `wasmtime --invoke` prints results: plain decimal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NumValue::I32(v) => write!(f, "{v}"),
            NumValue::I64(v) => write!(f, "{v}"),
            NumValue::F32(v) => write!(f, "{v}"),
            NumValue::F64(v) => write!(f, "{v}"),
        }
    }
}

pub(crate) struct ProgramInner {
    pub(crate) code_hash: [u8; 32],
    pub(crate) pre: InstancePre<CallState>,
    pub(crate) exports: Exports,
    pub(crate) limits: EffectiveLimits,
    pub(crate) deadline_ticks: u64,
    pub(crate) stats: CompileStats,
}

/// A guest program ready to call: compiled (or loaded from the cache),
/// import-free, exports checked, pre-linked.
///
/// Cheap to clone; `Send + Sync`, so one `Program` can serve many threads.
#[derive(Clone)]
pub struct Program {
    pub(crate) shared: Arc<Shared>,
    pub(crate) inner: Arc<ProgramInner>,
}

impl fmt::Debug for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Program")
            .field("code_hash", &hex::encode(self.inner.code_hash))
            .field("entries", &self.entries())
            .field("limits", &self.inner.limits)
            .field("stats", &self.inner.stats)
            .finish()
    }
}

impl Program {
    /// SHA-256 of the plaintext module.
    pub fn code_hash(&self) -> [u8; 32] {
        self.inner.code_hash
    }

    /// Bytes-ABI entry exports (`(ptr: i32, len: i32) -> i64`), sorted.
    /// Empty when the module does not export `sealbox_alloc`.
    pub fn entries(&self) -> Vec<String> {
        match &self.inner.exports.bytes {
            Some(abi) => abi.entries.keys().cloned().collect(),
            None => Vec::new(),
        }
    }

    /// Checks that every name (e.g. the manifest's `entry` list) is a
    /// bytes-ABI entry of the module; the error names the first missing one
    /// and lists the entries that exist.
    pub fn require_entries<S: AsRef<str>>(&self, names: &[S]) -> Result<(), SandboxError> {
        let available = self.entries();
        match names
            .iter()
            .find(|n| !available.iter().any(|a| a == n.as_ref()))
        {
            Some(missing) => Err(SandboxError::MissingEntry {
                name: missing.as_ref().to_string(),
                available,
            }),
            None => Ok(()),
        }
    }

    /// Exports callable with [`Program::call_numeric`] (all parameters and
    /// results numeric), sorted.
    pub fn numeric_exports(&self) -> Vec<String> {
        self.inner.exports.numeric.keys().cloned().collect()
    }

    /// The limits each call runs under.
    pub fn limits(&self) -> EffectiveLimits {
        self.inner.limits
    }

    /// How this program was produced (cache hit or compilation, time).
    pub fn compile_stats(&self) -> CompileStats {
        self.inner.stats
    }

    /// True when the program was loaded from the disk cache without
    /// compiling ("warm start").
    pub fn from_cache(&self) -> bool {
        self.inner.stats.from_cache
    }

    /// Calls a bytes-ABI entry: copies `input` into a buffer from
    /// `sealbox_alloc`, calls `export(ptr, len)`, and returns a copy of the
    /// `(out_ptr << 32) | out_len` range of guest memory.
    pub fn call_bytes(&self, export: &str, input: &[u8]) -> Result<Vec<u8>, CallError> {
        self.bytes_call(export, input)?.run()
    }

    /// Checks a bytes-ABI call without running anything: the input size, and
    /// that `export` is an entry with the ABI signature. The returned call runs
    /// with [`BytesCall::run`]; callers that bill per call admit it in between,
    /// so a call refused here is never billed.
    pub fn bytes_call<'a>(
        &'a self,
        export: &'a str,
        input: &'a [u8],
    ) -> Result<BytesCall<'a>, CallError> {
        let limit = self.shared.max_input_bytes;
        if input.len() > limit {
            return Err(CallError::InputTooLarge {
                len: input.len(),
                limit,
            });
        }
        let Some(abi) = &self.inner.exports.bytes else {
            if self.inner.exports.func_types.contains_key(export) {
                return Err(CallError::NotBytesAbi {
                    export: export.to_string(),
                });
            }
            return Err(self.missing_entry(export));
        };
        let Some(entry_index) = abi.entries.get(export) else {
            return Err(match self.inner.exports.func_types.get(export) {
                Some(found) => CallError::BadSignature {
                    name: export.to_string(),
                    expected: ENTRY_SIGNATURE.to_string(),
                    found: found.clone(),
                },
                None => self.missing_entry(export),
            });
        };
        Ok(BytesCall {
            program: self,
            export,
            input,
            abi,
            entry_index,
        })
    }
    /// Calls a numeric export with arguments parsed from strings as the
    /// export's parameter types (i32, i64, f32, f64), like
    /// `wasmtime --invoke add 1 2`.
    pub fn call_numeric(&self, export: &str, args: &[&str]) -> Result<Vec<NumValue>, CallError> {
        self.numeric_call(export, args)?.run()
    }

    /// Checks a numeric call without running anything: the export exists with
    /// numeric types and every argument parses. Run it with [`NumericCall::run`].
    pub fn numeric_call<'a>(
        &'a self,
        export: &'a str,
        args: &[&str],
    ) -> Result<NumericCall<'a>, CallError> {
        let Some(func) = self.inner.exports.numeric.get(export) else {
            return Err(match self.inner.exports.func_types.get(export) {
                Some(found) => CallError::BadSignature {
                    name: export.to_string(),
                    expected: "only i32, i64, f32 or f64 parameters and results".into(),
                    found: found.clone(),
                },
                None => CallError::MissingExport {
                    name: export.to_string(),
                    available: self.numeric_exports(),
                },
            });
        };
        if args.len() != func.params.len() {
            let types: Vec<_> = func.params.iter().map(|t| t.to_string()).collect();
            return Err(CallError::BadArgument {
                export: export.to_string(),
                reason: format!(
                    "takes {} argument(s) ({}), got {}",
                    func.params.len(),
                    types.join(", "),
                    args.len()
                ),
            });
        }
        let params = args
            .iter()
            .zip(&func.params)
            .enumerate()
            .map(|(i, (arg, ty))| {
                parse_arg(arg, *ty).ok_or_else(|| CallError::BadArgument {
                    export: export.to_string(),
                    reason: format!("argument {} is `{arg}`, which is not a valid {ty}", i + 1),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(NumericCall {
            program: self,
            export,
            func,
            params,
        })
    }

    /// A fresh store with this program's limits, and a fresh instance in it.
    fn instantiate(&self) -> Result<(Store<CallState>, Instance), CallError> {
        let slot = self.shared.slots.take()?;
        let mut store = Store::new(
            &self.shared.engine,
            CallState {
                limiter: GuestLimiter::new(
                    self.inner.limits.memory_pages,
                    self.shared.max_table_elements,
                    StoreCounts::MODULE,
                    slot,
                ),
            },
        );
        store.limiter(|state| &mut state.limiter);
        if let Some(fuel) = self.inner.limits.fuel {
            store
                .set_fuel(fuel)
                .map_err(|e| engine_error("(store)", &format!("{e:#}")))?;
        }
        store.set_epoch_deadline(self.inner.deadline_ticks);
        let instance = self.inner.pre.instantiate(&mut store).map_err(|e| {
            if let Some(pool) = e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>() {
                return CallError::PoolExhausted(pool.to_string());
            }
            match self.classify(e, "start") {
                CallError::Engine { message, .. } => CallError::Instantiate(message),
                guest_fault => guest_fault,
            }
        })?;
        Ok((store, instance))
    }

    /// Turns a wasmtime error from running `export` into a [`CallError`].
    fn classify(&self, err: wasmtime::Error, export: &str) -> CallError {
        classify(err, export, &self.inner.limits)
    }

    fn missing_entry(&self, export: &str) -> CallError {
        CallError::MissingExport {
            name: export.to_string(),
            available: self.entries(),
        }
    }
}

fn typed_export<P, R>(
    instance: &Instance,
    store: &mut Store<CallState>,
    index: &wasmtime::ModuleExport,
    name: &str,
) -> Result<TypedFunc<P, R>, CallError>
where
    P: wasmtime::WasmParams,
    R: wasmtime::WasmResults,
{
    match instance.get_module_export(&mut *store, index) {
        Some(Extern::Func(f)) => f
            .typed::<P, R>(&*store)
            .map_err(|e| engine_error(name, &format!("{e:#}"))),
        _ => Err(engine_error(name, "function export vanished")),
    }
}

/// Copies the packed `(ptr << 32) | len` output range out of guest memory.
fn read_output(
    store: &Store<CallState>,
    memory: Memory,
    export: &str,
    packed: u64,
    limit: usize,
) -> Result<Vec<u8>, CallError> {
    let ptr = (packed >> 32) as u32;
    let len = packed as u32;
    if len as usize > limit {
        return Err(CallError::OutputTooLarge {
            export: export.to_string(),
            len,
            limit,
        });
    }
    let data = memory.data(store);
    let start = ptr as usize;
    match data.get(start..start + len as usize) {
        Some(out) => Ok(out.to_vec()),
        None => Err(CallError::OutputOutOfBounds {
            export: export.to_string(),
            ptr,
            len,
            memory_bytes: data.len(),
        }),
    }
}

fn parse_arg(arg: &str, ty: NumType) -> Option<Val> {
    let arg = arg.trim();
    Some(match ty {
        // Accept the unsigned spelling too (e.g. 4294967295 for -1), as
        // both are the same bits to a Wasm i32/i64.
        NumType::I32 => Val::I32(
            arg.parse::<i32>()
                .ok()
                .or_else(|| arg.parse::<u32>().ok().map(|v| v as i32))?,
        ),
        NumType::I64 => Val::I64(
            arg.parse::<i64>()
                .ok()
                .or_else(|| arg.parse::<u64>().ok().map(|v| v as i64))?,
        ),
        NumType::F32 => Val::F32(arg.parse::<f32>().ok()?.to_bits()),
        NumType::F64 => Val::F64(arg.parse::<f64>().ok()?.to_bits()),
    })
}

/// Turns a wasmtime error from running `export` under `limits` into a
/// [`CallError`]: the memory cap, fuel, deadline, a trap, or an engine error.
pub(crate) fn classify(err: wasmtime::Error, export: &str, limits: &EffectiveLimits) -> CallError {
    let export = export.to_string();
    if let Some(hit) = err.downcast_ref::<MemoryLimitHit>() {
        return CallError::MemoryLimit {
            export,
            limit_pages: hit.limit_pages,
            requested_pages: hit.requested_pages,
        };
    }
    match err.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::OutOfFuel) => CallError::OutOfFuel {
            export,
            fuel: limits.fuel.unwrap_or(0),
        },
        Some(wasmtime::Trap::Interrupt) => CallError::DeadlineExceeded {
            export,
            deadline_ms: limits.deadline_ms,
        },
        Some(trap) => CallError::Trap {
            export,
            trap: *trap,
        },
        None => CallError::Engine {
            export,
            message: format!("{err:#}"),
        },
    }
}

pub(crate) fn engine_error(export: &str, message: &str) -> CallError {
    CallError::Engine {
        export: export.to_string(),
        message: message.to_string(),
    }
}

/// A bytes-ABI call that passed [`Program::bytes_call`]'s checks.
pub struct BytesCall<'a> {
    program: &'a Program,
    export: &'a str,
    input: &'a [u8],
    abi: &'a super::abi::BytesAbi,
    entry_index: &'a wasmtime::ModuleExport,
}

impl BytesCall<'_> {
    /// Runs the call in a fresh instance.
    pub fn run(self) -> Result<Vec<u8>, CallError> {
        let BytesCall {
            program,
            export,
            input,
            abi,
            entry_index,
        } = self;
        let len = input.len() as u32; // <= max_input_bytes <= i32::MAX
        let (mut store, instance) = program.instantiate()?;
        let memory = match instance.get_module_export(&mut store, &abi.memory) {
            Some(Extern::Memory(m)) => m,
            _ => return Err(engine_error("memory", "`memory` export vanished")),
        };
        let alloc: TypedFunc<i32, i32> =
            typed_export(&instance, &mut store, &abi.alloc, ALLOC_EXPORT)?;
        let entry: TypedFunc<(i32, i32), i64> =
            typed_export(&instance, &mut store, entry_index, export)?;

        let ptr = alloc
            .call(&mut store, len as i32)
            .map_err(|e| program.classify(e, ALLOC_EXPORT))? as u32;
        if memory.write(&mut store, ptr as usize, input).is_err() {
            return Err(CallError::InputOutOfBounds {
                ptr,
                len,
                memory_bytes: memory.data_size(&store),
            });
        }
        let packed = entry
            .call(&mut store, (ptr as i32, len as i32))
            .map_err(|e| program.classify(e, export))? as u64;
        read_output(
            &store,
            memory,
            export,
            packed,
            program.shared.max_output_bytes,
        )
    }
}

/// A numeric call that passed [`Program::numeric_call`]'s checks.
pub struct NumericCall<'a> {
    program: &'a Program,
    export: &'a str,
    func: &'a super::abi::NumericExport,
    params: Vec<Val>,
}

impl NumericCall<'_> {
    /// Runs the call in a fresh instance.
    pub fn run(self) -> Result<Vec<NumValue>, CallError> {
        let NumericCall {
            program,
            export,
            func,
            params,
        } = self;
        let mut results = vec![Val::I32(0); func.results.len()];

        let (mut store, instance) = program.instantiate()?;
        let f = match instance.get_module_export(&mut store, &func.index) {
            Some(Extern::Func(f)) => f,
            _ => return Err(engine_error(export, "function export vanished")),
        };
        f.call(&mut store, &params, &mut results)
            .map_err(|e| program.classify(e, export))?;
        results
            .iter()
            .map(|v| match v {
                Val::I32(x) => Ok(NumValue::I32(*x)),
                Val::I64(x) => Ok(NumValue::I64(*x)),
                Val::F32(bits) => Ok(NumValue::F32(f32::from_bits(*bits))),
                Val::F64(bits) => Ok(NumValue::F64(f64::from_bits(*bits))),
                other => Err(engine_error(
                    export,
                    &format!("non-numeric result {other:?}"),
                )),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_arguments_by_type() {
        assert!(matches!(parse_arg("-7", NumType::I32), Some(Val::I32(-7))));
        assert!(matches!(
            parse_arg("4294967295", NumType::I32),
            Some(Val::I32(-1))
        ));
        assert!(
            matches!(parse_arg("1.5", NumType::F64), Some(Val::F64(b)) if f64::from_bits(b) == 1.5)
        );
        assert!(parse_arg("1.5", NumType::I32).is_none());
        assert!(parse_arg("4294967296", NumType::I32).is_none());
        assert!(parse_arg("x", NumType::F32).is_none());
    }
}
