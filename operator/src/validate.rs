//! What the API server cannot check about a spec: cron syntax,
//! durations, name formats, and the rules older API servers (no CEL) skip.
//! Pure: every problem found is returned, each naming its field and the fix,
//! for the `WorkloadConfigured` and `BackupConfigured` conditions.

use std::time::Duration;

use cron::Schedule;

use kube::ResourceExt;

use crate::api::{
    BackupSpec, BackupTarget, CANARY_AUTH_MESSAGE, ExternalSpec, OpenBaoCluster,
    OpenBaoClusterSpec, OpenBaoRestoreSpec, PLUGIN_SOURCE_MESSAGE, PluginRef, Profile,
    RESTORE_TEST_WHEN_MESSAGE,
};
use crate::settings::OperatorSettings;
use crate::{openbao_config, schedule};
use contract::executor::copies::MAX_COPIES;
use contract::executor::upload::{MAX_CONCURRENCY, MAX_PART_SIZE, MIN_PART_SIZE};
use contract::plugin_spec::{Kind, builtin, builtin_names};

/// A `spec.backup` that passed validation, with its parsed parts.
#[derive(Debug, Clone)]
pub struct ValidBackup {
    pub schedule: Schedule,
    pub max_age: Option<Duration>,
}

/// `settings` give the allow-list ([`image_allowed`]) and the default
/// executor image.
pub fn validate(
    spec: &OpenBaoClusterSpec,
    settings: &OperatorSettings,
) -> Result<Option<ValidBackup>, Vec<String>> {
    let mut problems = Vec::new();
    let pre_upgrade = spec
        .upgrade
        .as_ref()
        .is_some_and(|u| u.pre_upgrade_snapshot);
    let Some(backup) = &spec.backup else {
        if pre_upgrade {
            problems.push(
                "spec.upgrade.preUpgradeSnapshot needs a backup target: add spec.backup or set preUpgradeSnapshot to false"
                    .to_string(),
            );
            return Err(problems);
        }
        return Ok(None);
    };
    let valid = validate_backup(backup, &mut problems);
    check_image(
        settings.executor_image(backup.executor_image.as_deref()),
        "spec.backup.executorImage",
        &settings.executor_images,
        &mut problems,
    );
    if problems.is_empty() {
        Ok(valid)
    } else {
        Err(problems)
    }
}

/// What the API server cannot check about the workload (or, before CEL,
/// skips): a release to run, the extra configuration and self-init.
pub fn workload(cluster: &str, spec: &OpenBaoClusterSpec) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(external) = &spec.external {
        problems.extend(
            spec.workload_fields_set()
                .into_iter()
                .map(crate::api::not_with_external),
        );
        check_external(external, &mut problems);
    } else if spec.version.is_none() && spec.image.is_none() {
        problems.push(
            "spec.version: give OpenBao's version (e.g. 2.4.1), or spec.image (or spec.external for an OpenBao the operator does not run)"
                .to_string(),
        );
    }
    // `<cluster>-pre-upgrade-<10 hex>` names a Job, and Job names end up
    // in 63-character label values.
    if cluster.len() > MAX_CLUSTER_NAME {
        problems.push(format!(
            "metadata.name: at most {MAX_CLUSTER_NAME} characters (the names of the cluster's pods and Jobs derive from it)"
        ));
    }
    if spec.external.is_none() {
        openbao_config::check(spec, &mut problems);
    }
    let clients = spec.network_policy.iter().flat_map(|p| &p.api_clients);
    for (i, client) in clients.enumerate() {
        if client.namespace_selector.is_none() && client.pod_selector.is_none() {
            problems.push(format!(
                "spec.networkPolicy.apiClients[{i}] selects nothing: give a namespaceSelector, a podSelector or both"
            ));
        }
    }
    problems
}

/// `spec.external`: addresses or a Service, and the CA's Secret.
fn check_external(external: &ExternalSpec, problems: &mut Vec<String>) {
    if external.addresses.is_empty() == external.service.is_none() {
        problems.push(
            "spec.external: set exactly one of addresses (each node's API URL) and service (a Service of this namespace)"
                .into(),
        );
    }
    for (i, address) in external.addresses.iter().enumerate() {
        let host = address
            .strip_prefix("https://")
            .or_else(|| address.strip_prefix("http://"));
        if host.is_none_or(|h| h.is_empty() || h.contains([',', ' ', '\t', '\n'])) {
            problems.push(format!(
                "spec.external.addresses[{i}] `{address}` is not an OpenBao API URL: give one node's https:// (or http://) URL, e.g. https://bao-0.bao-internal:8200"
            ));
        }
    }
    if let Some(service) = &external.service {
        check_name(&service.name, "spec.external.service.name", problems);
        if !matches!(service.scheme(), "https" | "http") {
            problems.push(format!(
                "spec.external.service.scheme `{}` is not https or http",
                service.scheme()
            ));
        }
        if service.port == Some(0) {
            problems.push(
                "spec.external.service.port is 0: give OpenBao's API port (8200 unless changed)"
                    .into(),
            );
        }
    }
    if let Some(ca) = &external.ca_secret_ref {
        check_name(&ca.name, "spec.external.caSecretRef.name", problems);
    }
}

/// What the workload's spec probably gets wrong but is still applied
/// (each names its field and the fix), for the `WorkloadConfigured`
/// condition's message and a `SpecWarning` event.
pub fn workload_warnings(spec: &OpenBaoClusterSpec) -> Vec<String> {
    if spec.external.is_some() {
        return Vec::new();
    }
    openbao_config::warnings(spec)
}

