//! The local replica of a chain write: written on the task serving the stream while the
//! stream is small, on a blocking thread once it is large.
//!
//! **Why inline.** The disk work of a small write is short and bounded: a copy into the page
//! cache, a block checksum, a few hundred bytes of sidecar (for a new replica: creating its
//! two files) — tens of microseconds. Handing it to a blocking thread costs more than that:
//! the thread is woken to take the work and the worker is woken when it is done, two
//! cross-thread wake-ups of ~35 µs each on the 2-core test machine, on every hop of the
//! chain. Reads do the same below [`INLINE_READ`](crate::service::INLINE_READ).
//!
//! **What goes to a blocking thread**, with the replica already open (one hand-off per
//! stream, as every stream paid before):
//! * the rest of a stream once its pieces total more than [`INLINE_WRITE`]. The bound is on
//!   the stream's total, not on each piece: a header does not say how long its stream is, and
//!   a long stream of small pieces would otherwise keep the worker — which serves every other
//!   request of this chunkserver — busy writing. It is below the smallest direct write
//!   (`store::direct`), so an inline write is always a buffered copy, never a wait for the
//!   disk, except to read back the cold rest of a partly overwritten block, as inline reads
//!   may;
//! * the end of a stream with `sync` (the fsyncs wait for the disk) or `truncate` (cutting a
//!   replica can free a whole chunk's blocks);
//! * every step while another operation uses the same chunk: it may hold the chunk's lock
//!   across slow I/O (an fsync, a large read), which the worker must not wait for. A chunk
//!   that is busy when the stream opens it is opened on the blocking thread too.
//!
//! **Letting the downstream go first.** Inline work runs on the worker that also runs the
//! downstream call's tasks; with one worker (the default) a message queued for the next hop
//! leaves only when this task next waits. So before each step of inline disk work — the
//! open, each piece, the commit — a stream that has a downstream yields once, and what it
//! queued (the header, the piece, the end) is on the wire while this hop's disk works: the
//! hops still work at the same time. Without these yields each hop created its files before
//! forwarding anything, and a 5 KB write through three chunkservers took longer than on
//! blocking threads (on the test machine, p50 1.10 ms against 0.89–1.01 ms).
//!
//! Either way the pieces are written in arrival order, and a stream that fails keeps what it
//! wrote, described by its checksums, without applying its flags.

use dfs_proto::FsError;
use dfs_proto::pb::WriteRanges;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{self, JoinHandle};

use super::{Piece, QUEUE_DEPTH};
use crate::error::{Error, Result};
use crate::store::{ChunkStore, ReplicaWriter};

/// Largest stream written inline, in data bytes (see the module docs).
pub const INLINE_WRITE: u64 = 64 << 10;

/// Which replica the local writer writes, and what it does once the data has arrived.
#[derive(Debug, Clone, Copy)]
pub(super) struct LocalPlan {
    pub chunk_id: u64,
    pub version: u64,
    pub offset: u64,
    pub truncate: bool,
    pub sync: bool,
    /// The stream goes on to a downstream: yield before inline disk work (see the module
    /// docs).
    pub forwarded: bool,
}

/// The local writer quit; [`LocalReplica::abandon`] says why.
#[derive(Debug)]
pub(super) struct Quit;

/// The local side of one write stream. Dropped unfinished (the handler was cancelled), it
/// keeps what was written, like [`LocalReplica::abandon`].
pub(super) struct LocalReplica {
    plan: LocalPlan,
    state: State,
}

enum State {
    /// Written on the serving task.
    Inline {
        writer: ReplicaWriter,
        /// Where the next `Data` piece goes.
        pos: u64,
        /// Data bytes written so far.
        written: u64,
    },
    /// Written on a blocking thread, which takes the pieces from `pieces`.
    Blocking {
        pieces: mpsc::Sender<Piece>,
        /// Fires once the thread has opened the replica; dropped if it could not.
        opened: Option<oneshot::Receiver<()>>,
        thread: JoinHandle<Result<u64>>,
    },
    /// An inline step failed with this error; what was written is kept.
    Failed(Error),
    /// Finished, abandoned, or being moved to a blocking thread: nothing left to do.
    Done,
}

