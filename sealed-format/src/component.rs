//! Sealed components: the WIT world a component implements, named in the
//! manifest and checked against the binary when it is sealed.
//!
//! The vendor gives the WIT package source and the world's name; [`check`]
//! parses it with `wit-parser`, decodes the component's own type (also with
//! `wit-parser`) and requires every export of the world to be exported by the
//! component with the same type — structurally: record fields, enum and
//! variant cases, flags, lists, options, results and tuples, parameter names
//! and order. Extra exports of the component are not part of the product and
//! are not listed. Imports are the runtime's to grant (WASI without
//! capabilities) and are reported, not checked, here.

use wasmparser::{Parser, Payload, Validator, WasmFeatures};
use wit_parser::decoding::{DecodedWasm, decode};
use wit_parser::{Function, Resolve, Type, TypeDefKind, TypeId, WorldId, WorldItem, WorldKey};

use crate::manifest::ComponentInfo;
use crate::{FormatError, manifest, payload, signature, wasm};

/// The largest WIT source a manifest carries.
pub const MAX_WIT_BYTES: usize = 32 * 1024;

/// What [`check`] found: the world as the manifest names it, and the
/// functions a caller can call (`name`, or `interface#name`), sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The manifest's `component` entry.
    pub info: ComponentInfo,
    /// The world's exported functions.
    pub functions: Vec<String>,
    /// The component's imports, e.g. `wasi:io/streams@0.2.3`.
    pub imports: Vec<String>,
}

/// Validates `bytes` as a component that is not sealed yet.
pub(crate) fn check_plaintext(bytes: &[u8]) -> Result<(), FormatError> {
    let scan = wasm::scan(bytes).map_err(|e| match e {
        FormatError::Parse(what) => FormatError::NotWasm(what),
        other => other,
    })?;
    if scan.layer != wasm::Layer::Component {
        return Err(FormatError::NotWasm("not a component".into()));
    }
    if let Some(name) = scan.sections.iter().filter_map(|s| s.name).find(|n| {
        *n == signature::SECTION_NAME
            || *n == manifest::SECTION_NAME
            || *n == payload::SECTION_NAME
            || n.starts_with("sealbox.")
    }) {
        return Err(FormatError::AlreadySealed(format!(
            "the component has a `{name}` custom section; seal the original component instead"
        )));
    }
    Validator::new_with_features(WasmFeatures::all())
        .validate_all(bytes)
        .map_err(|e| FormatError::NotWasm(format!("invalid component: {e}")))?;
    Ok(())
}

/// The top-level imports of a component.
pub fn imports(bytes: &[u8]) -> Result<Vec<String>, FormatError> {
    let mut imports = Vec::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(|e| FormatError::NotWasm(e.to_string()))? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import = import.map_err(|e| FormatError::NotWasm(e.to_string()))?;
                    imports.push(import.name.full_name().into_owned());
                }
            }
            _ => {}
        }
    }
    Ok(imports)
}

/// Checks that the component `bytes` implements `world` (a name in the WIT
/// package `wit`, or its only world when `None`), and says what the
/// manifest records. Errors name the missing or mismatched export.
pub fn check(bytes: &[u8], wit: &str, world: Option<&str>) -> Result<Checked, FormatError> {
    check_plaintext(bytes)?;
    if wit.len() > MAX_WIT_BYTES {
        return Err(FormatError::Options(format!(
            "the WIT source is {} bytes, more than the {MAX_WIT_BYTES} a manifest carries",
            wit.len()
        )));
    }
    let mut expected = Resolve::new();
    let package = expected
        .push_str("world.wit", wit)
        .map_err(|e| FormatError::Options(format!("the WIT does not parse: {e:#}")))?;
    let world_id = expected
        .select_world(&[package], world)
        .map_err(|e| FormatError::Options(format!("no such world in the WIT: {e:#}")))?;
    let (actual, actual_world) = match decode(bytes) {
        Ok(DecodedWasm::Component(resolve, world)) => (resolve, world),
        Ok(DecodedWasm::WitPackage(..)) => {
            return Err(FormatError::NotWasm(
                "a WIT package, not a component that implements one".into(),
            ));
        }
        Err(e) => {
            return Err(FormatError::NotWasm(format!(
                "cannot read the component's type: {e:#}"
            )));
        }
    };
    let functions = compare_exports(&expected, world_id, &actual, actual_world)?;

    let name = &expected.packages[package].name;
    let info = ComponentInfo {
        package: format!("{}:{}", name.namespace, name.name),
        world: expected.worlds[world_id].name.clone(),
        version: name.version.as_ref().map(|v| v.to_string()),
        wit: wit.to_string(),
    };
    Ok(Checked {
        info,
        functions,
        imports: imports(bytes)?,
    })
}

