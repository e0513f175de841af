//! The operator against a real kube-apiserver (1.20, built by
//! scripts/setup) and etcd, running with the chart's RBAC, with the test
//! playing the kubelet: it runs each backup Job's container command as a
//! process (the real `backup` binary, against real OpenBao and Garage, with
//! the Job's env, its Secrets and a real projected ServiceAccount token from
//! the API server, which OpenBao's JWT auth verifies), then writes the pod's termination message and the
//! Job's status as a kubelet and the Job controller would.
//!
//! Kubernetes 1.20 has no batch/v1 CronJob (and no controller-manager), so
//! here the operator reports `CronJobUnavailable` and the test creates Jobs
//! from the CronJob's template as `kubectl create job --from=cronjob/...`
//! does; the CronJob itself is covered by the scripted reconcile tests.
//! For upgrades the test also plays the StatefulSet controller: it reports
//! the StatefulSet's revision and makes its pods; policy/v1
//! PodDisruptionBudgets (1.21+) are covered by the scripted tests too.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use contract::executor::paths::JWT_FILE as DEFAULT_JWT_FILE;
use contract::plugin_spec::PluginSpec;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, KeyToPath, PersistentVolumeClaimVolumeSource, Pod, PodSpec, Secret, Service,
    ServiceAccount, Volume,
};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use operator::api::{
    BackupStatus, DeliveryResult, OpenBaoCluster, OpenBaoRestore, OpenBaoRestoreStatus,
    RestorePhase, UpgradePhase,
};
use operator::desired::backup;
use operator::settings::{self, OperatorSettings};
use serde_json::json;
use support::{Bucket, Source, sha256_hex};
use testkit::jwt::JwtIssuer;
use testkit::kube::{KubeApiServer, wait_for};
use testkit::openbao::JwtAuth;
use testkit::tls::TestCa;
use testkit::{ClusterSpec, Fault};

const CHART: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/helm/openbao-backup-operator"
);
const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
const OPERATOR_NS: &str = "openbao-backup";
const AUDIENCE: &str = "openbao-internal";

#[test]
fn operator_on_a_real_api_server() {
    on_a_large_stack(operator_scenario);
}

/// Runs `scenario` in a two-worker runtime on a thread with a 64 MiB stack:
/// in a debug build the scenario's future, which holds every step's, and
/// its poll frames outgrow a test thread's 2 MiB.
fn on_a_large_stack<F: Future<Output = ()> + 'static>(scenario: fn() -> F) {
    let run = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
                .block_on(scenario())
        })
        .unwrap()
        .join();
    if let Err(panic) = run {
        std::panic::resume_unwind(panic);
    }
}

async fn operator_scenario() {
    let issuer = JwtIssuer::generate();
    let kube = KubeApiServer::start(&issuer).unwrap_or_else(|e| panic!("{e}"));
    install(&kube);
    let admin = client(&kube.admin_kubeconfig()).await;
    let operator_kubeconfig = kube.kubeconfig(
        "operator",
        &create_token(&kube, OPERATOR_NS, "openbao-backup-operator", None),
    );

    documented_examples_are_accepted(&kube);
    bad_manifests_are_rejected_naming_the_field(&kube);

    let mut operator_a = Operator::start(&operator_kubeconfig, "operator-a");
    documented_clusters_are_reconciled(&admin).await;
    objects_changed_by_someone_else_are_repaired(&kube, &admin).await;
    a_spec_only_the_controller_can_check_gets_a_condition(&kube, &admin).await;
    objects_the_cluster_does_not_own_are_left_alone(&kube, &admin).await;
    security_profiles(&kube, &admin).await;

    // A cluster whose backups go to Garage, logging in with JWT.
    let bucket = Bucket::new("operator").await;
    let openbao = start_openbao(&issuer).await;
    let cluster = backup_cluster(&kube, &admin, &bucket).await;

    let job = run_backup_job(
        &kube,
        &admin,
        &cluster,
        "manual-backup-1",
        Some(&openbao.url()),
    )
    .await;
    let backup = wait_for("the first backup in status", || async {
        let status = get_cluster(&admin).await.status?.backup?;
        status.last_backup_name.is_some().then_some(status)
    })
    .await;
    let key = backup.last_backup_name.clone().unwrap();
    assert!(key.starts_with("clusters/backups/it/"), "{key}");
    assert!(
        key.contains("-manual-"),
        "a Job made from the CronJob's template by hand is a manual backup: {key}"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&bucket.read(&format!("{key}.manifest.json")).await).unwrap();
    assert_eq!(
        manifest["signature"]["alg"], "HMAC-SHA256",
        "signed with the cluster's manifest key"
    );
    assert_eq!(
        bucket.digest(&key).await,
        (
            backup.last_backup_size.unwrap(),
            backup.last_backup_sha256.clone().unwrap()
        )
    );
    assert_eq!(backup.consecutive_failures, 0);
    assert_eq!(backup.recorded_jobs, vec![job.uid().unwrap()]);
    assert!(backup.last_backup_duration.unwrap().ends_with('s'));
    let healthy = condition(&get_cluster(&admin).await, "BackupHealthy");
    assert_eq!(
        (healthy.status.as_str(), healthy.reason.as_str()),
        ("True", "BackupSucceeded")
    );
    let event = wait_for_event(&admin, "BackupSucceeded").await;
    assert!(
        event
            .note
            .unwrap()
            .starts_with(&format!("manual backup {key}"))
    );
    let metrics = operator_a.metrics().await;
    assert!(
        metrics.contains(r#"openbao_backup_backups_total{namespace="backups",cluster="it",kind="manual",result="success"} 1"#),
        "{metrics}"
    );

    // A failing backup: OpenBao refuses the snapshot.
    openbao.set_fault(Fault::Status(503));
    run_backup_job(
        &kube,
        &admin,
        &cluster,
        "manual-backup-2",
        Some(&openbao.url()),
    )
    .await;
    let failed = wait_for("the failure in status", || async {
        let status = get_cluster(&admin).await.status?.backup?;
        (status.consecutive_failures == 1).then_some(status)
    })
    .await;
    assert_eq!(
        failed.last_backup_name.as_deref(),
        Some(key.as_str()),
        "the last good backup stays"
    );
    assert!(failed.last_failure_reason.unwrap().contains("503"));
    let event = wait_for_event(&admin, "BackupFailed").await;
    assert!(event.note.unwrap().contains("503"));

    openbao.set_fault(Fault::None);
    retention_deleting_more_than_a_termination_message_holds(&kube, &admin, &bucket, &openbao)
        .await;
    let key = plugins_from_config_maps(&kube, &admin, &bucket, &openbao).await;
    restore_through_the_operator(&kube, &admin, &openbao, &key).await;
    an_external_openbao_is_backed_up_and_restored(&kube, &admin, &bucket).await;
    // The last backup is the pre-upgrade one now.
    let key = upgrade_through_the_operator(&kube, &admin, &openbao).await;
    // Then a manual backup asked for by annotation, from pods that fit.
    let key = pods_that_fit_and_backups_by_annotation(&kube, &admin, &openbao, &key).await;
    // Webhooks hear about a failure and a success, signed; receivers that
    // are down slow nothing down.
    notifications_are_signed_and_never_slow_a_backup(&kube, &admin, &openbao, &operator_a, &key)
        .await;
    restore_drills_through_the_operator(&kube, &admin, &bucket, &operator_a).await;
    // Then backups to a PersistentVolumeClaim instead of the bucket.
    backups_to_a_volume(&kube, &admin, &openbao).await;
    // Then a verified second copy in another bucket, and a restore from it.
    let key = copies_are_verified_and_restore(&kube, &admin, &openbao, &operator_a).await;
    // Every kind of backup, both results and both kinds of restore ended:
    // the alerts and the dashboard query only what this serves.
    monitoring_queries_what_the_operator_serves(&operator_a.metrics().await);

    // A second replica waits while the first leads; when the first stops,
    // the second takes over and, reading the status back, counts nothing
    // twice: the cluster is not written at all.
    let mut operator_b = Operator::start(&operator_kubeconfig, "operator-b");
    operator_b.wait_for_log("waiting for leadership");
    assert_eq!(lease_holder(&admin).await.as_deref(), Some("operator-a"));
    let before = get_cluster(&admin).await;
    let policies: Api<NetworkPolicy> = Api::namespaced(admin.clone(), "backups");
    let policy_before = policies.get("it-backup").await.unwrap();
    let statefulsets: Api<StatefulSet> = Api::namespaced(admin.clone(), "backups");
    let statefulset_before = statefulsets.get("it").await.unwrap();
    let requests_before = requests(&admin).await;
    operator_a.terminate();
    wait_for("operator-b to lead", || async {
        (lease_holder(&admin).await.as_deref() == Some("operator-b")).then_some(())
    })
    .await;
    operator_b.wait_for_log("\"leading\"");
    wait_for("operator-b to reconcile the cluster", || async {
        let text = operator_b.metrics().await;
        text.contains(r#"last_success_timestamp_seconds{namespace="backups",cluster="it"}"#)
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes = Requests::between(&requests_before, &requests(&admin).await).writes();
    assert_eq!(
        writes.by_operator(),
        0,
        "a restart re-applies nothing that holds what it would apply: {writes}"
    );
    let after = get_cluster(&admin).await;
    assert_eq!(
        after.resource_version(),
        before.resource_version(),
        "a restart writes nothing"
    );
    assert_eq!(after.status, before.status);
    let policy_after = policies.get("it-backup").await.unwrap();
    assert_eq!(
        policy_after.resource_version(),
        policy_before.resource_version(),
        "re-applying an unchanged NetworkPolicy writes nothing"
    );
    let statefulset_after = statefulsets.get("it").await.unwrap();
    assert_eq!(
        statefulset_after.resource_version(),
        statefulset_before.resource_version(),
        "re-applying an unchanged StatefulSet writes nothing:\n{}\n{}",
        serde_json::to_string(&statefulset_before).unwrap(),
        serde_json::to_string(&statefulset_after).unwrap()
    );

    // Removing spec.backup (and the pre-upgrade snapshots that need it)
    // removes what the operator made for it.
    let removed = kube.kubectl(
        &[
            "-n",
            "backups",
            "patch",
            "openbaocluster",
            "it",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/spec/backup"},{"op":"remove","path":"/spec/upgrade"}]"#,
        ],
        None,
    );
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), "backups");
    wait_for("the backup objects to go", || async {
        let gone = accounts
            .get_opt("it-backup-serviceaccount")
            .await
            .unwrap()
            .is_none()
            && accounts
                .get_opt("it-restore-serviceaccount")
                .await
                .unwrap()
                .is_none()
            && policies.get_opt("it-backup").await.unwrap().is_none();
        gone.then_some(())
    })
    .await;
    // Without backups, the cluster is Ready once its workload is.
    kube.kubectl_ok(
        &[
            "-n",
            "backups",
            "wait",
            "--for=condition=Ready",
            "openbaocluster/it",
            "--timeout=60s",
        ],
        None,
    );
    let status = get_cluster(&admin).await.status.unwrap();
    assert!(
        status
            .conditions
            .iter()
            .all(|c| !c.type_.starts_with("Backup")),
        "{:?}",
        status.conditions
    );
    assert_eq!(
        status.backup.unwrap().last_backup_name.as_deref(),
        Some(key.as_str()),
        "history stays"
    );

    operator_b.terminate();
    let logs = operator_a.logs() + &operator_b.logs();
    assert!(
        !logs.contains(&bucket.garage.secret_access_key),
        "no secret in the operator's logs"
    );
    kube.stop();
}

/// The chart's alerts and dashboard query only metric names the operator
/// serves, and every `openbao_backup_*` input series of the promtool tests
/// (deploy/monitoring/rules-test.yaml) is one of the operator's series,
/// name, labels and values: a renamed metric, label or label value fails
/// here, not only in production.
fn monitoring_queries_what_the_operator_serves(scrape: &str) {
    let read = |path: &str| {
        std::fs::read_to_string(format!("{CHART}/../../{path}"))
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    let names = exported_names(scrape);
    for file in [
        "helm/openbao-backup-operator/files/monitoring/rules.yaml",
        "helm/openbao-backup-operator/files/monitoring/dashboard.json",
    ] {
        let queried = queried_names(&read(file));
        assert!(queried.len() >= 4, "{file} queries {queried:?}");
        for name in queried {
            assert!(
                names.contains(&name),
                "{file} queries {name}, which the operator does not serve:\n{scrape}"
            );
        }
    }
    let samples: Vec<(String, BTreeMap<String, String>)> = scrape
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| parse_series(line.rsplit_once(' ').unwrap().0))
        .collect();
    let tests = read("monitoring/rules-test.yaml");
    let inputs: Vec<&str> = tests
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- series: '")?.strip_suffix('\''))
        .filter(|series| series.starts_with("openbao_backup_"))
        .collect();
    assert!(inputs.len() >= 6, "{inputs:?}");
    for input in inputs {
        assert!(
            samples.contains(&parse_series(input)),
            "the promtool test's series {input} is not one the operator serves:\n{scrape}"
        );
    }
}

/// The sample names of a scrape, from its `# TYPE` lines: a counter `x`
/// is `x_total`, a histogram `x` is `x_bucket`, `x_sum` and `x_count`.
fn exported_names(scrape: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in scrape.lines() {
        let Some(declared) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, type_) = declared.split_once(' ').unwrap();
        let suffixes: &[&str] = match type_ {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|suffix| format!("{name}{suffix}")));
    }
    names
}

/// The `openbao_backup_*` names a rules file or dashboard mentions.
fn queried_names(text: &str) -> BTreeSet<String> {
    text.match_indices("openbao_backup_")
        .map(|(at, _)| {
            text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

/// `name{a="x",b="y"}` into its name and labels.
fn parse_series(series: &str) -> (String, BTreeMap<String, String>) {
    let Some((name, labels)) = series.split_once('{') else {
        return (series.to_string(), BTreeMap::new());
    };
    let labels = labels
        .strip_suffix('}')
        .unwrap()
        .split("\",")
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once("=\"").unwrap();
            (key.to_string(), value.trim_end_matches('"').to_string())
        })
        .collect();
    (name.to_string(), labels)
}

/// The CRD, the namespaces, and the operator's identity with the chart's
/// RBAC rules (the rules files the chart's templates include).
fn install(kube: &KubeApiServer) {
    // 1.20 predates CEL: `create` stores the CRD without the
    // x-kubernetes-validations fields (server-side apply would refuse them).
    let crd = format!("{CHART}/crds/openbao.org.yaml");
    kube.kubectl_ok(&["create", "--validate=false", "-f", &crd], None);
    let rules = |file: &str| std::fs::read_to_string(format!("{CHART}/files/{file}")).unwrap();
    let indent = |text: String| text.lines().map(|l| format!("  {l}\n")).collect::<String>();
    let rbac = format!(
        r#"apiVersion: v1
kind: Namespace
metadata: {{name: {OPERATOR_NS}}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: openbao}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: backups}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: openbao-backup-operator, namespace: {OPERATOR_NS}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: openbao-backup-operator}}
rules:
{cluster_rules}---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: openbao-backup-operator}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: openbao-backup-operator}}
subjects: [{{kind: ServiceAccount, name: openbao-backup-operator, namespace: {OPERATOR_NS}}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: openbao-backup-operator-leader-election, namespace: {OPERATOR_NS}}}
rules:
{lease_rules}---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: openbao-backup-operator-leader-election, namespace: {OPERATOR_NS}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: openbao-backup-operator-leader-election}}
subjects: [{{kind: ServiceAccount, name: openbao-backup-operator, namespace: {OPERATOR_NS}}}]
"#,
        cluster_rules = indent(rules("cluster-rules.yaml")),
        lease_rules = indent(rules("leader-election-rules.yaml")),
    );
    kube.apply(&rbac);
    wait_until(|| {
        kube.kubectl(&["get", "openbaoclusters"], None)
            .status
            .success()
    });
}

