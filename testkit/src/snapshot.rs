//! Raft snapshot archives as OpenBao writes and reads them (hashicorp/raft-
//! snapshot): gzip(tar(meta.json, state.bin, SHA256SUMS, SHA256SUMS.sealed)).
//!
//! `state.bin` is generated on the fly from a seed, so archives of any size
//! cost no memory. Like a real barrier-encrypted BoltDB file it is mostly
//! ciphertext (random bytes) with a little structure (key paths), so it
//! barely compresses.

use std::io::{self, Read, Write};

use flate2::{Compression, read::GzDecoder};
use ring::hmac;
use sha2::{Digest, Sha256};

pub const ALLOWED_FILES: [&str; 4] = ["meta.json", "state.bin", "SHA256SUMS", "SHA256SUMS.sealed"];

#[derive(Debug, Clone)]
pub struct SnapshotSpec {
    /// Size of state.bin (the FSM data); the archive adds about 3 KiB.
    pub state_size: u64,
    /// Same seed, same bytes.
    pub seed: u64,
    /// 0 (stored blocks) to 9. Real snapshots use Go's default (6), which on
    /// ciphertext falls back to stored blocks anyway; 0 lets the fake serve
    /// GiBs faster than any S3 server takes them.
    pub gzip_level: u32,
    pub index: u64,
    pub term: u64,
    /// Bytes of gzip FEXTRA header field: valid gzip that readers skip, used
    /// to make an archive exactly a given size (see `with_archive_size`).
    pub gzip_extra: usize,
}

impl SnapshotSpec {
    pub fn new(state_size: u64, seed: u64) -> Self {
        Self {
            state_size,
            seed,
            gzip_level: 1,
            index: 4242 + seed,
            term: 7,
            gzip_extra: 0,
        }
    }

    /// A spec whose archive is exactly `archive_size` bytes (at least 64 KiB),
    /// to put the stream end exactly on a part boundary.
    pub fn with_archive_size(archive_size: u64, seed: u64) -> Self {
        let mut spec = Self {
            gzip_level: 0,
            ..Self::new(archive_size.saturating_sub(40_000), seed)
        };
        let base = spec.archive_size();
        let extra = archive_size
            .checked_sub(base + 2)
            .expect("archive_size of at least 64 KiB");
        spec.gzip_extra = usize::try_from(extra).expect("fits");
        assert!(spec.gzip_extra <= 65_535, "FEXTRA holds at most 64 KiB");
        debug_assert_eq!(spec.archive_size(), archive_size);
        spec
    }

    /// Size of the archive this spec produces (generates it once).
    pub fn archive_size(&self) -> u64 {
        let mut counter = CountingSink(0);
        write_snapshot(self, b"size", &mut counter).expect("counting never fails");
        counter.0
    }
}

struct CountingSink(u64);

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes the archive into `out`. `barrier_key` seals SHA256SUMS the way
/// OpenBao seals it with its barrier, so only the same cluster accepts it
/// without `snapshot-force`.
pub fn write_snapshot(spec: &SnapshotSpec, barrier_key: &[u8], out: impl Write) -> io::Result<()> {
    let extra = vec![0u8; spec.gzip_extra];
    if spec.gzip_level == 0 {
        write_tar(spec, barrier_key, StoredGzip::new(out, &extra)?)?.finish()
    } else {
        let mut gzip = flate2::GzBuilder::new();
        if !extra.is_empty() {
            gzip = gzip.extra(extra);
        }
        let gzip = gzip.write(out, Compression::new(spec.gzip_level));
        write_tar(spec, barrier_key, gzip)?.finish()?.flush()
    }
}

