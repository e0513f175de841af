//! The executor's pod, shared by backup and restore Jobs: the cluster's
//! addresses, the storage target, OpenBao auth (a projected token for a
//! ServiceAccount, or a token Secret), the plugins as files, and memory
//! sized by what the upload holds in flight.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::JobSpec;
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, EnvVar, KeyToPath, PersistentVolumeClaimVolumeSource,
    PodSpec, PodTemplateSpec, ProjectedVolumeSource, ResourceRequirements,
    ServiceAccountTokenProjection, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use crate::api::{BackupTarget, ExecutorPodSettings, LocalRef, OpenBaoCluster, PluginRef, Profile};
use crate::names::openbao_addrs;
use crate::objects::{env_var, hardened, mount, pod_security, secret_key_volume, secret_volume};
use crate::settings::OperatorSettings;
use contract::executor::memory::{PLUGIN_MIB, job_memory};
use contract::executor::paths::{
    BACKUP_VOLUME_DIR, JWT_FILE, MANIFEST_KEY_DIR, OPENBAO_CA_DIR, PLUGIN_DIR, PLUGIN_SECRET_DIR,
    S3_CREDENTIALS_DIR as S3_CREDENTIALS_DIR_PATH, TERMINATION_LOG, TOKEN_DIR,
};
use contract::executor::{command, env, flag};
use contract::plugin_spec::PluginSpec;

/// The executor image runs as this unprivileged user.
pub(super) const RUN_AS: i64 = 65532;

/// What differs between a backup pod and a restore pod.
pub(super) struct Executor<'a> {
    pub command: &'static str,
    /// The ServiceAccount that logs in with JWT auth.
    pub service_account: String,
    pub image: &'a str,
    pub target: &'a BackupTarget,
    pub jwt_auth_role: Option<&'a str>,
    pub token_secret_ref: Option<&'a LocalRef>,
    /// Each plugin's flag, reference and volume name.
    pub plugins: Vec<(&'a str, &'a PluginRef, String)>,
    /// The command's own settings.
    pub env: Vec<EnvVar>,
}

/// The environment, volumes and mounts of the executor's container, in
/// the order they are added.
#[derive(Default)]
struct Files {
    env: Vec<EnvVar>,
    volumes: Vec<Volume>,
    mounts: Vec<VolumeMount>,
}

impl Files {
    fn add(&mut self, env: Option<EnvVar>, volume: Volume, mount: VolumeMount) {
        self.env.extend(env);
        self.volumes.push(volume);
        self.mounts.push(mount);
    }
}

/// One attempt per Job: the executor retries what is transient, and a
/// failure is reported, not hidden. The pods carry `spec.backup.pod`'s
/// labels and annotations; the operator's `labels` win over its labels.
pub(super) fn executor_job_spec(
    cluster: &OpenBaoCluster,
    labels: BTreeMap<String, String>,
    pod: PodSpec,
) -> JobSpec {
    let settings = pod_settings(cluster);
    let mut pod_labels = settings.map(|s| s.labels.clone()).unwrap_or_default();
    pod_labels.extend(labels);
    let annotations = settings
        .map(|s| s.annotations.clone())
        .filter(|a| !a.is_empty());
    JobSpec {
        backoff_limit: Some(0),
        active_deadline_seconds: Some(6 * 3600),
        template: PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(pod_labels),
                annotations,
                ..Default::default()
            }),
            spec: Some(pod),
        },
        ..Default::default()
    }
}

/// The cluster's `spec.backup.pod`, for backup and restore pods alike.
fn pod_settings(cluster: &OpenBaoCluster) -> Option<&ExecutorPodSettings> {
    cluster.spec.backup.as_ref()?.pod.as_ref()
}

/// Whether `spec.backup.serviceAccount` gives the ServiceAccounts
/// annotations (a cloud identity): then they exist and the pods run as
/// them, whatever the OpenBao auth.
fn annotated_service_accounts(cluster: &OpenBaoCluster) -> bool {
    cluster
        .spec
        .backup
        .as_ref()
        .and_then(|b| b.service_account.as_ref())
        .is_some_and(|a| !a.annotations.is_empty())
}

