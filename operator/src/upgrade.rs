//! Upgrades: a change of `spec.version` or `spec.image`. With
//! `preUpgradeSnapshot` a backup Job of kind `pre-upgrade` runs first and
//! the StatefulSet keeps the running release until it succeeded; then the
//! new release goes into the StatefulSet and `rollout` replaces the pods.
//! A failed backup stops the upgrade before it starts; a new spec or a new
//! value of the retry annotation is a new attempt (a new Job). `plan`
//! decides from what was observed; it does no I/O.

use chrono::{DateTime, Utc};
use kube::runtime::events::EventType;
use sha2::{Digest, Sha256};

use crate::api::{UpgradePhase, UpgradeStatus};
use crate::release::Release;
use crate::rollout::Step;
use crate::status::{Cond, time};

/// Set (to any new value) to try a failed pre-upgrade backup again.
pub const RETRY_ANNOTATION: &str = "openbao.org/retry-upgrade";
pub const UPGRADED: &str = "Upgraded";

/// The pre-upgrade backup Job of one attempt: the target image and the
/// retry annotation name it, so that each attempt gets its own Job and a
/// finished one is never run again.
pub fn backup_job_name(cluster: &str, wanted: &Release, retry: Option<&str>) -> String {
    let attempt = Sha256::digest(format!("{}\n{}", wanted.image, retry.unwrap_or_default()));
    format!("{cluster}-pre-upgrade-{}", &hex::encode(attempt)[..10])
}

/// The pre-upgrade backup Job of this attempt, as seen.
#[derive(Debug, Clone, PartialEq)]
pub enum Backup {
    Missing,
    Running,
    Succeeded { key: String },
    Failed { reason: String },
}

/// What the reconcile saw.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    pub wanted: &'a Release,
    /// What the StatefulSet runs; None before it exists.
    pub running: Option<&'a Release>,
    /// The rollout of the StatefulSet's current template.
    pub rollout: &'a Step,
    /// Pods on the current template, of how many.
    pub updated: (usize, usize),
    /// `spec.upgrade.preUpgradeSnapshot`.
    pub snapshot: bool,
    /// The pre-upgrade Job of this attempt, and what it shows.
    pub backup_job: &'a str,
    pub backup: &'a Backup,
    /// A running OpenBaoRestore of this cluster, which holds upgrades back.
    pub restoring: Option<&'a str>,
    /// `status.upgrade` and `status.version` as last written.
    pub previous: Option<&'a UpgradeStatus>,
    pub version: Option<&'a str>,
}

/// Where an upgrade or a rollout stands: the `Upgraded` condition's
/// reason, and whether the reconcile waits for it to move on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    UpToDate,
    RollingOut,
    PreUpgradeBackup,
    WaitingForRestore,
    PreUpgradeBackupFailed,
}

