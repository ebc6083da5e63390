//! Write-back buffering: [`DirtyRanges`], the not yet sent bytes of one open file, and
//! [`WriteBudget`], the memory all open files of a mount share for them.
//!
//! Applications write in small pieces (4 KiB to 1 MiB per FUSE request), sequentially or
//! anywhere in the file. Sending each piece to the replica chain as its own stream would cost
//! a chain round trip per piece; instead a file's writes are kept as a set of disjoint byte
//! ranges (adjacent and overlapping writes coalesce, the newest bytes win) and sent as few
//! large streams, one per chunk ([`ChunkBatch`]), carrying every dirty range of the chunk.
//! This module only keeps the bytes and decides what a flush sends; when to flush and the
//! sending live in [`crate::inode`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use dfs_proto::chunk::ChunkLayout;

/// The dirty bytes of one file: disjoint, non-adjacent ranges keyed by their file offset.
#[derive(Debug, Default)]
pub struct DirtyRanges {
    ranges: BTreeMap<u64, BytesMut>,
    bytes: usize,
}

/// The dirty pieces of one chunk, sent as one chain stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkBatch {
    /// The chunk's index in the file.
    pub index: u64,
    /// `(offset inside the chunk, bytes)`, in offset order, disjoint.
    pub pieces: Vec<(u64, Bytes)>,
}

impl ChunkBatch {
    /// Offset inside the chunk just past the last piece.
    pub fn end(&self) -> u64 {
        self.pieces
            .last()
            .map_or(0, |(offset, data)| offset + data.len() as u64)
    }
}

impl DirtyRanges {
    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Bytes buffered.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Number of disjoint ranges.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Buffers `data` at `offset`, merging it with every range it overlaps or touches (its
    /// bytes replace theirs). Returns the start and length of the range now holding it.
    pub fn insert(&mut self, offset: u64, data: &[u8]) -> (u64, usize) {
        if data.is_empty() {
            return (offset, 0);
        }
        let end = offset + data.len() as u64;
        // The range starting at or before `offset`, if it reaches `offset`, absorbs the write.
        let start = match self.ranges.range(..=offset).next_back() {
            Some((&s, buf)) if s + buf.len() as u64 >= offset => s,
            _ => offset,
        };
        let merged: Vec<u64> = self.ranges.range(start..=end).map(|(&s, _)| s).collect();
        if let [only] = merged[..]
            && only == start
        {
            // Common case (a sequential append, an overwrite inside one range): in place.
            let buf = self.ranges.get_mut(&start).expect("range just found");
            let at = (offset - start) as usize;
            let old = buf.len();
            // Overwrite what overlaps, append the rest (no zero-filling first).
            let overlap = (old - at).min(data.len());
            buf[at..at + overlap].copy_from_slice(&data[..overlap]);
            buf.extend_from_slice(&data[overlap..]);
            self.bytes += buf.len() - old;
            return (start, buf.len());
        }
        if merged.is_empty() {
            self.ranges.insert(offset, BytesMut::from(data));
            self.bytes += data.len();
            return (offset, data.len());
        }
        let last_end = merged
            .last()
            .map(|s| s + self.ranges[s].len() as u64)
            .unwrap_or(end)
            .max(end);
        let mut buf = BytesMut::zeroed((last_end - start) as usize);
        for s in merged {
            let old = self.ranges.remove(&s).expect("range just found");
            self.bytes -= old.len();
            let at = (s - start) as usize;
            buf[at..at + old.len()].copy_from_slice(&old);
        }
        let at = (offset - start) as usize;
        buf[at..at + data.len()].copy_from_slice(data);
        let len = buf.len();
        self.bytes += len;
        self.ranges.insert(start, buf);
        (start, len)
    }

    /// Takes out the range starting at `start`.
    pub fn take_range(&mut self, start: u64) -> Option<(u64, Bytes)> {
        let buf = self.ranges.remove(&start)?;
        self.bytes -= buf.len();
        Some((start, buf.freeze()))
    }

    /// Takes out every range, in file order.
    pub fn take_all(&mut self) -> Vec<(u64, Bytes)> {
        self.bytes = 0;
        std::mem::take(&mut self.ranges)
            .into_iter()
            .map(|(start, buf)| (start, buf.freeze()))
            .collect()
    }

    /// Drops buffered bytes at or past `size` (the file was truncated under them); returns
    /// how many bytes were dropped.
    pub fn truncate_at(&mut self, size: u64) -> usize {
        let before = self.bytes;
        drop(self.ranges.split_off(&size));
        if let Some((&start, buf)) = self.ranges.iter_mut().next_back()
            && start + buf.len() as u64 > size
        {
            buf.truncate((size - start) as usize);
        }
        self.bytes = self.ranges.values().map(BytesMut::len).sum();
        before - self.bytes
    }
}

/// Splits file ranges (in file order) into per-chunk batches: zero-copy slices, in order.
pub fn chunk_batches(layout: &ChunkLayout, ranges: Vec<(u64, Bytes)>) -> Vec<ChunkBatch> {
    let mut batches: Vec<ChunkBatch> = Vec::new();
    for (start, data) in ranges {
        for span in layout.split(start, data.len() as u64) {
            let from = span.buf_offset as usize;
            let piece = (span.offset, data.slice(from..from + span.len as usize));
            match batches.last_mut() {
                Some(batch) if batch.index == span.index => batch.pieces.push(piece),
                _ => batches.push(ChunkBatch {
                    index: span.index,
                    pieces: vec![piece],
                }),
            }
        }
    }
    batches
}

/// The bytes every open file of a mount may keep buffered (dirty or being sent), shared: a
/// cheap handle over one counter.
///
/// It is a soft limit. A writer that would go over it sends its own file's bytes and waits
/// for them (so files that write much pay for it, not the others), then goes on; the mount
/// then holds at most one write per concurrent writer beyond the limit. Each file may also
/// keep at most [`per_file`](WriteBudget::per_file) bytes, so several files written at once
/// each get a share.
#[derive(Debug, Clone)]
pub struct WriteBudget {
    used: Arc<AtomicUsize>,
    limit: usize,
}

impl WriteBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> WriteBudget {
        WriteBudget {
            used: Arc::default(),
            limit,
        }
    }

