//! `componentize`: the wasm-tools steps examples/components/build.sh needs, as
//! one small binary built from exact-pinned crates (no `wasm-tools` install).
//!
//! ```text
//! componentize new CORE.wasm OUT.wasm   core module with a wit-bindgen component-type
//!                                       section -> component (no WASI adapter)
//! componentize print IN.wasm            the component (or module) as text (wasmprinter)
//! componentize parse IN.wat OUT.wasm    text -> binary (wat), then validate
//! componentize imports IN.wasm          the component's own imports and exports, one a line
//! componentize wit IN.wasm              the WIT world the component implements
//! ```

use std::process::ExitCode;

use wasmparser::{Parser, Payload, Validator, WasmFeatures};

type Result<T> = std::result::Result<T, String>;

fn read(path: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))
}

fn write(path: &str, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {path}: {e}"))
}

fn validate(bytes: &[u8], what: &str) -> Result<()> {
    Validator::new_with_features(WasmFeatures::all())
        .validate_all(bytes)
        .map(drop)
        .map_err(|e| format!("{what} does not validate: {e}"))
}

/// A core module carrying wit-bindgen's `component-type` custom section becomes
/// a component. No adapter is given: a module that imports WASI is refused.
fn new(core: &str, out: &str) -> Result<()> {
    let module = read(core)?;
    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .map_err(|e| format!("{core}: {e:#}"))?
        .validate(true)
        .encode()
        .map_err(|e| format!("{core}: {e:#}"))?;
    validate(&component, out)?;
    write(out, &component)
}

fn print(path: &str) -> Result<()> {
    let text = wasmprinter::print_bytes(read(path)?).map_err(|e| format!("{path}: {e:#}"))?;
    print!("{text}");
    Ok(())
}

fn parse(wat: &str, out: &str) -> Result<()> {
    let bytes = wat::parse_file(wat).map_err(|e| format!("{e}"))?;
    validate(&bytes, wat)?;
    write(out, &bytes)
}

/// The outermost component's imports and exports (not those of the core
/// modules and components nested inside it, which it wires up itself).
fn imports(path: &str) -> Result<()> {
    let bytes = read(path)?;
    validate(&bytes, path)?;
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(&bytes) {
        let payload = payload.map_err(|e| format!("{path}: {e}"))?;
        match payload {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth -= 1,
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    let import = import.map_err(|e| format!("{path}: {e}"))?;
                    println!("import {}", import.name.full_name());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    let export = export.map_err(|e| format!("{path}: {e}"))?;
                    println!("export {}", export.name.full_name());
                }
            }
            Payload::ImportSection(reader) if depth == 1 => {
                for import in reader.into_imports() {
                    let import = import.map_err(|e| format!("{path}: {e}"))?;
                    println!("import {}::{}", import.module, import.name);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn wit(path: &str) -> Result<()> {
    let decoded = wit_component::decode(&read(path)?).map_err(|e| format!("{path}: {e:#}"))?;
    let mut printer = wit_component::WitPrinter::default();
    printer
        .print(decoded.resolve(), decoded.package(), &[])
        .map_err(|e| format!("{path}: {e:#}"))?;
    print!("{}", printer.output);
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["new", core, out] => new(core, out),
        ["print", path] => print(path),
        ["parse", wat, out] => parse(wat, out),
        ["imports", path] => imports(path),
        ["wit", path] => wit(path),
        _ => Err("usage: componentize new CORE.wasm OUT.wasm | print IN.wasm | parse IN.wat OUT.wasm | imports IN.wasm | wit IN.wasm".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("componentize: error: {e}");
            ExitCode::FAILURE
        }
    }
}
