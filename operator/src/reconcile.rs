//! One reconcile of one `OpenBaoCluster`, top to bottom: validate the spec,
//! read newly finished backup Jobs, make the OpenBao workload follow the
//! spec (an upgrade waits for its pre-upgrade backup, pods are replaced
//! one at a time), make the backup objects follow it, write the status
//! only if it changed, then tell people (events) and Prometheus. Deciding
//! is done by the pure modules; this one reads and writes.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::FutureExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ObjectReference, Pod, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{BackupSpec, OpenBaoCluster, OpenBaoRestore, RestorePhase};
use crate::desired::{backup, companions, statefulset};
use crate::metrics::Metrics;
use crate::names::{self, MANAGER};
use crate::release::Release;
use crate::rollout::{self, Step};
use crate::settings::OperatorSettings;
use crate::status::{
    BACKUP_CONFIGURED, Backups, Configured, JobOutcome, WORKLOAD_CONFIGURED, Workload,
};
use crate::upgrade::{self, Backup, Plan};
use crate::{jobs, schedule, status, validate};
use contract::result::BackupResult;

pub struct Context {
    pub client: Client,
    pub settings: OperatorSettings,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("OpenBaoCluster {0} has no namespace")]
    NoNamespace(String),
    #[error("the reconcile panicked: {0}")]
    Panicked(String),
    /// An object with a name the cluster's objects take exists and the
    /// cluster does not own it: it is left alone.
    #[error("{0}")]
    NotOwned(String),
}

/// Runs one reconcile so that a panic in it (a bug, or input nobody
/// foresaw) fails that reconcile alone: the controller, and every other
/// cluster with it, goes on, and the error policy retries later.
pub async fn contained(
    reconcile: impl Future<Output = Result<Action, Error>>,
) -> Result<Action, Error> {
    AssertUnwindSafe(reconcile)
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|text| text.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(Error::Panicked(message))
        })
}

