//! The cluster's status: finished backup Jobs folded into `status.backup`,
//! the workload's version and upgrade, and the conditions.
//! Pure: the reconcile reads Jobs and the clock, this decides.

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::{BackupStatus, CopyStatus, OpenBaoClusterStatus, RetentionStatus, UpgradeStatus};
use contract::result::CopyReport;
use contract::result::{BackupKind, BackupResult, RetentionReport};

pub const BACKUP_CONFIGURED: &str = "BackupConfigured";
pub const BACKUP_HEALTHY: &str = "BackupHealthy";
pub const WORKLOAD_CONFIGURED: &str = "WorkloadConfigured";
/// Sums up the others (see [`ready`]).
pub const READY: &str = "Ready";
/// True under the `Development` profile (`security`): the opposite
/// polarity of the others, so [`ready`] does not count it.
pub const SECURITY_RISK: &str = "SecurityRisk";
/// The last restore drill (`drill`): news about the backups, not the
/// cluster, so [`ready`] does not count it.
pub const RESTORE_TESTED: &str = "RestoreTested";

/// Kubernetes' `Time` from a chrono time.
pub fn time(at: DateTime<Utc>) -> Time {
    let timestamp =
        k8s_openapi::jiff::Timestamp::new(at.timestamp(), at.timestamp_subsec_nanos() as i32)
            .expect("chrono times are within jiff's range");
    Time(timestamp)
}

/// A backup Job that has finished, as the operator saw it.
#[derive(Debug, Clone)]
pub struct JobOutcome {
    pub job_name: String,
    pub job_uid: String,
    /// Manual Jobs (`kubectl create job --from=cronjob/...`) inherit the
    /// scheduled template, so the Job's annotation decides, not the result.
    pub kind: BackupKind,
    pub finished_at: DateTime<Utc>,
    /// The JSON the executor wrote to its termination message, if any.
    pub result: Option<BackupResult>,
    /// Why Kubernetes failed the Job (deadline, pod evicted...), when the
    /// executor could not say.
    pub job_failure: Option<String>,
}

impl JobOutcome {
    pub fn succeeded(&self) -> bool {
        matches!(self.result, Some(BackupResult::Succeeded { .. }))
    }

    /// One line for status and events.
    pub fn failure_reason(&self) -> String {
        match (&self.result, &self.job_failure) {
            (Some(BackupResult::Failed { reason, .. }), _) => reason.clone(),
            (_, Some(failure)) => format!("Job {} failed: {failure}", self.job_name),
            _ => format!(
                "Job {} failed without a result (see its pod's logs)",
                self.job_name
            ),
        }
    }
}

/// Reads the executor's result from a termination message; the last line
/// holds it when Kubernetes fell back to the logs.
pub fn parse_result(message: &str) -> Option<BackupResult> {
    message
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line.trim()).ok())
}

/// Applies one finished Job to the status.
pub fn record(status: &mut BackupStatus, outcome: &JobOutcome) {
    status.last_attempt_time = Some(time(outcome.finished_at));
    match &outcome.result {
        Some(BackupResult::Succeeded {
            key,
            size,
            sha256,
            duration_seconds,
            completed_at,
            retention,
            copies,
            ..
        }) => {
            if let Some(report) = retention {
                status.last_retention = Some(retention_status(key, report));
            }
            status.copies = copies_status(&status.copies, key, *completed_at, copies);
            status.last_backup_time = Some(time(*completed_at));
            status.last_backup_name = Some(key.clone());
            status.last_backup_size = Some(*size);
            status.last_backup_sha256 = Some(sha256.clone());
            status.last_backup_duration = Some(format!("{duration_seconds:.1}s"));
            status.consecutive_failures = 0;
            status.last_failure_reason = None;
        }
        _ => {
            status.consecutive_failures += 1;
            status.last_failure_reason = Some(outcome.failure_reason());
        }
    }
}

