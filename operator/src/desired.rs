//! The objects the operator wants for a cluster with `spec.backup`: the
//! backup ServiceAccount (JWT auth), the CronJob whose Jobs run the
//! `backup` command, and a NetworkPolicy for their pods; and the Jobs it
//! creates itself: a pre-upgrade backup, a restore. Pure functions of the
//! resource and the operator's settings.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, EnvVar, KeyToPath, PodSecurityContext, PodSpec,
    PodTemplateSpec, ProjectedVolumeSource, ResourceRequirements, SeccompProfile,
    SecretVolumeSource, SecurityContext, ServiceAccount, ServiceAccountTokenProjection, Volume,
    VolumeMount, VolumeProjection,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};

use crate::api::{BackupSpec, BackupTarget, LocalRef, OpenBaoCluster, OpenBaoRestore, PluginRef};
use crate::workload::{self, OPENBAO_PORT, openbao_addrs};
use contract::executor::paths::{
    JWT_FILE, MANIFEST_KEY_DIR, OPENBAO_CA_DIR, PLUGIN_DIR, PLUGIN_SECRET_DIR,
    S3_CREDENTIALS_DIR as S3_CREDENTIALS_DIR_PATH, TERMINATION_LOG, TOKEN_DIR,
};
use contract::executor::{command, env, flag};
use contract::plugin_spec::PluginSpec;
use contract::result::BackupKind;

/// Settings of the operator itself (from its environment).
#[derive(Debug, Clone)]
pub struct OperatorSettings {
    /// Audience of the backup pods' projected tokens (`OPENBAO_JWT_AUDIENCE`).
    pub jwt_audience: String,
    /// The images backup and restore Jobs may run (`EXECUTOR_IMAGES`): a
    /// cluster's author picks the image, and it runs with the Secrets the
    /// spec names. See `validate::image_allowed`.
    pub executor_images: Vec<String>,
}

/// `EXECUTOR_IMAGES` when unset: the project's own executor.
pub const DEFAULT_EXECUTOR_IMAGES: &str =
    "openbao/backup-executor,docker.io/openbao/backup-executor";

/// The allow-list from `EXECUTOR_IMAGES` (comma-separated).
pub fn executor_images(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(str::to_string)
        .collect()
}

/// Memory each plugin instance of a backup Job may use.
const PLUGIN_MEMORY_MIB: u64 = 128;
/// The kind of a backup Job the operator made itself (pre-upgrade).
pub const KIND_ANNOTATION: &str = "openbao.org/backup-kind";
/// The executor image runs as this unprivileged user.
const RUN_AS: i64 = 65532;

pub fn cronjob_name(cluster: &str) -> String {
    format!("{cluster}-backup")
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

/// Field manager of the operator's server-side applies, and the
/// `managed-by` label of everything it makes (its watches select on it).
pub const MANAGER: &str = "openbao-backup-operator";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Leads from a backup Job back to its cluster.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// `backup` or `restore`.
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";

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

fn meta(cluster: &OpenBaoCluster, name: String) -> ObjectMeta {
    owned_meta(cluster, name, backup_labels(&cluster.name_any()))
}

/// An object of the cluster's namespace, controlled by the cluster.
pub(super) fn owned_meta(
    cluster: &OpenBaoCluster,
    name: String,
    labels: BTreeMap<String, String>,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: cluster.namespace(),
        labels: Some(labels),
        owner_references: cluster.controller_owner_ref(&()).map(|r| vec![r]),
        ..Default::default()
    }
}

/// The ServiceAccount `name` (one of `service_account_names`) whose
/// projected token logs in with JWT auth; None with token auth.
pub fn service_account(
    cluster: &OpenBaoCluster,
    backup: &BackupSpec,
    name: &str,
) -> Option<ServiceAccount> {
    backup.jwt_auth_role.as_ref()?;
    Some(ServiceAccount {
        metadata: meta(cluster, name.into()),
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
    CronJob {
        metadata: meta(cluster, cronjob_name(&name)),
        spec: Some(CronJobSpec {
            schedule: backup.schedule.clone(),
            concurrency_policy: Some("Forbid".into()),
            starting_deadline_seconds: Some(300),
            successful_jobs_history_limit: Some(3),
            failed_jobs_history_limit: Some(3),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(backup_labels(&name)),
                    ..Default::default()
                }),
                spec: Some(executor_job_spec(backup_labels(&name), pod)),
            },
            ..Default::default()
        }),
        ..Default::default()
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
        spec: Some(executor_job_spec(backup_labels(&cluster.name_any()), pod)),
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
        env_var(env::RESULT_FILE, TERMINATION_LOG.into()),
    ];
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
    executor_pod(
        cluster,
        settings,
        Executor {
            command: command::BACKUP,
            service_account: service_account_name(&cluster.name_any()),
            image: &backup.executor_image,
            target: &backup.target,
            jwt_auth_role: backup.jwt_auth_role.as_deref(),
            token_secret_ref: backup.token_secret_ref.as_ref(),
            plugins,
            env,
        },
    )
}