fn write_tar<W: Write>(spec: &SnapshotSpec, barrier_key: &[u8], out: W) -> io::Result<W> {
    let mut tar = tar::Builder::new(out);
    let meta = serde_json::to_vec(&serde_json::json!({
        "Version": 1,
        "ID": format!("{}-{}-{}", spec.term, spec.index, spec.seed),
        "Index": spec.index,
        "Term": spec.term,
        "Peers": "",
        "Configuration": {"Servers": [{"Suffrage": 0, "ID": "openbao-0", "Address": "openbao-0.openbao-internal:8201"}]},
        "ConfigurationIndex": 1,
        "Size": spec.state_size,
    }))?;
    append(&mut tar, "meta.json", meta.len() as u64, &meta[..])?;
    let mut state = HashingReader::new(StateReader::new(spec.state_size, spec.seed));
    append(&mut tar, "state.bin", spec.state_size, &mut state)?;
    let sums = format!(
        "{}  meta.json\n{}  state.bin\n",
        hex::encode(Sha256::digest(&meta)),
        state.hex_digest()
    );
    append(&mut tar, "SHA256SUMS", sums.len() as u64, sums.as_bytes())?;
    let sealed = seal(barrier_key, sums.as_bytes());
    append(
        &mut tar,
        "SHA256SUMS.sealed",
        sealed.len() as u64,
        sealed.as_bytes(),
    )?;
    tar.into_inner()
}

/// gzip with stored (uncompressed) deflate blocks, what a compressor emits
/// for ciphertext anyway; miniz's level 0 is several times slower than this.
struct StoredGzip<W: Write> {
    out: W,
    block: Vec<u8>,
    crc: crc32fast::Hasher,
    size: u32,
}

impl<W: Write> StoredGzip<W> {
    const BLOCK: usize = 65_535;

    fn new(mut out: W, extra: &[u8]) -> io::Result<Self> {
        let flags = if extra.is_empty() { 0 } else { 0x04 };
        out.write_all(&[0x1f, 0x8b, 8, flags, 0, 0, 0, 0, 0, 0xff])?;
        if !extra.is_empty() {
            out.write_all(&(extra.len() as u16).to_le_bytes())?;
            out.write_all(extra)?;
        }
        Ok(Self {
            out,
            block: Vec::with_capacity(Self::BLOCK),
            crc: crc32fast::Hasher::new(),
            size: 0,
        })
    }

    fn emit(&mut self, last: bool) -> io::Result<()> {
        let len = self.block.len() as u16;
        self.out.write_all(&[u8::from(last)])?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(&(!len).to_le_bytes())?;
        self.out.write_all(&self.block)?;
        self.block.clear();
        Ok(())
    }

    fn finish(mut self) -> io::Result<()> {
        self.emit(true)?;
        let crc = self.crc.clone().finalize();
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.write_all(&self.size.to_le_bytes())?;
        self.out.flush()
    }
}

impl<W: Write> Write for StoredGzip<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(Self::BLOCK - self.block.len());
        self.block.extend_from_slice(&data[..n]);
        self.crc.update(&data[..n]);
        self.size = self.size.wrapping_add(n as u32);
        if self.block.len() == Self::BLOCK {
            self.emit(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    size: u64,
    data: impl Read,
) -> io::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_size(size);
    header.set_mode(0o600);
    header.set_mtime(1_700_000_000);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, name, data)
}

fn seal(barrier_key: &[u8], sums: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, barrier_key);
    hex::encode(hmac::sign(&key, sums).as_ref())
}

/// OpenBao's refusal of a snapshot sealed with another key.
pub const OTHER_SEAL_KEY: &str = "could not verify hash file, possibly the snapshot is using a different autoseal key; use the snapshot-force API to bypass this check";

/// What a restore found in a valid archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub index: u64,
    pub term: u64,
    pub state_size: u64,
    pub state_sha256: String,
    sums: Vec<u8>,
    sealed: Option<Vec<u8>>,
}

impl SnapshotInfo {
    /// Whether the archive's sealed sums open with this barrier key: a
    /// node with another key cannot decrypt the restored state.
    pub fn sealed_with(&self, barrier_key: &[u8]) -> bool {
        self.sealed.as_ref().is_some_and(|sealed| {
            String::from_utf8_lossy(sealed).trim() == seal(barrier_key, &self.sums)
        })
    }
}

