//! OpenBao client: find the active node, log in, stream the Raft snapshot.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::{StatusCode, Url};
use serde::Deserialize;

use crate::error::{Error, error_chain};
use contract::secret::Secret;

const SNAPSHOT_PATH: &str = "v1/sys/storage/raft/snapshot";
const SNAPSHOT_FORCE_PATH: &str = "v1/sys/storage/raft/snapshot-force";

#[derive(Debug, Clone)]
pub struct OpenBaoConfig {
    pub addrs: Vec<Url>,
    pub ca_cert: Option<PathBuf>,
    pub request_timeout: Duration,
    pub stall_timeout: Duration,
}

/// How the Job proves who it is to OpenBao.
#[derive(Debug, Clone)]
pub enum Auth {
    /// JWT auth with the projected ServiceAccount token.
    Jwt {
        mount: String,
        role: String,
        jwt_file: PathBuf,
        audience: String,
    },
    /// A static token from a mounted Secret.
    Token { file: PathBuf },
    /// A static token from the environment (`BAO_TOKEN`), for people at a
    /// shell. `Secret` keeps it out of logs and errors.
    EnvToken(Secret),
}

/// What a node says about itself through `sys/health` (status codes are
/// OpenBao's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    Active,
    Standby,
    PerformanceStandby,
    Uninitialized,
    Sealed,
    Other(u16),
}

impl NodeState {
    pub fn from_health_status(status: u16) -> Self {
        match status {
            200 => Self::Active,
            429 => Self::Standby,
            473 => Self::PerformanceStandby,
            501 => Self::Uninitialized,
            503 => Self::Sealed,
            other => Self::Other(other),
        }
    }
}

impl std::fmt::Display for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Active => f.write_str("active"),
            Self::Standby => f.write_str("standby"),
            Self::PerformanceStandby => f.write_str("performance standby"),
            Self::Uninitialized => f.write_str("not initialized"),
            Self::Sealed => f.write_str("sealed"),
            Self::Other(code) => write!(f, "unexpected health status {code}"),
        }
    }
}

pub struct OpenBaoClient {
    http: reqwest::Client,
    config: OpenBaoConfig,
}

impl OpenBaoClient {
    pub fn new(config: OpenBaoConfig) -> Result<Self, Error> {
        Self::with_builder(config, reqwest::Client::builder())
    }

    /// A client that connects to `ip` for `host` (a throwaway pod reached by
    /// its IP, its certificate still checked for the service name).
    pub fn resolving(
        config: OpenBaoConfig,
        host: &str,
        ip: std::net::IpAddr,
    ) -> Result<Self, Error> {
        let port = config.addrs.first().and_then(Url::port_or_known_default);
        let builder = reqwest::Client::builder()
            .resolve(host, std::net::SocketAddr::new(ip, port.unwrap_or(8200)));
        Self::with_builder(config, builder)
    }

