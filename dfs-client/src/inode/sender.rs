//! The write side of an [`OpenInode`]: buffering a write into the dirty set, handing
//! finished runs to the inode's background sender, and the sender itself (see the parent
//! module's docs for the rules).

use std::sync::Arc;

use dfs_proto::FsError;

use super::{ChunkWrite, InodeState, OpenInode, StateGuard};
use crate::chunkio::WriteFlags;
use crate::datapath::DataPath;
use crate::writebuf::{ChunkBatch, WriteBudget, chunk_batches};

/// Batches an inode may have queued for (or being sent by) its background sender: one in
/// flight while the next is ready, so the chain never waits for the application.
pub const MAX_QUEUED: usize = 2;

/// Bytes handed to the background sender: per-chunk batches, in file order.
#[derive(Debug)]
pub(super) struct Batch {
    chunks: Vec<ChunkBatch>,
    pub(super) bytes: usize,
}

impl OpenInode {
    /// Releases the mutex until the background sender makes progress, then takes it again.
    pub(super) async fn wait_for_sender<'a>(&'a self, state: StateGuard<'a>) -> StateGuard<'a> {
        let progress = self.progress.notified();
        tokio::pin!(progress);
        // Registered before the mutex is released: a wake-up in between is not lost.
        progress.as_mut().enable();
        drop(state);
        progress.await;
        self.state.lock().await
    }

    /// Waits until the background sender has sent everything queued and stopped.
    pub(super) async fn wait_idle<'a>(&'a self, mut state: StateGuard<'a>) -> StateGuard<'a> {
        while state.sending {
            state = self.wait_for_sender(state).await;
        }
        state
    }

    /// Buffers a write (see the module docs for when bytes are sent).
    pub async fn write(
        self: &Arc<Self>,
        io: &DataPath,
        offset: u64,
        data: &[u8],
    ) -> Result<(), FsError> {
        let mut state = self.state.lock().await;
        if let Some(err) = state.refused_write() {
            return Err(err);
        }
        let budget = state
            .budget
            .get_or_insert_with(|| io.write_budget.clone())
            .clone();
        if !budget.try_reserve(data.len()) {
            // The mount's budget is spent: this file's bytes go first (freeing what it held),
            // then the write is taken, over the budget if other files still hold it.
            state = self.wait_idle(state).await;
            let sent = match state.refused_write() {
                Some(err) => Err(err),
                None => state.send_dirty(io, self.ino, false).await,
            };
            if let Err(err) = sent {
                self.publish(&state);
                return Err(err);
            }
            budget.force_reserve(data.len());
        }
        if let Some(send) = absorb(&mut state, &budget, offset, data) {
            while state.queue.len() >= MAX_QUEUED {
                state = self.wait_for_sender(state).await;
            }
            // A send that failed meanwhile dropped this write's bytes with the rest.
            if let Some(err) = state.refused_write() {
                self.publish(&state);
                return Err(err);
            }
            // Taken after the wait: other writes may have changed the set meanwhile.
            self.queue(io, &mut state, send);
        }
        self.publish(&state);
        Ok(())
    }

    /// [`write`](OpenInode::write) without waiting, for the thread that received the
    /// request: `None` if the write might have to wait (the inode is busy, its sender's queue
    /// or the mount's budget is full), so the caller takes the asynchronous path instead.
    /// Must run inside the runtime's context (it may start the background sender).
    pub fn try_write(
        self: &Arc<Self>,
        io: &DataPath,
        offset: u64,
        data: &[u8],
    ) -> Option<Result<(), FsError>> {
        let mut state = self.state.try_lock().ok()?;
        if state.queue.len() >= MAX_QUEUED {
            return None;
        }
        if let Some(err) = state.refused_write() {
            return Some(Err(err));
        }
        let budget = state
            .budget
            .get_or_insert_with(|| io.write_budget.clone())
            .clone();
        if !budget.try_reserve(data.len()) {
            return None;
        }
        if let Some(send) = absorb(&mut state, &budget, offset, data) {
            self.queue(io, &mut state, send);
        }
        self.publish(&state);
        Some(Ok(()))
    }

    /// Hands the dirty range starting at `start` (or, with `None`, every dirty range) to
    /// the background sender, starting it if it is idle. The caller made sure the queue has
    /// room.
    pub(super) fn queue(
        self: &Arc<Self>,
        io: &DataPath,
        state: &mut InodeState,
        start: Option<u64>,
    ) {
        let ranges = match start {
            Some(start) => state.dirty.take_range(start).into_iter().collect(),
            None => state.dirty.take_all(),
        };
        if ranges.is_empty() {
            return;
        }
        let bytes = ranges.iter().map(|(_, data)| data.len()).sum();
        let chunks = chunk_batches(&io.layout, ranges);
        state.queue.push_back(Arc::new(Batch { chunks, bytes }));
        if !state.sending {
            state.sending = true;
            tokio::spawn(self.clone().run_sender(io.clone()));
        }
    }

    /// The background sender: sends the queued batches in order, then stops.
    async fn run_sender(self: Arc<Self>, io: DataPath) {
        loop {
            let batch = {
                let mut state = self.state.lock().await;
                match state.queue.front() {
                    Some(batch) => batch.clone(),
                    None => {
                        state.sending = false;
                        self.publish(&state);
                        drop(state);
                        self.progress.notify_waiters();
                        return;
                    }
                }
            };
            let result = self.send_batch(&io, &batch).await;
            let mut state = self.state.lock().await;
            state.queue.pop_front();
            state.release(batch.bytes);
            if let Err(err) = result {
                state.fail(&io.layout, self.ino, err);
            }
            self.publish(&state);
            drop(state);
            self.progress.notify_waiters();
        }
    }

    /// Sends one queued batch, chunk by chunk, holding the mutex only to look up or allocate
    /// each chunk and to record the write.
    async fn send_batch(&self, io: &DataPath, batch: &Batch) -> Result<(), FsError> {
        for chunk_batch in &batch.chunks {
            let index = chunk_batch.index;
            let (chunk, unrecorded, holder) = {
                let mut state = self.state.lock().await;
                let chunk = state.chunk_for(io, self.ino, index).await?;
                let unrecorded = state.unrecorded(&chunk);
                (chunk, unrecorded, state.lease_holder.clone())
            };
            let write = ChunkWrite {
                ino: self.ino,
                index,
                flags: WriteFlags::default(),
                holder: holder.as_deref(),
            };
            let written = write
                .send(io, chunk, unrecorded, &chunk_batch.pieces)
                .await?;
            let mut state = self.state.lock().await;
            state.record_batch(&io.layout, written, chunk_batch, false);
        }
        Ok(())
    }
}

/// Puts a write whose `data.len()` bytes were reserved from `budget` into the dirty set,
/// giving back what an overwrite did not need. Returns what to queue for sending, if the
/// write completed a sequential run (`Some(Some(start))` of its range) or the file holds its
/// share of the budget (`Some(None)`: everything).
fn absorb(
    state: &mut InodeState,
    budget: &WriteBudget,
    offset: u64,
    data: &[u8],
) -> Option<Option<u64>> {
    state.held += data.len();
    state.written();
    let before = state.dirty.bytes();
    let (start, len) = state.dirty.insert(offset, data);
    let unused = data.len() - (state.dirty.bytes() - before);
    state.release(unused);
    state.written_end = state.written_end.max(offset + data.len() as u64);
    if len >= state.batch_bytes {
        Some(Some(start))
    } else if state.dirty.bytes() >= budget.per_file() {
        Some(None)
    } else {
        None
    }
}
