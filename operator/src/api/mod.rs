//! The `OpenBaoCluster` and `OpenBaoRestore` APIs (`openbao.org/v1alpha1`).
//! These types are the source of the CRDs in the Helm chart's `crds/`
//! (`openbao-backup crd` prints them; a test keeps the file in sync).
//!
//! Everything the API server can check is in the schema (types, ranges,
//! patterns, CEL rules); what it cannot (cron syntax, durations) is checked
//! by the controller in `operator::validate`, which also repeats the CEL
//! rules for API servers without CEL (`operator::cel_rules` evaluates the rules and
//! holds the two to the same verdicts).

use std::collections::BTreeMap;

use contract::executor::upload::{
    DEFAULT_CONCURRENCY, DEFAULT_PART_SIZE, MAX_CONCURRENCY, MAX_PART_SIZE, MIN_PART_SIZE,
};
use k8s_openapi::api::core::v1::{
    Affinity, LocalObjectReference, ResourceRequirements, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod notifications;
mod restore;
pub use notifications::{
    DeliveryResult, HARDENED_WEBHOOK_MESSAGE, NotificationStatus, NotifiedKind, Webhook,
};
mod restore_test;
pub use restore::{
    OpenBaoRestore, OpenBaoRestoreSpec, OpenBaoRestoreStatus, PreviewFinding, RestorePhase,
};
pub use restore_test::{
    CANARY_AUTH_MESSAGE, CanarySpec, RESTORE_TEST_WHEN_MESSAGE, RestoreTestSpec, RestoreTestStatus,
};

/// Where the generated CRD is checked in, relative to the repository root.
pub const CRD_FILE: &str = "deploy/helm/openbao-backup-operator/crds/openbao.org.yaml";
pub const DEFAULT_REPLICAS: u32 = 3;
/// `spec.seal.static.keyId` when not given.
pub const DEFAULT_SEAL_KEY_ID: &str = "k1";

/// The desired state of an OpenBao cluster.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "openbao.org",
    version = "v1alpha1",
    kind = "OpenBaoCluster",
    doc = "An OpenBao cluster with integrated Raft storage, and how to back it up.",
    plural = "openbaoclusters",
    shortname = "baocluster",
    shortname = "obc",
    category = "openbao",
    namespaced,
    status = "OpenBaoClusterStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".status.version"}"#,
    printcolumn = r#"{"name":"Upgrade","type":"string","jsonPath":".status.upgrade.phase"}"#,
    printcolumn = r#"{"name":"Last Backup","type":"date","jsonPath":".status.backup.lastBackupTime"}"#,
    printcolumn = r#"{"name":"Next Backup","type":"date","jsonPath":".status.backup.nextScheduledBackup"}"#,
    printcolumn = r#"{"name":"Failures","type":"integer","jsonPath":".status.backup.consecutiveFailures"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = cluster_spec_rules)]
pub struct OpenBaoClusterSpec {
    /// An OpenBao the operator does not run (installed with the official
    /// Helm chart, say): no workload is rendered, only its backups and
    /// restores. Not with the workload's fields (replicas, version, image,
    /// storage, tls, seal, config, upgrade, selfInit, networkPolicy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalSpec>,
    /// `Development` (default: for trying things out) or `Hardened` (for
    /// production): what Hardened refuses and the NetworkPolicies it
    /// renders are in docs/security.md. Under Development the
    /// `SecurityRisk` condition lists what Hardened would refuse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
    /// Under the `Hardened` profile, who may reach OpenBao's API besides
    /// its peers and this cluster's backup and restore pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<OpenBaoNetworkPolicy>,
    /// OpenBao nodes (StatefulSet pods `<name>-0`, `<name>-1`, ...); default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 9))]
    pub replicas: Option<u32>,
    /// OpenBao's version, e.g. `2.4.1`: runs the image
    /// `openbao/openbao:<version>` unless `image` names another. Changing
    /// it (or `image`) is an upgrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub version: Option<String>,
    /// The OpenBao image, when not `openbao/openbao:<version>` (a mirror, a
    /// digest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,
    /// Each node's Raft volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,
    /// The listener's certificate; OpenBao always serves TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// Auto-unseal the operator sets up itself: a static key from a
    /// Secret. Instead of a `seal` in `config`, not with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<SealSpec>,
    /// More OpenBao server configuration in its JSON form (`seal`,
    /// `telemetry`, `log_level`, ...), merged into what the operator
    /// renders; the keys the operator owns (`storage`, `listener`,
    /// `api_addr`, `cluster_addr`, `service_registration`, `initialize`,
    /// `disable_mlock`) are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub config: Option<serde_json::Map<String, serde_json::Value>>,
    /// Scheduled, manual and pre-upgrade backups of this cluster's Raft data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<UpgradeSpec>,
    /// OpenBao's declarative self-initialization: requests run once, when a
    /// new cluster first starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_init: Option<SelfInitSpec>,
    /// Webhooks that receive a signed CloudEvents event for each backup,
    /// restore, restore drill and copy result (docs/operator.md
    /// "Notifications").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub notifications: Vec<Webhook>,
}

/// The fields of `spec` that describe the workload the operator runs: none
/// applies to an external OpenBao (`spec.external`).
pub const WORKLOAD_FIELDS: [&str; 10] = [
    "replicas",
    "version",
    "image",
    "storage",
    "tls",
    "seal",
    "config",
    "upgrade",
    "selfInit",
    "networkPolicy",
];

/// How strict the operator is with a cluster (`spec.profile`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Profile {
    /// Today's behaviour; the `SecurityRisk` condition lists what
    /// `Hardened` would refuse.
    #[default]
    Development,
    /// Refuses OpenBao without TLS, a seal key kept in the cluster (unless
    /// `spec.seal.static.allowInClusterKey`), static-token backups,
    /// unpinned plugins and unsafe storage endpoints; renders default-deny
    /// NetworkPolicies for the OpenBao pods.
    Hardened,
}

