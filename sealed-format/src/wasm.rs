//! Section-level scanning and writing of Wasm binaries, through the Wasm crates: sections are
//! found with [`wasmparser::Parser`] payloads and written with [`wasm_encoder`].
//!
//! Opening a sealed module only needs section boundaries; nothing inside the vendor's code is
//! decoded before the signature holds. The scan reads each section's id and size, the name of
//! each custom section, and what `wasmparser`'s framing reads at the start of a known section
//! (its item count, which lets it check section order and the function/code and data counts);
//! function bodies and nested modules or components are skipped unread.

use std::borrow::Cow;
use std::ops::Range;

use wasm_encoder::{CustomSection, Encode, Section as _};
use wasmparser::{BinaryReaderError, Chunk, Encoding, Parser, Payload};

use crate::FormatError;

/// The 8-byte preamble of a core Wasm module: `\0asm` magic and version 1.
pub const MODULE_HEADER: [u8; 8] = *b"\0asm\x01\0\0\0";

/// The 8-byte preamble of a component: `\0asm` magic, version 13, layer 1.
pub const COMPONENT_HEADER: [u8; 8] = *b"\0asm\x0d\0\x01\0";

/// The Wasm magic bytes that both core modules and components start with.
const MAGIC: &[u8; 4] = b"\0asm";

/// Which binary a scan found: a core module (version 1) or a component (layer 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layer {
    /// A core module: `\0asm 01 00 00 00`.
    Module,
    /// A component: `\0asm 0d 00 01 00`.
    Component,
}

impl Layer {
    /// The 8-byte preamble of this layer.
    pub(crate) fn header(self) -> [u8; 8] {
        match self {
            Layer::Module => MODULE_HEADER,
            Layer::Component => COMPONENT_HEADER,
        }
    }
}

/// One top-level section of a module or component, located in its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Section<'a> {
    /// Section id (0 = custom; the other ids mean different sections in the two layers).
    pub id: u8,
    /// Name of a custom section, `None` for the others.
    pub name: Option<&'a str>,
    /// The whole section (id, size, contents) within the binary.
    pub range: Range<usize>,
    /// Contents after the name for custom sections, all contents otherwise.
    pub payload: &'a [u8],
}

impl Section<'_> {
    /// Whether this is the custom section called `name`.
    pub fn is_custom(&self, name: &str) -> bool {
        self.name == Some(name)
    }
}

/// The sections of a core module or a component, in file order.
#[derive(Debug, Clone)]
pub(crate) struct Scan<'a> {
    /// Core module or component.
    pub layer: Layer,
    /// Its top-level sections.
    pub sections: Vec<Section<'a>>,
}

/// Splits a core module or a component into its top-level sections, checking the framing only:
/// the header, section ids known to the layer, sizes within the file, well-formed custom
/// section names.
///
/// A bad header fails as [`FormatError::NotWasm`], broken framing as [`FormatError::Parse`].
pub(crate) fn scan(bytes: &[u8]) -> Result<Scan<'_>, FormatError> {
    if !bytes.starts_with(MAGIC) {
        return Err(FormatError::NotWasm(
            "the file does not start with the Wasm magic bytes \\0asm".into(),
        ));
    }
    if bytes.len() < MODULE_HEADER.len() {
        return Err(FormatError::NotWasm(
            "the file ends inside the 8-byte Wasm header".into(),
        ));
    }
    let mut parser = Parser::new(0);
    let mut layer = None;
    let mut sections = Vec::new();
    let mut pos = 0;
    loop {
        let start = pos;
        let chunk = parser.parse(&bytes[pos..], true).map_err(|e| match layer {
            None => FormatError::NotWasm(format!(
                "unsupported Wasm version/layer {} ({})",
                hex::encode(&bytes[4..8]),
                e.message()
            )),
            Some(_) => framing_err(start, &e),
        })?;
        let (consumed, payload) = match chunk {
            Chunk::Parsed { consumed, payload } => (consumed, payload),
            // Unreachable with `eof = true`; treated as a truncated file all the same.
            Chunk::NeedMoreData(_) => {
                return Err(parse_err(start, "the file ends inside a section"));
            }
        };
        pos += consumed;
        let (id, name, contents) = match payload {
            Payload::Version { encoding, .. } => {
                layer = Some(match encoding {
                    Encoding::Module => Layer::Module,
                    Encoding::Component => Layer::Component,
                });
                continue;
            }
            Payload::End(_) => break,
            Payload::CustomSection(reader) => (0, Some(reader.name()), reader.data()),
            Payload::UnknownSection { id, .. } => {
                return Err(parse_err(start, format!("unknown section id {id}")));
            }
            other => {
                let Some((id, range)) = other.as_section() else {
                    return Err(parse_err(start, "unexpected payload outside a section"));
                };
                if let Payload::CodeSectionStart { .. } = other {
                    // Function bodies are skipped unread, like nested modules and components
                    // (whose bytes the parser never consumes).
                    parser.skip_section();
                }
                let range = usize_of(range.start)..usize_of(range.end);
                if range.end > bytes.len() || range.end < pos {
                    return Err(parse_err(start, "section runs past the end of the file"));
                }
                pos = range.end;
                (id, None, &bytes[range])
            }
        };
        sections.push(Section {
            id,
            name,
            range: start..pos,
            payload: contents,
        });
    }
    let layer = layer.ok_or_else(|| FormatError::NotWasm("no Wasm header".into()))?;
    Ok(Scan { layer, sections })
}

