//! WIT-like text of component types, for listings and error messages.
//! Structural: wasmtime's types do not keep the WIT names of records,
//! variants and enums, so a record prints as `record { income: u64, … }`.

use wasmtime::component::Type;
use wasmtime::component::types::ComponentFunc;

/// The WIT-like text of `ty`.
pub fn type_text(ty: &Type) -> String {
    match ty {
        Type::Bool => "bool".into(),
        Type::S8 => "s8".into(),
        Type::U8 => "u8".into(),
        Type::S16 => "s16".into(),
        Type::U16 => "u16".into(),
        Type::S32 => "s32".into(),
        Type::U32 => "u32".into(),
        Type::S64 => "s64".into(),
        Type::U64 => "u64".into(),
        Type::Float32 => "f32".into(),
        Type::Float64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::List(l) => format!("list<{}>", type_text(&l.ty())),
        Type::Record(r) => {
            let fields: Vec<String> = r
                .fields()
                .map(|f| format!("{}: {}", f.name, type_text(&f.ty)))
                .collect();
            format!("record {{ {} }}", fields.join(", "))
        }
        Type::Tuple(t) => {
            let types: Vec<String> = t.types().map(|t| type_text(&t)).collect();
            format!("tuple<{}>", types.join(", "))
        }
        Type::Variant(v) => {
            let cases: Vec<String> = v
                .cases()
                .map(|c| match &c.ty {
                    Some(t) => format!("{}({})", c.name, type_text(t)),
                    None => c.name.to_string(),
                })
                .collect();
            format!("variant {{ {} }}", cases.join(", "))
        }
        Type::Enum(e) => format!("enum {{ {} }}", e.names().collect::<Vec<_>>().join(", ")),
        Type::Option(o) => format!("option<{}>", type_text(&o.ty())),
        Type::Result(r) => match (r.ok(), r.err()) {
            (None, None) => "result".into(),
            (Some(ok), None) => format!("result<{}>", type_text(&ok)),
            (None, Some(err)) => format!("result<_, {}>", type_text(&err)),
            (Some(ok), Some(err)) => format!("result<{}, {}>", type_text(&ok), type_text(&err)),
        },
        Type::Flags(f) => format!("flags {{ {} }}", f.names().collect::<Vec<_>>().join(", ")),
        Type::Own(_) => "own<resource>".into(),
        Type::Borrow(_) => "borrow<resource>".into(),
        other => format!("{other:?}"),
    }
}

/// `name(param: type, …) -> result` of an exported function.
pub fn func_text(name: &str, ty: &ComponentFunc) -> String {
    let params: Vec<String> = ty
        .params()
        .map(|(n, t)| format!("{n}: {}", type_text(&t)))
        .collect();
    let results: Vec<String> = ty.results().map(|t| type_text(&t)).collect();
    match results.as_slice() {
        [] => format!("{name}({})", params.join(", ")),
        [one] => format!("{name}({}) -> {one}", params.join(", ")),
        many => format!("{name}({}) -> ({})", params.join(", "), many.join(", ")),
    }
}
