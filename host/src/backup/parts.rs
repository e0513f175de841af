//! Cutting a stream into pieces of exactly `size` bytes (the last one
//! shorter), copying each input byte at most once, and uploading parts.

use aws_sdk_s3::types::CompletedPart;
use bytes::{Bytes, BytesMut};
use tokio::task::JoinSet;

use crate::error::BackupError;
use crate::s3::{MAX_PARTS, MultipartUpload, TargetConfig};
use crate::units::human_bytes;

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

    /// Takes bytes from the front of `chunk` and returns a piece once one is
    /// full. Call again while `chunk` is not empty.
    pub fn fill(&mut self, chunk: &mut Bytes) -> Option<Bytes> {
        if self.buf.is_empty() && chunk.len() >= self.size {
            // A whole piece at the front: share it, no copy.
            return Some(chunk.split_to(self.size));
        }
        if self.buf.capacity() == 0 {
            // Allocate a piece only when its first byte arrives, so a part
            // waiting for an upload slot is the only extra one in memory.
            self.buf.reserve(self.size);
        }
        let take = (self.size - self.buf.len()).min(chunk.len());
        self.buf.extend_from_slice(&chunk.split_to(take));
        (self.buf.len() == self.size).then(|| std::mem::take(&mut self.buf).freeze())
    }

    /// The last, possibly short, piece.
    pub fn finish(self) -> Option<Bytes> {
        (!self.buf.is_empty()).then(|| self.buf.freeze())
    }
}

/// The parts of one upload, with at most `concurrency` in flight.
pub struct PartUploads {
    upload: MultipartUpload,
    concurrency: usize,
    part_size: u64,
    in_flight: JoinSet<Result<CompletedPart, BackupError>>,
    done: Vec<CompletedPart>,
    next_number: u64,
}

impl PartUploads {
    pub fn new(upload: MultipartUpload, target: &TargetConfig) -> Self {
        Self {
            upload,
            concurrency: target.concurrency,
            part_size: target.part_size,
            in_flight: JoinSet::new(),
            done: Vec::new(),
            next_number: 1,
        }
    }

    /// Starts uploading `part` once a slot is free.
    pub async fn push(&mut self, part: Bytes) -> Result<(), BackupError> {
        if self.next_number > MAX_PARTS {
            return Err(BackupError::Config(format!(
                "the snapshot is larger than {MAX_PARTS} parts of {} (S3's limit): raise --part-size (S3_PART_SIZE)",
                human_bytes(self.part_size as f64)
            )));
        }
        while self.in_flight.len() >= self.concurrency {
            let finished = self.in_flight.join_next().await.expect("uploads in flight");
            self.done.push(joined(finished)?);
        }
        let (upload, number) = (self.upload.clone(), self.next_number as i32);
        self.in_flight
            .spawn(async move { upload.upload_part(number, part).await });
        self.next_number += 1;
        Ok(())
    }

    /// Collects finished uploads, so a failed part stops the backup early.
    pub fn reap(&mut self) -> Result<(), BackupError> {
        while let Some(finished) = self.in_flight.try_join_next() {
            self.done.push(joined(finished)?);
        }
        Ok(())
    }

    pub fn uploaded(&self) -> usize {
        self.done.len()
    }

    /// Waits for the last uploads.
    pub async fn finish(mut self) -> Result<Vec<CompletedPart>, BackupError> {
        while let Some(finished) = self.in_flight.join_next().await {
            self.done.push(joined(finished)?);
        }
        Ok(self.done)
    }
}

fn joined(
    finished: Result<Result<CompletedPart, BackupError>, tokio::task::JoinError>,
) -> Result<CompletedPart, BackupError> {
    finished.unwrap_or_else(|e| {
        Err(BackupError::Storage(format!(
            "part upload task failed: {e}"
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