fn documented_examples_are_accepted(kube: &KubeApiServer) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(EXAMPLES)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for file in files {
        kube.kubectl_ok(
            &["apply", "--server-side", "-f", file.to_str().unwrap()],
            None,
        );
    }
}

fn bad_manifests_are_rejected_naming_the_field(kube: &KubeApiServer) {
    let cases = [
        (
            "target: {bucket: openbao-backups, partSize: 1048576}",
            "spec.backup.target.partSize",
        ),
        (
            "target: {bucket: openbao-backups, concurrency: 0}",
            "spec.backup.target.concurrency",
        ),
        (
            "target: {bucket: openbao-backups, concurrency: 65}",
            "spec.backup.target.concurrency",
        ),
        // No storage at all is refused by a CEL rule (cel_rules.rs), which
        // this API server predates, and by the controller.
        ("target: {bucket: ab}", "spec.backup.target.bucket"),
        (
            "target: {bucket: openbao-backups}\n    retention: {maxCount: -1}",
            "spec.backup.retention.maxCount",
        ),
        // Overflowed the controller's parser (a panic in every reconcile).
        (
            "target: {bucket: openbao-backups}\n    retention: {maxAge: 18446744073709551615s1s}",
            "spec.backup.retention.maxAge",
        ),
        (
            "target: {bucket: openbao-backups}\n    retention: {maxAge: 7days}",
            "spec.backup.retention.maxAge",
        ),
        (
            "target: {bucket: openbao-backups}\n  notifications: [{url: 'ftp://hooks.example.com/x'}]",
            "spec.notifications.url",
        ),
        (
            "target: {bucket: openbao-backups}\n  notifications: [{url: 'https://hooks.example.com/x', events: [sms]}]",
            "spec.notifications.events",
        ),
    ];
    for (target, field) in cases {
        let manifest = format!(
            "apiVersion: openbao.org/v1alpha1\nkind: OpenBaoCluster\nmetadata: {{name: bad, namespace: backups}}\nspec:\n  backup:\n    schedule: \"0 3 * * *\"\n    executorImage: openbao/backup-executor:v0.1.0\n    jwtAuthRole: backup\n    {target}\n"
        );
        let output = kube.kubectl(&["apply", "--server-side", "-f", "-"], Some(&manifest));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains(field),
            "{target}: {stderr}"
        );
    }
}

async fn documented_clusters_are_reconciled(admin: &Client) {
    for (namespace, name, jwt) in [
        ("default", "backup-cluster", true),
        ("default", "token-cluster", false),
        ("default", "sealed-cluster", true),
        ("openbao", "selfinit-cluster", true),
        ("default", "notified-cluster", true),
    ] {
        let clusters: Api<OpenBaoCluster> = Api::namespaced(admin.clone(), namespace);
        let cluster = wait_for(&format!("{name} to be reconciled"), || async {
            let cluster = clusters.get(name).await.ok()?;
            cluster
                .status
                .as_ref()?
                .conditions
                .iter()
                .any(|c| c.type_ == "BackupConfigured")
                .then_some(cluster)
        })
        .await;
        let configured = condition(&cluster, "BackupConfigured");
        // Valid, but this 1.20 server has no batch/v1 CronJob.
        assert_eq!(
            (configured.status.as_str(), configured.reason.as_str()),
            ("False", "CronJobUnavailable"),
            "{name}"
        );
        let policy = Api::<NetworkPolicy>::namespaced(admin.clone(), namespace)
            .get(&format!("{name}-backup"))
            .await
            .unwrap();
        assert_eq!(policy.owner_references()[0].uid, cluster.uid().unwrap());
        let account = Api::<ServiceAccount>::namespaced(admin.clone(), namespace)
            .get_opt(&format!("{name}-backup-serviceaccount"))
            .await
            .unwrap();
        assert_eq!(
            account.is_some(),
            jwt,
            "{name}: a ServiceAccount only for JWT auth"
        );
        let workload = condition(&cluster, "WorkloadConfigured");
        assert_eq!(workload.status, "True", "{name}: {}", workload.message);
        let statefulset = Api::<StatefulSet>::namespaced(admin.clone(), namespace)
            .get(name)
            .await
            .unwrap();
        assert_eq!(
            statefulset.owner_references()[0].uid,
            cluster.uid().unwrap()
        );
    }
}

/// The operator applies only what differs from what an object holds; what
/// someone else changed, removed or deleted still differs, and is put back.
async fn objects_changed_by_someone_else_are_repaired(kube: &KubeApiServer, admin: &Client) {
    let (namespace, name) = ("default", "token-cluster");
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), namespace);
    let config = format!("{name}-config");
    let applied = config_maps.get(&config).await.unwrap().data.unwrap();
    let data = json!({"data": {"config.json": "{}"}}).to_string();
    let args = [
        "-n",
        namespace,
        "patch",
        "configmap",
        &config,
        "--type=merge",
        "-p",
        &data,
    ];
    kube.kubectl_ok(&args, None);
    let policy = format!("{name}-backup");
    let unlabel = [
        "-n",
        namespace,
        "label",
        "networkpolicy",
        &policy,
        "app.kubernetes.io/name-",
    ];
    kube.kubectl_ok(&unlabel, None);
    let services: Api<Service> = Api::namespaced(admin.clone(), namespace);
    services.delete(name, &Default::default()).await.unwrap();

    wait_for("the changed ConfigMap to be repaired", || async {
        let data = config_maps.get(&config).await.ok()?.data?;
        (data == applied).then_some(())
    })
    .await;
    let policies: Api<NetworkPolicy> = Api::namespaced(admin.clone(), namespace);
    wait_for("the removed label to be put back", || async {
        let policy = policies.get(&policy).await.ok()?;
        policy
            .labels()
            .contains_key("app.kubernetes.io/name")
            .then_some(())
    })
    .await;
    wait_for("the deleted Service to be made again", || async {
        services.get_opt(name).await.ok()?.map(drop)
    })
    .await;
}

async fn a_spec_only_the_controller_can_check_gets_a_condition(
    kube: &KubeApiServer,
    admin: &Client,
) {
    // Both auth methods, and both a bucket and a volume: CEL rejects this
    // at admission on >= 1.27; 1.20 stores it and the controller says what
    // is wrong.
    let manifest = "apiVersion: openbao.org/v1alpha1\nkind: OpenBaoCluster\nmetadata: {name: both-auth, namespace: backups}\nspec:\n  backup:\n    schedule: \"0 3 * * 8\"\n    executorImage: openbao/backup-executor:v0.1.0\n    jwtAuthRole: backup\n    tokenSecretRef: {name: backup-token}\n    target: {bucket: openbao-backups, volume: {persistentVolumeClaim: {claimName: backups}}}\n";
    kube.apply(manifest);
    let cluster = with_conditions(admin, "backups", "both-auth").await;
    // Without CEL, the controller also says the workload needs a version.
    let workload = condition(&cluster, "WorkloadConfigured");
    assert_eq!(
        (workload.status.as_str(), workload.reason.as_str()),
        ("False", "InvalidSpec")
    );
    assert!(
        workload.message.starts_with("spec.version:"),
        "{}",
        workload.message
    );
    let configured = condition(&cluster, "BackupConfigured");
    assert_eq!(configured.reason, "InvalidSpec");
    assert!(
        configured.message.contains("spec.backup.schedule")
            && configured.message.contains("exactly one of jwtAuthRole")
            && configured
                .message
                .contains("spec.backup.target: set exactly one of bucket (an S3 bucket), volume"),
        "{}",
        configured.message
    );
    absent::<NetworkPolicy>(admin, "backups", "both-auth-backup").await;
}

/// A Hardened cluster gets the OpenBao pods' NetworkPolicy and a backup
/// policy that reaches its storage address only; back on Development the
/// pods' policy goes and SecurityRisk says what Hardened would refuse. A
/// Hardened cluster with a metadata-address, plain-HTTP endpoint and a
/// static token is refused, naming each field. (This harness runs pods as
/// processes, with no network plugin: the policies' content is checked
/// here, nothing enforces them.)
async fn security_profiles(kube: &KubeApiServer, admin: &Client) {
    let manifest = |name: &str, endpoint: &str, auth: &str| {
        format!(
            "apiVersion: openbao.org/v1alpha1\nkind: OpenBaoCluster\nmetadata: {{name: {name}, namespace: backups}}\nspec:\n  version: 2.4.1\n  profile: Hardened\n  networkPolicy:\n    apiClients: [{{namespaceSelector: {{matchLabels: {{team: apps}}}}}}]\n  backup:\n    schedule: \"0 3 * * *\"\n    executorImage: openbao/backup-executor:v0.1.0\n    {auth}\n    target: {{endpoint: \"{endpoint}\", bucket: openbao-backups}}\n"
        )
    };
    let hardened = manifest(
        "sec-hardened",
        "https://192.0.2.10:9000",
        "jwtAuthRole: backup",
    );
    kube.apply(&hardened);
    let policies: Api<NetworkPolicy> = Api::namespaced(admin.clone(), "backups");
    let (openbao, backup) = wait_for("the Hardened cluster's policies", || async {
        Some((
            policies.get_opt("sec-hardened").await.unwrap()?,
            policies.get_opt("sec-hardened-backup").await.unwrap()?,
        ))
    })
    .await;
    let openbao = serde_json::to_value(openbao.spec.unwrap()).unwrap();
    assert_eq!(openbao["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(
        openbao["ingress"][2],
        json!({"from": [{"namespaceSelector": {"matchLabels": {"team": "apps"}}}],
               "ports": [{"protocol": "TCP", "port": 8200}]})
    );
    assert_eq!(
        openbao["egress"][0]["ports"],
        json!([{"protocol": "TCP", "port": 8200}, {"protocol": "TCP", "port": 8201}])
    );
    let backup = serde_json::to_value(backup.spec.unwrap()).unwrap();
    assert_eq!(
        backup["egress"][2],
        json!({"to": [{"ipBlock": {"cidr": "192.0.2.10/32"}}],
               "ports": [{"protocol": "TCP", "port": 9000}]}),
        "the backup pods reach the storage address only"
    );
    let cluster = with_conditions(admin, "backups", "sec-hardened").await;
    assert_eq!(condition(&cluster, "WorkloadConfigured").status, "True");
    assert!(
        cluster
            .status
            .unwrap()
            .conditions
            .iter()
            .all(|c| c.type_ != "SecurityRisk"),
        "no SecurityRisk under Hardened"
    );

    // Back to Development: the pods' policy goes, SecurityRisk comes.
    kube.kubectl_ok(
        &[
            "-n",
            "backups",
            "patch",
            "openbaocluster",
            "sec-hardened",
            "--type=merge",
            "-p",
            r#"{"spec": {"profile": "Development"}}"#,
        ],
        None,
    );
    wait_for("the OpenBao pods' policy to go", || async {
        policies
            .get_opt("sec-hardened")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    let clusters: Api<OpenBaoCluster> = Api::namespaced(admin.clone(), "backups");
    let risk = wait_for("SecurityRisk", || async {
        let cluster = clusters.get("sec-hardened").await.ok()?;
        let conditions = cluster.status?.conditions;
        conditions.into_iter().find(|c| c.type_ == "SecurityRisk")
    })
    .await;
    assert_eq!(risk.status, "True");
    assert!(
        risk.message.ends_with("Hardened would refuse: none"),
        "{}",
        risk.message
    );

    let refused = manifest(
        "sec-refused",
        "http://169.254.169.254/latest",
        "tokenSecretRef: {name: backup-token}",
    );
    kube.apply(&refused);
    let cluster = with_conditions(admin, "backups", "sec-refused").await;
    let configured = condition(&cluster, "BackupConfigured");
    assert_eq!(configured.reason, "InvalidSpec");
    for field in [
        "spec.backup.tokenSecretRef: the Hardened profile takes no static token",
        "spec.backup.target.endpoint `http://169.254.169.254/latest` is plain HTTP",
        "spec.backup.target.endpoint `http://169.254.169.254/latest`: 169.254.169.254 is link-local",
    ] {
        assert!(
            configured.message.contains(field),
            "{field}: {}",
            configured.message
        );
    }
    absent::<NetworkPolicy>(admin, "backups", "sec-refused-backup").await;
}

/// A Service that exists before the cluster whose generated name it has:
/// the operator does not take it over, and says so.
async fn objects_the_cluster_does_not_own_are_left_alone(kube: &KubeApiServer, admin: &Client) {
    let service = "apiVersion: v1\nkind: Service\nmetadata: {name: squat, namespace: backups}\nspec:\n  ports: [{port: 443, protocol: TCP}]\n";
    kube.apply(service);
    let manifest = "apiVersion: openbao.org/v1alpha1\nkind: OpenBaoCluster\nmetadata: {name: squat, namespace: backups}\nspec: {version: 2.4.1}\n";
    kube.apply(manifest);
    let cluster = with_conditions(admin, "backups", "squat").await;
    let workload = condition(&cluster, "WorkloadConfigured");
    assert_eq!(
        (workload.status.as_str(), workload.reason.as_str()),
        ("False", "NotOwned")
    );
    assert!(
        workload
            .message
            .starts_with("Service squat exists and this OpenBaoCluster does not own it"),
        "{}",
        workload.message
    );
    let service = Api::<Service>::namespaced(admin.clone(), "backups")
        .get("squat")
        .await
        .unwrap();
    assert!(service.owner_references().is_empty(), "not adopted");
    assert_eq!(service.spec.unwrap().ports.unwrap()[0].port, 443);
    absent::<StatefulSet>(admin, "backups", "squat").await;
}

/// Real OpenBao trusting the API server's ServiceAccount issuer, with the
/// documented roles bound to the backup and the restore ServiceAccounts by
/// JSON pointers.
async fn start_openbao(issuer: &JwtIssuer) -> Source {
    let role = |policy: &str| {
        json!({
            "role_type": "jwt",
            "user_claim": "sub",
            "bound_audiences": [AUDIENCE],
            "bound_claims": {
                "/kubernetes.io/namespace": "backups",
                "/kubernetes.io/serviceaccount/name": format!("it-{policy}-serviceaccount"),
            },
            "token_policies": [policy],
            "token_ttl": "5m",
        })
    };
    let mut spec = ClusterSpec::single();
    // Restores log in as their own ServiceAccount, with a role that may
    // restore; the backup ServiceAccount cannot.
    spec.jwt = Some(JwtAuth {
        keys: vec![issuer.public_key_pem()],
        roles: vec![
            ("backup".into(), role("backup")),
            ("restore".into(), role("restore")),
        ],
    });
    Source::with(spec, 3).await
}

async fn backup_cluster(kube: &KubeApiServer, admin: &Client, bucket: &Bucket) -> OpenBaoCluster {
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "s3-credentials", "namespace": "backups"},
        "stringData": {"accessKeyId": bucket.garage.access_key_id, "secretAccessKey": bucket.garage.secret_access_key},
    });
    kube.apply(&secret.to_string());
    // The cluster's TLS Secret: backup pods trust its CA.
    let tls = TestCa::generate();
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": "it-tls", "namespace": "backups"},
        "stringData": {"tls.crt": tls.server_cert_pem, "tls.key": tls.server_key_pem, "ca.crt": tls.ca_pem},
    });
    kube.apply(&secret.to_string());
    // The key backups sign their manifests with and restores check them by.
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "it-manifest-key", "namespace": "backups"},
        "data": {"key": ByteString(testkit::random::<32>().to_vec())},
    });
    kube.apply(&secret.to_string());
    let cluster = json!({
        "apiVersion": "openbao.org/v1alpha1", "kind": "OpenBaoCluster",
        "metadata": {"name": "it", "namespace": "backups"},
        "spec": {"replicas": 1, "version": "2.4.1", "upgrade": {"preUpgradeSnapshot": true}, "backup": {
            "schedule": "0 3 * * *",
            "executorImage": "openbao/backup-executor:v0.1.0",
            "jwtAuthRole": "backup",
            "manifestKeySecretRef": {"name": "it-manifest-key", "key": "key"},
            "target": {"endpoint": bucket.garage.endpoint, "bucket": bucket.name, "region": testkit::garage::REGION,
                       "pathPrefix": "clusters", "credentialsSecretRef": {"name": "s3-credentials"}},
        }},
    });
    kube.apply(&cluster.to_string());
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), "backups");
    wait_for("the backup ServiceAccount", || async {
        accounts.get_opt("it-backup-serviceaccount").await.unwrap()
    })
    .await;
    get_cluster(admin).await
}

