//! The TLS handshake meter (issue 10): BPF programs on a target cgroup v2
//! directory count its TLS handshakes per tenant in the kernel, send one
//! event per handshake through a ring buffer, and (client side) admit
//! connects against an allowance written by user space.
//!
//! * [`TlsConfig`] says what to meter; [`TlsMeter::attach`] attaches, as BPF
//!   links pinned in the pin directory: **the programs stay attached, counting
//!   and enforcing, after the meter is dropped or its process ends**; a later
//!   attach with the same pin directory, target and side takes them over.
//!   [`TlsMeter::detach_and_unpin`] / [`TlsMeter::remove_pinned`] detach them
//!   and remove the pins (an uninstall).
//! * [`TlsMeter::total`]/[`TlsMeter::totals`]: the pinned per-tenant totals of
//!   record; [`TlsEvents`] (from [`TlsMeter::take_events`] or
//!   [`TlsEvents::open`]) delivers [`TlsEvent`]s in batches, each with its
//!   tenant's sequence number; [`TlsMeter::dropped`] counts the events that
//!   did not fit.
//! * [`TlsMeter::set_allowance`], [`TlsMeter::set_enforcement`],
//!   [`TlsMeter::refused`]: the quota.
//! * [`CgroupDir`] makes a cgroup for a pid and its descendants.
//! * [`PinnedTls`] reads the pinned counters without attaching.
//!
//! See docs/METERING.md, "TLS handshake meter".

pub(crate) mod cgroup;
pub(crate) mod config;
pub(crate) mod event;
pub(crate) mod links;
pub(crate) mod maps;
pub(crate) mod meter;
pub(crate) mod reader;
