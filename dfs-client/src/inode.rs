//! Client state of open inodes: the cached chunk map, the write-back buffer, and the writes
//! that reached the replicas but are not yet committed to the master.
//!
//! All open handles of an inode share one [`OpenInode`] (created at the first `open`, dropped
//! at the last `release`), so two descriptors of one file see each other's writes. Its state
//! sits behind an async mutex; writes to one file are applied in order, while different files
//! proceed in parallel. Submodules: `sender` (buffering writes and the background sender),
//! `commit` (flush, fsync and commits), `deferred` (attribute changes kept for a commit).
//!
//! **Write-back.** A write lands in the file's [`DirtyRanges`] and returns. Bytes leave in
//! *batches* (all dirty ranges of a chunk in one chain stream, see [`ChunkBatch`]):
//! * a run of writes that grew one range to the write buffer size (a sequential writer) is
//!   queued to the inode's background sender, and the application keeps filling the next
//!   range meanwhile (write-behind); at most [`MAX_QUEUED`] batches wait or are in flight, a
//!   writer finding the queue full waits for room;
//! * a file holding more than its share of the mount's [`WriteBudget`] queues everything;
//! * a write that finds the mount's budget spent first sends this file's bytes and waits;
//! * a change of mode, owner or times kept for the commit (see `deferred`) queues everything:
//!   the program has written the file and is about to close it;
//! * `flush` (close), `fsync`, a size change and a read of the file send everything and wait
//!   for it (a read thus sees this mount's writes, as before write-back).
//!
//! The background sender sends batches strictly in queue order, one at a time, taking the
//! mutex only to look up or allocate a chunk and to record what it wrote, so a later batch
//! overwriting an earlier one's bytes always lands after it.
//!
//! **Placed chunk 0.** A file this mount created for writing comes with chunk 0 placed by
//! the master but not recorded (see `dfs_master::chunks`): the first write goes straight to
//! that chain, and the commit names the chunk's servers so the master records it, so a new
//! small file costs no allocation round trip. A write to it that fails has the master record
//! it first and is retried (only a recorded chunk can have a failed replica replaced).
//!
//! Write errors follow NFS: a failed batch drops every unsent byte (memory stays bounded),
//! logs, and the error is owed to the application:
//! * every `write` is refused with it until a `flush` or `fsync` has reported it. A `write`
//!   alone cannot be trusted to carry it: the kernel splits a large write(2) into several
//!   requests, and when a later one fails it returns the short count of the earlier ones and
//!   drops the errno, so a retrying caller (`write_all`) may never see it;
//! * every `flush` reports it, until an `fsync` has. A flush is a `close` of *some*
//!   descriptor of the file, and not always the application's: a process that forks and
//!   execs closes its inherited copy of every descriptor at the exec, and that close reaches
//!   the mount as a flush of the same handle. Were the first flush to use the error up, such
//!   a close would swallow it and the application's own `close` would succeed although
//!   bytes it wrote were dropped. So a close may report an error more than once, never not
//!   at all;
//! * `fsync` reports it and clears it, as Linux reports a writeback error to `fsync` once.
//!
//! What reached the replicas before the failure is still committed by the flush or fsync
//! that reports it. A failed commit is not stored: the data is on the replicas, the call
//! that committed reports the failure, and the next flush commits again.
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use dfs_proto::FsError;
use dfs_proto::chunk::{ChunkLayout, ChunkSpan};
use dfs_proto::pb;

use crate::chunkio::WriteFlags;
use crate::datapath::DataPath;
use crate::readplan::{ReadPlan, plan_read};
use crate::writebuf::{ChunkBatch, DirtyRanges, WriteBudget, chunk_batches};

mod commit;
mod deferred;
mod sender;

pub use deferred::AttrChanges;
use sender::Batch;
pub use sender::MAX_QUEUED;