/// Retention deletes 60 old backups, more than 4 KiB of keys and reasons:
/// the backup still counts as a success (the kubelet keeps only the last
/// 4 KiB of the result), and status and an event say what was deleted.
async fn retention_deleting_more_than_a_termination_message_holds(
    kube: &KubeApiServer,
    admin: &Client,
    bucket: &Bucket,
    openbao: &Source,
) {
    for i in 0..60 {
        let key = format!("clusters/backups/it/20200101T0000{i:02}.000Z-scheduled-{i:06x}.snap");
        for key in [format!("{key}.manifest.json"), key] {
            bucket
                .client
                .put_object()
                .bucket(&bucket.name)
                .key(key)
                .body(b"old".to_vec().into())
                .send()
                .await
                .unwrap();
        }
    }
    patch_cluster(kube, r#"{"spec":{"backup":{"retention":{"maxCount":2}}}}"#);
    let cluster = wait_for("retention in the spec", || async {
        let cluster = get_cluster(admin).await;
        cluster.spec.backup.as_ref()?.retention.as_ref()?;
        Some(cluster)
    })
    .await;
    let job = run_backup_job(
        kube,
        admin,
        &cluster,
        "manual-backup-retention",
        Some(&openbao.url()),
    )
    .await;
    let backup = recorded(admin, "it", &job).await;
    assert_eq!(
        backup.consecutive_failures, 0,
        "{:?}",
        backup.last_failure_reason
    );
    let retention = backup.last_retention.unwrap();
    assert_eq!(retention.backup_name, backup.last_backup_name.unwrap());
    assert_eq!(retention.deleted_count, 60);
    assert!(!retention.deleted.is_empty() && retention.deleted.len() <= 5);
    assert!(retention.deleted[0].starts_with("clusters/backups/it/20200101T0000"));
    let event = wait_for_event(admin, "RetentionApplied").await;
    assert!(
        event.note.unwrap().contains("deleted 60 backup(s)"),
        "the event counts them"
    );
    let left = bucket.keys().await;
    assert!(!left.iter().any(|k| k.contains("/20200101T")), "{left:?}");
    patch_cluster(kube, r#"{"spec":{"backup":{"retention":null}}}"#);
}

/// Transforms from ConfigMaps, the age identity from a Secret: a backup
/// Job streams through zstd then age, and the standard tools undo it.
async fn plugins_from_config_maps(
    kube: &KubeApiServer,
    admin: &Client,
    bucket: &Bucket,
    openbao: &Source,
) -> String {
    let dir = std::env::temp_dir().join(format!("openbao-backup-it-age-{}", std::process::id()));
    let (recipient, identity) = testkit::plugins::age_keypair(&dir);
    let maps: Api<ConfigMap> = Api::namespaced(admin.clone(), "backups");
    let mut digests = HashMap::new();
    for name in ["zstd", "age"] {
        let bytes = std::fs::read(testkit::plugins::plugin_path(name)).unwrap();
        digests.insert(name, sha256_hex(&bytes));
        let map: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": format!("{name}-plugin")},
        }))
        .unwrap();
        let map = ConfigMap {
            binary_data: Some([(format!("{name}.wasm"), ByteString(bytes))].into()),
            ..map
        };
        maps.create(&PostParams::default(), &map).await.unwrap();
    }
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "backup-age", "namespace": "backups"},
        "stringData": {"key.txt": std::fs::read_to_string(&identity).unwrap()},
    });
    kube.kubectl_ok(&["apply", "-f", "-"], Some(&secret.to_string()));
    let transforms = json!({"spec": {"backup": {"transforms": [
        {"configMapRef": {"name": "zstd-plugin", "key": "zstd.wasm"}, "sha256": digests["zstd"],
         "config": {"level": 3}},
        {"configMapRef": {"name": "age-plugin", "key": "age.wasm"}, "config": {"recipients": [recipient]},
         "secretConfig": [{"name": "identities", "secretKeyRef": {"name": "backup-age", "key": "key.txt"}}]},
    ]}}});
    patch_cluster(kube, &transforms.to_string());
    // age is not pinned: anyone who may edit its ConfigMap could swap it.
    let configured = wait_for("a warning about the unpinned plugin", || async {
        let configured = condition(&get_cluster(admin).await, "BackupConfigured");
        configured
            .message
            .contains("warning:")
            .then_some(configured)
    })
    .await;
    assert!(
        configured.message.contains(
            "warning: spec.backup.transforms[1].sha256 is not set: whoever can edit ConfigMap age-plugin"
        ) && !configured.message.contains("transforms[0]"),
        "{}",
        configured.message
    );
    let event = wait_for_event(admin, "SpecWarning").await;
    assert!(event.note.unwrap().contains("transforms[1].sha256"));
    let before = get_cluster(admin).await.status.unwrap().backup.unwrap();
    let cluster = get_cluster(admin).await;
    assert_eq!(cluster.spec.backup.as_ref().unwrap().transforms.len(), 2);
    // What this backup holds; the restore below brings it back.
    openbao
        .cluster
        .put_secret("app", json!({"v": "in the backup"}))
        .await;
    run_backup_job(
        kube,
        admin,
        &cluster,
        "manual-backup-plugins",
        Some(&openbao.url()),
    )
    .await;
    let backup = wait_for("the transformed backup in status", || async {
        let status = get_cluster(admin).await.status?.backup?;
        (status.last_backup_name != before.last_backup_name).then_some(status)
    })
    .await;
    assert_eq!(backup.consecutive_failures, 0);
    let key = backup.last_backup_name.unwrap();
    let stored = bucket.read(&key).await;
    assert_eq!(
        Some(sha256_hex(&stored)),
        backup.last_backup_sha256,
        "status names the stored object"
    );
    let plain = testkit::plugins::run_with_stdin(
        Command::new("sh").args([
            "-c",
            &format!("age -d -i {} | zstd -d -c", identity.display()),
        ]),
        stored,
    );
    let served = openbao.served().last().cloned().unwrap();
    assert_eq!(
        sha256_hex(&plain),
        served.sha256,
        "age -d | zstd -d gives the snapshot back"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&bucket.read(&format!("{key}.manifest.json")).await).unwrap();
    let chain: Vec<(&str, &str)> = manifest["transforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["sha256"].as_str().unwrap()))
        .collect();
    assert_eq!(
        chain,
        [
            ("zstd", digests["zstd"].as_str()),
            ("age", digests["age"].as_str())
        ]
    );
    std::fs::remove_dir_all(&dir).unwrap();
    key
}

/// An OpenBaoRestore of the newest backup (zstd then age): the operator
/// runs it once as a Job with the cluster's plugins and its JWT identity,
/// and OpenBao serves the data of the backup again.
async fn restore_through_the_operator(
    kube: &KubeApiServer,
    admin: &Client,
    openbao: &Source,
    key: &str,
) {
    let taken = openbao.served().last().cloned().unwrap();
    openbao
        .cluster
        .put_secret("app", json!({"v": "changed"}))
        .await;
    let done = run_restore(kube, admin, openbao, "restore-1", "latest").await;
    assert_eq!(done.phase, RestorePhase::Succeeded, "{:?}", done.message);
    assert_eq!(done.restored_key.as_deref(), Some(key));
    assert_eq!(done.restored_sha256.as_deref(), Some(taken.sha256.as_str()));
    assert_eq!(
        openbao.cluster.secret("app").await,
        Some(json!({"v": "in the backup"})),
        "OpenBao serves the backup's data"
    );
    assert_eq!(openbao.restore_requests(), 1);
    let event = wait_for_event_about(admin, "RestoreSucceeded", "restore-1").await;
    assert!(event.note.unwrap().contains(key));

    // Never twice: the finished restore keeps its Job and its status.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let restores: Api<OpenBaoRestore> = Api::namespaced(admin.clone(), "backups");
    assert_eq!(
        restores.get("restore-1").await.unwrap().status.unwrap(),
        done
    );
    assert_eq!(openbao.restore_requests(), 1);

    // A restore of a key that is not a backup fails, and says why.
    let failed = run_restore(
        kube,
        admin,
        openbao,
        "restore-2",
        "clusters/backups/it/nope.snap",
    )
    .await;
    assert_eq!(failed.phase, RestorePhase::Failed);
    let message = failed.message.unwrap();
    assert!(message.contains("not a complete backup"), "{message}");
    assert_eq!(failed.conditions[0].reason, "RestoreFailed");
    wait_for_event_about(admin, "RestoreFailed", "restore-2").await;
    assert_eq!(openbao.restore_requests(), 1, "OpenBao was not asked");
}

/// An OpenBao the operator does not run (`spec.external`): a real TLS
/// node the test started, addressed by its URL, trusted by the CA from a
/// Secret. No workload object is made for it; its backups (with
/// retention) and an OpenBaoRestore work as for any cluster, the Jobs
/// reaching OpenBao at the address the operator gave them.
async fn an_external_openbao_is_backed_up_and_restored(
    kube: &KubeApiServer,
    admin: &Client,
    bucket: &Bucket,
) {
    // The documented example, as applied at the start.
    let example = with_conditions(admin, "default", "external-cluster").await;
    assert_eq!(condition(&example, "WorkloadConfigured").reason, "External");
    absent::<StatefulSet>(admin, "default", "external-cluster").await;

    let ca = TestCa::generate();
    let mut spec = ClusterSpec::single().with_token(support::TOKEN, &["backup", "restore"]);
    spec.tls = Some(ca.clone());
    let bao = testkit::Cluster::start(spec).await;
    let url = bao.url().await;
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let port: i32 = url.rsplit(':').next().unwrap().parse().unwrap();
    for secret in [
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ext-ca", "namespace": "backups"},
               "stringData": {"bundle.pem": ca.ca_pem}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ext-token", "namespace": "backups"},
               "stringData": {"token": support::TOKEN}}),
    ] {
        kube.apply(&secret.to_string());
    }
    let cluster = json!({
        "apiVersion": "openbao.org/v1alpha1", "kind": "OpenBaoCluster",
        "metadata": {"name": "ext", "namespace": "backups"},
        "spec": {
            "external": {"addresses": [url], "caSecretRef": {"name": "ext-ca", "key": "bundle.pem"}},
            "backup": {
                "schedule": "0 3 * * *",
                "executorImage": "openbao/backup-executor:v0.1.0",
                "tokenSecretRef": {"name": "ext-token"},
                "retention": {"maxCount": 1},
                "target": {"endpoint": bucket.garage.endpoint, "bucket": bucket.name, "region": testkit::garage::REGION,
                           "pathPrefix": "external", "credentialsSecretRef": {"name": "s3-credentials"}},
            },
        },
    });
    kube.apply(&cluster.to_string());
    let clusters: Api<OpenBaoCluster> = Api::namespaced(admin.clone(), "backups");
    let ext = wait_for("the external cluster's conditions", || async {
        let cluster = clusters.get("ext").await.ok()?;
        let conditions = &cluster.status.as_ref()?.conditions;
        conditions
            .iter()
            .any(|c| c.type_ == "BackupConfigured")
            .then_some(cluster)
    })
    .await;
    let workload = condition(&ext, "WorkloadConfigured");
    assert_eq!(
        (workload.status.as_str(), workload.reason.as_str()),
        ("True", "External"),
        "{}",
        workload.message
    );
    let status = ext.status.clone().unwrap();
    assert!(status.version.is_none() && status.upgrade.is_none());
    assert!(status.conditions.iter().all(|c| c.type_ != "Upgraded"));

    // No workload: nothing under the names the workload would have (the
    // PodDisruptionBudget is policy/v1, which this 1.20 server does not
    // serve; the scripted reconcile test shows it is never applied).
    absent::<StatefulSet>(admin, "backups", "ext").await;
    absent::<Service>(admin, "backups", "ext").await;
    absent::<Service>(admin, "backups", "ext-internal").await;
    absent::<ConfigMap>(admin, "backups", "ext-config").await;
    absent::<ServiceAccount>(admin, "backups", "ext").await;
    absent::<Role>(admin, "backups", "ext-service-registration").await;
    absent::<RoleBinding>(admin, "backups", "ext-service-registration").await;
    // Backup pods may reach the external OpenBao by its port.
    let policy = Api::<NetworkPolicy>::namespaced(admin.clone(), "backups")
        .get("ext-backup")
        .await
        .unwrap();
    let egress = policy.spec.unwrap().egress.unwrap();
    assert!(
        egress.iter().any(|rule| rule.to.is_none()
            && rule.ports.iter().flatten().any(|p| p.port
                == Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(port)))),
        "{egress:?}"
    );

    // Two backups, retention keeping one; then a restore of the newest.
    let mut keys = Vec::new();
    for (i, value) in ["first", "second"].into_iter().enumerate() {
        bao.put_secret("app", json!({"v": value})).await;
        let job = run_backup_job(kube, admin, &ext, &format!("ext-backup-{i}"), None).await;
        let backup = recorded(admin, "ext", &job).await;
        assert_eq!(
            backup.consecutive_failures, 0,
            "{:?}",
            backup.last_failure_reason
        );
        keys.push(backup.last_backup_name.unwrap());
    }
    assert!(keys[1].starts_with("external/backups/ext/"), "{keys:?}");
    let stored: Vec<String> = bucket
        .keys()
        .await
        .into_iter()
        .filter(|k| k.starts_with("external/") && k.ends_with(".snap"))
        .collect();
    assert_eq!(stored, [keys[1].clone()], "retention kept the newest only");

    bao.put_secret("app", json!({"v": "changed"})).await;
    let restore =
        json!({"cluster": "ext", "key": "latest", "tokenSecretRef": {"name": "ext-token"}});
    let done = run_restore_spec(kube, admin, None, "ext-restore", restore).await;
    assert_eq!(done.phase, RestorePhase::Succeeded, "{:?}", done.message);
    assert_eq!(done.restored_key.as_deref(), Some(keys[1].as_str()));
    assert_eq!(
        bao.secret("app").await,
        Some(json!({"v": "second"})),
        "the external OpenBao serves the backup's data"
    );
    the_disaster_recovery_runbook(kube, admin, bucket, bao, &ca, &keys[1]).await;
}

