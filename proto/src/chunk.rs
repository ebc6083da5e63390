//! Chunk arithmetic: how a byte range of a file maps onto chunks, and a range of a chunk onto
//! checksum blocks.
//!
//! A file is a sequence of fixed-size chunks (`chunk_size`, 64 MiB by default); chunk `i`
//! holds file bytes `[i * chunk_size, (i + 1) * chunk_size)`. Each chunk replica is checksummed
//! in blocks of `block_size` bytes, so a small read verifies one block, not a whole chunk.

use std::ops::Range;

/// The chunk and block sizes of a cluster, fixed when the cluster is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLayout {
    /// Bytes per chunk.
    pub chunk_size: u64,
    /// Bytes per checksum block; divides `chunk_size`.
    pub block_size: u64,
}

/// The part of a file range that falls inside one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkSpan {
    /// Index of the chunk in the file.
    pub index: u64,
    /// Offset of the span inside the chunk.
    pub offset: u64,
    /// Length of the span in bytes.
    pub len: u64,
    /// Offset of the span inside the original file range (the caller's buffer).
    pub buf_offset: u64,
}

impl ChunkLayout {
    /// A layout; panics unless both sizes are non-zero and `block_size` divides `chunk_size`,
    /// which configuration validation guarantees.
    pub fn new(chunk_size: u64, block_size: u64) -> ChunkLayout {
        assert!(chunk_size > 0 && block_size > 0 && chunk_size % block_size == 0);
        ChunkLayout {
            chunk_size,
            block_size,
        }
    }

    /// Index of the chunk holding file offset `offset`.
    pub fn chunk_index(&self, offset: u64) -> u64 {
        offset / self.chunk_size
    }

    /// File offset of the first byte of chunk `index`.
    pub fn chunk_start(&self, index: u64) -> u64 {
        index * self.chunk_size
    }

    /// Number of chunks a file of `size` bytes spans.
    pub fn chunk_count(&self, size: u64) -> u64 {
        size.div_ceil(self.chunk_size)
    }

    /// Splits the file range `[offset, offset + len)` into per-chunk spans, in order.
    pub fn split(&self, offset: u64, len: u64) -> impl Iterator<Item = ChunkSpan> + '_ {
        let end = offset.saturating_add(len);
        let mut pos = offset;
        std::iter::from_fn(move || {
            if pos >= end {
                return None;
            }
            let index = self.chunk_index(pos);
            let in_chunk = pos - self.chunk_start(index);
            let span_len = (self.chunk_size - in_chunk).min(end - pos);
            let span = ChunkSpan {
                index,
                offset: in_chunk,
                len: span_len,
                buf_offset: pos - offset,
            };
            pos += span_len;
            Some(span)
        })
    }

    /// Indexes of the checksum blocks that the chunk range `[offset, offset + len)` touches.
    pub fn blocks(&self, offset: u64, len: u64) -> Range<u64> {
        if len == 0 {
            return offset / self.block_size..offset / self.block_size;
        }
        offset / self.block_size..(offset + len).div_ceil(self.block_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_crosses_chunk_boundaries() {
        let layout = ChunkLayout::new(100, 10);
        let spans: Vec<_> = layout.split(95, 110).collect();
        assert_eq!(
            spans,
            vec![
                ChunkSpan {
                    index: 0,
                    offset: 95,
                    len: 5,
                    buf_offset: 0
                },
                ChunkSpan {
                    index: 1,
                    offset: 0,
                    len: 100,
                    buf_offset: 5
                },
                ChunkSpan {
                    index: 2,
                    offset: 0,
                    len: 5,
                    buf_offset: 105
                },
            ]
        );
        assert_eq!(layout.split(10, 0).count(), 0);
    }

    #[test]
    fn blocks_cover_partial_ends() {
        let layout = ChunkLayout::new(100, 10);
        assert_eq!(layout.blocks(0, 10), 0..1);
        assert_eq!(layout.blocks(5, 10), 0..2);
        assert_eq!(layout.blocks(20, 0), 2..2);
        assert_eq!(layout.chunk_count(0), 0);
        assert_eq!(layout.chunk_count(101), 2);
    }
}