pub fn restore_job_name(restore: &str) -> String {
    format!("{restore}-restore")
}

/// Labels of a restore's Job and pod: the cluster's, as component
/// `restore` (the NetworkPolicy selects them; backup Job watches do not).
pub fn restore_labels(cluster: &str) -> BTreeMap<String, String> {
    let mut labels = backup_labels(cluster);
    labels.insert(COMPONENT_LABEL.into(), "restore".into());
    labels
}

/// The Job that runs `restore` for an OpenBaoRestore (validated first,
/// `validate::restore`): its source, auth and plugins, or the cluster's
/// backup settings where it names none.
pub fn restore_job(
    restore: &OpenBaoRestore,
    cluster: &OpenBaoCluster,
    settings: &OperatorSettings,
) -> Job {
    let spec = &restore.spec;
    let backup = cluster.spec.backup.clone().unwrap_or_default();
    let target = spec.source.as_ref().unwrap_or(&backup.target);
    let image = spec
        .executor_image
        .as_deref()
        .unwrap_or(&backup.executor_image);
    let plugins = spec.plugins.as_ref().unwrap_or(&backup.transforms);
    let env = vec![
        env_var(env::BACKUP_KEY, spec.key.clone()),
        env_var(env::RESTORE_FORCE, spec.force.to_string()),
        env_var(env::RESULT_FILE, TERMINATION_LOG.into()),
    ];
    let pod = executor_pod(
        cluster,
        settings,
        Executor {
            command: command::RESTORE,
            service_account: restore_service_account_name(&cluster.name_any()),
            image,
            target,
            jwt_auth_role: spec.jwt_auth_role.as_deref(),
            token_secret_ref: spec.token_secret_ref.as_ref(),
            plugins: plugins
                .iter()
                .enumerate()
                .map(|(i, plugin)| (flag::PLUGIN, plugin, format!("plugin-{i}")))
                .collect(),
            env,
        },
    );
    let labels = restore_labels(&cluster.name_any());
    Job {
        metadata: ObjectMeta {
            name: Some(restore_job_name(&restore.name_any())),
            namespace: restore.namespace(),
            labels: Some(labels.clone()),
            owner_references: restore.controller_owner_ref(&()).map(|r| vec![r]),
            ..Default::default()
        },
        spec: Some(executor_job_spec(labels, pod)),
        status: None,
    }
}

/// One attempt per Job: the executor retries what is transient, and a
/// failure is reported, not hidden.
fn executor_job_spec(labels: BTreeMap<String, String>, pod: PodSpec) -> JobSpec {
    JobSpec {
        backoff_limit: Some(0),
        active_deadline_seconds: Some(6 * 3600),
        template: PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(labels),
                ..Default::default()
            }),
            spec: Some(pod),
        },
        ..Default::default()
    }
}

/// What differs between a backup pod and a restore pod.
struct Executor<'a> {
    command: &'static str,
    /// The ServiceAccount that logs in with JWT auth.
    service_account: String,
    image: &'a str,
    target: &'a BackupTarget,
    jwt_auth_role: Option<&'a str>,
    token_secret_ref: Option<&'a LocalRef>,
    /// Each plugin's flag, reference and volume name.
    plugins: Vec<(&'a str, &'a PluginRef, String)>,
    /// The command's own settings.
    env: Vec<EnvVar>,
}

