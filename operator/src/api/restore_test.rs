//! `spec.backup.restoreTest` and `status.restoreTest`: restore drills, the
//! latest backup restored into a throwaway single-node OpenBao and checked.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::LocalRef;

/// The CEL rule's message, and the controller's, on a restoreTest with
/// both or neither of `schedule` and `everyBackups`.
pub const RESTORE_TEST_WHEN_MESSAGE: &str = "spec.backup.restoreTest: set exactly one of schedule (a cron schedule) and everyBackups (a drill after every N successful backups)";

/// The CEL rule's message, and the controller's, on a canary with both or
/// neither of `jwtAuthRole` and `tokenSecretRef`.
pub const CANARY_AUTH_MESSAGE: &str = "spec.backup.restoreTest.canary: set exactly one of jwtAuthRole (JWT auth with the backup ServiceAccount's token) and tokenSecretRef (a static token)";

/// Restore drills: the latest backup restored into a throwaway
/// single-node OpenBao (the cluster's image and seal, an emptyDir, no
/// Service), checked, timed, and deleted.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.schedule) != has(self.everyBackups)",
     "message": "set exactly one of schedule (a cron schedule) and everyBackups (a drill after every N successful backups)"}
]))]
pub struct RestoreTestSpec {
    /// Cron schedule of the drills, like `spec.backup.schedule` (and in
    /// its time zone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub schedule: Option<String>,
    /// A drill after every N successful backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub every_backups: Option<u32>,
    /// A secret read back from the restored data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanarySpec>,
    /// Run no drill (one running finishes).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
}

/// A KV path read back after the restore, with its own credentials (the
/// restored data's: the throwaway's own root token is gone once the
/// backup is in).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.jwtAuthRole) != has(self.tokenSecretRef)",
     "message": "set exactly one of jwtAuthRole (JWT auth with the backup ServiceAccount's token) and tokenSecretRef (a static token)"}
]))]
pub struct CanarySpec {
    /// The API path under `/v1/`, e.g. `secret/data/canary` (KV v2).
    #[schemars(length(min = 1, max = 1024))]
    pub path: String,
    /// A key that must be present in the secret's data (KV v2's
    /// `data.data`, else `data`); without it, any answer with data passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub key: Option<String>,
    /// OpenBao JWT auth role (in the restored data) for the backup
    /// ServiceAccount `<cluster>-backup-serviceaccount`; needs `read` on
    /// `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub jwt_auth_role: Option<String>,
    /// Secret in this namespace whose `token` key holds a token valid in
    /// the restored data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<LocalRef>,
}

/// The last restore drill.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreTestStatus {
    /// `Succeeded` or `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_result: Option<String>,
    /// When the last drill finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_time: Option<Time>,
    /// When the last drill that succeeded finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_time: Option<Time>,
    /// The backup the last drill restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_key: Option<String>,
    /// The Raft index the throwaway reached (at least the manifest's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raft_index: Option<u64>,
    /// Measured time to recover: restore start to unsealed and readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_seconds: Option<f64>,
    /// The same, e.g. "12.3s".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_duration: Option<String>,
    /// The step that failed: verify, start, initialise, restore, unseal,
    /// raft-index, canary or cleanup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The drill running now (its name), until its result is recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<String>,
    /// Successful backups counted since the last drill (`everyBackups`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub backups_since: u32,
}

fn is_zero(count: &u32) -> bool {
    *count == 0
}