/// `status.backup.copies` after a backup that made `copies`: one entry per
/// target copied to, in order; a target's last verified backup stays
/// when its copy failed. Targets no longer copied to are dropped.
pub fn copies_status(
    before: &[CopyStatus],
    key: &str,
    completed_at: DateTime<Utc>,
    copies: &[CopyReport],
) -> Vec<CopyStatus> {
    copies
        .iter()
        .map(|copy| {
            let previous = before.iter().find(|c| c.target == copy.target);
            if copy.verified {
                CopyStatus {
                    target: copy.target.clone(),
                    last_verified_key: Some(key.to_string()),
                    last_verified_time: Some(time(completed_at)),
                    last_result: COPY_VERIFIED.into(),
                    last_error: None,
                }
            } else {
                CopyStatus {
                    target: copy.target.clone(),
                    last_verified_key: previous.and_then(|p| p.last_verified_key.clone()),
                    last_verified_time: previous.and_then(|p| p.last_verified_time.clone()),
                    last_result: COPY_FAILED.into(),
                    last_error: Some(
                        copy.error
                            .clone()
                            .unwrap_or_else(|| "the copy was not verified".into()),
                    ),
                }
            }
        })
        .collect()
}

/// `status.backup.copies[].lastResult`.
pub const COPY_VERIFIED: &str = "Verified";
pub const COPY_FAILED: &str = "Failed";

/// Keys listed in `status.backup.lastRetention`; the counts say the rest.
const LISTED: usize = 5;

/// What retention did after the backup `key`, for the status.
pub fn retention_status(key: &str, report: &RetentionReport) -> RetentionStatus {
    RetentionStatus {
        backup_name: key.to_string(),
        deleted_count: report.deleted_count() as u64,
        deleted: report
            .deleted
            .iter()
            .take(LISTED)
            .map(|d| d.key.clone())
            .collect(),
        refused_count: report.refused_count() as u64,
        refused: report
            .refused
            .iter()
            .take(LISTED)
            .map(|r| format!("{}: {}", r.key, r.reason))
            .collect(),
        error: report.error.clone(),
    }
}

/// One line for an event about what retention did, and whether it
/// failed; None when it had nothing to do.
pub fn retention_note(retention: &RetentionStatus) -> Option<(bool, String)> {
    let mut note = format!(
        "retention after {} deleted {} backup(s)",
        retention.backup_name, retention.deleted_count
    );
    let more = |listed: usize, count: u64| {
        if count > listed as u64 {
            format!(" and {} more", count - listed as u64)
        } else {
            String::new()
        }
    };
    if !retention.deleted.is_empty() {
        note.push_str(&format!(
            " ({}{})",
            retention.deleted.join(", "),
            more(retention.deleted.len(), retention.deleted_count)
        ));
    }
    if retention.refused_count > 0 {
        note.push_str(&format!(
            "; refused {} deletion(s) ({}{})",
            retention.refused_count,
            retention.refused.join(", "),
            more(retention.refused.len(), retention.refused_count)
        ));
    }
    if let Some(error) = &retention.error {
        note.push_str(&format!("; failed: {error}"));
    }
    let nothing = retention.deleted_count == 0 && retention.refused_count == 0;
    (!nothing || retention.error.is_some()).then_some((retention.error.is_some(), note))
}

/// Where the cluster's backup configuration stands after this reconcile.
#[derive(Debug, Clone, PartialEq)]
pub enum Configured {
    /// No `spec.backup`: nothing is scheduled and the backup conditions go.
    Absent,
    /// The CronJob and its companions are in place.
    Applied,
    /// The spec has problems (each names its field); the objects from the
    /// last valid spec are kept.
    Invalid(Vec<String>),
    /// The spec is valid but the API server cannot hold the CronJob.
    Unschedulable(String),
    /// An object the backup needs has a name taken by an object the
    /// cluster does not own; the message names it.
    NotOwned(String),
}