pub async fn reconcile(cluster: Arc<OpenBaoCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = cluster.name_any();
    let namespace = cluster
        .namespace()
        .ok_or_else(|| Error::NoNamespace(name.clone()))?;
    if cluster.meta().deletion_timestamp.is_some() {
        // Owner references let the garbage collector remove the rest.
        ctx.metrics.forget_cluster(&namespace, &name);
        return Ok(Action::await_change());
    }
    let now = Utc::now();
    let previous = cluster.status.clone().unwrap_or_default();

    // 1. The spec, checked beyond what the API server could.
    let workload_problems = validate::workload(&name, &cluster.spec);
    let workload_warnings = validate::workload_warnings(&cluster.spec);
    let validation = validate::validate(&cluster.spec, &ctx.settings.executor_images);
    let backup_warnings = validate::backup_warnings(&cluster.spec);

    // 2. Backup Jobs that finished since the status last counted them.
    let already: &[String] = previous.backup.as_ref().map_or(&[], |b| &b.recorded_jobs);
    let backup_jobs = backup_jobs(&ctx.client, &namespace, &name).await?;
    let mut recorded = Vec::new();
    let mut outcomes = Vec::new();
    for job in &backup_jobs {
        let Some(finished) = jobs::finished(job) else {
            continue;
        };
        let uid = job.uid().unwrap_or_default();
        if !already.contains(&uid) {
            outcomes.push(job_outcome(&ctx.client, job, finished).await?);
        }
        recorded.push(uid);
    }
    recorded.sort();

    // 3. The workload follows a valid spec; upgrades wait for their
    //    pre-upgrade backup. An invalid spec keeps the last good objects.
    let (workload, upgrade_event, wait) = match Release::wanted(&cluster.spec) {
        Some(wanted) if workload_problems.is_empty() => {
            let backup_valid = matches!(validation, Ok(Some(_)));
            let (plan, live) = plan_workload(
                &cluster,
                &wanted,
                backup_valid,
                &backup_jobs,
                &outcomes,
                &ctx,
            )
            .await?;
            match apply_workload(&cluster, &plan, live.as_ref(), &ctx).await {
                Err(Error::NotOwned(why)) => {
                    let workload = Workload {
                        version: previous.version.clone(),
                        upgrade: previous.upgrade.clone(),
                        conditions: vec![status::not_owned(WORKLOAD_CONFIGURED, why)],
                    };
                    (workload, None, false)
                }
                applied => {
                    applied?;
                    // A failed pre-upgrade backup waits for the user, not a timer.
                    let wait = matches!(
                        plan.condition.reason,
                        "PreUpgradeBackup" | "RollingOut" | "WaitingForRestore"
                    );
                    let workload = Workload {
                        version: plan.version,
                        upgrade: plan.upgrade,
                        conditions: vec![
                            status::workload_configured(&[], &workload_warnings),
                            plan.condition,
                        ],
                    };
                    (workload, plan.event, wait)
                }
            }
        }
        _ => {
            let workload = Workload {
                version: previous.version.clone(),
                upgrade: previous.upgrade.clone(),
                conditions: vec![status::workload_configured(
                    &workload_problems,
                    &workload_warnings,
                )],
            };
            (workload, None, false)
        }
    };

    // 4. Backup objects follow a valid spec.backup; an invalid one keeps
    //    the last good objects so that a typo does not stop backups.
    let configured = match (&validation, &cluster.spec.backup) {
        (Ok(Some(_)), Some(backup)) => match apply_backup_objects(&cluster, backup, &ctx).await {
            Err(Error::NotOwned(why)) => Configured::NotOwned(why),
            configured => configured?,
        },
        (Err(problems), _) => Configured::Invalid(problems.clone()),
        _ => {
            delete_backup_objects(&cluster, &ctx).await?;
            Configured::Absent
        }
    };

    // 5. The status, written only when it changed, guarded by the
    //    resourceVersion we read so a stale cache can never count twice.
    let schedule = validation.ok().flatten().map(|v| v.schedule);
    let next_run = schedule.as_ref().and_then(|s| schedule::next_run(s, now));
    let new_status = status::next(
        cluster.status.as_ref(),
        workload,
        Backups {
            configured: &configured,
            warnings: &backup_warnings,
            outcomes: &outcomes,
            recorded_jobs: recorded,
            next_run,
        },
        cluster.meta().generation,
        now,
    );
    if previous != new_status {
        let mut updated = (*cluster).clone();
        updated.status = Some(new_status.clone());
        Api::<OpenBaoCluster>::namespaced(ctx.client.clone(), &namespace)
            .replace_status(&name, &PostParams::default(), &updated)
            .await?;
    }

    // 6. Events and metrics, once per Job, after the status holds it.
    for outcome in &outcomes {
        ctx.metrics.record(&namespace, &name, outcome);
        publish(&ctx.recorder, &cluster, backup_event(&namespace, outcome)).await;
        if let Some(event) = retention_event(&namespace, outcome) {
            publish(&ctx.recorder, &cluster, event).await;
        }
    }
    if let Some((type_, reason, note)) = upgrade_event {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: "Upgrade".into(),
            secondary: None,
        };
        publish(&ctx.recorder, &cluster, event).await;
    }
    let invalid: Vec<&String> = match &configured {
        Configured::Invalid(problems) => workload_problems.iter().chain(problems).collect(),
        _ => workload_problems.iter().collect(),
    };
    if !invalid.is_empty() && previous.conditions != new_status.conditions {
        let note = invalid
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        publish(
            &ctx.recorder,
            &cluster,
            warning("InvalidSpec", "Validate", note),
        )
        .await;
    }
    // Warnings once per change of what their condition says (a new
    // generation of the spec, say), not once per reconcile.
    for (type_, warnings) in [
        (WORKLOAD_CONFIGURED, &workload_warnings),
        (BACKUP_CONFIGURED, &backup_warnings),
    ] {
        let condition = |s: &crate::api::OpenBaoClusterStatus| {
            s.conditions.iter().find(|c| c.type_ == type_).cloned()
        };
        if !warnings.is_empty() && condition(&previous) != condition(&new_status) {
            publish(
                &ctx.recorder,
                &cluster,
                warning("SpecWarning", "Validate", warnings.join("; ")),
            )
            .await;
        }
    }
    if let Some(at) = new_status
        .backup
        .as_ref()
        .and_then(|b| b.last_backup_time.as_ref())
    {
        ctx.metrics
            .set_last_success(&namespace, &name, at.0.as_millisecond() as f64 / 1000.0);
    }

    Ok(match (configured, next_run) {
        // An upgrade or rollout in progress: pods and Jobs wake us as they
        // change; this is the fallback.
        _ if wait => Action::requeue(Duration::from_secs(30)),
        // Wake up once the next run is due, to move nextScheduledBackup on.
        (Configured::Applied, Some(next)) => {
            let wait = (next - now).to_std().unwrap_or_default();
            Action::requeue(wait + Duration::from_secs(30))
        }
        (Configured::Unschedulable(_), _) => Action::requeue(Duration::from_secs(600)),
        _ => Action::await_change(),
    })
}

