use chrono::TimeZone;
use serde_json::json;

use super::*;
use crate::api::{OpenBaoCluster, OpenBaoClusterSpec};
use crate::desired::drill::{drill_job, throwaway_addr, throwaway_config, throwaway_pod};
use crate::names::selector_labels;
use crate::release::Release;
use crate::settings::OperatorSettings;
use contract::drill::DrillReport;

fn at(hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, hour, minute, 0).unwrap()
}

fn spec(test: serde_json::Value) -> OpenBaoClusterSpec {
    serde_json::from_value(json!({
        "version": "2.4.4",
        "seal": {"static": {"secretKeyRef": {"name": "bao-seal", "key": "key"}}},
        "selfInit": {"enabled": true, "requests": [{"name": "kv", "operation": "update", "path": "sys/mounts/secret", "data": {"type": "kv"}}]},
        "backup": {"schedule": "0 3 * * *", "tokenSecretRef": {"name": "backup-token"},
                   "target": {"bucket": "b"}, "restoreTest": test},
    }))
    .unwrap()
}

fn backed_up() -> BackupStatus {
    BackupStatus {
        last_backup_name: Some("k".into()),
        ..Default::default()
    }
}

/// A plan for `spec` with nothing running and nothing present.
fn idle<'a>(
    spec: &'a OpenBaoClusterSpec,
    previous: Option<&'a RestoreTestStatus>,
    backup: Option<&'a BackupStatus>,
    now: DateTime<Utc>,
) -> Input<'a> {
    Input {
        cluster: "bao",
        valid: crate::validate::restore_test(spec),
        spec: spec.backup.as_ref().and_then(|b| b.restore_test.as_ref()),
        previous,
        backup,
        new_backups: 0,
        present: Vec::new(),
        throwaway: None,
        job: None,
        busy: Vec::new(),
        anchor: at(0, 0),
        now,
    }
}

#[test]
fn every_n_backups_counts_successes_and_starts_at_n() {
    let spec = spec(json!({"everyBackups": 2}));
    let backup = backed_up();
    let mut input = idle(&spec, None, Some(&backup), at(4, 0));
    input.new_backups = 1;
    let plan = super::plan(input);
    assert_eq!(plan.start, None);
    let status = plan.status.unwrap();
    assert_eq!(status.backups_since, 1);

    let mut input = idle(&spec, Some(&status), Some(&backup), at(5, 0));
    input.new_backups = 1;
    let plan = super::plan(input);
    let name = format!("bao-drill-{}", at(5, 0).timestamp());
    assert_eq!(plan.start.as_deref(), Some(name.as_str()));
    let status = plan.status.unwrap();
    assert_eq!(status.running.as_deref(), Some(name.as_str()));
    assert_eq!(status.backups_since, 0, "counting starts again");
    assert_eq!(plan.event.unwrap().1, "RestoreTestStarted");
    assert_eq!(plan.condition.unwrap().reason, "Running");
}

#[test]
fn a_schedule_is_due_after_the_last_drill_or_the_clusters_creation() {
    let spec = spec(json!({"schedule": "0 5 * * *"}));
    let backup = backed_up();
    // Created at midnight: due at 05:00, not before; woken up then.
    let plan1 = super::plan(idle(&spec, None, Some(&backup), at(4, 0)));
    assert_eq!(plan1.start, None);
    assert_eq!(plan1.requeue, Some(Duration::from_secs(3601)));
    assert_eq!(plan1.condition.unwrap().reason, "NotTestedYet");
    assert!(
        super::plan(idle(&spec, None, Some(&backup), at(5, 0)))
            .start
            .is_some()
    );
    // The last drill ended at 05:02: the next is tomorrow.
    let last = RestoreTestStatus {
        last_result: Some("Succeeded".into()),
        last_time: Some(time(at(5, 2))),
        ..Default::default()
    };
    assert_eq!(
        super::plan(idle(&spec, Some(&last), Some(&backup), at(23, 0))).start,
        None
    );
}

