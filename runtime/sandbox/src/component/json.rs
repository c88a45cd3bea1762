//! JSON for component values, typed by the function's WIT signature.
//!
//! | WIT | JSON |
//! |---|---|
//! | `bool` | `true` / `false` |
//! | integers, `f32`, `f64` | a number in the type's range (integers must be whole) |
//! | `char`, `string` | a string (one character for `char`) |
//! | `list<T>`, `tuple<…>` | an array (a tuple's of its exact length) |
//! | `record` | an object with exactly the record's fields, by their WIT names |
//! | `enum` | the case name as a string |
//! | `variant` | `{"case": payload}`, or the case name as a string for a case without payload |
//! | `option<T>` | `null` for none, else the value |
//! | `result<T, E>` | `{"ok": value}` or `{"err": value}` (`null` for no payload) |
//! | `flags` | an array of the flag names that are set |
//!
//! Resources cannot cross as JSON. Every error names the path of the value
//! that does not fit (`applicant.late-payments`, `xs[2]`) and what was
//! expected, so an HTTP caller can fix the field.

use serde_json::{Map, Number, Value};
use wasmtime::component::{Type, Val};

use super::signature::type_text;

/// A JSON value that does not fit the WIT type; `path` names where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonMismatch {
    /// Where in the arguments, e.g. `applicant.age` (empty for the whole).
    pub path: String,
    /// What was expected and what was found.
    pub reason: String,
}

impl std::fmt::Display for JsonMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "`{}`: {}", self.path, self.reason)
        }
    }
}

