//! The backup objects, restore Job and executor pods as built.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{PodSpec, ServiceAccountTokenProjection};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::backup::*;
use super::executor_pod::resources;
use super::restore_job::restore_job;
use crate::api::{
    BackupSpec, BackupTarget, LocalRef, OpenBaoCluster, OpenBaoClusterSpec, OpenBaoRestore,
    PluginRef,
};
use crate::names::*;
use crate::settings::*;
use contract::executor::paths::{
    JWT_FILE, S3_CREDENTIALS_DIR as S3_CREDENTIALS_DIR_PATH, TERMINATION_LOG,
};
use contract::plugin_spec::PluginSpec;

/// A cluster `prod/bao` with this backup spec.
pub(super) fn cluster(backup: BackupSpec) -> OpenBaoCluster {
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

/// Nightly backups to `target`, logging in with the JWT role `backup`.
pub(super) fn backup_to(target: BackupTarget) -> BackupSpec {
    BackupSpec {
        schedule: "0 3 * * *".into(),
        executor_image: Some("openbao/backup-executor:v0.1.0".into()),
        jwt_auth_role: Some("backup".into()),
        target,
        ..Default::default()
    }
}

fn jwt_backup() -> BackupSpec {
    backup_to(BackupTarget {
        endpoint: Some("https://s3.amazonaws.com".into()),
        bucket: "openbao-backups".into(),
        region: Some("us-east-1".into()),
        path_prefix: Some("clusters/bao".into()),
        credentials_secret_ref: Some(LocalRef {
            name: "s3-credentials".into(),
        }),
        part_size: Some(20 * 1024 * 1024),
        concurrency: Some(5),
        ..Default::default()
    })
}

/// An age transform's settings: a recipient, and the identity from a
/// Secret (for restores).
fn age_with_identity() -> PluginRef {
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
        ..Default::default()
    }
}

pub(super) fn pod(cronjob: &CronJob) -> PodSpec {
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

/// The backup CronJob's pod and the pod of the restore Job of `restore_r1`.
pub(super) fn pods(cluster: &OpenBaoCluster, backup: &BackupSpec) -> [PodSpec; 2] {
    let settings = OperatorSettings::default();
    let restore = restore_job(&restore_r1(false), cluster, &settings);
    [
        pod(&cronjob(cluster, backup, &settings)),
        restore.spec.unwrap().template.spec.unwrap(),
    ]
}

/// The first container's environment, name to value.
pub(super) fn env(pod: &PodSpec) -> BTreeMap<String, String> {
    pod.containers[0]
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
    let cronjob = cronjob(&cluster, &backup, &OperatorSettings::default());
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
        &OperatorSettings::default(),
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
        &OperatorSettings::default(),
    )));
    assert!(!vars.contains_key("RETENTION_MAX_COUNT"));
}

#[test]
fn the_last_pre_upgrade_backup_is_kept_by_every_backup_job() {
    let backup = jwt_backup();
    let mut cluster = cluster(backup.clone());
    let vars = env(&pod(&cronjob(
        &cluster,
        &backup,
        &OperatorSettings::default(),
    )));
    assert!(!vars.contains_key("RETENTION_KEEP_KEYS"));

    let key = "prod/bao/20261122T030000.000Z-pre-upgrade-aaaaaa.snap";
    cluster.status = Some(crate::api::OpenBaoClusterStatus {
        upgrade: Some(crate::api::UpgradeStatus {
            pre_upgrade_backup_key: Some(key.into()),
            ..Default::default()
        }),
        ..Default::default()
    });
    let scheduled = env(&pod(&cronjob(
        &cluster,
        &backup,
        &OperatorSettings::default(),
    )));
    assert_eq!(scheduled["RETENTION_KEEP_KEYS"], key);
    let job = pre_upgrade_job(
        &cluster,
        &backup,
        &OperatorSettings::default(),
        "bao-pre-upgrade-1",
    );
    let pre_upgrade = env(job.spec.unwrap().template.spec.as_ref().unwrap());
    assert_eq!(pre_upgrade["RETENTION_KEEP_KEYS"], key);
}

