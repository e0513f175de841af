//! Reading backups back: `list`, `restore` (into OpenBao), `verify`
//! (download and check, nothing else) and `decode` (the raw snapshot into a
//! file, for `bao operator raft snapshot restore` without a cluster or an
//! operator).
//!
//! All three read the manifest, undo the recorded transforms with the
//! plugins given or built in (matched by digest), and check every digest on the way
//! (`verified`). Nothing reaches OpenBao, or a finished output file, unless
//! every check passed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

pub mod preview;

use crate::bucket::catalog;
pub use crate::bucket::catalog::BackupRef;
use crate::bucket::stream::{self as verified, Unverified, Verified};

use crate::error::Error;
use crate::openbao::{Auth, OpenBaoClient, OpenBaoConfig, SealStatus};
use crate::progress::Progress;
use crate::s3::TargetConfig;
use crate::storage::{Store, local};
use contract::manifest::Manifest;
use contract::plugin_spec::PluginSpec;
use contract::preview::{Finding, Override, PreviewReport, Verdict};
use contract::result::ReadBackReport;
use contract::signing::ManifestKey;
use contract::units::human_bytes;
use plugin_host::builtin;
use plugin_host::chain::Chain;
use plugin_host::spec::{ConfiguredPlugin, component_bytes};
use plugin_host::{Direction, Kind, Limits, PluginHost};

/// Where a backup is read from.
// One per command: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Source {
    /// In the bucket: a key, or the newest backup under the cluster prefix.
    Bucket {
        target: TargetConfig,
        cluster_prefix: String,
        backup: BackupRef,
    },
    /// A downloaded object and its manifest.
    File { object: PathBuf, manifest: PathBuf },
}

/// A backup to read, and the plugins that undo its transforms.
#[derive(Debug, Clone)]
pub struct ReadBack {
    pub source: Source,
    /// Plugins by file (matched to the manifest's chain by digest), with the
    /// settings decoding needs (an age identity in `secretFiles`).
    pub plugins: Vec<PluginSpec>,
    pub plugin_limits: Limits,
    /// Refuse a manifest not signed with the key in this file.
    pub manifest_key_file: Option<PathBuf>,
    /// How often to log progress while the snapshot streams.
    pub progress_interval: std::time::Duration,
}

/// A backup opened for reading: manifest read, plugins loaded, the decode
/// chain started; the object not yet requested.
struct Opened {
    key: String,
    manifest: Manifest,
    chain: Chain,
    /// Where the object is read from.
    reader: Reader,
}

/// The object's source, ready to read: the storage (connected once per
/// read-back), or the file.
enum Reader {
    Bucket(Store),
    File(PathBuf),
}

type ObjectStream = BoxStream<'static, Result<Bytes, Error>>;

impl ReadBack {
    async fn open(&self) -> Result<Opened, Error> {
        let (key, manifest, reader) = self.open_manifest().await?;
        let chain = decode_chain(&manifest, &self.plugins, self.plugin_limits)?;
        Ok(Opened {
            key,
            manifest,
            chain,
            reader,
        })
    }

    /// The manifest read (its signature checked with a key); the plugins
    /// not yet loaded.
    async fn open_manifest(&self) -> Result<(String, Manifest, Reader), Error> {
        let signing = self
            .manifest_key_file
            .as_deref()
            .map(ManifestKey::from_file)
            .transpose()
            .map_err(Error::Config)?;
        let signing = signing.as_ref();
        let (key, manifest, reader) = match &self.source {
            Source::Bucket {
                target,
                cluster_prefix,
                backup,
            } => {
                let store = Store::open(target).await?;
                let key = catalog::resolve(&store, cluster_prefix, backup).await?;
                let manifest = catalog::manifest(&store, &key, signing).await?;
                (key, manifest, Reader::Bucket(store))
            }
            Source::File { object, manifest } => {
                let bytes = std::fs::read(manifest).map_err(|e| {
                    Error::Config(format!("--manifest {}: {e}", manifest.display()))
                })?;
                let what = object.display().to_string();
                let manifest = catalog::parse_manifest(&bytes, &what, signing)?;
                (what, manifest, Reader::File(object.clone()))
            }
        };
        match (signing, &manifest.signature) {
            (Some(signing), _) => {
                tracing::info!(%key, key_id = signing.id(), "the manifest's signature verified");
            }
            (None, Some(signature)) => {
                tracing::warn!(%key, key_id = %signature.key_id, "the manifest is signed, but its signature was not checked: give --manifest-key-file (MANIFEST_KEY_FILE)");
            }
            (None, None) => {}
        }
        Ok((key, manifest, reader))
    }

    /// The target cluster's prefix ("" for a file).
    fn prefix(&self) -> &str {
        match &self.source {
            Source::Bucket { cluster_prefix, .. } => cluster_prefix.as_str(),
            Source::File { .. } => "",
        }
    }

