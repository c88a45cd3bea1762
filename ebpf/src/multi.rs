//! The meter's link to its entry: a `uprobe_multi` BPF link (Linux 6.6 and later) rather
//! than a uprobe behind a perf event.
//!
//! Why: both fire from the same probed nop5 (the kernel's uprobe entry, most of the cost of
//! a hit), but a perf-event uprobe then passes through the trace-event layer (its per-process
//! filter under a lock, the perf event, `trace_call_bpf`) before the program runs, while a
//! `uprobe_multi` link runs the program straight from the uprobe consumer. Measured here (a C
//! probe of both links on one nop5 entry, 9 rounds of 2·10⁶ calls): the multi link added 2.71×
//! a `getppid` syscall (median), the perf-event uprobe 2.89×. docs/METERING.md has the numbers.
//!
//! aya 0.14 loads uprobe programs without an expected attach type, which the kernel then
//! refuses to link as `uprobe_multi`, and has no API for this link. So this module loads the
//! same program itself: `aya-obj` parses the object and relocates it against the pinned maps
//! (opened by path, the ones aya created or reused), and two `bpf(2)` calls load the program
//! with the `uprobe_multi` attach type and create the link for this process only.

use std::collections::HashSet;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use aya::maps::MapData;
use aya_obj::generated::{bpf_attach_type, bpf_cmd, bpf_insn, bpf_prog_type};

/// A `uprobe_multi` link and the program it runs. Dropping it detaches the probe.
#[derive(Debug)]
pub(crate) struct MultiLink {
    _link: OwnedFd,
    _program: OwnedFd,
}

/// Why the link could not be made.
#[derive(Debug)]
pub(crate) enum MultiError {
    /// The kernel refused for lack of privilege (EPERM, EACCES).
    NotPermitted(String),
    /// Anything else: the object could not be relocated, the kernel lacks `uprobe_multi`
    /// (before 6.6 it answers EINVAL), the verifier refused. The caller falls back to a
    /// perf-event uprobe.
    Failed(String),
}

impl std::fmt::Display for MultiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotPermitted(s) | Self::Failed(s) => f.write_str(s),
        }
    }
}

