//! The TLS meter's attachments, pinned: each program is attached to the
//! target cgroup as a BPF link, and the link is pinned in the meter's pin
//! directory (`tls_egress_link`, …). A pinned link stays attached after the
//! process that made it exits or is killed, so the kernel keeps counting
//! handshakes and refusing connects past the allowance while no meter runs;
//! only removing the pin (after an explicit `BPF_LINK_DETACH`, here) detaches
//! it.
//!
//! aya pins links ([`aya::programs::FdLink::pin`]) but does not say which
//! cgroup a pinned link is attached to; that comes from the kernel's link
//! info (`BPF_OBJ_GET_INFO_BY_FD`), read here with the raw `bpf(2)` call, as
//! are `BPF_OBJ_GET` and `BPF_LINK_DETACH`.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::TlsError;
use crate::layout::pin_path;

/// `enum bpf_cmd` values (uapi `linux/bpf.h`).
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_LINK_DETACH: libc::c_long = 34;
/// `BPF_LINK_TYPE_CGROUP`.
const BPF_LINK_TYPE_CGROUP: u32 = 3;

/// `enum bpf_attach_type` values of the meter's hooks.
const BPF_CGROUP_INET_INGRESS: u32 = 0;
const BPF_CGROUP_INET_EGRESS: u32 = 1;
const BPF_CGROUP_INET4_CONNECT: u32 = 10;
const BPF_CGROUP_INET6_CONNECT: u32 = 11;

/// One of the meter's attachments: a program, where it hooks, and the pin
/// of its link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hook {
    /// The program's name in `bpf/tls.bpf.c`.
    pub(crate) program: &'static str,
    /// The link's pin file name in the pin directory.
    pub(crate) pin: &'static str,
    attach_type: u32,
}

pub(crate) const EGRESS: Hook = Hook {
    program: "tls_egress",
    pin: "tls_egress_link",
    attach_type: BPF_CGROUP_INET_EGRESS,
};
pub(crate) const INGRESS: Hook = Hook {
    program: "tls_ingress",
    pin: "tls_ingress_link",
    attach_type: BPF_CGROUP_INET_INGRESS,
};
pub(crate) const CONNECT4: Hook = Hook {
    program: "tls_connect4",
    pin: "tls_connect4_link",
    attach_type: BPF_CGROUP_INET4_CONNECT,
};
pub(crate) const CONNECT6: Hook = Hook {
    program: "tls_connect6",
    pin: "tls_connect6_link",
    attach_type: BPF_CGROUP_INET6_CONNECT,
};
/// Every hook, in the order they are attached.
pub(crate) const HOOKS: [Hook; 4] = [EGRESS, INGRESS, CONNECT4, CONNECT6];

/// A link pinned in the pin directory, as the kernel describes it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PinnedHook {
    pub(crate) hook: Hook,
    /// The attached program's id.
    pub(crate) prog_id: u32,
    /// The cgroup it is attached to; 0 once that cgroup was removed (the
    /// link is then defunct: attached to nothing).
    pub(crate) cgroup_id: u64,
}

/// `struct bpf_link_info`, its common head and the `cgroup` member of its
/// union; the zeroed tail leaves room for the kernel's larger members.
#[repr(C)]
#[derive(Default)]
struct CgroupLinkInfo {
    link_type: u32,
    id: u32,
    prog_id: u32,
    _pad: u32,
    cgroup_id: u64,
    attach_type: u32,
    _tail: [u32; 21],
}

/// The `BPF_OBJ_GET` member of `union bpf_attr`, zero-padded.
#[repr(C)]
#[derive(Default)]
struct ObjGetAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
    path_fd: i32,
    _pad: [u32; 27],
}

/// The `info` member of `union bpf_attr`, zero-padded.
#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
    _pad: [u64; 14],
}