#[test]
fn no_drill_without_a_backup_while_busy_or_suspended() {
    let due = spec(json!({"everyBackups": 1}));
    let counted = RestoreTestStatus {
        backups_since: 5,
        ..Default::default()
    };
    let none = super::plan(idle(&due, Some(&counted), None, at(5, 0)));
    assert_eq!(none.start, None);
    assert_eq!(none.condition.unwrap().reason, "NoBackupYet");

    let backup = backed_up();
    let mut busy = idle(&due, Some(&counted), Some(&backup), at(5, 0));
    busy.busy = vec!["backup Job bao-backup-1".into()];
    let waiting = plan(busy);
    assert_eq!(waiting.start, None);
    let condition = waiting.condition.unwrap();
    assert!(
        condition
            .message
            .contains("waiting for backup Job bao-backup-1"),
        "{condition:?}"
    );
    assert_eq!(waiting.requeue, Some(Duration::from_secs(15)));

    let suspended = spec(json!({"everyBackups": 1, "suspend": true}));
    assert_eq!(
        super::plan(idle(&suspended, Some(&counted), Some(&backup), at(5, 0))).start,
        None
    );
}

#[test]
fn an_invalid_restore_test_is_a_condition_naming_the_field() {
    let mut shamir = spec(json!({"everyBackups": 1}));
    shamir.seal = None;
    shamir.self_init = None;
    let backup = backed_up();
    let plan = super::plan(idle(&shamir, None, Some(&backup), at(5, 0)));
    assert_eq!(plan.start, None);
    let condition = plan.condition.unwrap();
    assert_eq!(
        (condition.type_, condition.status, condition.reason),
        (RESTORE_TESTED, "False", "InvalidSpec")
    );
    assert!(
        condition
            .message
            .starts_with("spec.backup.restoreTest: the cluster unseals with Shamir keys"),
        "{}",
        condition.message
    );
}

fn running(name: &str) -> RestoreTestStatus {
    RestoreTestStatus {
        running: Some(name.into()),
        ..Default::default()
    }
}

fn pod(phase: &str, ip: Option<&str>, created: DateTime<Utc>) -> Throwaway {
    Throwaway {
        created,
        ip: ip.map(String::from),
        phase: phase.into(),
        problem: None,
    }
}

#[test]
fn a_running_drill_waits_for_its_pod_then_runs_its_job() {
    let spec = spec(json!({"everyBackups": 1}));
    let status = running("bao-drill-1");
    let mut input = idle(&spec, Some(&status), None, at(5, 1));
    input.present = vec!["bao-drill-1".into()];
    input.throwaway = Some(pod("Pending", None, at(5, 0)));
    let waiting = super::plan(input.clone());
    assert_eq!(
        (waiting.run_job.clone(), waiting.delete.clone()),
        (None, vec![])
    );
    assert_eq!(waiting.requeue, Some(Duration::from_secs(5)));

    input.throwaway = Some(pod("Running", Some("10.0.0.7"), at(5, 0)));
    let go = super::plan(input.clone());
    assert_eq!(go.run_job, Some(("bao-drill-1".into(), "10.0.0.7".into())));
    assert!(go.delete.is_empty());

    input.job = Some(JobSeen::Running);
    let job = super::plan(input);
    assert_eq!(job.run_job, None, "one Job per drill");
    assert!(job.delete.is_empty() && job.finished.is_none());
}

