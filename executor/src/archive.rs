//! Checks, while it streams by, that the snapshot is a complete Raft
//! snapshot archive: the gzip stream intact to its trailer (its CRC32 covers
//! every archive byte), exactly meta.json, state.bin, SHA256SUMS and
//! SHA256SUMS.sealed, meta.json matching its SHA256SUMS line, and state.bin
//! as long as meta.json says. A node that fails half-way through a snapshot
//! can still end its HTTP response cleanly; without this check such a
//! truncated snapshot would be stored as a good backup.
//!
//! state.bin's own SHA-256 is left to restore (OpenBao checks it) and to
//! offline verification: here it would be a third SHA-256 pass over every
//! byte (after the snapshot digest and the upload signature), for corruption
//! the gzip CRC32 already catches.
//!
//! The check runs on a blocking thread, beside the uploads, over the same
//! part buffers, and computes the snapshot's size and SHA-256 on the way.

use std::io::{self, Read};

use bytes::{Buf, Bytes};
use flate2::read::GzDecoder;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use contract::snapshot::RaftInfo;

use crate::error::Error;

const FILES: [&str; 4] = ["meta.json", "state.bin", "SHA256SUMS", "SHA256SUMS.sealed"];

pub struct ArchiveCheck {
    tx: mpsc::Sender<Bytes>,
    task: JoinHandle<Result<Checked, String>>,
}

pub struct Checked {
    pub size: u64,
    pub sha256: String,
    pub raft: RaftInfo,
}

impl ArchiveCheck {
    pub fn start() -> Self {
        // One part queued at most: the check runs at GiB/s, faster than any
        // upload, so it never holds a part longer than the upload does.
        let (tx, rx) = mpsc::channel(1);
        let task = tokio::task::spawn_blocking(move || {
            let mut reader = ChannelReader {
                rx,
                chunk: Bytes::new(),
                size: 0,
                hasher: Sha256::new(),
            };
            let raft = check(&mut reader)?;
            // Hash whatever follows the archive too: the digest covers every stored byte.
            io::copy(&mut reader, &mut io::sink()).map_err(|e| e.to_string())?;
            Ok(Checked {
                size: reader.size,
                sha256: hex::encode(reader.hasher.finalize()),
                raft,
            })
        });
        Self { tx, task }
    }

    /// Hands the next bytes to the checker; fails as soon as the checker has
    /// found a problem.
    pub async fn feed(&mut self, bytes: Bytes) -> Result<(), Error> {
        if self.tx.send(bytes).await.is_err() {
            // The checker stops reading early only when it found a problem.
            return Err(verdict(&mut self.task).await.err().unwrap_or_else(|| {
                Error::InvalidSnapshot("the archive ended before the stream did".into())
            }));
        }
        Ok(())
    }

    /// Ends the stream and returns the verdict.
    pub async fn finish(mut self) -> Result<Checked, Error> {
        drop(self.tx);
        verdict(&mut self.task).await
    }
}

async fn verdict(task: &mut JoinHandle<Result<Checked, String>>) -> Result<Checked, Error> {
    task.await
        .map_err(|e| Error::InvalidSnapshot(format!("archive check failed: {e}")))?
        .map_err(Error::InvalidSnapshot)
}

/// The blocking side of the channel as a `Read`, hashing what goes through.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    chunk: Bytes,
    size: u64,
    hasher: Sha256,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => {
                    self.hasher.update(&chunk);
                    self.size += chunk.len() as u64;
                    self.chunk = chunk;
                }
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
    let mut seen: Vec<String> = Vec::new();
    let (mut meta, mut sums, mut state_size) = (None, None, None);
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
        if seen.contains(&name) {
            return Err(format!("`{name}` appears twice in the archive"));
        }
        let truncated = |e: io::Error| format!("archive ends inside `{name}`: {e}");
        match name.as_str() {
            "state.bin" => {
                state_size = Some(io::copy(&mut entry, &mut io::sink()).map_err(truncated)?)
            }
            "meta.json" | "SHA256SUMS" => {
                let mut data = Vec::new();
                entry.read_to_end(&mut data).map_err(truncated)?;
                if name == "meta.json" {
                    meta = Some(data)
                } else {
                    sums = Some(data)
                }
            }
            _ => {
                io::copy(&mut entry, &mut io::sink()).map_err(truncated)?;
            }
        }
        seen.push(name);
    }
    // Read through the gzip trailer: its CRC32 and length cover every
    // archive byte and catch a stream cut after the tar end marker.
    io::copy(&mut archive.into_inner(), &mut io::sink())
        .map_err(|e| format!("gzip stream is incomplete or corrupt: {e}"))?;

    if let Some(file) = FILES.iter().find(|f| !seen.iter().any(|n| n == *f)) {
        return Err(format!(
            "the archive has no `{file}`: the snapshot is incomplete"
        ));
    }
    let (meta, sums) = (meta.unwrap_or_default(), sums.unwrap_or_default());
    let sums = String::from_utf8(sums).map_err(|_| "SHA256SUMS is not text".to_string())?;
    let listed = |file: &str| {
        sums.lines()
            .find_map(|line| {
                line.split_once("  ")
                    .filter(|(_, n)| *n == file)
                    .map(|(d, _)| d)
            })
            .ok_or_else(|| format!("SHA256SUMS does not list `{file}`"))
    };
    listed("state.bin")?;
    if listed("meta.json")? != hex::encode(Sha256::digest(&meta)) {
        return Err(
            "meta.json does not match its SHA-256 in SHA256SUMS: the snapshot is corrupt".into(),
        );
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Meta {
        index: u64,
        term: u64,
        size: u64,
    }
    let meta: Meta = serde_json::from_slice(&meta)
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
        let err = check(&data[..]).unwrap_err();
        assert!(err.contains("does not have a matching checksum"), "{err}");
    }

    #[test]
    fn refuses_what_is_not_a_snapshot() {
        let err = check(&b"<html>502 Bad Gateway</html>"[..]).unwrap_err();
        assert_eq!(err, "unreadable archive: invalid gzip header");
        let err = check(&b""[..]).unwrap_err();
        assert_eq!(err, "unreadable archive: unexpected end of file");
    }
}
