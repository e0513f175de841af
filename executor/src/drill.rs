//! `drill`: a restore rehearsal into a throwaway OpenBao. The backup is
//! downloaded and checked end to end first (every digest, the transforms
//! undone, the archive: `restore::decode` into a local file), so a
//! tampered backup fails before the throwaway receives a byte; then the
//! fresh throwaway is initialised, the verified snapshot restored into it
//! with force (it has other keys than the backup), and it must come back
//! active, unsealed by its own seal (the cluster's), at the manifest's
//! Raft index, and serve the canary secret. The time from the restore's
//! first byte to that point is the measured time to recover.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::Utc;
use reqwest::Url;

use crate::error::Error;
use crate::openbao::{Auth, NodeState, OpenBaoClient, OpenBaoConfig};
use crate::restore::{self, ReadBack};
use contract::drill::{DrillReport, DrillStep};

/// How long the throwaway may take to answer, and to become active after
/// `sys/init` or unsealed at the manifest's index after the restore.
const START_TIMEOUT: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_millis(200);

/// The throwaway and what to read back from it.
#[derive(Debug, Clone)]
pub struct Drill {
    /// The throwaway OpenBao: exactly one address.
    pub openbao: OpenBaoConfig,
    pub canary: Option<Canary>,
    /// Where the verified snapshot waits (an emptyDir in the drill Job).
    pub spool_dir: PathBuf,
    /// The throwaway's IP: `openbao`'s host name is connected to there,
    /// and its TLS certificate checked for that name.
    pub throwaway_ip: Option<std::net::IpAddr>,
}

/// A secret of the restored data read back, with credentials of the
/// restored data.
#[derive(Debug, Clone)]
pub struct Canary {
    pub path: String,
    /// A key the secret's data (KV v2's `data.data`, else `data`) holds.
    pub key: Option<String>,
    pub auth: Auth,
}

/// A drill that failed, and at which step.
#[derive(Debug)]
pub struct Failure {
    pub step: DrillStep,
    /// The backup, once the manifest was read.
    pub key: Option<String>,
    pub error: Error,
}

