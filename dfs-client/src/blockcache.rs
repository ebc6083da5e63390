//! [`BlockCache`]: a bounded LRU cache of verified chunk blocks, shared by every file of a
//! mount.
//!
//! An entry is keyed by chunk id, chunk version and block index, so a chunk that got a new
//! version (its chain was replaced, a new writer took it) can never be served from an entry
//! of the old one. Within one version, what can make an entry stale is a write: this mount's
//! writes drop the blocks they touch, and a file another mount changed (seen at open, as
//! close-to-open consistency has it) has all its chunks dropped.
//!
//! The bound is in bytes, not entries: blocks at the end of a chunk can be short.
//!
//! **Short blocks.** An entry shorter than a block holds the block's bytes up to where the
//! chunk's data ended when it was cached: the tail of a replica, or the one block of a small
//! file this mount wrote. The chunk can grow past it without the entry being dropped (this
//! mount writes a later block of the chunk, which does not touch this one), and then the
//! bytes after the entry are a hole or the new data, not the end of the chunk. So an entry
//! answers a read only if it holds every byte the read needs from it ([`BlockCache::get`]);
//! a shorter one is a miss, and the block fetched for it replaces it.
//!
//! Blocks this mount writes in full, and a block it writes from its start to the end of the
//! chunk's data, enter the cache as they reach the replicas (write-through, see
//! [`write_through`]), so reading back what was just written costs no chunkserver read.
//!
//! Fetches are single-flight: a reader that misses blocks another task is already fetching
//! (typically read-ahead that the kernel's own readahead caught up with) waits for that fetch
//! instead of reading the same blocks from a replica a second time.

use std::collections::{HashMap, HashSet};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use lru::LruCache;
use tokio::sync::watch;

mod write_through;

use write_through::Writers;

/// Which block an entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockKey {
    /// The chunk.
    pub chunk_id: u64,
    /// The chunk's version the block was read at.
    pub version: u64,
    /// Index of the block inside the chunk.
    pub block: u64,
}

/// A cached block, and the range it was fetched or written with (`run`, of which `data` is
/// a slice): consecutive blocks of one run are joined without copying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    /// The block's bytes: shorter than a block when they ended the chunk's data as it was
    /// cached (see the module docs for when such an entry answers a read).
    pub data: Bytes,
    /// The buffer `data` lies in.
    pub run: Bytes,
}

impl Cached {
    /// Block `range` of `run`.
    pub fn slice(run: &Bytes, range: std::ops::Range<usize>) -> Cached {
        Cached {
            data: run.slice(range),
            run: run.clone(),
        }
    }

    /// Where `data` starts in `run`.
    fn offset(&self) -> usize {
        self.data.as_ptr() as usize - self.run.as_ptr() as usize
    }
}

impl From<Bytes> for Cached {
    fn from(data: Bytes) -> Cached {
        Cached {
            run: data.clone(),
            data,
        }
    }
}

/// Joins consecutive blocks into one range, ending after the first short block (the end of
/// the replica): nothing after it belongs to the range. Blocks that are consecutive slices of
/// one run are joined without copying.
pub fn join_blocks(mut blocks: Vec<Cached>, block_size: u64) -> Bytes {
    if let Some(short) = blocks
        .iter()
        .position(|b| (b.data.len() as u64) < block_size)
    {
        blocks.truncate(short + 1);
    }
    let Some(first) = blocks.first() else {
        return Bytes::new();
    };
    let start = first.offset();
    let mut end = start;
    let same_run = blocks.iter().all(|b| {
        let adjacent = b.run.as_ptr() == first.run.as_ptr()
            && b.run.len() == first.run.len()
            && b.offset() == end;
        end += b.data.len();
        adjacent
    });
    if same_run {
        return first.run.slice(start..end);
    }
    let mut joined = bytes::BytesMut::with_capacity(blocks.iter().map(|b| b.data.len()).sum());
    for block in blocks {
        joined.extend_from_slice(&block.data);
    }
    joined.freeze()
}

/// What the block cache did since the client started, and what it holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Blocks served from the cache.
    pub hits: u64,
    /// Blocks that had to be read from a replica.
    pub misses: u64,
    /// Bytes cached now.
    pub bytes: usize,
}

/// A cheap, cloneable handle on the mount's block cache.
#[derive(Debug, Clone)]
pub struct BlockCache {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    capacity: usize,
    // A std mutex: held only for map operations, never across an `.await`.
    state: Mutex<State>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Debug)]
