//! The Helm chart as a user installs it: rendered by a real Helm (v4, the
//! Go library PyPI's helm-python-sdk bundles, through scripts/render-chart)
//! and linted, for the default values and the namespace-scoped mode; then
//! the rendered manifests are applied to a real kube-apiserver (1.20) and
//! the real operator binary runs as the chart's ServiceAccount (a token
//! from the TokenRequest API, nothing else) with the rendered Deployment's
//! arguments and environment, so with exactly the rendered RBAC.
//!
//! Kubernetes 1.20 serves no policy/v1: the rendered PodDisruptionBudget is
//! the one object not applied there; its content is checked instead.

mod helm;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use helm::{CHART, Rendered, render};
use serde_json::{Value, json};
use testkit::jwt::JwtIssuer;
use testkit::kube::{KubeApiServer, wait_for};

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The kinds this 1.20 test server cannot serve (policy/v1 is 1.21+).
const NOT_ON_1_20: &[(&str, &str)] = &[("policy/v1", "PodDisruptionBudget")];

impl Rendered {
    fn container(&self) -> &Value {
        &self.one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    }

    fn env(&self, name: &str) -> Option<String> {
        self.container()["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["value"].as_str().unwrap_or_default().to_string())
    }

    /// The manifests a 1.20 server can take, as one YAML stream.
    fn for_1_20(&self) -> String {
        self.objects
            .iter()
            .filter(|o| {
                !NOT_ON_1_20
                    .iter()
                    .any(|(api, kind)| o["apiVersion"] == *api && o["kind"] == *kind)
            })
            .map(|o| format!("---\n{}\n", serde_json::to_string(o).unwrap()))
            .collect()
    }
}

fn render_ok(release: &str, namespace: &str, values: Value) -> Rendered {
    render(release, namespace, values).unwrap_or_else(|e| panic!("{e}"))
}

fn namespaced() -> Value {
    json!({"watchNamespace": "team-b"})
}

#[test]
fn the_chart_renders_lints_and_agrees_on_the_version() {
    let image = format!("openbao/backup-executor:v{VERSION}");
    assert_eq!(image, operator::settings::DEFAULT_EXECUTOR_IMAGE);

    let all = render_ok("obo", "openbao-backup", json!({}));
    assert_eq!(
        all.lint["errors"],
        json!([]),
        "helm lint --strict: {}",
        all.lint
    );
    let warnings: Vec<&Value> = all.lint["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["severity"].as_u64() >= Some(2))
        .collect();
    assert!(warnings.is_empty(), "helm lint --strict: {warnings:?}");
    assert_eq!(
        all.kinds(),
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ]
    );
    for object in &all.objects {
        let labels = &object["metadata"]["labels"];
        assert_eq!(
            labels["helm.sh/chart"],
            format!("openbao-backup-operator-{VERSION}")
        );
        assert_eq!(labels["app.kubernetes.io/version"], VERSION);
    }
    // One image: the operator's, and the default executor image.
    assert_eq!(all.container()["image"], image.as_str());
    assert_eq!(
        all.env("DEFAULT_EXECUTOR_IMAGE").as_deref(),
        Some(image.as_str())
    );
    assert_eq!(
        all.env("EXECUTOR_IMAGES").as_deref(),
        Some("openbao/backup-executor,docker.io/openbao/backup-executor")
    );
    assert_eq!(all.env("WATCH_NAMESPACE"), None);
    assert!(all.notes.contains("in every namespace"), "{}", all.notes);
    assert!(all.notes.contains(&image), "{}", all.notes);

    // Two replicas: prefer different nodes, and keep one through drains.
    let deployment = all.one("Deployment");
    let selector = &deployment["spec"]["selector"]["matchLabels"];
    let anti = &deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        [0]["podAffinityTerm"];
    assert_eq!(anti["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(&anti["labelSelector"]["matchLabels"], selector);
    let pdb = all.one("PodDisruptionBudget");
    assert_eq!(pdb["apiVersion"], "policy/v1");
    assert_eq!(pdb["metadata"]["namespace"], "openbao-backup");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], selector);

    // Namespace-scoped: the same rules as a Role in the watched namespace.
    let scoped = render_ok("obo", "openbao-backup", namespaced());
    assert!(scoped.all("ClusterRole").is_empty() && scoped.all("ClusterRoleBinding").is_empty());
    let role = scoped
        .all("Role")
        .into_iter()
        .find(|r| r["metadata"]["name"] == "obo")
        .expect("a Role");
    assert_eq!(role["metadata"]["namespace"], "team-b");
    assert_eq!(role["rules"], all.one("ClusterRole")["rules"]);
    let binding = scoped
        .all("RoleBinding")
        .into_iter()
        .find(|r| r["metadata"]["name"] == "obo")
        .expect("a RoleBinding");
    assert_eq!(binding["metadata"]["namespace"], "team-b");
    assert_eq!(binding["roleRef"]["kind"], "Role");
    assert_eq!(
        binding["subjects"][0],
        json!({"kind": "ServiceAccount", "name": "obo", "namespace": "openbao-backup"})
    );
    assert_eq!(scoped.env("WATCH_NAMESPACE").as_deref(), Some("team-b"));
    assert!(
        scoped.notes.contains("namespace team-b only"),
        "{}",
        scoped.notes
    );

    // Every knob reaches its object.
    let custom = render_ok(
        "obo",
        "openbao-backup",
        json!({
            "replicaCount": 1,
            "image": {"repository": "registry.example.com/mirror/backup-executor", "tag": "v9"},
            "imagePullSecrets": [{"name": "regcred"}],
            "podAnnotations": {"example.com/team": "platform"},
            "serviceAccount": {"annotations": {"example.com/role": "backup"}},
            "affinity": {"nodeAffinity": {}},
            "serviceCIDRs": ["10.96.0.0/12", "fd00:10:96::/108"],
        }),
    );
    assert_eq!(
        custom.env("SERVICE_CIDRS").as_deref(),
        Some("10.96.0.0/12,fd00:10:96::/108")
    );
    assert_eq!(all.env("SERVICE_CIDRS"), None, "unset by default");
    assert!(custom.all("PodDisruptionBudget").is_empty(), "one replica");
    let pod = &custom.one("Deployment")["spec"]["template"];
    assert_eq!(
        pod["spec"]["imagePullSecrets"],
        json!([{"name": "regcred"}])
    );
    assert_eq!(
        pod["metadata"]["annotations"]["example.com/team"],
        "platform"
    );
    assert_eq!(pod["spec"]["affinity"], json!({"nodeAffinity": {}}));
    assert_eq!(
        custom.one("ServiceAccount")["metadata"]["annotations"],
        json!({"example.com/role": "backup"})
    );
    let mirror = "registry.example.com/mirror/backup-executor:v9";
    assert_eq!(custom.container()["image"], mirror);
    assert_eq!(
        custom.env("DEFAULT_EXECUTOR_IMAGE").as_deref(),
        Some(mirror)
    );
    assert!(
        custom
            .env("EXECUTOR_IMAGES")
            .unwrap()
            .ends_with(",registry.example.com/mirror/backup-executor"),
        "the chart's own image is allowed"
    );

    // values.schema.json refuses bad values, naming them.
    for (values, field) in [
        (json!({"replicaCount": 0}), "/replicaCount"),
        (json!({"watchNamespace": "Team_B"}), "/watchNamespace"),
        (
            json!({"image": {"pullPolicy": "Sometimes"}}),
            "/image/pullPolicy",
        ),
        (
            json!({"controller": {"logFormat": "xml"}}),
            "/controller/logFormat",
        ),
        (json!({"serviceCIDRs": ["10.96.0.0"]}), "/serviceCIDRs/0"),
        (
            json!({"metrics": {"serviceMonitor": {"enabeld": true}}}),
            "/metrics/serviceMonitor",
        ),
    ] {
        let error = render("obo", "openbao-backup", values.clone()).err();
        assert!(
            error.as_ref().is_some_and(|e| e.contains(field)),
            "{values}: {error:?}"
        );
    }

    // The binary, the chart and the image tag agree.
    let chart: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(format!("{CHART}/Chart.yaml")).unwrap())
            .unwrap();
    assert_eq!(chart["version"].as_str(), Some(VERSION));
    assert_eq!(chart["appVersion"].as_str(), Some(VERSION));
    let version = Command::new(env!("CARGO_BIN_EXE_openbao-backup"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("openbao-backup {VERSION}")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rendered_chart_runs_the_operator_on_a_real_api_server() {
    let issuer = JwtIssuer::generate();
    let kube = KubeApiServer::start(&issuer).unwrap_or_else(|e| panic!("{e}"));
    // `helm install` creates crds/ first (1.20 predates CEL: `create`
    // stores the CRD without its x-kubernetes-validations).
    let crd = format!("{CHART}/crds/openbao.org.yaml");
    kube.kubectl_ok(&["create", "--validate=false", "-f", &crd], None);
    for namespace in [
        "openbao-backup",
        "openbao-backup-ns",
        "team-a",
        "team-b",
        "elsewhere",
    ] {
        kube.kubectl_ok(&["create", "namespace", namespace], None);
    }
    wait_until("the CRD to serve", || {
        kube.kubectl(&["get", "openbaoclusters", "-A"], None)
            .status
            .success()
    });

    readiness_waits_for_the_watches(&kube).await;

    // Cluster-wide (the default values).
    let all = render_ok("obo", "openbao-backup", json!({}));
    kube.kubectl_ok(&["apply", "-f", "-"], Some(&all.for_1_20()));
    let mut operator = ChartOperator::start(&kube, &all, "openbao-backup", "obo", "obo-a");
    operator.wait_ready().await;
    // A minimal cluster: no executorImage (the operator's default).
    create_cluster(&kube, "team-a", "minimal");
    wait_reconciled(&kube, "team-a", "minimal");
    operator.terminate();

    // Namespace-scoped: a Role in team-b only.
    let scoped = render_ok("obo-ns", "openbao-backup-ns", namespaced());
    kube.kubectl_ok(&["apply", "-f", "-"], Some(&scoped.for_1_20()));
    let mut operator =
        ChartOperator::start(&kube, &scoped, "openbao-backup-ns", "obo-ns", "obo-ns-a");
    operator.wait_ready().await;
    create_cluster(&kube, "team-b", "scoped");
    create_cluster(&kube, "elsewhere", "ignored");
    wait_reconciled(&kube, "team-b", "scoped");
    std::thread::sleep(Duration::from_secs(3));
    let ignored = kube.kubectl_ok(
        &[
            "-n",
            "elsewhere",
            "get",
            "openbaocluster",
            "ignored",
            "-o",
            "json",
        ],
        None,
    );
    let ignored: Value = serde_json::from_slice(&ignored).unwrap();
    assert!(ignored["status"].is_null(), "not watched: {ignored}");
    assert!(
        !kube
            .kubectl(&["-n", "elsewhere", "get", "statefulset", "ignored"], None)
            .status
            .success()
    );
    let logs = operator.logs();
    assert!(
        !logs.contains("forbidden"),
        "every call within the Role:\n{logs}"
    );
    operator.terminate();
    kube.stop();
}

/// A replica whose watches cannot sync (its RBAC lets it list
/// OpenBaoClusters but not OpenBaoRestores) is alive and never ready.
async fn readiness_waits_for_the_watches(kube: &KubeApiServer) {
    let rbac = r#"apiVersion: v1
kind: ServiceAccount
metadata: {name: half, namespace: openbao-backup}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: half}
rules:
  - apiGroups: ["openbao.org"]
    resources: ["openbaoclusters"]
    verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: half}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: half}
subjects: [{kind: ServiceAccount, name: half, namespace: openbao-backup}]
"#;
    kube.kubectl_ok(&["apply", "-f", "-"], Some(rbac));
    let kubeconfig = kube.kubeconfig("half", &create_token(kube, "openbao-backup", "half"));
    let port = testkit::free_port();
    let log = kubeconfig.with_file_name("half.log");
    let child = Command::new(env!("CARGO_BIN_EXE_openbao-backup"))
        .arg("operator")
        .env("KUBECONFIG", &kubeconfig)
        .env("LEADER_ELECTION", "false")
        .env("METRICS_ADDR", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let operator = ChartOperator { child, log, port };
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    wait_for("the half operator's /healthz", || async {
        let response = reqwest::get(url("/healthz")).await.ok()?;
        response.status().is_success().then_some(())
    })
    .await;
    for _ in 0..10 {
        let ready = reqwest::get(url("/readyz")).await.unwrap();
        assert_eq!(ready.status(), 503, "{}", operator.logs());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Killed: with watches that never sync, a graceful stop waits for them.
    drop(operator);
}

fn create_cluster(kube: &KubeApiServer, namespace: &str, name: &str) {
    let manifest = format!(
        r#"apiVersion: openbao.org/v1alpha1
kind: OpenBaoCluster
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  version: 2.4.1
  backup:
    schedule: "0 3 * * *"
    jwtAuthRole: backup
    target: {{bucket: openbao-backups}}
"#
    );
    kube.kubectl_ok(&["apply", "-f", "-"], Some(&manifest));
}

/// The StatefulSet and the status appear; the omitted executorImage is the
/// operator's default, which it accepts (valid; 1.20 has no CronJob).
fn wait_reconciled(kube: &KubeApiServer, namespace: &str, name: &str) {
    wait_until(&format!("{namespace}/{name} to be reconciled"), || {
        let output = kube.kubectl(
            &["-n", namespace, "get", "openbaocluster", name, "-o", "json"],
            None,
        );
        let cluster: Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
        let conditions = cluster["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let reason = |kind: &str| {
            conditions
                .iter()
                .find(|c| c["type"] == kind)
                .map(|c| (c["status"].clone(), c["reason"].clone()))
        };
        reason("WorkloadConfigured").is_some_and(|(status, _)| status == "True")
            && reason("BackupConfigured").is_some_and(|(_, reason)| reason == "CronJobUnavailable")
    });
    kube.kubectl_ok(&["-n", namespace, "get", "statefulset", name], None);
}

/// The operator binary as the rendered Deployment runs it: its arguments
/// and environment (the Downward API's values filled in), as its
/// ServiceAccount.
struct ChartOperator {
    child: Child,
    log: PathBuf,
    port: u16,
}

impl ChartOperator {
    fn start(
        kube: &KubeApiServer,
        rendered: &Rendered,
        namespace: &str,
        account: &str,
        pod: &str,
    ) -> Self {
        let container = rendered.container();
        let kubeconfig = kube.kubeconfig(pod, &create_token(kube, namespace, account));
        let port = testkit::free_port();
        let log = kubeconfig.with_file_name(format!("{pod}.log"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_openbao-backup"));
        for arg in container["args"].as_array().unwrap() {
            command.arg(arg.as_str().unwrap());
        }
        for var in container["env"].as_array().unwrap() {
            let name = var["name"].as_str().unwrap();
            let value = match var["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                Some("metadata.name") => pod.to_string(),
                Some("metadata.namespace") => namespace.to_string(),
                Some(other) => panic!("{name}: fieldRef {other}"),
                None => var["value"].as_str().unwrap().to_string(),
            };
            command.env(name, value);
        }
        // The same port in every pod; here, one free port per process.
        command.env("METRICS_ADDR", format!("127.0.0.1:{port}"));
        command.env("KUBECONFIG", kubeconfig);
        let child = command
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self { child, log, port }
    }

    async fn wait_ready(&self) {
        let url = format!("http://127.0.0.1:{}/readyz", self.port);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = reqwest::get(&url).await.ok().map(|r| r.status());
            if ready.is_some_and(|s| s.is_success()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "not ready ({ready:?}):\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(self.logs().contains("watches synced"), "{}", self.logs());
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn terminate(&mut self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ChartOperator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn create_token(kube: &KubeApiServer, namespace: &str, account: &str) -> String {
    let token = kube.kubectl_ok(
        &["-n", namespace, "create", "token", account, "--duration=1h"],
        None,
    );
    String::from_utf8(token).unwrap().trim().to_string()
}

fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
