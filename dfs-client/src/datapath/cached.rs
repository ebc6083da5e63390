//! The data path's side of the block cache: reads through it ([`DataPath::cached`],
//! [`DataPath::read_cached`], read-ahead's [`DataPath::prefetch`]) and which blocks of a
//! write enter it ([`whole_blocks`]).

use bytes::Bytes;
use dfs_proto::FsError;
use dfs_proto::pb;

use super::DataPath;
use crate::blockcache::{BlockKey, Cached, Claim, join_blocks};

impl DataPath {
    /// `len` bytes at `offset` of `chunk` if every block they touch is cached with every byte
    /// the read needs from it (the range ends early where the replica does), without waiting
    /// for anything.
    pub fn cached(&self, chunk: &pb::ChunkInfo, offset: u64, len: u64) -> Option<Bytes> {
        if len == 0 {
            return Some(Bytes::new());
        }
        let block_size = self.layout.block_size;
        let first = offset / block_size;
        let blocks = self
            .wanted_blocks(chunk, offset, len)
            .iter()
            .map(|(key, need)| self.cache.get(key, *need))
            .collect::<Option<Vec<_>>>()?;
        let joined = join_blocks(blocks, block_size);
        Some(clip(joined, offset - first * block_size, len))
    }

    /// The cache keys of the blocks a read of `len` bytes at `offset` of `chunk` touches,
    /// each with the bytes from its start that an entry must hold to answer the read (see
    /// [`bytes_needed`]).
    ///
    /// Keyed by the reader's version even when a newer replica (stamped by a lease holder
    /// that took the file over) answers: only readers holding this older map use the key,
    /// and they accept that newer replica too, so the entry is as fresh as any cached block
    /// (close-to-open: a reopen moves readers to the new version's keys and drops changed
    /// chunks), and a takeover by this mount drops the chunk's blocks (`take_chunk`).
    fn wanted_blocks(
        &self,
        chunk: &pb::ChunkInfo,
        offset: u64,
        len: u64,
    ) -> Vec<(BlockKey, usize)> {
        let block_size = self.layout.block_size;
        let end = offset + len;
        (offset / block_size..end.div_ceil(block_size))
            .map(|block| {
                let key = BlockKey {
                    chunk_id: chunk.chunk_id,
                    version: chunk.version,
                    block,
                };
                (key, bytes_needed(block, block_size, end, chunk.length))
            })
            .collect()
    }

    /// Reads like [`read_chunk`](DataPath::read_chunk), through the block cache: the blocks
    /// from the first to the last one not cached (or cached shorter than the read needs) are
    /// fetched (one replica read) and kept, replacing what was cached of them.
    pub async fn read_cached(
        &self,
        chunk: &pb::ChunkInfo,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, FsError> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        let block_size = self.layout.block_size;
        let first = offset / block_size;
        let wanted = self.wanted_blocks(chunk, offset, len);
        let keys: Vec<BlockKey> = wanted.iter().map(|(key, _)| *key).collect();
        let clip = |range: Bytes| clip(range, offset - first * block_size, len);
        let (mut blocks, missing, fetching) = loop {
            let blocks: Vec<Option<Cached>> = wanted
                .iter()
                .map(|(key, need)| self.cache.get(key, *need))
                .collect();
            let Some(from) = blocks.iter().position(Option::is_none) else {
                return Ok(clip(join_blocks(
                    blocks.into_iter().flatten().collect(),
                    block_size,
                )));
            };
            let to = blocks.iter().rposition(Option::is_none).unwrap_or(from);
            match self.cache.claim(&keys[from..=to]) {
                Claim::Fetch(guard) => break (blocks, from..to + 1, guard),
                // The fetch in flight ends (successful or not): look again.
                Claim::Wait(mut fetch) => {
                    let _ = fetch.changed().await;
                }
            }
        };
        let epoch = self.cache.epoch();
        let fetch_start = (first + missing.start as u64) * block_size;
        let data = self
            .read_chunk(chunk, fetch_start, missing.len() as u64 * block_size)
            .await?;
        for i in missing.clone() {
            let from = ((i - missing.start) * block_size as usize).min(data.len());
            let block = Cached::slice(&data, from..(from + block_size as usize).min(data.len()));
            if !block.data.is_empty() {
                self.cache.insert(keys[i], block.clone(), epoch);
            }
            // Empty past the replica's end, which the joined range stops at.
            blocks[i] = Some(block);
        }
        drop(fetching);
        if missing.len() == keys.len() {
            return Ok(clip(data));
        }
        let blocks = blocks.into_iter().flatten().collect();
        Ok(clip(join_blocks(blocks, block_size)))
    }

