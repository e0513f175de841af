//! The manifest stored beside each backup, and the digests it records.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::result::BackupKind;
use crate::signing::Signature;
use crate::snapshot::{ContentDigest, RaftInfo};

pub const MANIFEST_FORMAT_VERSION: u32 = 1;

/// The JSON document stored beside each backup. It alone is enough to verify
/// the backup: download the object, hash it, compare.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub format_version: u32,
    pub key: String,
    pub cluster: String,
    pub namespace: String,
    pub kind: BackupKind,
    pub started_at: DateTime<Utc>,
    pub completed_at: DateTime<Utc>,
    pub source_node: String,
    pub tool_version: String,
    /// The snapshot exactly as OpenBao served it.
    pub snapshot: ContentDigest,
    /// The stored object: the snapshot after the transforms (the same as
    /// `snapshot` without any).
    pub object: ContentDigest,
    /// The transforms applied, in order; a restore undoes them in reverse.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transforms: Vec<TransformRecord>,
    /// The Raft state inside, from the archive's meta.json.
    pub raft: RaftInfo,
    /// How the object was uploaded.
    pub upload: UploadLayout,
    /// The OpenBao the snapshot came from (`sys/seal-status`), for a
    /// restore's preview; absent in backups made before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openbao: Option<OpenBaoRecord>,
    /// The MAC over everything above, with --manifest-key-file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
}

/// A transform as applied: enough to find the same plugin again and give
/// it the same configuration (secret settings are never recorded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransformRecord {
    pub name: String,
    pub version: String,
    pub sha256: String,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub config: serde_json::Map<String, serde_json::Value>,
}

/// What OpenBao said about itself when the snapshot was taken: what tells
/// whether another cluster's seal can open it, and which version wrote it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenBaoRecord {
    /// `version`, e.g. `2.7.2`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// The seal's `type`: `shamir`, `static`, `awskms`...
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub seal_type: String,
    /// `cluster_id`: a restore takes it over, so an equal id means the same
    /// keys.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadLayout {
    /// The first 5,000 parts' size; later parts grow (`parts::part_size`).
    pub part_size: u64,
    pub parts: u32,
}
