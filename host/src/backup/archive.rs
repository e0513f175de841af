//! Checks, while it streams by, that the snapshot is a complete Raft
//! snapshot archive that OpenBao's restore would accept: gzip intact to its
//! trailer, only meta.json, state.bin, SHA256SUMS and SHA256SUMS.sealed, and
//! every checksum in SHA256SUMS right. A node that fails half-way through a
//! snapshot can still end its HTTP response cleanly; without this check such
//! a truncated snapshot would be stored as a good backup.
//!
//! The check runs on a blocking thread fed through a small channel, beside
//! the upload, so it costs a core's share of time, not memory.

use std::io::{self, Read};

use bytes::{Buf, Bytes};
use flate2::read::GzDecoder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::BackupError;

const FILES: [&str; 4] = ["meta.json", "state.bin", "SHA256SUMS", "SHA256SUMS.sealed"];

/// What the archive says about the Raft state it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RaftInfo {
    pub index: u64,
    pub term: u64,
    pub state_size: u64,
}

pub struct ArchiveCheck {
    tx: mpsc::Sender<Bytes>,
    task: JoinHandle<Result<RaftInfo, String>>,
}

impl ArchiveCheck {
    pub fn start() -> Self {
        let (tx, rx) = mpsc::channel(16);
        let task = tokio::task::spawn_blocking(move || {
            check(ChannelReader {
                rx,
                chunk: Bytes::new(),
            })
        });
        Self { tx, task }
    }

    /// Hands a chunk to the checker; fails as soon as the checker has found
    /// a problem.
    pub async fn feed(&mut self, chunk: Bytes) -> Result<(), BackupError> {
        if self.tx.send(chunk).await.is_err() {
            // The checker stopped early: it found a problem.
            return Err(self.verdict().await.err().unwrap_or_else(|| {
                BackupError::InvalidSnapshot("the archive ended before the stream did".into())
            }));
        }
        Ok(())
    }

    /// Ends the stream and returns the verdict.
    pub async fn finish(self) -> Result<RaftInfo, BackupError> {
        drop(self.tx);
        self.task
            .await
            .map_err(|e| BackupError::InvalidSnapshot(format!("archive check failed: {e}")))?
            .map_err(BackupError::InvalidSnapshot)
    }

    async fn verdict(&mut self) -> Result<RaftInfo, BackupError> {
        (&mut self.task)
            .await
            .map_err(|e| BackupError::InvalidSnapshot(format!("archive check failed: {e}")))?
            .map_err(BackupError::InvalidSnapshot)
    }
}

/// The blocking side of the channel as a `Read`.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    chunk: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.chunk = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        self.chunk.copy_to_slice(&mut buf[..n]);
        Ok(n)
    }
}