impl LocalReplica {
    /// Opens the local replica at the stream's version: on this task if no one else uses the
    /// chunk (an error such as `Stale` is then returned here), else on a blocking thread (see
    /// [`opened`](LocalReplica::opened)).
    pub async fn open(store: &ChunkStore, plan: LocalPlan) -> Result<LocalReplica> {
        let_downstream_send(plan).await;
        let state = match store.try_open_writer(plan.chunk_id, plan.version) {
            Some(writer) => State::Inline {
                writer: writer?,
                pos: plan.offset,
                written: 0,
            },
            None => {
                let store = store.clone();
                let open = move || store.open_writer(plan.chunk_id, plan.version);
                State::on_thread(plan, plan.offset, open)
            }
        };
        Ok(LocalReplica { plan, state })
    }

    /// Writes one data piece (`Data` or `Ranges`), inline or by queueing it for the thread.
    /// `Quit` if the writer failed.
    pub async fn write(&mut self, piece: Piece) -> Result<(), Quit> {
        if matches!(self.state, State::Inline { .. }) {
            let_downstream_send(self.plan).await;
        }
        if let State::Inline {
            writer,
            pos,
            written,
        } = &mut self.state
        {
            let len = data_len(&piece);
            if *written + len <= INLINE_WRITE && writer.is_sole_user() {
                *written += len;
                return match apply(writer, pos, &piece) {
                    Ok(()) => Ok(()),
                    Err(err) => {
                        keep_written(writer);
                        self.state = State::Failed(err);
                        Err(Quit)
                    }
                };
            }
            self.hand_off();
        }
        match &self.state {
            State::Blocking { pieces, .. } => pieces.send(piece).await.map_err(|_| Quit),
            _ => Err(Quit),
        }
    }

    /// Waits until the replica is open at the stream's version; the error if it could not be.
    /// Only a replica opened on the blocking thread can make it wait.
    pub async fn opened(&mut self) -> Result<()> {
        if let State::Blocking { opened, thread, .. } = &mut self.state {
            if let Some(opened) = opened.take() {
                if opened.await.is_err() {
                    return Err(quit_reason(thread.await));
                }
            }
        }
        Ok(())
    }

    /// Ends a stream that arrived whole: applies its flags and persists the sidecar (fsyncing
    /// first with `sync`). Returns the replica length.
    pub async fn finish(mut self) -> Result<u64> {
        if matches!(self.state, State::Inline { .. }) {
            let_downstream_send(self.plan).await;
        }
        if let State::Inline { writer, .. } = &self.state {
            if !self.plan.sync && !self.plan.truncate && writer.is_sole_user() {
                let committed = writer.commit(false);
                self.state = State::Done;
                return committed;
            }
            self.hand_off();
        }
        match std::mem::replace(&mut self.state, State::Done) {
            State::Blocking { pieces, thread, .. } => {
                // A closed queue means the thread failed; its result says why.
                let _ = pieces.send(Piece::End).await;
                thread.await?
            }
            State::Failed(err) => Err(err),
            State::Inline { .. } | State::Done => Err(quit_early()),
        }
    }

    /// Stops after a failed stream: keeps what was written, with its checksums, and applies
    /// no flags. Returns the writer's own error if it failed (or an error saying the stream
    /// ended early).
    pub async fn abandon(mut self) -> Result<u64> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Inline { writer, .. } if writer.is_sole_user() => {
                keep_written(&writer);
                Err(quit_early())
            }
            State::Inline { writer, .. } => {
                task::spawn_blocking(move || keep_written(&writer)).await?;
                Err(quit_early())
            }
            // Closing the queue without `End` stops the thread the same way.
            State::Blocking { pieces, thread, .. } => {
                drop(pieces);
                thread.await?
            }
            State::Failed(err) => Err(err),
            State::Done => Err(quit_early()),
        }
    }

    /// Moves an inline writer to a blocking thread, which goes on where it stands.
    fn hand_off(&mut self) {
        if let State::Inline { writer, pos, .. } = std::mem::replace(&mut self.state, State::Done) {
            self.state = State::on_thread(self.plan, pos, move || Ok(writer));
        }
    }
}