    /// Reads a span into the cache unless all of it is cached already (read-ahead).
    pub async fn prefetch(&self, chunk: &pb::ChunkInfo, offset: u64, len: u64) {
        if len == 0 {
            return;
        }
        let all_cached = self
            .wanted_blocks(chunk, offset, len)
            .iter()
            .all(|(key, need)| self.cache.covers(key, *need));
        if !all_cached && let Err(err) = self.read_cached(chunk, offset, len).await {
            tracing::debug!(chunk_id = chunk.chunk_id, error = %err, "read-ahead failed");
        }
    }
}

/// Bytes from the start of `block` that a cached entry must hold to answer a read ending at
/// `read_end` (an offset in the chunk) of a chunk whose data ends at `chunk_length` (as the
/// read plan knows it): up to the read's end, the block's end or the data's end, whichever
/// comes first.
///
/// A short entry ended the chunk's data when it was cached; if the chunk has grown past it
/// since (this mount wrote a later block, which leaves the entry in place), the bytes after
/// it are a hole or new data that the entry does not hold, so the read must fetch the block
/// rather than end at the entry.
fn bytes_needed(block: u64, block_size: u64, read_end: u64, chunk_length: u64) -> usize {
    let start = block * block_size;
    let end = (start + block_size).min(read_end).min(chunk_length);
    end.saturating_sub(start) as usize
}

/// `len` bytes at `skip` of `range`, or what of them it holds.
fn clip(range: Bytes, skip: u64, len: u64) -> Bytes {
    let from = (skip as usize).min(range.len());
    let to = ((skip + len) as usize).min(range.len());
    range.slice(from..to)
}

/// The blocks of `chunk` whose whole content a write of `data` at `offset` determined, given
/// the replica's `length` after it: every block it covers entirely, and the last block of the
/// replica when the write covers it from the block's start to the replica's end (a short
/// block: the only block of a small file). The blocks
/// share `data` when they are most of it (a large write: copying bytes that left the CPU
/// cache while they went down the chain cost ~0.4 CPU-s per GiB written); otherwise they are
/// copied out into one run, so a few cached blocks never pin a much larger write buffer.
pub(super) fn whole_blocks(
    chunk: &pb::ChunkInfo,
    offset: u64,
    data: &Bytes,
    length: u64,
    block_size: u64,
) -> Vec<(BlockKey, Cached)> {
    let end = offset + data.len() as u64;
    let blocks: Vec<(u64, u64, u64)> = (offset.div_ceil(block_size)..end.div_ceil(block_size))
        .map(|block| {
            let start = block * block_size;
            (block, start, (start + block_size).min(length))
        })
        .filter(|&(_, start, stop)| start < stop && stop <= end)
        .collect();
    let (Some(&(_, run_start, _)), Some(&(_, _, run_stop))) = (blocks.first(), blocks.last())
    else {
        return Vec::new();
    };
    let range = (run_start - offset) as usize..(run_stop - offset) as usize;
    let run = if 2 * range.len() >= data.len() {
        data.slice(range)
    } else {
        Bytes::copy_from_slice(&data[range])
    };
    blocks
        .into_iter()
        .map(|(block, start, stop)| {
            let key = BlockKey {
                chunk_id: chunk.chunk_id,
                version: chunk.version,
                block,
            };
            let range = (start - run_start) as usize..(stop - run_start) as usize;
            (key, Cached::slice(&run, range))
        })
        .collect()
}

impl DataPath {
    /// The cached bytes of the block a write at `offset` of `chunk` starts inside, when they
    /// end exactly at `offset`: the tail an earlier write of this mount cached, which a write
    /// appending to it continues (see [`extended_tail`]).
    pub(super) fn cached_prefix(&self, chunk: &pb::ChunkInfo, offset: u64) -> Option<Bytes> {
        let block_size = self.layout.block_size;
        let need = (offset % block_size) as usize;
        if need == 0 {
            return None;
        }
        let key = BlockKey {
            chunk_id: chunk.chunk_id,
            version: chunk.version,
            block: offset / block_size,
        };
        self.cache.peek(&key).filter(|data| data.len() == need)
    }
}