/// The exported functions of the manifest's world with their WIT signatures,
/// e.g. `("score", "func(applicant: applicant) -> result<assessment, string>")`,
/// sorted by name: what `packager inspect` prints.
pub fn world_functions(info: &ComponentInfo) -> Result<Vec<(String, String)>, FormatError> {
    let mut resolve = Resolve::new();
    let package = resolve
        .push_str("world.wit", &info.wit)
        .map_err(|e| FormatError::Manifest(format!("component.wit does not parse: {e:#}")))?;
    let world = resolve
        .select_world(&[package], Some(&info.world))
        .map_err(|e| FormatError::Manifest(format!("component.world: {e:#}")))?;
    let cmp = TypeCmp {
        expected: &resolve,
        actual: &resolve,
    };
    let mut out = Vec::new();
    for (key, item) in &resolve.worlds[world].exports {
        let name = key_name(&resolve, key);
        match item {
            WorldItem::Function(f) => out.push((name, cmp.sig(&resolve, f))),
            WorldItem::Interface { id, .. } => {
                for (fname, f) in &resolve.interfaces[*id].functions {
                    out.push((format!("{name}#{fname}"), cmp.sig(&resolve, f)));
                }
            }
            WorldItem::Type { .. } => {}
        }
    }
    out.sort();
    Ok(out)
}

fn world_err(what: String) -> FormatError {
    FormatError::World(what)
}

/// Every export of the expected world must be in the actual one, same type.
fn compare_exports(
    expected: &Resolve,
    expected_world: WorldId,
    actual: &Resolve,
    actual_world: WorldId,
) -> Result<Vec<String>, FormatError> {
    let world_name = &expected.worlds[expected_world].name;
    let actual_exports: Vec<(String, &WorldItem)> = actual.worlds[actual_world]
        .exports
        .iter()
        .map(|(k, v)| (key_name(actual, k), v))
        .collect();
    let exported_names = || {
        let names: Vec<&str> = actual_exports.iter().map(|(n, _)| n.as_str()).collect();
        if names.is_empty() {
            "it exports nothing".to_string()
        } else {
            format!("it exports {}", names.join(", "))
        }
    };
    let cmp = TypeCmp { expected, actual };
    let mut functions = Vec::new();
    for (key, item) in &expected.worlds[expected_world].exports {
        let name = key_name(expected, key);
        let found = actual_exports
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, i)| *i);
        match (item, found) {
            (WorldItem::Function(want), Some(WorldItem::Function(have))) => {
                cmp.function(want, have, &name)?;
                functions.push(name);
            }
            (
                WorldItem::Interface { id: want, .. },
                Some(WorldItem::Interface { id: have, .. }),
            ) => {
                let have = &actual.interfaces[*have];
                for (fname, want_f) in &expected.interfaces[*want].functions {
                    let qualified = format!("{name}#{fname}");
                    let have_f = have.functions.get(fname).ok_or_else(|| {
                        world_err(format!(
                            "world `{world_name}` exports `{qualified}`, the component does not"
                        ))
                    })?;
                    cmp.function(want_f, have_f, &qualified)?;
                    functions.push(qualified);
                }
            }
            (WorldItem::Type { .. }, _) => {}
            (_, None) => {
                return Err(world_err(format!(
                    "world `{world_name}` exports `{name}`, the component does not ({})",
                    exported_names()
                )));
            }
            (_, Some(_)) => {
                return Err(world_err(format!(
                    "world `{world_name}` exports `{name}` as a {}, the component as something else",
                    if matches!(item, WorldItem::Function(_)) {
                        "function"
                    } else {
                        "interface"
                    }
                )));
            }
        }
    }
    functions.sort();
    Ok(functions)
}

/// `name` for a plain key, `ns:pkg/iface@version` for an interface.
fn key_name(resolve: &Resolve, key: &WorldKey) -> String {
    resolve.name_world_key(key)
}

/// Structural type comparison across two resolves.
struct TypeCmp<'a> {
    expected: &'a Resolve,
    actual: &'a Resolve,
}