impl Progress {
    pub fn reason(self) -> &'static str {
        match self {
            Progress::UpToDate => "UpToDate",
            Progress::RollingOut => "RollingOut",
            Progress::PreUpgradeBackup => "PreUpgradeBackup",
            Progress::WaitingForRestore => "WaitingForRestore",
            Progress::PreUpgradeBackupFailed => "PreUpgradeBackupFailed",
        }
    }

    /// Pods, Jobs and restores move these on, and wake the reconcile as
    /// they change. A failed pre-upgrade backup waits for the user, not a
    /// timer.
    pub fn waits(self) -> bool {
        matches!(
            self,
            Progress::RollingOut | Progress::PreUpgradeBackup | Progress::WaitingForRestore
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The release to put in the StatefulSet.
    pub deploy: Release,
    pub start_backup: bool,
    /// Delete this pod (name, uid) to replace it.
    pub replace: Option<(String, String)>,
    pub upgrade: Option<UpgradeStatus>,
    /// `status.version`: what every pod runs once rolled out.
    pub version: Option<String>,
    pub progress: Progress,
    /// The `Upgraded` condition's message.
    pub message: String,
    pub event: Option<(EventType, &'static str, String)>,
}

impl Plan {
    /// The `Upgraded` condition.
    pub fn condition(&self) -> Cond {
        let status = if self.progress == Progress::UpToDate {
            "True"
        } else {
            "False"
        };
        Cond::new(
            UPGRADED,
            status,
            self.progress.reason(),
            self.message.clone(),
        )
    }
}

pub fn plan(seen: &Observed<'_>, now: DateTime<Utc>) -> Plan {
    let plan = Plan {
        deploy: seen.wanted.clone(),
        start_backup: false,
        replace: None,
        upgrade: seen.previous.cloned(),
        version: seen.version.map(str::to_string),
        progress: Progress::UpToDate,
        message: String::new(),
        event: None,
    };
    match seen.running.filter(|r| r.image != seen.wanted.image) {
        Some(running) => upgrade(plan, seen, running, now),
        None => roll_out(plan, seen, now),
    }
}

/// Nothing to upgrade: roll out the StatefulSet's template, if needed.
fn roll_out(mut plan: Plan, seen: &Observed<'_>, now: DateTime<Utc>) -> Plan {
    let (done, of) = seen.updated;
    let upgrading = plan.upgrade.as_ref().is_some_and(|u| u.phase.in_progress());
    let step = match seen.rollout {
        // A replaced pod not yet recreated.
        Step::Done if upgrading && done < of => {
            Step::Wait("waiting for the StatefulSet controller to recreate pods".into())
        }
        step => step.clone(),
    };
    let progress = match step {
        Step::Done => return rolled_out(plan, seen.wanted, now),
        Step::Replace { pod, uid } => {
            let progress = format!("replacing pod {pod}");
            plan.replace = Some((pod, uid));
            progress
        }
        Step::Wait(why) => why,
    };
    let message = format!("{done} of {of} pods updated; {progress}");
    plan.progress = Progress::RollingOut;
    plan.message = message.clone();
    if let Some(upgrade) = plan.upgrade.as_mut().filter(|u| u.phase.in_progress()) {
        upgrade.phase = UpgradePhase::RollingOut;
        upgrade.message = Some(message);
    }
    plan
}

/// Every pod runs `wanted`: an upgrade in progress is complete.
fn rolled_out(mut plan: Plan, wanted: &Release, now: DateTime<Utc>) -> Plan {
    plan.version = Some(wanted.version.clone());
    plan.message = format!("every pod runs {}", wanted.version);
    if let Some(upgrade) = plan.upgrade.as_mut().filter(|u| u.phase.in_progress()) {
        upgrade.phase = UpgradePhase::Completed;
        upgrade.completion_time = Some(time(now));
        upgrade.message = Some(format!("every pod runs {}", wanted.version));
        plan.event = Some((
            EventType::Normal,
            "UpgradeCompleted",
            format!(
                "upgraded from {} to {}",
                upgrade.from_version, upgrade.to_version
            ),
        ));
    }
    plan
}

/// An upgrade from `running` to `wanted`. Until it may start, the
/// StatefulSet keeps what it runs.
fn upgrade(mut plan: Plan, seen: &Observed<'_>, running: &Release, now: DateTime<Utc>) -> Plan {
    plan.deploy = running.clone();
    let previous = this_attempt(seen);
    let mut upgrade = attempt(seen, previous, running, now);
    let (progress, message) = if let Some(restore) = seen.restoring {
        (
            Progress::WaitingForRestore,
            format!("waits for OpenBaoRestore {restore} to finish"),
        )
    } else if !seen.snapshot {
        plan.deploy = seen.wanted.clone();
        upgrade.phase = UpgradePhase::RollingOut;
        plan.event = Some(started(seen, &upgrade));
        (
            Progress::RollingOut,
            format!("rolling out {}", seen.wanted.version),
        )
    } else {
        after_backup(&mut plan, &mut upgrade, seen, previous, running)
    };
    if upgrade.phase == UpgradePhase::Failed {
        upgrade.completion_time = previous
            .and_then(|p| p.completion_time.clone())
            .or_else(|| Some(time(now)));
    }
    upgrade.message = Some(message.clone());
    plan.progress = progress;
    plan.message = message;
    plan.upgrade = Some(upgrade);
    plan
}

/// The last status of this attempt: the same target, not completed, and
/// the same pre-upgrade Job (if it had one).
fn this_attempt<'a>(seen: &Observed<'a>) -> Option<&'a UpgradeStatus> {
    seen.previous
        .filter(|u| {
            u.to_version == seen.wanted.version && !matches!(u.phase, UpgradePhase::Completed)
        })
        .filter(|u| {
            u.pre_upgrade_job
                .as_deref()
                .is_none_or(|j| j == seen.backup_job)
        })
}