/// Reads what the upgrade decision needs (the StatefulSet, its pods, the
/// pre-upgrade Job, a running restore) and decides.
async fn plan_workload(
    cluster: &OpenBaoCluster,
    wanted: &Release,
    backup_valid: bool,
    backup_jobs: &[Job],
    outcomes: &[JobOutcome],
    ctx: &Context,
) -> Result<(Plan, Option<StatefulSet>), Error> {
    let name = cluster.name_any();
    let namespace = cluster.namespace().unwrap_or_default();
    let statefulset = Api::<StatefulSet>::namespaced(ctx.client.clone(), &namespace)
        .get_opt(&name)
        .await?;
    let running = statefulset.as_ref().and_then(Release::running);
    let (rollout, updated) = match &statefulset {
        Some(statefulset) => {
            let selector = selector(&names::selector_labels(&name));
            let pods = Api::<Pod>::namespaced(ctx.client.clone(), &namespace)
                .list(&ListParams::default().labels(&selector))
                .await?
                .items;
            (
                rollout::next(statefulset, &pods),
                rollout::updated(statefulset, &pods),
            )
        }
        None => (Step::Done, (0, 0)),
    };
    let snapshot = cluster
        .spec
        .upgrade
        .as_ref()
        .is_some_and(|u| u.pre_upgrade_snapshot);
    let retry = cluster.annotations().get(upgrade::RETRY_ANNOTATION);
    let backup_job = upgrade::backup_job_name(&name, wanted, retry.map(String::as_str));
    let upgrading = running.as_ref().is_some_and(|r| r.image != wanted.image);
    let (mut backup, mut restoring) = (Backup::Missing, None);
    if upgrading {
        if snapshot && !backup_valid {
            backup = Backup::Failed {
                reason: "spec.backup is missing or invalid (see the BackupConfigured condition); the pre-upgrade backup needs its target".into(),
            };
        } else if snapshot {
            backup = pre_upgrade_backup(&ctx.client, backup_jobs, outcomes, &backup_job).await?;
        }
        restoring = running_restore(&ctx.client, cluster).await?;
    }
    let previous = cluster.status.as_ref();
    let plan = upgrade::plan(
        &upgrade::Observed {
            wanted,
            running: running.as_ref(),
            rollout: &rollout,
            updated,
            snapshot,
            backup_job: &backup_job,
            backup: &backup,
            restoring: restoring.as_deref(),
            previous: previous.and_then(|s| s.upgrade.as_ref()),
            version: previous.and_then(|s| s.version.as_deref()),
        },
        Utc::now(),
    );
    Ok((plan, statefulset))
}

/// The pre-upgrade backup Job of this attempt, by name among the backup
/// Jobs; a finished one's outcome from this pass or from its pod.
async fn pre_upgrade_backup(
    client: &Client,
    backup_jobs: &[Job],
    outcomes: &[JobOutcome],
    name: &str,
) -> Result<Backup, Error> {
    let Some(job) = backup_jobs.iter().find(|j| j.name_any() == name) else {
        return Ok(Backup::Missing);
    };
    let Some(finished) = jobs::finished(job) else {
        return Ok(Backup::Running);
    };
    let outcome = match outcomes.iter().find(|o| o.job_name == name) {
        Some(outcome) => outcome.clone(),
        None => job_outcome(client, job, finished).await?,
    };
    Ok(match &outcome.result {
        Some(BackupResult::Succeeded { key, .. }) if outcome.succeeded() => {
            Backup::Succeeded { key: key.clone() }
        }
        _ => Backup::Failed {
            reason: outcome.failure_reason(),
        },
    })
}

/// The OpenBaoRestores of this cluster.
pub(super) async fn restores_of(
    client: &Client,
    cluster: &OpenBaoCluster,
) -> kube::Result<Vec<OpenBaoRestore>> {
    let namespace = cluster.namespace().unwrap_or_default();
    let mut restores = Api::<OpenBaoRestore>::namespaced(client.clone(), &namespace)
        .list(&ListParams::default())
        .await?
        .items;
    restores.retain(|r| r.spec.cluster == cluster.name_any());
    Ok(restores)
}

