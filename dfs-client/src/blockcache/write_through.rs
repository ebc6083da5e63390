//! Write-through: blocks this mount writes enter the [`BlockCache`] as they reach the
//! replicas ([`BlockCache::begin_write`]), so reading back what was just written costs no
//! chunkserver read, as the kernel's page cache does for a local file.
//!
//! Two writes of this mount that overlap in a block while both are in flight may reach the
//! replicas in either order, so such a block is dropped instead of cached; so are the blocks
//! of a write that fails.

use std::collections::HashSet;
use std::ops::RangeInclusive;

use super::{BlockCache, BlockKey, Cached};

/// The writes in flight on one block.
#[derive(Debug, Default)]
pub(super) struct Writers {
    count: u32,
    /// Two of them overlapped: which one the replicas hold last is unknown.
    overlapped: bool,
}

impl BlockCache {
    /// Announces a write of this mount to `blocks` of `chunk_id`. When the write is done,
    /// [`BlockWrite::finish`] caches the blocks whose content it determined (in full, or up
    /// to the end of the chunk's data); if it fails (the guard is dropped), or another write
    /// of this mount to one of the blocks was in flight at the same time, the blocks are
    /// dropped instead.
    pub fn begin_write(&self, chunk_id: u64, blocks: RangeInclusive<u64>) -> BlockWrite {
        let mut state = self.state();
        for block in blocks.clone() {
            let writers = state.writing.entry((chunk_id, block)).or_default();
            writers.count += 1;
            writers.overlapped |= writers.count > 1;
        }
        BlockWrite {
            cache: self.clone(),
            chunk_id,
            blocks,
            done: false,
        }
    }
}

/// A write of this mount in flight (see [`BlockCache::begin_write`]).
#[derive(Debug)]
pub struct BlockWrite {
    cache: BlockCache,
    chunk_id: u64,
    blocks: RangeInclusive<u64>,
    done: bool,
}

impl BlockWrite {
    /// The write reached every replica: drops the old cached versions of its blocks and
    /// caches `written`, the blocks whose whole content the write determined (keyed with the
    /// version written), unless an overlapping write of this mount was in flight meanwhile.
    pub fn finish(mut self, written: Vec<(BlockKey, Cached)>) {
        self.end(written);
    }

    fn end(&mut self, written: Vec<(BlockKey, Cached)>) {
        self.done = true;
        let cache = self.cache.clone();
        let mut state = cache.state();
        let mut clean = HashSet::new();
        for block in self.blocks.clone() {
            let slot = (self.chunk_id, block);
            let Some(writers) = state.writing.get_mut(&slot) else {
                continue;
            };
            if !writers.overlapped {
                clean.insert(block);
            }
            writers.count -= 1;
            if writers.count == 0 {
                state.writing.remove(&slot);
            }
        }
        // Also moves to a new epoch: a fetch in flight may have read the old bytes.
        state.drop_blocks(self.chunk_id, self.blocks.clone());
        for (key, block) in written {
            if key.chunk_id == self.chunk_id && clean.contains(&key.block) {
                state.put(key, block, cache.inner.capacity);
            }
        }
    }
}

impl Drop for BlockWrite {
    fn drop(&mut self) {
        if !self.done {
            self.end(Vec::new());
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn key(chunk_id: u64, version: u64, block: u64) -> BlockKey {
        BlockKey {
            chunk_id,
            version,
            block,
        }
    }

    fn block(len: usize) -> Bytes {
        Bytes::from(vec![7u8; len])
    }

    #[test]
    fn a_finished_write_caches_its_blocks_and_drops_their_old_versions() {
        let cache = BlockCache::new(1000);
        cache.insert(key(1, 1, 0), block(10), 0);
        cache.insert(key(1, 1, 1), block(10), 0);
        cache.insert(key(1, 1, 2), block(10), 0);
        // A fetch that started before the write ended may have read the old bytes.
        let before = cache.epoch();
        let write = cache.begin_write(1, 0..=1);
        write.finish(vec![(key(1, 2, 0), block(20).into())]);
        assert_eq!(
            cache.get(&key(1, 2, 0), 20).map(|b| b.data),
            Some(block(20))
        );
        // Block 1 was written only in part: dropped, in every version; block 2 untouched.
        assert!(!cache.contains(&key(1, 1, 0)) && !cache.contains(&key(1, 1, 1)));
        assert!(cache.contains(&key(1, 1, 2)));
        assert_eq!(cache.bytes(), 30);
        cache.insert(key(1, 2, 1), block(10), before);
        assert!(!cache.contains(&key(1, 2, 1)));
        // Blocks outside the write's range are never cached by it.
        cache
            .begin_write(1, 5..=5)
            .finish(vec![(key(1, 2, 6), block(10).into())]);
        assert!(!cache.contains(&key(1, 2, 6)));
    }

    #[test]
    fn overlapping_and_failed_writes_cache_nothing() {
        let cache = BlockCache::new(1000);
        cache.insert(key(1, 1, 3), block(10), 0);
        let first = cache.begin_write(1, 0..=3);
        let second = cache.begin_write(1, 3..=4);
        // Which of the two the replicas hold last in block 3 is unknown.
        second.finish(vec![
            (key(1, 1, 3), block(1).into()),
            (key(1, 1, 4), block(1).into()),
        ]);
        first.finish(vec![
            (key(1, 1, 2), block(2).into()),
            (key(1, 1, 3), block(2).into()),
        ]);
        assert!(!cache.contains(&key(1, 1, 3)));
        assert!(cache.contains(&key(1, 1, 2)) && cache.contains(&key(1, 1, 4)));
        // Once both are done, the next write of the block is cached again.
        cache
            .begin_write(1, 3..=3)
            .finish(vec![(key(1, 1, 3), block(3).into())]);
        assert_eq!(cache.get(&key(1, 1, 3), 3).map(|b| b.data), Some(block(3)));
        // A write that fails (its guard dropped) leaves its blocks uncached.
        drop(cache.begin_write(1, 2..=3));
        assert!(!cache.contains(&key(1, 1, 2)) && !cache.contains(&key(1, 1, 3)));
        assert_eq!(cache.bytes(), 1);
    }
}
