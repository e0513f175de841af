//! The `backup` command: active node -> login -> snapshot stream (the
//! archive checked and hashed on the way) -> transform plugins -> upload in
//! parts (S3 multipart, a directory's temporary file, Azure blocks) ->
//! manifest -> retention -> second copies (`copy`: streamed from the
//! stored backup, read back, checked, pruned) -> JSON result.
//!
//! Nothing touches the bucket before OpenBao has started streaming, and any
//! failure after the upload started aborts it, so a failed backup leaves
//! neither object nor manifest nor parts. What a killed backup could not
//! clean up, the next one sweeps (`sweep`).

mod copy;
mod parts;
mod prune;
mod sweep;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use futures_util::{Stream, StreamExt};

pub use copy::CopyConfig;
use prune::RetentionPolicy;
pub use prune::{KeepLast, RetentionSetting};

use crate::archive::{ArchiveCheck, Checked};
use crate::bucket::stream::{CHAIN_PIECE, feed_chain};
use crate::error::Error;
use crate::openbao::{Auth, OpenBaoClient, OpenBaoConfig};
use crate::progress::Progress;
use crate::s3::TargetConfig;
use crate::storage::{Part, Store};
use contract::layout;
use contract::layout::TOOL_VERSION;
use contract::manifest::{
    MANIFEST_FORMAT_VERSION, Manifest, OpenBaoRecord, TransformRecord, UploadLayout,
};
use contract::plugin_spec::PluginSpec;
use contract::result::{BackupKind, BackupResult, RetentionReport};
use contract::signing::ManifestKey;
use contract::snapshot::{ContentDigest, RaftInfo};
use parts::PartUploads;
use plugin_host::chain::{Chain, Side};
use plugin_host::spec::ConfiguredPlugin;
use plugin_host::{Direction, Kind, Limits, PluginHost};

#[derive(Debug, Clone)]
pub struct BackupConfig {
    pub openbao: OpenBaoConfig,
    pub auth: Auth,
    pub target: TargetConfig,
    pub cluster: String,
    pub namespace: String,
    pub kind: BackupKind,
    pub result_file: Option<PathBuf>,
    pub progress_interval: Duration,
    /// Transform plugins applied to the snapshot, in order.
    pub transforms: Vec<PluginSpec>,
    /// What to delete after a successful backup; None keeps everything.
    pub retention: Option<RetentionSetting>,
    pub plugin_limits: Limits,
    /// Leftovers of interrupted backups older than this are removed.
    pub sweep_after: Duration,
    /// Sign the manifest with the key in this file.
    pub manifest_key_file: Option<PathBuf>,
    /// Second copies, made and checked after the backup is complete.
    pub copies: Vec<CopyConfig>,
}