/// State of one open inode, guarded by [`OpenInode`]'s mutex.
#[derive(Debug)]
pub struct InodeState {
    /// Allocated chunks by index, as of the last open / allocation.
    chunks: BTreeMap<u64, pb::ChunkInfo>,
    /// File size the master last reported.
    master_size: u64,
    /// End of the furthest write not yet committed (0 when everything is committed).
    written_end: u64,
    /// Written bytes not yet handed to a sender.
    dirty: DirtyRanges,
    /// A range of this many bytes is sent in the background (a sequential run).
    batch_bytes: usize,
    /// Batches for the background sender, oldest first; the front one is being sent.
    queue: VecDeque<Arc<Batch>>,
    /// Whether the background sender task runs (it ends when the queue is empty).
    sending: bool,
    /// The mount's write budget (known from the first write) and the bytes of it this inode
    /// holds: dirty plus queued.
    budget: Option<WriteBudget>,
    held: usize,
    /// Chunk lengths written to replicas and not yet committed, by chunk index.
    pending: BTreeMap<u64, pb::ChunkCommit>,
    /// Chunks written without `sync` since the last `fsync`.
    unsynced: BTreeSet<u64>,
    /// A failed send that dropped bytes: reported by every flush and by the next fsync,
    /// which clears it (see the module docs).
    write_error: Option<FsError>,
    /// Whether writes are refused with `write_error`: from the failure until a flush or
    /// fsync has reported it.
    refusing_writes: bool,
    /// The mount's holder id while it holds the file's writer lease: new chunks are then
    /// allocated, and commits made, under the lease.
    lease_holder: Option<String>,
    /// The file's attributes as the master last answered them (open, create, commit), and
    /// when.
    known_attr: Option<(pb::Attr, std::time::Instant)>,
    /// Attribute changes kept for the next commit (see [`deferred`]).
    deferred: Option<AttrChanges>,
    /// Chunk 0 as the master placed it at create (not recorded), until a write takes it.
    placement: Option<pb::ChunkInfo>,
    /// The placed chunk writes went to, until a commit had the master record it.
    unrecorded: Option<pb::ChunkInfo>,
}

impl InodeState {
    fn new(buffer_bytes: usize) -> InodeState {
        InodeState {
            chunks: BTreeMap::new(),
            master_size: 0,
            written_end: 0,
            dirty: DirtyRanges::default(),
            batch_bytes: buffer_bytes,
            queue: VecDeque::new(),
            sending: false,
            budget: None,
            held: 0,
            pending: BTreeMap::new(),
            unsynced: BTreeSet::new(),
            write_error: None,
            refusing_writes: false,
            lease_holder: None,
            known_attr: None,
            deferred: None,
            placement: None,
            unrecorded: None,
        }
    }

    /// The size this client sees: the master's, or further if it wrote past it.
    pub fn size(&self) -> u64 {
        self.master_size.max(self.written_end)
    }

    /// Whether there are writes the master does not know of yet.
    fn has_uncommitted(&self) -> bool {
        !self.dirty.is_empty() || !self.queue.is_empty() || !self.pending.is_empty()
    }

    /// Whether every byte written here reached the replicas (none buffered or being sent):
    /// a read may then be planned from the chunk map as it is.
    fn all_sent(&self) -> bool {
        !self.sending && self.dirty.is_empty()
    }

    /// Replaces the chunk map and size with the master's (at open: close-to-open consistency).
    /// A placed chunk written here but not recorded yet stays: the master does not know it.
    fn apply_chunk_map(&mut self, reply: pb::GetChunksReply) {
        let unrecorded = self.unrecorded.as_ref().and_then(|placed| {
            self.chunks
                .get(&placed.index)
                .filter(|c| c.chunk_id == placed.chunk_id)
                .cloned()
        });
        self.chunks = reply.chunks.into_iter().map(|c| (c.index, c)).collect();
        if let Some(chunk) = unrecorded {
            self.chunks.entry(chunk.index).or_insert(chunk);
        }
        self.master_size = reply.file_size;
    }

    /// Remembers a span written to `chunk`.
    fn record_write(
        &mut self,
        layout: &ChunkLayout,
        chunk: pb::ChunkInfo,
        span: &ChunkSpan,
        sync: bool,
    ) {
        let end_in_chunk = span.offset + span.len;
        let old = self
            .pending
            .get(&span.index)
            .map_or(chunk.length, |c| c.length.max(chunk.length));
        let length = old.max(end_in_chunk);
        self.pending.insert(
            span.index,
            pb::ChunkCommit {
                index: span.index,
                chunk_id: chunk.chunk_id,
                version: chunk.version,
                length,
                placed_servers: Vec::new(),
            },
        );
        self.chunks
            .insert(span.index, pb::ChunkInfo { length, ..chunk });
        if sync {
            self.unsynced.remove(&span.index);
        } else {
            self.unsynced.insert(span.index);
        }
        self.written_end = self
            .written_end
            .max(layout.chunk_start(span.index) + end_in_chunk);
    }

    /// End of the data that reached replicas and waits for a commit (what survives a failed
    /// flush).
    fn pending_end(&self, layout: &ChunkLayout) -> u64 {
        self.pending
            .values()
            .map(|c| layout.chunk_start(c.index) + c.length)
            .max()
            .unwrap_or(0)
    }