struct State {
    blocks: LruCache<BlockKey, Cached>,
    /// `(version, block)` of the cached blocks of each chunk, so dropping a chunk's blocks
    /// does not scan the whole cache.
    by_chunk: HashMap<u64, HashSet<(u64, u64)>>,
    /// Writes of this mount in flight, per `(chunk id, block)`.
    writing: HashMap<(u64, u64), Writers>,
    /// Blocks being fetched, each with a receiver that wakes when the fetch ends.
    in_flight: HashMap<BlockKey, watch::Receiver<()>>,
    bytes: usize,
    /// Bumped by every invalidation: a block read from a replica before an invalidation may
    /// predate the write that caused it, so it is not cached (see [`BlockCache::epoch`]).
    epoch: u64,
}

impl State {
    /// Caches a block, evicting the least recently used ones beyond `capacity`.
    fn put(&mut self, key: BlockKey, block: Cached, capacity: usize) {
        if block.data.len() > capacity {
            return;
        }
        self.bytes += block.data.len();
        if let Some(old) = self.blocks.put(key, block) {
            self.bytes -= old.data.len();
        }
        self.by_chunk
            .entry(key.chunk_id)
            .or_default()
            .insert((key.version, key.block));
        while self.bytes > capacity {
            match self.blocks.pop_lru() {
                Some((evicted, block)) => {
                    self.bytes -= block.data.len();
                    self.unindex(&evicted);
                }
                None => break,
            }
        }
    }

    fn unindex(&mut self, key: &BlockKey) {
        if let Some(keys) = self.by_chunk.get_mut(&key.chunk_id) {
            keys.remove(&(key.version, key.block));
            if keys.is_empty() {
                self.by_chunk.remove(&key.chunk_id);
            }
        }
    }

    /// Drops the cached blocks of `chunk_id` (every version) whose index is in `blocks`, and
    /// moves to a new epoch so fetches in flight do not cache what they read before.
    fn drop_blocks(&mut self, chunk_id: u64, blocks: RangeInclusive<u64>) {
        self.epoch += 1;
        let Some(keys) = self.by_chunk.get(&chunk_id) else {
            return;
        };
        let doomed: Vec<(u64, u64)> = keys
            .iter()
            .filter(|(_, block)| blocks.contains(block))
            .copied()
            .collect();
        for (version, block) in doomed {
            let key = BlockKey {
                chunk_id,
                version,
                block,
            };
            if let Some(block) = self.blocks.pop(&key) {
                self.bytes -= block.data.len();
            }
            self.unindex(&key);
        }
    }
}