    /// Reads the opened backup through every check, handing the snapshot
    /// to `consume` (which must fail if the stream does).
    async fn read<T, F, Fut>(
        &self,
        opened: Opened,
        verb: &'static str,
        consume: F,
    ) -> Result<(String, Manifest, Verified, T), Error>
    where
        F: FnOnce(BoxStream<'static, Result<Bytes, Error>>) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let Opened {
            key,
            manifest,
            chain,
            reader,
        } = opened;
        let object = reader.object(&key).await?;
        let (snapshot, verdict) = verified::snapshot(object, chain, manifest.clone());
        let (mut progress, mut bytes) = (Progress::new(self.progress_interval), 0u64);
        let total = manifest.snapshot.size;
        let snapshot = snapshot.inspect(move |piece| {
            if let Ok(piece) = piece {
                bytes += piece.len() as u64;
                if let Some(line) = progress.due(verb, bytes) {
                    tracing::info!(bytes, total, "{line} of {}", human_bytes(total as f64));
                }
            }
        });
        let consumed = consume(snapshot.boxed()).await;
        let verdict = verdict
            .await
            .map_err(|e| Error::InvalidSnapshot(format!("the check failed: {e}")))?;
        match (verdict, consumed) {
            (Ok(verified), Ok(consumed)) => Ok((key, manifest, verified, consumed)),
            // A failed check first: the consumer's own error (a broken
            // upload) is only its consequence.
            (Err(Unverified::Failed(check)), _) => Err(check),
            // The consumer stopped first (OpenBao refused at once): its
            // error says why.
            (_, Err(consumer)) => Err(consumer),
            (Err(Unverified::ConsumerStopped), Ok(_)) => Err(Error::InvalidSnapshot(
                "the snapshot was not read to its end".into(),
            )),
        }
    }
}

impl Reader {
    async fn object(&self, key: &str) -> Result<ObjectStream, Error> {
        match self {
            Self::Bucket(store) => store.stream(key).await?.ok_or_else(|| {
                Error::Storage(format!(
                    "{}: no such object, though its manifest exists",
                    store.url(key)
                ))
            }),
            Self::File(object) => file_stream(object).await,
        }
    }
}

/// A file's bytes as a stream (`decode --file`, and the drill's verified
/// snapshot).
pub(crate) async fn file_stream(object: &std::path::Path) -> Result<ObjectStream, Error> {
    let file = tokio::fs::File::open(object)
        .await
        .map_err(|e| Error::Config(format!("{}: {e}", object.display())))?;
    Ok(local::file_stream(file, object.display().to_string()))
}

/// One backup in `list`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Listed {
    pub key: String,
    pub kind: String,
    pub started_at: Option<DateTime<Utc>>,
    /// The stored object.
    pub size: u64,
    pub sha256: Option<String>,
    pub snapshot_sha256: Option<String>,
    pub transforms: Vec<String>,
    /// Whether the manifest carries a signature (not checked here).
    pub signed: bool,
    /// Why the manifest could not be read, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The cluster's complete backups, newest first, with their manifests.
pub async fn list(target: &TargetConfig, cluster_prefix: &str) -> Result<Vec<Listed>, Error> {
    let store = Store::open(target).await?;
    let objects = store.list_sizes(cluster_prefix).await?;
    let mut listed = Vec::new();
    for backup in catalog::complete_backups(cluster_prefix, &objects) {
        let mut entry = Listed {
            key: backup.key.clone(),
            kind: backup.kind,
            started_at: DateTime::from_timestamp(backup.time, 0),
            size: backup.size,
            sha256: None,
            snapshot_sha256: None,
            transforms: Vec::new(),
            signed: false,
            error: None,
        };
        match catalog::manifest(&store, &backup.key, None).await {
            Ok(manifest) => {
                entry.started_at = Some(manifest.started_at);
                entry.sha256 = Some(manifest.object.sha256);
                entry.snapshot_sha256 = Some(manifest.snapshot.sha256);
                entry.signed = manifest.signature.is_some();
                entry.transforms = manifest
                    .transforms
                    .iter()
                    .map(|t| format!("{} {}", t.name, t.version))
                    .collect();
            }
            Err(e) => entry.error = Some(e.to_string()),
        }
        listed.push(entry);
    }
    Ok(listed)
}

/// Per transform of the manifest, the plugin that undoes it: a given one
/// with its digest, else the built-in with it; None when neither.
fn match_plugins(
    manifest: &Manifest,
    given: &[PluginSpec],
) -> Result<Vec<Option<PluginSpec>>, Error> {
    let mut by_digest = HashMap::new();
    for spec in given {
        let bytes = component_bytes(spec).map_err(|e| Error::Config(format!("--plugin {e}")))?;
        by_digest.insert(hex::encode(Sha256::digest(&bytes)), spec.clone());
    }
    Ok(manifest
        .transforms
        .iter()
        .map(|record| {
            by_digest
                .get(&record.sha256)
                .cloned()
                .or_else(|| builtin::by_digest(&record.sha256).map(|b| PluginSpec::builtin(b.name)))
        })
        .collect())
}

