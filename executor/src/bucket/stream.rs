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

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::archive::ArchiveCheck;
use crate::error::Error;
use contract::manifest::Manifest;
use contract::snapshot::{ContentDigest, RaftInfo};
use plugin_host::chain::{Chain, ChainInput, Side};

/// Bytes per push into the transform chain: large enough that a call's
/// overhead vanishes, small enough to keep plugin memory low.
pub const CHAIN_PIECE: usize = 1024 * 1024;

/// Cuts a stream into pieces of one size (chain pieces, upload parts).
pub struct PartBuffer {
    size: usize,
    buf: BytesMut,
}

impl PartBuffer {
    pub fn new(size: usize) -> Self {
        Self {
            size,
            buf: BytesMut::new(),
        }
    }

    /// Copies bytes from the front of `chunk` and returns a piece once one
    /// is full. Call again while `chunk` is not empty. A piece is allocated
    /// at its full size when its first byte arrives and never shares the
    /// chunk's buffer, which can be larger than a piece: memory is whole
    /// pieces, whatever sizes the source writes.
    pub fn fill(&mut self, chunk: &mut Bytes) -> Option<Bytes> {
        if self.buf.capacity() == 0 {
            self.buf = BytesMut::with_capacity(self.size);
        }
        let take = (self.size - self.buf.len()).min(chunk.len());
        self.buf.extend_from_slice(&chunk.split_to(take));
        (self.buf.len() == self.size).then(|| std::mem::take(&mut self.buf).freeze())
    }

    /// Pieces from the next one on have `size` bytes.
    pub fn resize(&mut self, size: usize) {
        self.size = size;
    }

    /// The last, possibly short, piece.
    pub fn finish(self) -> Option<Bytes> {
        (!self.buf.is_empty()).then(|| self.buf.freeze())
    }
}

/// Cuts `stream` into pieces of `piece_size` for the chain, showing each
/// to `tap` first, then ends the chain's input; returns the bytes read. A
/// chain that stops early has failed, and whoever reads its output reports
/// why: feeding then waits for that rather than race it.
pub async fn feed_chain(
    stream: impl Stream<Item = Result<Bytes, Error>>,
    piece_size: usize,
    chain: ChainInput,
    mut tap: impl AsyncFnMut(&Bytes) -> Result<(), Error>,
) -> Result<u64, Error> {
    let mut pass = async |piece: Bytes| -> Result<(), Error> {
        tap(&piece).await?;
        if !chain.send(piece).await {
            std::future::pending::<()>().await;
        }
        Ok(())
    };
    let mut stream = std::pin::pin!(stream);
    let mut buffer = PartBuffer::new(piece_size);
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk?;
        size += chunk.len() as u64;
        while !chunk.is_empty() {
            if let Some(piece) = buffer.fill(&mut chunk) {
                pass(piece).await?;
            }
        }
    }
    if let Some(last) = buffer.finish() {
        pass(last).await?;
    }
    if !chain.end().await {
        std::future::pending::<()>().await;
    }
    Ok(size)
}

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
    Failed(Error),
    ConsumerStopped,
}

impl From<Error> for Unverified {
    fn from(error: Error) -> Self {
        Self::Failed(error)
    }
}

/// The snapshot as a stream, and the verdict. The stream yields an error
/// (and never its last bytes) when a check fails; the verdict says which.
pub fn snapshot(
    object: impl Stream<Item = Result<Bytes, Error>> + Send + 'static,
    chain: Chain,
    manifest: Manifest,
) -> (
    impl Stream<Item = Result<Bytes, Error>> + Send + 'static,
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
                    .send(Err(Error::InvalidSnapshot(
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
    object: impl Stream<Item = Result<Bytes, Error>>,
    chain: Chain,
    manifest: &Manifest,
    tx: &mpsc::Sender<Result<Bytes, Error>>,
) -> Result<(Option<Bytes>, Verified), Unverified> {
    let (input, mut output, chain) = chain.spawn(Some(Side::Input));
    let check = async {
        let mut archive = ArchiveCheck::start();
        let mut held: Option<Bytes> = None;
        while let Some(piece) = output.recv().await {
            let piece = piece.map_err(Error::from)?;
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
            .map_err(|e| Error::InvalidSnapshot(e.to_string()))?
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
        return Err(Error::InvalidSnapshot(format!(
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

/// A digest found against the manifest's, as one line naming what differs.
pub(crate) fn compare(
    what: &str,
    found: &ContentDigest,
    recorded: &ContentDigest,
) -> Result<(), Error> {
    if found == recorded {
        return Ok(());
    }
    Err(Error::InvalidSnapshot(format!(
        "the {what} has {} bytes with SHA-256 {}, the manifest records {} bytes with SHA-256 {}: the backup was altered or corrupted",
        found.size, found.sha256, recorded.size, recorded.sha256
    )))
}

/// An object's size and SHA-256, read to its end (a second copy read back).
pub(crate) async fn object_digest(
    object: impl Stream<Item = Result<Bytes, Error>>,
) -> Result<ContentDigest, Error> {
    use sha2::{Digest, Sha256};
    let mut object = std::pin::pin!(object);
    let (mut hasher, mut size) = (Sha256::new(), 0u64);
    while let Some(chunk) = object.next().await {
        let chunk = chunk?;
        size += chunk.len() as u64;
        hasher.update(&chunk);
    }
    Ok(ContentDigest {
        size,
        sha256: hex::encode(hasher.finalize()),
    })
}