/// A running OpenBaoRestore of this cluster: upgrades wait for it.
async fn running_restore(
    client: &Client,
    cluster: &OpenBaoCluster,
) -> Result<Option<String>, Error> {
    Ok(restores_of(client, cluster)
        .await?
        .iter()
        .find(|r| {
            r.status
                .as_ref()
                .is_some_and(|s| s.phase == RestorePhase::Running)
        })
        .map(|r| r.name_any()))
}

/// Server-side applies the workload with the plan's release, then starts
/// the pre-upgrade backup or replaces a pod, as the plan says.
async fn apply_workload(
    cluster: &OpenBaoCluster,
    plan: &Plan,
    live: Option<&StatefulSet>,
    ctx: &Context,
) -> Result<(), Error> {
    let client = &ctx.client;
    apply(client, &companions::service_account(cluster)).await?;
    apply(client, &companions::role(cluster)).await?;
    apply(client, &companions::role_binding(cluster)).await?;
    apply(client, &companions::config_map(cluster)).await?;
    apply(client, &companions::internal_service(cluster)).await?;
    apply(client, &companions::client_service(cluster)).await?;
    match apply(client, &companions::pod_disruption_budget(cluster)).await {
        // policy/v1 came with Kubernetes 1.21.
        Err(Error::Kube(kube::Error::Api(e))) if e.code == 404 => {
            tracing::debug!(cluster = %cluster.name_any(), "no policy/v1 PodDisruptionBudget on this API server");
        }
        other => other?,
    }
    let storage = live.and_then(statefulset::live_storage);
    let statefulset = statefulset::statefulset(cluster, &plan.deploy, storage);
    apply_body(client, &statefulset, &statefulset::apply_body(&statefulset)).await?;
    let namespace = cluster.namespace().unwrap_or_default();

    if plan.start_backup
        && let (Some(backup), Some(upgrade)) = (&cluster.spec.backup, &plan.upgrade)
        && let Some(job_name) = &upgrade.pre_upgrade_job
    {
        let job = backup::pre_upgrade_job(cluster, backup, &ctx.settings, job_name);
        match Api::<Job>::namespaced(client.clone(), &namespace)
            .create(&PostParams::default(), &job)
            .await
        {
            // Created by an earlier pass whose status write was lost.
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            other => drop(other?),
        }
        tracing::info!(cluster = %cluster.name_any(), job = %job_name, "pre-upgrade backup started");
    }
    if let Some((pod, uid)) = &plan.replace {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match Api::<Pod>::namespaced(client.clone(), &namespace)
            .delete(pod, &params)
            .await
        {
            // Gone already, or already its successor.
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            other => drop(other?),
        }
        tracing::info!(cluster = %cluster.name_any(), %pod, "pod replaced to roll out the StatefulSet's template");
    }
    Ok(())
}

pub fn error_policy(cluster: Arc<OpenBaoCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_failed();
    let conflict = matches!(error, Error::Kube(kube::Error::Api(e)) if e.code == 409);
    if conflict {
        // Our copy was stale; the watch brings the new one.
        tracing::debug!(cluster = %cluster.name_any(), "status changed meanwhile, retrying");
        return Action::requeue(Duration::from_secs(1));
    }
    tracing::warn!(cluster = %cluster.name_any(), namespace = ?cluster.namespace(), %error, "reconcile failed");
    Action::requeue(Duration::from_secs(30))
}

/// Server-side applies the backup and restore ServiceAccounts (JWT auth
/// only), the NetworkPolicy and the CronJob.
async fn apply_backup_objects(
    cluster: &OpenBaoCluster,
    backup: &BackupSpec,
    ctx: &Context,
) -> Result<Configured, Error> {
    for account in names::service_account_names(&cluster.name_any()) {
        match backup::service_account(cluster, backup, &account) {
            Some(account) => apply(&ctx.client, &account).await?,
            None => delete_owned::<ServiceAccount>(cluster, &ctx.client, &account).await?,
        }
    }
    apply(&ctx.client, &backup::network_policy(cluster, backup)).await?;
    let cronjob = backup::cronjob(cluster, backup, &ctx.settings);
    match apply_body(&ctx.client, &cronjob, &cronjob).await {
        Ok(cronjob) => {
            release_orphaned_hold(cluster, &cronjob, &ctx.client).await?;
            Ok(Configured::Applied)
        }
        Err(Error::Kube(kube::Error::Api(e))) if e.code == 404 => Ok(Configured::Unschedulable(
            "this API server does not serve batch/v1 CronJob (Kubernetes >= 1.21 does): no scheduled backups; Jobs created by hand are still recorded"
                .into(),
        )),
        Err(e) => Err(e),
    }
}