/// The `link_detach` member of `union bpf_attr`, zero-padded.
#[repr(C)]
#[derive(Default)]
struct LinkDetachAttr {
    link_fd: u32,
    _pad: [u32; 31],
}

/// `bpf(cmd, attr, sizeof attr)`.
fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: attr is a valid, initialised, zero-padded bpf_attr member of
    // size_of::<T>() bytes for the duration of the call; the kernel reads (and
    // for some commands writes) at most that many bytes.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr),
            std::mem::size_of::<T>(),
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn link_err(path: &Path, operation: &'static str, source: std::io::Error) -> TlsError {
    TlsError::PinnedLink {
        path: path.to_owned(),
        operation,
        source,
    }
}

/// Opens the object pinned at `path`, or `None` when nothing is pinned there.
fn open_pin(path: &Path) -> Result<Option<OwnedFd>, TlsError> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(link_err(path, "inspecting", e)),
    }
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|e| {
        link_err(
            path,
            "opening",
            std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
        )
    })?;
    let mut attr = ObjGetAttr {
        pathname: c_path.as_ptr() as u64,
        ..ObjGetAttr::default()
    };
    match sys_bpf(BPF_OBJ_GET, &mut attr) {
        // SAFETY: BPF_OBJ_GET returned a new file descriptor that nothing else owns.
        Ok(fd) => Ok(Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(link_err(path, "opening the pinned link", e)),
    }
}

fn link_info(path: &Path, fd: &OwnedFd) -> Result<CgroupLinkInfo, TlsError> {
    let mut info = CgroupLinkInfo::default();
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of::<CgroupLinkInfo>() as u32,
        info: std::ptr::from_mut(&mut info) as u64,
        ..InfoAttr::default()
    };
    sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)
        .map_err(|e| link_err(path, "reading the link info of", e))?;
    Ok(info)
}

/// The links pinned in `pin_dir`, checked to be cgroup links on their hook's
/// attach type.
pub(crate) fn pinned_hooks(pin_dir: &Path) -> Result<Vec<PinnedHook>, TlsError> {
    let mut out = Vec::new();
    for hook in HOOKS {
        let path = pin_path(pin_dir, hook.pin);
        let Some(fd) = open_pin(&path)? else {
            continue;
        };
        let info = link_info(&path, &fd)?;
        if info.link_type != BPF_LINK_TYPE_CGROUP || info.attach_type != hook.attach_type {
            return Err(link_err(
                &path,
                "checking",
                std::io::Error::other(format!(
                    "not a cgroup link of attach type {} (link type {}, attach type {}); \
                     remove it with TlsMeter::remove_pinned",
                    hook.attach_type, info.link_type, info.attach_type
                )),
            ));
        }
        out.push(PinnedHook {
            hook,
            prog_id: info.prog_id,
            cgroup_id: info.cgroup_id,
        });
    }
    Ok(out)
}

/// Detaches the link pinned for `hook` in `pin_dir` and removes its pin.
/// Nothing pinned there is fine.
///
/// The explicit `BPF_LINK_DETACH` makes the detach immediate: removing the
/// pin alone only drops a reference, and the kernel frees (and so detaches)
/// the link later, from a work queue.
pub(crate) fn unpin_hook(pin_dir: &Path, hook: Hook) -> Result<(), TlsError> {
    let path = pin_path(pin_dir, hook.pin);
    let Some(fd) = open_pin(&path)? else {
        return Ok(());
    };
    let mut attr = LinkDetachAttr {
        link_fd: fd.as_raw_fd() as u32,
        ..LinkDetachAttr::default()
    };
    sys_bpf(BPF_LINK_DETACH, &mut attr).map_err(|e| link_err(&path, "detaching", e))?;
    drop(fd);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(link_err(&path, "unpinning", e)),
    }
}

/// The path of `hook`'s link pin in `pin_dir`.
pub(crate) fn hook_pin(pin_dir: &Path, hook: Hook) -> PathBuf {
    pin_path(pin_dir, hook.pin)
}