impl Profile {
    /// As the executor gets it (`SECURITY_PROFILE`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Development => contract::network::profile::DEVELOPMENT,
            Self::Hardened => contract::network::profile::HARDENED,
        }
    }
}

/// The clients the `Hardened` profile's NetworkPolicy lets reach
/// OpenBao's API port.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenBaoNetworkPolicy {
    /// Each entry allows the pods it selects: a namespaceSelector alone
    /// (every pod of those namespaces), a podSelector alone (those pods of
    /// this namespace), or both (those pods of those namespaces).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_clients: Vec<ApiClient>,
}

/// A namespaceSelector, a podSelector or both.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiClient {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
}

/// What is wrong with `spec.<field>` (one of [`WORKLOAD_FIELDS`]) beside
/// `spec.external`: the CRD's rule and the controller say the same.
pub fn not_with_external(field: &str) -> String {
    format!(
        "spec.{field} does not apply to an external OpenBao (spec.external, which the operator does not run): remove one of them"
    )
}

/// The CEL rules of `spec`: a release to run or an external OpenBao, and
/// no workload field with `external`.
fn cluster_spec_rules(schema: &mut schemars::Schema) {
    let mut rules = vec![serde_json::json!({
        "rule": "has(self.external) || has(self.version) || has(self.image)",
        "message": "set spec.version (OpenBao's version, e.g. 2.4.1) or spec.image, or spec.external for an OpenBao the operator does not run",
    })];
    rules.extend(WORKLOAD_FIELDS.iter().map(|field| {
        serde_json::json!({
            "rule": format!("!has(self.external) || !has(self.{field})"),
            "message": not_with_external(field),
        })
    }));
    rules.push(serde_json::json!({
        "rule": "!has(self.profile) || self.profile != 'Hardened' || !has(self.notifications) || self.notifications.all(w, w.url.startsWith('https://'))",
        "message": HARDENED_WEBHOOK_MESSAGE,
    }));
    schema.insert("x-kubernetes-validations".into(), rules.into());
}