#[test]
fn every_end_of_a_drill_deletes_its_objects_and_names_the_step() {
    let spec = spec(json!({"everyBackups": 1}));
    let status = running("bao-drill-1");
    let base = {
        let mut input = idle(&spec, Some(&status), None, at(5, 30));
        input.present = vec!["bao-drill-1".into()];
        input
    };
    let ended = |input: Input<'_>| {
        let plan = super::plan(input);
        assert_eq!(plan.delete, vec!["bao-drill-1".to_string()]);
        let status = plan.status.clone().unwrap();
        assert_eq!(status.running, None);
        (plan, status)
    };

    // Passed.
    let mut input = base.clone();
    input.throwaway = Some(pod("Running", Some("10.0.0.7"), at(5, 0)));
    input.job = Some(JobSeen::Finished {
        result: Some(DrillResult::Succeeded(DrillReport {
            key: "clusters/bao/k.snap".into(),
            snapshot: Default::default(),
            raft: contract::snapshot::RaftInfo {
                index: 40,
                term: 2,
                state_size: 1,
            },
            applied_index: 42,
            canary: Some("secret/data/canary".into()),
            verify_seconds: 1.0,
            recovery_seconds: 12.34,
            started_at: at(5, 0),
            completed_at: at(5, 20),
        })),
        failure: None,
        at: at(5, 20),
    });
    let (passed, status) = ended(input);
    assert_eq!(status.last_result.as_deref(), Some("Succeeded"));
    assert_eq!(status.backup_key.as_deref(), Some("clusters/bao/k.snap"));
    assert_eq!(status.raft_index, Some(42));
    assert_eq!(status.recovery_duration.as_deref(), Some("12.3s"));
    assert_eq!(status.last_success_time, Some(time(at(5, 20))));
    assert_eq!(passed.finished, Some((true, Some(12.34))));
    let condition = passed.condition.unwrap();
    assert_eq!(
        (condition.status, condition.reason),
        ("True", "RestoreTestSucceeded")
    );
    assert!(
        condition
            .message
            .contains("canary secret/data/canary read back")
    );

    // Failed at the executor's step.
    let mut input = base.clone();
    input.job = Some(JobSeen::Finished {
        result: Some(DrillResult::Failed {
            step: DrillStep::Verify,
            cause: "invalid-snapshot".into(),
            reason: "the object's SHA-256 differs".into(),
            key: None,
            completed_at: at(5, 20),
        }),
        failure: None,
        at: at(5, 20),
    });
    let (plan2, status) = ended(input);
    assert_eq!(status.failed_step.as_deref(), Some("verify"));
    assert_eq!(
        status.message.as_deref(),
        Some("the verify step failed: the object's SHA-256 differs")
    );
    assert_eq!(plan2.event.unwrap().1, "RestoreTestFailed");
    assert_eq!(plan2.condition.unwrap().status, "False");

    // The Job died without a result; the pod stopped; the pod never ran;
    // the pod vanished: each fails at the start step.
    let mut died = base.clone();
    died.job = Some(JobSeen::Finished {
        result: None,
        failure: Some("DeadlineExceeded".into()),
        at: at(5, 20),
    });
    let mut stopped = base.clone();
    stopped.throwaway = Some(pod("Failed", None, at(5, 0)));
    let mut stuck = base.clone();
    stuck.throwaway = Some(pod("Pending", None, at(5, 0)));
    stuck.now = at(5, 11);
    let vanished = base.clone();
    for (input, says) in [
        (died, "ended without a result: DeadlineExceeded"),
        (stopped, "stopped (Failed)"),
        (stuck, "did not run within"),
        (vanished, "is gone before the drill ran"),
    ] {
        let (_, status) = ended(input);
        assert_eq!(status.failed_step.as_deref(), Some("start"));
        let message = status.message.unwrap();
        assert!(message.contains(says), "{message}");
    }
}

#[test]
fn objects_of_any_other_drill_go_on_every_path() {
    let backup = backed_up();
    let valid = spec(json!({"everyBackups": 9}));
    let mut invalid = valid.clone();
    invalid.seal = None;
    invalid.self_init = None;
    let mut without = valid.clone();
    without.backup.as_mut().unwrap().restore_test = None;
    let status = running("bao-drill-2");
    for (spec, previous) in [
        (&valid, None),
        (&invalid, None),
        (&without, None),
        (&valid, Some(&status)),
    ] {
        let mut input = idle(spec, previous, Some(&backup), at(5, 0));
        input.present = vec!["bao-drill-1".into(), "bao-drill-2".into()];
        input.throwaway = previous.map(|_| pod("Pending", None, at(5, 0)));
        let plan = super::plan(input);
        let expected: Vec<String> = match previous {
            Some(_) => vec!["bao-drill-1".into()],
            None => vec!["bao-drill-1".into(), "bao-drill-2".into()],
        };
        assert_eq!(plan.delete, expected);
    }
    // Without restoreTest and never drilled: no condition, no status.
    let plan = super::plan(idle(&without, None, Some(&backup), at(5, 0)));
    assert_eq!((plan.condition, plan.status), (None, None));
}

fn cluster(spec: OpenBaoClusterSpec) -> OpenBaoCluster {
    let mut cluster = OpenBaoCluster::new("bao", spec);
    cluster.metadata.namespace = Some("prod".into());
    cluster.metadata.uid = Some("uid-1".into());
    cluster
}