    fn with_builder(config: OpenBaoConfig, builder: reqwest::ClientBuilder) -> Result<Self, Error> {
        let mut builder = builder
            .connect_timeout(config.request_timeout)
            // The token header must never follow a redirect to another host.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("openbao-backup/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &config.ca_cert {
            let pem = std::fs::read(path).map_err(|e| {
                Error::Config(format!(
                    "cannot read --openbao-cacert {}: {e}",
                    path.display()
                ))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::Config(format!(
                    "--openbao-cacert {} is not a PEM bundle: {e}",
                    path.display()
                ))
            })?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| Error::Config(format!("cannot build the OpenBao HTTP client: {e}")))?;
        Ok(Self { http, config })
    }

    /// Asks every node for its health and returns the active one. Standbys,
    /// sealed and uninitialized nodes are never used: a snapshot must come from
    /// the node that holds the current Raft state.
    pub async fn find_active(&self) -> Result<Url, Error> {
        // Ask every node at once: a node that is down costs one timeout, not
        // one per node before it.
        let states =
            futures_util::future::join_all(self.config.addrs.iter().map(|addr| async move {
                let resp = self
                    .http
                    .get(join(addr, "v1/sys/health"))
                    .timeout(self.config.request_timeout)
                    .send()
                    .await;
                match resp {
                    Ok(resp) => {
                        let state = NodeState::from_health_status(resp.status().as_u16());
                        tracing::info!(node = %addr, %state, "checked node health");
                        Ok(state)
                    }
                    Err(e) => {
                        tracing::warn!(node = %addr, error = %error_chain(&e), "node unreachable");
                        Err(error_chain(&e))
                    }
                }
            }))
            .await;
        let mut seen = Vec::new();
        for (addr, state) in self.config.addrs.iter().zip(states) {
            match state {
                Ok(NodeState::Active) => return Ok(addr.clone()),
                Ok(state) => seen.push(format!("{addr} is {state}")),
                Err(error) => seen.push(format!("{addr} is unreachable ({error})")),
            }
        }
        Err(Error::NoActiveNode(seen.join("; ")))
    }

    /// Turns the configured credential into a client token.
    pub async fn login(&self, node: &Url, auth: &Auth) -> Result<Secret, Error> {
        match auth {
            Auth::Token { file } => {
                tracing::info!(file = %file.display(), "using a static OpenBao token");
                Secret::from_file(file, "--token-file (OPENBAO_TOKEN_FILE)").map_err(Error::Config)
            }
            Auth::EnvToken(token) => {
                tracing::info!("using the OpenBao token in BAO_TOKEN");
                Ok(token.clone())
            }
            Auth::Jwt {
                mount,
                role,
                jwt_file,
                audience,
            } => {
                let jwt = Secret::from_file(jwt_file, "--jwt-file (OPENBAO_JWT_FILE)")
                    .map_err(Error::Config)?;
                tracing::info!(%mount, %role, %audience, file = %jwt_file.display(), "logging in with JWT auth");
                let body = serde_json::json!({ "role": role, "jwt": jwt.expose() });
                let resp = self
                    .http
                    .post(join(node, &format!("v1/auth/{mount}/login")))
                    .timeout(self.config.request_timeout)
                    .json(&body)
                    .send()
                    .await
                    .map_err(|e| {
                        Error::OpenBao(format!("JWT login request failed: {}", error_chain(&e)))
                    })?;
                let status = resp.status();
                if !status.is_success() {
                    let message = error_message(resp).await;
                    return Err(Error::AuthRefused(format!(
                        "JWT login with role `{role}` at auth/{mount} refused ({status}): {message} (token audience: {audience})"
                    )));
                }
                let login: LoginResponse = resp
                    .json()
                    .await
                    .map_err(|e| Error::OpenBao(format!("unreadable JWT login response: {e}")))?;
                tracing::info!(policies = ?login.auth.policies, lease_seconds = login.auth.lease_duration, "logged in");
                Ok(Secret::new(login.auth.client_token))
            }
        }
    }

    /// Starts the snapshot download. The stream fails when the connection
    /// breaks or when no byte arrives within the stall timeout.
    pub async fn snapshot(
        &self,
        node: &Url,
        token: &Secret,
    ) -> Result<impl Stream<Item = Result<Bytes, Error>> + use<>, Error> {
        let stall = self.config.stall_timeout;
        let resp = tokio::time::timeout(
            stall,
            self.http
                .get(join(node, SNAPSHOT_PATH))
                .header("X-Vault-Token", token.expose())
                .send(),
        )
        .await
        .map_err(|_| {
            Error::Timeout(format!(
                "OpenBao did not start the snapshot within {stall:?}"
            ))
        })?
        .map_err(|e| Error::OpenBao(format!("snapshot request failed: {}", error_chain(&e))))?;
        let status = resp.status();
        if status != StatusCode::OK {
            let message = error_message(resp).await;
            return Err(match status {
                StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => Error::AuthRefused(format!(
                    "OpenBao refused the snapshot ({status}): {message}; the token needs `read` on sys/storage/raft/snapshot"
                )),
                _ => Error::OpenBao(format!("snapshot request answered {status}: {message}")),
            });
        }
        let body = resp.bytes_stream();
        Ok(futures_util::stream::unfold(
            (body, 0u64),
            move |(mut body, received)| async move {
                match tokio::time::timeout(stall, body.next()).await {
                    Err(_) => Some((
                        Err(Error::Timeout(format!(
                            "snapshot stream stalled: no data for {stall:?} after {received} bytes"
                        ))),
                        (body, received),
                    )),
                    Ok(None) => None,
                    Ok(Some(Ok(chunk))) => {
                        let received = received + chunk.len() as u64;
                        Some((Ok(chunk), (body, received)))
                    }
                    Ok(Some(Err(e))) => Some((
                        Err(Error::OpenBao(format!(
                            "snapshot stream broke after {received} bytes: {}",
                            error_chain(&e)
                        ))),
                        (body, received),
                    )),
                }
            },
        ))
    }
}

