//! Cutting a byte stream into multipart parts of exactly `part_size` bytes
//! (the last one shorter), copying each input byte once.

use bytes::{Bytes, BytesMut};

pub struct PartBuffer {
    part_size: usize,
    buf: BytesMut,
}

impl PartBuffer {
    pub fn new(part_size: usize) -> Self {
        Self {
            part_size,
            buf: BytesMut::new(),
        }
    }

    /// Takes bytes from the front of `chunk` and returns a part once one is
    /// full. Call again while `chunk` is not empty.
    pub fn fill(&mut self, chunk: &mut Bytes) -> Option<Bytes> {
        if self.buf.capacity() == 0 {
            // Allocate a part only when its first byte arrives, so a part
            // waiting for an upload slot is the only extra one in memory.
            self.buf.reserve(self.part_size);
        }
        let take = (self.part_size - self.buf.len()).min(chunk.len());
        self.buf.extend_from_slice(&chunk.split_to(take));
        (self.buf.len() == self.part_size).then(|| std::mem::take(&mut self.buf).freeze())
    }

    /// The last, possibly short, part.
    pub fn finish(self) -> Option<Bytes> {
        (!self.buf.is_empty()).then(|| self.buf.freeze())
    }
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