impl TypeCmp<'_> {
    fn function(&self, want: &Function, have: &Function, name: &str) -> Result<(), FormatError> {
        let mismatch = |what: String| {
            world_err(format!(
                "`{name}` does not match the world: {what} (world: {}, component: {})",
                self.sig(self.expected, want),
                self.sig(self.actual, have)
            ))
        };
        if want.params.len() != have.params.len() {
            return Err(mismatch(format!(
                "{} parameters instead of {}",
                have.params.len(),
                want.params.len()
            )));
        }
        for (w, h) in want.params.iter().zip(&have.params) {
            if w.name != h.name {
                return Err(mismatch(format!(
                    "parameter `{}` is named `{}`",
                    w.name, h.name
                )));
            }
            if !self.same(&w.ty, &h.ty) {
                return Err(mismatch(format!("parameter `{}` has another type", w.name)));
            }
        }
        match (&want.result, &have.result) {
            (None, None) => Ok(()),
            (Some(w), Some(h)) if self.same(w, h) => Ok(()),
            _ => Err(mismatch("the result has another type".into())),
        }
    }

    fn sig(&self, resolve: &Resolve, f: &Function) -> String {
        let params: Vec<String> = f
            .params
            .iter()
            .map(|p| format!("{}: {}", p.name, type_name(resolve, &p.ty)))
            .collect();
        match &f.result {
            Some(r) => format!("func({}) -> {}", params.join(", "), type_name(resolve, r)),
            None => format!("func({})", params.join(", ")),
        }
    }

    fn same(&self, want: &Type, have: &Type) -> bool {
        match (
            self.unalias(self.expected, want),
            self.unalias(self.actual, have),
        ) {
            (Type::Id(w), Type::Id(h)) => self.same_def(w, h),
            (w, h) => w == h,
        }
    }

    fn same_opt(&self, want: &Option<Type>, have: &Option<Type>) -> bool {
        match (want, have) {
            (None, None) => true,
            (Some(w), Some(h)) => self.same(w, h),
            _ => false,
        }
    }

    fn unalias(&self, resolve: &Resolve, ty: &Type) -> Type {
        let mut ty = *ty;
        while let Type::Id(id) = ty {
            match &resolve.types[id].kind {
                TypeDefKind::Type(inner) => ty = *inner,
                _ => break,
            }
        }
        ty
    }

    fn same_def(&self, w: TypeId, h: TypeId) -> bool {
        use TypeDefKind as K;
        let (w, h) = (&self.expected.types[w].kind, &self.actual.types[h].kind);
        match (w, h) {
            (K::Record(w), K::Record(h)) => {
                w.fields.len() == h.fields.len()
                    && w.fields
                        .iter()
                        .zip(&h.fields)
                        .all(|(a, b)| a.name == b.name && self.same(&a.ty, &b.ty))
            }
            (K::Flags(w), K::Flags(h)) => {
                w.flags.len() == h.flags.len()
                    && w.flags.iter().zip(&h.flags).all(|(a, b)| a.name == b.name)
            }
            (K::Tuple(w), K::Tuple(h)) => {
                w.types.len() == h.types.len()
                    && w.types.iter().zip(&h.types).all(|(a, b)| self.same(a, b))
            }
            (K::Variant(w), K::Variant(h)) => {
                w.cases.len() == h.cases.len()
                    && w.cases
                        .iter()
                        .zip(&h.cases)
                        .all(|(a, b)| a.name == b.name && self.same_opt(&a.ty, &b.ty))
            }
            (K::Enum(w), K::Enum(h)) => {
                w.cases.len() == h.cases.len()
                    && w.cases.iter().zip(&h.cases).all(|(a, b)| a.name == b.name)
            }
            (K::Option(w), K::Option(h)) | (K::List(w), K::List(h)) => self.same(w, h),
            (K::FixedLengthList(w, n), K::FixedLengthList(h, m)) => n == m && self.same(w, h),
            (K::Map(wk, wv), K::Map(hk, hv)) => self.same(wk, hk) && self.same(wv, hv),
            (K::Result(w), K::Result(h)) => {
                self.same_opt(&w.ok, &h.ok) && self.same_opt(&w.err, &h.err)
            }
            (K::Future(w), K::Future(h)) | (K::Stream(w), K::Stream(h)) => self.same_opt(w, h),
            // Resources are compared by name only.
            (K::Resource, K::Resource) => true,
            (K::Handle(_), K::Handle(_)) => true,
            _ => false,
        }
    }
}