impl OpenBaoClient {
    /// Posts a snapshot to `sys/storage/raft/snapshot` (or
    /// `snapshot-force`, for a snapshot of a cluster with other keys). The
    /// body streams; if `snapshot` fails, the upload breaks and OpenBao,
    /// which reads the whole body before it installs anything, keeps its
    /// state.
    pub async fn restore(
        &self,
        node: &Url,
        token: &Secret,
        snapshot: impl Stream<Item = Result<Bytes, Error>> + Send + 'static,
        force: bool,
    ) -> Result<(), Error> {
        let path = if force {
            SNAPSHOT_FORCE_PATH
        } else {
            SNAPSHOT_PATH
        };
        let resp = self
            .http
            .post(join(node, path))
            .header("X-Vault-Token", token.expose())
            .header("Content-Type", "application/octet-stream")
            .body(reqwest::Body::wrap_stream(snapshot))
            .send()
            .await
            .map_err(|e| {
                Error::OpenBao(format!("the restore upload failed: {}", error_chain(&e)))
            })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let message = error_message(resp).await;
        let short = path.trim_start_matches("v1/");
        Err(match status {
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => Error::AuthRefused(format!(
                "OpenBao refused the restore ({status}): {message}; the token needs `update` on {short}"
            )),
            // OpenBao checks the sealed checksums with its own seal key.
            _ if !force && message.contains("different autoseal key") => Error::OpenBao(format!(
                "OpenBao refused the snapshot ({status}): it was sealed with another seal key than this cluster's; restore it into a cluster that has the seal key of the cluster it came from (--force makes OpenBao take it, and then seal itself until its nodes restart with that key)"
            )),
            _ => Error::OpenBao(format!(
                "OpenBao refused the snapshot ({status}): {message}"
            )),
        })
    }
}

/// What a node says about itself in `sys/seal-status` (no token needed).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SealStatus {
    #[serde(default, rename = "type")]
    pub seal_type: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub cluster_id: String,
    #[serde(default)]
    pub initialized: bool,
    #[serde(default)]
    pub sealed: bool,
}

/// The live cluster as a restore's preview sees it, without a token.
#[derive(Debug, Clone)]
pub struct LiveState {
    pub node: Url,
    /// None when the node did not say (a proxy that hides the endpoint).
    pub seal: Option<SealStatus>,
    /// The active node's Raft committed index (`sys/leader`).
    pub raft_index: u64,
}

impl OpenBaoClient {
    /// `sys/seal-status` of `node`.
    pub async fn seal_status(&self, node: &Url) -> Result<SealStatus, Error> {
        let resp = self
            .http
            .get(join(node, "v1/sys/seal-status"))
            .timeout(self.config.request_timeout)
            .send()
            .await
            .map_err(|e| {
                Error::OpenBao(format!("sys/seal-status of {node}: {}", error_chain(&e)))
            })?;
        let status = resp.status();
        if !status.is_success() {
            return Err(Error::OpenBao(format!(
                "sys/seal-status of {node} answered {status}: {}",
                error_message(resp).await
            )));
        }
        resp.json()
            .await
            .map_err(|e| Error::OpenBao(format!("unreadable sys/seal-status of {node}: {e}")))
    }