/// Runs the drill; the caller (the operator) deletes the throwaway.
pub async fn drill(read: &ReadBack, drill: &Drill) -> Result<DrillReport, Failure> {
    let started_at = Utc::now();
    let fail = |step, key: Option<&str>| {
        let key = key.map(str::to_string);
        move |error| Failure { step, key, error }
    };
    let [node] = &drill.openbao.addrs[..] else {
        return Err(fail(DrillStep::Start, None)(Error::Config(
            "drill needs exactly one --openbao-addr (OPENBAO_ADDR): the throwaway OpenBao".into(),
        )));
    };
    let openbao = match (drill.throwaway_ip, node.host_str()) {
        (Some(ip), Some(host)) => OpenBaoClient::resolving(drill.openbao.clone(), host, ip),
        _ => OpenBaoClient::new(drill.openbao.clone()),
    }
    .map_err(fail(DrillStep::Start, None))?;

    // 1. verify: the whole backup, before the throwaway hears of it.
    let clock = Instant::now();
    std::fs::create_dir_all(&drill.spool_dir).map_err(|e| {
        fail(DrillStep::Verify, None)(Error::Config(format!(
            "--spool-dir {}: {e}",
            drill.spool_dir.display()
        )))
    })?;
    let spool = Spool(
        drill
            .spool_dir
            .join(format!("drill-{}.snapshot", std::process::id())),
    );
    let verified = restore::decode(read, &spool.0)
        .await
        .map_err(fail(DrillStep::Verify, None))?;
    let verify_seconds = seconds(clock);
    let key = verified.key.clone();
    let manifest_index = verified.raft.index;
    tracing::info!(%key, raft_index = manifest_index, size = verified.snapshot.size, verify_seconds,
        "the backup verified; the throwaway OpenBao gets it now");
    let step = |step| fail(step, Some(&key));

    // 2. start: a fresh OpenBao, never initialised.
    wait_for(&openbao, node, "answer, uninitialised,", |state| {
        match state {
            Some(NodeState::Uninitialized) => Some(Ok(())),
            Some(state @ (NodeState::Active | NodeState::Standby | NodeState::Sealed | NodeState::PerformanceStandby)) => Some(Err(Error::Config(format!(
                "{node} is {state}, not a fresh OpenBao: a drill restores only into a throwaway that was never initialised"
            )))),
            _ => None,
        }
    })
    .await
    .map_err(step(DrillStep::Start))?;

    // 3. initialise: auto-unseal with the cluster's seal.
    let root = openbao
        .initialise(node)
        .await
        .map_err(step(DrillStep::Initialise))?;
    wait_for(&openbao, node, "become active after sys/init", |state| {
        (state == Some(NodeState::Active)).then_some(Ok(()))
    })
    .await
    .map_err(step(DrillStep::Initialise))?;

    // 4. restore, forced: the throwaway's own keys are not the backup's.
    let before = openbao
        .before_restore(node)
        .await
        .map_err(step(DrillStep::Restore))?;
    let recovery = Instant::now();
    let snapshot = restore::file_stream(&spool.0)
        .await
        .map_err(step(DrillStep::Restore))?;
    openbao
        .restore(node, &root, snapshot, true)
        .await
        .map_err(step(DrillStep::Restore))?;
    drop(spool);

    // 5. unseal: applied, and active with the restored keys.
    openbao
        .wait_applied(node, &before)
        .await
        .map_err(step(DrillStep::Unseal))?;
    wait_for(
        &openbao,
        node,
        "come back active and unsealed after the restore",
        |state| (state == Some(NodeState::Active)).then_some(Ok(())),
    )
    .await
    .map_err(step(DrillStep::Unseal))?;

    // 6. raft-index: at least the manifest's.
    let deadline = Instant::now() + START_TIMEOUT;
    let applied_index = loop {
        let applied = openbao
            .applied_index(node)
            .await
            .map_err(step(DrillStep::RaftIndex))?;
        if applied >= manifest_index {
            break applied;
        }
        if Instant::now() > deadline {
            return Err(step(DrillStep::RaftIndex)(Error::OpenBao(format!(
                "the throwaway applied Raft index {applied}, below the manifest's {manifest_index}, after {START_TIMEOUT:?}"
            ))));
        }
        tokio::time::sleep(POLL).await;
    };

    // 7. canary: readable with the restored data's credentials.
    if let Some(canary) = &drill.canary {
        read_canary(&openbao, node, canary)
            .await
            .map_err(step(DrillStep::Canary))?;
    }
    let recovery_seconds = seconds(recovery);
    tracing::info!(%key, applied_index, recovery_seconds, "the drill passed");
    Ok(DrillReport {
        key,
        snapshot: verified.snapshot,
        raft: verified.raft,
        applied_index,
        canary: drill.canary.as_ref().map(|c| c.path.clone()),
        verify_seconds,
        recovery_seconds,
        started_at,
        completed_at: Utc::now(),
    })
}

async fn read_canary(openbao: &OpenBaoClient, node: &Url, canary: &Canary) -> Result<(), Error> {
    let token = openbao.login(node, &canary.auth).await?;
    let data = openbao.read(node, &token, &canary.path).await?;
    // KV v2 nests the secret's data in `data.data`.
    let fields = match data.get("data") {
        Some(inner) if inner.is_object() => inner,
        _ => &data,
    };
    let found = match &canary.key {
        Some(key) => fields.get(key).is_some_and(|v| !v.is_null()),
        None => fields.as_object().is_some_and(|f| !f.is_empty()),
    };
    if !found {
        return Err(Error::OpenBao(format!(
            "the canary {} has {}: the restored data lacks it",
            canary.path,
            match &canary.key {
                Some(key) => format!("no key `{key}`"),
                None => "no data".into(),
            }
        )));
    }
    tracing::info!(path = %canary.path, "the canary reads back");
    Ok(())
}

/// Polls `node`'s health until `decide` says Ok or Err, or the timeout.
async fn wait_for(
    openbao: &OpenBaoClient,
    node: &Url,
    what: &str,
    decide: impl Fn(Option<NodeState>) -> Option<Result<(), Error>>,
) -> Result<(), Error> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let state = openbao.health(node).await;
        if let Some(decided) = decide(state) {
            return decided;
        }
        if Instant::now() > deadline {
            let state = state.map_or("unreachable".to_string(), |s| s.to_string());
            return Err(Error::Timeout(format!(
                "{node} did not {what} within {START_TIMEOUT:?} (it is {state})"
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

fn seconds(clock: Instant) -> f64 {
    (clock.elapsed().as_secs_f64() * 1000.0).round() / 1000.0
}

/// The verified snapshot on disk, removed when the drill no longer needs
/// it, whatever happened.
struct Spool(PathBuf);

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
