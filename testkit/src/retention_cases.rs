//! The keep-last table (plugins/keep-last/tests/cases.json), read once for
//! the host's tests: the built-in policy and the keep-last component are
//! both held to it. (The plugin's native test reads it in its own
//! workspace.)

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    pub name: String,
    /// Unix seconds.
    pub now: i64,
    pub backups: Vec<CaseBackup>,
    /// The policy's configuration, as the plugin gets it.
    pub config: serde_json::Value,
    /// The keys to delete.
    pub delete: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaseBackup {
    pub key: String,
    pub age_seconds: i64,
    #[serde(default = "scheduled")]
    pub kind: String,
}

fn scheduled() -> String {
    "scheduled".into()
}

impl Case {
    pub fn max_count(&self) -> Option<u32> {
        self.config["maxCount"].as_u64().map(|n| n as u32)
    }

    pub fn max_age(&self) -> Option<&str> {
        self.config["maxAge"].as_str()
    }
}

/// The table, embedded when testkit is built (a path baked in with
/// `env!("CARGO_MANIFEST_DIR")` breaks when a target directory is shared
/// by checkouts at other paths: cargo reuses the artifact, and the path is
/// the other checkout's).
pub fn keep_last() -> Vec<Case> {
    serde_json::from_str(include_str!("../../plugins/keep-last/tests/cases.json"))
        .unwrap_or_else(|e| panic!("plugins/keep-last/tests/cases.json: {e}"))
}