    /// The active node's seal and Raft index: what a restore is compared
    /// with. Only calls that need no token and change nothing.
    pub async fn live_state(&self, active: &Url) -> Result<LiveState, Error> {
        let seal = match self.seal_status(active).await {
            Ok(seal) => Some(seal),
            Err(e) => {
                tracing::warn!(error = %e, "cannot tell the live cluster's seal");
                None
            }
        };
        let leader = self.leader(active).await?;
        Ok(LiveState {
            node: active.clone(),
            seal,
            raft_index: leader.raft_committed_index,
        })
    }
}

/// How long a restored snapshot may take to be applied by every node:
/// OpenBao 2.7 answers the upload at once and applies it afterwards (5 s
/// plus the load time; ~12 s for 400 MiB on 2 cores).
const APPLY_TIMEOUT: Duration = Duration::from_secs(600);
const APPLY_POLL: Duration = Duration::from_millis(200);

/// The cluster as a restore found it; see `OpenBaoClient::before_restore`.
#[derive(Debug, Clone)]
pub struct BeforeRestore {
    leader: Leader,
    /// The other nodes that served reads themselves.
    readers: Vec<Url>,
}

/// A node's view of the Raft cluster (`sys/leader`, no token needed).
#[derive(Debug, Clone, Deserialize)]
struct Leader {
    #[serde(default)]
    is_self: bool,
    /// When this node became active; only the active node reports it. A
    /// restore makes the active node step down and up again, so a new value
    /// means the restore was applied.
    #[serde(default)]
    active_time: Option<String>,
    #[serde(default)]
    raft_committed_index: u64,
    #[serde(default)]
    raft_applied_index: u64,
}

impl OpenBaoClient {
    /// `sys/leader` of `node`. On the active node this waits while a
    /// restore is being applied.
    async fn leader(&self, node: &Url) -> Result<Leader, Error> {
        let resp = self
            .http
            .get(join(node, "v1/sys/leader"))
            .timeout(APPLY_TIMEOUT)
            .send()
            .await
            .map_err(|e| Error::OpenBao(format!("sys/leader of {node}: {}", error_chain(&e))))?;
        match resp.status() {
            StatusCode::OK => resp
                .json()
                .await
                .map_err(|e| Error::OpenBao(format!("unreadable sys/leader of {node}: {e}"))),
            StatusCode::SERVICE_UNAVAILABLE => Err(sealed_itself(node)),
            status => Err(Error::OpenBao(format!(
                "sys/leader of {node} answered {status}: {}",
                error_message(resp).await
            ))),
        }
    }

    /// What a restore on `active` is later checked against: the active
    /// node's `sys/leader`, and which other nodes serve reads themselves
    /// (OpenBao 2.7 standbys do, unless `disable_standby_reads`).
    pub async fn before_restore(&self, active: &Url) -> Result<BeforeRestore, Error> {
        let leader = self.leader(active).await?;
        let mut readers = Vec::new();
        for node in self.config.addrs.iter().filter(|n| *n != active) {
            if self.read_probe(node).await == Some(StatusCode::FORBIDDEN) {
                readers.push(node.clone());
            }
        }
        Ok(BeforeRestore { leader, readers })
    }