/// A hardened executor pod: the cluster's addresses, the storage target,
/// OpenBao auth (a projected token for the backup ServiceAccount, or a
/// token Secret), and the plugins as files.
fn executor_pod(
    cluster: &OpenBaoCluster,
    settings: &OperatorSettings,
    executor: Executor<'_>,
) -> PodSpec {
    let name = cluster.name_any();
    let namespace = cluster.namespace().unwrap_or_default();
    let target = executor.target;
    let mut env = vec![
        env_var(
            env::OPENBAO_ADDR,
            openbao_addrs(&name, &namespace, cluster.spec.replicas()),
        ),
        env_var(env::OPENBAO_CLUSTER, name.clone()),
        env_var(env::OPENBAO_NAMESPACE, namespace.clone()),
        env_var(env::LOG_FORMAT, "json".into()),
        env_var(env::S3_BUCKET, target.bucket.clone()),
        env_var(env::S3_PART_SIZE, target.part_size().to_string()),
        env_var(env::S3_CONCURRENCY, target.concurrency().to_string()),
    ];
    let optional = [
        (env::S3_ENDPOINT, &target.endpoint),
        (env::S3_REGION, &target.region),
        (env::S3_PATH_PREFIX, &target.path_prefix),
    ];
    env.extend(
        optional
            .into_iter()
            .filter_map(|(k, v)| v.clone().map(|v| env_var(k, v))),
    );
    env.extend(executor.env);

    // OpenBao's CA, from the cluster's TLS Secret.
    env.push(env_var(
        env::OPENBAO_CACERT,
        format!("{OPENBAO_CA_DIR}/ca.crt"),
    ));
    let mut volumes = vec![secret_key_volume(
        "openbao-ca",
        &cluster.spec.tls_secret(&name),
        "ca.crt",
        "ca.crt",
    )];
    let mut mounts = vec![mount("openbao-ca", OPENBAO_CA_DIR)];
    // Backups sign their manifests and restores check them with the
    // cluster's key, wherever the restore reads from.
    let manifest_key = cluster
        .spec
        .backup
        .as_ref()
        .and_then(|b| b.manifest_key_secret_ref.as_ref());
    if let Some(key) = manifest_key {
        env.push(env_var(
            env::MANIFEST_KEY_FILE,
            format!("{MANIFEST_KEY_DIR}/key"),
        ));
        volumes.push(secret_key_volume(
            "manifest-key",
            &key.name,
            &key.key,
            "key",
        ));
        mounts.push(mount("manifest-key", MANIFEST_KEY_DIR));
    }
    if let Some(secret) = &target.credentials_secret_ref {
        env.push(env_var(
            env::S3_CREDENTIALS_DIR,
            S3_CREDENTIALS_DIR_PATH.into(),
        ));
        volumes.push(Volume {
            name: "s3-credentials".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.name.clone()),
                ..Default::default()
            }),
            ..Default::default()
        });
        mounts.push(mount("s3-credentials", S3_CREDENTIALS_DIR_PATH));
    }
    let jwt_dir = JWT_FILE
        .rsplit_once('/')
        .map(|(dir, _)| dir)
        .expect("a path");
    let service_account = match (executor.jwt_auth_role, executor.token_secret_ref) {
        (Some(role), _) => {
            env.push(env_var(env::OPENBAO_JWT_ROLE, role.into()));
            env.push(env_var(
                env::OPENBAO_JWT_AUDIENCE,
                settings.jwt_audience.clone(),
            ));
            volumes.push(Volume {
                name: "openbao-jwt".into(),
                projected: Some(ProjectedVolumeSource {
                    sources: Some(vec![VolumeProjection {
                        service_account_token: Some(ServiceAccountTokenProjection {
                            audience: Some(settings.jwt_audience.clone()),
                            expiration_seconds: Some(600),
                            path: "token".into(),
                        }),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                ..Default::default()
            });
            mounts.push(mount("openbao-jwt", jwt_dir));
            Some(executor.service_account.clone())
        }
        (None, Some(secret)) => {
            env.push(env_var(
                env::OPENBAO_TOKEN_FILE,
                format!("{TOKEN_DIR}/token"),
            ));
            volumes.push(secret_key_volume(
                "openbao-token",
                &secret.name,
                "token",
                "token",
            ));
            mounts.push(mount("openbao-token", TOKEN_DIR));
            None
        }
        (None, None) => None,
    };

    let mut args = vec![executor.command.to_string()];
    let transforms = executor
        .plugins
        .iter()
        .filter(|(name, _, _)| *name != flag::RETENTION_PLUGIN)
        .count();
    for (name, plugin, volume) in &executor.plugins {
        let spec = plugin_spec(plugin, volume, &mut volumes, &mut mounts);
        args.extend([format!("--{name}"), spec.to_string()]);
    }
    if !executor.plugins.is_empty() {
        env.push(env_var(
            env::PLUGIN_MEMORY_LIMIT,
            format!("{PLUGIN_MEMORY_MIB}MiB"),
        ));
    }

    let container = Container {
        name: executor.command.into(),
        image: Some(executor.image.into()),
        args: Some(args),
        env: Some(env),
        volume_mounts: Some(mounts),
        resources: Some(resources(
            target.part_size(),
            target.concurrency(),
            transforms,
        )),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        security_context: Some(hardened()),
        ..Default::default()
    };
    PodSpec {
        restart_policy: Some("Never".into()),
        service_account_name: service_account,
        automount_service_account_token: Some(false),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS),
            run_as_group: Some(RUN_AS),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        containers: vec![container],
        volumes: Some(volumes),
        ..Default::default()
    }
}

/// A plugin from a ConfigMap as the executor's spec, with the volumes that
/// put its file and secret settings where the spec says.
fn plugin_spec(
    plugin: &PluginRef,
    volume: &str,
    volumes: &mut Vec<Volume>,
    mounts: &mut Vec<VolumeMount>,
) -> PluginSpec {
    let dir = format!("{PLUGIN_DIR}/{volume}");
    volumes.push(Volume {
        name: volume.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: plugin.config_map_ref.name.clone(),
            items: Some(vec![KeyToPath {
                key: plugin.config_map_ref.key.clone(),
                path: "plugin.wasm".into(),
                mode: None,
            }]),
            ..Default::default()
        }),
        ..Default::default()
    });
    mounts.push(mount(volume, &dir));
    let mut secret_files = BTreeMap::new();
    for (j, setting) in plugin.secret_config.iter().enumerate() {
        let name = format!("{volume}-secret-{j}");
        let secret_dir = format!("{PLUGIN_SECRET_DIR}/{name}");
        volumes.push(secret_key_volume(
            &name,
            &setting.secret_key_ref.name,
            &setting.secret_key_ref.key,
            "value",
        ));
        mounts.push(mount(&name, &secret_dir));
        secret_files.insert(setting.name.clone(), format!("{secret_dir}/value").into());
    }
    PluginSpec {
        file: format!("{dir}/plugin.wasm").into(),
        sha256: plugin.sha256.clone(),
        config: plugin.config.clone().unwrap_or_default(),
        secret_files,
    }
}

/// Memory: the parts in flight and being filled, a margin, and each
/// transform plugin's instance (capped by PLUGIN_MEMORY_LIMIT; it rarely
/// needs a quarter of it). The limit is half again the request: the
/// measured peak is about the parts plus 20-25 MiB, and TLS buffers and
/// allocator slack on a real node need room above it (tested in
/// tests/backup.rs). Snapshots whose parts grow (over 5,000 parts) need
/// more: see README "Memory and speed".
pub fn resources(part_size: u64, concurrency: u16, transforms: usize) -> ResourceRequirements {
    const MIB: u64 = 1024 * 1024;
    let buffers = (u64::from(concurrency) + 1) * part_size + 32 * MIB;
    let plugins = transforms as u64 * PLUGIN_MEMORY_MIB * MIB;
    let request = buffers + plugins / 4;
    let limit = buffers + buffers / 2 + plugins;
    let mib = |bytes: u64| Quantity(format!("{}Mi", bytes.div_ceil(MIB)));
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".into(), Quantity("100m".into())),
            ("memory".into(), mib(request)),
        ])),
        limits: Some(BTreeMap::from([("memory".into(), mib(limit))])),
        ..Default::default()
    }
}