#[test]
fn the_throwaway_is_one_fresh_node_with_the_clusters_seal_that_no_service_selects() {
    let cluster = cluster(spec(json!({"everyBackups": 1})));
    let config = throwaway_config(&cluster);
    assert!(config.get("service_registration").is_none());
    assert!(
        config.get("initialize").is_none(),
        "the drill initialises it"
    );
    assert!(config["storage"]["raft"].get("retry_join").is_none());
    assert_eq!(config["storage"]["raft"]["path"], "/openbao/data");
    assert_eq!(
        config["seal"]["static"]["current_key"],
        "file:///openbao/seal/key"
    );
    assert_eq!(
        config["listener"][0]["tcp"]["tls_cert_file"],
        "/openbao/tls/tls.crt"
    );

    let release = Release::wanted(&cluster.spec).unwrap();
    let pod = throwaway_pod(&cluster, &release, "bao-drill-1");
    let labels = pod.metadata.labels.clone().unwrap();
    assert_eq!(labels[DRILL_LABEL], "bao-drill-1");
    for (key, value) in selector_labels("bao") {
        assert!(
            labels.get(&key) != Some(&value) || key != crate::names::COMPONENT_LABEL,
            "{key}={value}: a Service of the cluster would select the throwaway"
        );
    }
    assert_eq!(labels[crate::names::COMPONENT_LABEL], DRILL_COMPONENT);
    let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("OpenBaoCluster", "uid-1")
    );
    let spec = pod.spec.unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    assert_eq!(spec.automount_service_account_token, Some(false));
    let volumes = spec.volumes.unwrap();
    let volume = |name: &str| volumes.iter().find(|v| v.name == name).unwrap();
    assert!(volume("data").empty_dir.is_some());
    assert_eq!(
        volume("config").config_map.as_ref().unwrap().name,
        "bao-drill-1"
    );
    assert_eq!(
        volume("seal")
            .secret
            .as_ref()
            .unwrap()
            .secret_name
            .as_deref(),
        Some("bao-seal")
    );
    assert_eq!(
        volume("tls")
            .secret
            .as_ref()
            .unwrap()
            .secret_name
            .as_deref(),
        Some("bao-tls")
    );
    assert_eq!(
        spec.containers[0].image.as_deref(),
        Some(release.image.as_str())
    );
}

#[test]
fn the_drill_job_reaches_the_throwaway_by_ip_under_the_service_name() {
    let cluster = cluster(spec(json!({"everyBackups": 1, "canary": {
        "path": "secret/data/canary", "key": "value", "tokenSecretRef": {"name": "canary-token"}}})));
    let job = drill_job(
        &cluster,
        &OperatorSettings::default(),
        "bao-drill-1",
        "10.0.0.7",
    );
    assert_eq!(job.metadata.name.as_deref(), Some("bao-drill-1"));
    let pod = job.spec.unwrap().template.spec.unwrap();
    let container = &pod.containers[0];
    assert_eq!(container.name, "drill");
    assert_eq!(container.args.as_ref().unwrap()[0], "drill");
    let env: BTreeMap<String, String> = container
        .env
        .iter()
        .flatten()
        .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
        .collect();
    assert_eq!(env["OPENBAO_ADDR"], throwaway_addr(&cluster));
    assert_eq!(env["OPENBAO_ADDR"], "https://bao.prod.svc:8200");
    assert_eq!(env["DRILL_THROWAWAY_IP"], "10.0.0.7");
    assert_eq!(env["DRILL_CANARY_PATH"], "secret/data/canary");
    assert_eq!(env["DRILL_CANARY_KEY"], "value");
    assert_eq!(env["BACKUP_KEY"], "latest");
    assert!(env.contains_key("OPENBAO_TOKEN_FILE"), "the canary's token");
    assert!(
        env.contains_key("OPENBAO_CACERT"),
        "the cluster's CA checks the throwaway"
    );
    let volumes = pod.volumes.unwrap();
    let token = volumes.iter().find(|v| v.name == "openbao-token").unwrap();
    assert_eq!(
        token.secret.as_ref().unwrap().secret_name.as_deref(),
        Some("canary-token")
    );
    assert!(
        volumes
            .iter()
            .any(|v| v.name == "spool" && v.empty_dir.is_some())
    );
}

#[test]
fn a_failed_drill_does_not_make_the_cluster_unready() {
    let failed = condition(&RestoreTestStatus {
        last_result: Some("Failed".into()),
        message: Some("the verify step failed: x".into()),
        ..Default::default()
    });
    assert_eq!(
        (failed.status, failed.reason),
        ("False", "RestoreTestFailed")
    );
    let ok = Cond::new(
        crate::status::WORKLOAD_CONFIGURED,
        "True",
        "Applied",
        "y".into(),
    );
    assert_eq!(crate::status::ready(&[ok, failed]).status, "True");
}
