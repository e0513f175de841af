//! The cluster reconcile's last part: events for people (one per finished
//! Job, upgrades, invalid specs, warnings) and the metrics, sent after the
//! status holds what they tell.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::ResourceExt;
use kube::runtime::events::{Event, EventType};

use super::seen::Checked;
use crate::api::{OpenBaoCluster, OpenBaoClusterStatus};
use crate::context::Context;
use crate::kube_io::publish;
use crate::names::BACKUP_NOW_ANNOTATION;
use crate::status::{self, BACKUP_CONFIGURED, Configured, JobOutcome, WORKLOAD_CONFIGURED};
use crate::{notify, schedule};
use contract::result::BackupResult;

/// What this pass changed and found.
pub(super) struct Told<'a> {
    pub previous: &'a OpenBaoClusterStatus,
    pub status: &'a OpenBaoClusterStatus,
    pub checked: &'a Checked,
    pub configured: &'a Configured,
    pub outcomes: &'a [JobOutcome],
    pub upgrade: Option<(EventType, &'static str, String)>,
    /// The Job of a manual backup started for `openbao.org/backup-now`.
    pub backup_now: Option<String>,
}

pub(super) async fn tell(cluster: &OpenBaoCluster, told: Told<'_>, ctx: &Context) {
    let (name, namespace) = (cluster.name_any(), cluster.namespace().unwrap_or_default());
    let recorder = &ctx.recorder;
    for outcome in told.outcomes {
        ctx.metrics.record(&namespace, &name, outcome);
        ctx.notifier
            .notify(cluster, &notify::Event::backup(&namespace, &name, outcome));
        for copy in notify::Event::copies(&namespace, &name, outcome) {
            ctx.notifier.notify(cluster, &copy);
        }
        publish(recorder, cluster, backup_event(&namespace, outcome)).await;
        if let Some(event) = retention_event(&namespace, outcome) {
            publish(recorder, cluster, event).await;
        }
    }
    if let Some((type_, reason, note)) = told.upgrade.clone() {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: "Upgrade".into(),
            secondary: None,
        };
        publish(recorder, cluster, event).await;
    }
    if let Some(job) = &told.backup_now {
        let event = Event {
            type_: EventType::Normal,
            reason: "ManualBackupStarted".into(),
            note: Some(format!(
                "manual backup asked for by the {BACKUP_NOW_ANNOTATION} annotation: Job {job}"
            )),
            action: "Backup".into(),
            secondary: None,
        };
        publish(recorder, cluster, event).await;
    }
    if let Some(event) = invalid_spec(&told) {
        publish(recorder, cluster, event).await;
    }
    // Warnings once per change of what their condition says (a new
    // generation of the spec, say), not once per reconcile.
    let checked = told.checked;
    for (type_, warnings) in [
        (WORKLOAD_CONFIGURED, &checked.workload_warnings),
        (BACKUP_CONFIGURED, &checked.backup_warnings),
    ] {
        let condition =
            |s: &OpenBaoClusterStatus| s.conditions.iter().find(|c| c.type_ == type_).cloned();
        if !warnings.is_empty() && condition(told.previous) != condition(told.status) {
            let event = warning("SpecWarning", "Validate", warnings.join("; "));
            publish(recorder, cluster, event).await;
        }
    }
    match &checked.backup {
        Ok(Some(backup)) => {
            let suspended = cluster
                .spec
                .backup
                .as_ref()
                .and_then(|b| b.cron_job.as_ref())
                .is_some_and(|c| c.suspend);
            let interval = schedule::longest_interval(&backup.schedule, chrono::Utc::now())
                .filter(|_| !suspended)
                .map(|gap| gap.as_secs_f64());
            ctx.metrics.set_cluster(&namespace, &name, interval);
        }
        Ok(None) => ctx.metrics.forget_cluster(&namespace, &name),
        // An invalid spec keeps what it had: its backups are not running,
        // which the age of the last one shows.
        Err(_) => {}
    }
    let last = told.status.backup.as_ref();
    if let Some(at) = last.and_then(|b| b.last_backup_time.as_ref()) {
        ctx.metrics
            .set_last_success(&namespace, &name, at.0.as_millisecond() as f64 / 1000.0);
    }
}

/// The spec's problems, when the conditions that hold them changed.
fn invalid_spec(told: &Told<'_>) -> Option<Event> {
    let problems = &told.checked.workload_problems;
    let invalid: Vec<&String> = match told.configured {
        Configured::Invalid(backup) => problems.iter().chain(backup).collect(),
        _ => problems.iter().collect(),
    };
    if invalid.is_empty() || told.previous.conditions == told.status.conditions {
        return None;
    }
    let note = invalid
        .iter()
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    Some(warning("InvalidSpec", "Validate", note))
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