/// Converts `value` to a component value of type `ty`; `path` prefixes errors.
pub fn from_json(ty: &Type, value: &Value, path: &str) -> Result<Val, JsonMismatch> {
    let fail = |reason: String| JsonMismatch {
        path: path.to_string(),
        reason,
    };
    let expected = |what: &str| fail(format!("expected {what}, found {}", kind(value)));
    Ok(match ty {
        Type::Bool => Val::Bool(value.as_bool().ok_or_else(|| expected("a boolean"))?),
        Type::S8 => Val::S8(int(value, path, "s8")?),
        Type::U8 => Val::U8(int(value, path, "u8")?),
        Type::S16 => Val::S16(int(value, path, "s16")?),
        Type::U16 => Val::U16(int(value, path, "u16")?),
        Type::S32 => Val::S32(int(value, path, "s32")?),
        Type::U32 => Val::U32(int(value, path, "u32")?),
        Type::S64 => Val::S64(int(value, path, "s64")?),
        Type::U64 => Val::U64(int(value, path, "u64")?),
        Type::Float32 => Val::Float32(value.as_f64().ok_or_else(|| expected("a number"))? as f32),
        Type::Float64 => Val::Float64(value.as_f64().ok_or_else(|| expected("a number"))?),
        Type::Char => {
            let s = value
                .as_str()
                .ok_or_else(|| expected("a one-character string"))?;
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Val::Char(c),
                _ => return Err(expected("a one-character string")),
            }
        }
        Type::String => Val::String(value.as_str().ok_or_else(|| expected("a string"))?.into()),
        Type::List(list) => {
            let items = value.as_array().ok_or_else(|| expected("an array"))?;
            let ty = list.ty();
            Val::List(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| from_json(&ty, v, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            )
        }
        Type::Record(record) => {
            let object = value.as_object().ok_or_else(|| expected("an object"))?;
            let mut fields = Vec::new();
            for field in record.fields() {
                let at = join(path, field.name);
                let v = object.get(field.name).ok_or_else(|| JsonMismatch {
                    path: at.clone(),
                    reason: format!("missing field of type {}", type_text(&field.ty)),
                })?;
                fields.push((field.name.to_string(), from_json(&field.ty, v, &at)?));
            }
            if let Some(extra) = object
                .keys()
                .find(|k| !record.fields().any(|f| f.name == k.as_str()))
            {
                let known: Vec<&str> = record.fields().map(|f| f.name).collect();
                return Err(JsonMismatch {
                    path: join(path, extra),
                    reason: format!("unknown field (the fields are {})", known.join(", ")),
                });
            }
            Val::Record(fields)
        }
        Type::Tuple(tuple) => {
            let items = value.as_array().ok_or_else(|| expected("an array"))?;
            let types: Vec<Type> = tuple.types().collect();
            if items.len() != types.len() {
                return Err(fail(format!(
                    "expected an array of {} items, found {}",
                    types.len(),
                    items.len()
                )));
            }
            Val::Tuple(
                types
                    .iter()
                    .zip(items)
                    .enumerate()
                    .map(|(i, (t, v))| from_json(t, v, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            )
        }
        Type::Enum(e) => {
            let name = value.as_str().ok_or_else(|| expected("a string"))?;
            if !e.names().any(|n| n == name) {
                let names: Vec<&str> = e.names().collect();
                return Err(fail(format!("{name:?} is not one of {}", names.join(", "))));
            }
            Val::Enum(name.into())
        }
        Type::Variant(variant) => {
            let (name, payload) = match value {
                Value::String(s) => (s.as_str(), None),
                Value::Object(o) if o.len() == 1 => {
                    let (k, v) = o.iter().next().unwrap_or_else(|| unreachable!("one entry"));
                    (k.as_str(), Some(v))
                }
                _ => return Err(expected("a case name or {\"case\": payload}")),
            };
            let case = variant.cases().find(|c| c.name == name).ok_or_else(|| {
                let names: Vec<&str> = variant.cases().map(|c| c.name).collect();
                fail(format!("{name:?} is not one of {}", names.join(", ")))
            })?;
            let at = join(path, name);
            let payload = match (&case.ty, payload) {
                (Some(t), Some(v)) => Some(Box::new(from_json(t, v, &at)?)),
                (Some(t), None) => {
                    return Err(fail(format!(
                        "case {name} carries a {}: write {{\"{name}\": value}}",
                        type_text(t)
                    )));
                }
                (None, None) | (None, Some(Value::Null)) => None,
                (None, Some(_)) => {
                    return Err(JsonMismatch {
                        path: at,
                        reason: "this case carries no value (use null or the bare name)".into(),
                    });
                }
            };
            Val::Variant(name.into(), payload)
        }
        Type::Option(option) => match value {
            Value::Null => Val::Option(None),
            v => Val::Option(Some(Box::new(from_json(&option.ty(), v, path)?))),
        },
        Type::Result(result) => {
            let object = value
                .as_object()
                .filter(|o| o.len() == 1)
                .ok_or_else(|| expected("{\"ok\": value} or {\"err\": value}"))?;
            let (k, v) = object
                .iter()
                .next()
                .unwrap_or_else(|| unreachable!("one entry"));
            let (ty, ok) = match k.as_str() {
                "ok" => (result.ok(), true),
                "err" => (result.err(), false),
                _ => return Err(expected("{\"ok\": value} or {\"err\": value}")),
            };
            let at = join(path, k);
            let payload = match ty {
                Some(t) => Some(Box::new(from_json(&t, v, &at)?)),
                None if v.is_null() => None,
                None => {
                    return Err(JsonMismatch {
                        path: at,
                        reason: "this case carries no value (use null)".into(),
                    });
                }
            };
            Val::Result(if ok { Ok(payload) } else { Err(payload) })
        }
        Type::Flags(flags) => {
            let items = value
                .as_array()
                .ok_or_else(|| expected("an array of flag names"))?;
            let mut set = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let name = item.as_str().filter(|n| flags.names().any(|f| f == *n));
                let Some(name) = name else {
                    let names: Vec<&str> = flags.names().collect();
                    return Err(JsonMismatch {
                        path: format!("{path}[{i}]"),
                        reason: format!("expected one of {}", names.join(", ")),
                    });
                };
                set.push(name.to_string());
            }
            Val::Flags(set)
        }
        other => {
            return Err(fail(format!(
                "{} values cannot be passed as JSON",
                type_text(other)
            )));
        }
    })
}

/// Converts a component value to JSON (the inverse of [`from_json`]).
pub fn to_json(val: &Val) -> Value {
    match val {
        Val::Bool(b) => Value::Bool(*b),
        Val::S8(v) => (*v).into(),
        Val::U8(v) => (*v).into(),
        Val::S16(v) => (*v).into(),
        Val::U16(v) => (*v).into(),
        Val::S32(v) => (*v).into(),
        Val::U32(v) => (*v).into(),
        Val::S64(v) => (*v).into(),
        Val::U64(v) => (*v).into(),
        Val::Float32(v) => Number::from_f64(f64::from(*v)).map_or(Value::Null, Value::Number),
        Val::Float64(v) => Number::from_f64(*v).map_or(Value::Null, Value::Number),
        Val::Char(c) => Value::String(c.to_string()),
        Val::String(s) => Value::String(s.clone()),
        Val::List(items) | Val::Tuple(items) => Value::Array(items.iter().map(to_json).collect()),
        Val::Record(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect::<Map<_, _>>(),
        ),
        Val::Variant(name, None) => Value::String(name.clone()),
        Val::Variant(name, Some(payload)) => single(name, to_json(payload)),
        Val::Enum(name) => Value::String(name.clone()),
        Val::Option(None) => Value::Null,
        Val::Option(Some(v)) => to_json(v),
        Val::Result(Ok(v)) => single("ok", v.as_deref().map_or(Value::Null, to_json)),
        Val::Result(Err(v)) => single("err", v.as_deref().map_or(Value::Null, to_json)),
        Val::Flags(names) => Value::Array(names.iter().cloned().map(Value::String).collect()),
        _ => Value::Null,
    }
}

fn single(key: &str, value: Value) -> Value {
    let mut map = Map::new();
    map.insert(key.to_string(), value);
    Value::Object(map)
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// An integer of the WIT type `ty` from a JSON number, whole and in range.
fn int<T: TryFrom<i128>>(value: &Value, path: &str, ty: &str) -> Result<T, JsonMismatch> {
    let whole = match value {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from)),
        _ => None,
    };
    whole
        .and_then(|w| T::try_from(w).ok())
        .ok_or_else(|| JsonMismatch {
            path: path.to_string(),
            reason: format!("expected {ty} ({}), found {}", int_range(ty), kind(value)),
        })
}

fn int_range(ty: &str) -> &'static str {
    match ty {
        "s8" => "a whole number from -128 to 127",
        "u8" => "a whole number from 0 to 255",
        "s16" => "a whole number from -32768 to 32767",
        "u16" => "a whole number from 0 to 65535",
        "s32" => "a whole number from -2147483648 to 2147483647",
        "u32" => "a whole number from 0 to 4294967295",
        "s64" => "a whole number from -9223372036854775808 to 9223372036854775807",
        _ => "a whole number from 0 to 18446744073709551615",
    }
}

/// How a JSON value reads in an error: its kind and, if short, itself.
fn kind(value: &Value) -> String {
    let what = match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "the number",
        Value::String(_) => "the string",
        Value::Array(_) => return "an array".into(),
        Value::Object(_) => return "an object".into(),
    };
    match value {
        Value::Number(_) | Value::String(_) => {
            let text = value.to_string();
            if text.len() <= 40 {
                format!("{what} {text}")
            } else {
                format!("{what} {}…", &text[..text.floor_char_boundary(40)])
            }
        }
        _ => what.to_string(),
    }
}