/// The pod's projected ServiceAccount token.
fn projected_token(pod: &PodSpec) -> ServiceAccountTokenProjection {
    let projected = pod
        .volumes
        .iter()
        .flatten()
        .find_map(|v| v.projected.clone())
        .unwrap();
    projected.sources.unwrap()[0]
        .service_account_token
        .clone()
        .unwrap()
}

#[test]
fn jwt_auth_uses_a_projected_token_with_the_operator_audience() {
    let backup = jwt_backup();
    let cluster = cluster(backup.clone());
    let pod = pod(&cronjob(&cluster, &backup, &OperatorSettings::default()));
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("bao-backup-serviceaccount")
    );
    let token = projected_token(&pod);
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
fn a_cluster_sets_the_audience_of_its_backup_and_restore_jobs_tokens() {
    let audience = |pod: &PodSpec| {
        (
            projected_token(pod).audience.unwrap(),
            env(pod)["OPENBAO_JWT_AUDIENCE"].clone(),
        )
    };
    let mut backup = jwt_backup();
    backup.jwt_audience = Some("https://bao.example.com".into());
    let cluster = cluster(backup.clone());
    let settings = OperatorSettings::default();
    let expected = (
        "https://bao.example.com".to_string(),
        "https://bao.example.com".to_string(),
    );
    assert_eq!(
        audience(&pod(&cronjob(&cluster, &backup, &settings))),
        expected
    );
    let job = restore_job(&restore_r1(false), &cluster, &settings);
    let restore_pod = job.spec.unwrap().template.spec.unwrap();
    assert_eq!(
        restore_pod.service_account_name.as_deref(),
        Some("bao-restore-serviceaccount")
    );
    assert_eq!(audience(&restore_pod), expected);
    // Omitted: the operator's.
    let cluster = self::cluster(jwt_backup());
    let job = restore_job(&restore_r1(false), &cluster, &settings);
    assert_eq!(
        audience(&job.spec.unwrap().template.spec.unwrap()).0,
        "openbao-internal"
    );
}

