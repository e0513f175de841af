//! One reconcile of one `OpenBaoRestore`: run it once, as a Job, when its
//! cluster has no backup, restore or upgrade running, hold the cluster's
//! scheduled backups meanwhile, and record how it ended. `next` decides
//! (pure); `reconcile` reads and writes.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Client, Resource, ResourceExt};

use contract::executor::command;
use contract::preview::{Override, PreviewReport, Verdict};
use contract::result::{ReadBackReport, ReadBackResult};

use crate::api::{
    OpenBaoCluster, OpenBaoRestore, OpenBaoRestoreStatus, PreviewFinding, RestorePhase,
};
use crate::context::{At, Context, Error};
use crate::desired::restore_job::restore_job;
use crate::jobs;
use crate::kube_io;
use crate::names;
use crate::security;
use crate::settings::OperatorSettings;
use crate::status::time;
use crate::validate;

const COMPLETE: &str = "Complete";

/// What the restore's Job shows.
#[derive(Debug, Clone, PartialEq)]
pub enum JobState {
    Missing,
    Running,
    /// What the executor restored.
    Succeeded(Box<ReadBackReport>),
    /// What a preview found (`spec.preview`).
    Previewed(Box<PreviewReport>),
    Failed(String),
}

/// What to do and what to record.
#[derive(Debug, Clone, PartialEq)]
pub struct Next {
    pub status: OpenBaoRestoreStatus,
    /// Create the Job now.
    pub start: bool,
    /// Suspend (true) or release (false) the cluster's scheduled backups.
    pub hold_backups: Option<bool>,
    pub event: Option<(EventType, &'static str, String)>,
}

/// Decides the next step. `busy` names what keeps the cluster from being
/// restored now (its running backup Jobs and other restores). A restore
/// runs at most once: once it has a Job, it never gets another, and a
/// final phase never changes.
pub fn next(
    restore: &OpenBaoRestore,
    cluster: Option<&OpenBaoCluster>,
    job: &JobState,
    busy: &[String],
    settings: &OperatorSettings,
    now: DateTime<Utc>,
) -> Next {
    let mut status = restore.status.clone().unwrap_or_default();
    if status.phase.is_final() {
        return Next::record(status, None);
    }
    let job_name = names::restore_job_name(&restore.name_any());
    let end = |status, ok, message| ended(restore, status, ok, message, now);
    match job {
        JobState::Succeeded(report) => {
            let message = record_result(&mut status, report);
            end(status, true, message)
        }
        JobState::Previewed(report) => {
            let message = record_preview(&mut status, report);
            let mut next = end(status, true, message);
            next.status.phase = RestorePhase::Previewed;
            if let Some(condition) = next.status.conditions.first_mut() {
                condition.reason = "Previewed".into();
            }
            next.event = next
                .event
                .map(|(type_, _, message)| (type_, "RestorePreviewed", message));
            next
        }
        // The executor names its flags; the resource has fields.
        JobState::Failed(reason) => end(status, false, spec_fields(reason)),
        JobState::Running => {
            status.phase = RestorePhase::Running;
            status.job_name = Some(job_name.clone());
            status.message = Some(format!("Job {job_name} is restoring"));
            Next::record(status, Some(true))
        }
        JobState::Missing if status.job_name.is_some() => end(
            status,
            false,
            format!(
                "the restore Job {job_name} disappeared before it finished; a restore runs once: create a new OpenBaoRestore"
            ),
        ),
        JobState::Missing => {
            let Some(cluster) = cluster else {
                status.message = Some(format!(
                    "waiting for OpenBaoCluster {} in this namespace",
                    restore.spec.cluster
                ));
                return Next::record(status, None);
            };
            let problems: Vec<String> = validate::restore(&restore.spec, cluster, settings)
                .err()
                .unwrap_or_default()
                .into_iter()
                .chain(security::restore_refusals(
                    &restore.spec,
                    &cluster.spec,
                    &settings.service_cidrs,
                ))
                .collect();
            if !problems.is_empty() {
                return end(status, false, problems.join("; "));
            }
            if !busy.is_empty() {
                status.message = Some(format!("waiting for {} to finish", busy.join(", ")));
                return Next::record(status, Some(true));
            }
            start(restore, status, &job_name, now)
        }
    }
}

impl Next {
    /// Record `status`, hold or release backups, and do nothing else.
    fn record(status: OpenBaoRestoreStatus, hold_backups: Option<bool>) -> Self {
        Next {
            status,
            start: false,
            hold_backups,
            event: None,
        }
    }
}

/// What the executor restored, from its result; returns the message.
fn record_result(status: &mut OpenBaoRestoreStatus, report: &ReadBackReport) -> String {
    status.restored_key = Some(report.key.clone());
    status.restored_size = Some(report.snapshot.size);
    status.restored_sha256 = Some(report.snapshot.sha256.clone());
    format!(
        "restored {} ({} bytes) into {}",
        report.key,
        report.snapshot.size,
        report.node.as_deref().unwrap_or("the active node")
    )
}

/// A preview's findings into the status; returns the message.
fn record_preview(status: &mut OpenBaoRestoreStatus, report: &PreviewReport) -> String {
    status.preview = report
        .findings
        .iter()
        .map(|f| PreviewFinding {
            check: f.check.clone(),
            verdict: f.verdict.as_str().into(),
            message: f.message.clone(),
            forced_by: f.override_.map(|o| o.spec_field().into()),
        })
        .collect();
    match report.refusal(Override::spec_field) {
        Some(refusal) => format!("previewed: a restore would be refused: {refusal}"),
        None => format!(
            "previewed {}: a restore would go ahead ({} warnings)",
            report.key,
            report
                .findings
                .iter()
                .filter(|f| f.verdict == Verdict::Warn)
                .count()
        ),
    }
}

/// The executor's flags in a reason, as the `OpenBaoRestore` fields that
/// set them.
fn spec_fields(reason: &str) -> String {
    [Override::AllowOtherCluster, Override::Force]
        .into_iter()
        .fold(reason.to_string(), |reason, o| {
            reason.replace(o.flag(), o.spec_field())
        })
}

/// Starts the Job, holding the cluster's scheduled backups meanwhile.
fn start(
    restore: &OpenBaoRestore,
    mut status: OpenBaoRestoreStatus,
    job_name: &str,
    now: DateTime<Utc>,
) -> Next {
    status.phase = RestorePhase::Running;
    status.job_name = Some(job_name.into());
    status.start_time = Some(time(now));
    status.message = Some(format!("Job {job_name} is restoring"));
    Next {
        status,
        start: true,
        hold_backups: Some(true),
        event: Some((
            EventType::Normal,
            "RestoreStarted",
            format!("restoring {} with Job {job_name}", restore.spec.key),
        )),
    }
}

/// A final phase: the `Complete` condition, an event, and the cluster's
/// backups released.
fn ended(
    restore: &OpenBaoRestore,
    mut status: OpenBaoRestoreStatus,
    ok: bool,
    message: String,
    now: DateTime<Utc>,
) -> Next {
    let (phase, type_, reason) = if ok {
        (
            RestorePhase::Succeeded,
            EventType::Normal,
            "RestoreSucceeded",
        )
    } else {
        (RestorePhase::Failed, EventType::Warning, "RestoreFailed")
    };
    status.phase = phase;
    status.completion_time = Some(time(now));
    status.conditions = vec![Condition {
        type_: COMPLETE.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: message.clone(),
        observed_generation: restore.meta().generation,
        last_transition_time: time(now),
    }];
    status.message = Some(message.clone());
    Next {
        status,
        start: false,
        hold_backups: Some(false),
        event: Some((type_, reason, message)),
    }
}

pub async fn reconcile(restore: Arc<OpenBaoRestore>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = restore.name_any();
    let namespace = restore
        .namespace()
        .ok_or_else(|| Error::NoNamespace(format!("OpenBaoRestore {name}")))?;
    if restore.status.as_ref().is_some_and(|s| s.phase.is_final()) {
        return Ok(Action::await_change());
    }
    let client = &ctx.client;
    let cluster: Option<OpenBaoCluster> =
        kube_io::get(client, &namespace, &restore.spec.cluster).await?;
    let job = job_state(client, &namespace, &name).await?;
    let busy = match (&job, &cluster) {
        (JobState::Missing, Some(cluster)) => busy(client, cluster, &name).await?,
        _ => Vec::new(),
    };
    let next = next(
        &restore,
        cluster.as_ref(),
        &job,
        &busy,
        &ctx.settings,
        Utc::now(),
    );
    if let (Some(hold), Some(cluster)) = (next.hold_backups, &cluster) {
        kube_io::hold_backups(client, cluster, hold).await?;
    }
    if next.start {
        let cluster = cluster
            .as_ref()
            .expect("a restore starts only with its cluster");
        kube_io::create_once(client, &restore_job(&restore, cluster, &ctx.settings)).await?;
    }
    if restore.status.clone().unwrap_or_default() != next.status {
        Api::<OpenBaoRestore>::namespaced(client.clone(), &namespace)
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({ "status": next.status })),
            )
            .await
            .at("write OpenBaoRestore status", &name)?;
        // Once: a final phase is never reconciled again.
        if next.status.phase.is_final() && next.status.phase != RestorePhase::Previewed {
            let succeeded = next.status.phase == RestorePhase::Succeeded;
            ctx.metrics
                .restore_finished(&namespace, &restore.spec.cluster, succeeded);
            if let JobState::Succeeded(report) = &job {
                ctx.metrics.restore_measured(
                    &namespace,
                    &restore.spec.cluster,
                    report.duration_seconds,
                    report.snapshot.size,
                );
            }
            if let Some(cluster) = &cluster {
                let event = crate::notify::Event::restore(&restore, &next.status);
                ctx.notifier.notify(cluster, &event);
            }
        }
    }
    if let Some((type_, reason, note)) = next.event {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note.chars().take(1000).collect()),
            action: "Restore".into(),
            secondary: None,
        };
        kube_io::publish(&ctx.recorder, restore.as_ref(), event).await;
    }
    Ok(match next.status.phase {
        RestorePhase::Pending => Action::requeue(Duration::from_secs(15)),
        _ => Action::await_change(),
    })
}

