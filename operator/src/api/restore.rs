//! The `OpenBaoRestore` API: one restore of an `OpenBaoCluster` from a
//! backup, run once by the operator as a Job.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{BackupTarget, LocalRef, PluginRef};

/// A restore of an OpenBaoCluster's Raft data from a backup.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "openbao.org",
    version = "v1alpha1",
    kind = "OpenBaoRestore",
    doc = "A restore of an OpenBaoCluster from a backup, run once.",
    plural = "openbaorestores",
    shortname = "baorestore",
    category = "openbao",
    namespaced,
    status = "OpenBaoRestoreStatus",
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".spec.cluster"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Backup","type":"string","jsonPath":".status.restoredKey"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.jwtAuthRole) != has(self.tokenSecretRef)",
     "message": "set exactly one of jwtAuthRole (JWT auth with the cluster's restore ServiceAccount <cluster>-restore-serviceaccount) and tokenSecretRef (a static token)"},
    {"rule": "self == oldSelf", "message": "a restore cannot be changed: create a new OpenBaoRestore"}
]))]
pub struct OpenBaoRestoreSpec {
    /// The OpenBaoCluster to restore, in this namespace.
    #[schemars(length(min = 1, max = 253))]
    pub cluster: String,
    /// Where the backup is; omitted: the cluster's own `spec.backup.target`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<BackupTarget>,
    /// Object key of the backup, or `latest` (the cluster's newest).
    #[serde(default = "latest")]
    #[schemars(length(min = 1))]
    pub key: String,
    /// OpenBao JWT auth role for the cluster's restore ServiceAccount
    /// `<cluster>-restore-serviceaccount` (never the backup one); the role
    /// needs `update` on sys/storage/raft/snapshot (and snapshot-force with
    /// `force`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub jwt_auth_role: Option<String>,
    /// Secret in this namespace whose `token` key holds an OpenBao token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<LocalRef>,
    /// Restore a snapshot taken from a cluster with other unseal keys
    /// (sys/storage/raft/snapshot-force); also forces a preview's `seal`
    /// refusal.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
    /// Restore a backup of another cluster (its manifest names another
    /// cluster, or its key lies outside this cluster's prefix): a new
    /// cluster replacing a lost one. Refused without it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_other_cluster: bool,
    /// The cluster (in this namespace) whose backups are read: `latest`
    /// is its newest, under its prefix. Omitted: `cluster`. For a lost
    /// cluster's backups restored into a new one (with
    /// `allowOtherCluster`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub source_cluster: Option<String>,
    /// Only preview: compare the backup with the live cluster and record
    /// the findings in `status.preview` (phase `Previewed`); nothing is
    /// sent to OpenBao.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub preview: bool,
    /// The plugins that undo the backup's transforms, with the secrets
    /// decoding needs (an age identity in `secretConfig`); omitted: the
    /// cluster's `spec.backup.transforms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugins: Option<Vec<PluginRef>>,
    /// Image of the executor; omitted: the cluster's
    /// `spec.backup.executorImage`, else the operator's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor_image: Option<String>,
}

fn latest() -> String {
    "latest".into()
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RestorePhase {
    #[default]
    Pending,
    Running,
    Succeeded,
    Failed,
    /// A preview (`spec.preview`) ran; its findings are in `status.preview`.
    Previewed,
}

impl RestorePhase {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Previewed)
    }
}

/// One finding of a preview: the backup against the live cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreviewFinding {
    /// `cluster`, `raft`, `version`, `seal`, `age`, `size`, `plugins` or
    /// `signature`.
    pub check: String,
    /// `ok`, `warn` or `refuse`.
    pub verdict: String,
    pub message: String,
    /// The spec field that forces a refusal (`spec.allowOtherCluster`,
    /// `spec.force`), when one can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forced_by: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenBaoRestoreStatus {
    #[serde(default)]
    pub phase: RestorePhase,
    /// Why it waits, what it does, or why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The Job that runs (ran) the restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Object key of the backup restored (`latest` resolved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_key: Option<String>,
    /// Size of the snapshot restored, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_sha256: Option<String>,
    /// A preview's findings (`spec.preview`), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preview: Vec<PreviewFinding>,
    /// `Complete`: True when the restore succeeded, False when it failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
