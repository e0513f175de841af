//! What the operator and the executor agree on, with no Kubernetes,
//! WebAssembly or S3 client in sight: the results the executor prints and
//! the operator reads, the manifest and the bucket's key layout, plugin
//! specs, the executor's flag and environment names and mount paths, and
//! the one grammar for sizes and durations.

pub mod drill;
pub mod executor;
pub mod layout;
pub mod manifest;
pub mod network;
pub mod plugin_spec;
pub mod preview;
pub mod result;
pub mod secret;
pub mod signing;
pub mod snapshot;
pub mod units;
