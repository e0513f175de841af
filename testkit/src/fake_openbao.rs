//! A fake OpenBao node, for the few cases a real one (`crate::openbao`)
//! cannot be made to produce:
//! - snapshots of an exact archive size (part boundaries) or of several GiB
//!   (memory bounds, the benchmark), generated instead of filled through
//!   the API;
//! - a performance standby (`sys/health` 473), which open-source OpenBao
//!   does not have.
//!
//! Where it answers, it answers as the real server does (the conformance
//! test in `tests/fake_openbao.rs` holds it to a real node): health codes,
//! JWT and token auth with policy checks, streamed snapshots and verified
//! restores. Faults on the wire come from `crate::openbao_proxy`.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::jwt::{self, JwtPublicKey};
use crate::random;
use crate::snapshot::{self, SnapshotSpec};
use crate::tls::TestCa;

/// What `sys/health` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Active,
    Standby,
    PerformanceStandby,
    Uninitialized,
    Sealed,
}

impl Health {
    fn status(self) -> StatusCode {
        StatusCode::from_u16(match self {
            Self::Active => 200,
            Self::Standby => 429,
            Self::PerformanceStandby => 473,
            Self::Uninitialized => 501,
            Self::Sealed => 503,
        })
        .expect("valid status")
    }
}

/// A JWT auth role (`auth/<mount>/role/<name>`).
#[derive(Debug, Clone)]
pub struct JwtRole {
    pub bound_audiences: Vec<String>,
    /// Claim (a top-level name, or a JSON pointer when it starts with `/`,
    /// as in OpenBao) -> required value.
    pub bound_claims: HashMap<String, String>,
    pub policies: Vec<String>,
    pub ttl_seconds: u64,
}

#[derive(Debug, Clone)]
pub struct FakeConfig {
    pub health: Health,
    pub snapshot: SnapshotSpec,
    /// Token -> policies. `root` grants everything; `backup` grants `read` on
    /// sys/storage/raft/snapshot; `restore` grants `update` on the snapshot
    /// and snapshot-force paths.
    pub tokens: HashMap<String, Vec<String>>,
    pub jwt_mount: String,
    pub jwt_keys: Vec<JwtPublicKey>,
    pub jwt_roles: HashMap<String, JwtRole>,
    /// Seals SHA256SUMS; restores from another barrier need snapshot-force.
    pub barrier_key: Vec<u8>,
    /// Serve HTTPS with a certificate from this CA.
    pub tls: Option<TestCa>,
    /// Bytes per write of the snapshot stream (64 KiB unless set): large
    /// writes show what a client does with large chunks.
    pub write_size: usize,
}

impl FakeConfig {
    pub fn new(snapshot: SnapshotSpec) -> Self {
        Self {
            health: Health::Active,
            snapshot,
            tokens: HashMap::new(),
            jwt_mount: "jwt".into(),
            jwt_keys: Vec::new(),
            jwt_roles: HashMap::new(),
            barrier_key: b"fake-barrier-key".to_vec(),
            tls: None,
            write_size: 64 * 1024,
        }
    }

    pub fn with_write_size(mut self, bytes: usize) -> Self {
        self.write_size = bytes;
        self
    }

    pub fn with_token(mut self, token: &str, policies: &[&str]) -> Self {
        self.tokens.insert(
            token.into(),
            policies.iter().map(|p| p.to_string()).collect(),
        );
        self
    }
}

/// A snapshot the node accepted and installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub sha256: String,
    pub size: u64,
    pub forced: bool,
    pub info: snapshot::SnapshotInfo,
}

struct Inner {
    config: FakeConfig,
    /// When the node last became active: a restore changes it, as in
    /// OpenBao, whose active node steps down and up to apply one.
    active_time: String,
    restored: Vec<Restored>,
    restore_attempts: usize,
}

type Shared = Arc<Mutex<Inner>>;

