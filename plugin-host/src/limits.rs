//! What a plugin may use: memory, time and output per call, and how many
//! instances, memories and tables one Store may create.

use std::time::Duration;

/// How often the epoch ticks: the granularity of call deadlines.
pub(crate) const TICK: Duration = Duration::from_millis(10);
/// What one Store (one plugin job) may create. A component instantiates
/// several core modules, each of which may define memories and tables; the
/// plugins built with guest-sdk need one or two of each.
pub(crate) const MAX_INSTANCES: usize = 32;
pub(crate) const MAX_MEMORIES: usize = 4;
pub(crate) const MAX_TABLES: usize = 16;
pub(crate) const MAX_TABLE_ELEMENTS: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory a plugin instance may grow to, all its memories
    /// together.
    pub memory_bytes: usize,
    /// Wall time of one call into the plugin.
    pub call_timeout: Duration,
    /// Bytes one call may return.
    pub max_output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 256 * 1024 * 1024,
            call_timeout: Duration::from_secs(10),
            max_output_bytes: 64 * 1024 * 1024,
        }
    }
}