/// A restore suspends the CronJob while it waits or runs, and resumes it
/// when it ends; one deleted before it ended never resumes it. So the
/// cluster releases a hold that no Pending or Running restore of it owns.
/// The restores' watch brings the cluster here when one is deleted, and
/// the CronJob's own watch when a late restore pass suspends it again.
async fn release_orphaned_hold(
    cluster: &OpenBaoCluster,
    cronjob: &CronJob,
    client: &Client,
) -> Result<(), Error> {
    if !jobs::held_by_restore(cronjob) {
        return Ok(());
    }
    let restores = restores_of(client, cluster).await?;
    let live = restores
        .iter()
        .any(|r| !r.status.as_ref().is_some_and(|s| s.phase.is_final()));
    if !live {
        hold_backups(client, cluster, false).await?;
        tracing::info!(cluster = %cluster.name_any(), "scheduled backups resumed: no restore of the cluster is pending or running");
    }
    Ok(())
}

/// Suspends or resumes the cluster's backup CronJob under a field manager
/// of its own (the cluster's applies never set `suspend`). No CronJob
/// (no spec.backup, or a server without CronJobs): nothing to hold.
pub(super) async fn hold_backups(
    client: &Client,
    cluster: &OpenBaoCluster,
    hold: bool,
) -> Result<(), Error> {
    let api = Api::<CronJob>::namespaced(client.clone(), &cluster.namespace().unwrap_or_default());
    let params = PatchParams {
        field_manager: Some(jobs::HOLDER.into()),
        ..Default::default()
    };
    let patch = Patch::Merge(serde_json::json!({"spec": {"suspend": hold}}));
    match api
        .patch(&names::cronjob_name(&cluster.name_any()), &params, &patch)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn delete_backup_objects(cluster: &OpenBaoCluster, ctx: &Context) -> Result<(), Error> {
    let name = cluster.name_any();
    delete_owned::<CronJob>(cluster, &ctx.client, &names::cronjob_name(&name)).await?;
    delete_owned::<NetworkPolicy>(cluster, &ctx.client, &names::cronjob_name(&name)).await?;
    for account in names::service_account_names(&name) {
        delete_owned::<ServiceAccount>(cluster, &ctx.client, &account).await?;
    }
    Ok(())
}

async fn apply<K>(client: &Client, object: &K) -> Result<(), Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    apply_body(client, object, object).await.map(drop)
}

/// Server-side applies `body` as `object` (its kind, namespace and name):
/// the object itself, or a form of it the typed struct cannot say. Returns
/// the object the API server keeps. An existing object of that name that
/// `object`'s owner (the cluster) does not own is refused: a forced apply
/// would take it over, whoever made it.
async fn apply_body<K>(
    client: &Client,
    object: &K,
    body: &(impl Serialize + std::fmt::Debug),
) -> Result<K, Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let namespace = object.meta().namespace.as_deref().unwrap_or_default();
    let name = object.name_any();
    let api = Api::<K>::namespaced(client.clone(), namespace);
    if let Some(existing) = api.get_opt(&name).await? {
        let owner = object.owner_references().first().map(|o| o.uid.as_str());
        if !owned_by(&existing, owner) {
            return Err(Error::NotOwned(format!(
                "{} {name} exists and this OpenBaoCluster does not own it, so it is left alone: delete or rename it, or give the cluster another name",
                K::kind(&())
            )));
        }
    }
    Ok(api
        .patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(body),
        )
        .await?)
}

/// Whether an owner reference of `object` names the owner `uid`.
fn owned_by(object: &impl Resource, uid: Option<&str>) -> bool {
    object
        .owner_references()
        .iter()
        .any(|owner| Some(owner.uid.as_str()) == uid)
}

