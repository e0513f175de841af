//! The reconcile against a scripted API server (tower-test): every request
//! the operator makes is expected in order, checked, and answered; any
//! request beyond the script fails the test.

use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::fake_api::*;
use crate::release::Release;
use crate::{context::contained, desired::statefulset, upgrade};

/// The three server-side applies of a valid JWT cluster, accepted.
fn applies() -> Vec<Step> {
    vec![
        accept("PATCH", SA),
        accept("PATCH", RESTORE_SA),
        accept("PATCH", POLICY),
        accept("PATCH", CRONJOB),
    ]
}

/// A new cluster's workload: no StatefulSet yet, then its objects
/// applied, each accepted.
fn new_workload() -> Vec<Step> {
    let mut steps = vec![step("GET", STS, |_| not_found())];
    steps.extend(workload_applies(|body| (200, body)));
    steps
}

/// The workload's server-side applies in order, the StatefulSet last and
/// answered by `statefulset`.
fn workload_applies(statefulset: impl FnOnce(Value) -> (u16, Value) + Send + 'static) -> Vec<Step> {
    vec![
        accept("PATCH", "/api/v1/namespaces/prod/serviceaccounts/bao"),
        accept(
            "PATCH",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/prod/roles/bao-service-registration",
        ),
        accept(
            "PATCH",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/prod/rolebindings/bao-service-registration",
        ),
        accept("PATCH", "/api/v1/namespaces/prod/configmaps/bao-config"),
        accept("PATCH", "/api/v1/namespaces/prod/services/bao-internal"),
        accept("PATCH", "/api/v1/namespaces/prod/services/bao"),
        accept(
            "PATCH",
            "/apis/policy/v1/namespaces/prod/poddisruptionbudgets/bao",
        ),
        // Development: no NetworkPolicy of the OpenBao pods to delete.
        step("GET", OPENBAO_POLICY, |_| not_found()),
        step("PATCH", STS, statefulset),
    ]
}

const SA: &str = "/api/v1/namespaces/prod/serviceaccounts/bao-backup-serviceaccount";
const RESTORE_SA: &str = "/api/v1/namespaces/prod/serviceaccounts/bao-restore-serviceaccount";
const POLICY: &str = "/apis/networking.k8s.io/v1/namespaces/prod/networkpolicies/bao-backup";
const OPENBAO_POLICY: &str = "/apis/networking.k8s.io/v1/namespaces/prod/networkpolicies/bao";
const STS: &str = "/apis/apps/v1/namespaces/prod/statefulsets/bao";
const STATUS: &str = "/apis/openbao.org/v1alpha1/namespaces/prod/openbaoclusters/bao/status";

/// Runs one reconcile against the script; returns its Action (or error)
/// once every step was taken and no other request came.
async fn run(cluster: Value, steps: Vec<Step>) -> Result<Action, Error> {
    let (ctx, server) = serve(steps);
    let cluster: OpenBaoCluster = serde_json::from_value(cluster).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), reconcile(Arc::new(cluster), ctx))
        .await
        .expect("the reconcile finishes");
    finish(server).await;
    result
}

fn cluster(backup: Value, status: Value) -> Value {
    json!({
        "apiVersion": "openbao.org/v1alpha1",
        "kind": "OpenBaoCluster",
        "metadata": {"name": "bao", "namespace": "prod", "uid": "cluster-uid",
                     "generation": 2, "resourceVersion": "41"},
        "spec": {"version": "2.4.1", "backup": backup},
        "status": status,
    })
}

fn jwt_backup() -> Value {
    json!({
        "schedule": "0 3 * * *",
        "executorImage": "openbao/backup-executor:v0.1.0",
        "jwtAuthRole": "backup",
        "target": {"endpoint": "https://s3.example.test", "bucket": "openbao-backups",
                   "credentialsSecretRef": {"name": "s3-credentials"}},
    })
}

fn job(name: &str, uid: &str, condition: Option<&str>, annotations: Value) -> Value {
    let conditions = match condition {
        Some(kind) => {
            json!([{"type": kind, "status": "True", "lastTransitionTime": "2026-11-24T03:01:00Z",
                              "reason": if kind == "Failed" { "BackoffLimitExceeded" } else { "" }}])
        }
        None => json!([]),
    };
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": "prod", "uid": uid, "annotations": annotations,
                     "labels": {"app.kubernetes.io/instance": "bao", "app.kubernetes.io/component": "backup"}},
        "status": {"conditions": conditions},
    })
}

fn pod_with_result(result: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "prod"},
        "status": {"containerStatuses": [{
            "name": "backup", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "finishedAt": "2026-11-24T03:00:59Z",
                                     "message": result.to_string()}},
        }]},
    })
}

fn succeeded_result() -> Value {
    json!({
        "status": "succeeded", "key": "clusters/prod/bao/20261124T030000.000Z-scheduled-a1b2c3.snap",
        "manifestKey": "m", "bucket": "openbao-backups", "size": 123456789, "sha256": "ab".repeat(32),
        "kind": "scheduled", "sourceNode": "https://bao-0:8200/",
        "startedAt": "2026-11-24T03:00:00Z", "completedAt": "2026-11-24T03:00:58Z",
        "durationSeconds": 58.04, "throughputBytesPerSecond": 2000000, "parts": 12,
    })
}

fn failed_result() -> Value {
    json!({
        "status": "failed", "cause": "auth", "kind": "scheduled",
        "reason": "OpenBao authentication failed: role \"backup\" could not be found",
        "startedAt": "2026-11-24T03:00:00Z", "completedAt": "2026-11-24T03:00:01Z",
    })
}

fn condition<'a>(status: &'a Value, kind: &str) -> &'a Value {
    status["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} condition in {status}"))
}

