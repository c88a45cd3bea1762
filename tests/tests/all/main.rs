//! Sealbox end to end, linked into one test binary (each binary links
//! wasmtime, alloy and the runtime; one instead of eight saves minutes of
//! linking and gigabytes of disk): the real `packager` and `runtime`
//! binaries against a real anvil, and the real eBPF meter in the kernel.

mod common;

mod component_examples;
mod components;
mod exit_codes;
mod fleet;
mod guest_faults;
mod happy_path;
mod kernel_durability;
mod kernel_meter;
mod lease;
mod license_refusals;
mod pay_before_use;
mod purchase_faults;
mod soak;
mod tls_billing;
mod trust_refusals;
mod vendor_sdk;