/// `status.upgrade` of this attempt, waiting.
fn attempt(
    seen: &Observed<'_>,
    previous: Option<&UpgradeStatus>,
    running: &Release,
    now: DateTime<Utc>,
) -> UpgradeStatus {
    UpgradeStatus {
        phase: UpgradePhase::Waiting,
        from_version: running.version.clone(),
        to_version: seen.wanted.version.clone(),
        pre_upgrade_job: seen.snapshot.then(|| seen.backup_job.to_string()),
        // The last upgrade's backup stays named (and kept by retention)
        // until this attempt's backup replaces it.
        pre_upgrade_backup_key: seen.previous.and_then(|p| p.pre_upgrade_backup_key.clone()),
        message: None,
        start_time: Some(
            previous
                .and_then(|p| p.start_time.clone())
                .unwrap_or_else(|| time(now)),
        ),
        completion_time: None,
    }
}

/// With a pre-upgrade snapshot: start its Job, wait for it, then roll
/// out; a failed one blocks the upgrade until a new attempt.
fn after_backup(
    plan: &mut Plan,
    upgrade: &mut UpgradeStatus,
    seen: &Observed<'_>,
    previous: Option<&UpgradeStatus>,
    running: &Release,
) -> (Progress, String) {
    let wanted = seen.wanted;
    match seen.backup {
        Backup::Missing | Backup::Running => {
            plan.start_backup = *seen.backup == Backup::Missing;
            upgrade.phase = UpgradePhase::BackingUp;
            (
                Progress::PreUpgradeBackup,
                format!(
                    "Job {} takes the pre-upgrade backup; the StatefulSet keeps {} until it succeeds",
                    seen.backup_job, running.version
                ),
            )
        }
        Backup::Succeeded { key } => {
            plan.deploy = wanted.clone();
            upgrade.phase = UpgradePhase::RollingOut;
            upgrade.pre_upgrade_backup_key = Some(key.clone());
            plan.event = Some(started(seen, upgrade));
            (
                Progress::RollingOut,
                format!(
                    "pre-upgrade backup {key} taken; rolling out {}",
                    wanted.version
                ),
            )
        }
        Backup::Failed { reason } => {
            upgrade.phase = UpgradePhase::Failed;
            let message = format!(
                "the pre-upgrade backup failed, so the upgrade to {} did not start: {reason}. Fix the cause, then set the annotation {RETRY_ANNOTATION} to a new value (or change spec.version) to try again",
                wanted.version
            );
            if previous.is_none_or(|p| p.phase != UpgradePhase::Failed) {
                plan.event = Some((EventType::Warning, "UpgradeBlocked", message.clone()));
            }
            (Progress::PreUpgradeBackupFailed, message)
        }
    }
}