impl OpenBaoClusterSpec {
    /// The [`WORKLOAD_FIELDS`] this spec sets.
    pub fn workload_fields_set(&self) -> Vec<&'static str> {
        let set = [
            self.replicas.is_some(),
            self.version.is_some(),
            self.image.is_some(),
            self.storage.is_some(),
            self.tls.is_some(),
            self.seal.is_some(),
            self.config.is_some(),
            self.upgrade.is_some(),
            self.self_init.is_some(),
            self.network_policy.is_some(),
        ];
        WORKLOAD_FIELDS
            .into_iter()
            .zip(set)
            .filter_map(|(field, set)| set.then_some(field))
            .collect()
    }

    pub fn profile(&self) -> Profile {
        self.profile.unwrap_or_default()
    }

    pub fn replicas(&self) -> u32 {
        self.replicas.unwrap_or(DEFAULT_REPLICAS)
    }

    /// The TLS Secret: `spec.tls.secretName`, or `<cluster>-tls`.
    pub fn tls_secret(&self, cluster: &str) -> String {
        self.tls
            .as_ref()
            .map_or_else(|| format!("{cluster}-tls"), |t| t.secret_name.clone())
    }
}

/// An OpenBao the operator does not run, by its nodes' addresses or a
/// Service in this namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.addresses) != has(self.service)",
     "message": "spec.external: set exactly one of addresses (each node's API URL) and service (a Service of this namespace)"}
]))]
pub struct ExternalSpec {
    /// Each node's API URL, e.g. `https://bao-0.bao-internal:8200`; backups
    /// and restores find the active node among them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(min = 1, max = 16),
        inner(regex(pattern = r"^https?://[^,\s]+$"))
    )]
    pub addresses: Vec<String>,
    /// A Service of this namespace in front of OpenBao (the Helm chart's
    /// `<release>-active`, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ExternalService>,
    /// The CA that signed OpenBao's certificate, a key of a Secret of this
    /// namespace; without it the system's roots are trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
}