/// Backup pods may reach DNS, the cluster's OpenBao pods and the storage
/// endpoint's port, and accept no connections.
pub fn network_policy(cluster: &OpenBaoCluster, backup: &BackupSpec) -> NetworkPolicy {
    let name = cluster.name_any();
    let port = |protocol: &str, port: i32| NetworkPolicyPort {
        protocol: Some(protocol.into()),
        port: Some(IntOrString::Int(port)),
        ..Default::default()
    };
    let dns = NetworkPolicyEgressRule {
        to: Some(vec![NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector::default()),
            ..Default::default()
        }]),
        ports: Some(vec![port("UDP", 53), port("TCP", 53)]),
    };
    let openbao = NetworkPolicyEgressRule {
        to: Some(vec![NetworkPolicyPeer {
            pod_selector: Some(LabelSelector {
                match_labels: Some(workload::selector_labels(&name)),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        ports: Some(vec![port("TCP", OPENBAO_PORT)]),
    };
    // The endpoint's addresses are not known in advance (DNS, load
    // balancers): restrict by port, to any destination.
    let storage = NetworkPolicyEgressRule {
        to: None,
        ports: Some(vec![port("TCP", endpoint_port(backup))]),
    };
    NetworkPolicy {
        metadata: meta(cluster, cronjob_name(&name)),
        spec: Some(NetworkPolicySpec {
            // Backup and restore pods alike.
            pod_selector: Some(LabelSelector {
                match_labels: Some(
                    backup_labels(&name)
                        .into_iter()
                        .filter(|(key, _)| key != COMPONENT_LABEL)
                        .collect(),
                ),
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: COMPONENT_LABEL.into(),
                    operator: "In".into(),
                    values: Some(vec!["backup".into(), "restore".into()]),
                }]),
            }),
            // Ingress listed with no rules: nothing may connect. (An empty
            // rule list would not survive storage, and re-applying it would
            // change the object every time.)
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            egress: Some(vec![dns, openbao, storage]),
            ingress: None,
        }),
    }
}

/// The storage endpoint's port: explicit, or 443 for https (and AWS), 80
/// for http.
fn endpoint_port(backup: &BackupSpec) -> i32 {
    let Some(endpoint) = &backup.target.endpoint else {
        return 443;
    };
    let (scheme, rest) = endpoint.split_once("://").unwrap_or(("https", endpoint));
    let authority = rest.split('/').next().unwrap_or_default();
    match authority.rsplit_once(':').and_then(|(_, p)| p.parse().ok()) {
        Some(port) => port,
        None if scheme == "http" => 80,
        None => 443,
    }
}

/// A volume holding one key of a Secret as the file `path`.
fn secret_key_volume(volume: &str, secret: &str, key: &str, path: &str) -> Volume {
    Volume {
        name: volume.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.into()),
            items: Some(vec![KeyToPath {
                key: key.into(),
                path: path.into(),
                mode: None,
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A container that runs as non-root on a read-only root filesystem,
/// without privilege escalation or capabilities (executors and OpenBao).
pub(super) fn hardened() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(super) fn env_var(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value),
        ..Default::default()
    }
}

fn mount(volume: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: volume.into(),
        mount_path: path.into(),
        read_only: Some(true),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{BackupTarget, LocalRef, OpenBaoClusterSpec};

    fn cluster(backup: BackupSpec) -> OpenBaoCluster {
        let mut cluster = OpenBaoCluster::new(
            "bao",
            OpenBaoClusterSpec {
                backup: Some(backup),
                ..Default::default()
            },
        );
        cluster.metadata.namespace = Some("prod".into());
        cluster.metadata.uid = Some("uid-1".into());
        cluster
    }

    fn jwt_backup() -> BackupSpec {
        BackupSpec {
            schedule: "0 3 * * *".into(),
            executor_image: "openbao/backup-executor:v0.1.0".into(),
            jwt_auth_role: Some("backup".into()),
            target: BackupTarget {
                endpoint: Some("https://s3.amazonaws.com".into()),
                bucket: "openbao-backups".into(),
                region: Some("us-east-1".into()),
                path_prefix: Some("clusters/bao".into()),
                credentials_secret_ref: Some(LocalRef {
                    name: "s3-credentials".into(),
                }),
                part_size: Some(20 * 1024 * 1024),
                concurrency: Some(5),
            },
            ..Default::default()
        }
    }

    fn settings() -> OperatorSettings {
        OperatorSettings {
            executor_images: executor_images(DEFAULT_EXECUTOR_IMAGES),
            jwt_audience: "openbao-internal".into(),
        }
    }

    fn pod(cronjob: &CronJob) -> PodSpec {
        let job = cronjob
            .spec
            .as_ref()
            .unwrap()
            .job_template
            .spec
            .as_ref()
            .unwrap();
        job.template.spec.clone().unwrap()
    }

    fn env(pod: &PodSpec) -> BTreeMap<String, String> {
        let container = &pod.containers[0];
        container
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
            .collect()
    }

    #[test]
    fn cronjob_runs_the_backup_command_with_the_target() {
        let backup = jwt_backup();
        let cluster = cluster(backup.clone());
        let cronjob = cronjob(&cluster, &backup, &settings());
        assert_eq!(cronjob.metadata.name.as_deref(), Some("bao-backup"));
        let spec = cronjob.spec.as_ref().unwrap();
        assert_eq!(spec.schedule, "0 3 * * *");
        assert_eq!(spec.concurrency_policy.as_deref(), Some("Forbid"));
        let owner = &cronjob.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("OpenBaoCluster", Some(true))
        );

        let pod = pod(&cronjob);
        assert_eq!(pod.containers[0].args, Some(vec!["backup".to_string()]));
        let env = env(&pod);
        assert_eq!(env["S3_PART_SIZE"], "20971520");
        assert_eq!(env["S3_CONCURRENCY"], "5");
        assert_eq!(env["S3_ENDPOINT"], "https://s3.amazonaws.com");
        assert_eq!(env["S3_CREDENTIALS_DIR"], S3_CREDENTIALS_DIR_PATH);
        assert_eq!(env["RESULT_FILE"], "/dev/termination-log");
        assert_eq!(env["OPENBAO_JWT_ROLE"], "backup");
        assert_eq!(
            env["OPENBAO_ADDR"],
            "https://bao-0.bao-internal.prod.svc:8200,https://bao-1.bao-internal.prod.svc:8200,https://bao-2.bao-internal.prod.svc:8200"
        );
        assert!(!env.contains_key("OPENBAO_TOKEN_FILE"));
        assert!(
            !env.contains_key("RETENTION_MAX_COUNT"),
            "nothing deleted unless asked"
        );
    }

    #[test]
    fn retention_reaches_the_backup_command() {
        let mut backup = jwt_backup();
        backup.retention = Some(crate::api::RetentionSpec {
            max_count: Some(7),
            max_age: Some("168h".into()),
        });
        let vars = env(&pod(&cronjob(
            &cluster(backup.clone()),
            &backup,
            &settings(),
        )));
        assert_eq!(vars["RETENTION_MAX_COUNT"], "7");
        assert_eq!(vars["RETENTION_MAX_AGE"], "168h");
        // maxCount 0 means no limit.
        backup.retention = Some(crate::api::RetentionSpec {
            max_count: Some(0),
            max_age: None,
        });
        let vars = env(&pod(&cronjob(
            &cluster(backup.clone()),
            &backup,
            &settings(),
        )));
        assert!(!vars.contains_key("RETENTION_MAX_COUNT"));
    }

    #[test]
    fn the_last_pre_upgrade_backup_is_kept_by_every_backup_job() {
        let backup = jwt_backup();
        let mut cluster = cluster(backup.clone());
        let vars = env(&pod(&cronjob(&cluster, &backup, &settings())));
        assert!(!vars.contains_key("RETENTION_KEEP_KEYS"));

        let key = "prod/bao/20261122T030000.000Z-pre-upgrade-aaaaaa.snap";
        cluster.status = Some(crate::api::OpenBaoClusterStatus {
            upgrade: Some(crate::api::UpgradeStatus {
                pre_upgrade_backup_key: Some(key.into()),
                ..Default::default()
            }),
            ..Default::default()
        });
        let scheduled = env(&pod(&cronjob(&cluster, &backup, &settings())));
        assert_eq!(scheduled["RETENTION_KEEP_KEYS"], key);
        let job = pre_upgrade_job(&cluster, &backup, &settings(), "bao-pre-upgrade-1");
        let pre_upgrade = env(job.spec.unwrap().template.spec.as_ref().unwrap());
        assert_eq!(pre_upgrade["RETENTION_KEEP_KEYS"], key);
    }

    #[test]
    fn jwt_auth_uses_a_projected_token_with_the_operator_audience() {
        let backup = jwt_backup();
        let cluster = cluster(backup.clone());
        let pod = pod(&cronjob(&cluster, &backup, &settings()));
        assert_eq!(
            pod.service_account_name.as_deref(),
            Some("bao-backup-serviceaccount")
        );
        let projected = pod
            .volumes
            .iter()
            .flatten()
            .find_map(|v| v.projected.clone())
            .unwrap();
        let token = projected.sources.unwrap()[0]
            .service_account_token
            .clone()
            .unwrap();
        assert_eq!(token.audience.as_deref(), Some("openbao-internal"));
        let mount = pod.containers[0]
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == "openbao-jwt")
            .unwrap();
        assert_eq!(format!("{}/{}", mount.mount_path, token.path), JWT_FILE);
        assert!(service_account(&cluster, &backup, "bao-backup-serviceaccount").is_some());
    }

    #[test]
    fn token_auth_mounts_the_secret_and_needs_no_service_account() {
        let backup = BackupSpec {
            jwt_auth_role: None,
            token_secret_ref: Some(LocalRef {
                name: "backup-token".into(),
            }),
            ..jwt_backup()
        };
        let cluster = cluster(backup.clone());
        let pod = pod(&cronjob(&cluster, &backup, &settings()));
        assert_eq!(
            env(&pod)["OPENBAO_TOKEN_FILE"],
            "/var/run/secrets/openbao-backup/token/token"
        );
        assert_eq!(pod.service_account_name, None);
        assert!(service_account(&cluster, &backup, "bao-backup-serviceaccount").is_none());
        let secret = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == "openbao-token")
            .and_then(|v| v.secret.clone())
            .unwrap();
        assert_eq!(secret.secret_name.as_deref(), Some("backup-token"));
        // OpenBao's CA comes from the cluster's TLS Secret.
        assert_eq!(
            env(&pod)["OPENBAO_CACERT"],
            "/var/run/secrets/openbao-backup/openbao-ca/ca.crt"
        );
        let ca = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == "openbao-ca");
        assert_eq!(
            ca.and_then(|v| v.secret.as_ref()?.secret_name.clone())
                .as_deref(),
            Some("bao-tls")
        );
    }

    #[test]
    fn pods_are_hardened() {
        let backup = jwt_backup();
        let pod = pod(&cronjob(&cluster(backup.clone()), &backup, &settings()));
        assert_eq!(pod.automount_service_account_token, Some(false));
        let pod_security = pod.security_context.unwrap();
        assert_eq!(pod_security.run_as_non_root, Some(true));
        assert_eq!(
            pod_security.seccomp_profile.unwrap().type_,
            "RuntimeDefault"
        );
        let security = pod.containers[0].security_context.clone().unwrap();
        assert_eq!(security.allow_privilege_escalation, Some(false));
        assert_eq!(security.read_only_root_filesystem, Some(true));
        assert_eq!(
            security.capabilities.unwrap().drop,
            Some(vec!["ALL".to_string()])
        );
        assert!(
            pod.containers[0]
                .volume_mounts
                .iter()
                .flatten()
                .all(|m| m.read_only == Some(true))
        );
    }

    #[test]
    fn memory_follows_part_size_and_concurrency() {
        // 20 MiB parts x (5 + 1) + 32 MiB.
        let requests = resources(20 * 1024 * 1024, 5, 0).requests.unwrap();
        assert_eq!(requests["memory"], Quantity("152Mi".into()));
        let defaults = resources(10 * 1024 * 1024, 3, 0);
        assert_eq!(
            defaults.requests.unwrap()["memory"],
            Quantity("72Mi".into())
        );
        assert_eq!(defaults.limits.unwrap()["memory"], Quantity("108Mi".into()));
    }

    #[test]
    fn plugins_come_from_config_maps_and_secrets_as_files() {
        let mut backup = jwt_backup();
        let plugin = |map: &str, key: &str| PluginRef {
            config_map_ref: crate::api::ConfigMapKeyRef {
                name: map.into(),
                key: key.into(),
            },
            ..Default::default()
        };
        backup.transforms = vec![
            PluginRef {
                sha256: Some("ab".repeat(32)),
                config: Some(serde_json::json!({"level": 3}).as_object().unwrap().clone()),
                ..plugin("zstd-plugin", "zstd.wasm")
            },
            PluginRef {
                config: Some(
                    serde_json::json!({"recipients": ["age1x"]})
                        .as_object()
                        .unwrap()
                        .clone(),
                ),
                secret_config: vec![crate::api::SecretConfig {
                    name: "identities".into(),
                    secret_key_ref: crate::api::SecretKeyRef {
                        name: "backup-age".into(),
                        key: "key.txt".into(),
                    },
                }],
                ..plugin("age-plugin", "age.wasm")
            },
        ];
        backup.retention_plugin = Some(plugin("gfs-plugin", "gfs.wasm"));
        let pod = pod(&cronjob(&cluster(backup.clone()), &backup, &settings()));
        let args = pod.containers[0].args.clone().unwrap();
        assert_eq!(args[0], "backup");
        let flags: Vec<&str> = args.iter().skip(1).step_by(2).map(String::as_str).collect();
        assert_eq!(flags, ["--transform", "--transform", "--retention-plugin"]);
        let specs: Vec<PluginSpec> = args
            .iter()
            .skip(2)
            .step_by(2)
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(
            specs[0],
            PluginSpec {
                file: "/var/run/openbao-backup/plugins/transform-0/plugin.wasm".into(),
                sha256: Some("ab".repeat(32)),
                config: backup.transforms[0].config.clone().unwrap(),
                secret_files: BTreeMap::new(),
            }
        );
        let identity = "/var/run/secrets/openbao-backup/plugins/transform-1-secret-0/value";
        assert_eq!(
            specs[1].secret_files["identities"],
            std::path::PathBuf::from(identity)
        );
        assert_eq!(
            specs[2].file,
            std::path::PathBuf::from(
                "/var/run/openbao-backup/plugins/retention-plugin/plugin.wasm"
            )
        );

        // Each path in a spec is where a volume puts the right key.
        let volumes = pod.volumes.clone().unwrap();
        let mounts = pod.containers[0].volume_mounts.clone().unwrap();
        let source = |path: &str| {
            let mount = mounts
                .iter()
                .find(|m| path.starts_with(&m.mount_path))
                .unwrap();
            let volume = volumes.iter().find(|v| v.name == mount.name).unwrap();
            let file = &path[mount.mount_path.len() + 1..];
            match (&volume.config_map, &volume.secret) {
                (Some(map), None) => {
                    let item = map
                        .items
                        .as_ref()
                        .unwrap()
                        .iter()
                        .find(|i| i.path == file)
                        .unwrap();
                    format!("configmap {}/{}", map.name, item.key)
                }
                (None, Some(secret)) => {
                    let item = secret
                        .items
                        .as_ref()
                        .unwrap()
                        .iter()
                        .find(|i| i.path == file)
                        .unwrap();
                    format!(
                        "secret {}/{}",
                        secret.secret_name.as_deref().unwrap(),
                        item.key
                    )
                }
                _ => panic!("{path}"),
            }
        };
        assert_eq!(
            source(specs[0].file.to_str().unwrap()),
            "configmap zstd-plugin/zstd.wasm"
        );
        assert_eq!(
            source(specs[1].file.to_str().unwrap()),
            "configmap age-plugin/age.wasm"
        );
        assert_eq!(source(identity), "secret backup-age/key.txt");
        assert_eq!(
            source(specs[2].file.to_str().unwrap()),
            "configmap gfs-plugin/gfs.wasm"
        );
        assert_eq!(env(&pod)["PLUGIN_MEMORY_LIMIT"], "128MiB");
        // Two transform instances of 128 MiB on top of the defaults.
        assert_eq!(
            pod.containers[0].resources.clone().unwrap().limits.unwrap()["memory"],
            resources(20 * 1024 * 1024, 5, 2).limits.unwrap()["memory"]
        );
        assert_eq!(
            resources(10 * 1024 * 1024, 3, 2).limits.unwrap()["memory"],
            Quantity("364Mi".into())
        );
    }

    /// Restore `r1` of cluster `bao` in `prod`, of the latest backup.
    fn restore_r1(force: bool) -> OpenBaoRestore {
        let mut restore = OpenBaoRestore::new(
            "r1",
            crate::api::OpenBaoRestoreSpec {
                cluster: "bao".into(),
                key: "latest".into(),
                jwt_auth_role: Some("restore".into()),
                force,
                ..Default::default()
            },
        );
        restore.metadata.namespace = Some("prod".into());
        restore.metadata.uid = Some("uid-r1".into());
        restore
    }

    #[test]
    fn a_restore_job_reads_the_cluster_target_with_its_plugins() {
        let mut backup = jwt_backup();
        backup.transforms = vec![PluginRef {
            config_map_ref: crate::api::ConfigMapKeyRef {
                name: "zstd-plugin".into(),
                key: "zstd.wasm".into(),
            },
            ..Default::default()
        }];
        let cluster = cluster(backup);
        let job = restore_job(&restore_r1(true), &cluster, &settings());
        assert_eq!(job.metadata.name.as_deref(), Some("r1-restore"));
        let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("OpenBaoRestore", "uid-r1")
        );
        assert_eq!(
            job.metadata.labels.as_ref().unwrap()[COMPONENT_LABEL],
            "restore"
        );
        let spec = job.spec.unwrap();
        assert_eq!(spec.backoff_limit, Some(0));
        let pod = spec.template.spec.unwrap();
        let args = pod.containers[0].args.clone().unwrap();
        assert_eq!(args[..2], ["restore".to_string(), "--plugin".to_string()]);
        let vars = env(&pod);
        assert_eq!(vars["BACKUP_KEY"], "latest");
        assert_eq!(vars["RESTORE_FORCE"], "true");
        assert_eq!(vars["RESULT_FILE"], TERMINATION_LOG);
        assert_eq!(vars["S3_BUCKET"], "openbao-backups");
        assert_eq!(vars["OPENBAO_JWT_ROLE"], "restore");
        assert_eq!(
            pod.service_account_name.as_deref(),
            Some("bao-restore-serviceaccount"),
            "not the backups' identity"
        );
        assert_eq!(pod.automount_service_account_token, Some(false));
    }

    #[test]
    fn backups_and_restores_get_the_manifest_key_when_the_cluster_names_one() {
        let backup = jwt_backup();
        let unsigned = pod(&cronjob(&cluster(backup.clone()), &backup, &settings()));
        assert!(!env(&unsigned).contains_key("MANIFEST_KEY_FILE"));

        let mut backup = jwt_backup();
        backup.manifest_key_secret_ref = Some(crate::api::SecretKeyRef {
            name: "bao-manifest-key".into(),
            key: "key".into(),
        });
        let cluster = cluster(backup.clone());
        let restore = restore_job(&restore_r1(false), &cluster, &settings());
        for pod in [
            pod(&cronjob(&cluster, &backup, &settings())),
            restore.spec.unwrap().template.spec.unwrap(),
        ] {
            let file = &env(&pod)["MANIFEST_KEY_FILE"];
            assert_eq!(file, "/var/run/secrets/openbao-backup/manifest-key/key");
            let volume = pod
                .volumes
                .as_ref()
                .unwrap()
                .iter()
                .find(|v| v.name == "manifest-key")
                .unwrap();
            let secret = volume.secret.as_ref().unwrap();
            assert_eq!(secret.secret_name.as_deref(), Some("bao-manifest-key"));
            let item = &secret.items.as_ref().unwrap()[0];
            assert_eq!((item.key.as_str(), item.path.as_str()), ("key", "key"));
            let mounts = pod.containers[0].volume_mounts.as_ref().unwrap();
            let mounted = mounts.iter().find(|m| m.name == "manifest-key").unwrap();
            assert_eq!(mounted.read_only, Some(true));
        }
    }

    #[test]
    fn network_policy_allows_dns_openbao_and_storage_only() {
        let mut backup = jwt_backup();
        backup.target.endpoint = Some("http://minio.storage.svc:9000/".into());
        let policy = network_policy(&cluster(backup.clone()), &backup);
        let spec = policy.spec.unwrap();
        assert!(
            spec.policy_types.unwrap().contains(&"Ingress".to_string()) && spec.ingress.is_none(),
            "no ingress at all"
        );
        let ports: Vec<i32> = spec
            .egress
            .unwrap()
            .iter()
            .flat_map(|rule| rule.ports.clone().unwrap())
            .map(|p| match p.port.unwrap() {
                IntOrString::Int(port) => port,
                IntOrString::String(s) => panic!("{s}"),
            })
            .collect();
        assert_eq!(ports, vec![53, 53, 8200, 9000]);
        let selector = spec.pod_selector.unwrap();
        let selects = |labels: &BTreeMap<String, String>| {
            selector
                .match_labels
                .iter()
                .flatten()
                .all(|(k, v)| labels.get(k) == Some(v))
                && selector.match_expressions.iter().flatten().all(|e| {
                    e.values
                        .iter()
                        .flatten()
                        .any(|v| labels.get(&e.key) == Some(v))
                })
        };
        assert!(selects(&backup_labels("bao")) && selects(&restore_labels("bao")));
        assert!(!selects(&backup_labels("other")));
    }

    #[test]
    fn endpoint_ports() {
        let with = |endpoint: Option<&str>| {
            let mut backup = jwt_backup();
            backup.target.endpoint = endpoint.map(str::to_string);
            endpoint_port(&backup)
        };
        assert_eq!(with(None), 443);
        assert_eq!(with(Some("https://s3.amazonaws.com")), 443);
        assert_eq!(with(Some("http://garage:3900")), 3900);
        assert_eq!(with(Some("http://minio.local")), 80);
    }
}
