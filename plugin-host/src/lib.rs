//! The sandbox that runs plugins: WebAssembly components under memory,
//! time and output limits, with no file, socket or clock of the host.
//! Retention plugins decide what to delete (held to the host's rules in
//! `retention`); transform plugins rewrite the snapshot stream (`chain`).

pub mod chain;
pub mod plugin;
pub mod retention;
pub mod spec;