    /// After OpenBao accepted a restore on `active`: waits until the active
    /// node has applied it and every node that serves reads serves the
    /// restored data, so that reads anywhere return it. A node that sealed
    /// itself (the snapshot was sealed with another key) fails the restore.
    pub async fn wait_applied(&self, active: &Url, before: &BeforeRestore) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + APPLY_TIMEOUT;
        let waited = |node: &Url| {
            Error::Timeout(format!(
                "OpenBao accepted the snapshot but {node} had not applied it after {APPLY_TIMEOUT:?}"
            ))
        };
        let restored_index = loop {
            self.check_not_sealed(active).await?;
            // Blocks while the active node applies the snapshot. A request
            // that got in before the apply started sees the old active_time.
            let now = self.leader(active).await?;
            if now.is_self && now.active_time != before.leader.active_time {
                break now.raft_committed_index;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(waited(active));
            }
            tokio::time::sleep(APPLY_POLL).await;
        };
        tracing::info!(node = %active, raft_index = restored_index, "the active node applied the snapshot");
        // A standby first installs the snapshot (its applied index reaches
        // the restore's), then reloads its keys: until then it fails reads
        // (500) or redirects them (307). It serves the restored data once it
        // refuses an unknown token itself again.
        for node in &before.readers {
            loop {
                self.check_not_sealed(node).await?;
                let applied = match self.leader(node).await {
                    Ok(leader) => leader.raft_applied_index >= restored_index,
                    Err(_) => false,
                };
                match self.read_probe(node).await {
                    Some(StatusCode::FORBIDDEN) if applied => break,
                    Some(_) => {}
                    None => {
                        // A node that is down now serves nobody stale data.
                        tracing::warn!(%node, "unreachable: cannot tell whether it applied the restore");
                        break;
                    }
                }
                if tokio::time::Instant::now() > deadline {
                    return Err(waited(node));
                }
                tokio::time::sleep(APPLY_POLL).await;
            }
            tracing::info!(%node, "the standby serves the restored data");
        }
        Ok(())
    }

    /// How `node` answers a read with a token that does not exist (no
    /// secret: the id is fixed): 403 when it serves reads itself, 307 when
    /// it redirects them to the active node, 500 while it cannot read its
    /// storage; None when it does not answer.
    async fn read_probe(&self, node: &Url) -> Option<StatusCode> {
        let resp = self
            .http
            .get(join(node, "v1/sys/policies/acl/default"))
            .header("X-Vault-Token", "openbao-backup-read-probe")
            .timeout(self.config.request_timeout)
            .send()
            .await;
        resp.ok().map(|r| r.status())
    }

    async fn check_not_sealed(&self, node: &Url) -> Result<(), Error> {
        let resp = self
            .http
            .get(join(node, "v1/sys/health"))
            .timeout(self.config.request_timeout)
            .send()
            .await;
        match resp {
            Ok(resp) if resp.status() == StatusCode::SERVICE_UNAVAILABLE => {
                Err(sealed_itself(node))
            }
            // Anything else (an active node answers 500 for a moment while it
            // applies) is judged by sys/leader.
            _ => Ok(()),
        }
    }
}

/// What a restore drill asks of a throwaway OpenBao (`crate::drill`).
impl OpenBaoClient {
    /// `node`'s state from `sys/health`; None when it does not answer.
    pub async fn health(&self, node: &Url) -> Option<NodeState> {
        let resp = self
            .http
            .get(join(node, "v1/sys/health"))
            .timeout(self.config.request_timeout)
            .send()
            .await
            .ok()?;
        Some(NodeState::from_health_status(resp.status().as_u16()))
    }

    /// Initialises a fresh node with auto-unseal (one recovery share, never
    /// kept) and returns its root token.
    pub async fn initialise(&self, node: &Url) -> Result<Secret, Error> {
        let resp = self
            .http
            .put(join(node, "v1/sys/init"))
            .timeout(self.config.request_timeout)
            .json(&serde_json::json!({"recovery_shares": 1, "recovery_threshold": 1}))
            .send()
            .await
            .map_err(|e| Error::OpenBao(format!("sys/init of {node}: {}", error_chain(&e))))?;
        let status = resp.status();
        if !status.is_success() {
            let message = error_message(resp).await;
            return Err(Error::OpenBao(format!(
                "sys/init of {node} answered {status}: {message}"
            )));
        }
        #[derive(Deserialize)]
        struct Init {
            root_token: String,
        }
        let init: Init = resp
            .json()
            .await
            .map_err(|e| Error::OpenBao(format!("unreadable sys/init answer of {node}: {e}")))?;
        Ok(Secret::new(init.root_token))
    }

    /// The Raft index `node` has applied (`sys/leader`).
    pub async fn applied_index(&self, node: &Url) -> Result<u64, Error> {
        Ok(self.leader(node).await?.raft_applied_index)
    }

