//! What a component may import: WASI 0.2 without capabilities, and nothing
//! else.
//!
//! The grant is a list of interfaces ([`GRANTED_INTERFACES`]). A component
//! that imports anything outside it — sockets, the filesystem, HTTP, a
//! vendor-defined host interface — is refused by name before anything of it
//! is instantiated, and the linker only ever holds the granted interfaces,
//! so a refused import could not be satisfied anyway. An import that only
//! carries types (the interface a world `use`s for its records and enums) is
//! allowed: it reaches nothing. What the granted ones reach:
//!
//! * `wasi:cli/environment`: no variables, no arguments, no working directory.
//! * `wasi:cli/stdin`: an empty stream. `stdout`/`stderr`: captured per call,
//!   at most [`OUTPUT_CAP_BYTES`] each (the rest is dropped and counted), and
//!   handed to the caller, which logs them. Terminals: none.
//! * `wasi:cli/exit`: ends the call (an error naming the exit code).
//! * `wasi:clocks`: the host's wall clock and monotonic clock (a guest can
//!   read the time; it cannot sleep past its deadline, which still holds).
//! * `wasi:random`: the host's CSPRNG for `random`, a per-call seeded PRNG
//!   for `insecure` and `insecure-seed`.
//! * `wasi:io`: the streams and pollables of the interfaces above.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, HasData, Linker, ResourceTable};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream, WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::p2::bindings::{cli, clocks, random, sync};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};
use wasmtime_wasi::random::WasiRandom;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::error::SandboxError;
use crate::limiter::GuestLimiter;

/// The WASI interfaces a component may import (any 0.2.x version), without
/// their version suffix. Everything else is refused by name.
pub const GRANTED_INTERFACES: &[&str] = &[
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/wall-clock",
    "wasi:clocks/monotonic-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
];

/// Most bytes of stdout, and of stderr, kept from one call.
pub const OUTPUT_CAP_BYTES: usize = 64 * 1024;

/// Whether `import` (e.g. `wasi:io/streams@0.2.3`) is granted.
pub fn is_granted(import: &str) -> bool {
    let (interface, version) = import.split_once('@').unwrap_or((import, ""));
    GRANTED_INTERFACES.contains(&interface) && version.starts_with("0.2.")
}

/// The imports of a component, each allowed: granted WASI interfaces, and
/// type-only imports (an interface the world `use`s for its types, which
/// needs nothing from the host).
#[derive(Debug, Clone, Default)]
pub(crate) struct Imports {
    /// Every import, in the component's order.
    pub(crate) all: Vec<String>,
    /// The type-only ones (no functions, no resources).
    pub(crate) type_only: Vec<String>,
}

/// Reads the component's imports from its type and refuses any that is
/// neither granted WASI nor type-only, naming them. Runs after compilation
/// (which runs none of the guest's code) and before any instance exists.
pub(crate) fn check_imports(
    component: &Component,
    engine: &wasmtime::Engine,
) -> Result<Imports, SandboxError> {
    let mut imports = Imports::default();
    let mut refused = Vec::new();
    for (name, item) in component.component_type().imports(engine) {
        imports.all.push(name.to_string());
        if is_granted(name) {
            continue;
        }
        let type_only = match &item.ty {
            ComponentItem::ComponentInstance(instance) => instance
                .exports(engine)
                .all(|(_, e)| matches!(e.ty, ComponentItem::Type(_))),
            _ => false,
        };
        if type_only {
            imports.type_only.push(name.to_string());
        } else {
            refused.push(name.to_string());
        }
    }
    if refused.is_empty() {
        Ok(imports)
    } else {
        Err(SandboxError::ComponentImportsRefused { refused })
    }
}

/// A linker holding the granted interfaces, and only those, plus an empty
/// instance for each type-only import.
pub(crate) fn granted_linker(
    engine: &wasmtime::Engine,
    imports: &Imports,
) -> Result<Linker<ComponentState>, SandboxError> {
    let mut linker = Linker::new(engine);
    add_granted(&mut linker).map_err(|e| SandboxError::Engine(format!("{e:#}")))?;
    for name in &imports.type_only {
        linker
            .instance(name)
            .map_err(|e| SandboxError::Engine(format!("type-only import `{name}`: {e:#}")))?;
    }
    Ok(linker)
}

struct HasTable;

impl HasData for HasTable {
    type Data<'a> = &'a mut ResourceTable;
}

