//! Restore drills (`spec.backup.restoreTest`): when one is due, what a
//! reconcile does next with the drill's objects (a throwaway OpenBao pod
//! and its ConfigMap, then a drill Job once the pod has an address), how a
//! finished drill goes into `status.restoreTest`, and which objects go.
//! Pure: `reconcile::drill` reads the objects and the clock, this decides.
//!
//! State lives in `status.restoreTest.running` (the drill's name) and in
//! the objects themselves (labelled with the drill's name), so a restarted
//! operator carries on where it stopped, and every drill object that is
//! not the running drill's (left by a crash between creating it and
//! writing the status) is deleted.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::api::{BackupStatus, RestoreTestSpec, RestoreTestStatus};
use crate::names::{COMPONENT_LABEL, backup_labels};
use crate::schedule;
use crate::status::{Cond, time};
use crate::validate::DrillWhen;
use contract::drill::{DrillResult, DrillStep};

pub use crate::status::RESTORE_TESTED;
/// `app.kubernetes.io/component` of a drill's objects: no Service of the
/// cluster selects it.
pub const DRILL_COMPONENT: &str = "restore-drill";
/// The label naming the drill an object belongs to.
pub const DRILL_LABEL: &str = "openbao.org/restore-drill";
/// How long a throwaway pod may take to get an address and run.
pub const START_TIMEOUT: Duration = Duration::from_secs(600);

/// Labels of every object of the cluster's drills.
pub fn cluster_labels(cluster: &str) -> BTreeMap<String, String> {
    let mut labels = backup_labels(cluster);
    labels.insert(COMPONENT_LABEL.into(), DRILL_COMPONENT.into());
    labels
}

/// Labels of one drill's objects.
pub fn labels(cluster: &str, drill: &str) -> BTreeMap<String, String> {
    let mut labels = cluster_labels(cluster);
    labels.insert(DRILL_LABEL.into(), drill.into());
    labels
}

/// The name of a drill started at `now`: the throwaway pod, its
/// ConfigMap and the Job all have it.
pub fn name(cluster: &str, now: DateTime<Utc>) -> String {
    format!("{cluster}-drill-{}", now.timestamp())
}

/// The throwaway pod, as the reconcile saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Throwaway {
    pub created: DateTime<Utc>,
    pub ip: Option<String>,
    /// `Running`, `Pending`, `Failed`...
    pub phase: String,
    /// Why it does not run, when its container says so.
    pub problem: Option<String>,
}

/// The drill Job, as the reconcile saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum JobSeen {
    Running,
    /// Finished: the executor's result, or Kubernetes' reason.
    Finished {
        result: Option<DrillResult>,
        failure: Option<String>,
        at: DateTime<Utc>,
    },
}

/// Everything a reconcile found, and the facts it decides on.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    pub cluster: &'a str,
    /// `validate::restore_test`: None without `restoreTest`.
    pub valid: Option<Result<DrillWhen, Vec<String>>>,
    pub spec: Option<&'a RestoreTestSpec>,
    pub previous: Option<&'a RestoreTestStatus>,
    /// After this reconcile's backups were recorded.
    pub backup: Option<&'a BackupStatus>,
    /// Backups that succeeded in this reconcile (for `everyBackups`).
    pub new_backups: u32,
    /// Names of the drills any object is labelled with.
    pub present: Vec<String>,
    /// The running drill's pod and Job, when they exist.
    pub throwaway: Option<Throwaway>,
    pub job: Option<JobSeen>,
    /// What keeps a drill from starting now (backups, restores, upgrade).
    pub busy: Vec<String>,
    /// When schedules start counting without a drill yet: the cluster's
    /// creation.
    pub anchor: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub status: Option<RestoreTestStatus>,
    pub condition: Option<Cond>,
    /// Create the throwaway (pod and ConfigMap) of this drill.
    pub start: Option<String>,
    /// Create the drill Job against the throwaway at this IP.
    pub run_job: Option<(String, String)>,
    /// Delete every object of these drills.
    pub delete: Vec<String>,
    /// A drill ended: whether it passed, and its recovery time.
    pub finished: Option<(bool, Option<f64>)>,
    /// (warning, reason, message)
    pub event: Option<(bool, &'static str, String)>,
    pub requeue: Option<Duration>,
}