/// What the restore's Job shows: a finished one's result from its pod.
async fn job_state(client: &Client, namespace: &str, restore: &str) -> Result<JobState, Error> {
    let job: Option<Job> =
        kube_io::get(client, namespace, &names::restore_job_name(restore)).await?;
    let Some(job) = job else {
        return Ok(JobState::Missing);
    };
    let Some(finished) = jobs::finished(&job) else {
        return Ok(JobState::Running);
    };
    let pods = kube_io::job_pods(client, &job).await?;
    let result = jobs::termination_message(&pods, command::RESTORE)
        .and_then(|m| serde_json::from_str::<ReadBackResult>(&m).ok());
    Ok(match (finished.failure, result) {
        (None, Some(ReadBackResult::Restored(report))) => JobState::Succeeded(Box::new(report)),
        // A preview that finds a refusal exits 2: its report stands.
        (_, Some(ReadBackResult::Previewed(report))) => JobState::Previewed(Box::new(report)),
        (_, Some(ReadBackResult::Failed { reason, .. })) => JobState::Failed(reason),
        (failure, _) => JobState::Failed(
            failure.unwrap_or_else(|| "the restore Job failed without a result".into()),
        ),
    })
}

/// What keeps the cluster from being restored now: its running backup
/// Jobs, an upgrade in progress, and its other running restores.
pub(crate) async fn busy(
    client: &Client,
    cluster: &OpenBaoCluster,
    restore: &str,
) -> Result<Vec<String>, Error> {
    let namespace = cluster.namespace().unwrap_or_default();
    let mut busy: Vec<String> = kube_io::backup_jobs(client, &namespace, &cluster.name_any())
        .await?
        .iter()
        .filter(|job| jobs::finished(job).is_none())
        .map(|job| format!("backup Job {}", job.name_any()))
        .collect();
    // An external OpenBao is never upgraded here: an upgrade status left
    // from before `spec.external` holds nothing back.
    if let Some(upgrade) = cluster.status.as_ref().and_then(|s| s.upgrade.as_ref())
        && upgrade.phase.in_progress()
        && cluster.spec.external.is_none()
    {
        busy.push(format!(
            "the upgrade of {} to {}",
            cluster.name_any(),
            upgrade.to_version
        ));
    }
    busy.extend(
        kube_io::restores_of(client, cluster)
            .await?
            .iter()
            .filter(|other| other.name_any() != restore)
            .filter(|other| {
                other
                    .status
                    .as_ref()
                    .is_some_and(|s| s.phase == RestorePhase::Running)
            })
            .map(|other| format!("restore {}", other.name_any())),
    );
    Ok(busy)
}