/// docs/restore.md's runbook: the cluster `ext` is lost (its OpenBao gone,
/// its resource deleted); a new cluster `ext-new` comes up with the same
/// seal key; a preview of the old cluster's latest backup, a restore
/// refused without `allowOtherCluster`, then the restore; the data written
/// before the loss is read back from the new cluster. Last, the drill that
/// confirms it: `ext-new` is external, which drills refuse (no image to
/// run a throwaway of), so the test runs what a drill Job runs,
/// `openbao-backup drill`, on the newest backup of the restored data into
/// a fresh OpenBao with the seal key.
async fn the_disaster_recovery_runbook(
    kube: &KubeApiServer,
    admin: &Client,
    bucket: &Bucket,
    old: testkit::Cluster,
    ca: &TestCa,
    latest: &str,
) {
    assert_eq!(old.secret("app").await, Some(json!({"v": "second"})));
    let seal_key = old.seal_key.clone();
    drop(old);
    kube.kubectl_ok(&["delete", "openbaocluster", "ext", "-n", "backups"], None);
    assert!(
        bucket.keys().await.iter().any(|k| k == latest),
        "the backups outlive their cluster"
    );

    let mut spec = ClusterSpec::single().with_token(support::TOKEN, &["backup", "restore"]);
    spec.tls = Some(ca.clone());
    spec.seal_key = Some(seal_key.clone());
    let new = testkit::Cluster::start(spec).await;
    new.put_secret("app", json!({"v": "new and empty"})).await;
    let cluster = json!({
        "apiVersion": "openbao.org/v1alpha1", "kind": "OpenBaoCluster",
        "metadata": {"name": "ext-new", "namespace": "backups"},
        "spec": {
            "external": {"addresses": [new.url().await], "caSecretRef": {"name": "ext-ca", "key": "bundle.pem"}},
            "backup": {
                "schedule": "0 3 * * *",
                "executorImage": "openbao/backup-executor:v0.1.0",
                "tokenSecretRef": {"name": "ext-token"},
                "target": {"endpoint": bucket.garage.endpoint, "bucket": bucket.name, "region": testkit::garage::REGION,
                           "pathPrefix": "external", "credentialsSecretRef": {"name": "s3-credentials"}},
            },
        },
    });
    kube.apply(&cluster.to_string());
    let clusters: Api<OpenBaoCluster> = Api::namespaced(admin.clone(), "backups");
    wait_for("the new cluster's conditions", || async {
        let cluster = clusters.get("ext-new").await.ok()?;
        let conditions = &cluster.status.as_ref()?.conditions;
        conditions
            .iter()
            .any(|c| c.type_ == "BackupConfigured")
            .then_some(())
    })
    .await;

    let recover = async |name: &str, extra: serde_json::Value| {
        let mut spec = json!({"cluster": "ext-new", "sourceCluster": "ext", "key": "latest",
                              "tokenSecretRef": {"name": "ext-token"}});
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        run_restore_spec(kube, admin, None, name, spec).await
    };
    // The preview: the old cluster's newest backup, found under its
    // prefix; foreign, so a restore would be refused; nothing sent.
    let preview = recover("recover-preview", json!({"preview": true})).await;
    assert_eq!(
        preview.phase,
        RestorePhase::Previewed,
        "{:?}",
        preview.message
    );
    let finding = |status: &OpenBaoRestoreStatus, check: &str| {
        status
            .preview
            .iter()
            .find(|f| f.check == check)
            .cloned()
            .unwrap_or_else(|| panic!("no {check} in {:?}", status.preview))
    };
    let cluster = finding(&preview, "cluster");
    assert_eq!(
        (cluster.verdict.as_str(), cluster.forced_by.as_deref()),
        ("refuse", Some("spec.allowOtherCluster")),
        "{cluster:?}"
    );
    assert!(
        cluster
            .message
            .contains("a backup of cluster backups/ext, not backups/ext-new")
    );
    assert_eq!(
        finding(&preview, "seal").verdict,
        "warn",
        "another cluster id"
    );
    assert_eq!(finding(&preview, "version").verdict, "ok");
    let message = preview.message.clone().unwrap();
    assert!(
        message.contains(latest) && message.contains("give spec.allowOtherCluster"),
        "{message}"
    );
    wait_for_event_about(admin, "RestorePreviewed", "recover-preview").await;
    assert_eq!(new.secret("app").await, Some(json!({"v": "new and empty"})));

    // Without allowOtherCluster a restore fails naming the field.
    let refused = recover("recover-refused", json!({})).await;
    assert_eq!(refused.phase, RestorePhase::Failed);
    let reason = refused.message.unwrap();
    assert!(
        reason.contains("give spec.allowOtherCluster if that is meant"),
        "{reason}"
    );
    assert_eq!(new.secret("app").await, Some(json!({"v": "new and empty"})));

    // The restore: the data written before the loss, read back.
    let done = recover("recover", json!({"allowOtherCluster": true})).await;
    assert_eq!(done.phase, RestorePhase::Succeeded, "{:?}", done.message);
    assert_eq!(done.restored_key.as_deref(), Some(latest));
    assert_eq!(
        new.secret("app").await,
        Some(json!({"v": "second"})),
        "the new cluster serves the lost cluster's data"
    );
    // Check: the new cluster took over the old one's keys and cluster id.
    let check = recover(
        "recover-check",
        json!({"preview": true, "allowOtherCluster": true}),
    )
    .await;
    assert_eq!(check.phase, RestorePhase::Previewed, "{:?}", check.message);
    let seal = finding(&check, "seal");
    assert_eq!(seal.verdict, "ok", "{seal:?}");
    assert!(
        finding(&check, "raft").message.contains("goes back")
            || finding(&check, "raft")
                .message
                .contains("at the backup's Raft index")
    );

    // The drill: a backup of the restored data (under the new cluster's
    // own prefix), restored into a throwaway with the seal key, unsealed
    // at its Raft index, the secret read back with a token of that data.
    let ext_new = clusters.get("ext-new").await.unwrap();
    let job = run_backup_job(kube, admin, &ext_new, "ext-new-backup-0", None).await;
    let backup = recorded(admin, "ext-new", &job).await;
    let newest = backup
        .last_backup_name
        .unwrap_or_else(|| panic!("{:?}", backup.last_failure_reason));
    let throwaway = testkit::openbao::Node::start_throwaway(&seal_key)
        .await
        .unwrap();
    let token = bucket.dir.join("drill-admin.token");
    std::fs::write(&token, testkit::openbao::ADMIN_TOKEN).unwrap();
    let s3 = bucket.dir.join("s3");
    let spool = bucket.dir.join("drill-spool");
    let args = [
        "drill",
        "--openbao-addr",
        &throwaway.url,
        "--token-file",
        token.to_str().unwrap(),
        "--endpoint",
        &bucket.garage.endpoint,
        "--region",
        testkit::garage::REGION,
        "--bucket",
        &bucket.name,
        "--credentials-dir",
        s3.to_str().unwrap(),
        "--path-prefix",
        "external",
        "--cluster",
        "ext-new",
        "--namespace",
        "backups",
        "--canary-path",
        "secret/data/app",
        "--canary-key",
        "v",
        "--spool-dir",
        spool.to_str().unwrap(),
    ]
    .map(String::from);
    let drill = support::run_cli(&args, &[]).await;
    assert!(drill.ok(), "{}", drill.all_output());
    let result = &drill.result;
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(
        result["key"],
        newest.as_str(),
        "the restored data's newest backup"
    );
    assert_eq!(result["canary"], "secret/data/app");
    assert!(
        result["recoverySeconds"].as_f64().unwrap() > 0.0,
        "{result}"
    );
    let read = reqwest::Client::new()
        .get(format!("{}/v1/secret/data/app", throwaway.url))
        .header("X-Vault-Token", testkit::openbao::ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(
        read["data"]["data"],
        json!({"v": "second"}),
        "the drill's throwaway serves the data written before the loss"
    );
    throwaway.stop();
}

/// The workload is owned by the cluster; a new version waits for its
/// pre-upgrade backup Job (run here as the kubelet, through the cluster's
/// plugins), then the pod is replaced. The test plays the StatefulSet
/// controller: it reports the StatefulSet's revision and makes its pods.
async fn upgrade_through_the_operator(
    kube: &KubeApiServer,
    admin: &Client,
    openbao: &Source,
) -> String {
    let cluster = get_cluster(admin).await;
    let uid = cluster.uid().unwrap();
    let statefulsets: Api<StatefulSet> = Api::namespaced(admin.clone(), "backups");
    let owned = |meta: &ObjectMeta| {
        let owner = &meta.owner_references.as_ref().unwrap()[0];
        owner.uid == uid && owner.controller == Some(true)
    };
    let sts = wait_for("the StatefulSet", || async {
        statefulsets.get_opt("it").await.unwrap()
    })
    .await;
    assert!(owned(&sts.metadata));
    let image = |sts: &StatefulSet| {
        sts.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .image
            .clone()
            .unwrap()
    };
    assert_eq!(image(&sts), "openbao/openbao:2.4.1");
    let services: Api<Service> = Api::namespaced(admin.clone(), "backups");
    for name in ["it", "it-internal"] {
        assert!(owned(&services.get(name).await.unwrap().metadata), "{name}");
    }
    let config = Api::<ConfigMap>::namespaced(admin.clone(), "backups")
        .get("it-config")
        .await
        .unwrap();
    assert!(owned(&config.metadata));
    assert!(
        config.data.unwrap()["config.json"].contains("https://it-0.it-internal.backups.svc:8200")
    );
    let account = Api::<ServiceAccount>::namespaced(admin.clone(), "backups")
        .get("it")
        .await
        .unwrap();
    assert!(owned(&account.metadata));
    let role = Api::<Role>::namespaced(admin.clone(), "backups")
        .get("it-service-registration")
        .await
        .unwrap();
    assert!(
        owned(&role.metadata),
        "granted by the operator's own rights"
    );
    let binding = Api::<RoleBinding>::namespaced(admin.clone(), "backups")
        .get("it-service-registration")
        .await
        .unwrap();
    assert!(owned(&binding.metadata));
    let status = wait_for("the workload in status", || async {
        let status = get_cluster(admin).await.status?;
        (status.version.as_deref() == Some("2.4.1")).then_some(status)
    })
    .await;
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "WorkloadConfigured" && c.status == "True")
    );
    play_statefulset_controller(admin, "it-a").await;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "backups");
    make_openbao_pod(&pods, &sts, "it-a").await;

    // A new version: the pre-upgrade backup Job comes first, and the
    // StatefulSet keeps 2.4.1 while it has not succeeded.
    patch_cluster(kube, r#"{"spec":{"version":"2.4.2"}}"#);
    let jobs: Api<Job> = Api::namespaced(admin.clone(), "backups");
    let job = wait_for("the pre-upgrade Job", || async {
        let list = jobs.list(&ListParams::default()).await.unwrap();
        list.items
            .into_iter()
            .find(|j| j.name_any().starts_with("it-pre-upgrade-"))
    })
    .await;
    let upgrade = wait_for("the upgrade in status", || async {
        get_cluster(admin).await.status?.upgrade
    })
    .await;
    assert_eq!(upgrade.phase, UpgradePhase::BackingUp);
    assert_eq!(
        upgrade.pre_upgrade_job.as_deref(),
        Some(job.name_any().as_str())
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        image(&statefulsets.get("it").await.unwrap()),
        "openbao/openbao:2.4.1",
        "the gate holds"
    );
    assert_eq!(
        condition(&get_cluster(admin).await, "Upgraded").reason,
        "PreUpgradeBackup"
    );

    run_job(kube, admin, &job, Some(&openbao.url())).await;
    let upgrade = wait_for("the rollout", || async {
        let upgrade = get_cluster(admin).await.status?.upgrade?;
        (upgrade.phase == UpgradePhase::RollingOut).then_some(upgrade)
    })
    .await;
    let key = upgrade.pre_upgrade_backup_key.unwrap();
    assert!(key.contains("-pre-upgrade-"), "{key}");
    let sts = statefulsets.get("it").await.unwrap();
    assert_eq!(image(&sts), "openbao/openbao:2.4.2");

    // The new template: the operator replaces the pod, and the new one
    // (made by the "controller") completes the upgrade.
    play_statefulset_controller(admin, "it-b").await;
    wait_for("the old pod to be replaced", || async {
        pods.get_opt("it-0").await.unwrap().is_none().then_some(())
    })
    .await;
    make_openbao_pod(&pods, &sts, "it-b").await;
    let status = wait_for("the upgrade to complete", || async {
        let status = get_cluster(admin).await.status?;
        (status.upgrade.as_ref()?.phase == UpgradePhase::Completed).then_some(status)
    })
    .await;
    assert_eq!(status.version.as_deref(), Some("2.4.2"));
    assert_eq!(
        status.upgrade.unwrap().pre_upgrade_backup_key.as_deref(),
        Some(key.as_str())
    );
    wait_for_event(admin, "UpgradeCompleted").await;
    key
}

/// What the StatefulSet controller reports once it has seen the template.
async fn play_statefulset_controller(admin: &Client, revision: &str) {
    let statefulsets: Api<StatefulSet> = Api::namespaced(admin.clone(), "backups");
    let mut sts = serde_json::to_value(statefulsets.get("it").await.unwrap()).unwrap();
    sts["status"] = json!({"replicas": 1, "observedGeneration": sts["metadata"]["generation"],
                           "updateRevision": revision, "currentRevision": revision});
    statefulsets
        .replace_status(
            "it",
            &PostParams::default(),
            &serde_json::from_value(sts).unwrap(),
        )
        .await
        .unwrap();
}

/// Pod `it-0` from the StatefulSet's template, ready, labelled active as
/// OpenBao's service registration would.
async fn make_openbao_pod(pods: &Api<Pod>, sts: &StatefulSet, revision: &str) {
    let template = sts.spec.clone().unwrap().template;
    let mut spec = template.spec.unwrap();
    // The controller's volume for the claim template.
    spec.volumes.get_or_insert_with(Vec::new).push(Volume {
        name: "data".into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: "data-it-0".into(),
            read_only: None,
        }),
        ..Default::default()
    });
    let mut meta = template.metadata.unwrap();
    meta.name = Some("it-0".into());
    let labels = meta.labels.get_or_insert_with(Default::default);
    labels.insert("controller-revision-hash".into(), revision.into());
    labels.insert("openbao-active".into(), "true".into());
    let pod = pods
        .create(
            &PostParams::default(),
            &Pod {
                metadata: meta,
                spec: Some(spec),
                status: None,
            },
        )
        .await
        .unwrap();
    let mut ready = serde_json::to_value(&pod).unwrap();
    ready["status"] =
        json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]});
    pods.replace_status(
        "it-0",
        &PostParams::default(),
        &serde_json::from_value(ready).unwrap(),
    )
    .await
    .unwrap();
}

/// Applies an OpenBaoRestore of `key` for the cluster `it`, waits for the
/// operator's one Job (the restore Running meanwhile), runs it as the
/// kubelet, and returns the final status.
async fn run_restore(
    kube: &KubeApiServer,
    admin: &Client,
    openbao: &Source,
    name: &str,
    key: &str,
) -> OpenBaoRestoreStatus {
    let spec = json!({"cluster": "it", "key": key, "jwtAuthRole": "restore"});
    run_restore_spec(kube, admin, Some(&openbao.url()), name, spec).await
}