/// The manifest's transforms, undone in reverse, with the given plugins
/// matched by digest: only the very plugin that encoded may decode. A
/// transform no given plugin matches is undone by the built-in with its
/// digest, if this binary has one (with the recorded configuration).
fn decode_chain(manifest: &Manifest, given: &[PluginSpec], limits: Limits) -> Result<Chain, Error> {
    let matched = match_plugins(manifest, given)?;
    let host = PluginHost::new(limits);
    let mut plugins = Vec::new();
    for (i, (record, spec)) in manifest.transforms.iter().zip(matched).enumerate() {
        let spec = spec.ok_or_else(|| {
                Error::Config(format!(
                    "the backup went through transform {} `{}` {} (sha256 {}), which is not a built-in of this binary: give that plugin's file with --plugin, with the settings decoding needs",
                    i + 1,
                    record.name,
                    record.version,
                    record.sha256
                ))
            })?;
        // The recorded configuration, plus what is given here (secrets).
        let mut config = record.config.clone();
        config.extend(spec.config);
        let spec = PluginSpec {
            file: spec.file,
            sha256: Some(record.sha256.clone()),
            config,
            secret_files: spec.secret_files,
        };
        plugins.push(
            ConfiguredPlugin::load(&spec, &host, Kind::Transform)
                .map_err(|e| Error::Config(format!("--plugin {e}")))?,
        );
    }
    Ok(Chain::new(&plugins, Direction::Decode)?)
}