/// `spec.backup.pod`'s scheduling and resources on the pod: `requests` and
/// `limits`, when given, replace the computed ones.
fn place(pod: &mut PodSpec, settings: &ExecutorPodSettings) {
    fn some_vec<T: Clone>(v: &[T]) -> Option<Vec<T>> {
        (!v.is_empty()).then(|| v.to_vec())
    }
    pod.tolerations = some_vec(&settings.tolerations);
    pod.image_pull_secrets = some_vec(&settings.image_pull_secrets);
    pod.node_selector =
        (!settings.node_selector.is_empty()).then(|| settings.node_selector.clone());
    pod.affinity = settings.affinity.clone();
    pod.priority_class_name = settings.priority_class_name.clone();
    if let Some(given) = &settings.resources {
        for container in &mut pod.containers {
            let resources = container.resources.get_or_insert_with(Default::default);
            if given.requests.is_some() {
                resources.requests = given.requests.clone();
            }
            if given.limits.is_some() {
                resources.limits = given.limits.clone();
            }
        }
    }
}

/// The result goes to the termination log, where the operator reads it.
pub(super) fn result_env() -> EnvVar {
    env_var(env::RESULT_FILE, TERMINATION_LOG.into())
}

/// A hardened executor pod running `executor.command`.
pub(super) fn executor_pod(
    cluster: &OpenBaoCluster,
    settings: &OperatorSettings,
    executor: Executor<'_>,
) -> PodSpec {
    let target = executor.target;
    let mut files = Files {
        env: target_env(cluster, target),
        ..Default::default()
    };
    files.env.extend(executor.env.iter().cloned());
    files.env.extend(profile_env(cluster, settings));
    keys(cluster, target, &mut files);
    storage_volume(target, executor.command, &mut files);
    let service_account = auth(&executor, &jwt_audience(cluster, settings), &mut files)
        .or_else(|| annotated_service_accounts(cluster).then(|| executor.service_account.clone()));
    let args = plugin_args(&executor, &mut files);
    let transforms = executor
        .plugins
        .iter()
        .filter(|(name, _, _)| *name != flag::RETENTION_PLUGIN)
        .count();
    let container = Container {
        // Named after the command: the operator reads each Job's result from
        // this container's termination message.
        name: executor.command.into(),
        image: Some(executor.image.into()),
        args: Some(args),
        env: Some(files.env),
        volume_mounts: Some(files.mounts),
        resources: Some(resources(
            target.part_size(),
            target.concurrency(),
            transforms,
        )),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        security_context: Some(hardened()),
        ..Default::default()
    };
    let mut pod = PodSpec {
        restart_policy: Some("Never".into()),
        service_account_name: service_account,
        automount_service_account_token: Some(false),
        // A volume that supports ownership becomes writable by the executor.
        security_context: Some(pod_security(
            RUN_AS,
            RUN_AS,
            target.volume.is_some().then_some(RUN_AS),
        )),
        containers: vec![container],
        volumes: Some(files.volumes),
        ..Default::default()
    };
    if let Some(pod_settings) = pod_settings(cluster) {
        place(&mut pod, pod_settings);
    }
    pod
}

/// Under the `Hardened` profile the executor checks where the storage
/// endpoint resolves to, against the service network too.
fn profile_env(cluster: &OpenBaoCluster, settings: &OperatorSettings) -> Vec<EnvVar> {
    let profile = cluster.spec.profile();
    if profile != Profile::Hardened {
        return Vec::new();
    }
    let mut env = vec![env_var(env::SECURITY_PROFILE, profile.as_str().into())];
    if !settings.service_cidrs.is_empty() {
        let cidrs: Vec<String> = settings
            .service_cidrs
            .iter()
            .map(|c| c.to_string())
            .collect();
        env.push(env_var(env::SERVICE_CIDRS, cidrs.join(",")));
    }
    env
}

