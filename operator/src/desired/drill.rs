//! A restore drill's objects, owned by the cluster (they go with it): the
//! throwaway OpenBao pod (the StatefulSet's pod template: the cluster's
//! image, TLS and seal; one Raft node on an emptyDir, no self-init, no
//! service registration, labels no Service selects), its configuration
//! ConfigMap, and the Job running `drill` against it.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, EmptyDirVolumeSource, Pod, Volume};
use kube::ResourceExt;
use serde_json::Value;

use super::executor_pod::{Executor, executor_job_spec, executor_pod, result_env};
use super::statefulset::pod_template;
use crate::api::OpenBaoCluster;
use crate::drill::labels;
use crate::names::{OPENBAO_PORT, service_account_name};
use crate::objects::{env_var, owned_meta, writable_mount};
use crate::openbao_config::{self, CONFIG_FILE};
use crate::release::Release;
use crate::settings::OperatorSettings;
use contract::executor::paths::DRILL_SPOOL_DIR;
use contract::executor::{command, env, flag};

/// The throwaway's configuration: the cluster's (listener, TLS, seal, the
/// user's extra settings), as one Raft node of its own: no peers to join,
/// no service registration (it would label itself as the cluster's active
/// node), no self-initialization (the drill initialises it).
pub fn throwaway_config(cluster: &OpenBaoCluster) -> Value {
    let namespace = cluster.namespace().unwrap_or_default();
    let mut config = openbao_config::render(&cluster.name_any(), &namespace, &cluster.spec);
    let object = config.as_object_mut().expect("an object");
    object.remove("service_registration");
    object.remove("initialize");
    // No peers (OpenBao refuses an empty list: the key goes).
    if let Some(raft) = config["storage"]["raft"].as_object_mut() {
        raft.remove("retry_join");
    }
    config
}

pub fn throwaway_config_map(cluster: &OpenBaoCluster, drill: &str) -> ConfigMap {
    let text = serde_json::to_string_pretty(&throwaway_config(cluster)).expect("JSON serializes");
    ConfigMap {
        metadata: owned_meta(cluster, drill.into(), labels(&cluster.name_any(), drill)),
        data: Some([(CONFIG_FILE.to_string(), text)].into()),
        ..Default::default()
    }
}

/// The throwaway pod: the StatefulSet's pod, its configuration the
/// drill's ConfigMap, its data an emptyDir, never restarted.
pub fn throwaway_pod(cluster: &OpenBaoCluster, release: &Release, drill: &str) -> Pod {
    let template = pod_template(cluster, release);
    let mut spec = template.spec.expect("a pod spec");
    spec.restart_policy = Some("Never".into());
    // Alone: no spreading among the cluster's pods, and no API access.
    spec.affinity = None;
    spec.service_account_name = None;
    spec.automount_service_account_token = Some(false);
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    for volume in volumes.iter_mut() {
        if let Some(map) = volume.config_map.as_mut() {
            map.name = drill.into();
        }
    }
    volumes.push(Volume {
        name: "data".into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    });
    for container in &mut spec.containers {
        // The StatefulSet's readiness probe asks for an initialised node.
        container.readiness_probe = None;
    }
    let mut metadata = owned_meta(cluster, drill.into(), labels(&cluster.name_any(), drill));
    metadata.annotations = template.metadata.and_then(|m| m.annotations);
    Pod {
        metadata,
        spec: Some(spec),
        status: None,
    }
}

/// The address the drill Job gives the throwaway: the cluster's Service
/// name (its TLS certificate's), connected to at the pod's IP.
pub fn throwaway_addr(cluster: &OpenBaoCluster) -> String {
    let namespace = cluster.namespace().unwrap_or_default();
    format!(
        "https://{}.{namespace}.svc:{OPENBAO_PORT}",
        cluster.name_any()
    )
}

/// The Job running `drill` against the throwaway at `ip`: the backup
/// pods' hardening, target, plugins and manifest key; the canary's
/// credentials; the spool on an emptyDir.
pub fn drill_job(
    cluster: &OpenBaoCluster,
    settings: &OperatorSettings,
    drill: &str,
    ip: &str,
) -> Job {
    let backup = cluster.spec.backup.clone().unwrap_or_default();
    let canary = backup.restore_test.as_ref().and_then(|t| t.canary.clone());
    let image = settings.executor_image(backup.executor_image.as_deref());
    let mut env = vec![
        env_var(env::BACKUP_KEY, "latest".into()),
        env_var(env::DRILL_SPOOL_DIR, DRILL_SPOOL_DIR.into()),
        env_var(env::DRILL_THROWAWAY_IP, ip.into()),
        result_env(),
    ];
    if let Some(canary) = &canary {
        env.push(env_var(env::DRILL_CANARY_PATH, canary.path.clone()));
        if let Some(key) = &canary.key {
            env.push(env_var(env::DRILL_CANARY_KEY, key.clone()));
        }
    }
    let mut pod = executor_pod(
        cluster,
        settings,
        Executor {
            command: command::DRILL,
            service_account: service_account_name(&cluster.name_any()),
            image,
            target: &backup.target,
            jwt_auth_role: canary.as_ref().and_then(|c| c.jwt_auth_role.as_deref()),
            token_secret_ref: canary.as_ref().and_then(|c| c.token_secret_ref.as_ref()),
            plugins: backup
                .transforms
                .iter()
                .enumerate()
                .map(|(i, plugin)| (flag::PLUGIN, plugin, format!("plugin-{i}")))
                .collect(),
            env,
        },
    );
    let container = &mut pod.containers[0];
    for var in container.env.iter_mut().flatten() {
        if var.name == env::OPENBAO_ADDR {
            var.value = Some(throwaway_addr(cluster));
        }
    }
    container
        .volume_mounts
        .get_or_insert_with(Vec::new)
        .push(writable_mount("spool", DRILL_SPOOL_DIR));
    pod.volumes.get_or_insert_with(Vec::new).push(Volume {
        name: "spool".into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    });
    let labels = labels(&cluster.name_any(), drill);
    let mut spec = executor_job_spec(cluster, labels.clone(), pod);
    spec.active_deadline_seconds = Some(2 * 3600);
    Job {
        metadata: owned_meta(cluster, drill.into(), labels),
        spec: Some(spec),
        status: None,
    }
}