/// A type as WIT writes it (named types by name), for messages.
fn type_name(resolve: &Resolve, ty: &Type) -> String {
    match ty {
        Type::Id(id) => {
            let def = &resolve.types[*id];
            if let Some(name) = &def.name {
                return name.clone();
            }
            match &def.kind {
                TypeDefKind::List(t) => format!("list<{}>", type_name(resolve, t)),
                TypeDefKind::Option(t) => format!("option<{}>", type_name(resolve, t)),
                TypeDefKind::Result(r) => format!(
                    "result<{}, {}>",
                    r.ok.as_ref().map_or("_".into(), |t| type_name(resolve, t)),
                    r.err.as_ref().map_or("_".into(), |t| type_name(resolve, t))
                ),
                TypeDefKind::Tuple(t) => format!(
                    "tuple<{}>",
                    t.types
                        .iter()
                        .map(|t| type_name(resolve, t))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                other => other.as_str().to_string(),
            }
        }
        Type::Bool => "bool".into(),
        Type::U8 => "u8".into(),
        Type::U16 => "u16".into(),
        Type::U32 => "u32".into(),
        Type::U64 => "u64".into(),
        Type::S8 => "s8".into(),
        Type::S16 => "s16".into(),
        Type::S32 => "s32".into(),
        Type::S64 => "s64".into(),
        Type::F32 => "f32".into(),
        Type::F64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::ErrorContext => "error-context".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WIT: &str = r#"
        package acme:calc@1.2.0;
        interface types {
            record dims { w: u32, h: u32 }
        }
        world calc {
            use types.{dims};
            export area: func(r: dims) -> u64;
            export add: func(a: u32, b: u32) -> u32;
        }
    "#;

    /// Shaped like `wit-component`'s output: the world's `use` is a type-only import.
    fn component(area_result: &str) -> Vec<u8> {
        wat::parse_str(format!(
            r#"(component
              (type $types (instance
                (type $d (record (field "w" u32) (field "h" u32)))
                (export "dims" (type (eq $d)))))
              (import "acme:calc/types@1.2.0" (instance $t (type $types)))
              (alias export $t "dims" (type $dims))
              (core module $m
                (func (export "add") (param i32 i32) (result i32) local.get 0)
                (func (export "area") (param i32 i32) (result i64) i64.const 0))
              (core instance $i (instantiate $m))
              (func (export "add") (param "a" u32) (param "b" u32) (result u32)
                (canon lift (core func $i "add")))
              (func (export "area") (param "r" $dims) (result {area_result})
                (canon lift (core func $i "area"))))"#
        ))
        .unwrap()
    }

    #[test]
    fn a_component_that_implements_the_world_passes() {
        let checked = check(&component("u64"), WIT, None).unwrap();
        assert_eq!(checked.functions, ["add", "area"]);
        assert_eq!(checked.info.package, "acme:calc");
        assert_eq!(checked.info.world, "calc");
        assert_eq!(checked.info.version.as_deref(), Some("1.2.0"));
        assert_eq!(checked.imports, ["acme:calc/types@1.2.0"]);
        let functions = world_functions(&checked.info).unwrap();
        assert_eq!(
            functions,
            [
                ("add".to_string(), "func(a: u32, b: u32) -> u32".to_string()),
                ("area".to_string(), "func(r: dims) -> u64".to_string())
            ]
        );
    }

    #[test]
    fn a_type_mismatch_names_the_function() {
        let wasm = component("u64").to_vec();
        let wit = WIT.replace("-> u64", "-> u32");
        let err = check(&wasm, &wit, None).unwrap_err();
        assert!(matches!(err, FormatError::World(_)), "{err}");
        let text = err.to_string();
        assert!(text.contains("`area`") && text.contains("result"), "{text}");
    }

    #[test]
    fn a_missing_export_and_a_wrong_world_are_refused() {
        let wit = WIT.replace(
            "export add: func(a: u32, b: u32) -> u32;",
            "export add: func(a: u32, b: u32) -> u32;\n export mul: func(a: u32, b: u32) -> u32;",
        );
        let err = check(&component("u64"), &wit, None).unwrap_err();
        assert!(err.to_string().contains("`mul`"), "{err}");
        let err = check(&component("u64"), WIT, Some("other")).unwrap_err();
        assert!(matches!(err, FormatError::Options(_)), "{err}");
    }

    #[test]
    fn a_core_module_is_not_a_component() {
        let module = wat::parse_str("(module)").unwrap();
        assert!(matches!(
            check(&module, WIT, None),
            Err(FormatError::NotWasm(_))
        ));
    }
}