/// [`run_restore`] of any spec; `openbao` as for [`run_job`].
async fn run_restore_spec(
    kube: &KubeApiServer,
    admin: &Client,
    openbao: Option<&str>,
    name: &str,
    spec: serde_json::Value,
) -> OpenBaoRestoreStatus {
    let restore = json!({
        "apiVersion": "openbao.org/v1alpha1", "kind": "OpenBaoRestore",
        "metadata": {"name": name, "namespace": "backups"},
        "spec": spec,
    });
    kube.apply(&restore.to_string());
    let restores: Api<OpenBaoRestore> = Api::namespaced(admin.clone(), "backups");
    let jobs: Api<Job> = Api::namespaced(admin.clone(), "backups");
    let job_name = format!("{name}-restore");
    let job = wait_for(&format!("the Job of {name}"), || async {
        jobs.get_opt(&job_name).await.unwrap()
    })
    .await;
    // The operator creates the Job, then writes the status.
    let running = wait_for(&format!("the status of {name}"), || async {
        restores.get(name).await.unwrap().status
    })
    .await;
    assert_eq!(running.phase, RestorePhase::Running);
    assert_eq!(running.job_name.as_deref(), Some(job_name.as_str()));

    run_job(kube, admin, &job, openbao).await;
    wait_for(&format!("{name} to finish"), || async {
        let status = restores.get(name).await.ok()?.status?;
        status.phase.is_final().then_some(status)
    })
    .await
}

/// Backup pods placed by `spec.backup.pod`, ServiceAccounts with an IRSA
/// role, a manual backup asked for with `openbao.org/backup-now` (once per
/// value), and a Job named as the CronJob controller names its Jobs,
/// which stays `scheduled`. Returns the last backup's key.
async fn pods_that_fit_and_backups_by_annotation(
    kube: &KubeApiServer,
    admin: &Client,
    openbao: &Source,
    pre_upgrade_key: &str,
) -> String {
    let before = get_cluster(admin).await;
    assert_eq!(
        before.status.as_ref().unwrap().observed_generation,
        before.metadata.generation
    );
    let ready = condition(&before, "Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "CronJobUnavailable"),
        "no scheduled backups on this server: not Ready"
    );
    let listed = kube.kubectl_ok(&["-n", "backups", "get", "openbao", "-o", "name"], None);
    assert!(
        String::from_utf8_lossy(&listed).contains("openbaocluster.openbao.org/it"),
        "the openbao category lists clusters"
    );
    kube.kubectl_ok(&["-n", "backups", "get", "obc", "it"], None);

    patch_cluster(
        kube,
        r#"{"spec":{"backup":{
            "pod":{"tolerations":[{"key":"dedicated","operator":"Equal","value":"backup","effect":"NoSchedule"}],
                   "nodeSelector":{"pool":"backup"},
                   "labels":{"team":"vault"},
                   "annotations":{"cluster-autoscaler.kubernetes.io/safe-to-evict":"false"},
                   "resources":{"requests":{"cpu":"250m","memory":"300Mi"}}},
            "serviceAccount":{"annotations":{"eks.amazonaws.com/role-arn":"arn:aws:iam::111122223333:role/openbao-backup"}}}}}"#,
    );
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), "backups");
    for name in ["it-backup-serviceaccount", "it-restore-serviceaccount"] {
        let account = wait_for("the IRSA annotation", || async {
            let account = accounts.get(name).await.unwrap();
            account
                .annotations()
                .contains_key("eks.amazonaws.com/role-arn")
                .then_some(account)
        })
        .await;
        assert_eq!(
            account.annotations()["eks.amazonaws.com/role-arn"],
            "arn:aws:iam::111122223333:role/openbao-backup",
            "{name}"
        );
    }

    // The annotation asks for a backup: one Job, kind manual.
    kube.kubectl_ok(
        &[
            "-n",
            "backups",
            "annotate",
            "openbaocluster",
            "it",
            "openbao.org/backup-now=first",
        ],
        None,
    );
    let job_name = operator::names::backup_now_job_name("it", "first");
    let jobs: Api<Job> = Api::namespaced(admin.clone(), "backups");
    let job = wait_for("the backup-now Job", || async {
        jobs.get_opt(&job_name).await.unwrap()
    })
    .await;
    let template = job.spec.as_ref().unwrap().template.clone();
    let meta = template.metadata.unwrap();
    assert_eq!(meta.labels.as_ref().unwrap()["team"], "vault");
    assert_eq!(
        meta.annotations.unwrap()["cluster-autoscaler.kubernetes.io/safe-to-evict"],
        "false"
    );
    let pod = template.spec.unwrap();
    let toleration = &pod.tolerations.as_ref().unwrap()[0];
    assert_eq!(
        (
            toleration.key.as_deref(),
            toleration.value.as_deref(),
            toleration.effect.as_deref()
        ),
        (Some("dedicated"), Some("backup"), Some("NoSchedule")),
        "as the API server stores it"
    );
    assert_eq!(pod.node_selector.unwrap()["pool"], "backup");
    assert_eq!(
        pod.containers[0]
            .resources
            .as_ref()
            .unwrap()
            .requests
            .as_ref()
            .unwrap()["memory"]
            .0,
        "300Mi"
    );
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("it-backup-serviceaccount")
    );
    let started = wait_for_event(admin, "ManualBackupStarted").await;
    assert!(started.note.unwrap().contains(&job_name));
    run_job(kube, admin, &job, Some(&openbao.url())).await;
    let backup = recorded(admin, "it", &job).await;
    assert_eq!(
        backup.consecutive_failures, 0,
        "{:?}",
        backup.last_failure_reason
    );
    assert_eq!(backup.backup_now_handled.as_deref(), Some("first"));
    let manual_key = backup.last_backup_name.unwrap();
    assert!(manual_key.contains("-manual-"), "{manual_key}");
    assert_ne!(manual_key, pre_upgrade_key);

    // A Job named as the CronJob controller names its Jobs stays scheduled.
    let cluster = get_cluster(admin).await;
    let job = run_backup_job(
        kube,
        admin,
        &cluster,
        "it-backup-29410560",
        Some(&openbao.url()),
    )
    .await;
    let backup = recorded(admin, "it", &job).await;
    let key = backup.last_backup_name.unwrap();
    assert!(key.contains("-scheduled-"), "{key}");

    // The handled value is not asked again.
    let names: Vec<String> = jobs
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|j| j.name_any())
        .filter(|n| n.starts_with("it-backup-now-"))
        .collect();
    assert_eq!(names, [job_name]);
    key
}

/// `spec.notifications` with three webhooks: a receiver that checks the
/// signature, one that accepts and never answers (until released), and a
/// closed port. A backup failure and a success reach the first, signed;
/// neither backup's status waits for the others, whose failures show in
/// the metrics and `status.notifications`, by host only.
async fn notifications_are_signed_and_never_slow_a_backup(
    kube: &KubeApiServer,
    admin: &Client,
    openbao: &Source,
    operator: &Operator,
    previous_key: &str,
) -> String {
    let hmac_key = testkit::random::<32>().to_vec();
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "it-webhook", "namespace": "backups"},
        "data": {"hmac": ByteString(hmac_key.clone())},
    });
    kube.apply(&secret.to_string());
    let receiver = Receiver::start(true).await;
    let hanging = Receiver::start(false).await;
    let closed = testkit::free_port();
    let token = "tok-in-the-query-7f3a";
    let spec = json!({"spec": {"notifications": [
        {"url": format!("http://127.0.0.1:{}/hook?token={token}", receiver.port),
         "secretRef": {"name": "it-webhook", "key": "hmac"}},
        {"url": format!("http://127.0.0.1:{}/hook", hanging.port), "events": ["backup"]},
        {"url": format!("http://127.0.0.1:{closed}/hook"), "onlyFailures": true},
    ]}});
    patch_cluster(kube, &spec.to_string());
    let cluster = wait_for("the webhooks in the spec", || async {
        let cluster = get_cluster(admin).await;
        (cluster.spec.notifications.len() == 3).then_some(cluster)
    })
    .await;

    // A failure: recorded at once, although two receivers never answer.
    openbao.set_fault(Fault::Status(503));
    let job = run_backup_job(kube, admin, &cluster, "notified-1", Some(&openbao.url())).await;
    let since = Instant::now();
    let failed = recorded(admin, "it", &job).await;
    let took = since.elapsed();
    assert!(failed.consecutive_failures >= 1);
    assert!(
        took < Duration::from_secs(10),
        "the status waited {took:?} for a receiver (the delivery timeout is 10s)"
    );
    openbao.set_fault(Fault::None);
    let event = receiver
        .event(&format!("backup-{}", job.uid().unwrap()))
        .await;
    assert_eq!(
        event.header("content-type"),
        Some("application/cloudevents+json; charset=utf-8")
    );
    let body: serde_json::Value = serde_json::from_slice(&event.body).unwrap();
    assert_eq!(body["specversion"], "1.0");
    assert_eq!(body["type"], "org.openbao.backup.failed");
    assert_eq!(
        body["source"],
        "/apis/openbao.org/v1alpha1/namespaces/backups/openbaoclusters/it"
    );
    assert_eq!(body["subject"], "jobs/notified-1");
    assert_eq!(body["data"]["trigger"], "manual");
    assert!(
        body["data"]["cause"].as_str().unwrap().contains("503"),
        "{body}"
    );
    event.assert_signed_with(&hmac_key);

    // A success: the key, size and digest the status has.
    let job = run_backup_job(kube, admin, &cluster, "notified-2", Some(&openbao.url())).await;
    let since = Instant::now();
    let backup = recorded(admin, "it", &job).await;
    let took = since.elapsed();
    assert_eq!(
        backup.consecutive_failures, 0,
        "{:?}",
        backup.last_failure_reason
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
    let key = backup.last_backup_name.clone().unwrap();
    assert_ne!(key, previous_key);
    let event = receiver
        .event(&format!("backup-{}", job.uid().unwrap()))
        .await;
    event.assert_signed_with(&hmac_key);
    let body: serde_json::Value = serde_json::from_slice(&event.body).unwrap();
    assert_eq!(body["type"], "org.openbao.backup.succeeded");
    assert_eq!(body["data"]["key"], key.as_str());
    assert_eq!(body["data"]["size"], backup.last_backup_size.unwrap());
    assert_eq!(
        body["data"]["sha256"],
        backup.last_backup_sha256.clone().unwrap().as_str()
    );
    assert!(body["data"]["durationSeconds"].as_f64().unwrap() > 0.0);
    assert!(body["time"].as_str().unwrap().ends_with('Z'));

    // The closed port's failure: retried, then given up, in the metrics
    // and the status (host only).
    let status = wait_for("the closed port given up in status", || async {
        let status = get_cluster(admin).await.status?;
        let closed = status.notifications.iter().find(|n| n.webhook == 2)?;
        (closed.last_result == DeliveryResult::Failed).then_some(status)
    })
    .await;
    let closed_status = &status.notifications[2];
    assert_eq!(closed_status.host, format!("127.0.0.1:{closed}"));
    assert_eq!(closed_status.consecutive_failures, 5, "{closed_status:?}");
    assert!(
        closed_status
            .last_error
            .as_deref()
            .unwrap()
            .starts_with("cannot connect"),
        "{closed_status:?}"
    );
    assert_eq!(
        status.notifications[0].last_result,
        DeliveryResult::Delivered
    );
    assert_eq!(
        status.notifications[0].host,
        format!("127.0.0.1:{}", receiver.port)
    );
    let shown = serde_json::to_string(&status).unwrap();
    assert!(!shown.contains(token), "{shown}");
    let metrics = operator.metrics().await;
    assert!(
        metrics.contains(r#"openbao_backup_notifications_total{result="failed"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"openbao_backup_notifications_total{result="retried"}"#),
        "{metrics}"
    );

    // Released, the silent receiver answers: every delivery ends (two
    // events each to the first two webhooks, one to the third).
    hanging.release();
    wait_for("every delivery to end", || async {
        let metrics = operator.metrics().await;
        let count = |result: &str| -> u64 {
            let series = format!("openbao_backup_notifications_total{{result=\"{result}\"}} ");
            metrics
                .lines()
                .find_map(|line| line.strip_prefix(&series)?.parse().ok())
                .unwrap_or(0)
        };
        (count("delivered") + count("failed") == 5).then_some(())
    })
    .await;
    assert!(hanging.received().len() >= 2);
    patch_cluster(kube, r#"{"spec":{"notifications":null}}"#);
    wait_for("the cluster without webhooks reconciled", || async {
        let cluster = get_cluster(admin).await;
        (cluster.spec.notifications.is_empty()
            && cluster.status?.observed_generation == cluster.metadata.generation)
            .then_some(())
    })
    .await;
    assert!(
        !operator.logs().contains(token),
        "no webhook URL query in the logs"
    );
    key
}

/// Where the harness keeps a PersistentVolumeClaim's files: they outlive
/// the pods that mount it.
fn claim_dir(claim: &str) -> PathBuf {
    std::env::temp_dir().join(format!("openbao-backup-pvc-{}-{claim}", std::process::id()))
}

/// `spec.backup.target.volume`: the backup Job writes to the claim (mounted
/// at its subPath) the same keys and manifest as to a bucket, status
/// records it, and an OpenBaoRestore reads it back from the claim.
/// Returns the backup's key.
async fn backups_to_a_volume(kube: &KubeApiServer, admin: &Client, openbao: &Source) -> String {
    patch_cluster(
        kube,
        r#"{"spec":{"backup":{"target":{"bucket":null,"endpoint":null,"region":null,
            "volume":{"persistentVolumeClaim":{"claimName":"backups"},"subPath":"openbao"}}}}}"#,
    );
    let cluster = wait_for("the volume target", || async {
        let cluster = get_cluster(admin).await;
        cluster
            .spec
            .backup
            .as_ref()?
            .target
            .volume
            .is_some()
            .then_some(cluster)
    })
    .await;
    openbao
        .cluster
        .put_secret("app", json!({"v": "on the volume"}))
        .await;
    let job = run_backup_job(kube, admin, &cluster, "volume-backup", Some(&openbao.url())).await;
    let backup = recorded(admin, "it", &job).await;
    assert_eq!(
        backup.consecutive_failures, 0,
        "{:?}",
        backup.last_failure_reason
    );
    let key = backup.last_backup_name.unwrap();
    let stored = claim_dir("backups").join("openbao").join(&key);
    let bytes = std::fs::read(&stored).unwrap();
    assert_eq!(
        sha256_hex(&bytes),
        backup.last_backup_sha256.unwrap(),
        "{}",
        stored.display()
    );
    assert!(
        claim_dir("backups")
            .join("openbao")
            .join(format!("{key}.manifest.json"))
            .is_file()
    );

    openbao
        .cluster
        .put_secret("app", json!({"v": "changed"}))
        .await;
    let done = run_restore(kube, admin, openbao, "restore-volume", "latest").await;
    assert_eq!(done.phase, RestorePhase::Succeeded, "{:?}", done.message);
    assert_eq!(done.restored_key.as_deref(), Some(key.as_str()));
    assert_eq!(
        openbao.cluster.secret("app").await,
        Some(json!({"v": "on the volume"})),
        "OpenBao serves the data backed up to the volume"
    );
    key
}