    /// The chunk at `index`: known, placed at create, or allocated now (under the lease if
    /// this mount holds the file's writer lease).
    async fn chunk_for(
        &mut self,
        io: &DataPath,
        ino: u64,
        index: u64,
    ) -> Result<pb::ChunkInfo, FsError> {
        match (&self.lease_holder, self.chunks.get(&index)) {
            (_, Some(chunk)) => Ok(chunk.clone()),
            (Some(_), None) if self.placement.as_ref().is_some_and(|p| p.index == index) => {
                let placed = self.placement.take().expect("checked above");
                self.unrecorded = Some(placed.clone());
                Ok(placed)
            }
            (Some(holder), None) => io.master.lease_chunk(ino, index, holder, 0).await,
            (None, None) => io.master.allocate_chunk(ino, index).await,
        }
    }

    /// `chunk` as placed at create, if the master has not recorded it yet.
    fn unrecorded(&self, chunk: &pb::ChunkInfo) -> Option<pb::ChunkInfo> {
        self.unrecorded
            .as_ref()
            .filter(|placed| placed.chunk_id == chunk.chunk_id)
            .cloned()
    }

    /// Remembers a batch written to `chunk`.
    fn record_batch(
        &mut self,
        layout: &ChunkLayout,
        chunk: pb::ChunkInfo,
        batch: &ChunkBatch,
        sync: bool,
    ) {
        let offset = batch.pieces.first().map_or(0, |(offset, _)| *offset);
        let span = ChunkSpan {
            index: batch.index,
            offset,
            len: batch.end() - offset,
            buf_offset: 0,
        };
        self.record_write(layout, chunk, &span, sync);
    }

    /// Sends every dirty byte from here, with the mutex held (no background sender may be
    /// running). A failure drops the rest (see [`fail`](InodeState::fail)).
    async fn send_dirty(&mut self, io: &DataPath, ino: u64, sync: bool) -> Result<(), FsError> {
        if self.dirty.is_empty() {
            return Ok(());
        }
        let bytes = self.dirty.bytes();
        let batches = chunk_batches(&io.layout, self.dirty.take_all());
        let flags = WriteFlags {
            sync,
            truncate: false,
        };
        let mut result = Ok(());
        for batch in &batches {
            let written = async {
                let chunk = self.chunk_for(io, ino, batch.index).await?;
                let unrecorded = self.unrecorded(&chunk);
                let holder = self.lease_holder.as_deref();
                let write = ChunkWrite {
                    ino,
                    index: batch.index,
                    flags,
                    holder,
                };
                write.send(io, chunk, unrecorded, &batch.pieces).await
            }
            .await;
            match written {
                Ok(chunk) => self.record_batch(&io.layout, chunk, batch, sync),
                Err(err) => {
                    result = Err(err);
                    break;
                }
            }
        }
        self.release(bytes);
        if let Err(err) = &result {
            self.fail(&io.layout, ino, err.clone());
        }
        result
    }

    /// After a failed send: drops every unsent byte, cuts the local size back to what reached
    /// the replicas, and remembers the error for later writes, flushes and the next fsync.
    fn fail(&mut self, layout: &ChunkLayout, ino: u64, err: FsError) {
        tracing::error!(ino, error = %err, "write to replicas failed; buffered data dropped");
        let dropped: usize =
            self.queue.drain(..).map(|b| b.bytes).sum::<usize>() + self.dirty.bytes();
        self.dirty.take_all();
        self.release(dropped);
        self.written_end = self.pending_end(layout);
        self.write_error = Some(err);
        self.refusing_writes = true;
    }

    /// The error a write is refused with, if any (see the module docs).
    fn refused_write(&self) -> Option<FsError> {
        self.write_error.clone().filter(|_| self.refusing_writes)
    }

    /// Gives `bytes` this inode held back to the mount's budget.
    fn release(&mut self, bytes: usize) {
        self.held -= bytes;
        if let Some(budget) = &self.budget {
            budget.release(bytes);
        }
    }

    /// After the master resized the file: forget chunks and buffered bytes past the new end.
    fn resized(&mut self, layout: &ChunkLayout, size: u64) {
        let dropped = self.dirty.truncate_at(size);
        self.release(dropped);
        self.master_size = size;
        self.written_end = 0;
        let index = layout.chunk_index(size);
        let in_chunk = size - layout.chunk_start(index);
        let keep = |i: &u64| *i < index || (*i == index && in_chunk > 0);
        self.chunks.retain(|i, _| keep(i));
        self.pending.retain(|i, _| keep(i));
        self.unsynced.retain(keep);
        if let Some(chunk) = self.chunks.get_mut(&index) {
            chunk.length = chunk.length.min(in_chunk);
        }
    }