pub async fn run(config: &BackupConfig) -> Result<BackupResult, Error> {
    let started_at = Utc::now();
    let clock = Instant::now();
    let target = &config.target;
    let prepared = Prepared::load(config)?;

    let openbao = OpenBaoClient::new(config.openbao.clone())?;
    let node = openbao.find_active().await?;
    // Recorded in the manifest so that a restore's preview can tell whether
    // a cluster's seal opens the backup; a backup does not fail without it.
    let recorded = openbao
        .seal_status(&node)
        .await
        .ok()
        .map(|seal| OpenBaoRecord {
            version: seal.version,
            seal_type: seal.seal_type,
            cluster_id: seal.cluster_id,
        });
    let token = openbao.login(&node, &config.auth).await?;
    let snapshot = openbao.snapshot(&node, &token).await?;

    let prefix = layout::cluster_prefix(&target.path_prefix, &config.namespace, &config.cluster);
    let key = layout::object_key(&prefix, started_at, config.kind, random_suffix());
    let source_node = node.to_string();
    let store = Store::open(target).await?;
    tracing::info!(bucket = %store.location(), %key, part_size = target.part_size, concurrency = target.concurrency, "streaming snapshot");
    // Before this run's upload exists, so the sweep can never take it for a
    // leftover (whatever --sweep-after says).
    let swept = sweep::sweep(&store, &prefix, config.sweep_after).await;
    let metadata = layout::object_metadata(
        &config.cluster,
        &config.namespace,
        config.kind,
        started_at,
        &source_node,
    );
    let streamed = upload_snapshot(
        &store,
        target,
        &key,
        metadata.clone(),
        snapshot,
        prepared.chain,
        config.progress_interval,
    )
    .await?;

    let completed_at = Utc::now();
    let manifest = Manifest {
        format_version: MANIFEST_FORMAT_VERSION,
        key: key.clone(),
        cluster: config.cluster.clone(),
        namespace: config.namespace.clone(),
        kind: config.kind,
        started_at,
        completed_at,
        source_node: source_node.clone(),
        tool_version: TOOL_VERSION.into(),
        snapshot: streamed.snapshot.clone(),
        object: streamed.object.clone(),
        transforms: prepared.transforms,
        raft: streamed.raft.clone(),
        upload: UploadLayout {
            part_size: target.part_size,
            parts: streamed.parts.len() as u32,
        },
        openbao: recorded,
        signature: None,
    };
    let manifest_key = write_manifest(&store, manifest.clone(), prepared.signing_key).await?;

    let elapsed = clock.elapsed();
    let retention = match &prepared.retention {
        None => None,
        Some(policy) => Some(retain(&store, &prefix, &key, policy).await),
    };
    let copies = copy::copy_all(
        &copy::Completed {
            primary: &store,
            key: &key,
            manifest_key: &manifest_key,
            manifest: &manifest,
            metadata: &metadata,
            prefix: &prefix,
            retention: prepared.retention.as_ref(),
        },
        &config.copies,
    )
    .await;
    Ok(BackupResult::Succeeded {
        key,
        manifest_key,
        bucket: store.location(),
        size: streamed.object.size,
        sha256: streamed.object.sha256,
        kind: config.kind,
        source_node,
        started_at,
        completed_at,
        duration_seconds: (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        throughput_bytes_per_second: (streamed.snapshot.size as f64
            / elapsed.as_secs_f64().max(1e-3)) as u64,
        snapshot: streamed.snapshot,
        parts: streamed.parts.len() as u32,
        peak_memory_bytes: crate::memory::peak_rss_bytes(),
        retention,
        swept,
        copies,
    })
}

/// What a backup needs besides OpenBao and the bucket, loaded first:
/// plugins or a key that cannot be used fail the backup before OpenBao is
/// asked anything.
struct Prepared {
    chain: Chain,
    /// The transforms as the manifest records them.
    transforms: Vec<TransformRecord>,
    retention: Option<RetentionPolicy>,
    signing_key: Option<ManifestKey>,
}

impl Prepared {
    fn load(config: &BackupConfig) -> Result<Self, Error> {
        let host = PluginHost::new(config.plugin_limits);
        let transforms = config
            .transforms
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                ConfiguredPlugin::load(spec, &host, Kind::Transform)
                    .map_err(|e| Error::Config(format!("--transform {}: {e}", i + 1)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            chain: Chain::new(&transforms, Direction::Encode)?,
            transforms: transforms.iter().map(ConfiguredPlugin::record).collect(),
            retention: config
                .retention
                .as_ref()
                .map(|r| r.load(&host))
                .transpose()?,
            signing_key: config
                .manifest_key_file
                .as_deref()
                .map(ManifestKey::from_file)
                .transpose()
                .map_err(Error::Config)?,
        })
    }
}

/// Signs (with a key) and stores the manifest, which makes the backup
/// complete; returns its key. Without its manifest a backup cannot be
/// verified, so a failure removes the object.
async fn write_manifest(
    store: &Store,
    mut manifest: Manifest,
    signing_key: Option<ManifestKey>,
) -> Result<String, Error> {
    if let Some(signing_key) = &signing_key {
        let unsigned = serde_json::to_value(&manifest).expect("manifest serializes");
        manifest.signature = Some(signing_key.sign(&unsigned));
    }
    let manifest_key = layout::manifest_key(&manifest.key);
    let body = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
    if let Err(e) = store.put(&manifest_key, body, "application/json").await {
        if let Err(delete) = store.delete(&manifest.key).await {
            tracing::error!(error = %delete, key = %manifest.key, "could not delete the object after the manifest failed");
        }
        return Err(e);
    }
    Ok(manifest_key)
}

/// Runs retention after a backup; a failure is reported, and the new
/// backup stands regardless.
async fn retain(
    store: &Store,
    prefix: &str,
    key: &str,
    policy: &RetentionPolicy,
) -> RetentionReport {
    match prune::prune(store, prefix, key, policy, Utc::now()).await {
        Ok(report) => report,
        Err(error) => {
            tracing::warn!(%error, "retention failed; the new backup stands");
            RetentionReport {
                error: Some(error.to_string()),
                ..Default::default()
            }
        }
    }
}

/// Streams the snapshot into a new upload and completes it,
/// unless a signal (a deleted Job, Ctrl-C) comes first. On any failure the
/// upload is aborted: nothing is left behind.
async fn upload_snapshot(
    store: &Store,
    target: &TargetConfig,
    key: &str,
    metadata: HashMap<String, String>,
    snapshot: impl Stream<Item = Result<Bytes, Error>>,
    chain: Chain,
    progress_interval: Duration,
) -> Result<Streamed, Error> {
    let upload = store.begin(key, metadata).await?;
    let streamed = async {
        let streamed = tokio::select! {
            streamed = stream_into(snapshot, chain, &upload, target, progress_interval) => streamed?,
            signal = shutdown_signal() => return Err(Error::Cancelled(signal)),
        };
        upload
            .complete(&streamed.parts, streamed.object.size)
            .await?;
        Ok(streamed)
    }
    .await;
    if streamed.is_err()
        && let Err(abort) = upload.abort().await
    {
        tracing::error!(error = %abort, %key, "could not abort the upload");
    }
    streamed
}

/// What went up, and what the archive check found in it.
struct Streamed {
    snapshot: ContentDigest,
    object: ContentDigest,
    raft: RaftInfo,
    parts: Vec<Part>,
}

/// Moves the snapshot through the archive check (on its own thread) and
/// the transform chain into the upload. Without transforms the snapshot's
/// chunks go straight into the parts; with them, each transform runs on
/// its own thread, between channels holding a piece each. Memory is the part
/// being filled and the `concurrency` parts in flight: when every slot is
/// busy, reading stops, and OpenBao waits through TCP, whatever the
/// snapshot's size.
async fn stream_into(
    snapshot: impl Stream<Item = Result<Bytes, Error>>,
    chain: Chain,
    upload: &crate::storage::Upload,
    target: &TargetConfig,
    progress_interval: Duration,
) -> Result<Streamed, Error> {
    let mut parts = PartUploads::new(upload.clone(), target);
    let mut progress = Progress::new(progress_interval);
    let mut size = 0u64;
    let mut write = async |chunk: Bytes| {
        size += chunk.len() as u64;
        parts.write(chunk).await?;
        if let Some(line) = progress.due("streamed", size) {
            let parts_uploaded = parts.uploaded();
            tracing::info!(bytes = size, parts_uploaded, "{line}");
        }
        Ok::<_, Error>(())
    };
    let (checked, object) = if chain.is_empty() {
        let checked = checked(async |archive| {
            let mut snapshot = std::pin::pin!(snapshot);
            let mut size = 0u64;
            while let Some(chunk) = snapshot.next().await {
                let chunk = chunk?;
                size += chunk.len() as u64;
                // A clone of `Bytes` shares the buffer: no copy.
                archive.feed(chunk.clone()).await?;
                write(chunk).await?;
            }
            Ok(size)
        })
        .await?;
        (checked, None)
    } else {
        let (input, mut output, chain) = chain.spawn(Some(Side::Output));
        let feed = checked(async |archive| {
            feed_chain(snapshot, CHAIN_PIECE, input, async |piece| {
                archive.feed(piece.clone()).await
            })
            .await
        });
        let uploading = async {
            // The output closes at the end of the stream and on failure alike.
            while let Some(chunk) = output.recv().await {
                write(chunk?).await?;
            }
            chain
                .finished()
                .await
                .map_err(|e| Error::InvalidSnapshot(e.to_string()))
        };
        tokio::try_join!(feed, uploading)?
    };
    let parts = parts.finish().await?;
    let snapshot = ContentDigest {
        size: checked.size,
        sha256: checked.sha256,
    };
    let object = object.unwrap_or_else(|| snapshot.clone());
    tracing::info!(
        bytes = snapshot.size,
        stored_bytes = object.size,
        parts = parts.len(),
        "snapshot streamed"
    );
    Ok(Streamed {
        snapshot,
        object,
        raft: checked.raft,
        parts,
    })
}

/// Runs the archive check over what `pass` streams (it shows the check
/// every byte and returns how many there were), and returns the verdict.
async fn checked(
    pass: impl AsyncFnOnce(&mut ArchiveCheck) -> Result<u64, Error>,
) -> Result<Checked, Error> {
    let mut archive = ArchiveCheck::start();
    if pass(&mut archive).await? == 0 {
        return Err(Error::OpenBao("the snapshot stream was empty".into()));
    }
    archive.finish().await
}

async fn shutdown_signal() -> &'static str {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler installs");
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}

fn random_suffix() -> [u8; 3] {
    let mut bytes = [0u8; 3];
    getrandom::fill(&mut bytes).expect("the OS provides randomness");
    bytes
}