/// Checks an archive the way OpenBao's restore does: only the known files,
/// every checksum in SHA256SUMS matches, and (unless `barrier_key` is None,
/// as with `snapshot-force`) the sealed sums open with this barrier key.
pub fn verify_snapshot(
    input: impl Read,
    barrier_key: Option<&[u8]>,
) -> Result<SnapshotInfo, String> {
    let mut archive = tar::Archive::new(GzDecoder::new(input));
    let mut digests = Vec::new();
    let (mut meta, mut sums, mut sealed) = (None, None, None);
    let mut state = None;
    for entry in archive
        .entries()
        .map_err(|e| format!("failed to read snapshot archive: {e}"))?
    {
        let mut entry = entry.map_err(|e| format!("failed to read snapshot archive: {e}"))?;
        let name = entry
            .path()
            .map_err(|e| e.to_string())?
            .to_string_lossy()
            .into_owned();
        match name.as_str() {
            "meta.json" | "SHA256SUMS" | "SHA256SUMS.sealed" => {
                let mut data = Vec::new();
                entry
                    .read_to_end(&mut data)
                    .map_err(|e| format!("failed to read {name}: {e}"))?;
                digests.push((name.clone(), hex::encode(Sha256::digest(&data))));
                match name.as_str() {
                    "meta.json" => meta = Some(data),
                    "SHA256SUMS" => sums = Some(data),
                    _ => sealed = Some(data),
                }
            }
            "state.bin" => {
                let mut hashing = HashingReader::new(&mut entry);
                let size = io::copy(&mut hashing, &mut io::sink())
                    .map_err(|e| format!("failed to read state.bin: {e}"))?;
                let digest = hashing.hex_digest();
                digests.push((name.clone(), digest.clone()));
                state = Some((size, digest));
            }
            other => return Err(format!("unexpected file in snapshot archive: {other}")),
        }
    }
    let meta = meta.ok_or("snapshot archive has no meta.json")?;
    let sums = sums.ok_or("snapshot archive has no SHA256SUMS")?;
    let (state_size, state_sha256) = state.ok_or("snapshot archive has no state.bin")?;
    for line in String::from_utf8_lossy(&sums).lines() {
        let (want, name) = line
            .split_once("  ")
            .ok_or_else(|| format!("malformed SHA256SUMS line: {line}"))?;
        let got = digests
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d.as_str());
        if got != Some(want) {
            return Err(format!(
                "failed checking integrity of snapshot: hash check failed for \"{name}\""
            ));
        }
    }
    for required in ["meta.json", "state.bin"] {
        if !String::from_utf8_lossy(&sums).contains(&format!("  {required}\n")) {
            return Err(format!("SHA256SUMS has no entry for {required}"));
        }
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&meta).map_err(|e| format!("invalid meta.json: {e}"))?;
    if meta["Size"].as_u64() != Some(state_size) {
        return Err(format!(
            "state.bin has {state_size} bytes, meta.json says {}",
            meta["Size"]
        ));
    }
    let info = SnapshotInfo {
        index: meta["Index"].as_u64().unwrap_or_default(),
        term: meta["Term"].as_u64().unwrap_or_default(),
        state_size,
        state_sha256,
        sums,
        sealed,
    };
    if let Some(key) = barrier_key
        && !info.sealed_with(key)
    {
        return Err(OTHER_SEAL_KEY.into());
    }
    Ok(info)
}

/// Pseudo-random FSM data: records of a key path (text) and a value
/// (random, like barrier ciphertext).
struct StateReader {
    remaining: u64,
    rng: u64,
    record: u64,
    block: Vec<u8>,
    pos: usize,
}

impl StateReader {
    fn new(size: u64, seed: u64) -> Self {
        Self {
            remaining: size,
            rng: seed ^ 0x9e37_79b9_7f4a_7c15,
            record: 0,
            block: Vec::new(),
            pos: 0,
        }
    }

    fn next_u64(&mut self) -> u64 {
        // wyrand: fast and good enough to defeat compressors.
        self.rng = self.rng.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.rng) * u128::from(self.rng ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    }

    fn refill(&mut self) {
        self.block.clear();
        self.pos = 0;
        while self.block.len() < 64 * 1024 {
            self.record += 1;
            let path = format!(
                "logical/{:016x}/secret/data/app-{}/config\n",
                self.next_u64(),
                self.record % 977
            );
            self.block.extend_from_slice(path.as_bytes());
            let value_len = 512 + (self.next_u64() % 1536) as usize;
            let start = self.block.len();
            self.block.resize(start + value_len.next_multiple_of(8), 0);
            for i in (start..self.block.len()).step_by(8) {
                let word = self.next_u64().to_le_bytes();
                self.block[i..i + 8].copy_from_slice(&word);
            }
        }
    }
}

