//! Section-level scanning and writing of Wasm binaries.
//!
//! Opening a sealed module only needs section boundaries; nothing inside the vendor's code is
//! decoded before the signature holds.

use std::ops::Range;

use crate::FormatError;

/// The 8-byte preamble of a core Wasm module: `\0asm` magic and version 1.
pub const MODULE_HEADER: [u8; 8] = *b"\0asm\x01\0\0\0";

/// Section id of custom sections.
const CUSTOM_SECTION_ID: u8 = 0;

/// Highest known section id (13 = tag section of the exception-handling proposal).
const MAX_SECTION_ID: u8 = 13;

/// One section of a module, located in the module's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Section<'a> {
    /// Section id (0 = custom).
    pub id: u8,
    /// Name of a custom section, `None` for known sections.
    pub name: Option<&'a str>,
    /// The whole section (id, size, contents) within the module.
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

/// Checks the module preamble: Wasm magic, then version 1 (a core module, not a component).
pub(crate) fn check_header(bytes: &[u8]) -> Result<(), FormatError> {
    if bytes.len() < 4 || bytes[..4] != MODULE_HEADER[..4] {
        return Err(FormatError::NotWasm(
            "the file does not start with the Wasm magic bytes \\0asm".into(),
        ));
    }
    if bytes.len() < 8 {
        return Err(FormatError::NotWasm(
            "the file ends inside the 8-byte Wasm header".into(),
        ));
    }
    if bytes[4..8] != MODULE_HEADER[4..8] {
        return Err(FormatError::NotWasm(format!(
            "unsupported Wasm version/layer {} (only core modules, version 1, can be sealed)",
            hex::encode(&bytes[4..8])
        )));
    }
    Ok(())
}

/// Splits a module into its sections, checking only the framing: known ids, sizes within the
/// file, UTF-8 custom section names.
pub(crate) fn sections(bytes: &[u8]) -> Result<Vec<Section<'_>>, FormatError> {
    check_header(bytes)?;
    let mut out = Vec::new();
    let mut pos = MODULE_HEADER.len();
    while pos < bytes.len() {
        let start = pos;
        let id = bytes[pos];
        if id > MAX_SECTION_ID {
            return Err(parse_err(start, format!("unknown section id {id}")));
        }
        pos += 1;
        let size = read_u32(bytes, &mut pos).ok_or_else(|| parse_err(start, "bad section size"))?;
        let end = pos
            .checked_add(size as usize)
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| {
                parse_err(
                    start,
                    format!(
                        "section claims {size} bytes but only {} remain (truncated file?)",
                        bytes.len() - pos
                    ),
                )
            })?;
        let contents = &bytes[pos..end];
        let (name, payload) = if id == CUSTOM_SECTION_ID {
            let (name, rest) = split_name(contents)
                .ok_or_else(|| parse_err(start, "custom section name is malformed or not UTF-8"))?;
            (Some(name), rest)
        } else {
            (None, contents)
        };
        out.push(Section {
            id,
            name,
            range: start..end,
            payload,
        });
        pos = end;
    }
    Ok(out)
}

fn parse_err(offset: usize, what: impl std::fmt::Display) -> FormatError {
    FormatError::Parse(format!("section at byte {offset}: {what}"))
}

/// Splits custom section contents into (name, payload).
fn split_name(contents: &[u8]) -> Option<(&str, &[u8])> {
    let mut pos = 0;
    let len = read_u32(contents, &mut pos)? as usize;
    let name_end = pos.checked_add(len).filter(|&e| e <= contents.len())?;
    let name = std::str::from_utf8(&contents[pos..name_end]).ok()?;
    Some((name, &contents[name_end..]))
}

/// Appends a custom section `name` holding `payload` to `out`.
pub(crate) fn write_custom_section(out: &mut Vec<u8>, name: &str, payload: &[u8]) {
    out.extend_from_slice(&custom_section_header(name, payload.len()));
    out.extend_from_slice(payload);
}

/// The bytes of a custom section `name` that precede its `payload_len`-byte payload:
/// id, section size, name length, name.
pub(crate) fn custom_section_header(name: &str, payload_len: usize) -> Vec<u8> {
    let mut name_field = Vec::with_capacity(name.len() + 5);
    write_u32(&mut name_field, len_u32(name.len()));
    name_field.extend_from_slice(name.as_bytes());
    let mut out = Vec::with_capacity(name_field.len() + 6);
    out.push(CUSTOM_SECTION_ID);
    write_u32(&mut out, len_u32(name_field.len() + payload_len));
    out.extend_from_slice(&name_field);
    out
}

/// Length as `u32`, saturating (callers keep lengths far below 4 GiB; Wasm cannot express more).
pub(crate) fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// Reads an unsigned LEB128 `u32` (at most 5 bytes, no excess bits), advancing `pos`.
pub(crate) fn read_u32(bytes: &[u8], pos: &mut usize) -> Option<u32> {
    let mut value: u32 = 0;
    for i in 0..5 {
        let byte = *bytes.get(*pos)?;
        *pos += 1;
        if i == 4 && byte & 0xf0 != 0 {
            return None;
        }
        value |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Appends `value` as unsigned LEB128.
pub(crate) fn write_u32(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leb_round_trips_and_rejects_overlong() {
        for v in [0, 1, 127, 128, 16_383, 16_384, u32::MAX] {
            let mut buf = Vec::new();
            write_u32(&mut buf, v);
            let mut pos = 0;
            assert_eq!(read_u32(&buf, &mut pos), Some(v));
            assert_eq!(pos, buf.len());
        }
        let mut pos = 0;
        assert_eq!(read_u32(&[0x80, 0x80, 0x80, 0x80, 0x10], &mut pos), None);
        let mut pos = 0;
        assert_eq!(read_u32(&[0x80, 0x80], &mut pos), None);
    }

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
    fn truncated_section_is_a_parse_error() {
        let mut module = MODULE_HEADER.to_vec();
        write_custom_section(&mut module, "x", b"12345");
        module.pop();
        assert!(matches!(sections(&module), Err(FormatError::Parse(_))));
    }
}
