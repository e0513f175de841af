//! A real Kubernetes API server (kube-apiserver 1.20 built from Debian's
//! source by scripts/setup) with its own etcd, on loopback, for the
//! operator's integration tests. There is no controller-manager and no
//! kubelet: nothing runs Jobs or collects garbage unless the test does.
//!
//! Authentication: a static admin token (system:masters) and
//! ServiceAccount tokens signed with the `JwtIssuer` given at start, so a
//! fake OpenBao can verify the tokens this server issues. Authorization is
//! RBAC, so the operator runs with exactly the ClusterRole it ships with.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::guard::Guard;
use crate::jwt::JwtIssuer;
use crate::tls::TestCa;
use crate::{free_port, random};

/// The issuer of ServiceAccount tokens (their `iss`).
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

pub struct KubeApiServer {
    pub url: String,
    pub dir: PathBuf,
    admin_token: String,
    ca: TestCa,
    guard: Guard,
}

impl KubeApiServer {
    /// kube-apiserver: $KUBE_APISERVER_BIN, else on the PATH.
    pub fn binary() -> Result<PathBuf, String> {
        crate::find_binary("KUBE_APISERVER_BIN", "kube-apiserver").ok_or_else(|| {
            "kube-apiserver not found: run scripts/setup (it builds one) or set KUBE_APISERVER_BIN"
                .into()
        })
    }

    pub fn start(issuer: &JwtIssuer) -> Result<Self, String> {
        let apiserver = Self::binary()?;
        let etcd = crate::find_binary("ETCD_BIN", "etcd")
            .ok_or("etcd not found: run scripts/setup (apt package etcd-server)")?;
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("openbao-backup-kube-{port}"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let ca = TestCa::generate();
        let admin_token = hex::encode(random::<16>());
        let files = [
            ("tls.crt", ca.server_cert_pem.clone()),
            ("tls.key", ca.server_key_pem.clone()),
            ("sa.key", issuer.private_key_pem()),
            ("sa.pub", issuer.public_key_pem()),
            (
                "tokens.csv",
                format!("{admin_token},admin,admin,system:masters\n"),
            ),
        ];
        for (name, text) in files {
            std::fs::write(dir.join(name), text).map_err(|e| format!("{name}: {e}"))?;
        }
        let (etcd_port, peer_port) = (free_port(), free_port());
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let apiserver_args = [
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={port}"),
            "--insecure-port=0".into(),
            "--tls-cert-file=$GUARD_DIR/tls.crt".into(),
            "--tls-private-key-file=$GUARD_DIR/tls.key".into(),
            "--token-auth-file=$GUARD_DIR/tokens.csv".into(),
            "--authorization-mode=RBAC".into(),
            format!("--service-account-issuer={ISSUER}"),
            "--service-account-key-file=$GUARD_DIR/sa.pub".into(),
            "--service-account-signing-key-file=$GUARD_DIR/sa.key".into(),
            format!("--api-audiences={ISSUER}"),
            "--service-cluster-ip-range=10.96.0.0/16".into(),
            // No kubelet, no token controller: pods are records only.
            "--disable-admission-plugins=ServiceAccount".into(),
            "--endpoint-reconciler-type=none".into(),
        ];
        let etcd_args = [
            "--data-dir=$GUARD_DIR/etcd".to_string(),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=default={peer_url}"),
        ];
        let start = format!(
            "\"$ETCD\" {} >\"$GUARD_DIR/etcd.log\" 2>&1 & pids=$!\n\
             \"$APISERVER\" {} >\"$GUARD_DIR/apiserver.log\" 2>&1 & pids=\"$pids $!\"",
            etcd_args.join(" "),
            apiserver_args.join(" ")
        );
        let mut command = Command::new("sh");
        command.env("ETCD", &etcd).env("APISERVER", &apiserver);
        let guard = Guard::spawn(command, &start, &dir)?;
        let server = Self {
            url: format!("https://127.0.0.1:{port}"),
            dir,
            admin_token,
            ca,
            guard,
        };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            let ready = self.kubectl(&["get", "--raw=/readyz"], None);
            if ready.status.success() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        let log = std::fs::read_to_string(self.dir.join("apiserver.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        Err(format!(
            "kube-apiserver did not become ready within 90 s; the end of its log:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ))
    }

    /// A kubeconfig that authenticates with `token`, written under the
    /// server's directory.
    pub fn kubeconfig(&self, name: &str, token: &str) -> PathBuf {
        let path = self.dir.join(format!("{name}.kubeconfig"));
        let ca = self.dir.join("ca.crt");
        std::fs::write(&ca, &self.ca.ca_pem).expect("write the CA");
        let config = serde_json::json!({
            "apiVersion": "v1", "kind": "Config", "current-context": name,
            "clusters": [{"name": "test", "cluster": {"server": self.url, "certificate-authority": ca}}],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [{"name": name, "context": {"cluster": "test", "user": name}}],
        });
        std::fs::write(&path, config.to_string()).expect("write a kubeconfig");
        path
    }

    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.kubeconfig("admin", &self.admin_token)
    }

    /// Runs kubectl as the admin, with `stdin` piped in when given.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        kubectl(&self.admin_kubeconfig(), args, stdin)
    }

    /// Runs kubectl as the admin and returns its stdout; fails the test
    /// with kubectl's stderr when it fails.
    pub fn kubectl_ok(&self, args: &[&str], stdin: Option<&str>) -> Vec<u8> {
        let output = self.kubectl(args, stdin);
        assert!(
            output.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    }

    /// `kubectl apply --server-side` of `manifest` (YAML or JSON), as the
    /// admin; fails the test when kubectl does.
    pub fn apply(&self, manifest: &str) {
        self.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(manifest));
    }

    pub fn stop(&self) {
        self.guard.stop();
    }
}

/// Runs kubectl with `kubeconfig`, with `stdin` piped in when given.
pub fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs (scripts/setup installs it)");
    let mut input = child.stdin.take().expect("piped stdin");
    if let Some(text) = stdin {
        std::io::Write::write_all(&mut input, text.as_bytes()).expect("kubectl reads stdin");
    }
    drop(input);
    child.wait_with_output().expect("kubectl finishes")
}

/// Polls `check` every 200 ms until it gives a value; fails the test,
/// naming `what`, after 60 s.
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