pub struct FakeOpenBao {
    url: String,
    inner: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl FakeOpenBao {
    /// Starts on a free loopback port.
    pub async fn start(config: FakeConfig) -> Self {
        Self::start_on("127.0.0.1:0".parse().expect("address"), config).await
    }

    pub async fn start_on(addr: SocketAddr, config: FakeConfig) -> Self {
        let tls = config.tls.clone();
        let inner = Arc::new(Mutex::new(Inner {
            config,
            active_time: chrono::Utc::now().to_rfc3339(),
            restored: Vec::new(),
            restore_attempts: 0,
        }));
        let app = Router::new()
            .route("/v1/sys/health", get(health))
            .route("/v1/sys/leader", get(leader))
            .route("/v1/auth/{mount}/login", post(login))
            .route(
                "/v1/sys/storage/raft/snapshot",
                get(snapshot_get).post(restore),
            )
            .route("/v1/sys/storage/raft/snapshot-force", post(restore_force))
            .fallback(|| async { error(StatusCode::NOT_FOUND, "unsupported path") })
            .with_state(inner.clone());
        let (url, server) = crate::tls::spawn_server(addr, app, tls).await;
        Self { url, inner, server }
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }

    pub fn set_health(&self, health: Health) {
        self.lock().config.health = health;
    }

    pub fn set_snapshot(&self, spec: SnapshotSpec) {
        self.lock().config.snapshot = spec;
    }

    pub fn add_token(&self, token: &str, policies: &[&str]) {
        self.lock().config.tokens.insert(
            token.into(),
            policies.iter().map(|p| p.to_string()).collect(),
        );
    }

    pub fn restored(&self) -> Vec<Restored> {
        self.lock().restored.clone()
    }

    pub fn restore_attempts(&self) -> usize {
        self.lock().restore_attempts
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("fake state lock")
    }
}

impl Drop for FakeOpenBao {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "errors": [message] })),
    )
        .into_response()
}

/// OpenBao's answer to a token without the capability.
const PERMISSION_DENIED: &str = "1 error occurred:\n\t* permission denied\n\n";

fn permission_denied() -> Response {
    error(StatusCode::FORBIDDEN, PERMISSION_DENIED)
}

async fn health(State(inner): State<Shared>) -> Response {
    let health = inner.lock().expect("lock").config.health;
    let body = serde_json::json!({
        "initialized": health != Health::Uninitialized,
        "sealed": matches!(health, Health::Sealed | Health::Uninitialized),
        // OpenBao calls a node standby whenever it is not the active one.
        "standby": health != Health::Active,
        "performance_standby": health == Health::PerformanceStandby,
        "version": "2.4.0",
        "cluster_name": "fake-openbao",
        "server_time_utc": chrono::Utc::now().timestamp(),
    });
    (health.status(), axum::Json(body)).into_response()
}

async fn leader(State(inner): State<Shared>) -> Response {
    let inner = inner.lock().expect("lock");
    if let Some(response) = unavailable(inner.config.health) {
        return response;
    }
    let index = 10 + inner.restored.len() as u64;
    let mut body = serde_json::json!({
        "ha_enabled": true,
        "is_self": inner.config.health == Health::Active,
        "raft_committed_index": index,
        "raft_applied_index": index,
    });
    if inner.config.health == Health::Active {
        body["active_time"] = inner.active_time.clone().into();
    }
    axum::Json(body).into_response()
}

/// Answers for a node that cannot serve requests, as OpenBao does.
fn unavailable(health: Health) -> Option<Response> {
    match health {
        Health::Sealed => Some(error(StatusCode::SERVICE_UNAVAILABLE, "Vault is sealed")),
        Health::Uninitialized => Some(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Vault is not initialized",
        )),
        _ => None,
    }
}

/// Capability check against the fixed policies the fake knows.
fn allowed(policies: &[String], path: &str, capability: &str) -> bool {
    policies.iter().any(|p| match p.as_str() {
        "root" => true,
        "backup" => path == "sys/storage/raft/snapshot" && capability == "read",
        "restore" => {
            matches!(
                path,
                "sys/storage/raft/snapshot" | "sys/storage/raft/snapshot-force"
            ) && capability == "update"
        }
        _ => false,
    })
}

/// The response refusing the request, or None when the token may do it.
fn refusal(inner: &Inner, headers: &HeaderMap, path: &str, capability: &str) -> Option<Response> {
    if let Some(response) = unavailable(inner.config.health) {
        return Some(response);
    }
    let token = headers
        .get("x-vault-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match inner.config.tokens.get(token) {
        Some(policies) if allowed(policies, path, capability) => None,
        Some(_) => Some(permission_denied()),
        // OpenBao answers an unknown token without its error wrapper.
        None => Some(error(StatusCode::FORBIDDEN, "permission denied")),
    }
}