pub fn plan(input: Input<'_>) -> Plan {
    let mut status = input.previous.cloned().unwrap_or_default();
    status.backups_since = status.backups_since.saturating_add(input.new_backups);
    let mut plan = Plan::default();
    let running = status.running.clone();
    // Whatever is not the running drill's goes, on every path.
    plan.delete = input
        .present
        .iter()
        .filter(|d| Some(*d) != running.as_ref())
        .cloned()
        .collect();

    if let Some(drill) = running {
        step_running(&input, &mut status, &mut plan, &drill);
    } else if let Some(valid) = &input.valid {
        match valid {
            Err(problems) => {
                plan.condition = Some(Cond::new(
                    RESTORE_TESTED,
                    "False",
                    "InvalidSpec",
                    problems.join("; "),
                ));
            }
            Ok(when) => maybe_start(&input, when, &mut status, &mut plan),
        }
    }
    if plan.condition.is_none() && input.valid.is_some() {
        plan.condition = Some(condition(&status));
    }
    plan.status = (status != RestoreTestStatus::default()).then_some(status);
    plan
}

/// A drill is running: its Job's result, its Job to start, or a wait.
fn step_running(input: &Input<'_>, status: &mut RestoreTestStatus, plan: &mut Plan, drill: &str) {
    let end = |status: &mut RestoreTestStatus, plan: &mut Plan, outcome: Outcome| {
        plan.delete.push(drill.to_string());
        record(status, outcome, input.now, plan);
    };
    match (&input.job, &input.throwaway) {
        (
            Some(JobSeen::Finished {
                result,
                failure,
                at,
            }),
            _,
        ) => {
            let outcome = match result {
                Some(DrillResult::Succeeded(report)) => Outcome::Passed {
                    key: report.key.clone(),
                    raft_index: report.applied_index,
                    recovery_seconds: report.recovery_seconds,
                    canary: report.canary.clone(),
                },
                Some(DrillResult::Failed {
                    step, reason, key, ..
                }) => Outcome::Failed {
                    step: step.as_str(),
                    key: key.clone(),
                    message: reason.clone(),
                },
                None => Outcome::Failed {
                    step: DrillStep::Start.as_str(),
                    key: None,
                    message: format!(
                        "the drill Job {drill} ended without a result: {}",
                        failure.as_deref().unwrap_or("see its pod's logs")
                    ),
                },
            };
            end(status, plan, outcome);
            // The Job's end, not this reconcile's.
            status.last_time = Some(time(*at));
            if status.last_result.as_deref() == Some("Succeeded") {
                status.last_success_time = Some(time(*at));
            }
        }
        (Some(JobSeen::Running), _) => plan.requeue = Some(Duration::from_secs(10)),
        (None, Some(pod)) if pod.phase == "Failed" || pod.phase == "Succeeded" => end(
            status,
            plan,
            Outcome::start_failed(format!(
                "the throwaway pod {drill} stopped ({}){}",
                pod.phase,
                pod.problem
                    .as_ref()
                    .map(|p| format!(": {p}"))
                    .unwrap_or_default()
            )),
        ),
        (None, Some(pod)) => match &pod.ip {
            Some(ip) if pod.phase == "Running" => {
                plan.run_job = Some((drill.to_string(), ip.clone()));
                plan.requeue = Some(Duration::from_secs(10));
            }
            _ if (input.now - pod.created).to_std().unwrap_or_default() > START_TIMEOUT => end(
                status,
                plan,
                Outcome::start_failed(format!(
                    "the throwaway pod {drill} did not run within {START_TIMEOUT:?}{}",
                    pod.problem
                        .as_ref()
                        .map(|p| format!(": {p}"))
                        .unwrap_or_default()
                )),
            ),
            _ => plan.requeue = Some(Duration::from_secs(5)),
        },
        (None, None) => end(
            status,
            plan,
            Outcome::start_failed(format!(
                "the throwaway pod {drill} is gone before the drill ran (deleted by someone, or never created)"
            )),
        ),
    }
}

