//! Checks on the plaintext module given to [`crate::seal`]: valid core Wasm, not sealed yet, and
//! the invocation ABI v1 for the entries it will list (the same rules the runtime applies when it
//! loads the module, so that no sealed module is refused for its exports).

use wasmparser::{
    CompositeInnerType, ExternalKind, FuncType, Parser, Payload, TypeRef, ValType, Validator,
};

use crate::wasm;
use crate::{FormatError, manifest, payload, signature};

/// Export name of the guest allocator of the bytes ABI.
pub(crate) const ALLOC_EXPORT: &str = "sealbox_alloc";
/// Export name of the guest memory of the bytes ABI.
pub(crate) const MEMORY_EXPORT: &str = "memory";
/// Type of a bytes-ABI entry, as errors print it.
const ENTRY_TYPE: &str = "(i32, i32) -> i64";
/// What to do when a module lacks the ABI, for errors.
const HOW_TO_EXPORT: &str = "in Rust, depend on the guest crate `sealbox-guest` (`packager new` \
     starts a project with it) and export each entry with `sealbox_guest::entry!(NAME => \
     handler)`, which also exports `memory` and `sealbox_alloc`";

/// An exported function of a plaintext module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExportedFunc {
    pub name: String,
    /// Its type, e.g. `(i32, i32) -> i64`.
    pub signature: String,
    /// Whether its type is the v1 entry ABI `(i32, i32) -> i64`.
    pub is_abi_entry: bool,
    /// Whether every parameter and result is a number (callable as a numeric entry).
    pub is_numeric: bool,
}

/// The exports of a plaintext module that the ABI cares about.
#[derive(Debug, Clone, Default)]
pub(crate) struct Exports {
    /// Exported functions, in export order.
    pub funcs: Vec<ExportedFunc>,
    /// Whether a memory is exported as `memory` (and is a plain 32-bit one).
    pub memory: Option<MemoryExport>,
}

/// The memory exported as `memory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MemoryExport {
    /// A plain 32-bit memory, as the ABI needs.
    Plain,
    /// A 64-bit or shared memory, which the runtime refuses.
    Unusable(&'static str),
}

impl Exports {
    fn func(&self, name: &str) -> Option<&ExportedFunc> {
        self.funcs.iter().find(|f| f.name == name)
    }

    /// `name: type, …` of every exported function, for errors.
    fn listing(&self) -> String {
        if self.funcs.is_empty() {
            return "it exports no function".into();
        }
        let items: Vec<String> = self
            .funcs
            .iter()
            .map(|f| format!("`{}` {}", f.name, f.signature))
            .collect();
        format!("exported functions: {}", items.join(", "))
    }
}