#[test]
fn a_restore_job_previews_reads_another_clusters_backups_when_told() {
    let cluster = cluster(jwt_backup());
    let settings = OperatorSettings::default();
    let vars = |restore: &OpenBaoRestore| {
        env(&restore_job(restore, &cluster, &settings)
            .spec
            .unwrap()
            .template
            .spec
            .unwrap())
    };
    let plain = vars(&restore_r1(false));
    assert_eq!(plain["RESTORE_DRY_RUN"], "false");
    assert_eq!(plain["RESTORE_ALLOW_OTHER_CLUSTER"], "false");
    assert!(!plain.contains_key("RESTORE_SOURCE_CLUSTER"));
    let mut recover = restore_r1(false);
    recover.spec.preview = true;
    recover.spec.allow_other_cluster = true;
    recover.spec.source_cluster = Some("old".into());
    let told = vars(&recover);
    assert_eq!(told["RESTORE_DRY_RUN"], "true");
    assert_eq!(told["RESTORE_ALLOW_OTHER_CLUSTER"], "true");
    assert_eq!(told["RESTORE_SOURCE_CLUSTER"], "old");
    assert_eq!(
        told["OPENBAO_CLUSTER"], "bao",
        "the target stays the cluster"
    );
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
    let pod = pod(&cronjob(&cluster, &backup, &OperatorSettings::default()));
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
    let pod = pod(&cronjob(
        &cluster(backup.clone()),
        &backup,
        &OperatorSettings::default(),
    ));
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
        config_map_ref: Some(crate::api::ConfigMapKeyRef {
            name: map.into(),
            key: key.into(),
        }),
        ..Default::default()
    };
    backup.transforms = vec![
        PluginRef {
            sha256: Some("ab".repeat(32)),
            config: Some(serde_json::json!({"level": 3}).as_object().unwrap().clone()),
            ..plugin("zstd-plugin", "zstd.wasm")
        },
        PluginRef {
            config_map_ref: plugin("age-plugin", "age.wasm").config_map_ref,
            ..age_with_identity()
        },
    ];
    backup.retention_plugin = Some(plugin("gfs-plugin", "gfs.wasm"));
    let pod = pod(&cronjob(
        &cluster(backup.clone()),
        &backup,
        &OperatorSettings::default(),
    ));
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
        std::path::PathBuf::from("/var/run/openbao-backup/plugins/retention-plugin/plugin.wasm")
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
        let key = |items: &Option<Vec<k8s_openapi::api::core::v1::KeyToPath>>| {
            let items = items.as_ref().unwrap();
            items.iter().find(|i| i.path == file).unwrap().key.clone()
        };
        match (&volume.config_map, &volume.secret) {
            (Some(map), None) => format!("configmap {}/{}", map.name, key(&map.items)),
            (None, Some(secret)) => format!(
                "secret {}/{}",
                secret.secret_name.as_deref().unwrap(),
                key(&secret.items)
            ),
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

#[test]
fn builtin_plugins_go_into_jobs_by_name_without_a_config_map() {
    let mut backup = jwt_backup();
    backup.transforms = vec![
        PluginRef {
            builtin: Some("zstd".into()),
            ..Default::default()
        },
        PluginRef {
            builtin: Some("age".into()),
            ..age_with_identity()
        },
    ];
    backup.retention_plugin = Some(PluginRef {
        builtin: Some("keep-last".into()),
        config: Some(
            serde_json::json!({"maxCount": 3})
                .as_object()
                .unwrap()
                .clone(),
        ),
        ..Default::default()
    });
    let pod = pod(&cronjob(
        &cluster(backup.clone()),
        &backup,
        &OperatorSettings::default(),
    ));
    let args = pod.containers[0].args.clone().unwrap();
    assert_eq!(
        args[1..],
        [
            "--transform".to_string(),
            r#"{"file":"builtin:zstd"}"#.into(),
            "--transform".into(),
            r#"{"file":"builtin:age","config":{"recipients":["age1x"]},"secretFiles":{"identities":"/var/run/secrets/openbao-backup/plugins/transform-1-secret-0/value"}}"#.into(),
            "--retention-plugin".into(),
            r#"{"file":"builtin:keep-last","config":{"maxCount":3}}"#.into(),
        ]
    );
    // No ConfigMap volume: only the age identity's Secret is mounted.
    let volumes = pod.volumes.clone().unwrap_or_default();
    assert!(
        volumes.iter().all(|v| v.config_map.is_none()),
        "{volumes:?}"
    );
    let secrets: Vec<&str> = volumes
        .iter()
        .filter_map(|v| v.secret.as_ref()?.secret_name.as_deref())
        .collect();
    assert!(secrets.contains(&"backup-age"), "{secrets:?}");
    assert!(
        pod.containers[0]
            .volume_mounts
            .iter()
            .flatten()
            .all(|m| !m.mount_path.starts_with("/var/run/openbao-backup/plugins")),
        "no plugin file mounted"
    );
}

/// Restore `r1` of cluster `bao` in `prod`, of the latest backup.
pub(super) fn restore_r1(force: bool) -> OpenBaoRestore {
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
        config_map_ref: Some(crate::api::ConfigMapKeyRef {
            name: "zstd-plugin".into(),
            key: "zstd.wasm".into(),
        }),
        ..Default::default()
    }];
    let cluster = cluster(backup);
    let job = restore_job(&restore_r1(true), &cluster, &OperatorSettings::default());
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
    let unsigned = pod(&cronjob(
        &cluster(backup.clone()),
        &backup,
        &OperatorSettings::default(),
    ));
    assert!(!env(&unsigned).contains_key("MANIFEST_KEY_FILE"));

    let mut backup = jwt_backup();
    backup.manifest_key_secret_ref = Some(crate::api::SecretKeyRef {
        name: "bao-manifest-key".into(),
        key: "key".into(),
    });
    let cluster = cluster(backup.clone());
    let restore = restore_job(&restore_r1(false), &cluster, &OperatorSettings::default());
    for pod in [
        pod(&cronjob(&cluster, &backup, &OperatorSettings::default())),
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

/// `spec.backup.pod`, `serviceAccount` and `cronJob` as users write them.
fn placed_backup() -> BackupSpec {
    let mut backup = jwt_backup();
    backup.target.credentials_secret_ref = None;
    let extra: BackupSpec = serde_json::from_value(serde_json::json!({
        "schedule": "0 3 * * *", "executorImage": "x", "target": {"bucket": "b"},
        "pod": {
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "backup", "effect": "NoSchedule"}],
            "nodeSelector": {"pool": "backup"},
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}},
            "priorityClassName": "backup-high",
            "imagePullSecrets": [{"name": "registry"}],
            "labels": {"team": "vault", "app.kubernetes.io/instance": "stolen"},
            "annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
            "resources": {"requests": {"cpu": "250m", "memory": "300Mi"}},
        },
        "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/backup"}},
        "cronJob": {"timeZone": "Europe/Paris", "suspend": true, "startingDeadlineSeconds": 60,
                    "successfulJobsHistoryLimit": 1, "failedJobsHistoryLimit": 5},
    }))
    .unwrap();
    backup.pod = extra.pod;
    backup.service_account = extra.service_account;
    backup.cron_job = extra.cron_job;
    backup
}

