//! A stored backup read back as the snapshot it holds, checked on the way:
//! the object's digest, the plugin chain undone, the archive's structure and
//! the snapshot's digest, each against the manifest.
//!
//! The last piece is held back until every check has passed. Whoever
//! consumes the stream (OpenBao's restore endpoint, a file) therefore never
//! receives a complete snapshot that failed a check: on a mismatch the
//! stream ends with an error instead of its last bytes, and OpenBao, which
//! reads the whole body before it installs anything, sees a broken upload.
//! No spool is needed.

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::archive::{ArchiveCheck, RaftInfo};
use crate::backup::{CHAIN_PIECE, Manifest, feed_chain};
use crate::chain::{Chain, ContentDigest, Side};
use crate::error::BackupError;

/// What the checks found, once the stream has ended.
#[derive(Debug, Clone)]
pub struct Verified {
    pub object: ContentDigest,
    pub snapshot: ContentDigest,
    pub raft: RaftInfo,
}

/// Why the read-back did not verify: a check failed (or the source broke),
/// or the consumer stopped reading, whose own error then says why.
#[derive(Debug)]
pub enum Unverified {
    Failed(BackupError),
    ConsumerStopped,
}

impl From<BackupError> for Unverified {
    fn from(error: BackupError) -> Self {
        Self::Failed(error)
    }
}

/// The snapshot as a stream, and the verdict. The stream yields an error
/// (and never its last bytes) when a check fails; the verdict says which.
pub fn snapshot(
    object: impl Stream<Item = Result<Bytes, BackupError>> + Send + 'static,
    chain: Chain,
    manifest: Manifest,
) -> (
    impl Stream<Item = Result<Bytes, BackupError>> + Send + 'static,
    JoinHandle<Result<Verified, Unverified>>,
) {
    let (tx, rx) = mpsc::channel(1);
    let task = tokio::spawn(async move {
        let verdict = read_back(object, chain, &manifest, &tx).await;
        match &verdict {
            Ok((last, _)) => {
                if let Some(last) = last {
                    // Every check passed: now the consumer may complete.
                    let _ = tx.send(Ok(last.clone())).await;
                }
            }
            Err(_) => {
                // Break the consumer's stream; the verdict has the reason.
                let _ = tx
                    .send(Err(BackupError::InvalidSnapshot(
                        "the backup failed a check: stream aborted".into(),
                    )))
                    .await;
            }
        }
        verdict.map(|(_, verified)| verified)
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (stream, task)
}

/// Runs the checks and forwards all but the last piece.
async fn read_back(
    object: impl Stream<Item = Result<Bytes, BackupError>>,
    chain: Chain,
    manifest: &Manifest,
    tx: &mpsc::Sender<Result<Bytes, BackupError>>,
) -> Result<(Option<Bytes>, Verified), Unverified> {
    let (input, mut output, chain) = chain.spawn(Some(Side::Input));
    let check = async {
        let mut archive = ArchiveCheck::start();
        let mut held: Option<Bytes> = None;
        while let Some(piece) = output.recv().await {
            let piece = piece.map_err(BackupError::from)?;
            if piece.is_empty() {
                continue;
            }
            archive.feed(piece.clone()).await?;
            if let Some(ready) = held.replace(piece)
                && tx.send(Ok(ready)).await.is_err()
            {
                return Err(Unverified::ConsumerStopped);
            }
        }
        let object = chain
            .finished()
            .await
            .map_err(|e| BackupError::InvalidSnapshot(e.to_string()))?
            .expect("the chain hashes its input");
        let checked = archive.finish().await?;
        let snapshot = ContentDigest {
            size: checked.size,
            sha256: checked.sha256,
        };
        Ok((held, object, snapshot, checked.raft))
    };
    let feed = async {
        feed_chain(object, CHAIN_PIECE, input, async |_| Ok(()))
            .await
            .map(drop)
            .map_err(Unverified::from)
    };
    let ((), (held, object, snapshot, raft)) = tokio::try_join!(feed, check)?;
    compare("stored object", &object, &manifest.object)?;
    compare("decoded snapshot", &snapshot, &manifest.snapshot)?;
    if raft != manifest.raft {
        return Err(BackupError::InvalidSnapshot(format!(
            "the snapshot holds Raft index {} term {} ({} bytes of state), the manifest records index {} term {} ({} bytes): the backup was altered",
            raft.index,
            raft.term,
            raft.state_size,
            manifest.raft.index,
            manifest.raft.term,
            manifest.raft.state_size
        ))
        .into());
    }
    Ok((
        held,
        Verified {
            object,
            snapshot,
            raft,
        },
    ))
}

fn compare(what: &str, found: &ContentDigest, recorded: &ContentDigest) -> Result<(), BackupError> {
    if found == recorded {
        return Ok(());
    }
    Err(BackupError::InvalidSnapshot(format!(
        "the {what} has {} bytes with SHA-256 {}, the manifest records {} bytes with SHA-256 {}: the backup was altered or corrupted",
        found.size, found.sha256, recorded.size, recorded.sha256
    )))
}