impl Drop for LocalReplica {
    fn drop(&mut self) {
        // A blocking thread sees its queue close and keeps what it wrote by itself.
        if let State::Inline { writer, .. } = std::mem::replace(&mut self.state, State::Done) {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) if !writer.is_sole_user() => {
                    runtime.spawn_blocking(move || keep_written(&writer));
                }
                _ => keep_written(&writer),
            }
        }
    }
}

impl State {
    /// Starts the blocking thread of a stream: it opens the replica with `open`, then writes
    /// the queued pieces from `pos` on.
    fn on_thread<F>(plan: LocalPlan, pos: u64, open: F) -> State
    where
        F: FnOnce() -> Result<ReplicaWriter> + Send + 'static,
    {
        let (pieces, queue) = mpsc::channel(QUEUE_DEPTH);
        let (opened_tx, opened) = oneshot::channel();
        let thread = task::spawn_blocking(move || {
            let writer = open()?;
            let _ = opened_tx.send(());
            write_queued(&writer, plan, pos, queue)
        });
        State::Blocking {
            pieces,
            opened: Some(opened),
            thread,
        }
    }
}

/// Before inline disk work: lets the tasks of the downstream call run (on this worker) until
/// they have handed what this stream queued for the next hop to the socket.
async fn let_downstream_send(plan: LocalPlan) {
    if plan.forwarded {
        task::yield_now().await;
    }
}

/// The loop of the blocking thread: writes the queued pieces in order from `pos`; at `End`
/// applies the flags and commits. Returns the replica length.
fn write_queued(
    writer: &ReplicaWriter,
    plan: LocalPlan,
    mut pos: u64,
    mut queue: mpsc::Receiver<Piece>,
) -> Result<u64> {
    let failure = loop {
        match queue.blocking_recv() {
            Some(Piece::End) => {
                if plan.truncate {
                    writer.truncate(pos)?;
                }
                return writer.commit(plan.sync);
            }
            Some(Piece::Abort) | None => break quit_early(),
            Some(piece) => {
                if let Err(err) = apply(writer, &mut pos, &piece) {
                    break err;
                }
            }
        }
    };
    keep_written(writer);
    Err(failure)
}

/// Writes a data piece: `Data` at `pos`, `Ranges` at their own offsets (as one unit, hashing
/// each touched block once). Moves `pos` to where the piece ended.
fn apply(writer: &ReplicaWriter, pos: &mut u64, piece: &Piece) -> Result<()> {
    match piece {
        Piece::Data(data) => {
            writer.write(*pos, data)?;
            *pos += data.len() as u64;
        }
        Piece::Ranges(WriteRanges { ranges }) => {
            let pieces: Vec<(u64, &[u8])> =
                ranges.iter().map(|r| (r.offset, &r.data[..])).collect();
            writer.write_ranges(&pieces)?;
            if let Some(last) = ranges.last() {
                *pos = last.offset + last.data.len() as u64;
            }
        }
        Piece::End | Piece::Abort => {}
    }
    Ok(())
}

/// Data bytes of a piece.
pub(super) fn data_len(piece: &Piece) -> u64 {
    match piece {
        Piece::Data(data) => data.len() as u64,
        Piece::Ranges(WriteRanges { ranges }) => ranges.iter().map(|r| r.data.len() as u64).sum(),
        Piece::End | Piece::Abort => 0,
    }
}

/// After a stream failed half-way: what was written stays on disk, so persist the checksums
/// that describe it.
fn keep_written(writer: &ReplicaWriter) {
    if let Err(err) = writer.commit(false) {
        tracing::warn!(chunk = %format!("{:016x}", writer.chunk_id()), error = %err,
            "could not persist checksums after a failed write");
    }
}

/// Why a blocking thread that ended without a success quit.
fn quit_reason(thread: Result<Result<u64>, task::JoinError>) -> Error {
    match thread {
        Ok(Err(err)) => err,
        Ok(Ok(_)) => FsError::Io("local replica writer quit".into()).into(),
        Err(join) => Error::Task(join),
    }
}

fn quit_early() -> Error {
    FsError::Io("write stream ended before its end".into()).into()
}