impl ExternalSpec {
    /// The executor's `OPENBAO_ADDR`: the addresses, comma-separated, or
    /// the Service's in-cluster URL.
    pub fn addrs(&self, namespace: &str) -> String {
        match &self.service {
            Some(service) if self.addresses.is_empty() => format!(
                "{}://{}.{namespace}.svc:{}",
                service.scheme(),
                service.name,
                service.port()
            ),
            _ => self.addresses.join(","),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalService {
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// OpenBao's API port on the Service (default 8200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
    /// `https` (default) or `http` (a listener with `tls_disable`, the Helm
    /// chart's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^https?$"))]
    pub scheme: Option<String>,
}

impl ExternalService {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(crate::names::OPENBAO_PORT as u16)
    }

    pub fn scheme(&self) -> &str {
        self.scheme.as_deref().unwrap_or("https")
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Size of each node's volume (default `10Gi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$"))]
    pub size: Option<String>,
    /// StorageClass of the volumes; the cluster's default when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// A `kubernetes.io/tls` Secret of this namespace with `tls.crt`,
    /// `tls.key` and `ca.crt` (what cert-manager writes), valid for
    /// `<cluster>-<i>.<cluster>-internal.<namespace>.svc` and
    /// `<cluster>.<namespace>.svc`. Default `<cluster>-tls`.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

/// How OpenBao unseals itself.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SealSpec {
    /// OpenBao's `static` seal: a 32-byte AES key, mounted read-only from
    /// a Secret. Keep the key: without it the data (and every backup of
    /// it) cannot be unsealed.
    #[serde(rename = "static")]
    pub static_key: StaticSealSpec,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StaticSealSpec {
    /// The Secret key holding exactly 32 random bytes
    /// (`head -c 32 /dev/urandom`).
    pub secret_key_ref: SecretKeyRef,
    /// The key's id (OpenBao's `current_key_id`), recorded with what the
    /// key encrypts; default `k1`. Keep it once the cluster is initialized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub key_id: Option<String>,
    /// The `Hardened` profile refuses a seal whose key lives in a Secret
    /// of the cluster (whoever reads the Secret and a backup reads the
    /// data) unless this says the risk is accepted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_in_cluster_key: bool,
}

impl StaticSealSpec {
    pub fn key_id(&self) -> &str {
        self.key_id.as_deref().unwrap_or(DEFAULT_SEAL_KEY_ID)
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.jwtAuthRole) != has(self.tokenSecretRef)",
     "message": "set exactly one of jwtAuthRole (JWT auth with the backup ServiceAccount's token) and tokenSecretRef (a static token)"},
    {"rule": "!has(self.copies) || self.copies.all(c, !has(c.pathPrefix) && !has(c.partSize) && !has(c.concurrency))",
     "message": COPY_SETTINGS_MESSAGE}
]))]
pub struct BackupSpec {
    /// Cron schedule in UTC (or `cronJob.timeZone`), five fields ("0 3 * * *") or a macro ("@daily").
    #[schemars(length(min = 1))]
    pub schedule: String,
    /// Image of the backup executor (this project's `openbao-backup`);
    /// default: the operator's (`openbao/backup-executor` at the operator's
    /// version, or the administrator's `DEFAULT_EXECUTOR_IMAGE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub executor_image: Option<String>,
    /// OpenBao JWT auth role for the backup ServiceAccount
    /// `<cluster>-backup-serviceaccount`; the role needs `read` on
    /// sys/storage/raft/snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub jwt_auth_role: Option<String>,
    /// Audience of the projected ServiceAccount token that backup and
    /// restore Jobs log in with (JWT auth); the OpenBao role's
    /// `bound_audiences` must name it. Omitted: the operator's
    /// `--jwt-audience` (default `openbao-internal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub jwt_audience: Option<String>,
    /// Secret in this namespace whose `token` key holds an OpenBao token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<LocalRef>,
    pub target: BackupTarget,
    /// Second copies (at most 4): after each backup completes, it is
    /// copied to each of these targets (another bucket, region, provider or
    /// volume, with its own `credentialsSecretRef`), read back and checked
    /// against the manifest's digests; `status.backup.copies` says whether
    /// the latest copy on each is verified. A failed copy never fails the
    /// backup. A copy keeps the target's keys, part size and concurrency:
    /// `pathPrefix`, `partSize` and `concurrency` are not set here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4))]
    pub copies: Vec<BackupTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionSpec>,
    /// Transform plugins applied to the snapshot in order (compression,
    /// encryption); a restore undoes them in reverse.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transforms: Vec<PluginRef>,
    /// A retention plugin that decides which backups to delete, instead of
    /// `retention`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_plugin: Option<PluginRef>,
    /// A Secret key holding at least 32 random bytes: backups sign their
    /// manifests with it, and restores of this cluster refuse a manifest it
    /// did not sign (one written by anyone else who can write the bucket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_key_secret_ref: Option<SecretKeyRef>,
    /// Scheduling, metadata and resources of the backup and restore pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ExecutorPodSettings>,
    /// The backup and restore ServiceAccounts' annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<ServiceAccountSettings>,
    /// The backup CronJob's settings beyond its schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron_job: Option<CronJobSettings>,
    /// Restore drills into a throwaway OpenBao (docs/restore.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_test: Option<RestoreTestSpec>,
}

/// What backup and restore pods get besides what the operator renders:
/// where they may run, their metadata and their resources.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutorPodSettings {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub priority_class_name: Option<String>,
    /// Secrets of this namespace to pull the executor image with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// More pod labels. The operator's own labels
    /// (`app.kubernetes.io/name`, `instance`, `component`, `managed-by`)
    /// win: a label with one of their keys is ignored, with a warning in
    /// `BackupConfigured`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Pod annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The executor container's resources. A `requests` (or `limits`)
    /// given here replaces the computed one whole: the computed memory
    /// follows the part size and concurrency (README "Memory and speed").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// The backup and restore ServiceAccounts' metadata: annotations that give
