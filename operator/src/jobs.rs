//! Reading backup Jobs and their pods: has a Job finished, how, and what did
//! the executor report. Pure: the reconcile fetches, this interprets.

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use crate::names::{INSTANCE_LABEL, KIND_ANNOTATION, cronjob_name};
use crate::status::{JobOutcome, parse_result};
use contract::executor::{command, cronjob};
use contract::result::{BackupKind, BackupResult};

/// The field manager that suspends a cluster's CronJob while a restore of
/// the cluster waits or runs.
pub const HOLDER: &str = "openbao-backup-operator-restore";
/// Set by `kubectl create job --from=cronjob/...` on the Jobs it creates.
const INSTANTIATE_ANNOTATION: &str = "cronjob.kubernetes.io/instantiate";

/// How a Job ended, from its conditions; None while it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub at: DateTime<Utc>,
    /// Kubernetes' reason when the Job failed (deadline, backoff...).
    pub failure: Option<String>,
}

pub fn finished(job: &Job) -> Option<Finished> {
    let status = job.status.as_ref()?;
    let condition = status
        .conditions
        .iter()
        .flatten()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")?;
    let at = condition
        .last_transition_time
        .as_ref()
        .or(status.completion_time.as_ref())
        .map(chrono_time)
        .unwrap_or_else(Utc::now);
    let failure = (condition.type_ == "Failed").then(|| {
        let words = [condition.reason.as_deref(), condition.message.as_deref()];
        let text: Vec<&str> = words.into_iter().flatten().collect();
        if text.is_empty() {
            "the Job failed".to_string()
        } else {
            text.join(": ")
        }
    });
    Some(Finished { at, failure })
}

pub fn kind(job: &Job, result: Option<&BackupResult>) -> BackupKind {
    let annotation = |key: &str| job.annotations().get(key).map(String::as_str);
    if annotation(INSTANTIATE_ANNOTATION) == Some("manual") {
        return BackupKind::Manual;
    }
    for kind in [BackupKind::PreUpgrade, BackupKind::Manual] {
        if annotation(KIND_ANNOTATION) == Some(kind.as_str()) {
            return kind;
        }
    }
    match result {
        Some(BackupResult::Succeeded { kind, .. } | BackupResult::Failed { kind, .. }) => *kind,
        // No result: as the executor would have decided from the Job's name.
        None => cronjob::backup_kind(
            BackupKind::Scheduled,
            job.labels()
                .get(INSTANCE_LABEL)
                .map(|cluster| cronjob_name(cluster))
                .as_deref(),
            Some(&job.name_any()),
        ),
    }
}

/// Whether a restore's hold suspends this CronJob: `suspend` is true and
/// [`HOLDER`] set it (whoever suspends it by hand owns the field instead,
/// and their choice stands).
pub fn held_by_restore(cronjob: &CronJob) -> bool {
    let suspended = cronjob.spec.as_ref().and_then(|s| s.suspend) == Some(true);
    suspended
        && cronjob.managed_fields().iter().any(|entry| {
            entry.manager.as_deref() == Some(HOLDER)
                && entry
                    .fields_v1
                    .as_ref()
                    .is_some_and(|fields| fields.0["f:spec"].get("f:suspend").is_some())
        })
}

/// The termination message of `container` in the Job's newest pod that
/// has one.
pub fn termination_message(pods: &[Pod], container: &str) -> Option<String> {
    let mut messages: Vec<(Option<Time>, String)> = pods
        .iter()
        .filter_map(|pod| pod.status.as_ref()?.container_statuses.as_ref())
        .flatten()
        .filter(|c| c.name == container)
        .filter_map(|c| {
            let terminated = c.state.as_ref()?.terminated.as_ref()?;
            Some((terminated.finished_at.clone(), terminated.message.clone()?))
        })
        .collect();
    messages.sort_by_key(|(at, _)| at.as_ref().map(|t| t.0));
    messages.pop().map(|(_, message)| message)
}

pub fn outcome(job: &Job, finished: Finished, pods: &[Pod]) -> JobOutcome {
    let result = termination_message(pods, command::BACKUP).and_then(|m| parse_result(&m));
    JobOutcome {
        job_name: job.name_any(),
        job_uid: job.uid().unwrap_or_default(),
        kind: kind(job, result.as_ref()),
        finished_at: finished.at,
        result,
        job_failure: finished.failure,
    }
}

