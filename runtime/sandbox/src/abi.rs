//! What a module may import (nothing) and what it exports: the bytes ABI v1
//! (`memory`, `sealbox_alloc`, `(ptr, len) -> i64` entries) and plain numeric
//! functions.

use std::collections::BTreeMap;
use std::fmt;

use wasmparser::{Encoding, Parser, Payload};
use wasmtime::{ExternType, FuncType, Module, ModuleExport, ValType};

use super::error::SandboxError;

/// Export name of the guest allocator.
pub const ALLOC_EXPORT: &str = "sealbox_alloc";
/// Export name of the guest memory.
pub const MEMORY_EXPORT: &str = "memory";

/// Refuses a module with any import, before anything is compiled. Also
/// refuses components and unparsable bytes.
pub(crate) fn check_no_imports(wasm: &[u8]) -> Result<(), SandboxError> {
    let invalid = |e: wasmparser::BinaryReaderError| SandboxError::InvalidModule(e.to_string());
    let mut imports = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(invalid)? {
            Payload::Version {
                encoding: Encoding::Component,
                ..
            } => {
                return Err(SandboxError::Unsupported(
                    "it is a component; the sandbox runs core modules".into(),
                ));
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(invalid)?;
                    imports.push(format!("{}::{}", import.module, import.name));
                }
            }
            // Imports come before any of these; stop without walking the code.
            Payload::FunctionSection(_)
            | Payload::TableSection(_)
            | Payload::MemorySection(_)
            | Payload::GlobalSection(_)
            | Payload::ExportSection(_)
            | Payload::CodeSectionStart { .. } => break,
            _ => {}
        }
    }
    if imports.is_empty() {
        Ok(())
    } else {
        Err(SandboxError::ImportsNotAllowed { imports })
    }
}

/// A numeric value type (the only kinds `call_numeric` can pass).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NumType {
    I32,
    I64,
    F32,
    F64,
}

impl NumType {
    fn from_val_type(t: &ValType) -> Option<NumType> {
        match t {
            ValType::I32 => Some(NumType::I32),
            ValType::I64 => Some(NumType::I64),
            ValType::F32 => Some(NumType::F32),
            ValType::F64 => Some(NumType::F64),
            _ => None,
        }
    }
}

impl fmt::Display for NumType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NumType::I32 => "i32",
            NumType::I64 => "i64",
            NumType::F32 => "f32",
            NumType::F64 => "f64",
        })
    }
}

/// A function export whose parameters and results are all numbers.
pub(crate) struct NumericExport {
    pub(crate) index: ModuleExport,
    pub(crate) params: Vec<NumType>,
    pub(crate) results: Vec<NumType>,
}

/// The bytes ABI exports, resolved to indices (no name lookups per call).
pub(crate) struct BytesAbi {
    pub(crate) memory: ModuleExport,
    pub(crate) alloc: ModuleExport,
    pub(crate) entries: BTreeMap<String, ModuleExport>,
}

/// Everything callable in a module, resolved once at load.
pub(crate) struct Exports {
    /// `Some` when the module exports `sealbox_alloc` (and therefore must
    /// follow the whole bytes ABI).
    pub(crate) bytes: Option<BytesAbi>,
    pub(crate) numeric: BTreeMap<String, NumericExport>,
    /// Every function export with its type, for error messages.
    pub(crate) func_types: BTreeMap<String, String>,
}

/// Signature text used in errors, e.g. `(i32, i32) -> i64`.
pub(crate) fn signature(ty: &FuncType) -> String {
    let list = |it: &mut dyn Iterator<Item = ValType>| {
        it.map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
    };
    format!(
        "({}) -> ({})",
        list(&mut ty.params()),
        list(&mut ty.results())
    )
}

/// The entry signature of the bytes ABI.
pub(crate) const ENTRY_SIGNATURE: &str = "(i32, i32) -> (i64)";
/// The allocator signature of the bytes ABI.
pub(crate) const ALLOC_SIGNATURE: &str = "(i32) -> (i32)";

fn has_types(ty: &FuncType, params: &[NumType], results: &[NumType]) -> bool {
    let p: Vec<_> = ty.params().map(|t| NumType::from_val_type(&t)).collect();
    let r: Vec<_> = ty.results().map(|t| NumType::from_val_type(&t)).collect();
    p.iter().copied().eq(params.iter().map(|t| Some(*t)))
        && r.iter().copied().eq(results.iter().map(|t| Some(*t)))
}

/// Reads a compiled module's exports and checks the bytes ABI.
pub(crate) fn inspect_exports(module: &Module) -> Result<Exports, SandboxError> {
    let index = |name: &str| {
        module.get_export_index(name).ok_or_else(|| {
            SandboxError::InvalidModule(format!("export `{name}` listed but not resolvable"))
        })
    };
    let mut numeric = BTreeMap::new();
    let mut func_types = BTreeMap::new();
    let mut entry_candidates = Vec::new();
    let mut memory = None;
    let mut alloc = None;

    for export in module.exports() {
        let name = export.name();
        match export.ty() {
            ExternType::Func(ty) => {
                func_types.insert(name.to_string(), signature(&ty));
                if name == ALLOC_EXPORT {
                    if !has_types(&ty, &[NumType::I32], &[NumType::I32]) {
                        return Err(SandboxError::BadAbi(format!(
                            "`{ALLOC_EXPORT}` has type {}, expected {ALLOC_SIGNATURE}",
                            signature(&ty)
                        )));
                    }
                    alloc = Some(index(name)?);
                    continue;
                }
                if has_types(&ty, &[NumType::I32, NumType::I32], &[NumType::I64]) {
                    entry_candidates.push(name.to_string());
                }
                let params: Option<Vec<_>> =
                    ty.params().map(|t| NumType::from_val_type(&t)).collect();
                let results: Option<Vec<_>> =
                    ty.results().map(|t| NumType::from_val_type(&t)).collect();
                if let (Some(params), Some(results)) = (params, results) {
                    numeric.insert(
                        name.to_string(),
                        NumericExport {
                            index: index(name)?,
                            params,
                            results,
                        },
                    );
                }
            }
            ExternType::Memory(ty) if name == MEMORY_EXPORT => {
                if ty.is_64() || ty.is_shared() {
                    return Err(SandboxError::BadAbi(format!(
                        "`{MEMORY_EXPORT}` must be a plain 32-bit memory (it is {})",
                        if ty.is_64() {
                            "a 64-bit memory"
                        } else {
                            "shared"
                        }
                    )));
                }
                memory = Some(index(name)?);
            }
            _ => {}
        }
    }

    let bytes = match (alloc, memory) {
        (None, _) => None,
        (Some(_), None) => {
            return Err(SandboxError::BadAbi(format!(
                "it exports `{ALLOC_EXPORT}` but no memory named `{MEMORY_EXPORT}`"
            )));
        }
        (Some(alloc), Some(memory)) => {
            let mut entries = BTreeMap::new();
            for name in entry_candidates {
                let idx = index(&name)?;
                entries.insert(name, idx);
            }
            Some(BytesAbi {
                memory,
                alloc,
                entries,
            })
        }
    };
    Ok(Exports {
        bytes,
        numeric,
        func_types,
    })
}
