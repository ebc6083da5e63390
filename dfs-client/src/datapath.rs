//! [`DataPath`]: what the data path talks to — the master for chunk maps, allocations and
//! commits, the chunkservers for bytes, the mount's block cache — and the operations that need
//! more than one of them: a chunk write that survives a failed replica (the master replaces
//! the chain), a read that falls back across replicas and reports bad ones, reads through the
//! block cache (module `cached`), and cutting replicas before the master shrinks a file.

use bytes::Bytes;
use dfs_proto::FsError;
use dfs_proto::chunk::{ChunkLayout, ChunkSpan};
use dfs_proto::pb;

use crate::blockcache::BlockCache;
use crate::chunkio::{ChunkIo, WriteFlags};
use crate::master::MasterClient;
use crate::writebuf::WriteBudget;

mod cached;

use cached::{extended_tail, whole_blocks};

/// Reads of a chunk are spread over its replicas in runs of this many bytes: long enough
/// that each server reads its files sequentially (its disk's readahead works), short enough
/// that a sequential reader keeps every server busy.
pub const SPREAD_BYTES: u64 = 8 << 20;

/// What the data path talks to: the master for chunk maps and commits, chunkservers for bytes.
#[derive(Debug, Clone)]
pub struct DataPath {
    /// Metadata RPCs.
    pub master: MasterClient,
    /// Chunkserver channels.
    pub chunks: ChunkIo,
    /// The cluster's chunk and block sizes.
    pub layout: ChunkLayout,
    /// Verified blocks read before (see [`BlockCache`] for when entries are dropped).
    pub cache: BlockCache,
    /// Memory the mount's open files share for write-back.
    pub write_budget: WriteBudget,
    /// Whether blocks this mount writes in full (or up to the end of the chunk's data) enter
    /// the cache (write-through).
    pub cache_writes: bool,
}

impl DataPath {
    /// Writes one span to its chunk's replica chain (see
    /// [`write_pieces`](DataPath::write_pieces)). Returns the chunk as finally written (the
    /// caller commits with its version).
    pub async fn write_span(
        &self,
        ino: u64,
        chunk: pb::ChunkInfo,
        span: &ChunkSpan,
        data: Bytes,
        flags: WriteFlags,
        holder: Option<&str>,
    ) -> Result<pb::ChunkInfo, FsError> {
        let pieces = [(span.offset, data)];
        self.write_pieces(ino, chunk, span.index, &pieces, flags, holder)
            .await
    }

    /// Writes several `(offset in chunk, bytes)` pieces of the chunk at `index` (disjoint, in
    /// offset order) down its replica chain in one stream. When a replica fails mid-write,
    /// the master is asked for a chain without it (same chunk, newer version) and the pieces
    /// are rewritten there, so the write completes on the survivors; the survivors already
    /// hold the chunk's earlier bytes, the dropped replica is left stale at the old version.
    /// Under a writer lease (`holder`) the master refuses the replacement (ESTALE) once the
    /// lease was taken over, so a cut-off writer fails instead of writing over the new
    /// holder's version (whose stamped replicas refuse its old version anyway).
    /// Returns the chunk as finally written (the caller commits with its version).
    ///
    /// The blocks a piece covers in full, the block it covers from its start to the end of
    /// the chunk's data, and the block whose cached head it continues to that end, enter the
    /// block cache under that version (unless `cache_writes` is off); the cached blocks it
    /// changed otherwise are dropped.
    pub async fn write_pieces(
        &self,
        ino: u64,
        chunk: pb::ChunkInfo,
        index: u64,
        pieces: &[(u64, Bytes)],
        flags: WriteFlags,
        holder: Option<&str>,
    ) -> Result<pb::ChunkInfo, FsError> {
        let (block_size, chunk_id) = (self.layout.block_size, chunk.chunk_id);
        // An empty piece changes no bytes (a sync, or a version stamp) unless it truncates.
        let keep = self.cache_writes && self.cache.capacity() > 0;
        let writes: Vec<_> = pieces
            .iter()
            .map(|(offset, data)| {
                (!data.is_empty()).then(|| {
                    let last = (offset + data.len() as u64 - 1) / block_size;
                    let prefix = keep.then(|| self.cached_prefix(&chunk, *offset)).flatten();
                    let write = self.cache.begin_write(chunk_id, offset / block_size..=last);
                    (write, prefix)
                })
            })
            .collect();
        let version = chunk.version;
        let written = self
            .write_replacing(ino, chunk, index, pieces, flags, holder)
            .await;
        if let Ok((chunk, length)) = &written {
            for (write, (offset, data)) in writes.into_iter().zip(pieces) {
                let Some((write, prefix)) = write else {
                    continue;
                };
                let mut blocks = Vec::new();
                if keep {
                    // A replaced chain has a new version: the prefix was cached for the old.
                    let tail = prefix
                        .filter(|_| chunk.version == version)
                        .and_then(|prefix| {
                            extended_tail(chunk, *offset, data, *length, block_size, &prefix)
                        });
                    blocks.extend(tail);
                    blocks.extend(whole_blocks(chunk, *offset, data, *length, block_size));
                }
                write.finish(blocks);
            }
        }
        if flags.truncate {
            // Blocks past the new end are gone (also when the write failed part way). A block
            // the write ends inside is the write's own.
            let (offset, data) = pieces.last().cloned().unwrap_or_default();
            let end = offset + data.len() as u64;
            let past = if data.is_empty() {
                end / block_size
            } else {
                end.div_ceil(block_size)
            };
            self.cache.invalidate_blocks(chunk_id, past, u64::MAX);
        }
        written.map(|(chunk, _)| chunk)
    }

