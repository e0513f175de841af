//! One reconcile of one `OpenBaoCluster`, top to bottom: validate the spec,
//! read newly finished backup Jobs, make the OpenBao workload follow the
//! spec (an upgrade waits for its pre-upgrade backup, pods are replaced
//! one at a time), make the backup objects follow it, write the status
//! only if it changed, then tell people (events) and Prometheus. Deciding
//! is done by the pure modules; this one and its parts read and write.

mod backup;
mod drill;
mod events;
mod seen;
mod workload;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kube::api::{Api, PostParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use self::seen::{Checked, finished_jobs};
use crate::api::{OpenBaoCluster, OpenBaoClusterStatus};
use crate::context::{At, Context, Error};
use crate::status::{Backups, Configured};
use crate::{schedule, status};

pub async fn reconcile(cluster: Arc<OpenBaoCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = cluster.name_any();
    let namespace = cluster
        .namespace()
        .ok_or_else(|| Error::NoNamespace(format!("OpenBaoCluster {name}")))?;
    if cluster.meta().deletion_timestamp.is_some() {
        // Owner references let the garbage collector remove the rest.
        ctx.metrics.forget_cluster(&namespace, &name);
        return Ok(Action::await_change());
    }
    let now = Utc::now();
    let previous = cluster.status.clone().unwrap_or_default();

    let checked = Checked::of(&cluster, &ctx);
    let finished = finished_jobs(&cluster, &previous, &ctx).await?;
    let mut workload = workload::reconcile(&cluster, &checked, &finished, &ctx).await?;
    workload
        .status
        .conditions
        .extend(checked.security_risk.clone());
    let configured = backup::reconcile(&cluster, &checked.backup, &ctx).await?;
    let backup_now = backup::backup_now(&cluster, &configured, &ctx).await?;
    let drilled = drill::reconcile(&cluster, &finished.outcomes, &ctx, now).await?;
    workload.status.conditions.extend(drilled.condition.clone());

    // The status, written only when it changed.
    let schedule = checked.backup.as_ref().ok().and_then(|v| v.as_ref());
    // Times are computed in UTC: with another zone, no next run is told.
    let utc = cluster
        .spec
        .backup
        .as_ref()
        .and_then(|b| b.cron_job.as_ref()?.time_zone.as_deref())
        .is_none_or(|zone| matches!(zone, "UTC" | "Etc/UTC"));
    let next_run = schedule
        .filter(|_| utc)
        .and_then(|v| schedule::next_run(&v.schedule, now));
    let mut new_status = status::next(
        cluster.status.as_ref(),
        workload.status,
        Backups {
            configured: &configured,
            warnings: &checked.backup_warnings,
            outcomes: &finished.outcomes,
            recorded_jobs: finished.recorded.clone(),
            next_run,
        },
        cluster.meta().generation,
        now,
    );
    new_status.restore_test = drilled.status;
    if let Some((value, _)) = &backup_now {
        new_status
            .backup
            .get_or_insert_with(Default::default)
            .backup_now_handled = Some(value.clone());
    }
    if previous != new_status {
        write_status(&cluster, &new_status, &ctx).await?;
    }

    // Events and metrics, once per Job, after the status holds it.
    let told = events::Told {
        previous: &previous,
        status: &new_status,
        checked: &checked,
        configured: &configured,
        outcomes: &finished.outcomes,
        upgrade: workload.event,
        backup_now: backup_now.map(|(_, job)| job),
    };
    events::tell(&cluster, told, &ctx).await;
    if let Some(event) = drilled.event {
        crate::kube_io::publish(&ctx.recorder, cluster.as_ref(), event).await;
    }
    if let Some(event) = &drilled.notify {
        ctx.notifier.notify(&cluster, event);
    }
    Ok(requeue(
        workload.wait,
        &configured,
        next_run,
        drilled.requeue,
        now,
    ))
}

/// Replaces the status, guarded by the resourceVersion we read so that a
/// stale cache can never count a Job twice.
async fn write_status(
    cluster: &OpenBaoCluster,
    status: &OpenBaoClusterStatus,
    ctx: &Context,
) -> Result<(), Error> {
    let name = cluster.name_any();
    let mut updated = cluster.clone();
    updated.status = Some(status.clone());
    Api::<OpenBaoCluster>::namespaced(ctx.client.clone(), &cluster.namespace().unwrap_or_default())
        .replace_status(&name, &PostParams::default(), &updated)
        .await
        .at("write OpenBaoCluster status", name)?;
    Ok(())
}

/// When to look again: the soonest of what the workload, the backup
/// schedule and a restore drill (`drill`) wait for.
fn requeue(
    wait: bool,
    configured: &Configured,
    next_run: Option<DateTime<Utc>>,
    drill: Option<Duration>,
    now: DateTime<Utc>,
) -> Action {
    let cluster = match (configured, next_run) {
        // An upgrade or rollout in progress: pods and Jobs wake us as they
        // change; this is the fallback.
        _ if wait => Some(Duration::from_secs(30)),
        // Wake up once the next run is due, to move nextScheduledBackup on.
        (Configured::Applied, Some(next)) => {
            let wait = (next - now).to_std().unwrap_or_default();
            Some(wait + Duration::from_secs(30))
        }
        (Configured::Unschedulable(_), _) => Some(Duration::from_secs(600)),
        _ => None,
    };
    match cluster.into_iter().chain(drill).min() {
        Some(wait) => Action::requeue(wait),
        None => Action::await_change(),
    }
}

pub fn error_policy(cluster: Arc<OpenBaoCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_failed(error.step());
    if error.api_code() == Some(409) {
        // Our copy was stale; the watch brings the new one.
        tracing::debug!(cluster = %cluster.name_any(), "status changed meanwhile, retrying");
        return Action::requeue(Duration::from_secs(1));
    }
    tracing::warn!(cluster = %cluster.name_any(), namespace = ?cluster.namespace(), %error, "reconcile failed");
    Action::requeue(Duration::from_secs(30))
}

#[cfg(test)]
mod tests;