fn started(seen: &Observed<'_>, upgrade: &UpgradeStatus) -> (EventType, &'static str, String) {
    (
        EventType::Normal,
        "UpgradeStarted",
        format!(
            "upgrading from {} to {}{}",
            upgrade.from_version,
            upgrade.to_version,
            upgrade
                .pre_upgrade_backup_key
                .as_ref()
                .filter(|_| seen.snapshot)
                .map(|key| format!(" after the pre-upgrade backup {key}"))
                .unwrap_or_else(|| " (no pre-upgrade snapshot asked for)".into())
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(version: &str) -> Release {
        Release {
            version: version.into(),
            image: format!("openbao/openbao:{version}"),
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-11-24T10:00:00Z".parse().unwrap()
    }

    struct Case {
        wanted: Release,
        running: Option<Release>,
        rollout: Step,
        snapshot: bool,
        backup: Backup,
        restoring: Option<&'static str>,
        previous: Option<UpgradeStatus>,
        updated: (usize, usize),
    }

    impl Case {
        fn upgrade() -> Self {
            Case {
                wanted: release("2.4.2"),
                running: Some(release("2.4.1")),
                rollout: Step::Done,
                snapshot: true,
                backup: Backup::Missing,
                restoring: None,
                previous: None,
                updated: (3, 3),
            }
        }

        fn plan(&self) -> Plan {
            plan(
                &Observed {
                    wanted: &self.wanted,
                    running: self.running.as_ref(),
                    rollout: &self.rollout,
                    updated: self.updated,
                    snapshot: self.snapshot,
                    backup_job: "bao-pre-upgrade-1",
                    backup: &self.backup,
                    restoring: self.restoring,
                    previous: self.previous.as_ref(),
                    version: Some("2.4.1"),
                },
                now(),
            )
        }
    }

    #[test]
    fn the_backup_comes_first_and_holds_the_statefulset() {
        let mut case = Case::upgrade();
        let plan = case.plan();
        assert!(plan.start_backup);
        assert_eq!(plan.deploy, release("2.4.1"), "the StatefulSet waits");
        let upgrade = plan.upgrade.clone().unwrap();
        assert_eq!(upgrade.phase, UpgradePhase::BackingUp);
        assert_eq!(
            (upgrade.from_version.as_str(), upgrade.to_version.as_str()),
            ("2.4.1", "2.4.2")
        );
        assert_eq!(
            upgrade.pre_upgrade_job.as_deref(),
            Some("bao-pre-upgrade-1")
        );
        assert_eq!(plan.progress, Progress::PreUpgradeBackup);

        case.previous = plan.upgrade;
        case.backup = Backup::Running;
        let running = case.plan();
        assert!(!running.start_backup, "one Job per attempt");
        assert_eq!(running.deploy, release("2.4.1"));

        case.backup = Backup::Succeeded {
            key: "k/pre-upgrade.snap".into(),
        };
        let go = case.plan();
        assert_eq!(go.deploy, release("2.4.2"));
        let upgrade = go.upgrade.clone().unwrap();
        assert_eq!(upgrade.phase, UpgradePhase::RollingOut);
        assert_eq!(
            upgrade.pre_upgrade_backup_key.as_deref(),
            Some("k/pre-upgrade.snap")
        );
        assert_eq!(upgrade.start_time, Some(time(now())));
        assert_eq!(go.event.as_ref().unwrap().1, "UpgradeStarted");

        // The StatefulSet runs 2.4.2 now; its pods follow one by one.
        case.previous = go.upgrade;
        case.running = Some(release("2.4.2"));
        case.updated = (1, 3);
        case.rollout = Step::Replace {
            pod: "bao-1".into(),
            uid: "u1".into(),
        };
        let rolling = case.plan();
        assert_eq!(rolling.replace, Some(("bao-1".into(), "u1".into())));
        assert_eq!(rolling.message, "1 of 3 pods updated; replacing pod bao-1");
        assert_eq!(rolling.version.as_deref(), Some("2.4.1"));

        case.previous = rolling.upgrade;
        case.rollout = Step::Done;
        case.updated = (3, 3);
        let done = case.plan();
        let upgrade = done.upgrade.clone().unwrap();
        assert_eq!(upgrade.phase, UpgradePhase::Completed);
        assert_eq!(
            upgrade.pre_upgrade_backup_key.as_deref(),
            Some("k/pre-upgrade.snap")
        );
        assert_eq!(done.version.as_deref(), Some("2.4.2"));
        assert_eq!(done.condition().status, "True");
        assert_eq!(done.event.unwrap().2, "upgraded from 2.4.1 to 2.4.2");
    }

    #[test]
    fn the_last_pre_upgrade_backup_stays_named_until_the_next_one_is_taken() {
        let mut case = Case::upgrade();
        case.wanted = release("2.4.3");
        case.running = Some(release("2.4.2"));
        case.previous = Some(UpgradeStatus {
            phase: UpgradePhase::Completed,
            from_version: "2.4.1".into(),
            to_version: "2.4.2".into(),
            pre_upgrade_backup_key: Some("k/2.4.1.snap".into()),
            ..Default::default()
        });
        let key = |plan: &Plan| {
            plan.upgrade
                .as_ref()
                .unwrap()
                .pre_upgrade_backup_key
                .clone()
        };
        assert_eq!(
            key(&case.plan()).as_deref(),
            Some("k/2.4.1.snap"),
            "backing up"
        );
        case.backup = Backup::Failed {
            reason: "storage: access denied".into(),
        };
        assert_eq!(key(&case.plan()).as_deref(), Some("k/2.4.1.snap"), "failed");
        case.backup = Backup::Succeeded {
            key: "k/2.4.2.snap".into(),
        };
        assert_eq!(
            key(&case.plan()).as_deref(),
            Some("k/2.4.2.snap"),
            "replaced"
        );
        case.snapshot = false;
        let unasked = case.plan();
        assert!(unasked.event.unwrap().2.contains("no pre-upgrade snapshot"));
    }

    #[test]
    fn an_upgrade_completes_only_when_every_pod_is_back() {
        let mut case = Case::upgrade();
        case.running = Some(release("2.4.2"));
        case.previous = Some(UpgradeStatus {
            phase: UpgradePhase::RollingOut,
            from_version: "2.4.1".into(),
            to_version: "2.4.2".into(),
            ..Default::default()
        });
        // Two pods are missing.
        case.updated = (1, 3);
        let plan = case.plan();
        assert_eq!(plan.upgrade.unwrap().phase, UpgradePhase::RollingOut);
        assert!(plan.message.contains("recreate pods"), "{}", plan.message);
    }

    #[test]
    fn a_failed_backup_blocks_the_upgrade_and_says_how_to_retry() {
        let mut case = Case::upgrade();
        case.backup = Backup::Failed {
            reason: "storage: access denied".into(),
        };
        let plan = case.plan();
        assert_eq!(plan.deploy, release("2.4.1"));
        assert!(!plan.start_backup);
        let upgrade = plan.upgrade.clone().unwrap();
        assert_eq!(upgrade.phase, UpgradePhase::Failed);
        assert!(!upgrade.phase.in_progress(), "restores may run");
        assert_eq!(plan.progress, Progress::PreUpgradeBackupFailed);
        assert!(plan.message.contains("storage: access denied"));
        assert!(plan.message.contains(RETRY_ANNOTATION));
        assert_eq!(plan.event.as_ref().unwrap().1, "UpgradeBlocked");
        // Said once.
        case.previous = plan.upgrade;
        assert!(case.plan().event.is_none());
    }

    #[test]
    fn without_a_snapshot_the_rollout_starts_at_once() {
        let mut case = Case::upgrade();
        case.snapshot = false;
        let plan = case.plan();
        assert!(!plan.start_backup);
        assert_eq!(plan.deploy, release("2.4.2"));
        let upgrade = plan.upgrade.unwrap();
        assert_eq!(upgrade.phase, UpgradePhase::RollingOut);
        assert!(upgrade.pre_upgrade_job.is_none());
        assert!(plan.event.unwrap().2.contains("no pre-upgrade snapshot"));
    }

    #[test]
    fn a_running_restore_holds_the_upgrade() {
        let mut case = Case::upgrade();
        case.restoring = Some("restore-1");
        let plan = case.plan();
        assert!(!plan.start_backup);
        assert_eq!(plan.deploy, release("2.4.1"));
        assert_eq!(plan.upgrade.unwrap().phase, UpgradePhase::Waiting);
        assert_eq!(plan.progress, Progress::WaitingForRestore);
    }

    #[test]
    fn a_new_cluster_just_runs_what_it_asks_for() {
        let mut case = Case::upgrade();
        case.running = None;
        let plan = case.plan();
        assert_eq!(plan.deploy, release("2.4.2"));
        assert!(plan.upgrade.is_none() && !plan.start_backup && plan.event.is_none());
        assert_eq!(plan.version.as_deref(), Some("2.4.2"));
    }

    #[test]
    fn each_attempt_has_its_own_job() {
        let a = backup_job_name("bao", &release("2.4.2"), None);
        assert!(a.starts_with("bao-pre-upgrade-") && a.len() == "bao-pre-upgrade-".len() + 10);
        assert_eq!(a, backup_job_name("bao", &release("2.4.2"), None));
        assert_ne!(a, backup_job_name("bao", &release("2.4.3"), None));
        assert_ne!(a, backup_job_name("bao", &release("2.4.2"), Some("1")));
    }
}