fn result(
    key: String,
    manifest: &Manifest,
    verified: Verified,
    started_at: DateTime<Utc>,
    clock: Instant,
) -> ReadBackReport {
    ReadBackReport {
        key,
        snapshot: verified.snapshot,
        object: verified.object,
        raft: verified.raft,
        transforms: manifest
            .transforms
            .iter()
            .map(|t| format!("{} {}", t.name, t.version))
            .collect(),
        node: None,
        forced: None,
        output: None,
        started_at,
        duration_seconds: (clock.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
    }
}

/// `verify`: the whole backup downloaded and checked; nothing written.
pub async fn verify(read: &ReadBack) -> Result<ReadBackReport, Error> {
    let (started_at, clock) = (Utc::now(), Instant::now());
    let opened = read.open().await?;
    let (key, manifest, verified, ()) = read
        .read(opened, "verified", |mut snapshot| async move {
            while let Some(piece) = snapshot.next().await {
                piece?;
            }
            Ok(())
        })
        .await?;
    Ok(result(key, &manifest, verified, started_at, clock))
}

/// `decode`: the raw snapshot into `output` (a file, or `-` for stdout). A
/// file appears under its name only once every check passed.
pub async fn decode(read: &ReadBack, output: &std::path::Path) -> Result<ReadBackReport, Error> {
    let (started_at, clock) = (Utc::now(), Instant::now());
    let to_stdout = output.as_os_str() == "-";
    let partial = PathBuf::from(format!("{}.partial", output.display()));
    let opened = read.open().await?;
    let written = read
        .read(opened, "decoded", |snapshot| {
            write_out(snapshot, to_stdout, partial.clone())
        })
        .await;
    match written {
        Ok((key, manifest, verified, ())) => {
            if !to_stdout {
                std::fs::rename(&partial, output)
                    .map_err(|e| Error::Config(format!("--output {}: {e}", output.display())))?;
            }
            let mut done = result(key, &manifest, verified, started_at, clock);
            done.output = Some(output.display().to_string());
            Ok(done)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

async fn write_out(
    mut snapshot: BoxStream<'static, Result<Bytes, Error>>,
    to_stdout: bool,
    partial: PathBuf,
) -> Result<(), Error> {
    let failed = |e: std::io::Error| Error::Config(format!("--output: {e}"));
    let mut out: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>> = if to_stdout {
        Box::pin(tokio::io::stdout())
    } else {
        let file = tokio::fs::File::create(&partial).await.map_err(failed)?;
        Box::pin(tokio::io::BufWriter::new(file))
    };
    while let Some(piece) = snapshot.next().await {
        out.write_all(&piece?).await.map_err(failed)?;
    }
    out.flush().await.map_err(failed)
}

/// The restore's target: which nodes, how to log in, whether to force, and
/// which cluster it is (checked against the backup's manifest).
#[derive(Debug, Clone)]
pub struct RestoreTarget {
    pub openbao: OpenBaoConfig,
    pub auth: Auth,
    pub force: bool,
    pub namespace: String,
    pub cluster: String,
    /// Restore a backup of another cluster (a new cluster replacing a lost one).
    pub allow_other_cluster: bool,
}

/// `restore`: the backup into the active node. The manifest and the
/// plugins are checked before OpenBao is asked anything; then the preview's
/// findings against the live cluster (calls that need no token), and any
/// refusal not forced stops it; the snapshot's last bytes reach OpenBao
/// only once every check passed.
pub async fn restore(read: &ReadBack, target: &RestoreTarget) -> Result<ReadBackReport, Error> {
    let (started_at, clock) = (Utc::now(), Instant::now());
    let openbao = OpenBaoClient::new(target.openbao.clone())?;
    let opened = read.open().await?;
    // A backup of another cluster is refused before OpenBao is asked.
    let plugins = plugin_names(&opened.manifest, &read.plugins)?;
    let backup = backup_of(read, &opened.key, &opened.manifest, plugins);
    let early = preview::cluster(&backup, &live_of(target, None, 0));
    if let Some(refusal) = refusal_of(&opened.key, &[early]) {
        return Err(Error::Config(refusal));
    }
    let node = openbao.find_active().await?;
    let live = openbao.live_state(&node).await?;
    let findings = preview::assess(
        &backup,
        &live_of(target, live.seal.as_ref(), live.raft_index),
    );
    if let Some(refusal) = refusal_of(&opened.key, &findings) {
        return Err(Error::Config(refusal));
    }
    let token = openbao.login(&node, &target.auth).await?;
    let before = openbao.before_restore(&node).await?;
    let raft = &opened.manifest.raft;
    tracing::info!(%node, force = target.force, key = %opened.key, raft_index = raft.index, raft_term = raft.term,
        "restoring: the cluster goes back to the backup's Raft index and term");
    let (key, manifest, verified, ()) = read
        .read(opened, "restored", |snapshot| {
            openbao.restore(&node, &token, snapshot, target.force)
        })
        .await?;
    openbao.wait_applied(&node, &before).await?;
    let mut done = result(key, &manifest, verified, started_at, clock);
    done.node = Some(node.to_string());
    done.forced = Some(target.force);
    Ok(done)
}

/// `restore --dry-run`: the backup's manifest compared with the live
/// cluster, without a token and without a byte of the snapshot sent.
pub async fn preview(read: &ReadBack, target: &RestoreTarget) -> Result<PreviewReport, Error> {
    let (started_at, clock) = (Utc::now(), Instant::now());
    let openbao = OpenBaoClient::new(target.openbao.clone())?;
    let (key, manifest, _) = read.open_manifest().await?;
    let plugins = plugin_names(&manifest, &read.plugins)?;
    let node = openbao.find_active().await?;
    let live = openbao.live_state(&node).await?;
    let findings = preview::assess(
        &backup_of(read, &key, &manifest, plugins),
        &live_of(target, live.seal.as_ref(), live.raft_index),
    );
    Ok(PreviewReport {
        node: node.to_string(),
        object: manifest.object.clone(),
        raft: manifest.raft.clone(),
        key,
        findings,
        started_at,
        duration_seconds: (clock.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
    })
}

/// Per transform, the plugin that undoes it, as the preview names it.
fn plugin_names(manifest: &Manifest, given: &[PluginSpec]) -> Result<Vec<Option<String>>, Error> {
    Ok(match_plugins(manifest, given)?
        .into_iter()
        .map(|spec| spec.map(|spec| spec.file.display().to_string()))
        .collect())
}

fn backup_of<'a>(
    read: &'a ReadBack,
    key: &'a str,
    manifest: &'a Manifest,
    plugins: Vec<Option<String>>,
) -> preview::Backup<'a> {
    preview::Backup {
        key,
        manifest,
        prefix: read.prefix(),
        plugins,
        signature_checked: read.manifest_key_file.is_some(),
    }
}

fn live_of<'a>(
    target: &'a RestoreTarget,
    seal: Option<&'a SealStatus>,
    raft_index: u64,
) -> preview::Live<'a> {
    preview::Live {
        namespace: &target.namespace,
        cluster: &target.cluster,
        seal,
        raft_index,
        allow_other_cluster: target.allow_other_cluster,
        force: target.force,
        now: Utc::now(),
    }
}

/// The refusals among `findings` as one line naming the flags that force
/// them; what was forced and every other warning is logged.
fn refusal_of(key: &str, findings: &[Finding]) -> Option<String> {
    for f in findings.iter().filter(|f| f.verdict == Verdict::Warn) {
        tracing::warn!(%key, check = %f.check, forced = f.override_.is_some(), "{}", f.message);
    }
    contract::preview::refusal(key, findings, Override::flag)
}