/// What `spec.backup` probably gets wrong but is still applied, for the
/// `BackupConfigured` condition's message and a `SpecWarning` event: a
/// ConfigMap plugin without a `sha256` pin runs whatever its ConfigMap
/// holds, so whoever may edit the ConfigMap decides what reads every
/// snapshot. (A built-in is part of the executor's binary: no pin needed.
/// The `Hardened` profile refuses such a plugin instead: `security`.)
pub fn backup_warnings(spec: &OpenBaoClusterSpec) -> Vec<String> {
    let Some(backup) = &spec.backup else {
        return Vec::new();
    };
    if spec.profile == Some(Profile::Hardened) {
        return Vec::new();
    }
    unpinned_plugins(backup)
        .filter_map(|(field, plugin)| {
            let map = plugin.config_map_ref.as_ref()?;
            Some(format!(
                "{field}.sha256 is not set: whoever can edit ConfigMap {} can swap the plugin; pin it with the plugin's sha256sum",
                map.name
            ))
        })
        .collect()
}

/// The plugins of `spec.backup` without a `sha256` pin, with their fields.
pub fn unpinned_plugins(backup: &BackupSpec) -> impl Iterator<Item = (String, &PluginRef)> {
    let transforms = backup
        .transforms
        .iter()
        .enumerate()
        .map(|(i, plugin)| (format!("spec.backup.transforms[{i}]"), plugin));
    let retention = backup
        .retention_plugin
        .iter()
        .map(|plugin| ("spec.backup.retentionPlugin".to_string(), plugin));
    transforms
        .chain(retention)
        .filter(|(_, plugin)| needs_pin(plugin))
}

/// Whether a plugin runs code that a `sha256` pin should hold, and has
/// none: a ConfigMap plugin without one. A built-in is part of the
/// executor's binary: it needs no pin.
pub fn needs_pin(plugin: &PluginRef) -> bool {
    plugin.config_map_ref.is_some() && plugin.sha256.is_none()
}

const MAX_CLUSTER_NAME: usize = 36;

/// What an OpenBaoRestore needs from itself and its cluster; every problem
/// names its field.
pub fn restore(
    restore: &OpenBaoRestoreSpec,
    cluster: &OpenBaoCluster,
    settings: &OperatorSettings,
) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    let backup = cluster.spec.backup.as_ref();
    if restore.key.trim().is_empty() {
        problems.push("spec.key is empty: give a backup's object key, or `latest`".into());
    }
    match (&restore.jwt_auth_role, &restore.token_secret_ref) {
        (Some(_), Some(_)) | (None, None) => problems.push(
            "spec: set exactly one of jwtAuthRole (JWT auth with the cluster's restore ServiceAccount) and tokenSecretRef (a Secret holding a token)"
                .into(),
        ),
        (Some(_), None) if backup.and_then(|b| b.jwt_auth_role.as_ref()).is_none() => problems.push(
            "spec.jwtAuthRole: the cluster has no restore ServiceAccount (its spec.backup does not use jwtAuthRole); use tokenSecretRef"
                .into(),
        ),
        (None, Some(secret)) => check_name(&secret.name, "spec.tokenSecretRef.name", &mut problems),
        _ => {}
    }
    if let Some(source) = &restore.source_cluster {
        check_name(source, "spec.sourceCluster", &mut problems);
    }
    if restore.source.is_none() && backup.is_none() {
        problems.push(format!(
            "spec.source: OpenBaoCluster {} has no spec.backup.target to read from; give spec.source",
            cluster.name_any()
        ));
    }
    if let Some(source) = &restore.source {
        check_target(source, "spec.source", &mut problems);
    }
    let image = restore_image(restore, cluster, settings);
    if image.trim().is_empty() {
        problems.push("spec.executorImage is empty: give the executor image, or omit it".into());
    } else {
        check_image(
            image,
            "spec.executorImage",
            &settings.executor_images,
            &mut problems,
        );
    }
    for (i, plugin) in restore.plugins.iter().flatten().enumerate() {
        check_plugin(
            plugin,
            &format!("spec.plugins[{i}]"),
            Kind::Transform,
            &mut problems,
        );
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// `spec.backup.restoreTest` that passed validation: when drills run.
#[derive(Debug, Clone)]
pub enum DrillWhen {
    Schedule(Box<Schedule>),
    EveryBackups(u32),
}

/// What keeps `spec.backup.restoreTest` from running (each names its field
/// and why), for the `RestoreTested` condition: these never stop backups.
/// None when no restoreTest is asked for.
pub fn restore_test(spec: &OpenBaoClusterSpec) -> Option<Result<DrillWhen, Vec<String>>> {
    let backup = spec.backup.as_ref()?;
    let test = backup.restore_test.as_ref()?;
    let mut problems = Vec::new();
    let when = match (&test.schedule, test.every_backups) {
        (Some(schedule), None) => schedule::parse(schedule)
            .map(|s| DrillWhen::Schedule(Box::new(s)))
            .map_err(|e| problems.push(format!("spec.backup.restoreTest.schedule: {e}")))
            .ok(),
        (None, Some(0)) => {
            problems.push(
                "spec.backup.restoreTest.everyBackups is 0: give at least 1 (a drill after every N successful backups)".into(),
            );
            None
        }
        (None, Some(n)) => Some(DrillWhen::EveryBackups(n)),
        _ => {
            problems.push(RESTORE_TEST_WHEN_MESSAGE.into());
            None
        }
    };
    if let Some(canary) = &test.canary {
        if canary.path.trim().trim_matches('/').is_empty() {
            problems.push(
                "spec.backup.restoreTest.canary.path is empty: give a KV path such as secret/data/canary".into(),
            );
        }
        match (&canary.jwt_auth_role, &canary.token_secret_ref) {
            (Some(_), Some(_)) | (None, None) => problems.push(CANARY_AUTH_MESSAGE.into()),
            (Some(role), None) if role.trim().is_empty() => problems.push(
                "spec.backup.restoreTest.canary.jwtAuthRole is empty: give the OpenBao JWT role name".into(),
            ),
            (Some(_), None) if backup.jwt_auth_role.is_none() => problems.push(
                "spec.backup.restoreTest.canary.jwtAuthRole: the cluster has no backup ServiceAccount (its spec.backup does not use jwtAuthRole); use tokenSecretRef".into(),
            ),
            (None, Some(secret)) => check_name(
                &secret.name,
                "spec.backup.restoreTest.canary.tokenSecretRef.name",
                &mut problems,
            ),
            _ => {}
        }
    }
    if spec.external.is_some() {
        problems.push(
            "spec.backup.restoreTest: a drill runs the cluster's OpenBao image in a throwaway pod, and an spec.external OpenBao has none here; remove restoreTest (or run `openbao-backup drill` yourself)".into(),
        );
    } else if spec.seal.is_none() && !spec.config.as_ref().is_some_and(|c| c.contains_key("seal")) {
        problems.push(
            "spec.backup.restoreTest: the cluster unseals with Shamir keys, which a throwaway OpenBao cannot use by itself; give the cluster auto-unseal (spec.seal.static, or a seal in spec.config) or remove restoreTest".into(),
        );
    }
    Some(match when {
        Some(when) if problems.is_empty() => Ok(when),
        _ => Err(problems),
    })
}

/// The image a restore runs: its own, else its cluster's backup image,
/// else the operator's default.
pub fn restore_image<'a>(
    restore: &'a OpenBaoRestoreSpec,
    cluster: &'a OpenBaoCluster,
    settings: &'a OperatorSettings,
) -> &'a str {
    let backup = cluster.spec.backup.as_ref();
    settings.executor_image(
        restore
            .executor_image
            .as_deref()
            .or(backup.and_then(|b| b.executor_image.as_deref())),
    )
}