/// No drill runs: start one if due and nothing else runs.
fn maybe_start(
    input: &Input<'_>,
    when: &DrillWhen,
    status: &mut RestoreTestStatus,
    plan: &mut Plan,
) {
    if input.spec.is_some_and(|s| s.suspend) {
        return;
    }
    if input
        .backup
        .and_then(|b| b.last_backup_name.as_ref())
        .is_none()
    {
        if status.last_result.is_none() {
            plan.condition = Some(Cond::new(
                RESTORE_TESTED,
                "Unknown",
                "NoBackupYet",
                "no successful backup to drill yet".into(),
            ));
        }
        return;
    }
    let due = match when {
        DrillWhen::EveryBackups(n) => status.backups_since >= *n,
        DrillWhen::Schedule(schedule) => {
            let last = status
                .last_time
                .as_ref()
                .map(crate::jobs::chrono_time)
                .unwrap_or(input.anchor);
            match schedule::next_run(schedule, last) {
                Some(next) if next <= input.now => true,
                Some(next) => {
                    let wait = (next - input.now).to_std().unwrap_or_default();
                    plan.requeue = Some(wait + Duration::from_secs(1));
                    false
                }
                None => false,
            }
        }
    };
    if !due {
        return;
    }
    if !input.busy.is_empty() {
        plan.requeue = Some(Duration::from_secs(15));
        if status.last_result.is_none() {
            plan.condition = Some(Cond::new(
                RESTORE_TESTED,
                "Unknown",
                "Waiting",
                format!(
                    "a drill is due; waiting for {} to finish",
                    input.busy.join(", ")
                ),
            ));
        }
        return;
    }
    let drill = name(input.cluster, input.now);
    status.running = Some(drill.clone());
    status.backups_since = 0;
    plan.start = Some(drill.clone());
    plan.requeue = Some(Duration::from_secs(5));
    plan.event = Some((
        false,
        "RestoreTestStarted",
        format!("restore drill {drill} started: a throwaway OpenBao gets the latest backup"),
    ));
}

enum Outcome {
    Passed {
        key: String,
        raft_index: u64,
        recovery_seconds: f64,
        canary: Option<String>,
    },
    Failed {
        step: &'static str,
        key: Option<String>,
        message: String,
    },
}

impl Outcome {
    fn start_failed(message: String) -> Self {
        Self::Failed {
            step: DrillStep::Start.as_str(),
            key: None,
            message,
        }
    }
}

fn record(status: &mut RestoreTestStatus, outcome: Outcome, now: DateTime<Utc>, plan: &mut Plan) {
    let drill = status.running.take().unwrap_or_default();
    status.last_time = Some(time(now));
    match outcome {
        Outcome::Passed {
            key,
            raft_index,
            recovery_seconds,
            canary,
        } => {
            let message = format!(
                "restored {key} into a throwaway OpenBao: unsealed at Raft index {raft_index}{}, recovered in {recovery_seconds:.1}s",
                canary
                    .map(|c| format!(", canary {c} read back"))
                    .unwrap_or_default()
            );
            status.last_result = Some("Succeeded".into());
            status.last_success_time = Some(time(now));
            status.backup_key = Some(key);
            status.raft_index = Some(raft_index);
            status.recovery_seconds = Some(recovery_seconds);
            status.recovery_duration = Some(format!("{recovery_seconds:.1}s"));
            status.failed_step = None;
            status.message = Some(message.clone());
            plan.finished = Some((true, Some(recovery_seconds)));
            plan.event = Some((false, "RestoreTestSucceeded", format!("{drill}: {message}")));
        }
        Outcome::Failed { step, key, message } => {
            let message = format!("the {step} step failed: {message}");
            status.last_result = Some("Failed".into());
            status.backup_key = key;
            status.raft_index = None;
            status.recovery_seconds = None;
            status.recovery_duration = None;
            status.failed_step = Some(step.into());
            status.message = Some(message.clone());
            plan.finished = Some((false, None));
            plan.event = Some((true, "RestoreTestFailed", format!("{drill}: {message}")));
        }
    }
}

/// The condition from the last result (`Unknown` before the first).
pub fn condition(status: &RestoreTestStatus) -> Cond {
    let message = status.message.clone().unwrap_or_default();
    match status.last_result.as_deref() {
        Some("Succeeded") => Cond::new(RESTORE_TESTED, "True", "RestoreTestSucceeded", message),
        Some(_) => Cond::new(RESTORE_TESTED, "False", "RestoreTestFailed", message),
        None if status.running.is_some() => Cond::new(
            RESTORE_TESTED,
            "Unknown",
            "Running",
            format!(
                "drill {} is running",
                status.running.as_deref().unwrap_or_default()
            ),
        ),
        None => Cond::new(
            RESTORE_TESTED,
            "Unknown",
            "NotTestedYet",
            "no drill has run yet".into(),
        ),
    }
}

/// The drill failed at cleanup: its objects could not all be deleted
/// (`error`); they are retried on the next reconcile.
pub fn cleanup_failed(status: &mut RestoreTestStatus, error: &str) {
    status.last_result = Some("Failed".into());
    status.failed_step = Some(DrillStep::Cleanup.as_str().into());
    status.message = Some(format!(
        "the cleanup step failed: {error}; retried on the next reconcile"
    ));
}

#[cfg(test)]
mod tests;