    /// A GET of `path` (under `/v1/`) with `token`: its `data`, or an
    /// error saying what OpenBao answered. The data is never logged.
    pub async fn read(
        &self,
        node: &Url,
        token: &Secret,
        path: &str,
    ) -> Result<serde_json::Value, Error> {
        let path = path.trim_matches('/');
        let resp = self
            .http
            .get(join(node, &format!("v1/{path}")))
            .header("X-Vault-Token", token.expose())
            .timeout(self.config.request_timeout)
            .send()
            .await
            .map_err(|e| Error::OpenBao(format!("reading {path}: {}", error_chain(&e))))?;
        let status = resp.status();
        match status {
            StatusCode::OK => {
                #[derive(Deserialize)]
                struct Read {
                    #[serde(default)]
                    data: serde_json::Value,
                }
                let read: Read = resp
                    .json()
                    .await
                    .map_err(|e| Error::OpenBao(format!("unreadable answer for {path}: {e}")))?;
                Ok(read.data)
            }
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => {
                let message = error_message(resp).await;
                Err(Error::AuthRefused(format!(
                    "reading {path} refused ({status}): {message}; the token needs `read` on {path}"
                )))
            }
            _ => {
                let message = error_message(resp).await;
                Err(Error::OpenBao(format!(
                    "reading {path} answered {status}: {message}"
                )))
            }
        }
    }
}

fn sealed_itself(node: &Url) -> Error {
    Error::OpenBao(format!(
        "OpenBao took the snapshot and then sealed itself ({node} is sealed): the snapshot was sealed with another seal key than this cluster's; restart the nodes with the seal key of the cluster the backup came from to unseal them with the restored data"
    ))
}

#[derive(Deserialize)]
struct LoginResponse {
    auth: LoginAuth,
}

#[derive(Deserialize)]
struct LoginAuth {
    client_token: String,
    #[serde(default)]
    lease_duration: u64,
    #[serde(default)]
    policies: Vec<String>,
}

#[derive(Deserialize)]
struct ErrorsBody {
    errors: Vec<String>,
}

/// OpenBao's `{"errors":[...]}` as one line, or the status when the body is
/// something else (a proxy's HTML page, say).
async fn error_message(resp: reqwest::Response) -> String {
    let text = resp.text().await.unwrap_or_default();
    match serde_json::from_str::<ErrorsBody>(&text) {
        Ok(body) if !body.errors.is_empty() => one_line(&body.errors.join("; ")),
        _ => "no error details in the response".to_string(),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn join(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined = format!("{}/{path}", base.path().trim_end_matches('/'));
    url.set_path(&joined);
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_codes_follow_openbao_defaults() {
        assert_eq!(NodeState::from_health_status(200), NodeState::Active);
        assert_eq!(NodeState::from_health_status(429), NodeState::Standby);
        assert_eq!(
            NodeState::from_health_status(473),
            NodeState::PerformanceStandby
        );
        assert_eq!(NodeState::from_health_status(501), NodeState::Uninitialized);
        assert_eq!(NodeState::from_health_status(503), NodeState::Sealed);
        assert_eq!(NodeState::from_health_status(418), NodeState::Other(418));
    }

    #[test]
    fn join_keeps_a_base_path() {
        let base = Url::parse("https://lb.example.com/openbao/").unwrap();
        assert_eq!(
            join(&base, "v1/sys/health").as_str(),
            "https://lb.example.com/openbao/v1/sys/health"
        );
        let bare = Url::parse("http://127.0.0.1:8200").unwrap();
        assert_eq!(
            join(&bare, SNAPSHOT_PATH).as_str(),
            "http://127.0.0.1:8200/v1/sys/storage/raft/snapshot"
        );
    }

    #[test]
    fn one_line_flattens_openbao_multiline_errors() {
        assert_eq!(
            one_line("1 error occurred:\n\t* permission denied\n\n"),
            "1 error occurred: * permission denied"
        );
    }
}