/// Validates `bytes` as a core Wasm module that is not sealed yet, and lists its exports.
pub(crate) fn check_plaintext(bytes: &[u8]) -> Result<Exports, FormatError> {
    let sections = wasm::sections(bytes).map_err(|e| match e {
        FormatError::Parse(what) => FormatError::NotWasm(what),
        other => other,
    })?;
    if let Some(name) = sections
        .iter()
        .filter_map(|s| s.name)
        .find(|n| is_reserved(n))
    {
        return Err(FormatError::AlreadySealed(format!(
            "the module has a `{name}` custom section; seal the original module instead"
        )));
    }
    let types = Validator::new()
        .validate_all(bytes)
        .map_err(|e| FormatError::NotWasm(format!("invalid module: {e}")))?;
    let not_wasm = |e: wasmparser::BinaryReaderError| FormatError::NotWasm(e.to_string());
    let mut exports = Exports::default();
    // Memory index → its type, imported memories first (validation guarantees the order).
    let mut memories: Vec<wasmparser::MemoryType> = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(not_wasm)? {
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    if let TypeRef::Memory(ty) = import.map_err(not_wasm)?.ty {
                        memories.push(ty);
                    }
                }
            }
            Payload::MemorySection(reader) => {
                for memory in reader {
                    memories.push(memory.map_err(not_wasm)?);
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.map_err(not_wasm)?;
                    match export.kind {
                        ExternalKind::Func => {
                            let sub = &types[types.as_ref().core_function_at(export.index)];
                            if let CompositeInnerType::Func(f) = &sub.composite_type.inner {
                                exports.funcs.push(exported_func(export.name, f));
                            }
                        }
                        ExternalKind::Memory if export.name == MEMORY_EXPORT => {
                            let ty = memories.get(export.index as usize);
                            exports.memory = Some(match ty {
                                Some(ty) if ty.memory64 => MemoryExport::Unusable("64-bit"),
                                Some(ty) if ty.shared => MemoryExport::Unusable("shared"),
                                _ => MemoryExport::Plain,
                            });
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(exports)
}

fn exported_func(name: &str, f: &FuncType) -> ExportedFunc {
    let list = |types: &[ValType]| {
        types
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let results = match f.results() {
        [] => "()".to_string(),
        [one] => one.to_string(),
        many => format!("({})", list(many)),
    };
    let numeric =
        |t: &ValType| matches!(t, ValType::I32 | ValType::I64 | ValType::F32 | ValType::F64);
    ExportedFunc {
        name: name.to_string(),
        signature: format!("({}) -> {results}", list(f.params())),
        is_abi_entry: f.params() == [ValType::I32, ValType::I32] && f.results() == [ValType::I64],
        is_numeric: f.params().iter().all(numeric) && f.results().iter().all(numeric),
    }
}

/// The entries to list in the manifest: `given`, or by default every export of the entry type.
/// Refuses, naming the fix, a module the runtime would refuse for its exports:
///
/// - by default, a module with no export of the entry type, or whose entries come without
///   `sealbox_alloc` (a numeric function of that type must be named with `--entry`);
/// - a `sealbox_alloc` of another type than `(i32) -> i32`, or without a plain 32-bit memory
///   exported as `memory`;
/// - with `sealbox_alloc`, an entry not of the entry type (the runtime calls every entry of
///   such a module with bytes);
/// - an entry that is not an exported function, or whose parameters or results are not numbers.
pub(crate) fn resolve_entries(
    exports: &Exports,
    given: Option<&[String]>,
) -> Result<Vec<String>, FormatError> {
    let abi = |what: String| FormatError::Abi(what);
    if let Some(alloc) = exports.func(ALLOC_EXPORT)
        && alloc.signature != "(i32) -> i32"
    {
        return Err(abi(format!(
            "`{ALLOC_EXPORT}` has type {}; the ABI needs (i32) -> i32 (it returns where the host \
             writes the input); {HOW_TO_EXPORT}",
            alloc.signature
        )));
    }
    let bytes_abi = exports.func(ALLOC_EXPORT).is_some();
    if bytes_abi {
        match exports.memory {
            None => {
                return Err(abi(format!(
                    "it exports `{ALLOC_EXPORT}` but no memory named `{MEMORY_EXPORT}`: the host \
                     has nowhere to write the input; {HOW_TO_EXPORT}"
                )));
            }
            Some(MemoryExport::Unusable(kind)) => {
                return Err(abi(format!(
                    "its `{MEMORY_EXPORT}` is a {kind} memory; the ABI needs a plain 32-bit one"
                )));
            }
            Some(MemoryExport::Plain) => {}
        }
    }
    let entries: Vec<String> = match given {
        None => {
            let found: Vec<String> = exports
                .funcs
                .iter()
                .filter(|f| f.is_abi_entry)
                .map(|f| f.name.clone())
                .collect();
            if found.is_empty() {
                return Err(abi(format!(
                    "the module exports no entry: an entry has type {ENTRY_TYPE} (input address \
                     and length in, `(out_ptr << 32) | out_len` out) ({}); {HOW_TO_EXPORT}; to \
                     seal plain numeric functions instead, name them with --entry",
                    exports.listing()
                )));
            }
            if !bytes_abi {
                return Err(abi(format!(
                    "`{}` {} the entry type {ENTRY_TYPE}, but the module does not export \
                     `{ALLOC_EXPORT}` (i32) -> i32, so the host cannot pass it any input; \
                     {HOW_TO_EXPORT}; if {} plain numeric functions, name them with --entry",
                    found.join("`, `"),
                    if found.len() == 1 { "has" } else { "have" },
                    if found.len() == 1 {
                        "it is a"
                    } else {
                        "they are"
                    },
                )));
            }
            found
        }
        Some(given) => {
            for name in given {
                let Some(f) = exports.func(name) else {
                    return Err(FormatError::Options(format!(
                        "entry {name:?} is not an exported function ({})",
                        exports.listing()
                    )));
                };
                if name == ALLOC_EXPORT {
                    return Err(abi(format!(
                        "`{ALLOC_EXPORT}` is the ABI's allocator, not an entry"
                    )));
                }
                if bytes_abi && !f.is_abi_entry {
                    return Err(abi(format!(
                        "entry `{name}` has type {}, but a module that exports `{ALLOC_EXPORT}` \
                         is called with bytes: every entry must have type {ENTRY_TYPE}; \
                         {HOW_TO_EXPORT}",
                        f.signature
                    )));
                }
                if !f.is_numeric {
                    return Err(abi(format!(
                        "entry `{name}` has type {}: only numbers can be passed to a numeric \
                         entry, and a bytes entry has type {ENTRY_TYPE}",
                        f.signature
                    )));
                }
            }
            given.to_vec()
        }
    };
    Ok(entries)
}

/// Custom section names a plaintext module must not carry: they belong to sealed modules.
fn is_reserved(name: &str) -> bool {
    name == signature::SECTION_NAME
        || name == "signature_delimiter"
        || name == manifest::SECTION_NAME
        || name == payload::SECTION_NAME
        || name.starts_with("sealbox.")
}