fn add_granted(l: &mut Linker<ComponentState>) -> wasmtime::Result<()> {
    type T = ComponentState;
    wasmtime_wasi_io::bindings::wasi::io::error::add_to_linker::<T, HasTable>(l, |t: &mut T| {
        t.ctx().table
    })?;
    sync::io::poll::add_to_linker::<T, HasTable>(l, |t: &mut T| t.ctx().table)?;
    sync::io::streams::add_to_linker::<T, HasTable>(l, |t: &mut T| t.ctx().table)?;
    clocks::wall_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
    clocks::monotonic_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
    random::random::add_to_linker::<T, WasiRandom>(l, |t| t.ctx().ctx.random())?;
    random::insecure::add_to_linker::<T, WasiRandom>(l, |t| t.ctx().ctx.random())?;
    random::insecure_seed::add_to_linker::<T, WasiRandom>(l, |t| t.ctx().ctx.random())?;
    cli::exit::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::environment::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_input::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_output::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    Ok(())
}

/// What each component call's store carries: its limits, a WASI context with
/// no capabilities, and the captured output.
pub(crate) struct ComponentState {
    pub(crate) limiter: GuestLimiter,
    /// Made on the guest's first WASI call: a component that imports no WASI
    /// (or does not use it in a call) does not pay for it.
    wasi: Option<Box<GuestWasi>>,
}

/// The WASI side of one call.
struct GuestWasi {
    ctx: WasiCtx,
    table: ResourceTable,
    stdout: CapturedOutput,
    stderr: CapturedOutput,
}

impl GuestWasi {
    /// No environment, arguments, directories or network; empty stdin;
    /// captured stdout and stderr.
    fn new() -> Self {
        let stdout = CapturedOutput::default();
        let stderr = CapturedOutput::default();
        let ctx = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_blocking_current_thread(true)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        GuestWasi {
            ctx,
            table: ResourceTable::new(),
            stdout,
            stderr,
        }
    }
}

impl ComponentState {
    /// A fresh state; its WASI context is made when first used.
    pub(crate) fn new(limiter: GuestLimiter) -> Self {
        ComponentState {
            limiter,
            wasi: None,
        }
    }

    /// What the guest wrote to stdout in this call.
    pub(crate) fn stdout(&self) -> String {
        self.wasi
            .as_ref()
            .map_or_else(String::new, |w| w.stdout.text())
    }

    /// What the guest wrote to stderr in this call.
    pub(crate) fn stderr(&self) -> String {
        self.wasi
            .as_ref()
            .map_or_else(String::new, |w| w.stderr.text())
    }
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let wasi = self.wasi.get_or_insert_with(|| Box::new(GuestWasi::new()));
        WasiCtxView {
            ctx: &mut wasi.ctx,
            table: &mut wasi.table,
        }
    }
}

/// A guest's stdout or stderr for one call: the first
/// [`OUTPUT_CAP_BYTES`] kept, the rest dropped and counted. Writes never
/// fail, so a chatty guest is not broken by the cap.
#[derive(Clone, Default)]
pub(crate) struct CapturedOutput(Arc<Mutex<Captured>>);

#[derive(Default)]
struct Captured {
    kept: Vec<u8>,
    dropped: u64,
}

impl CapturedOutput {
    fn push(&self, bytes: &[u8]) {
        let mut c = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let room = OUTPUT_CAP_BYTES.saturating_sub(c.kept.len());
        let kept = bytes.len().min(room);
        c.kept.extend_from_slice(&bytes[..kept]);
        c.dropped += (bytes.len() - kept) as u64;
    }

    /// The text kept (lossy UTF-8), with a note when bytes were dropped.
    pub(crate) fn text(&self) -> String {
        let c = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut text = String::from_utf8_lossy(&c.kept).into_owned();
        if c.dropped > 0 {
            text.push_str(&format!("… ({} more bytes dropped)", c.dropped));
        }
        text
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.push(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }
    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(OUTPUT_CAP_BYTES)
    }
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_wasi_0_2_only_by_interface() {
        assert!(is_granted("wasi:io/streams@0.2.3"));
        assert!(is_granted("wasi:cli/stdout@0.2.0"));
        assert!(!is_granted("wasi:cli/stdout@0.3.0"));
        assert!(!is_granted("wasi:cli/stdout"));
        assert!(!is_granted("wasi:sockets/tcp@0.2.3"));
        assert!(!is_granted("wasi:filesystem/preopens@0.2.3"));
        assert!(!is_granted("acme:host/net@0.2.0"));
    }

    #[test]
    fn output_is_capped_without_failing() {
        let out = CapturedOutput::default();
        out.push(&vec![b'a'; OUTPUT_CAP_BYTES - 1]);
        out.push(b"bcd");
        let text = out.text();
        assert!(text.starts_with('a'));
        assert!(
            text.contains("(2 more bytes dropped)"),
            "{}",
            &text[text.len() - 40..]
        );
    }
}
