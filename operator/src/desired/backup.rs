//! The objects of a cluster's `spec.backup`: the backup and restore
//! ServiceAccounts (JWT auth), the CronJob whose Jobs run the `backup`
//! command, the NetworkPolicy of backup and restore pods, and the
//! pre-upgrade backup Job the operator creates itself.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    EnvVar, EnvVarSource, ObjectFieldSelector, PodSpec, ServiceAccount,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use super::executor_pod::{Executor, executor_job_spec, executor_pod, result_env};
use super::network::{dns, executor_pods, ip_peer, tcp, url_port};
use crate::api::{BackupSpec, ExternalSpec, OpenBaoCluster, PluginRef, Profile};
use crate::names::{
    BACKUP_NOW_ANNOTATION, JOB_NAME_LABEL, KIND_ANNOTATION, OPENBAO_PORT, backup_labels,
    backup_now_job_name, cronjob_name, selector_labels, service_account_name,
};
use crate::objects::{env_var, label_selector, owned_meta};
use crate::settings::OperatorSettings;
use contract::executor::{command, env, flag};
use contract::network::url_ip;
use contract::result::BackupKind;

fn meta(cluster: &OpenBaoCluster, name: String) -> ObjectMeta {
    owned_meta(cluster, name, backup_labels(&cluster.name_any()))
}

/// The ServiceAccount `name` (one of `service_account_names`) whose
/// projected token logs in with JWT auth; None with token auth.
pub fn service_account(
    cluster: &OpenBaoCluster,
    backup: &BackupSpec,
    name: &str,
) -> Option<ServiceAccount> {
    let annotations = backup
        .service_account
        .as_ref()
        .map(|a| a.annotations.clone())
        .filter(|a| !a.is_empty());
    if backup.jwt_auth_role.is_none() && annotations.is_none() {
        return None;
    }
    let mut metadata = meta(cluster, name.into());
    metadata.annotations = annotations;
    Some(ServiceAccount {
        metadata,
        automount_service_account_token: Some(false),
        ..Default::default()
    })
}

pub fn cronjob(
    cluster: &OpenBaoCluster,
    backup: &BackupSpec,
    settings: &OperatorSettings,
) -> CronJob {
    let name = cluster.name_any();
    let pod = backup_pod(cluster, backup, settings, BackupKind::Scheduled);
    let given = backup.cron_job.clone().unwrap_or_default();
    CronJob {
        metadata: meta(cluster, cronjob_name(&name)),
        spec: Some(CronJobSpec {
            schedule: backup.schedule.clone(),
            time_zone: given.time_zone,
            // Only a suspension is rendered: resuming leaves the field to
            // its default, and a restore's hold to its own manager.
            suspend: given.suspend.then_some(true),
            concurrency_policy: Some("Forbid".into()),
            starting_deadline_seconds: Some(given.starting_deadline_seconds.unwrap_or(300)),
            successful_jobs_history_limit: Some(given.successful_jobs_history_limit.unwrap_or(3)),
            failed_jobs_history_limit: Some(given.failed_jobs_history_limit.unwrap_or(3)),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(backup_labels(&name)),
                    ..Default::default()
                }),
                spec: Some(executor_job_spec(cluster, backup_labels(&name), pod)),
            },
        }),
        ..Default::default()
    }
}

/// The manual backup asked for by `openbao.org/backup-now=<value>`: the
/// CronJob's backup as kind `manual`, owned by the cluster, labelled as
/// the CronJob's Jobs (the status counts it).
pub fn backup_now_job(
    cluster: &OpenBaoCluster,
    backup: &BackupSpec,
    settings: &OperatorSettings,
    value: &str,
) -> Job {
    let name = cluster.name_any();
    let pod = backup_pod(cluster, backup, settings, BackupKind::Manual);
    let mut metadata = meta(cluster, backup_now_job_name(&name, value));
    metadata.annotations = Some(BTreeMap::from([
        (KIND_ANNOTATION.into(), BackupKind::Manual.as_str().into()),
        (BACKUP_NOW_ANNOTATION.into(), value.into()),
    ]));
    Job {
        metadata,
        spec: Some(executor_job_spec(cluster, backup_labels(&name), pod)),
        status: None,
    }
}

/// The pre-upgrade backup: the CronJob's backup, once, of kind
/// `pre-upgrade`, owned by the cluster.
pub fn pre_upgrade_job(
    cluster: &OpenBaoCluster,
    backup: &BackupSpec,
    settings: &OperatorSettings,
    name: &str,
) -> Job {
    let pod = backup_pod(cluster, backup, settings, BackupKind::PreUpgrade);
    let mut metadata = meta(cluster, name.into());
    metadata.annotations = Some(BTreeMap::from([(
        KIND_ANNOTATION.into(),
        BackupKind::PreUpgrade.as_str().into(),
    )]));
    Job {
        metadata,
        spec: Some(executor_job_spec(
            cluster,
            backup_labels(&cluster.name_any()),
            pod,
        )),
        status: None,
    }
}