    /// The most one file keeps buffered before sending it all: a quarter of the budget.
    pub fn per_file(&self) -> usize {
        self.limit / 4
    }

    /// Counts `bytes` more as buffered if that stays within the limit.
    pub fn try_reserve(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used + bytes <= self.limit).then_some(used + bytes)
            })
            .is_ok()
    }

    /// Counts `bytes` more as buffered, over the limit if need be.
    pub fn force_reserve(&self, bytes: usize) {
        self.used.fetch_add(bytes, Ordering::AcqRel);
    }

    /// Counts `bytes` as no longer buffered.
    pub fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Bytes buffered now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> ChunkLayout {
        ChunkLayout::new(100, 10)
    }

    /// The set as `(start, bytes)`, without taking it.
    fn shape(set: &DirtyRanges) -> Vec<(u64, Vec<u8>)> {
        set.ranges.iter().map(|(&s, b)| (s, b.to_vec())).collect()
    }

    #[test]
    fn sequential_writes_merge_into_one_range() {
        let mut set = DirtyRanges::default();
        assert_eq!(set.insert(7, b"hello"), (7, 5));
        assert_eq!(set.insert(12, b" world"), (7, 11));
        assert_eq!(set.bytes(), 11);
        assert_eq!(
            set.take_all(),
            vec![(7, Bytes::from_static(b"hello world"))]
        );
        assert!(set.is_empty());
        assert_eq!(set.bytes(), 0);
    }

    #[test]
    fn overlapping_and_adjacent_writes_coalesce_newest_bytes_win() {
        let mut set = DirtyRanges::default();
        set.insert(10, b"aaaa");
        set.insert(20, b"bbbb");
        set.insert(30, b"cccc");
        assert_eq!(set.len(), 3);
        // Inside one range: in place.
        set.insert(11, b"X");
        // Bridging the first two (touching the second's start exactly).
        assert_eq!(set.insert(13, b"1234567"), (10, 14));
        assert_eq!(
            shape(&set),
            vec![(10, b"aXa1234567bbbb".to_vec()), (30, b"cccc".to_vec())]
        );
        // Covering everything and more on both sides.
        set.insert(5, &[9; 40]);
        assert_eq!(shape(&set), vec![(5, vec![9; 40])]);
        assert_eq!(set.bytes(), 40);
        // A write just before a range's start merges with it.
        set.insert(3, b"zz");
        assert_eq!(shape(&set)[0].0, 3);
        assert_eq!(set.bytes(), 42);
        // A gap keeps ranges apart.
        set.insert(50, b"q");
        assert_eq!(set.len(), 2);
        assert_eq!(set.bytes(), 43);
        // An empty write leaves no empty range behind.
        set.insert(70, b"");
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn random_writes_match_a_model() {
        let mut set = DirtyRanges::default();
        let mut model = vec![None::<u8>; 400];
        let mut x: u64 = 0x1234_5678;
        for step in 0..2000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let offset = x % 380;
            let len = 1 + (x >> 20) % 17;
            let data: Vec<u8> = (0..len).map(|i| (step as u8) ^ (i as u8)).collect();
            set.insert(offset, &data);
            for (i, b) in data.iter().enumerate() {
                model[offset as usize + i] = Some(*b);
            }
            let ranges = shape(&set);
            // Disjoint, non-adjacent, and exactly the model's written bytes.
            for w in ranges.windows(2) {
                assert!(w[0].0 + (w[0].1.len() as u64) < w[1].0, "step {step}");
            }
            let mut seen = vec![None; 400];
            for (s, bytes) in &ranges {
                for (i, b) in bytes.iter().enumerate() {
                    seen[*s as usize + i] = Some(*b);
                }
            }
            assert_eq!(seen, model, "step {step}");
            assert_eq!(set.bytes(), model.iter().flatten().count());
        }
    }

    #[test]
    fn batches_split_at_chunk_boundaries_and_group_by_chunk() {
        let mut set = DirtyRanges::default();
        let bytes: Vec<u8> = (0..=255u8).cycle().take(230).collect();
        set.insert(95, &bytes);
        set.insert(340, b"ab");
        set.insert(360, b"cd");
        let batches = chunk_batches(&layout(), set.take_all());
        let shape: Vec<(u64, Vec<(u64, usize)>)> = batches
            .iter()
            .map(|b| {
                (
                    b.index,
                    b.pieces.iter().map(|(o, d)| (*o, d.len())).collect(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                (0, vec![(95, 5)]),
                (1, vec![(0, 100)]),
                (2, vec![(0, 100)]),
                (3, vec![(0, 25), (40, 2), (60, 2)]),
            ]
        );
        assert_eq!(batches[0].pieces[0].1[..], bytes[..5]);
        assert_eq!(batches[3].pieces[0].1[..], bytes[205..]);
        assert_eq!(batches[3].end(), 62);
    }

    #[test]
    fn truncation_drops_bytes_past_the_new_end() {
        let mut set = DirtyRanges::default();
        set.insert(10, &[1; 20]);
        set.insert(50, &[2; 10]);
        assert_eq!(set.truncate_at(55), 5);
        assert_eq!(shape(&set), vec![(10, vec![1; 20]), (50, vec![2; 5])]);
        assert_eq!(set.truncate_at(15), 20);
        assert_eq!(shape(&set), vec![(10, vec![1; 5])]);
        set.truncate_at(10);
        assert!(set.is_empty());
        assert_eq!(set.bytes(), 0);
    }

    #[test]
    fn the_budget_is_soft_and_shared() {
        let budget = WriteBudget::new(100);
        let other = budget.clone();
        assert_eq!(budget.per_file(), 25);
        assert!(budget.try_reserve(60));
        assert!(!other.try_reserve(50));
        assert!(other.try_reserve(40));
        other.force_reserve(10);
        assert_eq!(budget.used(), 110);
        budget.release(110);
        assert_eq!(other.used(), 0);
    }
}