    /// [`write_pieces`](DataPath::write_pieces) without the cache: returns the chunk as
    /// finally written and the replica length after the write.
    async fn write_replacing(
        &self,
        ino: u64,
        mut chunk: pb::ChunkInfo,
        index: u64,
        pieces: &[(u64, Bytes)],
        flags: WriteFlags,
        holder: Option<&str>,
    ) -> Result<(pb::ChunkInfo, u64), FsError> {
        let mut token_renewed = false;
        // Every retry drops at least one replica (or renews the token, once), so the chain
        // runs out before this does.
        for _ in 0..=chunk.replicas.len() + 1 {
            let failure = match self.chunks.write_chain_pieces(&chunk, pieces, flags).await {
                Ok(length) => return Ok((chunk, length)),
                Err(failure) if failure.error.is_token_refusal() && !token_renewed => {
                    // Expired while the file was open: the master's chunk map has a new one.
                    token_renewed = true;
                    chunk.token = self.fresh_token(ino, index, &chunk, failure.error).await?;
                    continue;
                }
                Err(failure) if failure.error.is_replica_fault() => failure,
                Err(failure) => return Err(failure.error),
            };
            let failed: Vec<u64> = chunk
                .replicas
                .iter()
                .filter(|r| Some(&r.addr) == failure.failed_addr.as_ref())
                .map(|r| r.server_id)
                .collect();
            tracing::warn!(
                ino,
                index,
                chunk_id = chunk.chunk_id,
                ?failed,
                error = %failure.error,
                "chain write failed, asking for a chain without the failed replica"
            );
            let fresh = self
                .master
                .replace_replicas(ino, &chunk, failed, holder)
                .await?;
            if fresh == chunk {
                return Err(failure.error);
            }
            chunk = fresh;
        }
        Err(FsError::Unavailable(format!(
            "chunk {} lost every replica during a write",
            chunk.chunk_id
        )))
    }

    /// A fresh token for `chunk` (at `index` of file `ino`) from the master's chunk map, after
    /// a chunkserver refused the one held with `refused`; that error if the master no longer
    /// maps the chunk there.
    async fn fresh_token(
        &self,
        ino: u64,
        index: u64,
        chunk: &pb::ChunkInfo,
        refused: FsError,
    ) -> Result<Option<pb::ChunkToken>, FsError> {
        let fresh = self.current_chunk(ino, index).await?;
        let same = fresh.filter(|c| c.chunk_id == chunk.chunk_id);
        same.map(|c| c.token).ok_or(refused)
    }

    /// The chunk at `index` of file `ino` as the master maps it now (`None`: a hole), with a
    /// fresh token.
    pub async fn current_chunk(
        &self,
        ino: u64,
        index: u64,
    ) -> Result<Option<pb::ChunkInfo>, FsError> {
        let reply = self.master.get_chunks(ino, index, 1).await?;
        Ok(reply.chunks.into_iter().find(|c| c.index == index))
    }

