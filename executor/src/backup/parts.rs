//! Cutting a stream into pieces and parts, copying each input byte exactly
//! once into a buffer allocated at its final size, and uploading parts.

use bytes::Bytes;
use tokio::task::JoinSet;

use crate::bucket::stream::PartBuffer;
use crate::error::Error;
use crate::s3::TargetConfig;
use crate::storage::{Part, Upload};
use contract::executor::upload::{MAX_PART_SIZE, MAX_PARTS};

/// Parts keep the configured size for the first `GROW_AFTER` parts, then
/// double every `DOUBLE_EVERY` parts up to S3's 5 GiB: 10,000 parts then
/// hold S3's largest object (5 TiB) even from 5 MiB parts, while snapshots
/// under 5,000 parts never hold more than the configured size in memory.
const GROW_AFTER: u64 = 5_000;
const DOUBLE_EVERY: u64 = 400;

/// The size of part `number` (from 1) of an upload whose parts start at
/// `first` bytes.
pub fn part_size(number: u64, first: u64) -> u64 {
    let doublings = match number.checked_sub(GROW_AFTER + 1) {
        None => 0,
        Some(beyond) => beyond / DOUBLE_EVERY + 1,
    };
    first
        .saturating_mul(1 << doublings.min(32))
        .min(MAX_PART_SIZE)
}

/// Cuts a stream into the parts of one upload (sizes from `part_size`) and
/// uploads them, at most `concurrency` at once. Memory: the part being
/// filled and the parts in flight; a full part waits for a slot before the
/// next one is begun, so writing stops until one is free.
pub struct PartUploads {
    upload: Upload,
    concurrency: usize,
    first_size: u64,
    buffer: PartBuffer,
    in_flight: JoinSet<Result<Part, Error>>,
    done: Vec<Part>,
    next_number: u64,
    /// Where the next part begins in the object.
    offset: u64,
}

impl PartUploads {
    pub fn new(upload: Upload, target: &TargetConfig) -> Self {
        Self {
            upload,
            concurrency: target.concurrency,
            first_size: target.part_size,
            buffer: PartBuffer::new(buffer_size(target.part_size)),
            in_flight: JoinSet::new(),
            done: Vec::new(),
            next_number: 1,
            offset: 0,
        }
    }

    /// Adds `chunk` to the upload, uploading every part it fills; fails as
    /// soon as a part upload has failed.
    pub async fn write(&mut self, mut chunk: Bytes) -> Result<(), Error> {
        while !chunk.is_empty() {
            if let Some(part) = self.buffer.fill(&mut chunk) {
                self.push(part).await?;
            }
        }
        while let Some(finished) = self.in_flight.try_join_next() {
            self.done.push(joined(finished)?);
        }
        Ok(())
    }

    pub fn uploaded(&self) -> usize {
        self.done.len()
    }

    /// Uploads the last part and waits for every upload.
    pub async fn finish(mut self) -> Result<Vec<Part>, Error> {
        let buffer = std::mem::replace(&mut self.buffer, PartBuffer::new(0));
        if let Some(last) = buffer.finish() {
            self.push(last).await?;
        }
        while let Some(finished) = self.in_flight.join_next().await {
            self.done.push(joined(finished)?);
        }
        Ok(self.done)
    }

    /// Starts uploading `part` once a slot is free.
    async fn push(&mut self, part: Bytes) -> Result<(), Error> {
        if self.next_number > MAX_PARTS {
            return Err(Error::Config(format!(
                "the stored object is larger than {MAX_PARTS} parts, beyond S3's largest object (5 TiB)"
            )));
        }
        while self.in_flight.len() >= self.concurrency {
            let finished = self.in_flight.join_next().await.expect("uploads in flight");
            self.done.push(joined(finished)?);
        }
        let (upload, number, offset) = (self.upload.clone(), self.next_number as u32, self.offset);
        self.offset += part.len() as u64;
        self.in_flight
            .spawn(async move { upload.put_part(number, offset, part).await });
        self.next_number += 1;
        self.buffer
            .resize(buffer_size(part_size(self.next_number, self.first_size)));
        Ok(())
    }
}