/// the pods a cloud identity, so S3 needs no static keys, e.g.
/// `eks.amazonaws.com/role-arn` (IRSA) or `iam.gke.io/gcp-service-account`
/// (GKE Workload Identity). With annotations the ServiceAccounts exist and
/// the pods run as them whatever the OpenBao auth.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountSettings {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The backup CronJob's fields besides `schedule`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CronJobSettings {
    /// The schedule's IANA time zone, e.g. `Europe/Paris` (Kubernetes >=
    /// 1.27); UTC when omitted. With a zone other than UTC,
    /// `status.backup.nextScheduledBackup` is not reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = "^[A-Za-z0-9_+/-]+$"))]
    pub time_zone: Option<String>,
    /// Stop scheduled backups (manual ones still run). A restore's hold
    /// suspends the CronJob whatever this says.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
    /// How late a missed run may still start, in seconds (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub starting_deadline_seconds: Option<i64>,
    /// Finished Jobs kept (default 3 each).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub successful_jobs_history_limit: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub failed_jobs_history_limit: Option<i32>,
}

/// Where backups go: an S3 bucket (`bucket`, with `endpoint`, `region`),
/// a PersistentVolumeClaim (`volume`) or an Azure Blob container
/// (`azure`); exactly one. `pathPrefix`, `partSize`, `concurrency` and
/// `credentialsSecretRef` apply to each (docs/storage.md).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "(has(self.bucket) ? 1 : 0) + (has(self.volume) ? 1 : 0) + (has(self.azure) ? 1 : 0) == 1",
     "message": "set exactly one of bucket (an S3 bucket), volume (a PersistentVolumeClaim) and azure (an Azure Blob Storage container)"}
]))]
pub struct BackupTarget {
    /// S3 endpoint URL; AWS when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://"))]
    pub endpoint: Option<String>,
    /// The S3 bucket.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(min = 3, max = 63))]
    pub bucket: String,
    /// A PersistentVolumeClaim of this namespace (a PVC, NFS) that holds
    /// the backups instead of a bucket, mounted into backup and restore
    /// pods; the executor writes to it as user and group 65532.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeTarget>,
    /// An Azure Blob Storage container that holds the backups instead of a
    /// bucket; the account key is `accountKey` in `credentialsSecretRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Key prefix; backups go under `<pathPrefix>/<namespace>/<cluster>/`.
    /// At most 256 characters, so that a backup's result (which names its
    /// keys) fits the Job's 4 KiB termination message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub path_prefix: Option<String>,
    /// Secret in this namespace with `accessKeyId`, `secretAccessKey` and
    /// optionally `sessionToken` and `caCert`. Without it the executor uses
    /// the pod's ambient identity (IRSA, EKS Pod Identity...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<LocalRef>,
    /// Multipart part size in bytes (default 10 MiB). The largest backup is
    /// 10,000 parts; memory is about (concurrency + 1) x partSize.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = MIN_PART_SIZE, max = MAX_PART_SIZE))]
    pub part_size: Option<u64>,
    /// Parts uploaded at once (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_CONCURRENCY))]
    pub concurrency: Option<u16>,
}

/// A PersistentVolumeClaim as the storage target.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeTarget {
    pub persistent_volume_claim: ClaimRef,
    /// A directory inside the volume (relative, no `..`); the volume's root
    /// when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub sub_path: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClaimRef {
    #[schemars(length(min = 1, max = 253))]
    pub claim_name: String,
}

/// An Azure Blob Storage container as the storage target.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureTarget {
    /// The storage account.
    #[schemars(length(min = 3, max = 24))]
    pub account: String,
    /// The container, which must exist.
    #[schemars(length(min = 3, max = 63))]
    pub container: String,
    /// The Blob service URL; `https://<account>.blob.core.windows.net` when
    /// omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://"))]
    pub endpoint: Option<String>,
}

/// What a copy that sets its own keys or part layout is told.
pub const COPY_SETTINGS_MESSAGE: &str = "spec.backup.copies: a copy keeps spec.backup.target's pathPrefix, partSize and concurrency; remove them from the copy";

impl BackupTarget {
    /// The URL backups are sent to: Azure's endpoint for a container, else
    /// the S3 endpoint (None: AWS, Azure's public cloud, or a volume).
    pub fn storage_endpoint(&self) -> Option<&str> {
        match &self.azure {
            Some(azure) => azure.endpoint.as_deref(),
            None => self.endpoint.as_deref(),
        }
    }