fn validate_backup(backup: &BackupSpec, problems: &mut Vec<String>) -> Option<ValidBackup> {
    let schedule = schedule::parse(&backup.schedule)
        .map_err(|e| problems.push(format!("spec.backup.schedule: {e}")))
        .ok();
    if backup
        .executor_image
        .as_deref()
        .is_some_and(|image| image.trim().is_empty())
    {
        problems.push(
            "spec.backup.executorImage is empty: give the backup executor image, or omit it".into(),
        );
    }
    match (&backup.jwt_auth_role, &backup.token_secret_ref) {
        (Some(_), Some(_)) | (None, None) => problems.push(
            "spec.backup: set exactly one of jwtAuthRole (JWT auth with the backup ServiceAccount) and tokenSecretRef (a Secret holding a token)"
                .into(),
        ),
        (Some(role), None) if role.trim().is_empty() => {
            problems.push("spec.backup.jwtAuthRole is empty: give the OpenBao JWT role name".into())
        }
        (None, Some(secret)) => check_name(&secret.name, "spec.backup.tokenSecretRef.name", problems),
        _ => {}
    }

    check_target(&backup.target, "spec.backup.target", problems);
    if backup.copies.len() > MAX_COPIES {
        problems.push(format!(
            "spec.backup.copies has {} copies; at most {MAX_COPIES}",
            backup.copies.len()
        ));
    }
    for (i, copy) in backup.copies.iter().enumerate() {
        let field = format!("spec.backup.copies[{i}]");
        check_target(copy, &field, problems);
        if copy.path_prefix.is_some() || copy.part_size.is_some() || copy.concurrency.is_some() {
            let fix = crate::api::COPY_SETTINGS_MESSAGE.trim_start_matches("spec.backup.copies: ");
            problems.push(format!("{field}: {fix}"));
        }
    }

    let max_age = backup
        .retention
        .as_ref()
        .and_then(|r| r.max_age.as_deref())
        .and_then(|age| {
            contract::units::parse_duration(age)
                .and_then(|limit| {
                    if limit < MIN_MAX_AGE {
                        Err(format!("`{age}` is under 1h; give at least \"1h\""))
                    } else {
                        Ok(limit)
                    }
                })
                .map_err(|e| problems.push(format!("spec.backup.retention.maxAge: {e}")))
                .ok()
        });

    for (i, plugin) in backup.transforms.iter().enumerate() {
        check_plugin(
            plugin,
            &format!("spec.backup.transforms[{i}]"),
            Kind::Transform,
            problems,
        );
    }
    if let Some(plugin) = &backup.retention_plugin {
        check_plugin(
            plugin,
            "spec.backup.retentionPlugin",
            Kind::Retention,
            problems,
        );
        if backup.retention.is_some() {
            problems.push(
                "spec.backup: retention and retentionPlugin both set; the plugin decides alone, so remove retention".into(),
            );
        }
    }
    Some(ValidBackup {
        schedule: schedule?,
        max_age,
    })
}

/// Whether the operator may run `image`: it is in the repository of an
/// entry of `allowed` (any tag or digest of it), under an entry ending in
/// `/` (a registry or an organization), or an entry is `*`.
pub fn image_allowed(image: &str, allowed: &[String]) -> bool {
    allowed.iter().any(|entry| {
        entry == "*"
            || (entry.ends_with('/') && image.starts_with(entry.as_str()))
            || image.strip_prefix(entry.as_str()).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with(':') || rest.starts_with('@')
            })
    })
}