/// Where OpenBao and the storage target are.
fn target_env(cluster: &OpenBaoCluster, target: &BackupTarget) -> Vec<EnvVar> {
    let name = cluster.name_any();
    let namespace = cluster.namespace().unwrap_or_default();
    let addrs = match &cluster.spec.external {
        Some(external) => external.addrs(&namespace),
        None => openbao_addrs(&name, &namespace, cluster.spec.replicas()),
    };
    let mut env = vec![
        env_var(env::OPENBAO_ADDR, addrs),
        env_var(env::OPENBAO_CLUSTER, name.clone()),
        env_var(env::OPENBAO_NAMESPACE, namespace.clone()),
        env_var(env::LOG_FORMAT, "json".into()),
    ];
    // One storage: a bucket, the volume (`storage_volume`) or Azure.
    match (&target.volume, &target.azure) {
        (Some(_), _) => {}
        (None, Some(azure)) => env.extend([
            env_var(env::AZURE_STORAGE_ACCOUNT, azure.account.clone()),
            env_var(env::AZURE_CONTAINER, azure.container.clone()),
        ]),
        (None, None) => env.push(env_var(env::S3_BUCKET, target.bucket.clone())),
    }
    env.extend([
        env_var(env::S3_PART_SIZE, target.part_size().to_string()),
        env_var(env::S3_CONCURRENCY, target.concurrency().to_string()),
    ]);
    let azure_endpoint = target.azure.as_ref().and_then(|a| a.endpoint.clone());
    let optional = [
        (env::S3_ENDPOINT, &target.endpoint),
        (env::S3_REGION, &target.region),
        (env::S3_PATH_PREFIX, &target.path_prefix),
        (env::AZURE_ENDPOINT, &azure_endpoint),
    ];
    env.extend(
        optional
            .into_iter()
            .filter_map(|(k, v)| v.clone().map(|v| env_var(k, v))),
    );
    env
}

/// OpenBao's CA (from the cluster's TLS Secret, or `spec.external`'s),
/// the manifest key and the
/// storage credentials, as files.
fn keys(cluster: &OpenBaoCluster, target: &BackupTarget, files: &mut Files) {
    // An external OpenBao's CA is where spec.external says, if anywhere.
    let ca = match &cluster.spec.external {
        Some(external) => external
            .ca_secret_ref
            .as_ref()
            .map(|r| (r.name.clone(), r.key.as_str())),
        None => Some((cluster.spec.tls_secret(&cluster.name_any()), "ca.crt")),
    };
    if let Some((secret, key)) = ca {
        files.add(
            Some(env_var(
                env::OPENBAO_CACERT,
                format!("{OPENBAO_CA_DIR}/ca.crt"),
            )),
            secret_key_volume("openbao-ca", &secret, key, "ca.crt"),
            mount("openbao-ca", OPENBAO_CA_DIR),
        );
    }
    // Backups sign their manifests and restores check them with the
    // cluster's key, wherever the restore reads from.
    let manifest_key = cluster
        .spec
        .backup
        .as_ref()
        .and_then(|b| b.manifest_key_secret_ref.as_ref());
    if let Some(key) = manifest_key {
        files.add(
            Some(env_var(
                env::MANIFEST_KEY_FILE,
                format!("{MANIFEST_KEY_DIR}/key"),
            )),
            secret_key_volume("manifest-key", &key.name, &key.key, "key"),
            mount("manifest-key", MANIFEST_KEY_DIR),
        );
    }
    if let Some(secret) = &target.credentials_secret_ref {
        files.add(
            Some(env_var(
                env::S3_CREDENTIALS_DIR,
                S3_CREDENTIALS_DIR_PATH.into(),
            )),
            secret_volume("s3-credentials", &secret.name),
            mount("s3-credentials", S3_CREDENTIALS_DIR_PATH),
        );
    }
}

/// The audience of the Jobs' projected tokens: the cluster's
/// `spec.backup.jwtAudience`, else the operator's.
pub(crate) fn jwt_audience(cluster: &OpenBaoCluster, settings: &OperatorSettings) -> String {
    cluster
        .spec
        .backup
        .as_ref()
        .and_then(|b| b.jwt_audience.clone())
        .unwrap_or_else(|| settings.jwt_audience.clone())
}

/// A `target.volume`'s claim, mounted where `BACKUP_DIRECTORY` points:
/// writable for backups, read-only for anything else (a restore).
fn storage_volume(target: &BackupTarget, executor_command: &str, files: &mut Files) {
    let Some(volume) = &target.volume else {
        return;
    };
    let mut mount = mount("backups", BACKUP_VOLUME_DIR);
    mount.read_only = Some(executor_command != command::BACKUP);
    mount.sub_path = volume.sub_path.clone();
    files.add(
        Some(env_var(env::BACKUP_DIRECTORY, BACKUP_VOLUME_DIR.into())),
        Volume {
            name: "backups".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: volume.persistent_volume_claim.claim_name.clone(),
                read_only: None,
            }),
            ..Default::default()
        },
        mount,
    );
}