/// The backup command with the cluster's target, retention and plugins.
fn backup_pod(
    cluster: &OpenBaoCluster,
    backup: &BackupSpec,
    settings: &OperatorSettings,
    kind: BackupKind,
) -> PodSpec {
    let mut env = vec![
        env_var(env::BACKUP_KIND, kind.as_str().into()),
        result_env(),
    ];
    if kind == BackupKind::Scheduled {
        // A Job made from the CronJob's template by hand is told apart by
        // its name (contract::executor::cronjob).
        env.push(env_var(
            env::BACKUP_CRONJOB,
            cronjob_name(&cluster.name_any()),
        ));
        env.push(EnvVar {
            name: env::BACKUP_JOB_NAME.into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    api_version: Some("v1".into()),
                    field_path: format!("metadata.labels['{JOB_NAME_LABEL}']"),
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    if let Some(retention) = &backup.retention {
        // maxCount 0 means no limit.
        if let Some(count) = retention.max_count.filter(|n| *n > 0) {
            env.push(env_var(env::RETENTION_MAX_COUNT, count.to_string()));
        }
        if let Some(age) = &retention.max_age {
            env.push(env_var(env::RETENTION_MAX_AGE, age.clone()));
        }
    }
    // The backup the last upgrade could be rolled back to is kept, whatever
    // the policy, until the next upgrade's backup replaces it.
    if let Some(key) = cluster
        .status
        .as_ref()
        .and_then(|s| s.upgrade.as_ref())
        .and_then(|u| u.pre_upgrade_backup_key.clone())
    {
        env.push(env_var(env::RETENTION_KEEP_KEYS, key));
    }
    let mut plugins: Vec<(&str, &PluginRef, String)> = backup
        .transforms
        .iter()
        .enumerate()
        .map(|(i, plugin)| (flag::TRANSFORM, plugin, format!("transform-{i}")))
        .collect();
    if let Some(plugin) = &backup.retention_plugin {
        plugins.push((flag::RETENTION_PLUGIN, plugin, "retention-plugin".into()));
    }
    let mut pod = executor_pod(
        cluster,
        settings,
        Executor {
            command: command::BACKUP,
            service_account: service_account_name(&cluster.name_any()),
            image: settings.executor_image(backup.executor_image.as_deref()),
            target: &backup.target,
            jwt_auth_role: backup.jwt_auth_role.as_deref(),
            token_secret_ref: backup.token_secret_ref.as_ref(),
            plugins,
            env,
        },
    );
    super::copies::add_to_pod(backup, &mut pod);
    pod
}

/// Backup pods may reach DNS, the cluster's OpenBao pods (an external
/// OpenBao's ports) and the storage endpoints' ports (the target's and
/// each copy's), and accept no
/// connections. Under the `Hardened` profile an endpoint given as an IP
/// address is reached at that address only.
pub fn network_policy(cluster: &OpenBaoCluster, backup: &BackupSpec) -> NetworkPolicy {
    let name = cluster.name_any();
    let openbao = match &cluster.spec.external {
        // An external OpenBao's pods (or hosts) are not ours to select:
        // its ports, to any destination.
        Some(external) => NetworkPolicyEgressRule {
            to: None,
            ports: Some(openbao_ports(external).map(tcp).collect()),
        },
        None => NetworkPolicyEgressRule {
            to: Some(vec![NetworkPolicyPeer {
                pod_selector: Some(label_selector(selector_labels(&name))),
                ..Default::default()
            }]),
            ports: Some(vec![tcp(OPENBAO_PORT)]),
        },
    };
    // The endpoint's addresses are not known in advance (DNS, load
    // balancers): restrict by port, to any destination, unless Hardened
    // and the endpoint is an address.
    let hardened = cluster.spec.profile() == Profile::Hardened;
    let storage = NetworkPolicyEgressRule {
        to: backup
            .target
            .storage_endpoint()
            .filter(|_| hardened)
            .and_then(url_ip)
            .map(|ip| vec![ip_peer(ip)]),
        ports: Some(vec![tcp(endpoint_port(backup))]),
    };
    NetworkPolicy {
        metadata: meta(cluster, cronjob_name(&name)),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(executor_pods(&name)),
            // Ingress listed with no rules: nothing may connect. (An empty
            // rule list would not survive storage, and re-applying it would
            // change the object every time.)
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            egress: Some(
                [dns(), openbao, storage]
                    .into_iter()
                    .chain(super::copies::egress(backup, hardened))
                    .collect(),
            ),
            ingress: None,
        }),
    }
}

/// The storage endpoint's port: explicit, or 443 for https (and AWS), 80
/// for http.
pub(super) fn endpoint_port(backup: &BackupSpec) -> i32 {
    backup.target.storage_endpoint().map_or(443, url_port)
}

/// The distinct ports of an external OpenBao's addresses (or Service).
fn openbao_ports(external: &ExternalSpec) -> impl Iterator<Item = i32> {
    let mut ports: Vec<i32> = match &external.service {
        Some(service) if external.addresses.is_empty() => vec![service.port().into()],
        _ => external.addresses.iter().map(|a| url_port(a)).collect(),
    };
    ports.sort_unstable();
    ports.dedup();
    ports.into_iter()
}
