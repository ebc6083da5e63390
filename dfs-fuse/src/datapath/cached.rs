//! The data path's side of the block cache: reads through it ([`DataPath::cached`],
//! [`DataPath::read_cached`], read-ahead's [`DataPath::prefetch`]) and which blocks of a
//! write enter it ([`whole_blocks`]).

use bytes::Bytes;
use dfs_proto::FsError;
use dfs_proto::pb;

use super::DataPath;
use crate::blockcache::{BlockKey, Cached, Claim, join_blocks};

impl DataPath {
    /// `len` bytes at `offset` of `chunk` if every block they touch is cached (the range ends
    /// early where the replica does), without waiting for anything.
    pub fn cached(&self, chunk: &pb::ChunkInfo, offset: u64, len: u64) -> Option<Bytes> {
        if len == 0 {
            return Some(Bytes::new());
        }
        let block_size = self.layout.block_size;
        let (first, last) = (offset / block_size, (offset + len - 1) / block_size);
        let keys = self.block_keys(chunk, first, last);
        let blocks = keys
            .iter()
            .map(|key| self.cache.get(key))
            .collect::<Option<Vec<_>>>()?;
        let joined = join_blocks(blocks, block_size);
        Some(clip(joined, offset - first * block_size, len))
    }

    /// Cache keys of blocks `first..=last` of `chunk`.
    ///
    /// Keyed by the reader's version even when a newer replica (stamped by a lease holder
    /// that took the file over) answers: only readers holding this older map use the key,
    /// and they accept that newer replica too, so the entry is as fresh as any cached block
    /// (close-to-open: a reopen moves readers to the new version's keys and drops changed
    /// chunks), and a takeover by this mount drops the chunk's blocks (`take_chunk`).
    fn block_keys(&self, chunk: &pb::ChunkInfo, first: u64, last: u64) -> Vec<BlockKey> {
        (first..=last)
            .map(|block| BlockKey {
                chunk_id: chunk.chunk_id,
                version: chunk.version,
                block,
            })
            .collect()
    }

    /// Reads like [`read_chunk`](DataPath::read_chunk), through the block cache: the blocks
    /// from the first to the last one not cached are fetched (one replica read) and kept.
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
        let (first, last) = (offset / block_size, (offset + len - 1) / block_size);
        let keys = self.block_keys(chunk, first, last);
        let clip = |range: Bytes| clip(range, offset - first * block_size, len);
        let (mut blocks, missing, fetching) = loop {
            let blocks: Vec<Option<Cached>> = keys.iter().map(|k| self.cache.get(k)).collect();
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
        let block_size = self.layout.block_size;
        if len == 0 {
            return;
        }
        let all_cached = (offset / block_size..=(offset + len - 1) / block_size).all(|block| {
            self.cache.contains(&BlockKey {
                chunk_id: chunk.chunk_id,
                version: chunk.version,
                block,
            })
        });
        if !all_cached && let Err(err) = self.read_cached(chunk, offset, len).await {
            tracing::debug!(chunk_id = chunk.chunk_id, error = %err, "read-ahead failed");
        }
    }
}

/// `len` bytes at `skip` of `range`, or what of them it holds.
fn clip(range: Bytes, skip: u64, len: u64) -> Bytes {
    let from = (skip as usize).min(range.len());
    let to = ((skip + len) as usize).min(range.len());
    range.slice(from..to)
}

/// The blocks of `chunk` whose whole content a write of `data` at `offset` determined, given
/// the replica's `length` after it: every block it covers entirely, and the last block of the
/// replica when the write covers it from the block's start to the replica's end. The blocks
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