async fn login(State(inner): State<Shared>, Path(mount): Path<String>, body: Bytes) -> Response {
    let mut inner = inner.lock().expect("lock");
    if let Some(response) = unavailable(inner.config.health) {
        return response;
    }
    if mount != inner.config.jwt_mount {
        return error(
            StatusCode::FORBIDDEN,
            &format!("no handler for route \"auth/{mount}/login\". route entry not found."),
        );
    }
    let request: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return error(StatusCode::BAD_REQUEST, "failed to parse JSON input"),
    };
    let (Some(role_name), Some(token)) = (request["role"].as_str(), request["jwt"].as_str()) else {
        return error(StatusCode::BAD_REQUEST, "missing role or jwt");
    };
    let Some(role) = inner.config.jwt_roles.get(role_name).cloned() else {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("role \"{role_name}\" could not be found"),
        );
    };
    let claims = match jwt::verify(token, &inner.config.jwt_keys) {
        Ok(claims) => claims,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    if let Err(message) = check_claims(&claims, &role, chrono::Utc::now().timestamp()) {
        return error(StatusCode::BAD_REQUEST, &message);
    }
    let client_token = format!("s.{}", hex::encode(random::<12>()));
    let mut policies = vec!["default".to_string()];
    policies.extend(role.policies.iter().cloned());
    inner
        .config
        .tokens
        .insert(client_token.clone(), policies.clone());
    axum::Json(serde_json::json!({
        "auth": {
            "client_token": client_token,
            "accessor": hex::encode(random::<12>()),
            "policies": policies,
            "token_policies": policies,
            "lease_duration": role.ttl_seconds,
            "renewable": true,
        }
    }))
    .into_response()
}

/// OpenBao's JWT auth checks, with its default 150 s expiry and not-before
/// leeways.
pub fn check_claims(claims: &serde_json::Value, role: &JwtRole, now: i64) -> Result<(), String> {
    const LEEWAY: i64 = 150;
    if let Some(exp) = claims["exp"].as_i64()
        && now > exp + LEEWAY
    {
        return Err(
            "error validating token: invalid expiration time (exp) claim: token is expired".into(),
        );
    }
    if let Some(nbf) = claims["nbf"].as_i64()
        && now + LEEWAY < nbf
    {
        return Err(
            "error validating token: invalid not before (nbf) claim: token not yet valid".into(),
        );
    }
    let audiences: Vec<&str> = match &claims["aud"] {
        serde_json::Value::String(a) => vec![a.as_str()],
        serde_json::Value::Array(list) => list.iter().filter_map(|a| a.as_str()).collect(),
        _ => Vec::new(),
    };
    if !role.bound_audiences.is_empty()
        && !audiences
            .iter()
            .any(|a| role.bound_audiences.iter().any(|b| b == a))
    {
        return Err("error validating token: invalid audience (aud) claim: audience claim does not match any expected audience".into());
    }
    for (claim, want) in &role.bound_claims {
        // A key with a leading `/` is a JSON pointer; any other key names a
        // top-level claim, even when it contains `/`.
        let value = if claim.starts_with('/') {
            claims.pointer(claim)
        } else {
            claims.get(claim)
        };
        let Some(value) = value else {
            return Err(format!(
                "error validating claims: claim \"{claim}\" is missing"
            ));
        };
        if value.as_str() != Some(want.as_str()) {
            return Err(format!(
                "error validating claims: claim \"{claim}\" does not match any associated bound claim values"
            ));
        }
    }
    Ok(())
}

async fn snapshot_get(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let (spec, barrier_key, write_size) = {
        let inner = shared.lock().expect("lock");
        if let Some(response) = refusal(&inner, &headers, "sys/storage/raft/snapshot", "read") {
            return response;
        }
        // A standby serves its own copy, as OpenBao 2.7's standby reads do
        // (a client must not ask one: its copy may lag).
        (
            inner.config.snapshot.clone(),
            inner.config.barrier_key.clone(),
            inner.config.write_size,
        )
    };
    // The archive is written on a blocking thread into a small channel, so a
    // slow client slows the writer and a snapshot of any size costs a few
    // writes.
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    tokio::task::spawn_blocking(move || {
        let writer = ChannelWriter {
            tx,
            size: write_size,
            buf: Vec::with_capacity(write_size),
        };
        let _ = snapshot::write_snapshot(&spec, &barrier_key, writer);
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((Ok::<_, io::Error>(chunk), rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/gzip")
        .body(Body::from_stream(stream))
        .expect("response builds")
}

struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
    size: usize,
    buf: Vec<u8>,
}

impl io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= self.size {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(self.size),
        ));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| io::Error::other("client went away"))
    }
}

async fn restore(State(shared): State<Shared>, headers: HeaderMap, body: Body) -> Response {
    restore_snapshot(shared, headers, body, false).await
}

async fn restore_force(State(shared): State<Shared>, headers: HeaderMap, body: Body) -> Response {
    restore_snapshot(shared, headers, body, true).await
}

