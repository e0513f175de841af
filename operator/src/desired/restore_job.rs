//! The Job that runs `restore` for an `OpenBaoRestore`, owned by the
//! restore.

use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;

use super::executor_pod::{Executor, executor_job_spec, executor_pod, result_env};
use crate::api::{OpenBaoCluster, OpenBaoRestore};
use crate::names::{restore_job_name, restore_labels, restore_service_account_name};
use crate::objects::{env_var, owned_meta};
use crate::settings::OperatorSettings;
use contract::executor::{command, env, flag};

/// The restore's Job (validated first, `validate::restore`): its source,
/// auth and plugins, or the cluster's backup settings where it names none.
pub fn restore_job(
    restore: &OpenBaoRestore,
    cluster: &OpenBaoCluster,
    settings: &OperatorSettings,
) -> Job {
    let spec = &restore.spec;
    let backup = cluster.spec.backup.clone().unwrap_or_default();
    let target = spec.source.as_ref().unwrap_or(&backup.target);
    let image = crate::validate::restore_image(spec, cluster, settings);
    let plugins = spec.plugins.as_ref().unwrap_or(&backup.transforms);
    let mut env = vec![
        env_var(env::BACKUP_KEY, spec.key.clone()),
        env_var(env::RESTORE_FORCE, spec.force.to_string()),
        env_var(
            env::RESTORE_ALLOW_OTHER_CLUSTER,
            spec.allow_other_cluster.to_string(),
        ),
        env_var(env::RESTORE_DRY_RUN, spec.preview.to_string()),
        result_env(),
    ];
    if let Some(source) = &spec.source_cluster {
        env.push(env_var(env::RESTORE_SOURCE_CLUSTER, source.clone()));
    }
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
        metadata: owned_meta(
            restore,
            restore_job_name(&restore.name_any()),
            labels.clone(),
        ),
        spec: Some(executor_job_spec(cluster, labels, pod)),
        status: None,
    }
}