#[test]
fn backup_and_restore_pods_get_the_pod_settings() {
    let backup = placed_backup();
    let cluster = cluster(backup.clone());
    let cronjob = cronjob(&cluster, &backup, &OperatorSettings::default());
    let template = &cronjob.spec.as_ref().unwrap().job_template;
    let restore = restore_job(&restore_r1(false), &cluster, &OperatorSettings::default());
    for (what, job) in [
        ("backup", template.spec.as_ref().unwrap()),
        ("restore", restore.spec.as_ref().unwrap()),
    ] {
        let meta = job.template.metadata.as_ref().unwrap();
        let labels = meta.labels.as_ref().unwrap();
        assert_eq!(labels["team"], "vault", "{what}");
        assert_eq!(
            labels["app.kubernetes.io/instance"], "bao",
            "{what}: the operator's labels win"
        );
        assert_eq!(labels[COMPONENT_LABEL], what);
        assert_eq!(
            meta.annotations.as_ref().unwrap()["cluster-autoscaler.kubernetes.io/safe-to-evict"],
            "false"
        );
        let pod = job.template.spec.as_ref().unwrap();
        let toleration = &pod.tolerations.as_ref().unwrap()[0];
        assert_eq!(
            (toleration.key.as_deref(), toleration.effect.as_deref()),
            (Some("dedicated"), Some("NoSchedule"))
        );
        assert_eq!(pod.node_selector.as_ref().unwrap()["pool"], "backup");
        let terms = &pod
            .affinity
            .as_ref()
            .unwrap()
            .node_affinity
            .as_ref()
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .as_ref()
            .unwrap()
            .node_selector_terms;
        assert_eq!(terms[0].match_expressions.as_ref().unwrap()[0].key, "zone");
        assert_eq!(pod.priority_class_name.as_deref(), Some("backup-high"));
        assert_eq!(pod.image_pull_secrets.as_ref().unwrap()[0].name, "registry");
        let resources = pod.containers[0].resources.as_ref().unwrap();
        assert_eq!(
            resources.requests.as_ref().unwrap(),
            &BTreeMap::from([
                ("cpu".to_string(), Quantity("250m".into())),
                ("memory".to_string(), Quantity("300Mi".into())),
            ]),
            "{what}: given requests replace the computed ones"
        );
        assert_eq!(
            resources.limits,
            resources_of_a_plain_pod().limits,
            "{what}: limits not given stay computed"
        );
        // No credentials Secret: the executor uses the SDK's chain.
        assert!(!env(pod).contains_key("S3_CREDENTIALS_DIR"));
    }
    // The restore pod runs as the (annotated) restore ServiceAccount.
    let restore_pod = restore.spec.unwrap().template.spec.unwrap();
    assert_eq!(
        restore_pod.service_account_name.as_deref(),
        Some("bao-restore-serviceaccount")
    );
}