#[tokio::test]
async fn a_new_cluster_gets_its_objects_and_a_status() {
    let action = run(
        cluster(jwt_backup(), Value::Null),
        steps(vec![
            vec![
                step("GET", JOBS, |_| list(vec![])),
                step("GET", STS, |_| not_found()),
            ],
            workload_applies(|body| {
                assert_eq!(body["metadata"]["ownerReferences"][0]["uid"], "cluster-uid");
                let container = &body["spec"]["template"]["spec"]["containers"][0];
                assert_eq!(container["image"], "openbao/openbao:2.4.1");
                (200, body)
            }),
            vec![
                step("PATCH", SA, |body| {
                    assert_eq!(body["metadata"]["ownerReferences"][0]["uid"], "cluster-uid");
                    (200, body)
                }),
                accept("PATCH", RESTORE_SA),
                accept("PATCH", POLICY),
                step("PATCH", CRONJOB, |body| {
                    let spec = &body["spec"];
                    assert_eq!(spec["schedule"], "0 3 * * *");
                    assert_eq!(spec["concurrencyPolicy"], "Forbid");
                    let pod = &spec["jobTemplate"]["spec"]["template"]["spec"];
                    assert_eq!(pod["serviceAccountName"], "bao-backup-serviceaccount");
                    assert_eq!(
                        pod["containers"][0]["image"],
                        "openbao/backup-executor:v0.1.0"
                    );
                    assert_eq!(body["metadata"]["ownerReferences"][0]["controller"], true);
                    (200, body)
                }),
                step("PUT", STATUS, |body| {
                    assert_eq!(
                        body["metadata"]["resourceVersion"], "41",
                        "guarded by what was read"
                    );
                    assert_eq!(condition(&body, "WorkloadConfigured")["status"], "True");
                    assert_eq!(condition(&body, "Upgraded")["reason"], "UpToDate");
                    assert_eq!(body["status"]["version"], "2.4.1");
                    assert_eq!(condition(&body, "BackupConfigured")["status"], "True");
                    assert_eq!(condition(&body, "BackupHealthy")["reason"], "NoBackupYet");
                    assert_eq!(condition(&body, "BackupHealthy")["observedGeneration"], 2);
                    let next = body["status"]["backup"]["nextScheduledBackup"]
                        .as_str()
                        .unwrap();
                    assert!(next.ends_with("T03:00:00Z"), "{next}");
                    (200, body)
                }),
            ],
        ]),
    )
    .await
    .unwrap();
    let wait = action_delay(&action).expect("wakes up for the next run");
    assert!(wait <= Duration::from_secs(24 * 3600 + 30), "{wait:?}");
}

fn action_delay(action: &Action) -> Option<Duration> {
    // Action's fields are private; its Debug shows the delay as `Some(12.5s)`.
    let text = format!("{action:?}");
    let seconds = text.split("Some(").nth(1)?.split("s)").next()?;
    Some(Duration::from_secs_f64(seconds.parse().ok()?))
}

/// The status the reconcile writes for the three finished Jobs below.
async fn status_after_three_jobs() -> Value {
    let written = Arc::new(std::sync::Mutex::new(Value::Null));
    let keep = written.clone();
    let jobs = vec![
        job("bao-backup-29000000", "job-1", Some("Complete"), json!({})),
        job(
            "manual-backup-1",
            "job-2",
            Some("Failed"),
            json!({"cronjob.kubernetes.io/instantiate": "manual"}),
        ),
        job("bao-backup-29001440", "job-3", None, json!({})),
    ];
    run(
        cluster(jwt_backup(), Value::Null),
        steps(vec![
            vec![
                step("GET", JOBS, move |_| list(jobs)),
                step("GET", PODS, |_| {
                    list(vec![pod_with_result(succeeded_result())])
                }),
                step("GET", PODS, |_| {
                    list(vec![pod_with_result(failed_result())])
                }),
            ],
            new_workload(),
            applies(),
            vec![
                step("PUT", STATUS, move |body| {
                    *keep.lock().unwrap() = body.clone();
                    (200, body)
                }),
                step("POST", EVENTS, |body| {
                    assert_eq!(body["reason"], "BackupSucceeded");
                    assert_eq!(body["type"], "Normal");
                    assert_eq!(body["related"]["name"], "bao-backup-29000000");
                    let note = body["note"].as_str().unwrap();
                    assert!(
                        note.contains("20261124T030000.000Z-scheduled-a1b2c3.snap")
                            && note.contains("117.7 MiB"),
                        "{note}"
                    );
                    (201, body)
                }),
                step("POST", EVENTS, |body| {
                    assert_eq!(body["reason"], "BackupFailed");
                    assert_eq!(body["type"], "Warning");
                    let note = body["note"].as_str().unwrap();
                    assert!(
                        note.starts_with("manual backup failed: OpenBao authentication failed"),
                        "{note}"
                    );
                    (201, body)
                }),
            ],
        ]),
    )
    .await
    .unwrap();
    written.lock().unwrap().take()
}