fn buffer_size(part_size: u64) -> usize {
    usize::try_from(part_size).expect("a part fits in memory")
}

fn joined(finished: Result<Result<Part, Error>, tokio::task::JoinError>) -> Result<Part, Error> {
    finished.unwrap_or_else(|e| Err(Error::Storage(format!("part upload task failed: {e}"))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::executor::upload::MIN_PART_SIZE;

    fn split(total: usize, part: usize, chunk: usize) -> Vec<Bytes> {
        let data: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
        let mut buffer = PartBuffer::new(part);
        let mut parts = Vec::new();
        for piece in data.chunks(chunk) {
            let mut piece = Bytes::copy_from_slice(piece);
            while !piece.is_empty() {
                parts.extend(buffer.fill(&mut piece));
            }
        }
        parts.extend(buffer.finish());
        assert_eq!(parts.concat(), data, "parts must reassemble the input");
        parts
    }

    #[test]
    fn sizes_around_the_part_size() {
        assert!(split(0, 10, 3).is_empty());
        assert_eq!(split(1, 10, 3).len(), 1);
        let exact = split(30, 10, 7);
        assert_eq!(
            exact.iter().map(Bytes::len).collect::<Vec<_>>(),
            vec![10, 10, 10]
        );
        let over = split(31, 10, 10);
        assert_eq!(
            over.iter().map(Bytes::len).collect::<Vec<_>>(),
            vec![10, 10, 10, 1]
        );
    }

    #[test]
    fn chunks_larger_than_a_part_are_cut() {
        let parts = split(35, 10, 1000);
        assert_eq!(
            parts.iter().map(Bytes::len).collect::<Vec<_>>(),
            vec![10, 10, 10, 5]
        );
    }

    #[test]
    fn one_byte_chunks() {
        assert_eq!(split(25, 10, 1).len(), 3);
    }

    #[test]
    fn pieces_own_their_memory_whatever_the_chunk_size() {
        let big = Bytes::from(vec![7u8; 1000]);
        let range = big.as_ptr_range();
        let (mut chunk, mut buffer) = (big.clone(), PartBuffer::new(10));
        let piece = buffer.fill(&mut chunk).expect("a full piece");
        assert_eq!(piece.len(), 10);
        assert!(
            !range.contains(&piece.as_ptr()),
            "a piece sharing the chunk keeps all of the chunk in memory"
        );
    }

    const MIB: u64 = 1024 * 1024;
    const TIB: u64 = 1024 * 1024 * MIB;

    #[test]
    fn parts_keep_their_size_for_5000_parts_then_grow() {
        let first = 10 * MIB;
        assert!((1..=5000).all(|n| part_size(n, first) == first));
        assert_eq!(part_size(5001, first), 2 * first);
        assert_eq!(part_size(5400, first), 2 * first);
        assert_eq!(part_size(5401, first), 4 * first);
        assert_eq!(part_size(MAX_PARTS, first), MAX_PART_SIZE);
    }

    #[test]
    fn ten_thousand_parts_hold_5_tib_from_any_first_size() {
        for first in [
            MIN_PART_SIZE,
            10 * MIB,
            20 * MIB + 1,
            3 * 1024 * MIB,
            MAX_PART_SIZE,
        ] {
            let sizes: Vec<u64> = (1..=MAX_PARTS).map(|n| part_size(n, first)).collect();
            assert!(
                sizes.iter().all(|s| (first..=MAX_PART_SIZE).contains(s)),
                "{first}"
            );
            assert!(
                sizes.windows(2).all(|w| w[0] <= w[1]),
                "{first}: sizes only grow"
            );
            let total: u64 = sizes.iter().sum();
            assert!(total >= 5 * TIB, "{first}: {total} bytes in 10,000 parts");
        }
    }
}
