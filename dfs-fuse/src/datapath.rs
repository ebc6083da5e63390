//! [`DataPath`]: what the data path talks to — the master for chunk maps, allocations and
//! commits, the chunkservers for bytes — and the operations that need both: a chunk write that
//! survives a changed replica chain, and cutting replicas before the master shrinks a file.

use bytes::Bytes;
use dfs_proto::FsError;
use dfs_proto::chunk::{ChunkLayout, ChunkSpan};
use dfs_proto::pb;

use crate::chunkio::{ChunkIo, WriteFlags};
use crate::master::MasterClient;

/// What the data path talks to: the master for chunk maps and commits, chunkservers for bytes.
#[derive(Debug, Clone)]
pub struct DataPath {
    /// Metadata RPCs.
    pub master: MasterClient,
    /// Chunkserver channels.
    pub chunks: ChunkIo,
    /// The cluster's chunk and block sizes.
    pub layout: ChunkLayout,
}

impl DataPath {
    /// Writes one span to its chunk's replica chain. A replica fault may mean the chain
    /// changed (a replaced server, a new version), so the chunk is fetched again from the
    /// master and, if it did change, the write is retried once on the new chain. Under a
    /// writer lease (`holder`) the chunk is fetched through the lease, so a writer whose lease
    /// was taken over fails (ESTALE) instead of writing over the new holder's version.
    pub async fn write_span(
        &self,
        ino: u64,
        chunk: pb::ChunkInfo,
        span: &ChunkSpan,
        data: Bytes,
        flags: WriteFlags,
        holder: Option<&str>,
    ) -> Result<pb::ChunkInfo, FsError> {
        match self
            .chunks
            .write_chunk(&chunk, span.offset, data.clone(), flags)
            .await
        {
            Ok(_) => Ok(chunk),
            Err(err) if err.is_replica_fault() => {
                let fresh = match holder {
                    Some(holder) => self.master.lease_chunk(ino, span.index, holder, 0).await?,
                    None => self.master.allocate_chunk(ino, span.index).await?,
                };
                if fresh == chunk {
                    return Err(err);
                }
                tracing::info!(ino, index = span.index, error = %err, "chunk chain changed, retrying write");
                self.chunks
                    .write_chunk(&fresh, span.offset, data, flags)
                    .await?;
                Ok(fresh)
            }
            Err(err) => Err(err),
        }
    }

    /// Moves `chunk` (at `index` of file `ino`) to the next version under `holder`'s lease,
    /// optionally cutting its replicas to `cut_to` bytes on the way. Each replica is stamped
    /// on its own (one dead server must not block the others); the master records the new
    /// version only if at least one replica took it, so the data always stays readable. A
    /// replica that missed the stamp stays at the old version: stale for readers, garbage for
    /// the master's block reports.
    pub async fn take_chunk(
        &self,
        ino: u64,
        index: u64,
        holder: &str,
        chunk: &pb::ChunkInfo,
        cut_to: Option<u64>,
    ) -> Result<pb::ChunkInfo, FsError> {
        let version = chunk.version + 1;
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
        }
        Ok(())
    }
}
