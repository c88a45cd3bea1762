//! Checks on the plaintext module given to [`crate::seal`], and entry-point detection.

use wasmparser::{CompositeInnerType, ExternalKind, Parser, Payload, ValType, Validator};

use crate::wasm;
use crate::{FormatError, manifest, payload, signature};

/// An exported function of a plaintext module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExportedFunc {
    pub name: String,
    /// Whether its type is the v1 entry ABI `(i32, i32) -> i64`.
    pub is_abi_entry: bool,
}

/// Validates `bytes` as a core Wasm module that is not sealed yet, and lists its exported
/// functions.
pub(crate) fn check_plaintext(bytes: &[u8]) -> Result<Vec<ExportedFunc>, FormatError> {
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
    let mut exports = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| FormatError::NotWasm(e.to_string()))?;
        let Payload::ExportSection(reader) = payload else {
            continue;
        };
        for export in reader {
            let export = export.map_err(|e| FormatError::NotWasm(e.to_string()))?;
            if export.kind != ExternalKind::Func {
                continue;
            }
            let sub = &types[types.as_ref().core_function_at(export.index)];
            let is_abi_entry = match &sub.composite_type.inner {
                CompositeInnerType::Func(f) => {
                    f.params() == [ValType::I32, ValType::I32] && f.results() == [ValType::I64]
                }
                _ => false,
            };
            exports.push(ExportedFunc {
                name: export.name.to_string(),
                is_abi_entry,
            });
        }
    }
    Ok(exports)
}

/// Custom section names a plaintext module must not carry: they belong to sealed modules.
fn is_reserved(name: &str) -> bool {
    name == signature::SECTION_NAME
        || name == "signature_delimiter"
        || name == manifest::SECTION_NAME
        || name == payload::SECTION_NAME
        || name.starts_with("sealbox.")
}
