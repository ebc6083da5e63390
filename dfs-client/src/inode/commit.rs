//! Publishing an inode's writes: sending what is buffered, committing lengths (and kept
//! attribute changes) to the master, `flush` at every close, `fsync`, and the commit a size
//! change makes first. How failed sends are reported is in the parent module's docs.

use bytes::Bytes;
use dfs_proto::FsError;
use dfs_proto::chunk::ChunkSpan;
use dfs_proto::pb;

use super::{InodeState, OpenInode};
use crate::chunkio::WriteFlags;
use crate::datapath::DataPath;

impl InodeState {
    /// Tells the master the new chunk lengths and file size, and the attribute changes kept
    /// meanwhile.
    async fn commit(&mut self, io: &DataPath, ino: u64) -> Result<Option<pb::Attr>, FsError> {
        if self.pending.is_empty() && self.deferred.is_none() {
            self.written_end = 0;
            return Ok(None);
        }
        let placed_servers = |commit: &pb::ChunkCommit| match &self.unrecorded {
            Some(placed) if placed.chunk_id == commit.chunk_id => {
                placed.replicas.iter().map(|r| r.server_id).collect()
            }
            _ => Vec::new(),
        };
        let chunks = self
            .pending
            .values()
            .map(|commit| pb::ChunkCommit {
                placed_servers: placed_servers(commit),
                ..commit.clone()
            })
            .collect();
        let req = pb::CommitWriteRequest {
            ino,
            chunks,
            size: self.size(),
            mtime: Some(dfs_proto::time::now()),
            lease_holder: self.lease_holder.clone().unwrap_or_default(),
            attrs: self.deferred.map(|changes| changes.request(ino)),
        };
        match io.master.commit_write(req).await {
            Ok(attr) => {
                self.master_size = attr.size;
                self.pending.clear();
                self.unrecorded = None;
                self.written_end = 0;
                self.deferred = None;
                self.known_attr = Some((attr, std::time::Instant::now()));
                Ok(Some(attr))
            }
            Err(err) => {
                // The data is on the replicas; the commit is retried by the next flush.
                tracing::error!(ino, error = %err, "commit to master failed");
                Err(err)
            }
        }
    }

    /// Sends everything and commits what reached the replicas; returns the attributes after
    /// the commit if there was anything to commit. Only failures of this call are returned,
    /// not an earlier one: [`flush`](InodeState::flush) reports that.
    async fn send_and_commit(
        &mut self,
        io: &DataPath,
        ino: u64,
    ) -> Result<Option<pb::Attr>, FsError> {
        self.send_dirty(io, ino, false).await?;
        self.commit(io, ino).await
    }

    /// `flush` (every `close`): [`send_and_commit`](InodeState::send_and_commit), then the
    /// failed send owed to the application, if any (kept for later flushes and fsync).
    async fn flush(&mut self, io: &DataPath, ino: u64) -> Result<Option<pb::Attr>, FsError> {
        let committed = self.send_and_commit(io, ino).await;
        if let Some(err) = &self.write_error {
            self.refusing_writes = false;
            return Err(err.clone());
        }
        committed
    }

    /// Like [`flush`](InodeState::flush), but returns only when every replica of every chunk
    /// written since the last fsync has synced it to disk; reports a failed send once.
    async fn fsync(&mut self, io: &DataPath, ino: u64) -> Result<Option<pb::Attr>, FsError> {
        let synced = self.sync_and_commit(io, ino).await;
        if let Some(err) = self.write_error.take() {
            self.refusing_writes = false;
            return Err(err);
        }
        synced
    }

    /// The work of [`fsync`](InodeState::fsync): sends with `sync`, syncs every chunk
    /// written without it, and commits.
    async fn sync_and_commit(
        &mut self,
        io: &DataPath,
        ino: u64,
    ) -> Result<Option<pb::Attr>, FsError> {
        self.send_dirty(io, ino, true).await?;
        let unsynced: Vec<u64> = self.unsynced.iter().copied().collect();
        for index in unsynced {
            if let Some(chunk) = self.chunks.get(&index).cloned() {
                // An empty write with `sync` at the end of the data: through the same
                // replica-replacing path as data, since a server may have died since.
                let span = ChunkSpan {
                    index,
                    offset: chunk.length,
                    len: 0,
                    buf_offset: 0,
                };
                let flags = WriteFlags {
                    sync: true,
                    truncate: false,
                };
                let holder = self.lease_holder.as_deref();
                let synced = io
                    .write_span(ino, chunk.clone(), &span, Bytes::new(), flags, holder)
                    .await?;
                if synced != chunk {
                    // The chain was replaced: commit with the new version.
                    self.record_write(&io.layout, synced, &span, true);
                }
            }
            self.unsynced.remove(&index);
        }
        self.commit(io, ino).await
    }
}

impl OpenInode {
    /// Sends buffered writes and commits them to the master; returns the attributes after
    /// the commit if there was anything to commit.
    pub async fn flush(&self, io: &DataPath) -> Result<Option<pb::Attr>, FsError> {
        let state = self.state.lock().await;
        let mut state = self.wait_idle(state).await;
        let result = state.flush(io, self.ino).await;
        self.publish(&state);
        result
    }

    /// Sends buffered writes and commits them (with the attribute changes kept) for an
    /// attribute change that must come after them. An earlier failed send is left for
    /// `close` and `fsync` to report, not the change.
    pub async fn send_and_commit(&self, io: &DataPath) -> Result<Option<pb::Attr>, FsError> {
        let state = self.state.lock().await;
        let mut state = self.wait_idle(state).await;
        let result = state.send_and_commit(io, self.ino).await;
        self.publish(&state);
        result
    }

    /// Sends, syncs on every replica, and commits.
    pub async fn fsync(&self, io: &DataPath) -> Result<Option<pb::Attr>, FsError> {
        let state = self.state.lock().await;
        let mut state = self.wait_idle(state).await;
        let result = state.fsync(io, self.ino).await;
        self.publish(&state);
        result
    }

    /// Whether a [`flush`](OpenInode::flush) would have nothing to do (no write buffered,
    /// being sent or uncommitted, no attribute change kept, no failure to report), known
    /// without waiting: `None` while
    /// the state is busy.
    pub fn try_is_flushed(&self) -> Option<bool> {
        let state = self.state.try_lock().ok()?;
        Some(
            !state.sending
                && !state.has_uncommitted()
                && state.deferred.is_none()
                && state.write_error.is_none(),
        )
    }

    /// Changes the size: commits this client's writes, cuts replicas when shrinking, then
    /// sends `req` (which carries the size and possibly other attributes) to the master.
    pub async fn resize(
        &self,
        io: &DataPath,
        req: pb::SetAttrRequest,
        size: u64,
    ) -> Result<pb::Attr, FsError> {
        let state = self.state.lock().await;
        let mut state = self.wait_idle(state).await;
        let result = async {
            state.send_and_commit(io, self.ino).await?;
            io.truncate_replicas(self.ino, size, state.size()).await?;
            let attr = io.master.set_attr(req).await?;
            state.resized(&io.layout, attr.size);
            state.known_attr = Some((attr, std::time::Instant::now()));
            Ok::<_, FsError>(attr)
        }
        .await;
        self.publish(&state);
        result
    }
}
