//! Typed errors of the sandbox: [`SandboxError`] for setting up and loading
//! programs, [`CallError`] for a single guest call.

use std::path::PathBuf;

/// Why the sandbox could not be created or a program could not be loaded.
///
/// Every variant names what was wrong; nothing is compiled or cached when
/// loading fails before compilation (bad limits, hash mismatch, imports).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A [`SandboxConfig`](super::SandboxConfig) value is out of range.
    #[error("invalid sandbox config: {0}")]
    Config(String),

    /// wasmtime refused the engine configuration.
    #[error("cannot create the wasmtime engine: {0}")]
    Engine(String),

    /// The compiled-module cache directory is missing, not a directory, or
    /// not private to the user running the sandbox.
    #[error("module cache directory {path}: {reason}")]
    CacheDir {
        /// The cache directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The cache authentication key file is unreadable, has the wrong size or
    /// is readable by others.
    #[error("module cache key {path}: {reason}")]
    CacheKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A per-program limit from the manifest is unusable (for example zero).
    #[error("invalid guest limit `{field}`: {reason}")]
    InvalidLimit {
        /// The manifest field, e.g. `fuel`.
        field: &'static str,
        /// Why it is refused.
        reason: String,
    },

    /// SHA-256 of the plaintext does not match the code hash it was loaded
    /// under; caching it under that hash would poison the cache.
    #[error("code hash mismatch: expected {expected}, the module bytes hash to {actual}")]
    CodeHashMismatch {
        /// The code hash given by the caller (0x-hex).
        expected: String,
        /// SHA-256 of the bytes (0x-hex).
        actual: String,
    },

    /// The bytes are not a valid core WebAssembly module.
    #[error("invalid WebAssembly module: {0}")]
    InvalidModule(String),

    /// The module imports something. Sealed modules get no WASI and no host
    /// functions, so that a vendor's code cannot reach the customer's files,
    /// sockets or clock.
    #[error(
        "module imports {}; sealed modules run without WASI or host functions, so any import is refused",
        format_list(imports)
    )]
    ImportsNotAllowed {
        /// Every import as `module::name`.
        imports: Vec<String>,
    },

    /// A component imports something outside the granted WASI (sockets, the
    /// filesystem, a custom host interface, another WASI version).
    #[error(
        "component imports {}, which the sandbox does not grant; a component may import only \
         WASI 0.2 without capabilities: {}",
        format_list(refused),
        crate::component::GRANTED_INTERFACES.join(", ")
    )]
    ComponentImportsRefused {
        /// Every refused import, e.g. `wasi:sockets/tcp@0.2.3`.
        refused: Vec<String>,
    },

    /// The module's exports do not follow the bytes ABI (v1).
    #[error("module does not follow the sealbox bytes ABI: {0}")]
    BadAbi(String),

    /// The module needs resources the sandbox does not give a guest.
    #[error("module is not supported by the sandbox: {0}")]
    Unsupported(String),

    /// The module's initial memory is already larger than its memory limit.
    #[error("module starts with {initial_pages} memory pages but its limit is {limit_pages} pages")]
    MemoryTooLarge {
        /// Initial (minimum) size of the module's memory, in 64 KiB pages.
        initial_pages: u64,
        /// The effective memory limit, in 64 KiB pages.
        limit_pages: u64,
    },

    /// An entry named by the caller (e.g. the manifest's `entry` list) is not
    /// a bytes-ABI export of the module.
    #[error(
        "entry `{name}` is not a bytes-ABI export of the module (entries: {})",
        format_list(available)
    )]
    MissingEntry {
        /// The entry asked for.
        name: String,
        /// The bytes-ABI entries the module does export.
        available: Vec<String>,
    },
}