/// Loads `program` from the BPF `object` with its maps resolved to the ones pinned by name in
/// `pin_dir`, and links it by `uprobe_multi` to `offset` in `target` for this process only.
pub(crate) fn attach(
    object: &[u8],
    program: &str,
    pin_dir: &Path,
    target: &Path,
    offset: u64,
) -> Result<MultiLink, MultiError> {
    let failed = |what: &str, e: &dyn std::fmt::Display| MultiError::Failed(format!("{what}: {e}"));
    let mut obj = aya_obj::Object::parse(object).map_err(|e| failed("parsing the object", &e))?;
    let pinned = obj
        .maps
        .keys()
        .map(|name| {
            MapData::from_pin(pin_dir.join(name))
                .map(|data| (name.clone(), data))
                .map_err(|e| failed(&format!("opening the pinned map {name}"), &e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let definitions: Vec<(String, aya_obj::Map)> = obj
        .maps
        .iter()
        .map(|(name, map)| (name.clone(), map.clone()))
        .collect();
    let text_sections: HashSet<usize> = obj.functions.keys().map(|(section, _)| *section).collect();
    let maps = definitions.iter().map(|(name, map)| {
        let fd = pinned
            .iter()
            .find(|(pinned_name, _)| pinned_name == name)
            .map_or(-1, |(_, data)| data.fd().as_fd().as_raw_fd());
        (name.as_str(), fd, map)
    });
    obj.relocate_maps(maps, &text_sections)
        .map_err(|e| failed("relocating the maps", &e))?;
    obj.relocate_calls(&text_sections)
        .map_err(|e| failed("relocating the calls", &e))?;
    let key = obj
        .programs
        .get(program)
        .map(|p| p.function_key())
        .ok_or_else(|| MultiError::Failed(format!("the object has no program `{program}`")))?;
    let function = obj
        .functions
        .get(&key)
        .ok_or_else(|| MultiError::Failed(format!("the object has no code for `{program}`")))?;
    let program_fd = load(&function.instructions, &obj.license)?;
    // The pinned maps' descriptors can go: the loaded program holds the maps.
    drop(pinned);
    let link = link(&program_fd, target, offset)?;
    Ok(MultiLink {
        _link: link,
        _program: program_fd,
    })
}

/// `bpf(BPF_PROG_LOAD)` attributes, the fields this module sets (the kernel's `union bpf_attr`
/// up to `expected_attach_type`; everything after it stays zero).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `bpf(BPF_LINK_CREATE)` attributes for a `uprobe_multi` link.
#[repr(C)]
#[derive(Default)]
struct UprobeMultiLinkAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    path: u64,
    offsets: u64,
    ref_ctr_offsets: u64,
    cookies: u64,
    cnt: u32,
    multi_flags: u32,
    pid: u32,
    _pad: u32,
}

fn load(instructions: &[bpf_insn], license: &CString) -> Result<OwnedFd, MultiError> {
    let mut attr = ProgLoadAttr {
        prog_type: bpf_prog_type::BPF_PROG_TYPE_KPROBE as u32,
        insn_cnt: instructions.len() as u32,
        insns: instructions.as_ptr() as u64,
        license: license.as_ptr() as u64,
        expected_attach_type: bpf_attach_type::BPF_TRACE_UPROBE_MULTI as u32,
        ..ProgLoadAttr::default()
    };
    attr.prog_name[..11].copy_from_slice(b"meter_multi");
    match bpf(bpf_cmd::BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => Ok(fd),
        Err(e) => {
            // Load again with the verifier's log, for the message.
            let mut log = vec![0u8; 64 * 1024];
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            let _ = bpf(bpf_cmd::BPF_PROG_LOAD, &mut attr);
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let log = String::from_utf8_lossy(&log[..end]);
            Err(refused(
                "loading the program for a uprobe_multi link",
                &e,
                log.trim(),
            ))
        }
    }
}

fn link(program: &OwnedFd, target: &Path, offset: u64) -> Result<OwnedFd, MultiError> {
    let path = CString::new(target.as_os_str().as_bytes())
        .map_err(|_| MultiError::Failed(format!("{} holds a NUL byte", target.display())))?;
    let offsets = [offset];
    let mut attr = UprobeMultiLinkAttr {
        prog_fd: program.as_raw_fd() as u32,
        attach_type: bpf_attach_type::BPF_TRACE_UPROBE_MULTI as u32,
        path: path.as_ptr() as u64,
        offsets: offsets.as_ptr() as u64,
        cnt: 1,
        pid: std::process::id(),
        ..UprobeMultiLinkAttr::default()
    };
    bpf(bpf_cmd::BPF_LINK_CREATE, &mut attr).map_err(|e| {
        refused(
            &format!(
                "linking by uprobe_multi to offset {offset:#x} in {}",
                target.display()
            ),
            &e,
            "",
        )
    })
}

fn refused(what: &str, e: &io::Error, log: &str) -> MultiError {
    let detail = if log.is_empty() {
        format!("{what}: {e}")
    } else {
        format!("{what}: {e}; verifier log: {log}")
    };
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => MultiError::NotPermitted(detail),
        _ => MultiError::Failed(detail),
    }
}

/// One `bpf(2)` call that returns a new descriptor.
fn bpf<T>(cmd: bpf_cmd, attr: &mut T) -> io::Result<OwnedFd> {
    // SAFETY: `attr` is a `#[repr(C)]` prefix of the kernel's `union bpf_attr` for `cmd`,
    // zeroed past the fields set, and its size is passed; every pointer in it (instructions,
    // license, log, path, offsets) outlives the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_long,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on success these commands return a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as i32) })
}