/// `spec.backup.copies`: a backup Job copies the backup to a second Garage
/// bucket with its own credentials Secret, reads it back and verifies it;
/// `status.backup.copies` and the metrics say so, the copy holds the same
/// bytes, and an OpenBaoRestore whose `spec.source` is the copy's bucket
/// restores from it (the manifest, signed, checked with the cluster's key).
/// Returns the backup's key.
async fn copies_are_verified_and_restore(
    kube: &KubeApiServer,
    admin: &Client,
    openbao: &Source,
    operator: &Operator,
) -> String {
    let copy = Bucket::new("operator-copy").await;
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "copy-credentials", "namespace": "backups"},
        "stringData": {"accessKeyId": copy.garage.access_key_id, "secretAccessKey": copy.garage.secret_access_key},
    });
    kube.apply(&secret.to_string());
    let target = json!({"bucket": copy.name, "endpoint": copy.garage.endpoint,
        "region": testkit::garage::REGION, "credentialsSecretRef": {"name": "copy-credentials"}});
    patch_cluster(
        kube,
        &json!({"spec": {"backup": {"copies": [target]}}}).to_string(),
    );
    let cluster = wait_for("the copy in the spec", || async {
        let cluster = get_cluster(admin).await;
        (!cluster.spec.backup.as_ref()?.copies.is_empty()).then_some(cluster)
    })
    .await;
    openbao
        .cluster
        .put_secret("app", json!({"v": "in the copy"}))
        .await;
    let job = run_backup_job(kube, admin, &cluster, "copy-backup", Some(&openbao.url())).await;
    let backup = recorded(admin, "it", &job).await;
    assert_eq!(
        backup.consecutive_failures, 0,
        "{:?}",
        backup.last_failure_reason
    );
    let key = backup.last_backup_name.clone().unwrap();
    assert_eq!(backup.copies.len(), 1, "{:?}", backup.copies);
    let status = &backup.copies[0];
    assert_eq!(status.target, format!("s3://{}", copy.name));
    assert_eq!(status.last_result, "Verified", "{:?}", status.last_error);
    assert_eq!(status.last_verified_key.as_deref(), Some(key.as_str()));
    assert!(status.last_verified_time.is_some());
    assert_eq!(
        copy.digest(&key).await.1,
        backup.last_backup_sha256.clone().unwrap(),
        "the copy holds the backup's bytes under the backup's key"
    );
    let metrics = operator.metrics().await;
    assert!(
        metrics.contains(&format!(r#"openbao_backup_copies_total{{namespace="backups",cluster="it",target="s3://{}",result="verified"}} 1"#, copy.name)),
        "{metrics}"
    );

    // Restore from the copy: its bucket as the source.
    openbao
        .cluster
        .put_secret("app", json!({"v": "changed"}))
        .await;
    let mut source = target.clone();
    source["pathPrefix"] = json!("clusters");
    let spec =
        json!({"cluster": "it", "key": "latest", "jwtAuthRole": "restore", "source": source});
    let done = run_restore_spec(kube, admin, Some(&openbao.url()), "restore-copy", spec).await;
    assert_eq!(done.phase, RestorePhase::Succeeded, "{:?}", done.message);
    assert_eq!(done.restored_key.as_deref(), Some(key.as_str()));
    assert_eq!(
        openbao.cluster.secret("app").await,
        Some(json!({"v": "in the copy"})),
        "OpenBao serves the data restored from the copy"
    );
    key
}

/// A webhook receiver on 127.0.0.1: HTTP/1.1 requests, kept as they came.
/// `answers`: it answers 200 at once; else it answers only once released.
struct Receiver {
    port: u16,
    requests: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
    release: std::sync::Arc<tokio::sync::Semaphore>,
}

#[derive(Clone, Debug)]
struct Received {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Checks the signature as a receiver would: HMAC-SHA256 of the body.
    fn assert_signed_with(&self, key: &[u8]) {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
        mac.update(&self.body);
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(
            self.header("x-openbao-backup-signature"),
            Some(expected.as_str())
        );
    }
}

impl Receiver {
    async fn start(answers: bool) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let release = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
        if answers {
            release.add_permits(tokio::sync::Semaphore::MAX_PERMITS);
        }
        let (kept, gate) = (requests.clone(), release.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let (kept, gate) = (kept.clone(), gate.clone());
                tokio::spawn(async move {
                    let mut data = Vec::new();
                    let mut buffer = [0u8; 4096];
                    let (head, length) = loop {
                        let Ok(read) = socket.read(&mut buffer).await else {
                            return;
                        };
                        if read == 0 {
                            return;
                        }
                        data.extend_from_slice(&buffer[..read]);
                        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&data[..end]).to_string();
                            let length = head
                                .lines()
                                .find_map(|l| {
                                    let (name, value) = l.split_once(':')?;
                                    name.eq_ignore_ascii_case("content-length")
                                        .then(|| value.trim().parse::<usize>().ok())?
                                })
                                .unwrap_or(0);
                            data.drain(..end + 4);
                            break (head, length);
                        }
                    };
                    while data.len() < length {
                        let Ok(read) = socket.read(&mut buffer).await else {
                            return;
                        };
                        if read == 0 {
                            return;
                        }
                        data.extend_from_slice(&buffer[..read]);
                    }
                    let headers = head
                        .lines()
                        .skip(1)
                        .filter_map(|l| {
                            let (name, value) = l.split_once(':')?;
                            Some((name.trim().to_string(), value.trim().to_string()))
                        })
                        .collect();
                    kept.lock().unwrap().push(Received {
                        headers,
                        body: data,
                    });
                    let _ = gate.acquire().await;
                    let _ = socket
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                });
            }
        });
        Self {
            port,
            requests,
            release,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.requests.lock().unwrap().clone()
    }

    /// The request carrying the CloudEvent `id`.
    async fn event(&self, id: &str) -> Received {
        wait_for(&format!("the event {id} at the receiver"), || async {
            self.received().into_iter().find(|r| {
                serde_json::from_slice::<serde_json::Value>(&r.body)
                    .is_ok_and(|body| body["id"] == id)
            })
        })
        .await
    }

    fn release(&self) {
        self.release
            .add_permits(tokio::sync::Semaphore::MAX_PERMITS);
    }
}

/// The backup status of cluster `name` once it records the result of `job`.
async fn recorded(admin: &Client, name: &str, job: &Job) -> BackupStatus {
    let clusters: Api<OpenBaoCluster> = Api::namespaced(admin.clone(), "backups");
    let what = format!("Job {} in the status of {name}", job.name_any());
    wait_for(&what, || async {
        let status = clusters.get(name).await.ok()?.status?.backup?;
        status.recorded_jobs.contains(&job.uid()?).then_some(status)
    })
    .await
}

async fn get_cluster(admin: &Client) -> OpenBaoCluster {
    Api::<OpenBaoCluster>::namespaced(admin.clone(), "backups")
        .get("it")
        .await
        .unwrap()
}

/// Creates a Job from the cluster's CronJob template (as `kubectl create
/// job --from=cronjob/...`), runs its container as the kubelet would, and
/// records the pod's termination message and the Job's end.
async fn run_backup_job(
    kube: &KubeApiServer,
    admin: &Client,
    cluster: &OpenBaoCluster,
    name: &str,
    openbao: Option<&str>,
) -> Job {
    let settings = OperatorSettings {
        jwt_audience: AUDIENCE.into(),
        executor_images: settings::executor_images(settings::DEFAULT_EXECUTOR_IMAGES),
        ..Default::default()
    };
    let cronjob = backup::cronjob(cluster, cluster.spec.backup.as_ref().unwrap(), &settings);
    let template = cronjob.spec.unwrap().job_template;
    let mut meta = template.metadata.unwrap_or_default();
    meta.name = Some(name.into());
    // What `kubectl create job --from=cronjob/...` sets; the CronJob
    // controller's own Jobs (named `<cronjob>-<minutes>`) have none.
    if !contract::executor::cronjob::scheduled_by(&cronjob.metadata.name.clone().unwrap(), name) {
        meta.annotations = Some(
            [(
                "cronjob.kubernetes.io/instantiate".to_string(),
                "manual".to_string(),
            )]
            .into(),
        );
    }
    let jobs: Api<Job> = Api::namespaced(admin.clone(), "backups");
    let job = jobs
        .create(
            &PostParams::default(),
            &Job {
                metadata: meta,
                spec: template.spec,
                status: None,
            },
        )
        .await
        .unwrap();
    run_job(kube, admin, &job, openbao).await;
    job
}

/// Restore drills (`spec.backup.restoreTest`) on a cluster of their own,
/// `drill`, whose OpenBao is a real node with a static seal key. After each
/// backup the operator starts a throwaway OpenBao pod, which the test plays
/// the kubelet for: a real `bao server` with the configuration the operator
/// rendered and the pod's Secrets, its addresses moved to a loopback
/// address of its own that the test reports as the pod's IP (there is no
/// pod network here), serving the cluster's TLS certificate; then the
/// drill Job runs against it by that IP under the Service's name. The
/// first drill passes and records its figures; the second, of a backup
/// tampered with in Garage, fails at the verify step with the throwaway
/// never reached (a TCP relay in front of it counts connections). Nothing
/// of either drill is left.
async fn restore_drills_through_the_operator(
    kube: &KubeApiServer,
    admin: &Client,
    bucket: &Bucket,
    operator: &Operator,
) {
    let source = Source::start(1).await;
    source
        .cluster
        .put_secret("canary", json!({"value": "still-here"}))
        .await;
    let tls = TestCa::for_names(&["drill.backups.svc", "127.0.0.2", "127.0.0.3"]);
    for secret in [
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
               "metadata": {"name": "drill-tls", "namespace": "backups"},
               "stringData": {"tls.crt": tls.server_cert_pem, "tls.key": tls.server_key_pem, "ca.crt": tls.ca_pem}}),
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "drill-seal", "namespace": "backups"},
               "data": {"key": ByteString(source.cluster.seal_key.clone())}}),
        // A token of the backed-up data: for the backups, and the canary.
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "drill-token", "namespace": "backups"},
               "stringData": {"token": testkit::openbao::ADMIN_TOKEN}}),
    ] {
        kube.apply(&secret.to_string());
    }
    // A webhook that hears of drills only.
    let receiver = Receiver::start(true).await;
    let cluster = json!({
        "apiVersion": "openbao.org/v1alpha1", "kind": "OpenBaoCluster",
        "metadata": {"name": "drill", "namespace": "backups"},
        "spec": {"replicas": 1, "version": "2.4.1", "tls": {"secretName": "drill-tls"},
          "seal": {"static": {"secretKeyRef": {"name": "drill-seal", "key": "key"}}},
          "notifications": [{"url": format!("http://127.0.0.1:{}/hook", receiver.port),
                             "events": ["restoreTest"]}],
          "backup": {
            "schedule": "0 3 * * *",
            "executorImage": "openbao/backup-executor:v0.1.0",
            "tokenSecretRef": {"name": "drill-token"},
            "target": {"endpoint": bucket.garage.endpoint, "bucket": bucket.name, "region": testkit::garage::REGION,
                       "pathPrefix": "clusters", "credentialsSecretRef": {"name": "s3-credentials"}},
            "restoreTest": {"everyBackups": 1, "canary": {
                "path": "secret/data/canary", "key": "value", "tokenSecretRef": {"name": "drill-token"}}},
        }},
    });
    kube.apply(&cluster.to_string());
    let clusters: Api<OpenBaoCluster> = Api::namespaced(admin.clone(), "backups");
    let cluster = wait_for("drill's RestoreTested condition", || async {
        let cluster = clusters.get("drill").await.ok()?;
        let tested = cluster
            .status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == "RestoreTested")?;
        (tested.reason == "NoBackupYet").then_some(cluster)
    })
    .await;

    // A backup, then a drill that passes.
    run_backup_job(kube, admin, &cluster, "drill-backup-1", Some(&source.url())).await;
    let (throwaway, pod) = play_throwaway(kube, admin, "127.0.0.2", 8200, &tls).await;
    let job = drill_job(admin, &pod).await;
    let running = drill_status(admin).await;
    run_job(kube, admin, &job, None).await;
    let tested = drill_recorded(admin, running).await;
    let key = clusters
        .get("drill")
        .await
        .unwrap()
        .status
        .unwrap()
        .backup
        .unwrap()
        .last_backup_name
        .unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&bucket.read(&format!("{key}.manifest.json")).await).unwrap();
    assert_eq!(
        tested.last_result.as_deref(),
        Some("Succeeded"),
        "{tested:?}"
    );
    assert_eq!(tested.backup_key.as_deref(), Some(key.as_str()));
    assert!(tested.raft_index.unwrap() >= manifest["raft"]["index"].as_u64().unwrap());
    assert!(tested.recovery_seconds.unwrap() > 0.0);
    assert!(tested.recovery_duration.unwrap().ends_with('s'));
    assert!(tested.last_success_time.is_some() && tested.failed_step.is_none());
    assert!(
        tested
            .message
            .unwrap()
            .contains("canary secret/data/canary read back"),
        "the canary was read"
    );
    let tested_condition = condition(&clusters.get("drill").await.unwrap(), "RestoreTested");
    assert_eq!(
        (
            tested_condition.status.as_str(),
            tested_condition.reason.as_str()
        ),
        ("True", "RestoreTestSucceeded")
    );
    let event = wait_for_event_about(admin, "RestoreTestSucceeded", "drill").await;
    assert!(event.note.unwrap().contains(&key));
    // The webhook hears of it, by the drill Job's uid.
    let heard = receiver
        .event(&format!("restoreTest-{}", job.uid().unwrap()))
        .await;
    let body: serde_json::Value = serde_json::from_slice(&heard.body).unwrap();
    assert_eq!(body["type"], "org.openbao.restoretest.succeeded", "{body}");
    assert_eq!(body["subject"], format!("jobs/{}", job.name_any()));
    assert_eq!(body["data"]["key"], key.as_str());
    assert_eq!(
        body["data"]["durationSeconds"].as_f64(),
        tested.recovery_seconds
    );
    assert!(
        body["data"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("Raft index {}", tested.raft_index.unwrap())),
        "{body}"
    );
    nothing_of_drills_left(admin).await;
    throwaway.stop();
    let metrics = operator.metrics().await;
    for line in [
        r#"openbao_backup_restore_tests_total{namespace="backups",cluster="drill",result="success"} 1"#,
        r#"openbao_backup_restore_tests_total{namespace="backups",cluster="drill",result="failure"} 0"#,
        r#"openbao_backup_restore_test_last_success_timestamp_seconds{namespace="backups",cluster="drill"}"#,
        r#"openbao_backup_restore_test_recovery_seconds{namespace="backups",cluster="drill"}"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }

    // The next backup is tampered with in the bucket before its drill runs.
    run_backup_job(kube, admin, &cluster, "drill-backup-2", Some(&source.url())).await;
    let (throwaway, pod) = play_throwaway(kube, admin, "127.0.0.3", 8300, &tls).await;
    let relay = CountingRelay::start("127.0.0.3:8200", "127.0.0.3:8300").await;
    let key = clusters
        .get("drill")
        .await
        .unwrap()
        .status
        .unwrap()
        .backup
        .unwrap()
        .last_backup_name
        .unwrap();
    let mut object = bucket.read(&key).await;
    let middle = object.len() / 2;
    object[middle] ^= 0x40;
    bucket
        .client
        .put_object()
        .bucket(&bucket.name)
        .key(&key)
        .body(object.into())
        .send()
        .await
        .unwrap();
    let job = drill_job(admin, &pod).await;
    let running = drill_status(admin).await;
    run_job(kube, admin, &job, None).await;
    let tested = drill_recorded(admin, running).await;
    assert_eq!(tested.last_result.as_deref(), Some("Failed"), "{tested:?}");
    assert_eq!(tested.failed_step.as_deref(), Some("verify"));
    let message = tested.message.unwrap();
    assert!(message.starts_with("the verify step failed: "), "{message}");
    assert!(tested.last_success_time.is_some(), "the last success stays");
    assert_eq!(relay.connections(), 0, "the throwaway was never reached");
    assert_eq!(throwaway.health().await, 501, "the throwaway stays fresh");
    let failed = condition(&clusters.get("drill").await.unwrap(), "RestoreTested");
    assert_eq!(
        (failed.status.as_str(), failed.reason.as_str()),
        ("False", "RestoreTestFailed")
    );
    assert!(failed.message.contains("verify"), "{}", failed.message);
    wait_for_event_about(admin, "RestoreTestFailed", "drill").await;
    let heard = receiver
        .event(&format!("restoreTest-{}", job.uid().unwrap()))
        .await;
    let body: serde_json::Value = serde_json::from_slice(&heard.body).unwrap();
    assert_eq!(body["type"], "org.openbao.restoretest.failed", "{body}");
    assert_eq!(body["data"]["cause"], message.as_str());
    // Drills only (the backups went unheard), each once.
    let kinds: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["type"].to_string())
        .collect();
    assert_eq!(
        kinds,
        [
            "\"org.openbao.restoretest.succeeded\"",
            "\"org.openbao.restoretest.failed\""
        ]
    );
    nothing_of_drills_left(admin).await;
    throwaway.stop();
    let metrics = operator.metrics().await;
    assert!(metrics.contains(
        r#"openbao_backup_restore_tests_total{namespace="backups",cluster="drill",result="failure"} 1"#
    ), "{metrics}");
    a_scheduled_drill_runs_on_time(kube, admin, bucket, &tls, &key).await;
}