    /// The chunk (if allocated) behind each span of a read, and the size to read up to.
    pub fn read_plan(&self, layout: &ChunkLayout, offset: u64, len: u64) -> ReadPlan {
        plan_read(layout, &self.chunks, self.size(), offset, len)
    }
}

/// One open inode, shared by its open handles.
#[derive(Debug)]
pub struct OpenInode {
    /// The inode number.
    pub ino: u64,
    /// Sequential-reader detection for read-ahead into the block cache.
    pub readahead: crate::readahead::ReadAhead,
    state: tokio::sync::Mutex<InodeState>,
    /// Woken whenever the background sender finished a batch or stopped.
    progress: tokio::sync::Notify,
    /// The local size while there are uncommitted writes, 0 otherwise; readable without
    /// waiting for a flush in progress, so `stat` never stalls behind a slow write.
    uncommitted_size: AtomicU64,
    /// The attribute changes kept for the next commit, readable the same way (a std mutex:
    /// held only to copy them in or out).
    deferred: std::sync::Mutex<Option<AttrChanges>>,
}

type StateGuard<'a> = tokio::sync::MutexGuard<'a, InodeState>;

impl OpenInode {
    pub(crate) fn new(ino: u64, buffer_bytes: usize) -> OpenInode {
        OpenInode {
            ino,
            readahead: Default::default(),
            state: tokio::sync::Mutex::new(InodeState::new(buffer_bytes)),
            progress: tokio::sync::Notify::new(),
            uncommitted_size: AtomicU64::new(0),
            deferred: std::sync::Mutex::new(None),
        }
    }

    fn publish(&self, state: &InodeState) {
        let size = if state.has_uncommitted() {
            state.size()
        } else {
            0
        };
        self.uncommitted_size.store(size, Ordering::Release);
        *self.deferred.lock().expect("kept changes poisoned") = state.deferred;
    }

    /// The size to report instead of the master's, if this client has uncommitted writes.
    pub fn uncommitted_size(&self) -> Option<u64> {
        Some(self.uncommitted_size.load(Ordering::Acquire)).filter(|&s| s > 0)
    }

    /// Writes from now on go through `holder`'s writer lease.
    pub async fn set_lease_holder(&self, holder: String) {
        self.state.lock().await.lease_holder = Some(holder);
    }

    /// Writes from now on go through `holder`'s writer lease, chunk 0 to `placed` (the
    /// placement `CreateFile` answered for a new file, if any).
    pub async fn start_writing(&self, holder: String, placed: Option<pb::ChunkInfo>) {
        let mut state = self.state.lock().await;
        state.lease_holder = Some(holder);
        state.placement = placed.filter(|chunk| chunk.index == 0 && !chunk.replicas.is_empty());
    }

    /// Takes what an open learned of the file: its chunk map and size, and its attributes;
    /// returns the ids of the file's chunks.
    pub async fn opened(&self, chunk_map: pb::GetChunksReply, attr: pb::Attr) -> Vec<u64> {
        let mut state = self.state.lock().await;
        self.apply_open(&mut state, chunk_map, attr)
    }

    /// [`opened`](OpenInode::opened) without waiting: takes the chunk map and attributes
    /// out of `opened` unless the state is busy (`None`; `opened` is left as it was).
    pub fn try_opened(
        &self,
        opened: &mut Option<(pb::GetChunksReply, pb::Attr)>,
    ) -> Option<Vec<u64>> {
        let mut state = self.state.try_lock().ok()?;
        let (chunk_map, attr) = opened.take()?;
        Some(self.apply_open(&mut state, chunk_map, attr))
    }

    fn apply_open(
        &self,
        state: &mut InodeState,
        chunk_map: pb::GetChunksReply,
        attr: pb::Attr,
    ) -> Vec<u64> {
        let chunk_ids = chunk_map.chunks.iter().map(|c| c.chunk_id).collect();
        state.apply_chunk_map(chunk_map);
        state.known_attr = Some((attr, std::time::Instant::now()));
        self.publish(state);
        chunk_ids
    }

    /// Sends buffered writes (so a read sees this mount's writes) and plans the read.
    pub async fn plan_read(
        &self,
        io: &DataPath,
        offset: u64,
        len: u64,
    ) -> Result<ReadPlan, FsError> {
        let mut state = self.state.lock().await;
        if !state.all_sent() {
            state = self.wait_idle(state).await;
            let result = state.send_dirty(io, self.ino, false).await;
            self.publish(&state);
            result?;
        }
        Ok(state.read_plan(&io.layout, offset, len))
    }

