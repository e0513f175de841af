//! What identifies a snapshot: its bytes' size and SHA-256, and the Raft
//! position inside it.

use serde::{Deserialize, Serialize};

/// The size and SHA-256 of a byte stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentDigest {
    pub size: u64,
    pub sha256: String,
}

/// What the archive says about the Raft state it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RaftInfo {
    pub index: u64,
    pub term: u64,
    pub state_size: u64,
}