/// The drills move to `schedule: "* * * * *"`: with no backup in between,
/// a drill starts at the first minute after the last one ended (the
/// operator decides that from the schedule itself), passes and records
/// its figures. `key`, the newest backup, was tampered with; it is put
/// right first.
async fn a_scheduled_drill_runs_on_time(
    kube: &KubeApiServer,
    admin: &Client,
    bucket: &Bucket,
    tls: &TestCa,
    key: &str,
) {
    let mut object = bucket.read(key).await;
    let middle = object.len() / 2;
    object[middle] ^= 0x40;
    bucket
        .client
        .put_object()
        .bucket(&bucket.name)
        .key(key)
        .body(object.into())
        .send()
        .await
        .unwrap();
    let clusters: Api<OpenBaoCluster> = Api::namespaced(admin.clone(), "backups");
    let before = clusters.get("drill").await.unwrap().status.unwrap();
    let last = before.restore_test.clone().unwrap().last_time.unwrap();
    let last = chrono::DateTime::from_timestamp(last.0.as_second(), 0).unwrap();
    kube.kubectl_ok(
        &[
            "-n",
            "backups",
            "patch",
            "openbaocluster",
            "drill",
            "--type=merge",
            "-p",
            r#"{"spec":{"backup":{"restoreTest":{"everyBackups":null,"schedule":"* * * * *"}}}}"#,
        ],
        None,
    );
    // Due at the first whole minute after the last drill, not before:
    // slept towards it, so that waiting for the pod (60 s) covers it.
    let due = last + chrono::Duration::seconds(60 - last.timestamp() % 60);
    let early = (due - chrono::Utc::now() - chrono::Duration::seconds(5)).to_std();
    tokio::time::sleep(early.unwrap_or_default()).await;
    let (throwaway, pod) = play_throwaway(kube, admin, "127.0.0.2", 8200, tls).await;
    let created = pod.metadata.creation_timestamp.clone().unwrap();
    let created = chrono::DateTime::from_timestamp(created.0.as_second(), 0).unwrap();
    assert!(
        created >= due && created - due < chrono::Duration::seconds(20),
        "the scheduled drill started at {created}, due at {due}"
    );
    let job = drill_job(admin, &pod).await;
    let running = drill_status(admin).await;
    run_job(kube, admin, &job, None).await;
    let tested = drill_recorded(admin, running).await;
    assert_eq!(
        tested.last_result.as_deref(),
        Some("Succeeded"),
        "{tested:?}"
    );
    assert_eq!(tested.backup_key.as_deref(), Some(key));
    assert!(tested.recovery_seconds.unwrap() > 0.0 && tested.raft_index.is_some());
    let after = clusters.get("drill").await.unwrap().status.unwrap();
    assert_eq!(
        after.backup.unwrap().last_backup_name,
        before.backup.unwrap().last_backup_name,
        "no backup ran in between: the schedule started the drill"
    );
    nothing_of_drills_left(admin).await;
    throwaway.stop();
}

const DRILL_SELECTOR: &str = "app.kubernetes.io/component=restore-drill";