    pub fn part_size(&self) -> u64 {
        self.part_size.unwrap_or(DEFAULT_PART_SIZE)
    }

    pub fn concurrency(&self) -> u16 {
        self.concurrency.unwrap_or(DEFAULT_CONCURRENCY)
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionSpec {
    /// Keep at most this many scheduled and manual backups (0: no limit).
    /// Pre-upgrade snapshots are not counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_count: Option<u32>,
    /// Delete backups older than this: days, hours, minutes and seconds
    /// such as "7d", "168h" or "36h30m", from 1h to 36500d (100 years).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), regex(pattern = "^([0-9]{1,10}(ms|[dhms])){1,5}$"))]
    pub max_age: Option<String>,
}

/// A WebAssembly plugin: one built into the executor (`builtin`), or one
/// delivered in a ConfigMap of this namespace (`configMapRef`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.configMapRef) != has(self.builtin)",
     "message": PLUGIN_SOURCE_MESSAGE}
]))]
pub struct PluginRef {
    /// A built-in plugin of the executor image, by name: `zstd` and `age`
    /// (transforms), `keep-last` and `gfs` (retention). Needs no ConfigMap
    /// and no `sha256` pin (it is part of the executor's binary); its digest
    /// is recorded in each backup's manifest all the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "builtin_name")]
    pub builtin: Option<String>,
    /// A ConfigMap key holding the plugin component (`.wasm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<ConfigMapKeyRef>,
    /// Hex SHA-256 of the plugin; a plugin with another digest is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^[0-9a-f]{64}$"))]
    pub sha256: Option<String>,
    /// The plugin's configuration (any JSON object, as the plugin defines
    /// it); recorded in each backup's manifest, so nothing secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub config: Option<serde_json::Map<String, serde_json::Value>>,
    /// Settings read from Secrets of this namespace (an age identity, say),
    /// passed to the plugin and never recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_config: Vec<SecretConfig>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretConfig {
    /// The plugin setting to fill.
    #[schemars(length(min = 1))]
    pub name: String,
    pub secret_key_ref: SecretKeyRef,
}

/// A Secret or other object in the resource's own namespace, by name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct LocalRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct ConfigMapKeyRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[schemars(length(min = 1))]
    pub key: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct SecretKeyRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// A key of the Secret's `data`.
    #[schemars(length(min = 1, max = 253), regex(pattern = "^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeSpec {
    /// Take a backup (kind `pre-upgrade`) before a version change rolls out;
    /// needs `spec.backup`.
    #[serde(default)]
    pub pre_upgrade_snapshot: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SelfInitSpec {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<SelfInitRequest>,
}

/// One API request of OpenBao's self-initialization.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SelfInitRequest {
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = "^[A-Za-z_][A-Za-z0-9_-]*$")
    )]
    pub name: String,
    pub operation: SelfInitOperation,
    /// API path, e.g. `sys/auth/jwt` or `auth/jwt/role/backup`.
    #[schemars(length(min = 1))]
    pub path: String,
    /// For `sys/auth/*`: the auth method to enable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_method: Option<SelfInitAuthMethod>,
    /// For `sys/mounts/*`: the secrets engine to enable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_engine: Option<SelfInitSecretEngine>,
    /// For `sys/policies/acl/*`: the policy text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<SelfInitPolicy>,
    /// The request body for any other path; stored in the resource, so
    /// nothing secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub data: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_failure: bool,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SelfInitOperation {
    Create,
    Read,
    #[default]
    Update,
    Patch,
    Delete,
    List,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SelfInitAuthMethod {
    #[serde(rename = "type")]
    #[schemars(length(min = 1))]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SelfInitSecretEngine {
    #[serde(rename = "type")]
    #[schemars(length(min = 1))]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct SelfInitPolicy {
    /// HCL or JSON policy rules.
    #[schemars(length(min = 1))]
    pub policy: String,
}