/// The block a write of `data` at `offset` starts inside, when its bytes before `offset` are
/// `prefix` (cached for the same chunk version) and the write covers the rest of the block up
/// to the replica's `length` after it: an append continuing a cached tail. A file written in
/// several flushes (a descriptor duplicated by a fork and closed by the child flushes the
/// file early, as any close does) stays cached whole.
pub(super) fn extended_tail(
    chunk: &pb::ChunkInfo,
    offset: u64,
    data: &Bytes,
    length: u64,
    block_size: u64,
    prefix: &Bytes,
) -> Option<(BlockKey, Cached)> {
    let block = offset / block_size;
    let start = block * block_size;
    let stop = (start + block_size).min(length);
    let end = offset + data.len() as u64;
    // A write from the block's start is `whole_blocks`' to cache.
    if prefix.is_empty() || start + prefix.len() as u64 != offset || stop <= offset || stop > end {
        return None;
    }
    let mut bytes = Vec::with_capacity((stop - start) as usize);
    bytes.extend_from_slice(prefix);
    bytes.extend_from_slice(&data[..(stop - offset) as usize]);
    let run = Bytes::from(bytes);
    let key = BlockKey {
        chunk_id: chunk.chunk_id,
        version: chunk.version,
        block,
    };
    Some((key, Cached::slice(&run, 0..run.len())))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use dfs_proto::chunk::ChunkLayout;

    use super::*;
    use crate::blockcache::BlockCache;
    use crate::chunkio::ChunkIo;
    use crate::master::MasterClient;
    use crate::writebuf::WriteBudget;

    /// A data path with 10-byte blocks whose master and chunkservers are unreachable: a read
    /// that is not answered by the cache fails.
    fn offline() -> DataPath {
        DataPath {
            master: MasterClient::new("http://127.0.0.1:1", Duration::from_millis(100)).unwrap(),
            chunks: ChunkIo::new(Duration::from_millis(100), Default::default()),
            layout: ChunkLayout::new(100, 10),
            cache: BlockCache::new(1000),
            write_budget: WriteBudget::new(1000),
            cache_writes: true,
        }
    }

    /// Chunk 7 at version 1 with `length` bytes of data and no replica.
    fn chunk(length: u64) -> pb::ChunkInfo {
        pb::ChunkInfo {
            chunk_id: 7,
            version: 1,
            length,
            ..Default::default()
        }
    }

    fn key(block: u64) -> BlockKey {
        BlockKey {
            chunk_id: 7,
            version: 1,
            block,
        }
    }

    #[test]
    fn a_read_needs_a_block_up_to_its_own_end_the_block_end_or_the_data_end() {
        // Blocks of 10 bytes; the chunk's data ends at 25.
        assert_eq!(bytes_needed(0, 10, 100, 25), 10);
        assert_eq!(bytes_needed(2, 10, 100, 25), 5);
        // A read ending inside a block needs it only up to there.
        assert_eq!(bytes_needed(0, 10, 4, 25), 4);
        assert_eq!(bytes_needed(2, 10, 23, 25), 3);
        // Past the data's end: nothing (the read ends there).
        assert_eq!(bytes_needed(3, 10, 100, 25), 0);
        assert_eq!(bytes_needed(0, 10, 100, 0), 0);
    }

    #[tokio::test]
    async fn a_short_block_answers_only_reads_it_holds_every_byte_of() {
        let io = offline();
        let epoch = io.cache.epoch();
        // A small file's block, cached when its 5 bytes were the chunk's data.
        io.cache.insert(key(0), Bytes::from_static(b"abcde"), epoch);
        assert_eq!(io.cached(&chunk(5), 0, 10).as_deref(), Some(&b"abcde"[..]));
        assert_eq!(io.cached(&chunk(5), 1, 3).as_deref(), Some(&b"bcd"[..]));
        // The chunk grew past it (block 1 written since, cached short too): the entry still
        // answers for the bytes it holds, never for those after it, which now are a hole
        // (zeros on the replica) followed by block 1.
        io.cache.insert(key(1), Bytes::from_static(b"xyz"), epoch);
        let grown = chunk(13);
        assert_eq!(io.cached(&grown, 0, 4).as_deref(), Some(&b"abcd"[..]));
        assert_eq!(io.cached(&grown, 0, 13), None);
        assert_eq!(io.cached(&grown, 3, 3), None);
        assert_eq!(io.cached(&grown, 10, 3).as_deref(), Some(&b"xyz"[..]));
        // Nor does the path through the replicas end the read at the entry: it must fetch the
        // block (which fails here, every replica being unreachable) rather than return it.
        assert!(io.read_cached(&grown, 0, 13).await.is_err());
        assert_eq!(io.read_cached(&grown, 0, 5).await.unwrap(), &b"abcde"[..]);
        // The block fetched in full replaces the short entry; the read joins it with block 1.
        io.cache
            .insert(key(0), Bytes::from_static(b"abcde\0\0\0\0\0"), epoch);
        assert_eq!(
            io.read_cached(&grown, 0, 13).await.unwrap(),
            &b"abcde\0\0\0\0\0xyz"[..]
        );
        assert_eq!(
            io.cached(&grown, 3, 9).as_deref(),
            Some(&b"de\0\0\0\0\0xy"[..])
        );
    }

    #[test]
    fn only_blocks_a_write_determines_are_cached() {
        let chunk = pb::ChunkInfo {
            chunk_id: 4,
            version: 9,
            ..Default::default()
        };
        let data = Bytes::from((0..43).collect::<Vec<u8>>());
        // (block, first byte, length) of what a write of `data` at `offset` caches.
        let blocks = |offset, length| -> Vec<(u64, u8, usize)> {
            whole_blocks(&chunk, offset, &data, length, 10)
                .into_iter()
                .map(|(key, bytes)| {
                    assert_eq!((key.chunk_id, key.version), (4, 9));
                    (key.block, bytes.data[0], bytes.data.len())
                })
                .collect()
        };
        // Bytes 5..48 of a replica ending there: blocks 1..=3 whole, block 4 is its tail.
        assert_eq!(
            blocks(5, 48),
            vec![(1, 5, 10), (2, 15, 10), (3, 25, 10), (4, 35, 8)]
        );
        // The replica goes on past the write: the block it ends inside is not determined.
        assert_eq!(blocks(5, 60), vec![(1, 5, 10), (2, 15, 10), (3, 25, 10)]);
        // Aligned, ending at a block boundary inside a longer replica.
        assert_eq!(blocks(10, 100)[..2], [(1, 0, 10), (2, 10, 10)]);
        assert_eq!(blocks(10, 100).len(), 4);
        // Blocks that are most of the write share its buffer; a few are copied out.
        let cached = whole_blocks(&chunk, 5, &data, 48, 10);
        assert_eq!(cached[0].1.data.as_ptr(), data[5..].as_ptr());
        let cached = whole_blocks(&chunk, 1, &data.slice(..28), 100, 10);
        assert_eq!(cached.len(), 1);
        assert_eq!(&cached[0].1.data[..], &data[9..19]);
        assert_ne!(cached[0].1.data.as_ptr(), data[9..].as_ptr());
    }

    #[test]
    fn an_append_continuing_a_cached_head_caches_the_block_whole() {
        let chunk = chunk(0);
        let data = Bytes::from_static(b"defgh");
        let head = Bytes::from_static(b"abc");
        let tail = |offset, length, prefix: &Bytes| {
            extended_tail(&chunk, offset, &data, length, 10, prefix)
                .map(|(key, cached)| (key.block, cached.data))
        };
        // Bytes 13..18 after a cached 10..13, replica ending at 18: block 1 is 10..18.
        assert_eq!(
            tail(13, 18, &head),
            Some((1, Bytes::from_static(b"abcdefgh")))
        );
        // A replica going on past the write, a head not ending where the write starts, or a
        // write starting on a block boundary: nothing determined.
        assert_eq!(tail(13, 19, &head), None);
        assert_eq!(tail(14, 19, &head), None);
        assert_eq!(tail(10, 15, &Bytes::new()), None);
        // A write running into the next block caches this one up to its end.
        let long = Bytes::from_static(b"0123456789");
        let (key, cached) = extended_tail(&chunk, 13, &long, 40, 10, &head).unwrap();
        assert_eq!((key.block, &cached.data[..]), (1, &b"abc0123456"[..]));
    }

    #[tokio::test]
    async fn the_head_of_a_write_is_the_cached_block_ending_where_it_starts() {
        let path = offline();
        path.cache
            .insert(key(1), Bytes::from_static(b"abc"), path.cache.epoch());
        assert_eq!(
            path.cached_prefix(&chunk(13), 13),
            Some(Bytes::from_static(b"abc"))
        );
        assert_eq!(path.cached_prefix(&chunk(13), 14), None);
        assert_eq!(path.cached_prefix(&chunk(13), 20), None);
        let newer = pb::ChunkInfo {
            version: 2,
            ..chunk(13)
        };
        assert_eq!(path.cached_prefix(&newer, 13), None);
    }
}
