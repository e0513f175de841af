//! The sandbox that runs plugins: WebAssembly components under memory,
//! time and output limits, with no file, socket or clock of the host.
//! Laid out as a runtime (`runtime`: engine, compiled components, the
//! sandboxed Store), the pre-instantiated component (`component`) and its
//! errors (`errors`) and the built-ins (`builtin`), over the WIT bindings and the limits. Retention
//! plugins decide what to delete (held to the host's rules in
//! `retention`); transform plugins rewrite the snapshot stream (`chain`).

mod bindings;
pub mod builtin;
pub mod chain;
pub mod component;
pub mod errors;
pub mod limits;
pub mod retention;
pub mod runtime;
pub mod spec;

pub use bindings::ABI_VERSION;
pub use component::{Direction, Kind, Plugin, PluginInfo, RetentionBackup, Transformer};
pub use errors::PluginError;
pub use limits::Limits;
pub use runtime::PluginHost;