/// Reads and checks the whole archive before installing anything, as
/// OpenBao does; a refused snapshot leaves the node's state unchanged.
async fn restore_snapshot(
    shared: Shared,
    headers: HeaderMap,
    body: Body,
    forced: bool,
) -> Response {
    let path = if forced {
        "sys/storage/raft/snapshot-force"
    } else {
        "sys/storage/raft/snapshot"
    };
    let barrier_key = {
        let mut inner = shared.lock().expect("lock");
        inner.restore_attempts += 1;
        if let Some(response) = refusal(&inner, &headers, path, "update") {
            return response;
        }
        if inner.config.health != Health::Active {
            // OpenBao takes the upload, fails to apply it ("node is not the
            // leader") and seals itself.
            inner.config.health = Health::Sealed;
            return StatusCode::NO_CONTENT.into_response();
        }
        inner.config.barrier_key.clone()
    };
    let stream = body.into_data_stream().map(|r| r.map_err(io::Error::other));
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
    let own_key = barrier_key.clone();
    let checked = tokio::task::spawn_blocking(move || {
        let mut hashing = snapshot::HashingReader::new(CountingReader {
            inner: reader,
            count: 0,
        });
        let info =
            snapshot::verify_snapshot(&mut hashing, (!forced).then_some(own_key.as_slice()))?;
        // Drain what follows the tar end marker so the digest covers the body.
        io::copy(&mut hashing, &mut io::sink())
            .map_err(|e| format!("failed to read snapshot: {e}"))?;
        Ok::<_, String>((info, hashing.hex_digest(), hashing.into_inner().count))
    })
    .await
    .expect("verifier thread");
    match checked {
        Ok((info, sha256, size)) => {
            let mut inner = shared.lock().expect("lock");
            // A node cannot decrypt state sealed with another key: real
            // OpenBao seals itself after such a forced restore.
            if !info.sealed_with(&barrier_key) {
                inner.config.health = Health::Sealed;
            }
            inner.active_time = chrono::Utc::now().to_rfc3339();
            inner.restored.push(Restored {
                sha256,
                size,
                forced,
                info,
            });
            StatusCode::NO_CONTENT.into_response()
        }
        Err(message) if message == snapshot::OTHER_SEAL_KEY => {
            error(StatusCode::BAD_REQUEST, &message)
        }
        Err(message) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("1 error occurred:\n\t* failed to read snapshot file: {message}\n\n"),
        ),
    }
}

struct CountingReader<R> {
    inner: R,
    count: u64,
}

impl<R: io::Read> io::Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role() -> JwtRole {
        JwtRole {
            bound_audiences: vec!["openbao-internal".into()],
            bound_claims: HashMap::from([("/kubernetes.io/namespace".into(), "prod".into())]),
            policies: vec!["backup".into()],
            ttl_seconds: 600,
        }
    }

    fn claims(aud: &str, namespace: &str, exp: i64) -> serde_json::Value {
        serde_json::json!({"aud": aud, "exp": exp, "kubernetes.io": {"namespace": namespace}})
    }

    #[test]
    fn claims_checks() {
        let now = 1_000_000;
        assert!(check_claims(&claims("openbao-internal", "prod", now + 60), &role(), now).is_ok());
        assert!(
            check_claims(&claims("other", "prod", now + 60), &role(), now)
                .unwrap_err()
                .contains("audience")
        );
        assert!(
            check_claims(&claims("openbao-internal", "dev", now + 60), &role(), now)
                .unwrap_err()
                .contains("bound claim")
        );
        assert!(
            check_claims(
                &claims("openbao-internal", "prod", now - 3600),
                &role(),
                now
            )
            .unwrap_err()
            .contains("expired")
        );
        // Without the leading `/` the key names a top-level claim, which a
        // ServiceAccount token does not have.
        let mut unslashed = role();
        unslashed.bound_claims = HashMap::from([("kubernetes.io/namespace".into(), "prod".into())]);
        assert_eq!(
            check_claims(
                &claims("openbao-internal", "prod", now + 60),
                &unslashed,
                now
            )
            .unwrap_err(),
            "error validating claims: claim \"kubernetes.io/namespace\" is missing"
        );
        // Within the leeway still passes, as in OpenBao.
        assert!(check_claims(&claims("openbao-internal", "prod", now - 100), &role(), now).is_ok());
    }

    #[test]
    fn policies() {
        let backup = vec!["default".to_string(), "backup".to_string()];
        assert!(allowed(&backup, "sys/storage/raft/snapshot", "read"));
        assert!(!allowed(&backup, "sys/storage/raft/snapshot", "update"));
        assert!(!allowed(
            &["default".to_string()],
            "sys/storage/raft/snapshot",
            "read"
        ));
        assert!(allowed(&["root".to_string()], "anything", "sudo"));
    }
}