/// The operator's own settings, checked once at start: its default
/// executor image must be one its allow-list accepts.
pub fn operator_settings(settings: &OperatorSettings) -> Result<(), String> {
    let image = &settings.default_executor_image;
    if image.trim().is_empty() {
        return Err("DEFAULT_EXECUTOR_IMAGE (--default-executor-image) is empty: give the executor image of specs that name none".into());
    }
    if !image_allowed(image, &settings.executor_images) {
        return Err(format!(
            "DEFAULT_EXECUTOR_IMAGE (--default-executor-image) `{image}` is not allowed by EXECUTOR_IMAGES ({}): add it there, or pick an allowed image",
            settings.executor_images.join(", ")
        ));
    }
    Ok(())
}

fn check_image(image: &str, field: &str, allowed: &[String], problems: &mut Vec<String>) {
    if !image.trim().is_empty() && !image_allowed(image, allowed) {
        problems.push(format!(
            "{field} `{image}` is not an image this operator runs (it allows {}): use one of those, or have the operator's administrator add it to EXECUTOR_IMAGES",
            allowed.join(", ")
        ));
    }
}

/// What a storage target with not exactly one storage is told, by the CRD
/// (CEL) and the controller alike.
pub const TARGET_MESSAGE: &str = "set exactly one of bucket (an S3 bucket), volume (a PersistentVolumeClaim) and azure (an Azure Blob Storage container)";

/// The storage target's fields (`field` is where it sits in the spec).
fn check_target(target: &BackupTarget, field: &str, problems: &mut Vec<String>) {
    if let Some(endpoint) = &target.endpoint
        && !(endpoint.starts_with("https://") || endpoint.starts_with("http://"))
    {
        problems.push(format!(
            "{field}.endpoint `{endpoint}` must start with https:// (or http://)"
        ));
    }
    let given: Vec<&str> = [
        (!target.bucket.trim().is_empty(), "bucket"),
        (target.volume.is_some(), "volume"),
        (target.azure.is_some(), "azure"),
    ]
    .into_iter()
    .filter_map(|(given, name)| given.then_some(name))
    .collect();
    if given.len() != 1 {
        problems.push(format!(
            "{field}: {TARGET_MESSAGE} ({})",
            if given.is_empty() {
                "none is set".to_string()
            } else {
                format!("{} are set", given.join(" and "))
            }
        ));
    }
    if let Some(volume) = &target.volume {
        check_name(
            &volume.persistent_volume_claim.claim_name,
            &format!("{field}.volume.persistentVolumeClaim.claimName"),
            problems,
        );
        if let Some(sub_path) = &volume.sub_path
            && (sub_path.starts_with('/') || sub_path.split('/').any(|p| p == ".."))
        {
            problems.push(format!(
                "{field}.volume.subPath `{sub_path}` must be a relative path without `..`"
            ));
        }
    }
    if let Some(azure) = &target.azure {
        if azure.account.trim().is_empty() || azure.container.trim().is_empty() {
            problems.push(format!("{field}.azure: give both account and container"));
        }
        if let Some(endpoint) = &azure.endpoint
            && !(endpoint.starts_with("https://") || endpoint.starts_with("http://"))
        {
            problems.push(format!(
                "{field}.azure.endpoint `{endpoint}` must start with https:// (or http://)"
            ));
        }
        if target.credentials_secret_ref.is_none() {
            problems.push(format!(
                "{field}.azure needs {field}.credentialsSecretRef: a Secret with the account key as `accountKey`"
            ));
        }
    }
    if let Some(secret) = &target.credentials_secret_ref {
        check_name(
            &secret.name,
            &format!("{field}.credentialsSecretRef.name"),
            problems,
        );
    }
    let part_size = target.part_size();
    if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&part_size) {
        problems.push(format!(
            "{field}.partSize is {part_size}; S3 parts are 5 MiB ({MIN_PART_SIZE}) to 5 GiB"
        ));
    }
    if !(1..=MAX_CONCURRENCY).contains(&target.concurrency()) {
        problems.push(format!(
            "{field}.concurrency is {}; use 1 to {MAX_CONCURRENCY}",
            target.concurrency()
        ));
    }
}

/// A plugin reference: exactly one source, a built-in of the right kind
/// (`kind`: where it is used), names and keys Kubernetes accepts.
fn check_plugin(plugin: &PluginRef, field: &str, kind: Kind, problems: &mut Vec<String>) {
    match (&plugin.builtin, &plugin.config_map_ref) {
        (Some(_), Some(_)) | (None, None) => {
            problems.push(format!("{field}: {PLUGIN_SOURCE_MESSAGE}"));
        }
        (Some(name), None) => match builtin(name) {
            None => problems.push(format!(
                "{field}.builtin `{name}` is not a built-in plugin: use one of {}",
                builtin_names()
            )),
            Some(b) if b.kind != kind => problems.push(format!(
                "{field}.builtin `{name}` is a {} plugin; this field takes a {} plugin",
                b.kind.as_str(),
                kind.as_str()
            )),
            Some(_) => {}
        },
        (None, Some(map)) => {
            check_name(&map.name, &format!("{field}.configMapRef.name"), problems);
            let key = &map.key;
            if key.is_empty()
                || !key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
            {
                problems.push(format!(
                    "{field}.configMapRef.key `{key}` is not a ConfigMap key (letters, digits, `-`, `_`, `.`)"
                ));
            }
        }
    }
    if let Some(digest) = &plugin.sha256
        && !(digest.len() == 64
            && digest
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)))
    {
        problems.push(format!(
            "{field}.sha256 must be 64 lowercase hex digits (sha256sum of the plugin)"
        ));
    }
    for (i, secret) in plugin.secret_config.iter().enumerate() {
        check_name(
            &secret.secret_key_ref.name,
            &format!("{field}.secretConfig[{i}].secretKeyRef.name"),
            problems,
        );
        let in_config = plugin
            .config
            .as_ref()
            .is_some_and(|c| c.contains_key(&secret.name));
        let repeated = plugin.secret_config[..i]
            .iter()
            .any(|s| s.name == secret.name);
        if in_config || repeated {
            problems.push(format!(
                "{field}.secretConfig[{i}].name `{}` is set twice (in config or secretConfig); keep one",
                secret.name
            ));
        }
    }
}