#[tokio::test]
async fn finished_jobs_are_folded_into_the_status_once() {
    let status = status_after_three_jobs().await;
    let backup = &status["status"]["backup"];
    assert_eq!(
        backup["lastBackupName"],
        "clusters/prod/bao/20261124T030000.000Z-scheduled-a1b2c3.snap"
    );
    assert_eq!(backup["lastBackupSize"], 123456789);
    assert_eq!(backup["lastBackupSha256"], "ab".repeat(32));
    assert_eq!(backup["lastBackupDuration"], "58.0s");
    assert_eq!(backup["lastBackupTime"], "2026-11-24T03:00:58Z");
    assert_eq!(backup["consecutiveFailures"], 1);
    assert!(
        backup["lastFailureReason"]
            .as_str()
            .unwrap()
            .contains("could not be found")
    );
    assert_eq!(
        backup["recordedJobs"],
        json!(["job-1", "job-2"]),
        "the running Job is not counted"
    );
    assert_eq!(condition(&status, "BackupHealthy")["status"], "False");

    // The same Jobs again (a resync, or a restarted operator reading the
    // status back): nothing new, so no pod reads, no status write, no event.
    let jobs = vec![
        job("bao-backup-29000000", "job-1", Some("Complete"), json!({})),
        job("manual-backup-1", "job-2", Some("Failed"), json!({})),
        job("bao-backup-29001440", "job-3", None, json!({})),
    ];
    let mut again = cluster(jwt_backup(), status["status"].clone());
    again["metadata"]["resourceVersion"] = json!("42");
    run(
        again,
        steps(vec![
            vec![step("GET", JOBS, move |_| list(jobs))],
            new_workload(),
            applies(),
        ]),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn jobs_that_are_gone_leave_the_recorded_list() {
    let status = status_after_three_jobs().await;
    let jobs = vec![job(
        "bao-backup-29001440",
        "job-3",
        Some("Complete"),
        json!({}),
    )];
    run(
        cluster(jwt_backup(), status["status"].clone()),
        steps(vec![
            vec![
                step("GET", JOBS, move |_| list(jobs)),
                step("GET", PODS, |_| list(vec![])),
            ],
            new_workload(),
            applies(),
            vec![
                step("PUT", STATUS, |body| {
                    let backup = &body["status"]["backup"];
                    assert_eq!(backup["recordedJobs"], json!(["job-3"]));
                    assert_eq!(backup["consecutiveFailures"], 2);
                    assert!(
                        backup["lastFailureReason"]
                            .as_str()
                            .unwrap()
                            .contains("without a result")
                    );
                    (200, body)
                }),
                step("POST", EVENTS, |body| {
                    assert_eq!(body["reason"], "BackupFailed");
                    (201, body)
                }),
            ],
        ]),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_stale_copy_never_counts_a_job_twice() {
    let jobs = vec![job(
        "bao-backup-29000000",
        "job-1",
        Some("Complete"),
        json!({}),
    )];
    let error = run(
        cluster(jwt_backup(), Value::Null),
        steps(vec![
            vec![
                step("GET", JOBS, move |_| list(jobs)),
                step("GET", PODS, |_| list(vec![pod_with_result(succeeded_result())])),
            ],
            new_workload(),
            applies(),
            vec![
            step("PUT", STATUS, |_| {
                (409, json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict",
                             "message": "the object has been modified", "code": 409}))
            }),
            // No event: the Job was not counted.
            ],
        ]),
    )
    .await
    .unwrap_err();
    assert!(error.api_code() == Some(409), "{error}");
    // The failure names its step, which labels the failure metric.
    assert!(
        error
            .to_string()
            .starts_with("write OpenBaoCluster status bao: Kubernetes API: "),
        "{error}"
    );
    assert_eq!(error.step(), "write OpenBaoCluster status");
}

#[tokio::test]
async fn an_invalid_spec_keeps_the_objects_and_says_why() {
    let mut backup = jwt_backup();
    backup["schedule"] = json!("0 3 * *");
    backup["tokenSecretRef"] = json!({"name": "backup-token"});
    run(
        cluster(backup, Value::Null),
        steps(vec![
            vec![step("GET", JOBS, |_| list(vec![]))],
            new_workload(),
            vec![
                step("PUT", STATUS, |body| {
                    let configured = condition(&body, "BackupConfigured");
                    assert_eq!(configured["status"], "False");
                    assert_eq!(configured["reason"], "InvalidSpec");
                    let message = configured["message"].as_str().unwrap();
                    assert!(
                        message.contains("spec.backup.schedule")
                            && message.contains("exactly one of jwtAuthRole"),
                        "{message}"
                    );
                    assert!(body["status"]["backup"]["nextScheduledBackup"].is_null());
                    (200, body)
                }),
                step("POST", EVENTS, |body| {
                    assert_eq!(body["reason"], "InvalidSpec");
                    assert!(
                        body["note"]
                            .as_str()
                            .unwrap()
                            .contains("spec.backup.schedule")
                    );
                    (201, body)
                }),
            ],
        ]),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn removing_spec_backup_removes_what_the_operator_made() {
    let owned = |api_version: &str, kind: &str, name: &str, uid: &str| {
        json!({"apiVersion": api_version, "kind": kind,
               "metadata": {"name": name, "namespace": "prod",
                            "ownerReferences": [{"apiVersion": "openbao.org/v1alpha1", "kind": "OpenBaoCluster",
                                                 "name": "bao", "uid": uid}]}})
    };
    let cronjob = owned("batch/v1", "CronJob", "bao-backup", "cluster-uid");
    let account = owned(
        "v1",
        "ServiceAccount",
        "bao-backup-serviceaccount",
        "someone-else",
    );
    let previous = json!({"backup": {"lastBackupName": "k", "nextScheduledBackup": "2026-11-25T03:00:00Z"},
                          "conditions": [{"type": "BackupConfigured", "status": "True", "reason": "Valid",
                                          "message": "", "lastTransitionTime": "2026-11-24T00:00:00Z"}]});
    run(
        cluster(Value::Null, previous),
        steps(vec![
            vec![step("GET", JOBS, |_| list(vec![]))],
            new_workload(),
            vec![
                step("GET", CRONJOB, move |_| (200, cronjob)),
                step("DELETE", CRONJOB, |_| {
                    (
                        200,
                        json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
                    )
                }),
                step("GET", POLICY, |_| not_found()),
                // Same name, not ours: left alone.
                step("GET", SA, move |_| (200, account)),
                step("GET", RESTORE_SA, |_| not_found()),
                step("PUT", STATUS, |body| {
                    assert_eq!(
                        body["status"]["backup"],
                        json!({"lastBackupName": "k", "consecutiveFailures": 0}),
                        "history stays"
                    );
                    let kinds: Vec<&str> = body["status"]["conditions"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|c| c["type"].as_str().unwrap())
                        .collect();
                    assert_eq!(
                        kinds,
                        ["WorkloadConfigured", "Upgraded", "SecurityRisk", "Ready"],
                        "no backup conditions"
                    );
                    (200, body)
                }),
            ],
        ]),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn token_auth_drops_the_service_account() {
    let mut backup = jwt_backup();
    backup.as_object_mut().unwrap().remove("jwtAuthRole");
    backup["tokenSecretRef"] = json!({"name": "backup-token"});
    let account = json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "bao-backup-serviceaccount", "namespace": "prod",
                     "ownerReferences": [{"apiVersion": "openbao.org/v1alpha1", "kind": "OpenBaoCluster",
                                          "name": "bao", "uid": "cluster-uid"}]}});
    run(
        cluster(backup, Value::Null),
        steps(vec![
            vec![step("GET", JOBS, |_| list(vec![]))],
            new_workload(),
            vec![
                step("GET", SA, move |_| (200, account)),
                step("DELETE", SA, |_| {
                    (
                        200,
                        json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
                    )
                }),
                step("GET", RESTORE_SA, |_| not_found()),
                accept("PATCH", POLICY),
                step("PATCH", CRONJOB, |body| {
                    let pod = &body["spec"]["jobTemplate"]["spec"]["template"]["spec"];
                    assert!(pod.get("serviceAccountName").is_none());
                    assert_eq!(pod["volumes"][2]["secret"]["secretName"], "backup-token");
                    (200, body)
                }),
                accept("PUT", STATUS),
            ],
        ]),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn an_api_server_without_cronjobs_gets_a_clear_condition() {
    let action = run(
        cluster(jwt_backup(), Value::Null),
        steps(vec![
            vec![step("GET", JOBS, |_| list(vec![]))],
            new_workload(),
            vec![
                accept("PATCH", SA),
                accept("PATCH", RESTORE_SA),
                accept("PATCH", POLICY),
                step("PATCH", CRONJOB, |_| not_found()),
                step("PUT", STATUS, |body| {
                    let configured = condition(&body, "BackupConfigured");
                    assert_eq!(
                        (configured["status"].as_str(), configured["reason"].as_str()),
                        (Some("False"), Some("CronJobUnavailable"))
                    );
                    assert!(
                        configured["message"]
                            .as_str()
                            .unwrap()
                            .contains("batch/v1 CronJob")
                    );
                    (200, body)
                }),
            ],
        ]),
    )
    .await
    .unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(600)));
}

// Upgrades: each pass below is one reconcile, fed the status the one
// before wrote.

const PRE_UPGRADE_KEY: &str = "clusters/prod/bao/20261124T100000.000Z-pre-upgrade-a1b2c3.snap";

fn upgrade_to(version: &str, snapshot: bool, status: Value) -> Value {
    let mut cluster = cluster(jwt_backup(), status);
    cluster["spec"]["version"] = json!(version);
    if snapshot {
        cluster["spec"]["upgrade"] = json!({"preUpgradeSnapshot": true});
    }
    cluster
}

/// The StatefulSet as the API server returns it: what the operator
/// applied for `version`, and the StatefulSet controller's status.
fn live_statefulset(version: &str, generation: i64, revision: &str) -> Value {
    let cluster: OpenBaoCluster =
        serde_json::from_value(cluster(jwt_backup(), Value::Null)).unwrap();
    let release = Release {
        version: version.into(),
        image: format!("openbao/openbao:{version}"),
    };
    let mut sts = serde_json::to_value(statefulset::statefulset(&cluster, &release, None)).unwrap();
    sts["metadata"]["generation"] = json!(generation);
    sts["status"] =
        json!({"replicas": 3, "observedGeneration": generation, "updateRevision": revision});
    sts
}

/// Three ready pods on the given revisions; bao-0 is the active node.
fn openbao_pods(revisions: [&str; 3]) -> (u16, Value) {
    list(
        revisions
            .iter()
            .enumerate()
            .map(|(i, revision)| {
                json!({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": format!("bao-{i}"), "namespace": "prod", "uid": format!("pod-{i}"),
                                    "labels": {"controller-revision-hash": revision,
                                               "openbao-active": (i == 0).to_string()}},
                       "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
            })
            .collect(),
    )
}

fn pre_upgrade_job(name: &str, condition: Option<&str>) -> Value {
    job(
        name,
        "pre-1",
        condition,
        json!({"openbao.org/backup-kind": "pre-upgrade"}),
    )
}

fn pre_upgrade_result(succeeded: bool) -> Value {
    let mut result = if succeeded {
        succeeded_result()
    } else {
        failed_result()
    };
    result["kind"] = json!("pre-upgrade");
    result["key"] = json!(PRE_UPGRADE_KEY);
    result
}

/// The StatefulSet apply, checked to run `version`.
fn applies_image(version: &'static str) -> impl FnOnce(Value) -> (u16, Value) + Send {
    move |body| {
        let container = &body["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], format!("openbao/openbao:{version}"));
        assert_eq!(
            body["metadata"]["annotations"]["openbao.org/version"],
            version
        );
        (200, body)
    }
}

/// A status write, kept for the next pass.
fn keep_status(
    into: &Arc<std::sync::Mutex<Value>>,
    check: impl FnOnce(&Value) + Send + 'static,
) -> Step {
    let into = into.clone();
    step("PUT", STATUS, move |body| {
        check(&body);
        *into.lock().unwrap() = body["status"].clone();
        (200, body)
    })
}

/// The reads of a pass that finds the StatefulSet running 2.4.1 (three
/// ready pods on revision `bao-a`, bao-0 active) while 2.4.2 is asked
/// for: the StatefulSet, its pods, and the restores that could hold the
/// upgrade back.
/// The pre-upgrade backup Job `name` has ended (`ok`: Complete, else
/// Failed): the Job list, then its pod with the result.
fn finished_pre_upgrade_job(name: String, ok: bool) -> Vec<Step> {
    let condition = if ok { "Complete" } else { "Failed" };
    vec![
        step("GET", JOBS, move |_| {
            list(vec![pre_upgrade_job(&name, Some(condition))])
        }),
        step("GET", PODS, move |_| {
            list(vec![pod_with_result(pre_upgrade_result(ok))])
        }),
    ]
}

fn finds_2_4_1_running(restores: Vec<Value>) -> Vec<Step> {
    vec![
        step("GET", STS, |_| (200, live_statefulset("2.4.1", 1, "bao-a"))),
        step("GET", PODS, |_| openbao_pods(["bao-a"; 3])),
        step("GET", RESTORES, move |_| list(restores)),
    ]
}

fn steps(parts: Vec<Vec<Step>>) -> Vec<Step> {
    parts.into_iter().flatten().collect()
}

#[tokio::test]
async fn an_upgrade_waits_for_its_pre_upgrade_backup_then_rolls_standbys_first() {
    let status = Arc::new(std::sync::Mutex::new(json!({"version": "2.4.1"})));
    let now = || status.lock().unwrap().clone();
    let wanted = Release {
        version: "2.4.2".into(),
        image: "openbao/openbao:2.4.2".into(),
    };
    let job_name = upgrade::backup_job_name("bao", &wanted, None);
    let old = ["bao-a"; 3];

    // 1. A new version: the pre-upgrade backup Job starts; the
    //    StatefulSet keeps 2.4.1.
    let expected_job = job_name.clone();
    let action = run(
        upgrade_to("2.4.2", true, now()),
        steps(vec![
            vec![step("GET", JOBS, |_| list(vec![]))],
            finds_2_4_1_running(vec![]),
            workload_applies(applies_image("2.4.1")),
            vec![step("POST", JOBS, move |body| {
                assert_eq!(body["metadata"]["name"], expected_job);
                assert_eq!(
                    body["metadata"]["annotations"]["openbao.org/backup-kind"],
                    "pre-upgrade"
                );
                assert_eq!(
                    body["metadata"]["labels"]["app.kubernetes.io/component"],
                    "backup"
                );
                assert_eq!(body["metadata"]["ownerReferences"][0]["uid"], "cluster-uid");
                let env = &body["spec"]["template"]["spec"]["containers"][0]["env"];
                assert!(
                    env.as_array()
                        .unwrap()
                        .contains(&json!({"name": "BACKUP_KIND", "value": "pre-upgrade"})),
                    "{env}"
                );
                (201, body)
            })],
            applies(),
            vec![keep_status(&status, |body| {
                let upgrade = &body["status"]["upgrade"];
                assert_eq!(upgrade["phase"], "BackingUp");
                assert_eq!(
                    (
                        upgrade["fromVersion"].as_str(),
                        upgrade["toVersion"].as_str()
                    ),
                    (Some("2.4.1"), Some("2.4.2"))
                );
                assert_eq!(condition(body, "Upgraded")["reason"], "PreUpgradeBackup");
                assert_eq!(body["status"]["version"], "2.4.1");
            })],
        ]),
    )
    .await
    .unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(30)));

    // 2. While the Job runs, nothing moves and nothing is written.
    let running = job_name.clone();
    run(
        upgrade_to("2.4.2", true, now()),
        steps(vec![
            vec![step("GET", JOBS, move |_| {
                list(vec![pre_upgrade_job(&running, None)])
            })],
            finds_2_4_1_running(vec![]),
            workload_applies(applies_image("2.4.1")),
            applies(),
        ]),
    )
    .await
    .unwrap();

    // 3. The backup succeeded: recorded, and the StatefulSet gets 2.4.2.
    let done = job_name.clone();
    run(
        upgrade_to("2.4.2", true, now()),
        steps(vec![
            finished_pre_upgrade_job(done, true),
            finds_2_4_1_running(vec![]),
            workload_applies(applies_image("2.4.2")),
            applies(),
            vec![
                keep_status(&status, |body| {
                    let upgrade = &body["status"]["upgrade"];
                    assert_eq!(upgrade["phase"], "RollingOut");
                    assert_eq!(upgrade["preUpgradeBackupKey"], PRE_UPGRADE_KEY);
                    assert_eq!(body["status"]["backup"]["lastBackupName"], PRE_UPGRADE_KEY);
                }),
                event("BackupSucceeded"),
                step("POST", EVENTS, |body| {
                    assert_eq!(body["reason"], "UpgradeStarted");
                    let note = body["note"].as_str().unwrap();
                    assert!(
                        note.contains("from 2.4.1 to 2.4.2") && note.contains(PRE_UPGRADE_KEY),
                        "{note}"
                    );
                    (201, body)
                }),
            ],
        ]),
    )
    .await
    .unwrap();

    // 4. The pods, one at a time: standbys (highest first), the active
    //    node bao-0 last.
    let mut revisions = old;
    for pod in [2, 1, 0] {
        let job = job_name.clone();
        let path = format!("{PODS}/bao-{pod}");
        run(
            upgrade_to("2.4.2", true, now()),
            steps(vec![
                vec![
                    step("GET", JOBS, move |_| {
                        list(vec![pre_upgrade_job(&job, Some("Complete"))])
                    }),
                    step("GET", STS, |_| (200, live_statefulset("2.4.2", 2, "bao-b"))),
                    step("GET", PODS, move |_| openbao_pods(revisions)),
                ],
                workload_applies(applies_image("2.4.2")),
                vec![step("DELETE", &path, move |body| {
                    assert_eq!(body["preconditions"]["uid"], format!("pod-{pod}"));
                    (
                        200,
                        json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
                    )
                })],
                applies(),
                vec![keep_status(&status, move |body| {
                    let message = condition(body, "Upgraded")["message"]
                        .as_str()
                        .unwrap()
                        .to_string();
                    assert!(
                        message.ends_with(&format!("replacing pod bao-{pod}")),
                        "{message}"
                    );
                })],
            ]),
        )
        .await
        .unwrap();
        // The StatefulSet controller recreates it from the new template.
        revisions[pod] = "bao-b";
    }

    // 5. Every pod runs 2.4.2.
    let job = job_name.clone();
    let action = run(
        upgrade_to("2.4.2", true, now()),
        steps(vec![
            vec![
                step("GET", JOBS, move |_| {
                    list(vec![pre_upgrade_job(&job, Some("Complete"))])
                }),
                step("GET", STS, |_| (200, live_statefulset("2.4.2", 2, "bao-b"))),
                step("GET", PODS, |_| openbao_pods(["bao-b"; 3])),
            ],
            workload_applies(applies_image("2.4.2")),
            applies(),
            vec![
                keep_status(&status, |body| {
                    assert_eq!(body["status"]["version"], "2.4.2");
                    let upgrade = &body["status"]["upgrade"];
                    assert_eq!(upgrade["phase"], "Completed");
                    assert_eq!(upgrade["preUpgradeBackupKey"], PRE_UPGRADE_KEY);
                    assert!(upgrade["completionTime"].is_string());
                    assert_eq!(condition(body, "Upgraded")["status"], "True");
                }),
                event("UpgradeCompleted"),
            ],
        ]),
    )
    .await
    .unwrap();
    assert_ne!(action, Action::requeue(Duration::from_secs(30)));
}

#[tokio::test]
async fn without_a_pre_upgrade_snapshot_the_rollout_starts_at_once() {
    run(
        upgrade_to("2.4.2", false, json!({"version": "2.4.1"})),
        steps(vec![
            vec![step("GET", JOBS, |_| list(vec![]))],
            finds_2_4_1_running(vec![]),
            workload_applies(applies_image("2.4.2")),
            applies(),
            vec![
                step("PUT", STATUS, |body| {
                    let upgrade = &body["status"]["upgrade"];
                    assert_eq!(upgrade["phase"], "RollingOut");
                    assert!(upgrade.get("preUpgradeJob").is_none());
                    (200, body)
                }),
                event("UpgradeStarted"),
            ],
        ]),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_failed_pre_upgrade_backup_blocks_the_upgrade_until_a_retry() {
    let status = Arc::new(std::sync::Mutex::new(json!({"version": "2.4.1"})));
    let wanted = Release {
        version: "2.4.2".into(),
        image: "openbao/openbao:2.4.2".into(),
    };
    let first = upgrade::backup_job_name("bao", &wanted, None);
    let failed = first.clone();
    run(
        upgrade_to("2.4.2", true, json!({"version": "2.4.1"})),
        steps(vec![
            finished_pre_upgrade_job(failed, false),
            finds_2_4_1_running(vec![]),
            workload_applies(applies_image("2.4.1")),
            applies(),
            vec![
                keep_status(&status, |body| {
                    assert_eq!(body["status"]["upgrade"]["phase"], "Failed");
                    let upgraded = condition(body, "Upgraded");
                    assert_eq!(upgraded["reason"], "PreUpgradeBackupFailed");
                    let message = upgraded["message"].as_str().unwrap();
                    assert!(
                        message.contains("could not be found")
                            && message.contains("openbao.org/retry-upgrade"),
                        "{message}"
                    );
                }),
                event("BackupFailed"),
                event("UpgradeBlocked"),
            ],
        ]),
    )
    .await
    .unwrap();

    // A new value of the retry annotation is a new attempt, with a new Job.
    let mut retry = upgrade_to("2.4.2", true, status.lock().unwrap().clone());
    retry["metadata"]["annotations"] = json!({"openbao.org/retry-upgrade": "1"});
    let recorded = first.clone();
    run(
        retry,
        steps(vec![
            vec![step("GET", JOBS, move |_| {
                list(vec![pre_upgrade_job(&recorded, Some("Failed"))])
            })],
            finds_2_4_1_running(vec![]),
            workload_applies(applies_image("2.4.1")),
            vec![step("POST", JOBS, move |body| {
                let name = body["metadata"]["name"].as_str().unwrap().to_string();
                assert!(
                    name.starts_with("bao-pre-upgrade-") && name != first,
                    "{name}"
                );
                (201, body)
            })],
            applies(),
            vec![step("PUT", STATUS, |body| {
                assert_eq!(body["status"]["upgrade"]["phase"], "BackingUp");
                (200, body)
            })],
        ]),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_running_restore_holds_an_upgrade_back() {
    let restore = json!({"apiVersion": "openbao.org/v1alpha1", "kind": "OpenBaoRestore",
        "metadata": {"name": "restore-1", "namespace": "prod"},
        "spec": {"cluster": "bao", "key": "latest", "jwtAuthRole": "restore"},
        "status": {"phase": "Running"}});
    run(
        upgrade_to("2.4.2", true, json!({"version": "2.4.1"})),
        steps(vec![
            vec![step("GET", JOBS, |_| list(vec![]))],
            finds_2_4_1_running(vec![restore]),
            // No pre-upgrade Job, and the StatefulSet keeps 2.4.1.
            workload_applies(applies_image("2.4.1")),
            applies(),
            vec![step("PUT", STATUS, |body| {
                assert_eq!(body["status"]["upgrade"]["phase"], "Waiting");
                assert!(
                    condition(&body, "Upgraded")["message"]
                        .as_str()
                        .unwrap()
                        .contains("restore-1")
                );
                (200, body)
            })],
        ]),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn an_invalid_backup_spec_blocks_a_pre_upgrade_snapshot() {
    let mut cluster = upgrade_to("2.4.2", true, json!({"version": "2.4.1"}));
    cluster["spec"]["backup"]["schedule"] = json!("not a schedule");
    run(
        cluster,
        steps(vec![
            vec![step("GET", JOBS, |_| list(vec![]))],
            finds_2_4_1_running(vec![]),
            // No Job, and the StatefulSet keeps 2.4.1.
            workload_applies(applies_image("2.4.1")),
            vec![
                step("PUT", STATUS, |body| {
                    assert_eq!(body["status"]["upgrade"]["phase"], "Failed");
                    let message = condition(&body, "Upgraded")["message"]
                        .as_str()
                        .unwrap()
                        .to_string();
                    assert!(
                        message.contains("spec.backup is missing or invalid"),
                        "{message}"
                    );
                    (200, body)
                }),
                event("UpgradeBlocked"),
                event("InvalidSpec"),
            ],
        ]),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn unslashed_bound_claims_are_applied_with_a_warning_once() {
    let mut cluster = cluster(jwt_backup(), Value::Null);
    cluster["spec"]["seal"] =
        json!({"static": {"secretKeyRef": {"name": "bao-seal", "key": "key"}}});
    cluster["spec"]["selfInit"] = json!({"enabled": true, "requests": [
        {"name": "role", "operation": "update", "path": "auth/jwt/role/backup",
         "data": {"bound_claims": {"kubernetes.io/namespace": "prod"}}},
    ]});
    let field = r#"spec.selfInit.requests[0].data.bound_claims."kubernetes.io/namespace": use "/kubernetes.io/namespace""#;
    let written = Arc::new(std::sync::Mutex::new(Value::Null));
    run(
        cluster.clone(),
        steps(vec![
            vec![step("GET", JOBS, |_| list(vec![]))],
            new_workload(),
            applies(),
            vec![
                keep_status(&written, move |body| {
                    let workload = condition(body, "WorkloadConfigured");
                    assert_eq!(
                        (&workload["status"], &workload["reason"]),
                        (&json!("True"), &json!("AppliedWithWarnings"))
                    );
                    assert!(
                        workload["message"].as_str().unwrap().contains(field),
                        "{workload}"
                    );
                }),
                step("POST", EVENTS, move |body| {
                    assert_eq!(
                        (&body["reason"], &body["type"]),
                        (&json!("SpecWarning"), &json!("Warning"))
                    );
                    assert!(body["note"].as_str().unwrap().starts_with(field), "{body}");
                    (201, body)
                }),
            ],
        ]),
    )
    .await
    .unwrap();

    // The next pass finds the same warning in the status: no new event.
    cluster["status"] = written.lock().unwrap().clone();
    run(
        cluster,
        steps(vec![
            vec![step("GET", JOBS, |_| list(vec![]))],
            new_workload(),
            applies(),
        ]),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_panicking_reconcile_fails_alone() {
    let panicked = contained(async {
        let age: u64 = "18446744073709551615".parse().unwrap();
        Ok(Action::requeue(Duration::from_secs(
            age.checked_add(1).expect("overflow"),
        )))
    })
    .await;
    assert!(
        matches!(&panicked, Err(Error::Panicked(message)) if message == "overflow"),
        "{panicked:?}"
    );
    let fine = contained(async { Ok(Action::await_change()) }).await;
    assert_eq!(fine.unwrap(), Action::await_change());
}

/// The CronJob as the API server keeps it after an apply, suspended by a
/// restore's hold.
fn held(mut cronjob: Value) -> (u16, Value) {
    cronjob["spec"]["suspend"] = json!(true);
    cronjob["metadata"]["managedFields"] = json!([
        {"manager": "openbao-backup-operator", "operation": "Apply",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:schedule": {}}}},
        {"manager": "openbao-backup-operator-restore", "operation": "Update",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:suspend": {}}}},
    ]);
    (200, cronjob)
}

fn restore_in(phase: Option<&str>, cluster: &str) -> Value {
    let status = phase.map_or(Value::Null, |phase| json!({"phase": phase}));
    json!({"apiVersion": "openbao.org/v1alpha1", "kind": "OpenBaoRestore",
           "metadata": {"name": format!("r-{}", phase.unwrap_or("new")), "namespace": "prod"},
           "spec": {"cluster": cluster, "key": "latest", "jwtAuthRole": "restore"},
           "status": status})
}

/// One pass over a cluster whose CronJob the restore manager holds, with
/// `restores` in the namespace: the hold is released (a patch to
/// `suspend: false`) or kept.
async fn pass_with_held_cronjob(restores: Vec<Value>, released: bool) {
    let mut last = vec![
        accept("PATCH", SA),
        accept("PATCH", RESTORE_SA),
        accept("PATCH", POLICY),
        step("PATCH", CRONJOB, held),
        step("GET", RESTORES, move |_| list(restores)),
    ];
    if released {
        last.push(step("PATCH", CRONJOB, |body| {
            assert_eq!(body, json!({"spec": {"suspend": false}}));
            (200, body)
        }));
    }
    last.push(accept("PUT", STATUS));
    run(
        cluster(jwt_backup(), Value::Null),
        steps(vec![
            vec![step("GET", JOBS, |_| list(vec![]))],
            new_workload(),
            last,
        ]),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_hold_no_pending_or_running_restore_owns_is_released() {
    // The restore that suspended the CronJob was deleted before it ended:
    // only finished restores, and another cluster's, are left.
    let restores = vec![
        restore_in(Some("Failed"), "bao"),
        restore_in(Some("Succeeded"), "bao"),
        restore_in(Some("Running"), "other"),
    ];
    pass_with_held_cronjob(restores, true).await;

    // A restore that has not started yet (no status) or runs keeps it.
    for live in [None, Some("Pending"), Some("Running")] {
        let restores = vec![restore_in(Some("Failed"), "bao"), restore_in(live, "bao")];
        pass_with_held_cronjob(restores, false).await;
    }
}

#[tokio::test]
async fn objects_with_the_generated_names_that_are_not_ours_are_left_alone() {
    // Someone else's ServiceAccount named as the cluster's, and someone
    // else's NetworkPolicy named as its backup policy.
    let foreign = |api_version: &str, kind: &str, name: &str| {
        json!({"apiVersion": api_version, "kind": kind,
               "metadata": {"name": name, "namespace": "prod", "uid": "theirs"}})
    };
    let account = foreign("v1", "ServiceAccount", "bao");
    let policy = foreign("networking.k8s.io/v1", "NetworkPolicy", "bao-backup");
    run(
        cluster(jwt_backup(), Value::Null),
        steps(vec![vec![
            step("GET", JOBS, |_| list(vec![])),
            step("GET", STS, |_| not_found()),
            // Read, never patched: no other workload object either.
            step(
                "GET",
                "/api/v1/namespaces/prod/serviceaccounts/bao",
                move |_| (200, account),
            ),
            accept("PATCH", SA),
            accept("PATCH", RESTORE_SA),
            step("GET", POLICY, move |_| (200, policy)),
            step("PUT", STATUS, |body| {
                let workload = condition(&body, "WorkloadConfigured");
                assert_eq!(
                    (&workload["status"], &workload["reason"]),
                    (&json!("False"), &json!("NotOwned"))
                );
                assert!(
                    workload["message"].as_str().unwrap().starts_with(
                        "ServiceAccount bao exists and this OpenBaoCluster does not own it"
                    ),
                    "{workload}"
                );
                let backup = condition(&body, "BackupConfigured");
                assert_eq!(backup["reason"], "NotOwned");
                assert!(
                    backup["message"]
                        .as_str()
                        .unwrap()
                        .starts_with("NetworkPolicy bao-backup exists"),
                    "{backup}"
                );
                assert!(body["status"]["backup"]["nextScheduledBackup"].is_null());
                (200, body)
            }),
        ]]),
    )
    .await
    .unwrap();
}

/// An external OpenBao: no StatefulSet read, no workload object applied;
/// the backup objects as for any cluster, with the external addresses.
#[tokio::test]
async fn an_external_cluster_gets_only_its_backup_objects() {
    let mut external = cluster(jwt_backup(), Value::Null);
    external["spec"] = json!({
        "external": {"addresses": ["https://bao-0.bao-internal:8200", "https://bao-1.bao-internal:8200"]},
        "backup": jwt_backup(),
    });
    run(
        external,
        vec![
            step("GET", JOBS, |_| list(vec![])),
            accept("PATCH", SA),
            accept("PATCH", RESTORE_SA),
            step("PATCH", POLICY, |body| {
                let openbao = &body["spec"]["egress"][1];
                assert_eq!(openbao["ports"][0]["port"], 8200);
                assert!(openbao.get("to").is_none(), "{openbao}");
                (200, body)
            }),
            step("PATCH", CRONJOB, |body| {
                let pod = &body["spec"]["jobTemplate"]["spec"]["template"]["spec"];
                let env = pod["containers"][0]["env"].as_array().unwrap();
                let addr = env.iter().find(|e| e["name"] == "OPENBAO_ADDR").unwrap();
                assert_eq!(
                    addr["value"],
                    "https://bao-0.bao-internal:8200,https://bao-1.bao-internal:8200"
                );
                (200, body)
            }),
            step("PUT", STATUS, |body| {
                let workload = condition(&body, "WorkloadConfigured");
                assert_eq!(
                    (&workload["status"], &workload["reason"]),
                    (&json!("True"), &json!("External"))
                );
                assert!(
                    body["status"]["conditions"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .all(|c| c["type"] != "Upgraded"),
                    "no upgrades"
                );
                assert!(body["status"].get("version").is_none());
                assert_eq!(condition(&body, "BackupConfigured")["status"], "True");
                (200, body)
            }),
        ],
    )
    .await
    .unwrap();
}

/// An external cluster with a workload field: nothing of the workload,
/// and the condition names the field.
#[tokio::test]
async fn an_external_cluster_with_a_version_says_which_field_to_remove() {
    let mut external = cluster(jwt_backup(), Value::Null);
    external["spec"]["external"] = json!({"addresses": ["https://bao:8200"]});
    run(
        external,
        steps(vec![
            vec![step("GET", JOBS, |_| list(vec![]))],
            applies(),
            vec![step("PUT", STATUS, |body| {
                let workload = condition(&body, "WorkloadConfigured");
                assert_eq!(workload["reason"], "InvalidSpec");
                assert!(
                    workload["message"]
                        .as_str()
                        .unwrap()
                        .starts_with("spec.version does not apply to an external OpenBao"),
                    "{workload}"
                );
                (200, body)
            })],
            vec![event("InvalidSpec")],
        ]),
    )
    .await
    .unwrap();
}

#[test]
fn backup_now_asks_once_per_new_value_once_backups_are_configured() {
    use crate::status::Configured;
    let with = |annotation: Option<&str>, handled: Option<&str>| -> OpenBaoCluster {
        let mut value = cluster(
            jwt_backup(),
            json!({"backup": {"backupNowHandled": handled}}),
        );
        if let Some(annotation) = annotation {
            value["metadata"]["annotations"] = json!({"openbao.org/backup-now": annotation});
        }
        serde_json::from_value(value).unwrap()
    };
    let wanted = |cluster: &OpenBaoCluster, configured: &Configured| {
        super::backup::wanted_backup_now(cluster, configured)
    };
    let applied = Configured::Applied;
    assert_eq!(wanted(&with(None, None), &applied), None);
    assert_eq!(
        wanted(&with(Some("1"), None), &applied).as_deref(),
        Some("1")
    );
    assert_eq!(
        wanted(&with(Some("1"), Some("1")), &applied),
        None,
        "handled"
    );
    assert_eq!(
        wanted(&with(Some("2"), Some("1")), &applied).as_deref(),
        Some("2")
    );
    assert_eq!(wanted(&with(Some(""), None), &applied), None);
    assert_eq!(
        wanted(
            &with(Some("1"), None),
            &Configured::Unschedulable("old".into())
        )
        .as_deref(),
        Some("1"),
        "Jobs run without a CronJob"
    );
    assert_eq!(
        wanted(&with(Some("1"), None), &Configured::Invalid(vec![])),
        None,
        "waits for a valid spec"
    );
    assert_eq!(wanted(&with(Some("1"), None), &Configured::Absent), None);
}

#[test]
fn pod_labels_with_the_operators_keys_are_ignored_with_a_warning() {
    let mut backup = jwt_backup();
    backup["pod"] = json!({"labels": {"team": "vault", "app.kubernetes.io/component": "x"}});
    let cluster: OpenBaoCluster = serde_json::from_value(cluster(backup, json!(null))).unwrap();
    assert_eq!(
        crate::validate::executor_pod_warnings(&cluster.spec),
        [
            "spec.backup.pod.labels.app.kubernetes.io/component is ignored: the operator sets it to select its pods; use another key"
        ]
    );
    let plain: OpenBaoCluster =
        serde_json::from_value(self::cluster(jwt_backup(), json!(null))).unwrap();
    assert!(crate::validate::executor_pod_warnings(&plain.spec).is_empty());
}