/// Splits a core module into its sections (see [`scan`]); a component is refused as
/// [`FormatError::NotWasm`].
pub(crate) fn sections(bytes: &[u8]) -> Result<Vec<Section<'_>>, FormatError> {
    let scan = scan(bytes)?;
    match scan.layer {
        Layer::Module => Ok(scan.sections),
        Layer::Component => Err(FormatError::NotWasm(
            "unsupported Wasm version/layer 0d000100: a component (layer 1); only core modules, \
             version 1, can be sealed"
                .into(),
        )),
    }
}

fn usize_of(offset: u64) -> usize {
    usize::try_from(offset).unwrap_or(usize::MAX)
}

fn framing_err(section_start: usize, e: &BinaryReaderError) -> FormatError {
    parse_err(
        section_start,
        format!("{} (at byte {})", e.message(), e.offset()),
    )
}

fn parse_err(offset: usize, what: impl std::fmt::Display) -> FormatError {
    FormatError::Parse(format!("section at byte {offset}: {what}"))
}

/// Appends the custom section `name` holding `payload` to `out`.
pub(crate) fn write_custom_section(out: &mut Vec<u8>, name: &str, payload: &[u8]) {
    CustomSection {
        name: Cow::Borrowed(name),
        data: Cow::Borrowed(payload),
    }
    .append_to(out);
}

/// The bytes of the custom section `name` that precede its `payload_len`-byte payload (id,
/// section size, name), for a payload that is written (and hashed) where it already is:
/// `custom_section_header(n, p.len()) ‖ p` is exactly what [`write_custom_section`] writes.
pub(crate) fn custom_section_header(name: &str, payload_len: usize) -> Vec<u8> {
    let mut name_field = Vec::with_capacity(name.len() + 5);
    name.encode(&mut name_field);
    let mut out = Vec::with_capacity(name_field.len() + 6);
    out.push(wasm_encoder::SectionId::Custom as u8);
    (name_field.len() + payload_len).encode(&mut out);
    out.extend_from_slice(&name_field);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_section_scans_back() {
        let mut module = MODULE_HEADER.to_vec();
        write_custom_section(&mut module, "hello", b"payload");
        let sections = sections(&module).unwrap();
        assert_eq!(sections.len(), 1);
        assert!(sections[0].is_custom("hello"));
        assert_eq!(sections[0].payload, b"payload");
        assert_eq!(sections[0].range, 8..module.len());
    }

    #[test]
    fn header_then_payload_is_the_whole_section() {
        for len in [0, 1, 127, 128, 16_383, 16_384, 70_000] {
            let payload = vec![0xa5; len];
            let mut whole = Vec::new();
            write_custom_section(&mut whole, "sealbox.payload", &payload);
            let mut split = custom_section_header("sealbox.payload", len);
            split.extend_from_slice(&payload);
            assert_eq!(whole, split, "{len}");
            assert_eq!(whole[0], 0);
        }
    }

    #[test]
    fn known_sections_keep_their_bytes_and_code_is_skipped() {
        let module = wat::parse_str(
            r#"(module (memory 1) (func (export "f") (result i32) i32.const 7)
                 (data (i32.const 0) "abc") (@custom "tail" "xyz"))"#,
        )
        .unwrap();
        let sections = sections(&module).unwrap();
        let mut end = 8;
        for s in &sections {
            assert_eq!(s.range.start, end, "sections are contiguous");
            end = s.range.end;
        }
        assert_eq!(end, module.len());
        let ids: Vec<u8> = sections.iter().map(|s| s.id).collect();
        assert_eq!(ids, [1, 3, 5, 7, 10, 11, 0]);
        assert!(sections[6].is_custom("tail"));
        assert_eq!(sections[6].payload, b"xyz");
    }

    #[test]
    fn components_scan_but_are_not_core_modules() {
        let component =
            wat::parse_str(r#"(component (core module (func (export "f"))) (@custom "c" "1"))"#)
                .unwrap();
        let scan = scan(&component).unwrap();
        assert_eq!(scan.layer, Layer::Component);
        assert!(scan.sections.last().unwrap().is_custom("c"));
        assert_eq!(scan.sections.last().unwrap().range.end, component.len());
        assert!(matches!(sections(&component), Err(FormatError::NotWasm(_))));
    }

    #[test]
    fn truncated_section_is_a_parse_error() {
        let mut module = MODULE_HEADER.to_vec();
        write_custom_section(&mut module, "x", b"12345");
        module.pop();
        assert!(matches!(sections(&module), Err(FormatError::Parse(_))));
    }
}