/// Object names (Secrets, ConfigMaps) are RFC 1123 subdomains, in the
/// resource's own namespace.
fn check_name(name: &str, field: &str, problems: &mut Vec<String>) {
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if !valid {
        problems.push(format!(
            "{field} `{name}` is not a Kubernetes object name (lowercase letters, digits, `-`, `.`); references are by name, in the same namespace"
        ));
    }
}

/// The shortest `maxAge`: a shorter one would delete the backup a run
/// has just taken before the next run.
pub const MIN_MAX_AGE: Duration = Duration::from_secs(3600);

/// What `spec.backup.pod` and `spec.backup.cronJob` probably get wrong
/// but the operator applies anyway: pod labels with a key of the
/// operator's own labels, which are ignored (the operator's values stay,
/// so its watches and the NetworkPolicy keep finding the pods).
pub fn executor_pod_warnings(spec: &OpenBaoClusterSpec) -> Vec<String> {
    let Some(pod) = spec.backup.as_ref().and_then(|b| b.pod.as_ref()) else {
        return Vec::new();
    };
    let own = crate::names::backup_labels("");
    pod.labels
        .keys()
        .filter(|key| own.contains_key(*key))
        .map(|key| {
            format!(
                "spec.backup.pod.labels.{key} is ignored: the operator sets it to select its pods; use another key"
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        BackupTarget, ConfigMapKeyRef, LocalRef, RetentionSpec, SecretConfig, SecretKeyRef,
        UpgradeSpec,
    };

    fn images() -> OperatorSettings {
        OperatorSettings {
            executor_images: vec!["openbao/backup-executor".into()],
            ..Default::default()
        }
    }

    fn backup() -> BackupSpec {
        BackupSpec {
            schedule: "0 3 * * *".into(),
            executor_image: Some("openbao/backup-executor:v0.1.0".into()),
            jwt_auth_role: Some("backup".into()),
            target: BackupTarget {
                bucket: "openbao-backups".into(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn problems(backup: BackupSpec) -> String {
        let spec = OpenBaoClusterSpec {
            backup: Some(backup),
            ..Default::default()
        };
        validate(&spec, &images()).unwrap_err().join("\n")
    }

    #[test]
    fn copies_are_targets_named_by_their_place_at_most_four() {
        let bucket = |name: &str| BackupTarget {
            bucket: name.into(),
            ..Default::default()
        };
        let with = |copies: Vec<BackupTarget>| problems(BackupSpec { copies, ..backup() });
        let fine = OpenBaoClusterSpec {
            backup: Some(BackupSpec {
                copies: vec![bucket("offsite")],
                ..backup()
            }),
            ..Default::default()
        };
        assert!(validate(&fine, &images()).is_ok());
        let found = with(vec![
            bucket("offsite"),
            BackupTarget {
                path_prefix: Some("other".into()),
                ..bucket("elsewhere")
            },
            BackupTarget::default(),
        ]);
        assert!(
            found.contains("spec.backup.copies[1]: a copy keeps spec.backup.target's pathPrefix"),
            "{found}"
        );
        assert!(
            found.contains(&format!("spec.backup.copies[2]: {TARGET_MESSAGE}")),
            "{found}"
        );
        assert!(!found.contains("copies[0]"), "{found}");
        let found = with((0..5).map(|i| bucket(&format!("copy-{i}"))).collect());
        assert!(
            found.contains("spec.backup.copies has 5 copies; at most 4"),
            "{found}"
        );
    }

    #[test]
    fn a_storage_target_is_one_bucket_volume_or_container_named_right() {
        let with = |target: BackupTarget| problems(BackupSpec { target, ..backup() });
        let volume = |claim: &str, sub_path: &str| crate::api::VolumeTarget {
            persistent_volume_claim: crate::api::ClaimRef {
                claim_name: claim.into(),
            },
            sub_path: Some(sub_path.into()),
        };
        let azure = crate::api::AzureTarget {
            account: "acct".into(),
            container: "backups".into(),
            endpoint: Some("blob.local".into()),
        };
        let both = with(BackupTarget {
            bucket: "b".repeat(3),
            volume: Some(volume("backups", "bao")),
            ..Default::default()
        });
        assert!(
            both.contains(&format!(
                "spec.backup.target: {TARGET_MESSAGE} (bucket and volume are set)"
            )),
            "{both}"
        );
        let none = with(BackupTarget::default());
        assert!(none.contains("(none is set)"), "{none}");
        let bad_volume = with(BackupTarget {
            volume: Some(volume("Backups", "../other")),
            ..Default::default()
        });
        assert!(
            bad_volume.contains("spec.backup.target.volume.persistentVolumeClaim.claimName")
                && bad_volume.contains(
                    "spec.backup.target.volume.subPath `../other` must be a relative path without `..`"
                ),
            "{bad_volume}"
        );
        let bad_azure = with(BackupTarget {
            azure: Some(azure),
            ..Default::default()
        });
        assert!(
            bad_azure.contains(
                "spec.backup.target.azure.endpoint `blob.local` must start with https://"
            ) && bad_azure
                .contains("spec.backup.target.azure needs spec.backup.target.credentialsSecretRef"),
            "{bad_azure}"
        );
    }

    #[test]
    fn a_minimal_backup_is_valid() {
        let spec = OpenBaoClusterSpec {
            backup: Some(backup()),
            ..Default::default()
        };
        assert!(validate(&spec, &images()).unwrap().is_some());
        assert!(
            validate(&OpenBaoClusterSpec::default(), &images())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn every_problem_names_its_field() {
        let all = problems(BackupSpec {
            schedule: "0 3 * *".into(),
            executor_image: Some(" ".into()),
            token_secret_ref: Some(LocalRef {
                name: "Backup_Token".into(),
            }),
            target: BackupTarget {
                endpoint: Some("s3.example.com".into()),
                bucket: "b".into(),
                part_size: Some(1024),
                concurrency: Some(0),
                ..Default::default()
            },
            retention: Some(RetentionSpec {
                max_count: Some(7),
                max_age: Some("7 days".into()),
            }),
            ..backup()
        });
        for field in [
            "spec.backup.schedule",
            "spec.backup.executorImage",
            "spec.backup: set exactly one of jwtAuthRole",
            "spec.backup.target.endpoint",
            "spec.backup.target.partSize",
            "spec.backup.target.concurrency",
            "spec.backup.retention.maxAge",
        ] {
            assert!(all.contains(field), "no problem names {field}:\n{all}");
        }
    }

    #[test]
    fn max_age_is_at_least_an_hour_and_at_most_a_century() {
        let max_age = |age: &str| {
            let spec = OpenBaoClusterSpec {
                backup: Some(BackupSpec {
                    retention: Some(RetentionSpec {
                        max_count: None,
                        max_age: Some(age.into()),
                    }),
                    ..backup()
                }),
                ..Default::default()
            };
            validate(&spec, &images()).map(|valid| valid.unwrap().max_age)
        };
        assert_eq!(max_age("1h"), Ok(Some(Duration::from_secs(3600))));
        assert_eq!(
            max_age("59m").unwrap_err(),
            ["spec.backup.retention.maxAge: `59m` is under 1h; give at least \"1h\""]
        );
        let huge = max_age("18446744073709551615s1s").unwrap_err();
        assert!(
            huge[0].starts_with("spec.backup.retention.maxAge: ") && huge[0].contains("100 years"),
            "{huge:?}"
        );
    }

    #[test]
    fn an_omitted_executor_image_is_the_operators_default_and_checked_as_one() {
        let omitted = BackupSpec {
            executor_image: None,
            ..backup()
        };
        let spec = OpenBaoClusterSpec {
            backup: Some(omitted),
            ..Default::default()
        };
        assert!(validate(&spec, &images()).unwrap().is_some());
        // The built-in default is allowed by the built-in allow-list.
        let defaults = OperatorSettings {
            executor_images: crate::settings::executor_images(
                crate::settings::DEFAULT_EXECUTOR_IMAGES,
            ),
            ..images()
        };
        assert_eq!(operator_settings(&defaults), Ok(()));
        let elsewhere = OperatorSettings {
            default_executor_image: "evil/backup-executor:v1".into(),
            ..images()
        };
        assert_eq!(
            operator_settings(&elsewhere).unwrap_err(),
            "DEFAULT_EXECUTOR_IMAGE (--default-executor-image) `evil/backup-executor:v1` is not allowed by EXECUTOR_IMAGES (openbao/backup-executor): add it there, or pick an allowed image"
        );
        assert!(validate(&spec, &elsewhere).unwrap_err()[0].contains("evil/backup-executor:v1"));
        let empty = OperatorSettings {
            default_executor_image: " ".into(),
            ..images()
        };
        assert!(operator_settings(&empty).unwrap_err().contains("is empty"));
    }

    #[test]
    fn only_allowed_executor_images_run() {
        let allowed: Vec<String> = vec![
            "openbao/backup-executor".into(),
            "registry.example.com/platform/".into(),
        ];
        for image in [
            "openbao/backup-executor",
            "openbao/backup-executor:v0.1.0",
            "openbao/backup-executor@sha256:abc",
            "registry.example.com/platform/executor:1",
        ] {
            assert!(image_allowed(image, &allowed), "{image}");
        }
        for image in [
            "openbao/backup-executor-evil:v1",
            "evil/backup-executor:v1",
            "registry.example.com/platformer/x:1",
        ] {
            assert!(!image_allowed(image, &allowed), "{image}");
        }
        assert!(image_allowed("anything:1", &["*".into()]));

        let refused = problems(BackupSpec {
            executor_image: Some("evil/backup-executor:v1".into()),
            ..backup()
        });
        assert_eq!(
            refused,
            "spec.backup.executorImage `evil/backup-executor:v1` is not an image this operator runs (it allows openbao/backup-executor): use one of those, or have the operator's administrator add it to EXECUTOR_IMAGES"
        );
    }

    #[test]
    fn restore_tests_name_their_field_and_never_block_backups() {
        let spec = |test: serde_json::Value, extra: serde_json::Value| -> OpenBaoClusterSpec {
            let mut spec = serde_json::json!({
                "version": "2.4.4",
                "seal": {"static": {"secretKeyRef": {"name": "s", "key": "k"}}},
                "backup": {"schedule": "0 3 * * *", "tokenSecretRef": {"name": "t"},
                           "target": {"bucket": "b"}, "restoreTest": test},
            });
            for (k, v) in extra.as_object().unwrap() {
                if v.is_null() {
                    spec.as_object_mut().unwrap().remove(k);
                } else {
                    spec[k] = v.clone();
                }
            }
            serde_json::from_value(spec).unwrap()
        };
        let none = serde_json::json!({});
        let problems = |test, extra| match restore_test(&spec(test, extra)) {
            Some(Err(p)) => p.join("\n"),
            other => panic!("{other:?}"),
        };
        assert!(matches!(
            restore_test(&spec(
                serde_json::json!({"schedule": "@daily"}),
                none.clone()
            )),
            Some(Ok(DrillWhen::Schedule(_)))
        ));
        assert!(matches!(
            restore_test(&spec(serde_json::json!({"everyBackups": 7}), none.clone())),
            Some(Ok(DrillWhen::EveryBackups(7)))
        ));
        assert!(restore_test(&OpenBaoClusterSpec::default()).is_none());
        let both = problems(
            serde_json::json!({"schedule": "@daily", "everyBackups": 2}),
            none.clone(),
        );
        assert!(both.starts_with(RESTORE_TEST_WHEN_MESSAGE), "{both}");
        assert!(
            problems(serde_json::json!({"schedule": "0 3 *"}), none.clone())
                .starts_with("spec.backup.restoreTest.schedule: `0 3 *` has 3 fields")
        );
        assert!(
            problems(serde_json::json!({"everyBackups": 0}), none.clone())
                .starts_with("spec.backup.restoreTest.everyBackups is 0")
        );
        let canary = problems(
            serde_json::json!({"everyBackups": 1, "canary": {"path": "secret/data/c", "jwtAuthRole": "c"}}),
            none.clone(),
        );
        assert!(
            canary.starts_with("spec.backup.restoreTest.canary.jwtAuthRole: the cluster has no backup ServiceAccount"),
            "{canary}"
        );
        let canary = problems(
            serde_json::json!({"everyBackups": 1, "canary": {"path": "/"}}),
            none.clone(),
        );
        assert!(canary.contains("canary.path is empty") && canary.contains(CANARY_AUTH_MESSAGE));
        let shamir = problems(
            serde_json::json!({"everyBackups": 1}),
            serde_json::json!({"seal": null}),
        );
        assert!(
            shamir.starts_with("spec.backup.restoreTest: the cluster unseals with Shamir keys"),
            "{shamir}"
        );
        // A seal of the user's own in spec.config is auto-unseal too.
        assert!(matches!(
            restore_test(&spec(
                serde_json::json!({"everyBackups": 1}),
                serde_json::json!({"seal": null, "config": {"seal": {"transit": {}}}})
            )),
            Some(Ok(_))
        ));
        let external = problems(
            serde_json::json!({"everyBackups": 1}),
            serde_json::json!({"seal": null, "version": null, "external": {"addresses": ["https://bao:8200"]}}),
        );
        assert!(
            external.contains("spec.backup.restoreTest: a drill runs the cluster's OpenBao image"),
            "{external}"
        );
        // Backups stay valid whatever the drill gets wrong.
        let images = OperatorSettings {
            executor_images: vec!["*".into()],
            ..Default::default()
        };
        assert!(validate(&spec(serde_json::json!({}), none), &images).is_ok());
    }

    #[test]
    fn exactly_one_auth_method() {
        let neither = problems(BackupSpec {
            jwt_auth_role: None,
            ..backup()
        });
        assert!(neither.contains("exactly one"), "{neither}");
        let bad_name = problems(BackupSpec {
            jwt_auth_role: None,
            token_secret_ref: Some(LocalRef {
                name: "other-ns/token".into(),
            }),
            ..backup()
        });
        assert!(
            bad_name.contains("spec.backup.tokenSecretRef.name"),
            "{bad_name}"
        );
    }

    #[test]
    fn plugin_references() {
        let plugin = PluginRef {
            config_map_ref: Some(ConfigMapKeyRef {
                name: "zstd".into(),
                key: "plugin wasm".into(),
            }),
            sha256: Some("ABC".into()),
            config: Some(
                serde_json::json!({"identity": "in the open"})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
            secret_config: vec![SecretConfig {
                name: "identity".into(),
                secret_key_ref: SecretKeyRef {
                    name: "".into(),
                    key: "identity".into(),
                },
            }],
            builtin: None,
        };
        let all = problems(BackupSpec {
            transforms: vec![plugin.clone()],
            retention_plugin: Some(plugin),
            ..backup()
        });
        assert!(
            all.contains("spec.backup.transforms[0].configMapRef.key"),
            "{all}"
        );
        assert!(all.contains("spec.backup.transforms[0].sha256"), "{all}");
        assert!(
            all.contains("spec.backup.retentionPlugin.secretConfig[0].secretKeyRef.name"),
            "{all}"
        );
        assert!(
            all.contains("spec.backup.transforms[0].secretConfig[0].name `identity` is set twice"),
            "{all}"
        );
    }

    #[test]
    fn builtin_plugins_are_named_and_of_the_right_kind() {
        let builtin = |name: &str| PluginRef {
            builtin: Some(name.into()),
            ..Default::default()
        };
        let ok = BackupSpec {
            transforms: vec![builtin("zstd"), builtin("age")],
            retention_plugin: Some(builtin("keep-last")),
            ..backup()
        };
        assert!(
            validate(
                &OpenBaoClusterSpec {
                    backup: Some(ok),
                    ..Default::default()
                },
                &images()
            )
            .is_ok()
        );
        let both = PluginRef {
            config_map_ref: Some(ConfigMapKeyRef {
                name: "zstd".into(),
                key: "zstd.wasm".into(),
            }),
            ..builtin("zstd")
        };
        let all = problems(BackupSpec {
            transforms: vec![both, PluginRef::default(), builtin("gzip")],
            retention_plugin: Some(builtin("zstd")),
            ..backup()
        });
        assert!(
            all.contains("spec.backup.transforms[0]: set exactly one of configMapRef (a plugin in a ConfigMap) and builtin"),
            "{all}"
        );
        assert!(
            all.contains("spec.backup.transforms[1]: set exactly one of configMapRef"),
            "{all}"
        );
        assert!(
            all.contains("spec.backup.transforms[2].builtin `gzip` is not a built-in plugin: use one of zstd, age, keep-last, gfs"),
            "{all}"
        );
        assert!(
            all.contains("spec.backup.retentionPlugin.builtin `zstd` is a transform plugin; this field takes a retention plugin"),
            "{all}"
        );
    }

    #[test]
    fn unpinned_plugins_are_warned_about() {
        let plugin = |sha256: Option<&str>| PluginRef {
            config_map_ref: Some(ConfigMapKeyRef {
                name: "zstd-plugin".into(),
                key: "zstd.wasm".into(),
            }),
            sha256: sha256.map(str::to_string),
            ..Default::default()
        };
        let spec = OpenBaoClusterSpec {
            backup: Some(BackupSpec {
                transforms: vec![
                    plugin(Some(&"a".repeat(64))),
                    plugin(None),
                    PluginRef {
                        builtin: Some("zstd".into()),
                        ..Default::default()
                    },
                ],
                retention_plugin: Some(plugin(None)),
                ..backup()
            }),
            ..Default::default()
        };
        assert!(validate(&spec, &images()).is_ok(), "valid, with warnings");
        // The unpinned built-in (transforms[2]) is not warned about.
        let warnings = backup_warnings(&spec);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].starts_with("spec.backup.transforms[1].sha256 is not set: whoever can edit ConfigMap zstd-plugin"),
            "{warnings:?}"
        );
        assert!(warnings[1].starts_with("spec.backup.retentionPlugin.sha256"));
        assert!(backup_warnings(&OpenBaoClusterSpec::default()).is_empty());
    }

    #[test]
    fn pre_upgrade_snapshot_needs_a_target() {
        let spec = OpenBaoClusterSpec {
            upgrade: Some(UpgradeSpec {
                pre_upgrade_snapshot: true,
            }),
            ..Default::default()
        };
        assert!(validate(&spec, &images()).unwrap_err()[0].contains("needs a backup target"));
    }

    #[test]
    fn an_external_openbao_takes_none_of_the_workloads_fields() {
        let external = |external: ExternalSpec| OpenBaoClusterSpec {
            external: Some(external),
            ..Default::default()
        };
        let addresses = ExternalSpec {
            addresses: vec!["https://bao-0.bao-internal:8200".into()],
            ..Default::default()
        };
        let valid = external(addresses.clone());
        assert!(workload("bao", &valid).is_empty(), "no version needed");
        assert!(workload_warnings(&valid).is_empty());

        let mixed = OpenBaoClusterSpec {
            version: Some("2.4.1".into()),
            replicas: Some(3),
            upgrade: Some(UpgradeSpec {
                pre_upgrade_snapshot: true,
            }),
            self_init: Some(Default::default()),
            ..valid.clone()
        };
        assert_eq!(
            workload("bao", &mixed),
            [
                "spec.replicas does not apply to an external OpenBao (spec.external, which the operator does not run): remove one of them",
                "spec.version does not apply to an external OpenBao (spec.external, which the operator does not run): remove one of them",
                "spec.upgrade does not apply to an external OpenBao (spec.external, which the operator does not run): remove one of them",
                "spec.selfInit does not apply to an external OpenBao (spec.external, which the operator does not run): remove one of them",
            ]
        );

        let neither = workload("bao", &external(ExternalSpec::default()));
        assert_eq!(neither.len(), 1);
        assert!(neither[0].starts_with("spec.external: set exactly one of addresses"));
        let both = external(ExternalSpec {
            service: Some(crate::api::ExternalService {
                name: "Bao_Active".into(),
                port: Some(0),
                scheme: Some("tcp".into()),
            }),
            ca_secret_ref: Some(crate::api::SecretKeyRef {
                name: "".into(),
                key: "ca.crt".into(),
            }),
            addresses: vec!["bao-0:8200".into(), "https://a,https://b".into()],
        });
        let problems = workload("bao", &both).join("\n");
        for field in [
            "spec.external: set exactly one",
            "spec.external.addresses[0] `bao-0:8200` is not an OpenBao API URL",
            "spec.external.addresses[1]",
            "spec.external.service.name `Bao_Active`",
            "spec.external.service.scheme `tcp`",
            "spec.external.service.port is 0",
            "spec.external.caSecretRef.name",
        ] {
            assert!(problems.contains(field), "{field}: {problems}");
        }
        assert_eq!(problems.lines().count(), 7, "{problems}");
    }

    #[test]
    fn the_workload_needs_a_release_and_a_short_name() {
        let problems = workload(&"b".repeat(37), &OpenBaoClusterSpec::default());
        assert!(problems[0].starts_with("spec.version:"), "{problems:?}");
        assert!(
            problems[1].starts_with("metadata.name: at most 36"),
            "{problems:?}"
        );
        let spec = OpenBaoClusterSpec {
            image: Some("openbao/openbao:2.4.1".into()),
            ..Default::default()
        };
        assert!(workload("bao", &spec).is_empty());
    }
}