fn resources_of_a_plain_pod() -> k8s_openapi::api::core::v1::ResourceRequirements {
    let backup = placed_backup();
    resources(
        backup.target.part_size(),
        backup.target.concurrency(),
        backup.transforms.len(),
    )
}

#[test]
fn without_pod_settings_pods_are_as_before() {
    let backup = jwt_backup();
    let cluster = cluster(backup.clone());
    let cronjob = cronjob(&cluster, &backup, &OperatorSettings::default());
    let template = cronjob.spec.unwrap().job_template.spec.unwrap().template;
    assert_eq!(template.metadata.unwrap().annotations, None);
    let pod = template.spec.unwrap();
    assert_eq!(pod.tolerations, None);
    assert_eq!(pod.node_selector, None);
    assert_eq!(pod.affinity, None);
    assert_eq!(pod.priority_class_name, None);
    assert_eq!(pod.image_pull_secrets, None);
    assert_eq!(
        pod.containers[0].resources,
        Some(resources(
            backup.target.part_size(),
            backup.target.concurrency(),
            0
        ))
    );
}

#[test]
fn service_accounts_carry_the_cloud_identity_annotations() {
    let backup = placed_backup();
    let cluster = cluster(backup.clone());
    for name in service_account_names("bao") {
        let account = service_account(&cluster, &backup, &name).unwrap();
        assert_eq!(
            account.metadata.annotations.unwrap()["eks.amazonaws.com/role-arn"],
            "arn:aws:iam::1:role/backup"
        );
    }
    // Token auth with an annotated ServiceAccount: it exists and the pod
    // runs as it, for the cloud identity; no OpenBao JWT is mounted.
    let mut token = backup.clone();
    token.jwt_auth_role = None;
    token.token_secret_ref = Some(LocalRef {
        name: "openbao-token".into(),
    });
    let cluster = self::cluster(token.clone());
    assert!(service_account(&cluster, &token, "bao-backup-serviceaccount").is_some());
    let pod = pod(&cronjob(&cluster, &token, &OperatorSettings::default()));
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("bao-backup-serviceaccount")
    );
    assert!(!env(&pod).contains_key("OPENBAO_JWT_ROLE"));
    assert_eq!(pod.automount_service_account_token, Some(false));
}

#[test]
fn the_cronjob_takes_its_settings() {
    let backup = placed_backup();
    let cluster = cluster(backup.clone());
    let spec = cronjob(&cluster, &backup, &OperatorSettings::default())
        .spec
        .unwrap();
    assert_eq!(spec.time_zone.as_deref(), Some("Europe/Paris"));
    assert_eq!(spec.suspend, Some(true));
    assert_eq!(spec.starting_deadline_seconds, Some(60));
    assert_eq!(spec.successful_jobs_history_limit, Some(1));
    assert_eq!(spec.failed_jobs_history_limit, Some(5));
    let plain = jwt_backup();
    let spec = cronjob(&cluster, &plain, &OperatorSettings::default())
        .spec
        .unwrap();
    assert_eq!(spec.time_zone, None);
    assert_eq!(spec.suspend, None, "resuming leaves suspend unset");
    assert_eq!(spec.starting_deadline_seconds, Some(300));
    assert_eq!(spec.successful_jobs_history_limit, Some(3));
    assert_eq!(spec.failed_jobs_history_limit, Some(3));
}