    /// Reads up to `len` bytes at `offset` of `chunk`, trying its replicas in turn: any
    /// replica fault (corrupt, stale, unreachable, I/O) moves on to the next, so a bad disk
    /// or a dead server costs latency, not an error. A replica found corrupt or stale is
    /// reported to the master, which drops it. The result is shorter than `len` when the
    /// replica ends earlier (a sparse chunk).
    ///
    /// The first replica asked depends on which [`SPREAD_BYTES`] piece of the chunk `offset`
    /// falls in, so a large read spread over pieces (read-ahead) is served by every replica's
    /// server at once, each reading and verifying its share.
    pub async fn read_chunk(
        &self,
        chunk: &pb::ChunkInfo,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, FsError> {
        let mut last_error =
            FsError::Unavailable(format!("chunk {} has no replicas", chunk.chunk_id));
        let count = chunk.replicas.len();
        let first = (offset / SPREAD_BYTES) as usize % count.max(1);
        for i in 0..count {
            let replica = &chunk.replicas[(first + i) % count];
            match self
                .chunks
                .read_replica(&replica.addr, chunk, offset, len)
                .await
            {
                Ok(data) => return Ok(data),
                Err(err) if err.is_replica_fault() => {
                    tracing::warn!(
                        chunk_id = chunk.chunk_id,
                        replica = %replica.addr,
                        error = %err,
                        "chunk read failed, trying the next replica"
                    );
                    if matches!(err, FsError::Corrupt(_) | FsError::Stale(_)) {
                        self.report_bad_replica(chunk, replica, &err);
                    }
                    last_error = err;
                }
                Err(err) => return Err(err),
            }
        }
        Err(last_error)
    }

    /// Tells the master, in the background, that `replica` of `chunk` is bad. A reader that
    /// is itself stale (the replica is newer) is told apart by the master from the version.
    fn report_bad_replica(
        &self,
        chunk: &pb::ChunkInfo,
        replica: &pb::ReplicaLocation,
        err: &FsError,
    ) {
        let req = pb::ReportBadReplicaRequest {
            chunk_id: chunk.chunk_id,
            server_id: replica.server_id,
            version: chunk.version,
            reason: err.to_string(),
        };
        let master = self.master.clone();
        tokio::spawn(async move {
            if let Err(err) = master.report_bad_replica(req).await {
                tracing::warn!(error = %err, "could not report a bad replica");
            }
        });
    }

    /// Moves `chunk` (at `index` of file `ino`) to the next version under `holder`'s lease,
    /// optionally cutting its replicas to `cut_to` bytes on the way. Each replica is stamped
    /// on its own (one dead server must not block the others); the master records the new
    /// version only if at least one replica took it, so the data always stays readable. A
    /// replica that missed the stamp stays at the old version: stale for readers, garbage for
    /// the master's block reports. The chunk's cached blocks are dropped.
    pub async fn take_chunk(
        &self,
        ino: u64,
        index: u64,
        holder: &str,
        chunk: &pb::ChunkInfo,
        cut_to: Option<u64>,
    ) -> Result<pb::ChunkInfo, FsError> {
        // Above any version handed to the previous holder for a rewrite, so that rewrite is stale.
        let version = chunk.version.max(chunk.issued_version) + 1;
        let mut stamped = 0;
        let mut last_error = None;
        for replica in &chunk.replicas {
            let single = pb::ChunkInfo {
                version,
                replicas: vec![replica.clone()],
                ..chunk.clone()
            };
            let result = match cut_to {
                Some(length) => self.chunks.truncate_chunk(&single, length).await,
                None => self.chunks.stamp_version(&single).await,
            };
            match result {
                Ok(_) => stamped += 1,
                Err(err) => {
                    tracing::warn!(ino, index, replica = %replica.addr, error = %err,
                        "could not move a replica to the new chunk version");
                    last_error = Some(err);
                }
            }
        }
        // Blocks cached under the old version may predate the cut; drop them (this also stops
        // fetches in flight from caching what they read).
        self.cache
            .invalidate_chunks(&std::collections::HashSet::from([chunk.chunk_id]));
        if stamped == 0 {
            return Err(last_error.unwrap_or_else(|| {
                FsError::Unavailable(format!("chunk {} has no replicas", chunk.chunk_id))
            }));
        }
        self.master.lease_chunk(ino, index, holder, version).await
    }

    /// Before the master shrinks a file to `new_size`, cuts the replicas of the chunk that
    /// will hold the new end, so bytes past it cannot reappear if the file grows again.
    /// Chunks wholly past the new end are dropped by the master itself. `local_size` is the
    /// size this client knows of beyond the master's (0 if none).
    pub async fn truncate_replicas(
        &self,
        ino: u64,
        new_size: u64,
        local_size: u64,
    ) -> Result<(), FsError> {
        let index = self.layout.chunk_index(new_size);
        let in_chunk = new_size - self.layout.chunk_start(index);
        if in_chunk == 0 {
            return Ok(());
        }
        let reply = self.master.get_chunks(ino, index, 1).await?;
        if new_size >= reply.file_size.max(local_size) {
            return Ok(());
        }
        if let Some(chunk) = reply.chunks.into_iter().find(|c| c.index == index) {
            self.chunks.truncate_chunk(&chunk, in_chunk).await?;
            self.cache
                .invalidate_chunks(&std::iter::once(chunk.chunk_id).collect());
        }
        Ok(())
    }
}
