//! The one test harness of every Sealbox suite (a dev-dependency only, like
//! aya's `test/integration-common`). The contract, packager, runtime `serve`
//! and end-to-end tests, the eBPF tests and the load benchmark all take from
//! here what they used to find, spawn and deploy on their own:
//!
//! * [`Anvil`]: a real anvil (the npm-installed one, or `$SEALBOX_ANVIL`) on a
//!   loopback [`Port`] reserved for its whole life, so that a
//!   [persistent](Anvil::persistent) one can [halt](Anvil::halt) and
//!   [resume](Anvil::resume) from its `--state` on the same URL; its control
//!   RPCs ([`Anvil::fund`], [`Anvil::advance_time`], [`Anvil::rpc`]) and the
//!   deploy of a `LicenseRegistry` ([`Anvil::deploy`] with [`Deploy`]: fee,
//!   treasury, thaw).
//! * [`keys`]: anvil's dev keys ([`dev_key`]), funded random keys
//!   ([`Anvil::funded_key`]) and 0600 key files ([`key_file`]).
//! * [`bin`]: a workspace binary under test, never a stale one (built with
//!   cargo before its first use in a test process; see [`bins`]).
//! * [`command`] / [`run`]: child processes with the environment scrubbed of
//!   every `SEALBOX_*` and `RUST_LOG` variable ([`scrub`], the one place that
//!   does it).
//! * [`proxy`]: a TCP proxy that cuts the line like a partition (the soak's
//!   RPC faults).
//! * [`bpf`]: the one `SEALBOX_SKIP_BPF` rule ("skip where BPF is
//!   unavailable, fail otherwise") and bpffs pin directories.

use std::path::{Path, PathBuf};

pub mod anvil;
pub mod bins;
pub mod bpf;
pub mod keys;
pub mod process;
pub mod proxy;

pub use anvil::{Anvil, CHAIN_ID, Deploy, Port, anvil_path, dead_rpc_url};
pub use bins::bin;
pub use keys::{DEV_KEYS, dev_key, key_file};
pub use process::{Out, command, command_line, run, scrub};

/// The repository (workspace) root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the testkit lives at <repo>/tests/testkit")
        .to_path_buf()
}