pub fn check(input: impl Read) -> Result<RaftInfo, String> {
    let mut archive = tar::Archive::new(GzDecoder::new(input));
    let mut digests: Vec<(String, String)> = Vec::new();
    let (mut meta, mut sums) = (None, None);
    let mut state_size = None;
    let entries = archive
        .entries()
        .map_err(|e| format!("not a gzip tar archive: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("unreadable archive: {e}"))?;
        let name = entry
            .path()
            .map_err(|e| format!("unreadable archive entry name: {e}"))?
            .to_string_lossy()
            .into_owned();
        if !FILES.contains(&name.as_str()) {
            return Err(format!(
                "unexpected file `{name}` in the archive (OpenBao would refuse to restore it)"
            ));
        }
        if digests.iter().any(|(n, _)| *n == name) {
            return Err(format!("`{name}` appears twice in the archive"));
        }
        let mut hasher = Sha256::new();
        let mut kept = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        loop {
            let n = entry
                .read(&mut buf)
                .map_err(|e| format!("archive ends inside `{name}`: {e}"))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
            if name != "state.bin" {
                kept.extend_from_slice(&buf[..n]);
            }
        }
        match name.as_str() {
            "meta.json" => meta = Some(kept),
            "SHA256SUMS" => sums = Some(kept),
            "state.bin" => state_size = Some(size),
            _ => {}
        }
        digests.push((name, hex::encode(hasher.finalize())));
    }
    // Read through the gzip trailer: its CRC and length catch a stream that
    // was cut after the tar end marker.
    io::copy(&mut archive.into_inner(), &mut io::sink())
        .map_err(|e| format!("gzip stream is incomplete or corrupt: {e}"))?;

    let missing = FILES.iter().find(|f| !digests.iter().any(|(n, _)| n == *f));
    if let Some(file) = missing {
        return Err(format!(
            "the archive has no `{file}`: the snapshot is incomplete"
        ));
    }
    let sums = String::from_utf8(sums.unwrap_or_default())
        .map_err(|_| "SHA256SUMS is not text".to_string())?;
    for file in ["meta.json", "state.bin"] {
        let listed = sums
            .lines()
            .find_map(|line| {
                line.split_once("  ")
                    .filter(|(_, n)| *n == file)
                    .map(|(d, _)| d)
            })
            .ok_or_else(|| format!("SHA256SUMS does not list `{file}`"))?;
        let actual = &digests.iter().find(|(n, _)| n == file).expect("present").1;
        if listed != actual {
            return Err(format!(
                "`{file}` does not match its SHA-256 in SHA256SUMS: the snapshot is corrupt"
            ));
        }
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Meta {
        index: u64,
        term: u64,
        size: u64,
    }
    let meta: Meta = serde_json::from_slice(&meta.unwrap_or_default())
        .map_err(|e| format!("meta.json is not Raft metadata: {e}"))?;
    let state_size = state_size.expect("present");
    if meta.size != state_size {
        return Err(format!(
            "state.bin holds {state_size} bytes but meta.json says {}",
            meta.size
        ));
    }
    Ok(RaftInfo {
        index: meta.index,
        term: meta.term,
        state_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::SnapshotSpec;
    use testkit::snapshot::write_snapshot;

    fn archive(spec: &SnapshotSpec) -> Vec<u8> {
        let mut out = Vec::new();
        write_snapshot(spec, b"barrier", &mut out).unwrap();
        out
    }

    #[test]
    fn accepts_complete_archives() {
        for (size, level) in [(0, 1), (1, 6), (300_000, 0), (300_000, 1)] {
            let spec = SnapshotSpec {
                gzip_level: level,
                ..SnapshotSpec::new(size, 3)
            };
            let info = check(&archive(&spec)[..]).unwrap();
            assert_eq!(
                (info.index, info.term, info.state_size),
                (spec.index, spec.term, size)
            );
        }
    }

    #[test]
    fn refuses_every_truncation() {
        let data = archive(&SnapshotSpec {
            gzip_level: 0,
            ..SnapshotSpec::new(200_000, 4)
        });
        // Inside the gzip header, meta.json, state.bin, the sums, the tar end
        // marker and the gzip trailer.
        for cut in [
            5,
            600,
            1_500,
            100_000,
            data.len() - 2_000,
            data.len() - 600,
            data.len() - 4,
            data.len() - 1,
        ] {
            assert!(
                check(&data[..cut]).is_err(),
                "a snapshot cut at {cut} of {} passed",
                data.len()
            );
        }
    }

    #[test]
    fn refuses_corruption() {
        let mut data = archive(&SnapshotSpec {
            gzip_level: 0,
            ..SnapshotSpec::new(200_000, 5)
        });
        let middle = data.len() / 2;
        data[middle] ^= 0x40;
        assert!(check(&data[..]).is_err());
    }

    #[test]
    fn refuses_what_is_not_a_snapshot() {
        let err = check(&b"<html>502 Bad Gateway</html>"[..]).unwrap_err();
        assert!(err.contains("gzip") || err.contains("archive"), "{err}");
        let err = check(&b""[..]).unwrap_err();
        assert!(
            err.contains("no `meta.json`") || err.contains("archive"),
            "{err}"
        );
    }
}
