//! One reconcile of one `OpenBaoCluster`, top to bottom: validate the spec,
//! make the owned objects follow it, fold newly finished backup Jobs into
//! the status, write the status only if it changed, then tell people
//! (events) and Prometheus. Deciding is done by the pure modules; this one
//! reads and writes.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ObjectReference, Pod, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{BackupSpec, OpenBaoCluster};
use crate::backup::BackupResult;
use crate::operator::desired::{self, MANAGER, OperatorSettings};
use crate::operator::metrics::Metrics;
use crate::operator::status::{Configured, JobOutcome};
use crate::operator::{jobs, schedule, status, validate};

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

    // 1. The spec, checked beyond what the API server could.
    let validation = validate::validate(&cluster.spec);

    // 2. Owned objects follow a valid spec; an invalid one keeps the last
    //    good objects so that a typo does not stop backups.
    let configured = match (&validation, &cluster.spec.backup) {
        (Ok(Some(_)), Some(backup)) => apply_backup_objects(&cluster, backup, &ctx).await?,
        (Err(problems), _) => Configured::Invalid(problems.clone()),
        _ => {
            delete_backup_objects(&cluster, &ctx).await?;
            Configured::Absent
        }
    };

    // 3. Finished backup Jobs that the status has not counted yet.
    let already: &[String] = cluster
        .status
        .as_ref()
        .and_then(|s| s.backup.as_ref())
        .map_or(&[], |b| &b.recorded_jobs);
    let mut recorded = Vec::new();
    let mut outcomes = Vec::new();
    for job in backup_jobs(&ctx.client, &namespace, &name).await? {
        let Some(finished) = jobs::finished(&job) else {
            continue;
        };
        let uid = job.uid().unwrap_or_default();
        if !already.contains(&uid) {
            let pods = job_pods(&ctx.client, &namespace, &job.name_any()).await?;
            outcomes.push(jobs::outcome(&job, finished, &pods));
        }
        recorded.push(uid);
    }
    recorded.sort();

    // 4. The status, written only when it changed, guarded by the
    //    resourceVersion we read so a stale cache can never count twice.
    let schedule = validation.ok().flatten().map(|v| v.schedule);
    let next_run = schedule.as_ref().and_then(|s| schedule::next_run(s, now));
    let new_status = status::next(
        cluster.status.as_ref(),
        &configured,
        &outcomes,
        recorded,
        next_run,
        cluster.meta().generation,
        now,
    );
    if cluster.status.clone().unwrap_or_default() != new_status {
        let mut updated = (*cluster).clone();
        updated.status = Some(new_status.clone());
        Api::<OpenBaoCluster>::namespaced(ctx.client.clone(), &namespace)
            .replace_status(&name, &PostParams::default(), &updated)
            .await?;
    }

    // 5. Events and metrics, once per Job, after the status holds it.
    for outcome in &outcomes {
        ctx.metrics.record(&namespace, &name, outcome);
        publish(&ctx.recorder, &cluster, backup_event(&namespace, outcome)).await;
    }
    if let Configured::Invalid(problems) = &configured
        && cluster.status.as_ref().map(|s| &s.conditions) != Some(&new_status.conditions)
    {
        let note = problems.join("; ");
        publish(
            &ctx.recorder,
            &cluster,
            warning("InvalidSpec", "Validate", note),
        )
        .await;
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
        // Wake up once the next run is due, to move nextScheduledBackup on.
        (Configured::Applied, Some(next)) => {
            let wait = (next - now).to_std().unwrap_or_default();
            Action::requeue(wait + Duration::from_secs(30))
        }
        (Configured::Unschedulable(_), _) => Action::requeue(Duration::from_secs(600)),
        _ => Action::await_change(),
    })
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

/// Server-side applies the ServiceAccount (JWT auth only), the CronJob and
/// the NetworkPolicy.
async fn apply_backup_objects(
    cluster: &OpenBaoCluster,
    backup: &BackupSpec,
    ctx: &Context,
) -> Result<Configured, Error> {
    let name = cluster.name_any();
    match desired::service_account(cluster, backup) {
        Some(account) => apply(&ctx.client, &account).await?,
        None => {
            delete_owned::<ServiceAccount>(
                cluster,
                &ctx.client,
                &desired::service_account_name(&name),
            )
            .await?
        }
    }
    apply(&ctx.client, &desired::network_policy(cluster, backup)).await?;
    match apply(&ctx.client, &desired::cronjob(cluster, backup, &ctx.settings)).await {
        Ok(()) => Ok(Configured::Applied),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Configured::Unschedulable(
            "this API server does not serve batch/v1 CronJob (Kubernetes >= 1.21 does): no scheduled backups; Jobs created by hand are still recorded"
                .into(),
        )),
        Err(e) => Err(e.into()),
    }
}

async fn delete_backup_objects(cluster: &OpenBaoCluster, ctx: &Context) -> Result<(), Error> {
    let name = cluster.name_any();
    delete_owned::<CronJob>(cluster, &ctx.client, &desired::cronjob_name(&name)).await?;
    delete_owned::<NetworkPolicy>(cluster, &ctx.client, &desired::cronjob_name(&name)).await?;
    delete_owned::<ServiceAccount>(cluster, &ctx.client, &desired::service_account_name(&name))
        .await
}

async fn apply<K>(client: &Client, object: &K) -> kube::Result<()>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let namespace = object.meta().namespace.as_deref().unwrap_or_default();
    Api::<K>::namespaced(client.clone(), namespace)
        .patch(
            &object.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(object),
        )
        .await
        .map(drop)
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
    let ours = object
        .owner_references()
        .iter()
        .any(|owner| Some(&owner.uid) == cluster.uid().as_ref());
    if ours {
        api.delete(name, &Default::default()).await?;
        tracing::info!(cluster = %cluster.name_any(), kind = K::kind(&()).as_ref(), name, "deleted: spec.backup was removed");
    }
    Ok(())
}

async fn backup_jobs(client: &Client, namespace: &str, cluster: &str) -> kube::Result<Vec<Job>> {
    let selector = selector(&desired::backup_labels(cluster));
    let list = Api::<Job>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&selector))
        .await?;
    Ok(list.items)
}

async fn job_pods(client: &Client, namespace: &str, job: &str) -> kube::Result<Vec<Pod>> {
    let list = Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&format!("job-name={job}")))
        .await?;
    Ok(list.items)
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
    let job = ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: Some(outcome.job_name.clone()),
        namespace: Some(namespace.into()),
        uid: Some(outcome.job_uid.clone()),
        ..Default::default()
    };
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
                crate::units::human_bytes(*size as f64),
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
    event.secondary = Some(job);
    event
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
