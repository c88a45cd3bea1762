//! Where [`sealbox_meter_entry`](crate::sealbox_meter_entry) is, as a file and
//! file offset, found from its runtime address and `/proc/self/maps`. This is
//! how the probe is attached when the binary has no symbol table (stripped).

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::MeterError;
use crate::entry::{ENTRY_NOP5, entry_address};

/// The probed entry as the kernel wants it: a file and an offset in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntryLocation {
    /// `/proc/self/exe` when the entry is in the main executable, else a
    /// `/proc/self/map_files/…` link to the mapped file.
    pub(crate) target: PathBuf,
    /// File offset of the entry's first instruction.
    pub(crate) file_offset: u64,
}

/// One line of `/proc/self/maps`.
struct Mapping<'a> {
    range: &'a str,
    start: usize,
    end: usize,
    executable: bool,
    offset: u64,
    inode: u64,
    path: &'a str,
}

fn parse_line(line: &str) -> Option<Mapping<'_>> {
    let mut fields = line.splitn(6, ' ');
    let range = fields.next()?;
    let perms = fields.next()?;
    let offset = u64::from_str_radix(fields.next()?, 16).ok()?;
    let _dev = fields.next()?;
    let inode = fields.next()?.parse().ok()?;
    let path = fields.next().unwrap_or("").trim_start();
    let (start, end) = range.split_once('-')?;
    Some(Mapping {
        range,
        start: usize::from_str_radix(start, 16).ok()?,
        end: usize::from_str_radix(end, 16).ok()?,
        executable: perms.as_bytes().get(2) == Some(&b'x'),
        offset,
        inode,
        path,
    })
}

fn not_found(detail: String) -> MeterError {
    MeterError::EntryNotFound { detail }
}

/// Computes the entry's file offset (`address − mapping start + mapping file
/// offset`) and checks that the file really holds the entry's nop5 there, so a
/// probe is never placed in the middle of some other instruction.
pub(crate) fn locate_entry() -> Result<EntryLocation, MeterError> {
    let address = entry_address();
    let maps = std::fs::read_to_string("/proc/self/maps")
        .map_err(|e| not_found(format!("reading /proc/self/maps: {e}")))?;
    let mapping = maps
        .lines()
        .filter_map(parse_line)
        .find(|m| (m.start..m.end).contains(&address))
        .ok_or_else(|| not_found(format!("address {address:#x} is not mapped")))?;
    if !mapping.executable || mapping.inode == 0 {
        return Err(not_found(format!(
            "address {address:#x} is in a mapping that is not an executable file ({})",
            mapping.path
        )));
    }
    let file_offset = (address - mapping.start) as u64 + mapping.offset;

    let exe_inode = std::fs::metadata("/proc/self/exe").map(|m| m.ino()).ok();
    let target = if exe_inode == Some(mapping.inode) {
        PathBuf::from("/proc/self/exe")
    } else {
        PathBuf::from(format!("/proc/self/map_files/{}", mapping.range))
    };
    check_nop5(&target, file_offset)?;
    Ok(EntryLocation {
        target,
        file_offset,
    })
}

fn check_nop5(target: &Path, file_offset: u64) -> Result<(), MeterError> {
    let mut bytes = [0u8; 5];
    std::fs::File::open(target)
        .and_then(|mut f| {
            f.seek(SeekFrom::Start(file_offset))?;
            f.read_exact(&mut bytes)
        })
        .map_err(|e| {
            not_found(format!(
                "reading 5 bytes at offset {file_offset:#x} of {}: {e}",
                target.display()
            ))
        })?;
    if bytes != ENTRY_NOP5 {
        return Err(not_found(format!(
            "{} holds {bytes:02x?} at offset {file_offset:#x}, not the entry's nop5 {ENTRY_NOP5:02x?}",
            target.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_maps_lines_with_and_without_paths() {
        let m =
            parse_line("55d0c0a00000-55d0c0b00000 r-xp 0001f000 fd:01 1234 /usr/bin/x y (deleted)")
                .unwrap();
        assert_eq!(
            (m.start, m.end, m.offset, m.inode),
            (0x55d0c0a00000, 0x55d0c0b00000, 0x1f000, 1234)
        );
        assert!(m.executable);
        assert_eq!(m.path, "/usr/bin/x y (deleted)");
        let anon = parse_line("7ffd1000-7ffd2000 rw-p 00000000 00:00 0").unwrap();
        assert!(!anon.executable);
        assert_eq!(anon.inode, 0);
        assert!(parse_line("garbage").is_none());
    }

    #[test]
    fn locates_the_entry_nop5_in_this_binary() {
        // The file bytes at the computed offset are checked against the nop5,
        // so a wrong offset computation fails here.
        let loc = locate_entry().unwrap();
        assert_eq!(loc.target, PathBuf::from("/proc/self/exe"));
        assert!(loc.file_offset > 0);
    }
}