/// A condition as decided, before the API's bookkeeping.
#[derive(Debug, Clone, PartialEq)]
pub struct Cond {
    pub type_: &'static str,
    pub status: &'static str,
    pub reason: &'static str,
    pub message: String,
}

impl Cond {
    pub fn new(
        type_: &'static str,
        status: &'static str,
        reason: &'static str,
        message: String,
    ) -> Self {
        Self {
            type_,
            status,
            reason,
            message,
        }
    }
}

/// `WorkloadConfigured`: applied, or the spec's problems (the last good
/// objects stay); the warnings follow either way.
pub fn workload_configured(problems: &[String], warnings: &[String]) -> Cond {
    let (status, reason, message) = match (problems.is_empty(), warnings.is_empty()) {
        (false, _) => ("False", "InvalidSpec", problems.join("; ")),
        (true, true) => (
            "True",
            "Applied",
            "the StatefulSet and its companions are in place".to_string(),
        ),
        (true, false) => (
            "True",
            "AppliedWithWarnings",
            "the StatefulSet and its companions are in place".to_string(),
        ),
    };
    Cond::new(
        WORKLOAD_CONFIGURED,
        status,
        reason,
        with_warnings(message, warnings),
    )
}

/// A condition saying an object's name is taken by one the cluster does
/// not own (the message names it).
pub fn not_owned(type_: &'static str, why: String) -> Cond {
    Cond::new(type_, "False", "NotOwned", why)
}

fn with_warnings(mut message: String, warnings: &[String]) -> String {
    for warning in warnings {
        message.push_str("; warning: ");
        message.push_str(warning);
    }
    message
}

/// The workload's part of the status: from `upgrade::plan`, or the
/// spec's problems.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Workload {
    pub version: Option<String>,
    pub upgrade: Option<UpgradeStatus>,
    pub conditions: Vec<Cond>,
}

/// What this reconcile found about backups.
#[derive(Debug, Clone)]
pub struct Backups<'a> {
    pub configured: &'a Configured,
    /// What the spec probably gets wrong but is applied anyway.
    pub warnings: &'a [String],
    pub outcomes: &'a [JobOutcome],
    pub recorded_jobs: Vec<String>,
    pub next_run: Option<DateTime<Utc>>,
}