impl BlockCache {
    /// A cache holding at most `capacity` bytes of block data (0 disables it).
    pub fn new(capacity: usize) -> BlockCache {
        BlockCache {
            inner: Arc::new(Inner {
                capacity,
                state: Mutex::new(State {
                    blocks: LruCache::unbounded(),
                    by_chunk: HashMap::new(),
                    writing: HashMap::new(),
                    in_flight: HashMap::new(),
                    bytes: 0,
                    epoch: 0,
                }),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().expect("block cache poisoned")
    }

    /// The cached block if it holds at least the block's first `need` bytes, marked as most
    /// recently used. A shorter entry is a miss: the chunk's data went on past it since it was
    /// cached, and the reader needs those bytes.
    pub fn get(&self, key: &BlockKey, need: usize) -> Option<Cached> {
        let found = self
            .state()
            .blocks
            .get(key)
            .filter(|block| block.data.len() >= need)
            .cloned();
        let counter = if found.is_some() {
            &self.inner.hits
        } else {
            &self.inner.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Whether the block is cached (without counting or reordering).
    #[cfg(test)]
    pub fn contains(&self, key: &BlockKey) -> bool {
        self.covers(key, 0)
    }

    /// Whether the block is cached with at least its first `need` bytes, so that
    /// [`get`](BlockCache::get) would answer (without counting or reordering).
    pub fn covers(&self, key: &BlockKey, need: usize) -> bool {
        self.state()
            .blocks
            .peek(key)
            .is_some_and(|block| block.data.len() >= need)
    }

    /// The cached bytes of the block (without counting or reordering).
    pub fn peek(&self, key: &BlockKey) -> Option<Bytes> {
        self.state()
            .blocks
            .peek(key)
            .map(|block| block.data.clone())
    }

    /// The current invalidation epoch: take it before reading blocks from a replica and pass
    /// it to [`insert`](BlockCache::insert).
    pub fn epoch(&self) -> u64 {
        self.state().epoch
    }

    /// Caches a block read from a replica since `epoch`, evicting the least recently used
    /// ones beyond the capacity. If anything was invalidated since `epoch`, the block may be
    /// older than a write and is not cached.
    pub fn insert(&self, key: BlockKey, block: impl Into<Cached>, epoch: u64) {
        let mut state = self.state();
        if state.epoch == epoch {
            state.put(key, block.into(), self.inner.capacity);
        }
    }

    /// Drops blocks `first..=last` of every cached version of `chunk_id`.
    pub fn invalidate_blocks(&self, chunk_id: u64, first: u64, last: u64) {
        self.state().drop_blocks(chunk_id, first..=last);
    }

    /// Drops every block of the given chunks.
    pub fn invalidate_chunks(&self, chunk_ids: &HashSet<u64>) {
        let mut state = self.state();
        for &chunk_id in chunk_ids {
            state.drop_blocks(chunk_id, 0..=u64::MAX);
        }
    }

    /// Claims the fetch of `keys`: either the caller fetches them (and holds the returned
    /// guard until the fetched blocks are inserted), or another task is fetching one of them
    /// and the caller should wait for it and look again.
    pub fn claim(&self, keys: &[BlockKey]) -> Claim {
        let mut state = self.state();
        if let Some(busy) = keys.iter().find_map(|key| state.in_flight.get(key)) {
            return Claim::Wait(busy.clone());
        }
        let (done, receiver) = watch::channel(());
        for key in keys {
            state.in_flight.insert(*key, receiver.clone());
        }
        Claim::Fetch(FetchGuard {
            cache: self.clone(),
            keys: keys.to_vec(),
            _done: done,
        })
    }

    /// Most bytes of block data held (0: the cache is off).
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Bytes of block data held.
    pub fn bytes(&self) -> usize {
        self.state().bytes
    }

    /// Hits and misses so far, and the bytes cached now.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.inner.hits.load(Ordering::Relaxed),
            misses: self.inner.misses.load(Ordering::Relaxed),
            bytes: self.bytes(),
        }
    }
}

/// The answer of [`BlockCache::claim`].
#[derive(Debug)]
pub enum Claim {
    /// Fetch the blocks; dropping the guard tells waiting readers to look again.
    Fetch(FetchGuard),
    /// Another task is fetching: wait for it (`changed()` returns when it ends), then look
    /// in the cache again.
    Wait(watch::Receiver<()>),
}

/// Marks blocks as being fetched until dropped (also when the fetch fails or is cancelled).
#[derive(Debug)]
pub struct FetchGuard {
    cache: BlockCache,
    keys: Vec<BlockKey>,
    // Dropped after the keys are removed: waiters wake to a settled cache.
    _done: watch::Sender<()>,
}

impl Drop for FetchGuard {
    fn drop(&mut self) {
        let mut state = self.cache.state();
        for key in &self.keys {
            state.in_flight.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
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
    fn bounded_in_bytes_least_recently_used_first() {
        let cache = BlockCache::new(100);
        cache.insert(key(1, 1, 0), block(40), 0);
        cache.insert(key(1, 1, 1), block(40), 0);
        assert!(cache.get(&key(1, 1, 0), 40).is_some());
        cache.insert(key(1, 1, 2), block(40), 0);
        // Block 1 was least recently used.
        assert!(!cache.contains(&key(1, 1, 1)));
        assert!(cache.contains(&key(1, 1, 0)) && cache.contains(&key(1, 1, 2)));
        assert_eq!(cache.bytes(), 80);
        // Replacing an entry accounts for the old size.
        cache.insert(key(1, 1, 2), block(10), 0);
        assert_eq!(cache.bytes(), 50);
        // Larger than the whole cache: not cached.
        cache.insert(key(9, 1, 0), block(101), 0);
        assert!(!cache.contains(&key(9, 1, 0)));
        assert_eq!((cache.stats().hits, cache.stats().misses), (1, 0));
    }

    #[test]
    fn versions_are_distinct_and_invalidation_is_per_chunk() {
        let cache = BlockCache::new(1000);
        cache.insert(key(1, 1, 0), block(10), 0);
        assert!(cache.get(&key(1, 2, 0), 0).is_none());
        for b in 0..5 {
            cache.insert(key(1, 2, b), block(10), 0);
            cache.insert(key(2, 1, b), block(10), 0);
        }
        cache.invalidate_blocks(1, 1, 3);
        let left: Vec<u64> = (0..5).filter(|&b| cache.contains(&key(1, 2, b))).collect();
        assert_eq!(left, vec![0, 4]);
        assert!(cache.contains(&key(2, 1, 2)));
        cache.invalidate_chunks(&[1].into_iter().collect());
        assert!(!cache.contains(&key(1, 2, 0)) && !cache.contains(&key(1, 1, 0)));
        assert_eq!(cache.bytes(), 50);
        // A block read before an invalidation (two so far) may predate a write: not cached.
        cache.insert(key(3, 1, 0), block(10), 1);
        assert!(!cache.contains(&key(3, 1, 0)));
        cache.insert(key(3, 1, 0), block(10), cache.epoch());
        assert!(cache.contains(&key(3, 1, 0)));
    }

    #[tokio::test]
    async fn a_second_reader_waits_for_the_fetch_in_flight() {
        let cache = BlockCache::new(1000);
        let keys = [key(1, 1, 0), key(1, 1, 1)];
        let Claim::Fetch(guard) = cache.claim(&keys) else {
            panic!("nothing in flight yet");
        };
        // Overlapping claims wait; disjoint ones fetch.
        let Claim::Wait(mut waiter) = cache.claim(&[key(1, 1, 1), key(1, 1, 2)]) else {
            panic!("block 1 is in flight");
        };
        assert!(matches!(cache.claim(&[key(1, 1, 5)]), Claim::Fetch(_)));
        cache.insert(key(1, 1, 1), block(10), cache.epoch());
        drop(guard);
        assert!(
            waiter.changed().await.is_err(),
            "woken by the end of the fetch"
        );
        assert!(cache.contains(&key(1, 1, 1)));
        assert!(matches!(cache.claim(&keys), Claim::Fetch(_)));
    }

    #[test]
    fn a_short_entry_is_a_miss_for_a_reader_needing_more() {
        let cache = BlockCache::new(1000);
        cache.insert(key(1, 1, 0), block(30), 0);
        assert_eq!(cache.get(&key(1, 1, 0), 30).map(|b| b.data.len()), Some(30));
        assert!(cache.covers(&key(1, 1, 0), 30));
        // Short for this reader: a miss, counted as one.
        assert!(cache.get(&key(1, 1, 0), 31).is_none());
        assert!(!cache.covers(&key(1, 1, 0), 31));
        assert_eq!((cache.stats().hits, cache.stats().misses), (1, 1));
        // The block fetched for the miss replaces the short entry.
        cache.insert(key(1, 1, 0), block(64), cache.epoch());
        assert_eq!(
            cache.get(&key(1, 1, 0), 64).map(|b| b.data),
            Some(block(64))
        );
        assert_eq!(cache.bytes(), 64);
    }

    #[test]
    fn evicted_blocks_leave_the_chunk_index() {
        let cache = BlockCache::new(30);
        for b in 0..10 {
            cache.insert(key(b % 2, 1, b), block(10), 0);
        }
        assert_eq!(cache.bytes(), 30);
        cache.invalidate_chunks(&[0].into_iter().collect());
        let left: Vec<u64> = (0..10)
            .filter(|&b| cache.contains(&key(b % 2, 1, b)))
            .collect();
        assert_eq!(left, vec![7, 9]);
        assert_eq!(cache.bytes(), 20);
        let state = cache.state();
        assert_eq!(state.by_chunk.len(), 1);
        assert_eq!(state.by_chunk[&1].len(), 2);
    }

    #[test]
    fn blocks_of_one_run_are_joined_without_a_copy() {
        let run = Bytes::from((0..35u8).collect::<Vec<u8>>());
        let blocks: Vec<Cached> = [0..10, 10..20, 20..30, 30..35]
            .into_iter()
            .map(|r| Cached::slice(&run, r))
            .collect();
        let joined = join_blocks(blocks[1..].to_vec(), 10);
        assert_eq!(&joined[..], &run[10..]);
        assert_eq!(joined.as_ptr(), run[10..].as_ptr(), "not copied");
        // Not adjacent (a block left out), or from different runs: copied, same bytes.
        let gap = join_blocks(vec![blocks[0].clone(), blocks[2].clone()], 10);
        assert_eq!(&gap[..10], &run[..10]);
        assert_eq!(&gap[10..], &run[20..30]);
        let other = Cached::from(Bytes::from_static(b"0123456789"));
        let mixed = join_blocks(vec![blocks[0].clone(), other], 10);
        assert_eq!(&mixed[10..], b"0123456789");
        // Nothing after a short block (the end of the replica) belongs to the range.
        let short = Cached::from(Bytes::from_static(b"abc"));
        let ended = join_blocks(vec![blocks[0].clone(), short, blocks[1].clone()], 10);
        assert_eq!(ended.len(), 13);
        assert_eq!(join_blocks(Vec::new(), 10), Bytes::new());
    }
}