/// Deletes the named object if this cluster owns it; a same-named object
/// someone else made is left alone. The API may be missing (CronJob on old
/// servers): then there is nothing to delete.
async fn delete_owned<K>(cluster: &OpenBaoCluster, client: &Client, name: &str) -> Result<(), Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api = Api::<K>::namespaced(client.clone(), &cluster.namespace().unwrap_or_default());
    let object = match api.get_opt(name).await {
        Ok(Some(object)) => object,
        Ok(None) => return Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if owned_by(&object, cluster.uid().as_deref()) {
        api.delete(name, &Default::default()).await?;
        tracing::info!(cluster = %cluster.name_any(), kind = K::kind(&()).as_ref(), name, "deleted: spec.backup was removed");
    }
    Ok(())
}

/// The cluster's backup Jobs (scheduled, manual, pre-upgrade).
pub(super) async fn backup_jobs(
    client: &Client,
    namespace: &str,
    cluster: &str,
) -> kube::Result<Vec<Job>> {
    let selector = selector(&names::backup_labels(cluster));
    let list = Api::<Job>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&selector))
        .await?;
    Ok(list.items)
}

/// A finished backup Job's outcome, from its pod's termination message.
async fn job_outcome(
    client: &Client,
    job: &Job,
    finished: jobs::Finished,
) -> kube::Result<JobOutcome> {
    Ok(jobs::outcome(job, finished, &job_pods(client, job).await?))
}

/// The pods a Job made (the Job controller labels them with its name).
pub(super) async fn job_pods(client: &Client, job: &Job) -> kube::Result<Vec<Pod>> {
    let namespace = job.namespace().unwrap_or_default();
    let pods = Api::<Pod>::namespaced(client.clone(), &namespace)
        .list(&ListParams::default().labels(&format!("job-name={}", job.name_any())))
        .await?;
    Ok(pods.items)
}

fn selector(labels: &std::collections::BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// One event per Job: the Job is the related object, so the recorder never
/// folds two backups into one event series.
fn backup_event(namespace: &str, outcome: &JobOutcome) -> Event {
    let kind = outcome.kind.as_str();
    let mut event = match &outcome.result {
        Some(BackupResult::Succeeded {
            key,
            size,
            duration_seconds,
            ..
        }) => Event {
            type_: EventType::Normal,
            reason: "BackupSucceeded".into(),
            note: Some(format!(
                "{kind} backup {key} ({}) in {duration_seconds:.1}s by Job {}",
                contract::units::human_bytes(*size as f64),
                outcome.job_name
            )),
            action: "Backup".into(),
            secondary: None,
        },
        _ => warning(
            "BackupFailed",
            "Backup",
            format!("{kind} backup failed: {}", outcome.failure_reason()),
        ),
    };
    event.secondary = Some(job_reference(namespace, outcome));
    event
}

fn job_reference(namespace: &str, outcome: &JobOutcome) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: Some(outcome.job_name.clone()),
        namespace: Some(namespace.into()),
        uid: Some(outcome.job_uid.clone()),
        ..Default::default()
    }
}

/// What retention did after a backup, when it did or refused anything or
/// failed: `RetentionFailed` (a warning) or `RetentionApplied`.
fn retention_event(namespace: &str, outcome: &JobOutcome) -> Option<Event> {
    let Some(BackupResult::Succeeded {
        key,
        retention: Some(report),
        ..
    }) = &outcome.result
    else {
        return None;
    };
    let (failed, note) = status::retention_note(&status::retention_status(key, report))?;
    let mut event = if failed {
        warning("RetentionFailed", "Retention", note)
    } else {
        Event {
            type_: EventType::Normal,
            reason: "RetentionApplied".into(),
            note: Some(note.chars().take(1000).collect()),
            action: "Retention".into(),
            secondary: None,
        }
    };
    event.secondary = Some(job_reference(namespace, outcome));
    Some(event)
}

fn warning(reason: &str, action: &str, note: String) -> Event {
    Event {
        type_: EventType::Warning,
        reason: reason.into(),
        // events.k8s.io caps notes at 1 kB.
        note: Some(note.chars().take(1000).collect()),
        action: action.into(),
        secondary: None,
    }
}

/// Events are for people; failing to send one does not fail the reconcile.
async fn publish(recorder: &Recorder, cluster: &OpenBaoCluster, event: Event) {
    if let Err(error) = recorder.publish(&event, &cluster.object_ref(&())).await {
        tracing::warn!(cluster = %cluster.name_any(), %error, reason = %event.reason, "could not publish an event");
    }
}

#[cfg(test)]
mod tests;