pub fn error_policy(restore: Arc<OpenBaoRestore>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_failed(error.step());
    tracing::warn!(restore = %restore.name_any(), namespace = ?restore.namespace(), %error, "restore reconcile failed");
    Action::requeue(Duration::from_secs(15))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{BackupSpec, LocalRef, OpenBaoClusterSpec, OpenBaoRestoreSpec};
    use contract::snapshot::{ContentDigest, RaftInfo};

    fn cluster() -> OpenBaoCluster {
        let mut cluster = OpenBaoCluster::new(
            "bao",
            OpenBaoClusterSpec {
                backup: Some(BackupSpec {
                    schedule: "0 3 * * *".into(),
                    executor_image: Some("executor:1".into()),
                    jwt_auth_role: Some("backup".into()),
                    target: crate::api::BackupTarget {
                        bucket: "backups".into(),
                        ..Default::default()
                    },
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
        cluster.metadata.namespace = Some("prod".into());
        cluster
    }

    fn restore(status: Option<OpenBaoRestoreStatus>) -> OpenBaoRestore {
        let mut restore = OpenBaoRestore::new(
            "r1",
            OpenBaoRestoreSpec {
                cluster: "bao".into(),
                key: "latest".into(),
                jwt_auth_role: Some("restore".into()),
                ..Default::default()
            },
        );
        restore.metadata.namespace = Some("prod".into());
        restore.metadata.uid = Some("uid-r1".into());
        restore.status = status;
        restore
    }

    fn images() -> OperatorSettings {
        OperatorSettings {
            executor_images: vec!["executor".into()],
            default_executor_image: "executor:0".into(),
            ..Default::default()
        }
    }

    fn at(hour: u32) -> DateTime<Utc> {
        chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 24, hour, 0, 0).unwrap()
    }

    #[test]
    fn a_restore_waits_for_its_cluster_and_for_running_backups() {
        let none = next(
            &restore(None),
            None,
            &JobState::Missing,
            &[],
            &images(),
            at(1),
        );
        assert!(!none.start);
        assert_eq!(none.status.phase, RestorePhase::Pending);
        assert!(
            none.status
                .message
                .unwrap()
                .contains("waiting for OpenBaoCluster bao")
        );

        let busy = next(
            &restore(None),
            Some(&cluster()),
            &JobState::Missing,
            &["backup Job bao-backup-29001".into()],
            &images(),
            at(1),
        );
        assert!(!busy.start);
        assert_eq!(
            busy.hold_backups,
            Some(true),
            "no new backup starts meanwhile"
        );
        assert!(busy.status.message.unwrap().contains("bao-backup-29001"));
    }

    #[test]
    fn a_preview_records_its_findings_and_a_refusal_names_the_spec_field() {
        use contract::preview::Finding;
        let finding = |check: &str, verdict, override_| Finding {
            check: check.into(),
            verdict,
            message: format!("{check} says so"),
            override_,
        };
        let report = PreviewReport {
            key: "prod/old/x.snap".into(),
            node: "https://bao-0:8200/".into(),
            object: ContentDigest::default(),
            raft: RaftInfo {
                index: 7,
                term: 2,
                state_size: 100,
            },
            findings: vec![
                finding(
                    "cluster",
                    Verdict::Refuse,
                    Some(Override::AllowOtherCluster),
                ),
                finding("seal", Verdict::Warn, None),
                finding("raft", Verdict::Ok, None),
            ],
            started_at: at(2),
            duration_seconds: 0.1,
        };
        let running = restore(Some(OpenBaoRestoreStatus {
            phase: RestorePhase::Running,
            job_name: Some("r1-restore".into()),
            ..Default::default()
        }));
        let done = next(
            &running,
            Some(&cluster()),
            &JobState::Previewed(Box::new(report.clone())),
            &[],
            &images(),
            at(3),
        );
        assert_eq!(done.status.phase, RestorePhase::Previewed);
        assert!(done.status.phase.is_final());
        assert_eq!(done.status.preview.len(), 3);
        assert_eq!(
            done.status.preview[0],
            PreviewFinding {
                check: "cluster".into(),
                verdict: "refuse".into(),
                message: "cluster says so".into(),
                forced_by: Some("spec.allowOtherCluster".into()),
            }
        );
        let message = done.status.message.unwrap();
        assert!(
            message.contains("would be refused") && message.contains("give spec.allowOtherCluster"),
            "{message}"
        );
        assert_eq!(done.event.unwrap().1, "RestorePreviewed");
        assert_eq!(done.hold_backups, Some(false));

        // A restore the executor refused names the field, not the flag.
        let refused =
            contract::preview::refusal(&report.key, &report.findings, Override::flag).unwrap();
        let failed = next(
            &running,
            Some(&cluster()),
            &JobState::Failed(format!("invalid configuration: {refused}")),
            &[],
            &images(),
            at(3),
        );
        assert_eq!(failed.status.phase, RestorePhase::Failed);
        let message = failed.status.message.unwrap();
        assert!(
            message.contains("give spec.allowOtherCluster if that is meant")
                && !message.contains("--allow-other-cluster"),
            "{message}"
        );
    }

    #[test]
    fn a_restore_starts_once_and_records_how_it_ended() {
        let start = next(
            &restore(None),
            Some(&cluster()),
            &JobState::Missing,
            &[],
            &images(),
            at(1),
        );
        assert!(start.start);
        assert_eq!(start.hold_backups, Some(true));
        assert_eq!(start.status.phase, RestorePhase::Running);
        assert_eq!(start.status.job_name.as_deref(), Some("r1-restore"));
        assert!(start.status.start_time.is_some());

        let running = next(
            &restore(Some(start.status.clone())),
            Some(&cluster()),
            &JobState::Running,
            &[],
            &images(),
            at(2),
        );
        assert!(!running.start);
        assert_eq!(
            running.status, start.status,
            "nothing to write while it runs"
        );

        let digest = ContentDigest {
            size: 4096,
            sha256: "ab".into(),
        };
        let report = ReadBackReport {
            key: "prod/bao/x.snap".into(),
            snapshot: digest.clone(),
            object: digest,
            raft: RaftInfo {
                index: 7,
                term: 2,
                state_size: 100,
            },
            transforms: Vec::new(),
            node: Some("https://bao-0:8200/".into()),
            forced: Some(false),
            output: None,
            started_at: at(2),
            duration_seconds: 1.0,
        };
        let done = next(
            &restore(Some(start.status.clone())),
            Some(&cluster()),
            &JobState::Succeeded(Box::new(report)),
            &[],
            &images(),
            at(3),
        );
        assert_eq!(done.status.phase, RestorePhase::Succeeded);
        assert_eq!(done.status.restored_key.as_deref(), Some("prod/bao/x.snap"));
        assert_eq!(done.status.restored_size, Some(4096));
        assert_eq!(done.hold_backups, Some(false), "backups resume");
        assert_eq!(done.status.conditions[0].status, "True");
        assert_eq!(done.event.as_ref().unwrap().1, "RestoreSucceeded");

        // Final: nothing ever changes again, whatever the Job does.
        let again = next(
            &restore(Some(done.status.clone())),
            Some(&cluster()),
            &JobState::Missing,
            &[],
            &images(),
            at(4),
        );
        assert!(!again.start && again.event.is_none() && again.hold_backups.is_none());
        assert_eq!(again.status, done.status);
    }

    #[test]
    fn a_lost_job_or_a_bad_spec_fails_the_restore_for_good() {
        let started = next(
            &restore(None),
            Some(&cluster()),
            &JobState::Missing,
            &[],
            &images(),
            at(1),
        );
        let lost = next(
            &restore(Some(started.status)),
            Some(&cluster()),
            &JobState::Missing,
            &[],
            &images(),
            at(2),
        );
        assert!(!lost.start, "never a second Job");
        assert_eq!(lost.status.phase, RestorePhase::Failed);
        assert!(lost.status.message.unwrap().contains("disappeared"));

        let mut bad = restore(None);
        bad.spec.token_secret_ref = Some(LocalRef { name: "t".into() });
        let refused = next(
            &bad,
            Some(&cluster()),
            &JobState::Missing,
            &[],
            &images(),
            at(1),
        );
        assert_eq!(refused.status.phase, RestorePhase::Failed);
        assert!(
            refused
                .status
                .message
                .unwrap()
                .contains("exactly one of jwtAuthRole")
        );
        let mut bad = restore(None);
        bad.spec.source_cluster = Some("Not_A_Name".into());
        let refused = next(
            &bad,
            Some(&cluster()),
            &JobState::Missing,
            &[],
            &images(),
            at(1),
        );
        assert_eq!(refused.status.phase, RestorePhase::Failed);
        let message = refused.status.message.unwrap();
        assert!(message.contains("spec.sourceCluster"), "{message}");

        // A Hardened cluster's restores are held to its profile.
        let mut hardened = cluster();
        hardened.spec.profile = Some(crate::api::Profile::Hardened);
        let mut plain = restore(None);
        plain.spec.source = Some(crate::api::BackupTarget {
            endpoint: Some("http://s3.example.com".into()),
            bucket: "backups".into(),
            ..Default::default()
        });
        let refused = next(
            &plain,
            Some(&hardened),
            &JobState::Missing,
            &[],
            &images(),
            at(1),
        );
        assert_eq!(refused.status.phase, RestorePhase::Failed);
        assert!(!refused.start);
        let message = refused.status.message.unwrap();
        assert!(
            message.starts_with("spec.source.endpoint `http://s3.example.com` is plain HTTP"),
            "{message}"
        );

        let failed = next(
            &restore(None),
            Some(&cluster()),
            &JobState::Failed("invalid snapshot: the decoded snapshot has".into()),
            &[],
            &images(),
            at(2),
        );
        assert_eq!(failed.status.phase, RestorePhase::Failed);
        assert_eq!(failed.status.conditions[0].reason, "RestoreFailed");
        assert_eq!(failed.event.unwrap().0, EventType::Warning);
    }

    mod scripted {
        //! `reconcile` against the scripted API server.

        use serde_json::{Value, json};

        use super::*;
        use crate::fake_api::*;

        const CLUSTER: &str = "/apis/openbao.org/v1alpha1/namespaces/prod/openbaoclusters/bao";
        const JOB: &str = "/apis/batch/v1/namespaces/prod/jobs/r1-restore";
        const STATUS: &str = "/apis/openbao.org/v1alpha1/namespaces/prod/openbaorestores/r1/status";

        fn cluster() -> Value {
            json!({
                "apiVersion": "openbao.org/v1alpha1", "kind": "OpenBaoCluster",
                "metadata": {"name": "bao", "namespace": "prod", "uid": "cluster-uid"},
                "spec": {"version": "2.4.1", "backup": {
                    "schedule": "0 3 * * *",
                    "executorImage": "openbao/backup-executor:v0.1.0",
                    "jwtAuthRole": "backup",
                    "target": {"bucket": "openbao-backups"},
                }},
            })
        }

        fn r1() -> OpenBaoRestore {
            serde_json::from_value(json!({
                "apiVersion": "openbao.org/v1alpha1", "kind": "OpenBaoRestore",
                "metadata": {"name": "r1", "namespace": "prod", "uid": "uid-r1"},
                "spec": {"cluster": "bao", "key": "latest", "jwtAuthRole": "restore"},
            }))
            .unwrap()
        }

        fn backup_job(name: &str) -> Value {
            json!({"apiVersion": "batch/v1", "kind": "Job",
                   "metadata": {"name": name, "namespace": "prod", "uid": "job-uid"},
                   "status": {}})
        }

        /// The restore as the API server keeps it after a status patch.
        fn patched(patch: Value) -> (u16, Value) {
            let mut restore = serde_json::to_value(r1()).unwrap();
            restore["status"] = patch["status"].clone();
            (200, restore)
        }

        async fn run(steps: Vec<Step>) -> Action {
            let (ctx, server) = serve(steps);
            let action =
                tokio::time::timeout(Duration::from_secs(10), reconcile(Arc::new(r1()), ctx))
                    .await
                    .expect("the reconcile finishes")
                    .unwrap();
            finish(server).await;
            action
        }

        /// A cluster with nothing running: the restore holds the
        /// scheduled backups, starts its Job once and says so.
        #[tokio::test]
        async fn a_restore_holds_backups_and_starts_its_job() {
            run(vec![
                step("GET", CLUSTER, |_| (200, cluster())),
                step("GET", JOB, |_| not_found()),
                step("GET", JOBS, |_| list(vec![])),
                step("GET", RESTORES, |_| {
                    list(vec![serde_json::to_value(r1()).unwrap()])
                }),
                step("PATCH", CRONJOB, |body| {
                    assert_eq!(body, json!({"spec": {"suspend": true}}));
                    (200, body)
                }),
                step("POST", JOBS, |body| {
                    assert_eq!(body["metadata"]["name"], "r1-restore");
                    assert_eq!(body["metadata"]["ownerReferences"][0]["uid"], "uid-r1");
                    let pod = &body["spec"]["template"]["spec"];
                    assert_eq!(pod["serviceAccountName"], "bao-restore-serviceaccount");
                    assert_eq!(pod["containers"][0]["args"][0], "restore");
                    (201, body)
                }),
                step("PATCH", STATUS, |body| {
                    assert_eq!(body["status"]["phase"], "Running");
                    assert_eq!(body["status"]["jobName"], "r1-restore");
                    patched(body)
                }),
                event("RestoreStarted"),
            ])
            .await;
        }

        /// A failed Job: the restore ends Failed, releases the backups,
        /// and Prometheus counts the failure.
        #[tokio::test]
        async fn a_failed_restore_is_counted_in_the_metrics() {
            let failed = json!({"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": "r1-restore", "namespace": "prod", "uid": "job-uid"},
                "status": {"conditions": [{"type": "Failed", "status": "True",
                    "reason": "BackoffLimitExceeded"}]}});
            let (ctx, server) = serve(vec![
                step("GET", CLUSTER, |_| (200, cluster())),
                step("GET", JOB, move |_| (200, failed)),
                step("GET", PODS, |_| list(vec![])),
                accept("PATCH", CRONJOB),
                step("PATCH", STATUS, |body| {
                    assert_eq!(body["status"]["phase"], "Failed");
                    patched(body)
                }),
                event("RestoreFailed"),
            ]);
            let metrics = ctx.metrics.clone();
            tokio::time::timeout(Duration::from_secs(10), reconcile(Arc::new(r1()), ctx))
                .await
                .expect("the reconcile finishes")
                .unwrap();
            finish(server).await;
            let text = metrics.encode();
            assert!(
                text.contains(
                    r#"openbao_backup_restores_total{namespace="prod",cluster="bao",result="failure"} 1"#
                ),
                "{text}"
            );
        }

        /// An external cluster with an upgrade status left from when the
        /// operator ran it: no upgrade is coming, the restore starts.
        #[tokio::test]
        async fn a_stale_upgrade_does_not_hold_an_external_clusters_restore() {
            let mut external = cluster();
            external["spec"] = json!({
                "external": {"addresses": ["https://bao-0.bao-internal:8200"]},
                "backup": external["spec"]["backup"].clone(),
            });
            external["status"] = json!({"upgrade": {
                "phase": "RollingOut", "fromVersion": "2.4.0", "toVersion": "2.4.1",
            }});
            run(vec![
                step("GET", CLUSTER, move |_| (200, external)),
                step("GET", JOB, |_| not_found()),
                step("GET", JOBS, |_| list(vec![])),
                step("GET", RESTORES, |_| list(vec![])),
                accept("PATCH", CRONJOB),
                step("POST", JOBS, |body| {
                    let env = body["spec"]["template"]["spec"]["containers"][0]["env"]
                        .as_array()
                        .unwrap()
                        .clone();
                    let addr = env.iter().find(|e| e["name"] == "OPENBAO_ADDR").unwrap();
                    assert_eq!(addr["value"], "https://bao-0.bao-internal:8200");
                    (201, body)
                }),
                step("PATCH", STATUS, |body| {
                    assert_eq!(body["status"]["phase"], "Running");
                    patched(body)
                }),
                event("RestoreStarted"),
            ])
            .await;
        }

        /// A running backup Job: the restore holds the scheduled backups
        /// and waits, Pending, without a Job.
        #[tokio::test]
        async fn a_restore_waits_for_a_running_backup() {
            let action = run(vec![
                step("GET", CLUSTER, |_| (200, cluster())),
                step("GET", JOB, |_| not_found()),
                step("GET", JOBS, |_| list(vec![backup_job("bao-backup-29001")])),
                step("GET", RESTORES, |_| list(vec![])),
                accept("PATCH", CRONJOB),
                step("PATCH", STATUS, |body| {
                    assert_eq!(body["status"]["phase"], "Pending");
                    let message = body["status"]["message"].as_str().unwrap();
                    assert!(message.contains("backup Job bao-backup-29001"), "{message}");
                    patched(body)
                }),
            ])
            .await;
            assert_eq!(
                format!("{action:?}"),
                format!("{:?}", Action::requeue(Duration::from_secs(15)))
            );
        }
    }
}