/// The CRDs as YAML, what `openbao-backup crd` prints.
#[cfg(test)]
/// Every object of `kind` in examples/, as users write them.
pub(crate) fn documented_examples(kind: &str) -> Vec<serde_json::Value> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut found = Vec::new();
    for file in std::fs::read_dir(dir).unwrap() {
        let path = file.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let value = serde_json::to_value(
                    <serde_yaml::Value as serde::Deserialize>::deserialize(doc).unwrap(),
                )
                .unwrap();
                if value["kind"] == kind {
                    found.push(value);
                }
            }
        }
    }
    found
}

pub fn crd_yaml() -> String {
    use kube::CustomResourceExt;
    let cluster = serde_yaml::to_string(&OpenBaoCluster::crd()).expect("the CRD serializes");
    let restore = serde_yaml::to_string(&OpenBaoRestore::crd()).expect("the CRD serializes");
    format!(
        "# Generated by `openbao-backup crd` from operator/src/api/; do not edit.\n{cluster}---\n{restore}"
    )
}

/// The CEL rule's message, and the controller's, on a plugin with both or
/// neither of `configMapRef` and `builtin`.
pub const PLUGIN_SOURCE_MESSAGE: &str = "set exactly one of configMapRef (a plugin in a ConfigMap) and builtin (one of the executor's built-in plugins)";

/// The built-ins' names, from contract's table.
fn builtin_name(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let names: Vec<&str> = contract::plugin_spec::BUILTINS
        .iter()
        .map(|b| b.name)
        .collect();
    schemars::json_schema!({
        "type": "string",
        "enum": names,
    })
}

fn free_form_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenBaoClusterStatus {
    /// The `metadata.generation` this status was written for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The OpenBao version the StatefulSet runs (once rolled out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The last upgrade (a change of `spec.version` or `spec.image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<UpgradeStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupStatus>,
    /// The last restore drill (`spec.backup.restoreTest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_test: Option<RestoreTestStatus>,
    /// `WorkloadConfigured`, `Upgraded`, `BackupConfigured`,
    /// `BackupHealthy`, and `Ready` summing them up (docs/operator.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// How delivery to each webhook of `spec.notifications` went.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<NotificationStatus>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeStatus {
    pub phase: UpgradePhase,
    pub from_version: String,
    pub to_version: String,
    /// The Job taking the pre-upgrade backup (`preUpgradeSnapshot`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_upgrade_job: Option<String>,
    /// Object key of the last pre-upgrade backup: this upgrade's once
    /// taken, until then the previous upgrade's. Retention never deletes
    /// it (the backup Jobs get it in `RETENTION_KEEP_KEYS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_upgrade_backup_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum UpgradePhase {
    /// Held back while a restore of the cluster runs.
    #[default]
    Waiting,
    /// The pre-upgrade backup Job runs; the StatefulSet is unchanged.
    BackingUp,
    /// The StatefulSet runs the new version; pods are replaced one at a
    /// time, standbys first, the active node last.
    RollingOut,
    Completed,
    /// The pre-upgrade backup failed: the upgrade did not start.
    Failed,
}