/// Why one guest call failed. The [`Program`](super::Program) stays usable
/// after every one of these: each call runs in a fresh instance.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The guest trapped (e.g. `unreachable`, out-of-bounds access,
    /// division by zero).
    #[error("guest `{export}` trapped: {trap}")]
    Trap {
        /// The export (or `sealbox_alloc`, or `start`) that was running.
        export: String,
        /// The trap code.
        trap: wasmtime::Trap,
    },

    /// The guest used up its fuel: a runaway loop or more work than the
    /// manifest declared.
    #[error("guest `{export}` used all {fuel} units of fuel (runaway loop?)")]
    OutOfFuel {
        /// The export that was running.
        export: String,
        /// The fuel the call was given.
        fuel: u64,
    },

    /// The guest ran past its wall-clock deadline.
    #[error("guest `{export}` ran past its deadline of {deadline_ms} ms (runaway loop?)")]
    DeadlineExceeded {
        /// The export that was running.
        export: String,
        /// The deadline the call was given, in milliseconds.
        deadline_ms: u64,
    },

    /// The guest tried to grow its memory past the limit.
    #[error(
        "guest `{export}` grew memory past {limit_pages} pages (asked for {requested_pages} pages)"
    )]
    MemoryLimit {
        /// The export that was running.
        export: String,
        /// The limit, in 64 KiB pages.
        limit_pages: u64,
        /// The size the guest asked for, in 64 KiB pages.
        requested_pages: u64,
    },

    /// No export of that name with a callable signature.
    #[error(
        "module has no export `{name}` (available: {})",
        format_list(available)
    )]
    MissingExport {
        /// The name asked for.
        name: String,
        /// The exports of the kind asked for that do exist.
        available: Vec<String>,
    },

    /// The export exists but its type does not fit the kind of call.
    #[error("export `{name}` has type {found}, expected {expected}")]
    BadSignature {
        /// The export.
        name: String,
        /// The type the call needs.
        expected: String,
        /// The export's actual type.
        found: String,
    },

    /// `call_bytes` on a module that does not export `memory` and
    /// `sealbox_alloc`.
    #[error(
        "module does not implement the bytes ABI (no `sealbox_alloc` export), cannot call `{export}` with bytes"
    )]
    NotBytesAbi {
        /// The export asked for.
        export: String,
    },

    /// The input is larger than the configured maximum.
    #[error("input of {len} bytes is larger than the limit of {limit} bytes")]
    InputTooLarge {
        /// Input length.
        len: usize,
        /// `max_input_bytes` from the config.
        limit: usize,
    },

    /// `sealbox_alloc` returned a buffer that is not inside guest memory.
    #[error(
        "sealbox_alloc returned {ptr:#x} for {len} bytes, outside guest memory of {memory_bytes} bytes"
    )]
    InputOutOfBounds {
        /// Pointer returned by the guest.
        ptr: u32,
        /// Input length.
        len: u32,
        /// Guest memory size in bytes.
        memory_bytes: usize,
    },

    /// The guest returned an output range outside its memory.
    #[error(
        "guest `{export}` returned output {ptr:#x}+{len}, outside guest memory of {memory_bytes} bytes"
    )]
    OutputOutOfBounds {
        /// The export.
        export: String,
        /// Output pointer.
        ptr: u32,
        /// Output length.
        len: u32,
        /// Guest memory size in bytes.
        memory_bytes: usize,
    },

    /// The guest returned more output than the configured maximum.
    #[error("guest `{export}` returned {len} bytes, more than the limit of {limit} bytes")]
    OutputTooLarge {
        /// The export.
        export: String,
        /// Output length claimed by the guest.
        len: u32,
        /// `max_output_bytes` from the config.
        limit: usize,
    },

    /// A numeric argument is missing, extra, or does not parse as the
    /// parameter's type.
    #[error("bad argument for `{export}`: {reason}")]
    BadArgument {
        /// The export.
        export: String,
        /// What is wrong.
        reason: String,
    },

    /// A component called `wasi:cli/exit`.
    #[error("guest `{export}` exited with code {code}")]
    Exited {
        /// The function that was running.
        export: String,
        /// The exit code.
        code: i32,
    },

    /// A guest fault, with what the guest wrote to stderr (a Python
    /// traceback, a JavaScript error message).
    #[error("{fault}; the guest's stderr:\n{stderr}")]
    WithStderr {
        /// The fault.
        fault: Box<CallError>,
        /// The guest's stderr (capped).
        stderr: String,
    },

    /// Every pooled instance slot is in use by concurrent calls.
    #[error("all sandbox instance slots are busy ({0}); retry or raise `pool_instances`")]
    PoolExhausted(String),

    /// Instantiation failed for another reason.
    #[error("cannot instantiate the module: {0}")]
    Instantiate(String),

    /// wasmtime reported an error that is not a guest fault.
    #[error("wasmtime error in `{export}`: {message}")]
    Engine {
        /// The export that was running.
        export: String,
        /// wasmtime's message.
        message: String,
    },
}

impl CallError {
    /// True for the faults caused by the guest's code or the caller's input
    /// (everything except pool exhaustion and engine errors), i.e. the ones
    /// a retry will not fix.
    pub fn is_guest_fault(&self) -> bool {
        if let CallError::WithStderr { fault, .. } = self {
            return fault.is_guest_fault();
        }
        !matches!(
            self,
            CallError::PoolExhausted(_) | CallError::Instantiate(_) | CallError::Engine { .. }
        )
    }
}

/// `a`, `b`, `c` — or `(none)` — for error messages.
fn format_list(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_string()
    } else {
        items
            .iter()
            .map(|i| format!("`{i}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