/// The whole status after this reconcile: the workload's part, the
/// previous backup status with the new outcomes folded in (oldest first),
/// the Jobs counted, the next run and the conditions. Equal to `previous`
/// when nothing changed.
pub fn next(
    previous: Option<&OpenBaoClusterStatus>,
    workload: Workload,
    backups: Backups<'_>,
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> OpenBaoClusterStatus {
    let previous = previous.cloned().unwrap_or_default();
    let mut backup = previous.backup.clone().unwrap_or_default();
    let mut outcomes: Vec<&JobOutcome> = backups.outcomes.iter().collect();
    outcomes.sort_by_key(|o| o.finished_at);
    for outcome in outcomes {
        record(&mut backup, outcome);
    }
    backup.recorded_jobs = backups.recorded_jobs;
    backup.next_scheduled_backup = match backups.configured {
        Configured::Applied => backups.next_run.map(time),
        _ => None,
    };
    let backup = (backup != BackupStatus::default()).then_some(backup);
    let mut decided = workload.conditions;
    if *backups.configured != Configured::Absent {
        decided.extend(backup_conditions(
            backups.configured,
            backups.warnings,
            backup.as_ref().unwrap_or(&BackupStatus::default()),
        ));
    }
    decided.push(ready(&decided));
    OpenBaoClusterStatus {
        observed_generation: generation,
        version: workload.version,
        upgrade: workload.upgrade,
        backup,
        restore_test: previous.restore_test.clone(),
        conditions: conditions(&previous.conditions, decided, generation, now),
        // Written by the notifier (`notify::delivery`), kept here.
        notifications: previous.notifications,
    }
}

/// `Ready`: True when every other condition is True, except that a
/// `BackupHealthy` of Unknown (no backup has finished yet) does not count
/// against it, nor does `SecurityRisk` (True is the bad news there);
/// otherwise False with the first other condition's reason, its type and
/// message in the message.
pub fn ready(others: &[Cond]) -> Cond {
    let blocking = others
        .iter()
        .filter(|c| c.type_ != SECURITY_RISK && c.type_ != RESTORE_TESTED)
        .find(|c| c.status != "True" && !(c.type_ == BACKUP_HEALTHY && c.status == "Unknown"));
    match blocking {
        None => Cond::new(
            READY,
            "True",
            "AllConditionsTrue",
            "the cluster's objects follow the spec, it runs the version asked for, and backups are scheduled and not failing"
                .to_string(),
        ),
        Some(c) => Cond::new(
            READY,
            "False",
            c.reason,
            format!("{} is {}: {}", c.type_, c.status, c.message),
        ),
    }
}

/// `BackupConfigured` from validation (with the spec's warnings),
/// `BackupHealthy` from the status.
fn backup_conditions(
    configured: &Configured,
    warnings: &[String],
    status: &BackupStatus,
) -> [Cond; 2] {
    let mut configured = match configured {
        Configured::Absent | Configured::Applied if !warnings.is_empty() => Cond::new(
            BACKUP_CONFIGURED,
            "True",
            "ValidWithWarnings",
            "the backup CronJob is in place".to_string(),
        ),
        Configured::Absent | Configured::Applied => Cond::new(
            BACKUP_CONFIGURED,
            "True",
            "Valid",
            "the backup CronJob is in place".to_string(),
        ),
        Configured::Invalid(problems) => Cond::new(
            BACKUP_CONFIGURED,
            "False",
            "InvalidSpec",
            problems.join("; "),
        ),
        Configured::Unschedulable(why) => Cond::new(
            BACKUP_CONFIGURED,
            "False",
            "CronJobUnavailable",
            why.clone(),
        ),
        Configured::NotOwned(why) => not_owned(BACKUP_CONFIGURED, why.clone()),
    };
    configured.message = with_warnings(configured.message, warnings);
    let healthy = match (status.consecutive_failures, &status.last_backup_time) {
        (0, Some(_)) => Cond::new(
            BACKUP_HEALTHY,
            "True",
            "BackupSucceeded",
            "the last backup succeeded".to_string(),
        ),
        (0, None) => Cond::new(
            BACKUP_HEALTHY,
            "Unknown",
            "NoBackupYet",
            "no backup has finished yet".to_string(),
        ),
        (failures, _) => Cond::new(
            BACKUP_HEALTHY,
            "False",
            "BackupFailed",
            format!(
                "{failures} backup(s) failed in a row: {}",
                status
                    .last_failure_reason
                    .as_deref()
                    .unwrap_or("unknown reason")
            ),
        ),
    };
    [configured, healthy]
}

/// The API's conditions: a transition time that moves only when the
/// status does.
fn conditions(
    previous: &[Condition],
    decided: Vec<Cond>,
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> Vec<Condition> {
    decided
        .into_iter()
        .map(|cond| {
            let unchanged = previous
                .iter()
                .find(|c| c.type_ == cond.type_ && c.status == cond.status);
            Condition {
                type_: cond.type_.into(),
                status: cond.status.into(),
                reason: cond.reason.into(),
                message: cond.message,
                observed_generation: generation,
                last_transition_time: unchanged
                    .map(|c| c.last_transition_time.clone())
                    .unwrap_or_else(|| time(now)),
            }
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn security_risk_does_not_make_a_cluster_unready() {
        let risk = Cond::new(SECURITY_RISK, "True", "DevelopmentProfile", "x".into());
        let ok = Cond::new(WORKLOAD_CONFIGURED, "True", "Applied", "y".into());
        assert_eq!(ready(&[ok.clone(), risk.clone()]).status, "True");
        let hardened = Cond::new(SECURITY_RISK, "False", "Hardened", "z".into());
        assert_eq!(ready(&[ok, hardened]).status, "True");
        let bad = Cond::new(WORKLOAD_CONFIGURED, "False", "InvalidSpec", "w".into());
        assert_eq!(ready(&[risk, bad]).reason, "InvalidSpec");
    }
    use chrono::TimeZone;
    use contract::result::SweepReport;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, hour, 0, 0).unwrap()
    }

    pub(crate) fn success(hour: u32) -> JobOutcome {
        JobOutcome {
            job_name: format!("bao-backup-{hour}"),
            job_uid: format!("uid-{hour}"),
            kind: BackupKind::Scheduled,
            finished_at: at(hour),
            result: Some(BackupResult::Succeeded {
                key: format!("clusters/prod/bao/2026112{hour}.snap"),
                manifest_key: String::new(),
                bucket: "b".into(),
                size: 4096,
                sha256: "ab".repeat(32),
                snapshot: Default::default(),
                kind: BackupKind::Scheduled,
                source_node: "https://bao-0:8200/".into(),
                started_at: at(hour),
                completed_at: at(hour),
                duration_seconds: 12.34,
                throughput_bytes_per_second: 1,
                parts: 1,
                peak_memory_bytes: None,
                retention: None,
                swept: Default::default(),
                copies: Vec::new(),
            }),
            job_failure: None,
        }
    }

    fn failure(hour: u32, reason: &str) -> JobOutcome {
        JobOutcome {
            job_name: format!("bao-backup-{hour}"),
            job_uid: format!("uid-{hour}"),
            kind: BackupKind::Scheduled,
            finished_at: at(hour),
            result: Some(BackupResult::Failed {
                cause: "auth".into(),
                reason: reason.into(),
                kind: BackupKind::Scheduled,
                started_at: at(hour),
                completed_at: at(hour),
            }),
            job_failure: None,
        }
    }

    #[test]
    fn copies_say_per_target_whether_the_last_copy_is_verified() {
        use contract::result::CopyReport;
        let with_copies = |hour: u32, copies: Vec<CopyReport>| {
            let mut outcome = success(hour);
            if let Some(BackupResult::Succeeded { copies: c, .. }) = &mut outcome.result {
                *c = copies;
            }
            outcome
        };
        let report = |target: &str, verified: bool| CopyReport {
            target: target.into(),
            verified,
            error: (!verified).then(|| "S3 error: connection refused".into()),
            ..Default::default()
        };
        let mut status = BackupStatus::default();
        record(
            &mut status,
            &with_copies(
                1,
                vec![report("s3://offsite", true), report("pvc://nfs", true)],
            ),
        );
        let first = status.last_backup_name.clone();
        assert_eq!(status.copies.len(), 2);
        assert!(status.copies.iter().all(|c| c.last_result == COPY_VERIFIED
            && c.last_verified_key == first
            && c.last_error.is_none()));
        // The offsite copy fails next: its last verified backup stays.
        record(
            &mut status,
            &with_copies(
                2,
                vec![report("s3://offsite", false), report("pvc://nfs", true)],
            ),
        );
        let offsite = &status.copies[0];
        assert_eq!(offsite.last_result, COPY_FAILED);
        assert_eq!(offsite.last_verified_key, first);
        assert_eq!(offsite.last_verified_time, Some(time(at(1))));
        assert_eq!(
            offsite.last_error.as_deref(),
            Some("S3 error: connection refused")
        );
        assert_eq!(status.copies[1].last_verified_time, Some(time(at(2))));
        // A failed backup makes no copy: the copies' status stands.
        let before = status.copies.clone();
        record(&mut status, &failure(3, "S3 error: slow down"));
        assert_eq!(status.copies, before);
        // A target no longer copied to leaves the status.
        record(
            &mut status,
            &with_copies(4, vec![report("pvc://nfs", true)]),
        );
        assert_eq!(status.copies.len(), 1);
        assert_eq!(status.copies[0].target, "pvc://nfs");
    }

    #[test]
    fn successes_reset_failures_and_failures_count_up() {
        let mut status = BackupStatus::default();
        record(&mut status, &success(1));
        assert_eq!(status.last_backup_duration.as_deref(), Some("12.3s"));
        assert_eq!(status.last_backup_size, Some(4096));
        record(
            &mut status,
            &failure(2, "OpenBao authentication failed: denied"),
        );
        record(&mut status, &failure(3, "S3 error: slow down"));
        assert_eq!(status.consecutive_failures, 2);
        assert_eq!(
            status.last_failure_reason.as_deref(),
            Some("S3 error: slow down")
        );
        assert_eq!(
            status.last_backup_time,
            Some(time(at(1))),
            "the last good backup stays"
        );
        assert_eq!(status.last_attempt_time, Some(time(at(3))));
        record(&mut status, &success(4));
        assert_eq!(
            (
                status.consecutive_failures,
                status.last_failure_reason.clone()
            ),
            (0, None)
        );
    }

    #[test]
    fn a_job_killed_before_writing_a_result_is_a_failure() {
        let mut status = BackupStatus::default();
        let outcome = JobOutcome {
            job_name: "bao-backup-1".into(),
            job_uid: "uid-1".into(),
            kind: BackupKind::Manual,
            finished_at: at(1),
            result: None,
            job_failure: Some("Job was active longer than specified deadline".into()),
        };
        record(&mut status, &outcome);
        assert_eq!(status.consecutive_failures, 1);
        assert!(status.last_failure_reason.unwrap().contains("deadline"));
    }

    #[test]
    fn workload_warnings_ride_along_with_the_condition() {
        let warning =
            "spec.selfInit.requests[3].data.bound_claims.\"a/b\": use \"/a/b\"".to_string();
        let applied = workload_configured(&[], std::slice::from_ref(&warning));
        assert_eq!(
            (applied.status, applied.reason),
            ("True", "AppliedWithWarnings")
        );
        assert_eq!(
            applied.message,
            format!("the StatefulSet and its companions are in place; warning: {warning}")
        );
        let invalid = workload_configured(&["spec.version: give it".into()], &[warning]);
        assert_eq!((invalid.status, invalid.reason), ("False", "InvalidSpec"));
        assert!(
            invalid
                .message
                .starts_with("spec.version: give it; warning: spec.selfInit")
        );
        assert_eq!(workload_configured(&[], &[]).reason, "Applied");
    }

    /// A retention that deleted thousands of backups, with keys as long
    /// as the CRD allows, and an error full of characters JSON escapes.
    fn huge_retention(reason: &str, error: Option<String>) -> BackupResult {
        let prefix = format!("{}/{}/{}", "p".repeat(256), "n".repeat(63), "c".repeat(36));
        let key = |i: usize| format!("{prefix}/20261122T030000.000Z-pre-upgrade-{i:06}.snap");
        let entries = |keys: std::ops::RangeInclusive<usize>| {
            keys.map(|i| {
                serde_json::from_value(serde_json::json!({"key": key(i), "reason": reason}))
            })
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
        };
        let mut result = success(1).result.unwrap();
        if let BackupResult::Succeeded {
            key: k,
            manifest_key,
            source_node,
            retention,
            swept,
            kind,
            ..
        } = &mut result
        {
            *k = key(0);
            *manifest_key = format!("{}.manifest.json", key(0));
            *source_node = format!(
                "https://{0}-0.{0}-internal.{1}.svc:8200/",
                "c".repeat(36),
                "n".repeat(63)
            );
            *kind = BackupKind::PreUpgrade;
            // A sweep of thousands of leftovers, failed at the end.
            *swept = SweepReport {
                aborted_uploads: (1..=1000).map(key).collect(),
                deleted_objects: (1001..=2000).map(key).collect(),
                error: error.clone(),
                ..Default::default()
            };
            *retention = Some(RetentionReport {
                deleted: entries(1..=3000),
                refused: entries(3001..=3100),
                error,
                ..Default::default()
            });
        }
        result
    }

    #[test]
    fn a_result_fits_a_termination_message_whatever_retention_did() {
        let worst = huge_retention(&"\u{1}\"".repeat(500), Some("\u{1}".repeat(10_000)));
        let line = serde_json::to_string(&worst).unwrap();
        assert!(line.len() <= 4096, "{} bytes", line.len());
        let Some(BackupResult::Succeeded {
            retention: Some(report),
            ..
        }) = parse_result(&line)
        else {
            panic!("no result in {line}")
        };
        assert_eq!(
            (report.deleted_count(), report.refused_count()),
            (3000, 100)
        );
        // Plain reasons leave room to name a few.
        let plain = huge_retention("maxCount 7: 8 newer backups", None);
        let plain = serde_json::to_string(&plain).unwrap();
        assert!(plain.len() <= 4096, "{} bytes", plain.len());
        let Some(BackupResult::Succeeded {
            retention: Some(listed),
            ..
        }) = parse_result(&plain)
        else {
            panic!("no result in {plain}")
        };
        assert!(listed.deleted.len() >= 3, "{plain}");
        assert_eq!(listed.deleted_count(), 3000);

        let mut status = BackupStatus::default();
        record(
            &mut status,
            &JobOutcome {
                result: parse_result(&line),
                ..success(1)
            },
        );
        let retention = status.last_retention.clone().unwrap();
        assert_eq!(retention.deleted_count, 3000);
        assert_eq!(retention.refused_count, 100);
        assert_eq!(retention.error.unwrap().chars().count(), 256);
        record(
            &mut status,
            &JobOutcome {
                result: parse_result(&plain),
                ..success(1)
            },
        );
        let retention = status.last_retention.unwrap();
        assert_eq!(
            retention.deleted,
            listed.deleted[..listed.deleted.len().min(5)]
                .iter()
                .map(|d| d.key.clone())
                .collect::<Vec<_>>()
        );
        assert_eq!(retention.error, None);
    }

    #[test]
    fn retention_notes() {
        let retention = |deleted: &[&str], deleted_count, error: Option<&str>| RetentionStatus {
            backup_name: "k9".into(),
            deleted_count,
            deleted: deleted.iter().map(|k| k.to_string()).collect(),
            refused_count: 1,
            refused: vec!["k1: kept: the last backup".into()],
            error: error.map(str::to_string),
        };
        assert_eq!(
            retention_note(&retention(&["k2", "k3"], 7, None)),
            Some((
                false,
                "retention after k9 deleted 7 backup(s) (k2, k3 and 5 more); refused 1 deletion(s) (k1: kept: the last backup)".into()
            ))
        );
        let (failed, note) = retention_note(&retention(&[], 0, Some("S3 error: denied"))).unwrap();
        assert!(
            failed && note.ends_with("; failed: S3 error: denied"),
            "{note}"
        );
        let nothing = RetentionStatus {
            backup_name: "k9".into(),
            ..Default::default()
        };
        assert_eq!(retention_note(&nothing), None);
    }

    #[test]
    fn backup_warnings_ride_along_with_backup_configured() {
        let warning = "spec.backup.transforms[0].sha256 is not set".to_string();
        let [configured, _] = backup_conditions(
            &Configured::Applied,
            std::slice::from_ref(&warning),
            &BackupStatus::default(),
        );
        assert_eq!(
            (configured.status, configured.reason),
            ("True", "ValidWithWarnings")
        );
        assert_eq!(
            configured.message,
            format!("the backup CronJob is in place; warning: {warning}")
        );
    }

    #[test]
    fn termination_messages() {
        let line = serde_json::to_string(&success(1).result.unwrap()).unwrap();
        assert!(matches!(
            parse_result(&line),
            Some(BackupResult::Succeeded { .. })
        ));
        // FallbackToLogsOnError: the result is the last log line.
        let logs =
            format!("{{\"level\":\"INFO\",\"message\":\"streaming\"}}\nbackup failed: x\n{line}\n");
        assert!(matches!(
            parse_result(&logs),
            Some(BackupResult::Succeeded { .. })
        ));
        assert!(parse_result("panic: oh no").is_none());
    }

    #[test]
    fn conditions_keep_their_transition_time_while_unchanged() {
        let mut status = BackupStatus::default();
        let decide = |configured: &Configured, status: &BackupStatus| {
            backup_conditions(configured, &[], status).to_vec()
        };
        let first = conditions(&[], decide(&Configured::Applied, &status), Some(1), at(1));
        assert_eq!(first[0].status, "True");
        assert_eq!(first[1].status, "Unknown");
        record(&mut status, &success(2));
        let second = conditions(
            &first,
            decide(&Configured::Applied, &status),
            Some(1),
            at(2),
        );
        assert_eq!(
            second[0].last_transition_time,
            time(at(1)),
            "BackupConfigured did not change"
        );
        assert_eq!(
            (second[1].status.as_str(), &second[1].last_transition_time),
            ("True", &time(at(2)))
        );
        record(&mut status, &failure(3, "S3 error: denied"));
        let third = conditions(
            &second,
            decide(
                &Configured::Invalid(vec!["spec.backup.schedule: bad".to_string()]),
                &status,
            ),
            Some(2),
            at(3),
        );
        assert_eq!(
            (third[0].status.as_str(), third[0].reason.as_str()),
            ("False", "InvalidSpec")
        );
        assert!(third[0].message.contains("spec.backup.schedule"));
        assert_eq!(third[1].reason, "BackupFailed");
        assert!(third[1].message.contains("S3 error: denied"));
    }

    #[test]
    fn ready_sums_up_the_other_conditions() {
        let workload = |status| Workload {
            conditions: vec![
                workload_configured(&[], &[]),
                Cond::new(
                    crate::upgrade::UPGRADED,
                    status,
                    "UpToDate",
                    "runs 2.4.1".into(),
                ),
            ],
            ..Default::default()
        };
        let status_of = |workload, configured: &Configured, outcomes: &[JobOutcome]| {
            next(
                None,
                workload,
                Backups {
                    configured,
                    warnings: &[],
                    outcomes,
                    recorded_jobs: vec![],
                    next_run: None,
                },
                Some(7),
                at(1),
            )
        };
        let ready = |status: &OpenBaoClusterStatus| {
            let c = status.conditions.iter().find(|c| c.type_ == READY).unwrap();
            (c.status.clone(), c.reason.clone(), c.message.clone())
        };
        // No backup yet does not count against it; observedGeneration is
        // the generation read.
        let fresh = status_of(workload("True"), &Configured::Applied, &[]);
        assert_eq!(fresh.observed_generation, Some(7));
        assert_eq!(ready(&fresh).0, "True");
        assert_eq!(ready(&fresh).1, "AllConditionsTrue");
        assert_eq!(
            ready(&status_of(workload("True"), &Configured::Absent, &[])).0,
            "True",
            "no spec.backup: the workload alone"
        );
        let rolling = ready(&status_of(workload("False"), &Configured::Applied, &[]));
        assert_eq!(
            (rolling.0.as_str(), rolling.1.as_str()),
            ("False", "UpToDate")
        );
        assert!(rolling.2.starts_with("Upgraded is False: runs 2.4.1"));
        let unscheduled = ready(&status_of(
            workload("True"),
            &Configured::Unschedulable("no CronJob".into()),
            &[],
        ));
        assert_eq!(
            (unscheduled.0.as_str(), unscheduled.1.as_str()),
            ("False", "CronJobUnavailable")
        );
        let failed = ready(&status_of(
            workload("True"),
            &Configured::Applied,
            &[failure(2, "S3 error: denied")],
        ));
        assert_eq!(
            (failed.0.as_str(), failed.1.as_str()),
            ("False", "BackupFailed")
        );
    }
}
