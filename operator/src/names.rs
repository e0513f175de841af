//! The ground floor of names: the labels, annotations, ports and object
//! names the builders, the reconcilers and the watches agree on. Plain
//! functions of a cluster's name; this module imports nothing of the crate.

use std::collections::BTreeMap;

/// Field manager of the operator's server-side applies, and the
/// `managed-by` label of everything it makes (its watches select on it).
pub const MANAGER: &str = "openbao-backup-operator";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Leads from a backup Job back to its cluster.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// `backup` or `restore`.
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";

/// The kind of a backup Job the operator made itself (pre-upgrade).
pub const KIND_ANNOTATION: &str = "openbao.org/backup-kind";
/// On a cluster: a new value asks for a manual backup, once per value.
pub const BACKUP_NOW_ANNOTATION: &str = "openbao.org/backup-now";
/// The label the Job API gives a Job's pods (the Downward API reads it).
pub const JOB_NAME_LABEL: &str = "job-name";
/// The version a StatefulSet runs, on the StatefulSet.
pub const VERSION_ANNOTATION: &str = "openbao.org/version";
/// On every object the operator applies: a hash of what it last applied,
/// so that an apply that would change nothing is not sent.
pub const APPLIED_ANNOTATION: &str = "openbao.org/applied-hash";

pub const OPENBAO_PORT: i32 = 8200;
pub const OPENBAO_CLUSTER_PORT: i32 = 8201;
/// The container's name in the StatefulSet's pods.
pub const OPENBAO_CONTAINER: &str = "openbao";

pub fn cronjob_name(cluster: &str) -> String {
    format!("{cluster}-backup")
}

/// The manual backup Job asked for by `openbao.org/backup-now=<value>`:
/// one name per value (a short digest of it), at most 63 characters (the
/// `job-name` label's limit), never a name the CronJob controller gives.
pub fn backup_now_job_name(cluster: &str, value: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(value.as_bytes());
    let hex: String = digest[..5].iter().map(|b| format!("{b:02x}")).collect();
    let cronjob = cronjob_name(cluster);
    let prefix: String = cronjob
        .chars()
        .take(63 - "-now-".len() - hex.len())
        .collect();
    format!("{prefix}-now-{hex}")
}

pub fn service_account_name(cluster: &str) -> String {
    format!("{cluster}-backup-serviceaccount")
}

/// Restore Jobs log in to OpenBao as their own ServiceAccount, so that the
/// role that may restore is bound to an identity backups never carry.
pub fn restore_service_account_name(cluster: &str) -> String {
    format!("{cluster}-restore-serviceaccount")
}

/// The backup and the restore ServiceAccounts' names.
pub fn service_account_names(cluster: &str) -> [String; 2] {
    [
        service_account_name(cluster),
        restore_service_account_name(cluster),
    ]
}

pub fn restore_job_name(restore: &str) -> String {
    format!("{restore}-restore")
}

pub fn internal_service_name(cluster: &str) -> String {
    format!("{cluster}-internal")
}

pub fn config_map_name(cluster: &str) -> String {
    format!("{cluster}-config")
}

/// The Role and RoleBinding of OpenBao's service registration.
pub fn service_registration_name(cluster: &str) -> String {
    format!("{cluster}-service-registration")
}

/// One node's API address, as its peers and backup Jobs reach it.
pub fn peer_addr(cluster: &str, namespace: &str, ordinal: u32) -> String {
    format!(
        "https://{cluster}-{ordinal}.{}.{namespace}.svc:{OPENBAO_PORT}",
        internal_service_name(cluster)
    )
}

/// Every node's address, comma-separated (the executor's `OPENBAO_ADDR`).
pub fn openbao_addrs(cluster: &str, namespace: &str, replicas: u32) -> String {
    (0..replicas)
        .map(|i| peer_addr(cluster, namespace, i))
        .collect::<Vec<_>>()
        .join(",")
}

/// Labels of everything created for a cluster's backups; the pod selector
/// of the NetworkPolicy.
pub fn backup_labels(cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "openbao".into()),
        (INSTANCE_LABEL.into(), cluster.into()),
        (COMPONENT_LABEL.into(), "backup".into()),
        (MANAGED_BY_LABEL.into(), MANAGER.into()),
    ])
}

/// Labels of a restore's Job and pod: the cluster's, as component
/// `restore` (the NetworkPolicy selects them; backup Job watches do not).
pub fn restore_labels(cluster: &str) -> BTreeMap<String, String> {
    let mut labels = backup_labels(cluster);
    labels.insert(COMPONENT_LABEL.into(), "restore".into());
    labels
}

/// The selector of the cluster's OpenBao pods (fixed for the
/// StatefulSet's life).
pub fn selector_labels(cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "openbao".into()),
        (INSTANCE_LABEL.into(), cluster.into()),
        (COMPONENT_LABEL.into(), "server".into()),
    ])
}

/// Labels of the OpenBao workload's objects and pods.
pub fn openbao_labels(cluster: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(cluster);
    labels.insert(MANAGED_BY_LABEL.into(), MANAGER.into());
    labels
}