#[test]
fn scheduled_pods_learn_their_job_name_and_manual_ones_say_manual() {
    let backup = jwt_backup();
    let cluster = cluster(backup.clone());
    let pod = pod(&cronjob(&cluster, &backup, &OperatorSettings::default()));
    let env_vars = pod.containers[0].env.clone().unwrap();
    let job_name = env_vars
        .iter()
        .find(|e| e.name == "BACKUP_JOB_NAME")
        .unwrap();
    let field = job_name
        .value_from
        .as_ref()
        .unwrap()
        .field_ref
        .as_ref()
        .unwrap();
    assert_eq!(field.field_path, "metadata.labels['job-name']");
    assert_eq!(env(&pod)["BACKUP_CRONJOB"], "bao-backup");
    assert_eq!(env(&pod)["BACKUP_KIND"], "scheduled");

    let job = backup_now_job(
        &cluster,
        &backup,
        &OperatorSettings::default(),
        "2026-11-30T10:00",
    );
    let name = job.metadata.name.clone().unwrap();
    assert_eq!(name, backup_now_job_name("bao", "2026-11-30T10:00"));
    assert!(name.starts_with("bao-backup-now-") && name.len() <= 63);
    assert_ne!(name, backup_now_job_name("bao", "2026-11-30T10:01"));
    let annotations = job.metadata.annotations.clone().unwrap();
    assert_eq!(annotations[KIND_ANNOTATION], "manual");
    assert_eq!(annotations[BACKUP_NOW_ANNOTATION], "2026-11-30T10:00");
    assert_eq!(job.metadata.labels.clone().unwrap(), backup_labels("bao"));
    assert_eq!(
        job.metadata.owner_references.unwrap()[0].kind,
        "OpenBaoCluster"
    );
    let pod = job.spec.unwrap().template.spec.unwrap();
    let env = env(&pod);
    assert_eq!(env["BACKUP_KIND"], "manual");
    assert!(!env.contains_key("BACKUP_CRONJOB"));
    let long = "c".repeat(36);
    assert!(backup_now_job_name(&long, "v").len() <= 63);
}

#[test]
fn hardened_executor_pods_are_told_the_profile_and_the_service_network() {
    let mut hardened = cluster(jwt_backup());
    hardened.spec.profile = Some(crate::api::Profile::Hardened);
    let settings = OperatorSettings {
        service_cidrs: contract::network::parse_cidrs("10.96.0.0/12,fd00::/108").unwrap(),
        ..Default::default()
    };
    let backup = pod(&cronjob(&hardened, &jwt_backup(), &settings));
    let vars = env(&backup);
    assert_eq!(vars["SECURITY_PROFILE"], "Hardened");
    assert_eq!(vars["SERVICE_CIDRS"], "10.96.0.0/12,fd00::/108");
    let development = env(&pod(&cronjob(
        &cluster(jwt_backup()),
        &jwt_backup(),
        &settings,
    )));
    assert!(!development.contains_key("SECURITY_PROFILE"));
    assert!(!development.contains_key("SERVICE_CIDRS"));
}

#[test]
fn specs_naming_no_executor_image_run_the_operators_default() {
    let backup = BackupSpec {
        executor_image: None,
        ..jwt_backup()
    };
    let omitted = cluster(backup.clone());
    let settings = OperatorSettings {
        default_executor_image: "registry.example.com/executor:v9".into(),
        ..OperatorSettings::default()
    };
    let image = |pod: &PodSpec| pod.containers[0].image.clone().unwrap();
    assert_eq!(
        image(&pod(&cronjob(&omitted, &backup, &settings))),
        "registry.example.com/executor:v9"
    );
    let job = restore_job(&restore_r1(false), &omitted, &settings);
    assert_eq!(
        image(&job.spec.unwrap().template.spec.unwrap()),
        "registry.example.com/executor:v9"
    );
    // A restore's own image, then its cluster's, win over the default.
    let mut restore = restore_r1(false);
    restore.spec.executor_image = Some("openbao/backup-executor:v2".into());
    let job = restore_job(&restore, &omitted, &settings);
    assert_eq!(
        image(&job.spec.unwrap().template.spec.unwrap()),
        "openbao/backup-executor:v2"
    );
    let named = cluster(jwt_backup());
    let job = restore_job(&restore_r1(false), &named, &settings);
    assert_eq!(
        image(&job.spec.unwrap().template.spec.unwrap()),
        "openbao/backup-executor:v0.1.0"
    );
}