/// Plays the kubelet for the throwaway pod of the drill that starts:
/// runs `bao server` with the configuration of its ConfigMap and its
/// Secrets as files, its listener moved to `ip:port` (no pod network
/// here: the test's stand-in for the pod's own address), and reports the
/// pod Running at `ip`.
async fn play_throwaway(
    kube: &KubeApiServer,
    admin: &Client,
    ip: &str,
    port: u16,
    tls: &TestCa,
) -> (testkit::openbao::Node, Pod) {
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "backups");
    let pod = wait_for("a throwaway pod", || async {
        let list = pods
            .list(&ListParams::default().labels(DRILL_SELECTOR))
            .await
            .ok()?;
        list.items
            .into_iter()
            .find(|p| !p.labels().contains_key("job-name"))
    })
    .await;
    let spec = pod.spec.clone().unwrap();
    let root = std::env::temp_dir().join(format!(
        "openbao-backup-kubelet-{}-{}",
        pod.name_any(),
        std::process::id()
    ));
    let mounts = volumes_as_files(kube, admin, &spec, &root).await;
    // The configuration, as its ConfigMap volume holds it.
    let (config_dir, config_file) = spec
        .volumes
        .iter()
        .flatten()
        .find_map(|volume| {
            let items = &volume.config_map.as_ref()?.items;
            let file = items
                .iter()
                .flatten()
                .find(|item| item.key == "config.json")
                .map_or("config.json", |item| item.path.as_str());
            Some((root.join(&volume.name), file))
        })
        .expect("the throwaway's configuration");
    let local = |path: &str| -> String {
        for (mount, dir) in &mounts {
            if let Some(rest) = path.strip_prefix(mount.as_str()) {
                return format!("{}{rest}", dir.display());
            }
        }
        panic!("{path} is on no volume of the throwaway pod")
    };
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(config_dir.join(config_file)).unwrap()).unwrap();
    let tcp = &mut config["listener"][0]["tcp"];
    tcp["address"] = json!(format!("{ip}:{port}"));
    tcp["cluster_address"] = json!(format!("{ip}:{}", port + 1));
    for file in ["tls_cert_file", "tls_key_file"] {
        tcp[file] = json!(local(tcp[file].as_str().unwrap()));
    }
    let seal = &mut config["seal"]["static"]["current_key"];
    let key_file = seal.as_str().unwrap().strip_prefix("file://").unwrap();
    *seal = json!(format!("file://{}", local(key_file)));
    let node_dir = root.join("openbao");
    config["storage"]["raft"]["path"] = json!(node_dir.join("data"));
    let env = [
        ("BAO_API_ADDR", format!("https://{ip}:{port}")),
        ("BAO_CLUSTER_ADDR", format!("https://{ip}:{}", port + 1)),
        ("BAO_RAFT_NODE_ID", pod.name_any()),
    ];
    let node = testkit::openbao::Node::launch(
        &node_dir,
        &config,
        format!("https://{ip}:{port}"),
        Some(tls),
        &env,
    )
    .unwrap();
    let mut status = serde_json::to_value(&pod).unwrap();
    status["status"] = json!({"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]});
    pods.replace_status(
        &pod.name_any(),
        &PostParams::default(),
        &serde_json::from_value(status).unwrap(),
    )
    .await
    .unwrap();
    (node, pod)
}

/// The drill Job the operator creates once its throwaway runs.
async fn drill_job(admin: &Client, throwaway: &Pod) -> Job {
    let jobs: Api<Job> = Api::namespaced(admin.clone(), "backups");
    wait_for("the drill Job", || async {
        jobs.get_opt(&throwaway.name_any()).await.ok()?
    })
    .await
}

/// `drill`'s `status.restoreTest` (while a drill runs: its Job exists
/// only once the status names it).
async fn drill_status(admin: &Client) -> operator::api::RestoreTestStatus {
    let clusters: Api<OpenBaoCluster> = Api::namespaced(admin.clone(), "backups");
    let status = clusters.get("drill").await.unwrap().status.unwrap();
    let tested = status.restore_test.unwrap();
    assert!(tested.running.is_some(), "{tested:?}");
    tested
}

/// `status.restoreTest` once the result of the drill `running` names is in.
async fn drill_recorded(
    admin: &Client,
    running: operator::api::RestoreTestStatus,
) -> operator::api::RestoreTestStatus {
    let clusters: Api<OpenBaoCluster> = Api::namespaced(admin.clone(), "backups");
    wait_for("the drill's result in status", || async {
        let tested = clusters.get("drill").await.ok()?.status?.restore_test?;
        (tested.running.is_none() && tested != running).then_some(tested)
    })
    .await
}

/// No pod, Job or ConfigMap of any drill is left.
async fn nothing_of_drills_left(admin: &Client) {
    let params = ListParams::default().labels(DRILL_SELECTOR);
    wait_for("the drill's objects to go", || async {
        let pods = Api::<Pod>::namespaced(admin.clone(), "backups")
            .list(&params)
            .await
            .ok()?;
        let jobs = Api::<Job>::namespaced(admin.clone(), "backups")
            .list(&params)
            .await
            .ok()?;
        let maps = Api::<ConfigMap>::namespaced(admin.clone(), "backups")
            .list(&params)
            .await
            .ok()?;
        (pods.items.is_empty() && jobs.items.is_empty() && maps.items.is_empty()).then_some(())
    })
    .await;
}

/// A TCP relay from `listen` to `upstream` that counts the connections it
/// accepted.
struct CountingRelay {
    connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingRelay {
    async fn start(listen: &str, upstream: &str) -> Self {
        let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = connections.clone();
        let upstream = upstream.to_string();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Self { connections, task }
    }

    fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for CountingRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Plays the kubelet and the Job controller for `job`: runs its container
/// as a process, then records the pod's termination and the Job's end.
/// `openbao` replaces the Job's OpenBao addresses (cluster DNS names this
/// test cannot resolve); None keeps them (an external OpenBao's).
async fn run_job(kube: &KubeApiServer, admin: &Client, job: &Job, openbao: Option<&str>) {
    let name = job.name_any();
    let name = name.as_str();
    let jobs: Api<Job> = Api::namespaced(admin.clone(), "backups");
    let pod_template = job.spec.as_ref().unwrap().template.clone();
    let pod_spec = pod_template.spec.clone().unwrap();
    let container = pod_spec.containers[0].clone();

    // Volumes as files, where the container expects them.
    let root = std::env::temp_dir().join(format!(
        "openbao-backup-kubelet-{name}-{}",
        std::process::id()
    ));
    let mounts = volumes_as_files(kube, admin, &pod_spec, &root).await;
    let local = |path: &str| -> String {
        if path == "/dev/termination-log" {
            return root.join("termination-log").display().to_string();
        }
        for (mount, dir) in &mounts {
            if let Some(rest) = path.strip_prefix(mount.as_str()) {
                return format!("{}{rest}", dir.display());
            }
        }
        path.to_string()
    };
    // The Downward API: `metadata.labels['<key>']` of the pod, whose
    // labels are the template's (the Job API adds `job-name`).
    let pod_labels = pod_template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let downward = |path: &str| -> String {
        let key = path
            .strip_prefix("metadata.labels['")
            .and_then(|rest| rest.strip_suffix("']"))
            .unwrap_or_else(|| panic!("the harness reads pod labels only, not {path}"));
        pod_labels.get(key).cloned().unwrap_or_default()
    };
    // The copies' JSON names mounted directories too.
    let copies = |json: &str| -> String {
        let mut copies: Vec<contract::executor::copies::CopyTarget> =
            serde_json::from_str(json).unwrap();
        for copy in &mut copies {
            for path in [&mut copy.credentials_dir, &mut copy.directory]
                .into_iter()
                .flatten()
            {
                *path = local(path);
            }
        }
        serde_json::to_string(&copies).unwrap()
    };
    let mut env: Vec<(String, String)> = container
        .env
        .iter()
        .flatten()
        .map(|e| {
            let field = e.value_from.as_ref().and_then(|v| v.field_ref.as_ref());
            let value = match field {
                Some(field) => downward(&field.field_path),
                None if e.name == "BACKUP_COPIES" => copies(e.value.as_deref().unwrap()),
                None => local(e.value.as_deref().unwrap_or_default()),
            };
            (e.name.clone(), value)
        })
        .collect();
    // No cluster DNS here: the pods' addresses lead to the test's OpenBao.
    if let Some(openbao) = openbao {
        env.push(("OPENBAO_ADDR".into(), openbao.into()));
    }
    env.push(("OPENBAO_JWT_FILE".into(), local(DEFAULT_JWT_FILE)));
    // Plugin specs name files in the container too.
    let mut args = container.args.clone().unwrap_or_default();
    for i in 1..args.len() {
        if matches!(
            args[i - 1].as_str(),
            "--transform" | "--retention-plugin" | "--plugin"
        ) {
            let mut spec: PluginSpec = args[i].parse().unwrap();
            spec.file = local(spec.file.to_str().unwrap()).into();
            for path in spec.secret_files.values_mut() {
                *path = local(path.to_str().unwrap()).into();
            }
            args[i] = spec.to_string();
        }
    }
    let output = Command::new(env!("CARGO_BIN_EXE_openbao-backup"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .envs(env)
        .output()
        .unwrap();
    let message = kubelet_termination_message(&root.join("termination-log"));
    let exit_code = output.status.code().unwrap_or(1);
    std::fs::remove_dir_all(&root).unwrap();

    // The pod's record, as the kubelet leaves it.
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "backups");
    let mut pod = Pod {
        metadata: pod_template.metadata.clone().unwrap_or_default(),
        spec: Some(pod_spec.clone()),
        status: None,
    };
    pod.metadata.name = Some(format!("{name}-pod"));
    let pod = pods.create(&PostParams::default(), &pod).await.unwrap();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut pod_status = serde_json::to_value(&pod).unwrap();
    pod_status["status"] = json!({"phase": if exit_code == 0 { "Succeeded" } else { "Failed" }, "containerStatuses": [{
        "name": container.name, "image": container.image, "imageID": "", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": exit_code, "finishedAt": now, "message": message}},
    }]});
    pods.replace_status(
        &pod.name_any(),
        &PostParams::default(),
        &serde_json::from_value(pod_status).unwrap(),
    )
    .await
    .unwrap();

    // The Job's end, as the Job controller records it.
    let condition = if exit_code == 0 { "Complete" } else { "Failed" };
    let mut job_status = serde_json::to_value(job).unwrap();
    job_status["status"] = json!({
        "startTime": now, "conditions": [{"type": condition, "status": "True", "lastTransitionTime": now, "lastProbeTime": now}],
    });
    if exit_code == 0 {
        job_status["status"]["completionTime"] = json!(now);
        job_status["status"]["succeeded"] = json!(1);
    } else {
        job_status["status"]["failed"] = json!(1);
    }
    jobs.replace_status(
        name,
        &PostParams::default(),
        &serde_json::from_value(job_status).unwrap(),
    )
    .await
    .unwrap();
}

/// What the kubelet keeps of a termination-log file: its last 4096 bytes
/// (`tail.ReadAtMost(path, MaxContainerTerminationMessageLength)`).
fn kubelet_termination_message(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let kept = &bytes[bytes.len().saturating_sub(4096)..];
    String::from_utf8_lossy(kept).into_owned()
}

/// A Secret's or ConfigMap's keys as files: the listed items at their
/// paths, or every key under its own name.
/// Plays the kubelet for a pod's volumes: writes its Secrets, ConfigMaps
/// and projected ServiceAccount tokens as files under `root` (a claim's
/// under the claim's directory, which outlives the pod), and returns each
/// mount path of the first container with the directory standing for it.
async fn volumes_as_files(
    kube: &KubeApiServer,
    admin: &Client,
    pod_spec: &PodSpec,
    root: &Path,
) -> Vec<(String, PathBuf)> {
    let container = &pod_spec.containers[0];
    let mut mounts: Vec<(String, PathBuf)> = Vec::new();
    for volume in pod_spec.volumes.iter().flatten() {
        let mount = container
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == volume.name)
            .unwrap();
        // A claim's files stay; other volumes are the pod's.
        let dir = match &volume.persistent_volume_claim {
            Some(claim) => {
                claim_dir(&claim.claim_name).join(mount.sub_path.clone().unwrap_or_default())
            }
            None => root.join(&volume.name),
        };
        std::fs::create_dir_all(&dir).unwrap();
        if let Some(source) = &volume.secret {
            let secret = Api::<Secret>::namespaced(admin.clone(), "backups")
                .get(source.secret_name.as_ref().unwrap())
                .await
                .unwrap();
            let data = secret.data.unwrap_or_default();
            write_volume(&dir, data.into_iter().map(|(k, v)| (k, v.0)), &source.items);
        }
        if let Some(source) = &volume.config_map {
            let map = Api::<ConfigMap>::namespaced(admin.clone(), "backups")
                .get(&source.name)
                .await
                .unwrap();
            let binary = map.binary_data.unwrap_or_default().into_iter();
            let text = map.data.unwrap_or_default().into_iter();
            write_volume(
                &dir,
                binary
                    .map(|(k, v)| (k, v.0))
                    .chain(text.map(|(k, v)| (k, v.into_bytes()))),
                &source.items,
            );
        }
        if let Some(projected) = &volume.projected {
            for source in projected.sources.iter().flatten() {
                let token = source.service_account_token.as_ref().unwrap();
                let jwt = create_token(
                    kube,
                    "backups",
                    pod_spec.service_account_name.as_deref().unwrap(),
                    token.audience.as_deref(),
                );
                std::fs::write(dir.join(&token.path), jwt).unwrap();
            }
        }
        mounts.push((mount.mount_path.clone(), dir));
    }
    mounts
}

fn write_volume(
    dir: &Path,
    data: impl Iterator<Item = (String, Vec<u8>)>,
    items: &Option<Vec<KeyToPath>>,
) {
    let data: HashMap<String, Vec<u8>> = data.collect();
    match items {
        Some(items) => {
            for item in items {
                std::fs::write(dir.join(&item.path), &data[&item.key]).unwrap();
            }
        }
        None => {
            for (key, value) in data {
                std::fs::write(dir.join(key), value).unwrap();
            }
        }
    }
}

/// `kubectl patch` of the cluster `it` with a JSON merge patch.
fn patch_cluster(kube: &KubeApiServer, patch: &str) {
    kube.kubectl_ok(
        &[
            "-n",
            "backups",
            "patch",
            "openbaocluster",
            "it",
            "--type=merge",
            "-p",
            patch,
        ],
        None,
    );
}

fn create_token(
    kube: &KubeApiServer,
    namespace: &str,
    account: &str,
    audience: Option<&str>,
) -> String {
    let mut args = vec!["-n", namespace, "create", "token", account, "--duration=2h"];
    let audience_arg;
    if let Some(audience) = audience {
        audience_arg = format!("--audience={audience}");
        args.push(&audience_arg);
    }
    let output = kube.kubectl_ok(&args, None);
    String::from_utf8(output).unwrap().trim().to_string()
}

async fn lease_holder(admin: &Client) -> Option<String> {
    let lease = Api::<Lease>::namespaced(admin.clone(), OPERATOR_NS)
        .get_opt("openbao-backup-operator")
        .await
        .ok()??;
    lease.spec?.holder_identity
}

/// An event about the cluster `it`.
async fn wait_for_event(admin: &Client, reason: &str) -> Event {
    wait_for_event_about(admin, reason, "it").await
}

async fn wait_for_event_about(admin: &Client, reason: &str, object: &str) -> Event {
    let events: Api<Event> = Api::namespaced(admin.clone(), "backups");
    wait_for(&format!("a {reason} event"), || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items.into_iter().find(|e| {
            e.reason.as_deref() == Some(reason)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(object)
        })
    })
    .await
}

fn condition(
    cluster: &OpenBaoCluster,
    kind: &str,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    let conditions = cluster
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    conditions
        .into_iter()
        .find(|c| c.type_ == kind)
        .unwrap_or_else(|| panic!("no {kind} condition on {}", cluster.name_any()))
}

async fn client(kubeconfig: &Path) -> Client {
    let config = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(config, &Default::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

fn wait_until(mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The operator binary as a replica would run it in its Deployment.
struct Operator {
    child: Child,
    log: PathBuf,
    metrics_port: u16,
}

impl Operator {
    fn start(kubeconfig: &Path, name: &str) -> Self {
        let metrics_port = testkit::free_port();
        let log = kubeconfig.with_file_name(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_openbao-backup"))
            .arg("operator")
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", name)
            .env("POD_NAMESPACE", OPERATOR_NS)
            .env("METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
            .env("LOG_FORMAT", "json")
            .env("LOG_LEVEL", "info,operator=debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self {
            child,
            log,
            metrics_port,
        }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_for_log(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.logs().contains(text) {
            assert!(
                Instant::now() < deadline,
                "no {text:?} in the operator's log:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    async fn metrics(&self) -> String {
        let url = format!("http://127.0.0.1:{}/metrics", self.metrics_port);
        match reqwest::get(&url).await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// SIGTERM, as Kubernetes stops a pod; waits for the exit.
    fn terminate(&mut self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "the operator exits cleanly on SIGTERM: {status}\n{}",
            self.logs()
        );
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The scale run, by hand: `scripts/test --test operator scale -- --ignored
/// --nocapture`. 500 OpenBaoClusters; prints the time to steady state, the
/// operator's memory, and the API requests it makes once steady.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run by hand"]
async fn scale_500_clusters() {
    use futures_util::StreamExt;
    const CLUSTERS: usize = 500;
    const NAMESPACES: usize = 10;
    let issuer = JwtIssuer::generate();
    let kube = KubeApiServer::start(&issuer).unwrap_or_else(|e| panic!("{e}"));
    install(&kube);
    let admin = client(&kube.admin_kubeconfig()).await;
    let namespaces: String = (0..NAMESPACES)
        .map(|n| format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: scale-{n}}}\n---\n"))
        .collect();
    kube.kubectl_ok(&["apply", "-f", "-"], Some(&namespaces));
    let created = Instant::now();
    futures_util::stream::iter(0..CLUSTERS)
        .map(|i| {
            let admin = admin.clone();
            async move {
                let namespace = format!("scale-{}", i % NAMESPACES);
                let cluster: OpenBaoCluster = serde_json::from_value(json!({
                    "apiVersion": "openbao.org/v1alpha1", "kind": "OpenBaoCluster",
                    "metadata": {"name": format!("bao-{i}"), "namespace": namespace},
                    "spec": {"version": "2.4.1", "backup": {
                        "schedule": format!("{} 3 * * *", i % 60),
                        "executorImage": "openbao/backup-executor:v0.1.0",
                        "jwtAuthRole": "backup",
                        "target": {"bucket": "openbao-backups", "credentialsSecretRef": {"name": "s3-credentials"}},
                    }},
                }))
                .unwrap();
                Api::<OpenBaoCluster>::namespaced(admin, &namespace)
                    .create(&PostParams::default(), &cluster)
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    println!(
        "created {CLUSTERS} OpenBaoClusters in {:.1} s",
        created.elapsed().as_secs_f64()
    );

    let kubeconfig = kube.kubeconfig(
        "operator",
        &create_token(&kube, OPERATOR_NS, "openbao-backup-operator", None),
    );
    let all: Api<OpenBaoCluster> = Api::all(admin.clone());
    let configured = |list: &[OpenBaoCluster]| {
        list.iter()
            .filter(|c| c.status.as_ref().is_some_and(|s| !s.conditions.is_empty()))
            .count()
    };
    let mut operator = Operator::start(&kubeconfig, "scale");
    let started = Instant::now();
    loop {
        let list = all.list(&ListParams::default()).await.unwrap().items;
        if configured(&list) == CLUSTERS {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "not steady after 10 minutes: {} of {CLUSTERS} reconciled",
            configured(&list)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let steady_after = started.elapsed();
    let memory = process_memory(operator.child.id());
    println!(
        "steady state (every cluster reconciled and its status written) after {:.1} s",
        steady_after.as_secs_f64()
    );
    println!("operator memory at steady state: {memory}");

    // Once steady: nothing to do, so no writes.
    let versions = |list: Vec<OpenBaoCluster>| -> Vec<String> {
        list.into_iter()
            .map(|c| c.resource_version().unwrap())
            .collect()
    };
    let before = versions(all.list(&ListParams::default()).await.unwrap().items);
    let steady = steady_writes(&admin).await;
    let after = versions(all.list(&ListParams::default()).await.unwrap().items);
    let changed = before.iter().zip(&after).filter(|(a, b)| a != b).count();
    println!("in 60 s of steady state: {changed} clusters changed, API writes: {steady}");
    println!(
        "operator memory after 60 s steady: {}",
        process_memory(operator.child.id())
    );
    assert_eq!(changed, 0);

    // A restart with 500 clusters in place: a second operator process,
    // started once the first has stopped, reconciles them all again.
    operator.terminate();
    let before_restart = requests(&admin).await;
    let restarted = Operator::start(&kubeconfig, "scale-2");
    let started = Instant::now();
    restarted.wait_for_log("\"leading\"");
    // Every reconcile reads its cluster's StatefulSet: once each was read
    // and no new request came for 2 s, the pass is over.
    let mut last = BTreeMap::new();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "still reconciling after 5 minutes"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = requests(&admin).await;
        let read = Requests::between(&before_restart, &now).count("GET statefulsets");
        if read >= CLUSTERS as u64 && Requests::between(&last, &now).by_operator() == 0 {
            break;
        }
        last = now;
    }
    let restart = Requests::between(&before_restart, &last).writes();
    let after = versions(all.list(&ListParams::default()).await.unwrap().items);
    let changed = before.iter().zip(&after).filter(|(a, b)| a != b).count();
    println!(
        "restart: reconciled again within {:.1} s; API writes: {restart}; {changed} clusters changed; memory {}",
        started.elapsed().as_secs_f64() - 2.0,
        process_memory(restarted.child.id())
    );
    let steady_after_restart = steady_writes(&admin).await;
    println!(
        "in 60 s of steady state after the restart: API writes: {steady_after_restart}; memory {}",
        process_memory(restarted.child.id())
    );
    assert_eq!(changed, 0);
    assert_eq!(
        (
            steady.by_operator(),
            restart.by_operator(),
            steady_after_restart.by_operator()
        ),
        (0, 0, 0),
        "once steady, and after a restart, the operator writes nothing but its Lease"
    );
    let peak = peak_memory_kib(restarted.child.id());
    assert!(peak < 128 * 1024, "peak RSS {peak} KiB after the restart");
    kube.stop();
}

/// The writes in 60 s of a steady state.
async fn steady_writes(admin: &Client) -> Requests {
    let before = requests(admin).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    Requests::between(&before, &requests(admin).await).writes()
}

/// API requests the API server has served so far, by `VERB
/// resource[/subresource]` (`GET statefulsets`, `PUT
/// openbaoclusters/status`), and the HTTP code unless 2xx (`PUT
/// openbaoclusters/status 409`), from its own metrics.
async fn requests(admin: &Client) -> BTreeMap<String, u64> {
    let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = admin.request_text(request).await.unwrap();
    let mut counts = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (_, labels) = parse_series(series);
        let label = |name: &str| labels.get(name).cloned().unwrap_or_default();
        let resource = match label("subresource").as_str() {
            "" => label("resource"),
            sub => format!("{}/{sub}", label("resource")),
        };
        // Refusals (a 409 on a stale write, say) apart.
        let refused = match label("code").as_str() {
            code if code.starts_with('2') => String::new(),
            code => format!(" {code}"),
        };
        *counts
            .entry(format!("{} {resource}{refused}", label("verb")))
            .or_default() += value.parse::<f64>().unwrap_or(0.0) as u64;
    }
    counts
}

/// Requests served between two readings of `requests`, by verb and
/// resource.
struct Requests(BTreeMap<String, u64>);

impl Requests {
    fn between(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> Self {
        Self(
            after
                .iter()
                .map(|(key, n)| (key.clone(), n - before.get(key).copied().unwrap_or(0)))
                .filter(|(_, n)| *n > 0)
                .collect(),
        )
    }

    fn count(&self, key: &str) -> u64 {
        self.0.get(key).copied().unwrap_or(0)
    }

    /// The writes: POST, PUT, PATCH, server-side APPLY, DELETE.
    fn writes(self) -> Self {
        let write = |key: &str| {
            ["POST ", "PUT ", "PATCH ", "APPLY ", "DELETE "]
                .iter()
                .any(|verb| key.starts_with(verb))
        };
        Self(self.0.into_iter().filter(|(key, _)| write(key)).collect())
    }

    /// The operator's requests: all but the Lease's (leader election
    /// renews it every 2 s by design: counted apart) and those for no
    /// resource (this test's /metrics reads).
    fn by_operator(&self) -> u64 {
        self.0
            .iter()
            .filter(|(key, _)| !key.contains(" leases") && !key.ends_with(' '))
            .map(|(_, n)| n)
            .sum()
    }
}

impl std::fmt::Display for Requests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let leases: u64 = (self.0.iter())
            .filter(|(key, _)| key.contains(" leases"))
            .map(|(_, n)| n)
            .sum();
        write!(f, "{} besides the Lease (", self.by_operator())?;
        let others = (self.0.iter()).filter(|(key, _)| !key.contains(" leases"));
        let parts: Vec<String> = others.map(|(key, n)| format!("{key}: {n}")).collect();
        write!(f, "{}), Lease renewals {leases}", parts.join(", "))
    }
}

fn peak_memory_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    (status.lines())
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn process_memory(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l[name.len()..].trim().to_string())
            .unwrap_or_default()
    };
    format!("RSS {}, peak {}", field("VmRSS:"), field("VmHWM:"))
}

/// Asserts that no `K` named `name` exists in `namespace`.
async fn absent<K>(client: &Client, namespace: &str, name: &str)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
    <K as kube::Resource>::DynamicType: Default,
{
    let found = Api::<K>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .unwrap();
    assert!(
        found.is_none(),
        "{} {name} exists",
        K::kind(&Default::default())
    );
}

/// The cluster `name` once the operator has written its conditions.
async fn with_conditions(client: &Client, namespace: &str, name: &str) -> OpenBaoCluster {
    let clusters: Api<OpenBaoCluster> = Api::namespaced(client.clone(), namespace);
    wait_for(&format!("{name}'s conditions"), || async {
        let cluster = clusters.get(name).await.ok()?;
        (!cluster.status.as_ref()?.conditions.is_empty()).then_some(cluster)
    })
    .await
}
