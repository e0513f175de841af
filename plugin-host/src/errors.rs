//! Why a plugin could not be used or failed its job: one typed reason per
//! way, each with a short machine name for results and metrics.

use std::time::Duration;

use wasmtime::Trap;

use crate::bindings::{ABI_VERSION, PACKAGE, wit_retention, wit_transform};
use crate::limits::{Limits, MAX_INSTANCES, MAX_MEMORIES, MAX_TABLES};

/// Why a plugin could not be used or failed its job.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin digest mismatch: expected sha256 {expected}, the bytes have {actual}")]
    DigestMismatch { expected: String, actual: String },
    #[error("not a WebAssembly component: {0}")]
    Compile(String),
    #[error(
        "the plugin imports {0:?}; plugins get nothing from the host (no WASI, no host functions)"
    )]
    Imports(Vec<String>),
    #[error("the plugin speaks ABI {found}; this host speaks {PACKAGE}@{ABI_VERSION} (0.1.x)")]
    Abi { found: String },
    #[error(
        "not an openbao-backup plugin: it exports {0:?}, not {PACKAGE}/transform or /retention"
    )]
    NotAPlugin(Vec<String>),
    #[error("a {found} plugin cannot be used as a {expected} plugin")]
    WrongKind {
        expected: &'static str,
        found: &'static str,
    },
    #[error("the plugin ran longer than its {0:?} limit")]
    Timeout(Duration),
    #[error("the plugin needed more than its {0} bytes of memory")]
    OutOfMemory(usize),
    #[error(
        "the plugin needs more than the sandbox allows ({0}): at most {MAX_INSTANCES} module instances, {MAX_MEMORIES} memories and {MAX_TABLES} tables"
    )]
    TooLarge(String),
    #[error("the plugin panicked")]
    Panicked,
    #[error("the plugin trapped: {0}")]
    Trapped(String),
    #[error("the plugin returned {size} bytes in one call, more than its {limit} bytes limit")]
    OutputTooLarge { size: usize, limit: usize },
    #[error("plugin configuration: {0}")]
    Config(String),
    #[error("the plugin cannot read its input: {0}")]
    InvalidInput(String),
    #[error("the plugin failed: {0}")]
    Failed(String),
}

impl PluginError {
    /// A short machine name, for results and metrics.
    pub fn cause(&self) -> &'static str {
        match self {
            Self::DigestMismatch { .. } => "digest-mismatch",
            Self::Compile(_) | Self::NotAPlugin(_) | Self::WrongKind { .. } => "not-a-plugin",
            Self::Imports(_) => "imports",
            Self::Abi { .. } => "abi",
            Self::Timeout(_) => "timeout",
            Self::OutOfMemory(_) => "out-of-memory",
            Self::TooLarge(_) => "too-large",
            Self::Panicked => "panic",
            Self::Trapped(_) => "trap",
            Self::OutputTooLarge { .. } => "output-too-large",
            Self::Config(_) => "config",
            Self::InvalidInput(_) => "invalid-input",
            Self::Failed(_) => "failed",
        }
    }
}

macro_rules! from_wit_error {
    ($wit:ty) => {
        impl From<$wit> for PluginError {
            fn from(error: $wit) -> Self {
                type Wit = $wit;
                match error {
                    Wit::Config(m) => Self::Config(m),
                    Wit::InvalidInput(m) => Self::InvalidInput(m),
                    Wit::Failed(m) => Self::Failed(m),
                }
            }
        }
    };
}
from_wit_error!(wit_retention::PluginError);
from_wit_error!(wit_transform::PluginError);

/// A failed call or instantiation as a typed reason. `memory_refused`:
/// the sandbox refused a memory growth, so an abort is out of memory, not
/// a panic.
pub(crate) fn classify(
    error: wasmtime::Error,
    memory_refused: bool,
    limits: Limits,
) -> PluginError {
    if memory_refused {
        return PluginError::OutOfMemory(limits.memory_bytes);
    }
    let message = format!("{error:#}");
    // How wasmtime words a Store's count limits (instances, memories, tables).
    if message.contains("resource limit exceeded") {
        return PluginError::TooLarge(message);
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => PluginError::Timeout(limits.call_timeout),
        // Rust guests abort (panic = "abort") with `unreachable`.
        Some(Trap::UnreachableCodeReached) => PluginError::Panicked,
        Some(trap) => PluginError::Trapped(trap.to_string()),
        None => PluginError::Trapped(message),
    }
}