/// OpenBao auth: a projected token of the executor's ServiceAccount (JWT
/// auth; the ServiceAccount is returned) or a token Secret.
fn auth(executor: &Executor<'_>, audience: &str, files: &mut Files) -> Option<String> {
    match (executor.jwt_auth_role, executor.token_secret_ref) {
        (Some(role), _) => {
            files.env.push(env_var(env::OPENBAO_JWT_ROLE, role.into()));
            files.add(
                Some(env_var(env::OPENBAO_JWT_AUDIENCE, audience.into())),
                projected_token(audience),
                mount("openbao-jwt", jwt_dir()),
            );
            Some(executor.service_account.clone())
        }
        (None, Some(secret)) => {
            files.add(
                Some(env_var(
                    env::OPENBAO_TOKEN_FILE,
                    format!("{TOKEN_DIR}/token"),
                )),
                secret_key_volume("openbao-token", &secret.name, "token", "token"),
                mount("openbao-token", TOKEN_DIR),
            );
            None
        }
        (None, None) => None,
    }
}

fn jwt_dir() -> &'static str {
    JWT_FILE
        .rsplit_once('/')
        .map(|(dir, _)| dir)
        .expect("a path")
}

/// A short-lived ServiceAccount token for `audience`.
fn projected_token(audience: &str) -> Volume {
    Volume {
        name: "openbao-jwt".into(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(vec![VolumeProjection {
                service_account_token: Some(ServiceAccountTokenProjection {
                    audience: Some(audience.into()),
                    expiration_seconds: Some(600),
                    path: "token".into(),
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The command and a `--<flag> <spec>` pair per plugin, whose files go
/// into `files`.
fn plugin_args(executor: &Executor<'_>, files: &mut Files) -> Vec<String> {
    let mut args = vec![executor.command.to_string()];
    for (name, plugin, volume) in &executor.plugins {
        let spec = plugin_spec(plugin, volume, &mut files.volumes, &mut files.mounts);
        args.extend([format!("--{name}"), spec.to_string()]);
    }
    if !executor.plugins.is_empty() {
        files.env.push(env_var(
            env::PLUGIN_MEMORY_LIMIT,
            format!("{PLUGIN_MIB}MiB"),
        ));
    }
    args
}

/// A plugin as the executor's spec, with the volumes that put its file
/// (from a ConfigMap; a built-in has none) and secret settings where the
/// spec says.
fn plugin_spec(
    plugin: &PluginRef,
    volume: &str,
    volumes: &mut Vec<Volume>,
    mounts: &mut Vec<VolumeMount>,
) -> PluginSpec {
    let dir = format!("{PLUGIN_DIR}/{volume}");
    let file = match (&plugin.builtin, &plugin.config_map_ref) {
        (Some(name), _) => PluginSpec::builtin(name).file,
        (None, map) => {
            let map = map.clone().unwrap_or_default();
            volumes.push(Volume {
                name: volume.into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: map.name,
                    items: Some(vec![KeyToPath {
                        key: map.key,
                        path: "plugin.wasm".into(),
                        mode: None,
                    }]),
                    ..Default::default()
                }),
                ..Default::default()
            });
            mounts.push(mount(volume, &dir));
            format!("{dir}/plugin.wasm").into()
        }
    };
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
        file,
        sha256: plugin.sha256.clone(),
        config: plugin.config.clone().unwrap_or_default(),
        secret_files,
    }
}

/// The Job's resources: its memory from [`job_memory`], in MiB.
pub fn resources(part_size: u64, concurrency: u16, transforms: usize) -> ResourceRequirements {
    let memory = job_memory(part_size, concurrency, transforms);
    let mib = |bytes: u64| Quantity(format!("{}Mi", bytes.div_ceil(1024 * 1024)));
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".into(), Quantity("100m".into())),
            ("memory".into(), mib(memory.request)),
        ])),
        limits: Some(BTreeMap::from([("memory".into(), mib(memory.limit))])),
        ..Default::default()
    }
}