impl Read for StateReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        if self.pos == self.block.len() {
            self.refill();
        }
        let n = buf
            .len()
            .min(self.block.len() - self.pos)
            .min(self.remaining.min(usize::MAX as u64) as usize);
        buf[..n].copy_from_slice(&self.block[self.pos..self.pos + n]);
        self.pos += n;
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Passes bytes through and hashes them.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
        }
    }

    pub fn hex_digest(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }

    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;

    fn archive(spec: &SnapshotSpec, key: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_snapshot(spec, key, &mut out).unwrap();
        out
    }

    #[test]
    fn archive_round_trips_through_the_verifier() {
        for size in [0, 1, 65_536, 300_001] {
            let data = archive(&SnapshotSpec::new(size, 3), b"k");
            let info = verify_snapshot(&data[..], Some(b"k")).unwrap();
            assert_eq!(info.state_size, size);
            assert_eq!(info.index, 4245);
        }
    }

    #[test]
    fn exact_archive_sizes() {
        for size in [5 * 1024 * 1024, 200_000] {
            let spec = SnapshotSpec::with_archive_size(size, 4);
            let data = archive(&spec, b"k");
            assert_eq!(data.len() as u64, size);
            assert!(verify_snapshot(&data[..], Some(b"k")).is_ok());
        }
    }

    #[test]
    fn stored_gzip_is_standard_gzip() {
        for size in [0, 70_000, 300_000] {
            let spec = SnapshotSpec {
                gzip_level: 0,
                gzip_extra: 9,
                ..SnapshotSpec::new(size, 5)
            };
            let stored = archive(&spec, b"k");
            let mut tar = Vec::new();
            GzDecoder::new(&stored[..]).read_to_end(&mut tar).unwrap();
            let mut compressed = Vec::new();
            write_snapshot(
                &SnapshotSpec {
                    gzip_level: 1,
                    ..spec
                },
                b"k",
                &mut compressed,
            )
            .unwrap();
            let mut expected = Vec::new();
            GzDecoder::new(&compressed[..])
                .read_to_end(&mut expected)
                .unwrap();
            assert_eq!(tar, expected, "same tar whatever the gzip level");
        }
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let a = archive(&SnapshotSpec::new(10_000, 1), b"k");
        assert_eq!(a, archive(&SnapshotSpec::new(10_000, 1), b"k"));
        assert_ne!(a, archive(&SnapshotSpec::new(10_000, 2), b"k"));
    }

    #[test]
    fn state_is_mostly_incompressible() {
        let mut state = Vec::new();
        StateReader::new(1 << 20, 9)
            .read_to_end(&mut state)
            .unwrap();
        let mut gz = GzEncoder::new(Vec::new(), Compression::best());
        gz.write_all(&state).unwrap();
        let ratio = gz.finish().unwrap().len() as f64 / state.len() as f64;
        assert!(
            ratio > 0.9,
            "state.bin compressed to {ratio:.2} of its size; it must look like ciphertext"
        );
    }

    #[test]
    fn other_barrier_key_needs_force() {
        let data = archive(&SnapshotSpec::new(1000, 1), b"cluster-a");
        let err = verify_snapshot(&data[..], Some(b"cluster-b")).unwrap_err();
        assert_eq!(err, OTHER_SEAL_KEY);
        let forced = verify_snapshot(&data[..], None).unwrap();
        assert!(forced.sealed_with(b"cluster-a") && !forced.sealed_with(b"cluster-b"));
    }

    #[test]
    fn tampered_state_is_refused() {
        let spec = SnapshotSpec {
            gzip_level: 0,
            ..SnapshotSpec::new(50_000, 1)
        };
        let mut data = archive(&spec, b"k");
        // Stored blocks: the state bytes sit in the clear in the middle.
        let middle = data.len() / 2;
        data[middle] ^= 0xff;
        let err = verify_snapshot(&data[..], Some(b"k")).unwrap_err();
        assert!(err.contains("hash check failed for \"state.bin\""), "{err}");
    }

    #[test]
    fn extra_files_are_refused() {
        let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        append(&mut tar, "meta.json", 2, &b"{}"[..]).unwrap();
        append(&mut tar, "evil.sh", 2, &b"hi"[..]).unwrap();
        let data = tar.into_inner().unwrap().finish().unwrap();
        let err = verify_snapshot(&data[..], None).unwrap_err();
        assert!(
            err.contains("unexpected file in snapshot archive: evil.sh"),
            "{err}"
        );
    }
}