pub fn chrono_time(time: &Time) -> DateTime<Utc> {
    DateTime::from_timestamp(time.0.as_second(), time.0.subsec_nanosecond() as u32)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_a_suspension_by_the_restore_manager_is_a_hold() {
        let cronjob = |suspend: bool, manager: &str| -> CronJob {
            serde_json::from_value(json!({
                "metadata": {"name": "bao-backup", "managedFields": [
                    {"manager": "openbao-backup-operator", "operation": "Apply",
                     "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:schedule": {}}}},
                    {"manager": manager, "operation": "Update",
                     "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:suspend": {}}}},
                ]},
                "spec": {"schedule": "0 3 * * *", "suspend": suspend,
                         "jobTemplate": {"spec": {"template": {}}}},
            }))
            .unwrap()
        };
        assert!(held_by_restore(&cronjob(true, HOLDER)));
        assert!(!held_by_restore(&cronjob(false, HOLDER)), "released");
        assert!(
            !held_by_restore(&cronjob(true, "kubectl-patch")),
            "suspended by hand"
        );
    }

    fn job(conditions: serde_json::Value, annotations: serde_json::Value) -> Job {
        serde_json::from_value(json!({
            "metadata": {"name": "bao-backup-1", "uid": "u1", "annotations": annotations},
            "status": {"conditions": conditions},
        }))
        .unwrap()
    }

    fn pod(finished_at: &str, message: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": format!("p-{finished_at}")},
            "status": {"containerStatuses": [{
                "name": "backup", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "finishedAt": finished_at, "message": message}},
            }]},
        }))
        .unwrap()
    }

    #[test]
    fn running_jobs_are_not_finished() {
        assert_eq!(finished(&job(json!([]), json!({}))), None);
        let suspended = json!([{"type": "Suspended", "status": "True"}]);
        assert_eq!(finished(&job(suspended, json!({}))), None);
        let not_yet = json!([{"type": "Failed", "status": "False"}]);
        assert_eq!(finished(&job(not_yet, json!({}))), None);
    }

    #[test]
    fn complete_and_failed_jobs() {
        let done = job(
            json!([{"type": "Complete", "status": "True", "lastTransitionTime": "2026-11-24T03:00:42Z"}]),
            json!({}),
        );
        let done = finished(&done).unwrap();
        assert_eq!(done.at.to_rfc3339(), "2026-11-24T03:00:42+00:00");
        assert_eq!(done.failure, None);
        let failed = job(
            json!([{"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
                    "message": "Job was active longer than specified deadline",
                    "lastTransitionTime": "2026-11-24T09:00:00Z"}]),
            json!({}),
        );
        assert_eq!(
            finished(&failed).unwrap().failure.as_deref(),
            Some("DeadlineExceeded: Job was active longer than specified deadline")
        );
    }

    #[test]
    fn the_newest_pod_speaks_for_the_job() {
        let pods = [
            pod("2026-11-24T03:05:00Z", "new"),
            pod("2026-11-24T03:00:00Z", "old"),
        ];
        assert_eq!(
            termination_message(&pods, command::BACKUP).as_deref(),
            Some("new")
        );
        assert_eq!(termination_message(&[], command::BACKUP), None);
    }

    #[test]
    fn manual_jobs_are_told_apart_by_their_annotation() {
        let manual = job(
            json!([]),
            json!({"cronjob.kubernetes.io/instantiate": "manual"}),
        );
        assert_eq!(kind(&manual, None), BackupKind::Manual);
        assert_eq!(
            kind(&job(json!([]), json!({})), None),
            BackupKind::Scheduled
        );
        let named = |name: &str, annotations: serde_json::Value| -> Job {
            serde_json::from_value(json!({"metadata": {
                "name": name, "annotations": annotations,
                "labels": {"app.kubernetes.io/instance": "bao"},
            }}))
            .unwrap()
        };
        assert_eq!(
            kind(&named("bao-backup-29410560", json!({})), None),
            BackupKind::Scheduled,
            "named by the CronJob controller"
        );
        assert_eq!(
            kind(&named("bao-backup-by-hand", json!({})), None),
            BackupKind::Manual,
            "made from the template by hand, without kubectl's annotation"
        );
        assert_eq!(
            kind(
                &named(
                    "bao-backup-now-0a1b2c3d4e",
                    json!({KIND_ANNOTATION: "manual"})
                ),
                None
            ),
            BackupKind::Manual,
            "openbao.org/backup-now"
        );
    }
}
