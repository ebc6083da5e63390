//! [`WriteBuffer`]: the one contiguous dirty range of an open file.
//!
//! Applications write in small pieces (4 KiB to 1 MiB per FUSE request); sending each piece to
//! the replica chain as its own stream would cost a round trip per piece. The buffer absorbs
//! sequential writes and is flushed as one large stream per chunk. It only decides *when* to
//! flush and *what* a flush sends; the sending lives in [`crate::inode`].

use bytes::{Bytes, BytesMut};
use dfs_proto::chunk::{ChunkLayout, ChunkSpan};

/// Buffered, not yet sent bytes of one file: the file range `[start, start + data.len())`.
#[derive(Debug)]
pub struct WriteBuffer {
    start: u64,
    data: BytesMut,
    capacity: usize,
}

/// A part of a flushed range that falls inside one chunk, with its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanData {
    /// Where the bytes go: chunk index and offset inside the chunk.
    pub span: ChunkSpan,
    /// The bytes (a zero-copy slice of the flushed buffer).
    pub data: Bytes,
}

impl WriteBuffer {
    /// An empty buffer that holds at most `capacity` bytes.
    pub fn new(capacity: usize) -> WriteBuffer {
        WriteBuffer {
            start: 0,
            data: BytesMut::new(),
            capacity,
        }
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// File offset just past the buffered bytes, if any are buffered.
    pub fn end(&self) -> Option<u64> {
        (!self.is_empty()).then(|| self.start + self.data.len() as u64)
    }

    /// Whether the buffer must be flushed before a write of `len` bytes at `offset` can be
    /// absorbed: the write is not contiguous with the buffered range, would make it exceed the
    /// capacity, or starts in another chunk than the buffered range (one buffer, one chunk
    /// stream in the common case).
    pub fn needs_flush_before(&self, layout: &ChunkLayout, offset: u64, len: usize) -> bool {
        let Some(end) = self.end() else {
            return false;
        };
        offset != end
            || self.data.len() + len > self.capacity
            || layout.chunk_index(offset) != layout.chunk_index(self.start)
    }

    /// Whether the buffer is full and should be sent now rather than at the next write.
    pub fn is_full(&self) -> bool {
        self.data.len() >= self.capacity
    }

    /// Appends a write. The caller has flushed first if [`needs_flush_before`] said so; a
    /// write into an empty buffer is always accepted, even one larger than the capacity.
    ///
    /// [`needs_flush_before`]: WriteBuffer::needs_flush_before
    pub fn absorb(&mut self, offset: u64, bytes: &[u8]) {
        if self.is_empty() {
            self.start = offset;
            self.data.reserve(self.capacity.max(bytes.len()));
        }
        debug_assert_eq!(Some(offset), self.end().or(Some(offset)));
        self.data.extend_from_slice(bytes);
    }

    /// Empties the buffer, returning its bytes split into per-chunk spans in file order.
    pub fn take(&mut self, layout: &ChunkLayout) -> Vec<SpanData> {
        let data = self.data.split().freeze();
        layout
            .split(self.start, data.len() as u64)
            .map(|span| {
                let from = span.buf_offset as usize;
                SpanData {
                    span,
                    data: data.slice(from..from + span.len as usize),
                }
            })
            .collect()
    }

    /// Drops buffered bytes at or past `size` (the file was truncated under the buffer).
    pub fn truncate_at(&mut self, size: u64) {
        if size <= self.start {
            self.data.clear();
        } else if size - self.start < self.data.len() as u64 {
            self.data.truncate((size - self.start) as usize);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> ChunkLayout {
        ChunkLayout::new(100, 10)
    }

    #[test]
    fn sequential_writes_merge_into_one_range() {
        let mut buf = WriteBuffer::new(50);
        assert!(!buf.needs_flush_before(&layout(), 7, 5));
        buf.absorb(7, b"hello");
        assert!(!buf.needs_flush_before(&layout(), 12, 6));
        buf.absorb(12, b" world");
        assert_eq!(buf.end(), Some(18));
        let spans = buf.take(&layout());
        assert_eq!(spans.len(), 1);
        assert_eq!(
            spans[0].span,
            ChunkSpan {
                index: 0,
                offset: 7,
                len: 11,
                buf_offset: 0
            }
        );
        assert_eq!(spans[0].data, Bytes::from_static(b"hello world"));
        assert!(buf.is_empty());
        assert_eq!(buf.end(), None);
    }

    #[test]
    fn flush_triggers() {
        let mut buf = WriteBuffer::new(30);
        buf.absorb(10, &[1; 20]);
        // Not contiguous: a gap, an overlap, a write before the range.
        assert!(buf.needs_flush_before(&layout(), 31, 1));
        assert!(buf.needs_flush_before(&layout(), 25, 1));
        assert!(buf.needs_flush_before(&layout(), 0, 1));
        // Contiguous but over capacity.
        assert!(buf.needs_flush_before(&layout(), 30, 11));
        assert!(!buf.needs_flush_before(&layout(), 30, 10));
        buf.absorb(30, &[2; 10]);
        assert!(buf.is_full());
        // Contiguous, room left, but starting in the next chunk.
        let mut buf = WriteBuffer::new(1000);
        buf.absorb(90, &[1; 10]);
        assert!(buf.needs_flush_before(&layout(), 100, 5));
        // An empty buffer takes anything, even a write larger than its capacity.
        let mut buf = WriteBuffer::new(4);
        assert!(!buf.needs_flush_before(&layout(), 500, 8));
        buf.absorb(500, &[0; 8]);
        assert_eq!(buf.end(), Some(508));
    }

    #[test]
    fn flushed_range_is_split_at_chunk_boundaries() {
        let mut buf = WriteBuffer::new(1000);
        let bytes: Vec<u8> = (0..=255u8).cycle().take(230).collect();
        buf.absorb(95, &bytes);
        let spans = buf.take(&layout());
        let shape: Vec<(u64, u64, u64)> = spans
            .iter()
            .map(|s| (s.span.index, s.span.offset, s.span.len))
            .collect();
        assert_eq!(
            shape,
            vec![(0, 95, 5), (1, 0, 100), (2, 0, 100), (3, 0, 25)]
        );
        assert_eq!(spans[0].data[..], bytes[..5]);
        assert_eq!(spans[1].data[..], bytes[5..105]);
        assert_eq!(spans[3].data[..], bytes[205..]);
    }

    #[test]
    fn truncation_drops_bytes_past_the_new_end() {
        let mut buf = WriteBuffer::new(100);
        buf.absorb(10, &[1; 20]);
        buf.truncate_at(40);
        assert_eq!(buf.end(), Some(30));
        buf.truncate_at(15);
        assert_eq!(buf.end(), Some(15));
        buf.truncate_at(10);
        assert!(buf.is_empty());
    }
}
