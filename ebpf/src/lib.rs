//! Sealbox kernel meter.
//!
//! The runtime registers each product's [`meter_key`] once
//! ([`Meter::register`] gives it a [`Slot`]) and calls [`meter_call`] with that
//! slot once per guest call. While a [`Meter`] is attached, a uprobe on
//! [`sealbox_meter_entry`] runs the BPF program `bpf/meter.bpf.c`, which adds 1
//! to the slot's counter on this CPU in a per-CPU array pinned under
//! `/sys/fs/bpf/sealbox/` (readers sum the CPUs).
//! The counts live in the kernel: they survive a crash of the runtime, the
//! Wasm guest cannot reach them, and [`read_pinned_count`] reads them back
//! without attaching. See `docs/METERING.md` for the design and its limits.
//!
//! The TLS handshake meter ([`TlsMeter`], module `tls`) meters kernel events
//! instead: TLS handshakes of a target cgroup, per tenant, with a ring buffer
//! of events and a kernel-side connect quota (`bpf/tls.bpf.c`). Its programs
//! are attached through pinned BPF links, so they keep counting and
//! enforcing while no meter process runs, until
//! [`TlsMeter::remove_pinned`] (an uninstall).
//!
//! x86_64 Linux only; attaching needs root (or CAP_BPF + CAP_PERFMON, plus
//! CAP_NET_ADMIN for the TLS meter).
#![deny(missing_docs)]

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
compile_error!("sealbox-ebpf supports x86_64 Linux only");

mod bpffs;
mod entry;
mod error;
mod key;
mod layout;
mod locate;
mod meter;
mod multi;
mod pinned;
mod privilege;
mod tls;

pub use entry::{ENTRY_NOP5, ENTRY_SYMBOL, Slot, meter_call, sealbox_meter_entry};
pub use error::{MeterError, TlsError};
pub use key::meter_key;
pub use layout::{DEFAULT_MAX_ENTRIES, LAYOUT_VERSION};
pub use meter::{AttachMode, AttachPoint, DEFAULT_PIN_DIR, Meter, MeterOptions, bpf_object};
pub use pinned::{PinnedCounts, read_pinned_count};
pub use tls::cgroup::{CGROUP2_HYBRID_ROOT, CgroupDir, cgroup_id, cgroup2_root, is_cgroup2};
pub use tls::config::{
    DEFAULT_MAX_TENANTS, DEFAULT_RING_BYTES, DEFAULT_TLS_PIN_DIR, MAX_PORTS, Ports, ServerHook,
    Side, Tenancy, TlsConfig,
};
pub use tls::event::{TLS_EVENT_SIZE, TlsEvent};
pub use tls::maps::{PinnedTls, Quota, TLS_LAYOUT_VERSION, TlsStats};
pub use tls::meter::{TlsMeter, tls_bpf_object};
pub use tls::reader::TlsEvents;