    /// Takes the token of `fresh` (a chunk as the master just answered it) for the same chunk
    /// held here, so reads after a token expired do not each ask the master again.
    pub async fn adopt_token(&self, fresh: &pb::ChunkInfo) {
        let mut state = self.state.lock().await;
        if let Some(held) = state.chunks.get_mut(&fresh.index) {
            if held.chunk_id == fresh.chunk_id {
                held.token = fresh.token.clone();
            }
        }
    }

    /// Plans a read without waiting: `None` when the state is busy (a flush or another
    /// plan in progress), a send is in flight, or it holds buffered writes — all of which
    /// [`plan_read`](Self::plan_read) waits for or flushes first.
    pub fn try_plan_read(&self, layout: &ChunkLayout, offset: u64, len: u64) -> Option<ReadPlan> {
        let state = self.state.try_lock().ok()?;
        state
            .all_sent()
            .then(|| state.read_plan(layout, offset, len))
    }
}

/// One chunk write of an inode's data: where it goes and how.
struct ChunkWrite<'a> {
    ino: u64,
    index: u64,
    flags: WriteFlags,
    holder: Option<&'a str>,
}

impl ChunkWrite<'_> {
    /// Writes `pieces` to `chunk` like [`DataPath::write_pieces`]. When `chunk` is a placed
    /// chunk the master has not recorded (`unrecorded`), a failed write has the master record
    /// it first and is then retried, so a failed replica can be replaced as in any chunk.
    async fn send(
        &self,
        io: &DataPath,
        chunk: pb::ChunkInfo,
        unrecorded: Option<pb::ChunkInfo>,
        pieces: &[(u64, Bytes)],
    ) -> Result<pb::ChunkInfo, FsError> {
        let (ino, index, flags, holder) = (self.ino, self.index, self.flags, self.holder);
        let written = io
            .write_pieces(ino, chunk, index, pieces, flags, holder)
            .await;
        let (Err(err), Some(placed), Some(holder)) = (&written, unrecorded, holder) else {
            return written;
        };
        tracing::warn!(ino, index, chunk_id = placed.chunk_id, error = %err,
            "write to a placed chunk failed; recording it and writing again");
        let recorded = io
            .master
            .record_placed_chunk(ino, index, holder, &placed)
            .await?;
        io.write_pieces(ino, recorded, index, pieces, flags, Some(holder))
            .await
    }
}

impl Drop for OpenInode {
    /// Bytes still held (a file dropped with unsent writes) go back to the mount's budget.
    fn drop(&mut self) {
        let state = self.state.get_mut();
        let held = state.held;
        state.release(held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readplan::fixtures::{chunk, layout};

    #[test]
    fn local_size_covers_uncommitted_writes() {
        let mut state = InodeState::new(1000);
        state.apply_chunk_map(pb::GetChunksReply {
            chunks: vec![chunk(0, 100), chunk(1, 20)],
            file_size: 120,
        });
        assert_eq!(state.size(), 120);
        let span = ChunkSpan {
            index: 1,
            offset: 10,
            len: 50,
            buf_offset: 0,
        };
        state.record_write(&layout(), state.chunks[&1].clone(), &span, false);
        assert_eq!(state.size(), 160);
        assert_eq!(state.pending[&1].length, 60);
        assert_eq!(state.chunks[&1].length, 60);
        assert!(state.unsynced.contains(&1));
        // A write inside the existing length keeps the larger length.
        let span = ChunkSpan {
            index: 1,
            offset: 0,
            len: 5,
            buf_offset: 0,
        };
        state.record_write(&layout(), state.chunks[&1].clone(), &span, true);
        assert_eq!(state.pending[&1].length, 60);
        assert!(!state.unsynced.contains(&1));
        assert_eq!(state.pending_end(&layout()), 160);
        // Buffered but unsent bytes count too.
        state.dirty.insert(160, &[0; 30]);
        state.written_end = 190;
        assert_eq!(state.size(), 190);
        assert!(state.has_uncommitted());
    }

    #[test]
    fn resize_forgets_chunks_past_the_end() {
        let mut state = InodeState::new(1000);
        state.apply_chunk_map(pb::GetChunksReply {
            chunks: vec![chunk(0, 100), chunk(1, 100), chunk(2, 50)],
            file_size: 250,
        });
        state.resized(&layout(), 130);
        assert_eq!(state.chunks.keys().copied().collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(state.chunks[&1].length, 30);
        assert_eq!(state.size(), 130);
        state.resized(&layout(), 100);
        assert_eq!(state.chunks.keys().copied().collect::<Vec<_>>(), vec![0]);
    }
}