impl UpgradePhase {
    /// Restores wait while these last.
    pub fn in_progress(self) -> bool {
        matches!(self, Self::BackingUp | Self::RollingOut)
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup_time: Option<Time>,
    /// Object key of the last successful backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup_sha256: Option<String>,
    /// e.g. "12.3s".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup_duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_scheduled_backup: Option<Time>,
    #[serde(default)]
    pub consecutive_failures: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_reason: Option<String>,
    /// What retention did after the last successful backup that ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_retention: Option<RetentionStatus>,
    /// The second copies (`spec.backup.copies`) of the last successful
    /// backup, one per target: whether it was verified, and the last
    /// backup verified there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<CopyStatus>,
    /// UIDs of the finished backup Jobs already folded into this status, so
    /// that no Job is counted twice, across operator restarts too. Only Jobs
    /// that still exist are listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recorded_jobs: Vec<String>,
    /// The last value of the `openbao.org/backup-now` annotation the
    /// operator started a manual backup for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_now_handled: Option<String>,
}

/// A copy target's last copy: `lastResult` is `Verified` (read back and
/// matching the manifest's digests) or `Failed` (`lastError` says why);
/// `lastVerifiedKey` and `lastVerifiedTime` name the newest backup
/// verified there, which a restore can read from that target.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CopyStatus {
    /// Where: `s3://BUCKET`, `azure://ACCOUNT/CONTAINER` or `pvc://CLAIM`.
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verified_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verified_time: Option<Time>,
    pub last_result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// What retention did after a backup: how many backups it deleted and how
/// many deletions the host refused (with the first few of each), or why
/// it failed (the new backup stands regardless).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionStatus {
    /// The backup after which retention ran.
    pub backup_name: String,
    pub deleted_count: u64,
    /// Object keys of the first deleted backups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refused_count: u64,
    /// The first refused deletions: `<key>: <why it was kept>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn is_zero(count: &u64) -> bool {
    *count == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    #[test]
    fn documented_examples_parse_without_losing_a_field() {
        let examples = super::documented_examples("OpenBaoCluster");
        assert!(examples.len() >= 3);
        for written in examples {
            let parsed: OpenBaoCluster = serde_json::from_value(written.clone()).unwrap();
            let round_trip = serde_json::to_value(&parsed).unwrap();
            assert_subset(&written["spec"], &round_trip["spec"], "spec");
        }
    }

    fn assert_subset(written: &serde_json::Value, kept: &serde_json::Value, path: &str) {
        match written {
            serde_json::Value::Object(fields) => {
                for (name, value) in fields {
                    assert_subset(value, &kept[name], &format!("{path}.{name}"));
                }
            }
            other => assert_eq!(other, kept, "{path} was dropped or changed"),
        }
    }

    #[test]
    fn checked_in_crd_matches_the_types() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(CRD_FILE);
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == crd_yaml(),
            "{CRD_FILE} is out of date: run `cargo run -q -p openbao-backup -- crd > {CRD_FILE}`"
        );
    }

    /// A new field of the spec is classified: workload (refused with
    /// `external`) or not; and each is seen when set.
    #[test]
    fn every_spec_field_but_backup_external_and_profile_is_the_workloads() {
        let crd = serde_json::to_value(OpenBaoCluster::crd()).unwrap();
        let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        let mut properties: Vec<&str> = spec["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .filter(|p| !["backup", "external", "profile", "notifications"].contains(p))
            .collect();
        let mut workload = WORKLOAD_FIELDS.to_vec();
        properties.sort();
        workload.sort();
        assert_eq!(properties, workload);

        let everything: OpenBaoClusterSpec = serde_json::from_value(serde_json::json!({
            "replicas": 1, "version": "2.4.1", "image": "i", "storage": {}, "tls": {"secretName": "t"},
            "seal": {"static": {"secretKeyRef": {"name": "s", "key": "k"}}}, "config": {},
            "upgrade": {}, "selfInit": {}, "networkPolicy": {},
        }))
        .unwrap();
        assert_eq!(everything.workload_fields_set(), WORKLOAD_FIELDS);
        assert!(
            OpenBaoClusterSpec::default()
                .workload_fields_set()
                .is_empty()
        );
    }

    #[test]
    fn crd_is_structural_with_printer_columns() {
        let crd = serde_json::to_value(OpenBaoCluster::crd()).unwrap();
        let version = &crd["spec"]["versions"][0];
        assert_eq!(version["subresources"]["status"], serde_json::json!({}));
        let columns: Vec<&str> = version["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            columns,
            [
                "Ready",
                "Version",
                "Upgrade",
                "Last Backup",
                "Next Backup",
                "Failures",
                "Age"
            ]
        );
        let backup =
            &version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["backup"];
        assert!(
            backup["x-kubernetes-validations"][0]["rule"]
                .as_str()
                .unwrap()
                .contains("jwtAuthRole")
        );
        let part_size = &backup["properties"]["target"]["properties"]["partSize"];
        assert_eq!(part_size["minimum"].as_f64(), Some(5_242_880.0));
    }
}
