//! The pipelined chain write: a `WriteChunk` stream is written to the local replica and, at
//! the same time, forwarded to the next replica of the chain, which does the same.
//!
//! ```text
//! client ──stream──> chunkserver A ──stream──> chunkserver B ──stream──> chunkserver C
//!                       │ disk                    │ disk                    │ disk
//!         <──reply────  └ waits for B  <──reply── └ waits for C  <──reply──  ┘
//! ```
//!
//! A stream's data is either contiguous (`data` messages continuing from the header's offset)
//! or scattered: `ranges` messages carry several pieces at their own offsets (a client's
//! write-back sends a chunk's dirty ranges as one stream); each such message is applied to
//! the local replica as one unit, hashing every touched block once.
//!
//! The client sends each byte once; every hop opens its downstream before its own replica and
//! forwards a data message as soon as it arrives, then writes it to its replica: a large
//! stream on a blocking thread meanwhile, so network and disks overlap; a small one inline on
//! the task serving it, where its short disk work costs less than the thread hand-offs would
//! (see `chain::local`). Either way the hops of a small write create their replica files at the
//! same time. The downstream, and the local writer of a large stream, each sit behind a small
//! bounded queue: memory per write is a few messages, and a slow disk or a slow next hop
//! slows the client down (backpressure) instead of buffering without bound.
//!
//! A hop replies only when its own write and the downstream's reply both succeeded. Every
//! wait is bounded: the upstream's silence by the idle timeout, the downstream's connect,
//! acceptance of data and reply by the RPC timeout.
//!
//! **Aborting a write.** A hop that fails half-way must not let the next hop treat the data
//! so far as the whole write (and apply `truncate` or `sync` to it). Cancelling the call
//! does not do that: tonic hands a server a cancelled request stream as a clean end (see
//! `tonic::codec::decode`, `Code::Cancelled` on a request). So an aborting sender sends a
//! [`WriteChunkRequest`] with no `msg` — invalid, so the receiver fails the write without
//! applying its flags, keeps (and checksums) the data that arrived, and aborts its own
//! downstream the same way. Clients abandoning a write stream should do the same.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dfs_proto::FsError;
use dfs_proto::pb::write_chunk_request::Msg;
use dfs_proto::pb::{WriteChunkReply, WriteChunkRequest, WriteHeader, WriteRanges};
use dfs_proto::tls::Tls;
use dfs_proto::token::{self, TokenVerifier};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::Status;

use self::local::{LocalPlan, LocalReplica};
use crate::error::{Error, Result};
use crate::metrics::ChunkserverMetrics;
use crate::net::Peers;
use crate::store::ChunkStore;

mod local;

pub use self::local::INLINE_WRITE;

/// Data messages queued for the local writer and for the downstream, each. Enough to keep
/// disk and network busy while the next message arrives; small enough to bound memory.
const QUEUE_DEPTH: usize = 4;

/// One step of a write stream, as handed to the local writer and to the downstream.
#[derive(Debug, Clone)]
enum Piece {
    /// Data continuing where the previous piece ended.
    Data(Bytes),
    /// Pieces at explicit offsets, applied together.
    Ranges(WriteRanges),
    /// The stream arrived whole: apply the header's flags and finish. A queue that closes
    /// without an `End` means the write failed.
    End,
    /// The write failed: tell the downstream with an empty message (see the module docs).
    Abort,
}

/// Timeouts of a chain write.
#[derive(Debug, Clone, Copy)]
pub struct ChainTimeouts {
    /// Connecting to the downstream, the downstream accepting a piece, and its final reply.
    pub rpc: Duration,
    /// How long the upstream may stay silent before the write is abandoned.
    pub idle: Duration,
}

/// Runs write streams: the local replica plus the rest of the chain.
#[derive(Debug)]
pub struct ChainWriter {
    store: ChunkStore,
    peers: Peers,
    timeouts: ChainTimeouts,
    metrics: ChunkserverMetrics,
    tokens: Arc<TokenVerifier>,
}

/// Why the loop moving data from upstream to the consumers stopped early.
enum Stop {
    /// The local writer quit; its own result says why.
    LocalGone,
    /// Anything else: upstream broken or idle, a protocol error, a failed downstream.
    Failed(Error),
}

impl ChainWriter {
    /// A chain writer storing into `store`.
    pub fn new(store: ChunkStore, timeouts: ChainTimeouts) -> ChainWriter {
        ChainWriter {
            store,
            peers: Peers::new(timeouts.rpc),
            timeouts,
            metrics: ChunkserverMetrics::default(),
            tokens: Arc::default(),
        }
    }

    /// Checks each stream's chunk token with `tokens` before anything is written.
    pub fn check_tokens_with(&mut self, tokens: Arc<TokenVerifier>) {
        self.tokens = tokens;
    }

    /// Forwards chain writes over mutual TLS with `tls` (if any).
    pub fn forward_with_tls(&mut self, tls: Option<Tls>) {
        self.peers = Peers::new(self.timeouts.rpc).with_tls(tls);
    }

    /// Counts the bytes each stream writes to the local replica in `metrics`.
    pub fn count_in(&mut self, metrics: ChunkserverMetrics) {
        self.metrics = metrics;
    }

    /// Runs one write stream to its end: a header, then data. Returns the reply for the
    /// upstream once the local replica and every downstream replica hold the data.
    pub async fn write<S>(&self, mut upstream: S) -> Result<WriteChunkReply>
    where
        S: Stream<Item = Result<WriteChunkRequest, Status>> + Unpin,
    {
        let header = match self.next(&mut upstream).await? {
            Some(WriteChunkRequest {
                msg: Some(Msg::Header(header)),
            }) => header,
            _ => {
                return Err(
                    FsError::Invalid("a write stream must start with a header".into()).into(),
                );
            }
        };
        let now = token::unix_ms_now();
        let (chunk_id, version) = (header.chunk_id, Some(header.version));
        self.tokens
            .check(header.token.as_ref(), chunk_id, version, token::WRITE, now)
            .map_err(FsError::from)?;
        // The downstream is opened first, so every hop of the chain opens (for a new replica:
        // creates) its files at the same time instead of one after the other.
        let mut downstream = match header.downstream.split_first() {
            Some((next, rest)) => {
                let forwarded = WriteHeader {
                    downstream: rest.to_vec(),
                    ..header.clone()
                };
                Some(Downstream::open(
                    &self.peers,
                    next,
                    forwarded,
                    self.timeouts.rpc,
                )?)
            }
            None => None,
        };
        let plan = LocalPlan {
            chunk_id: header.chunk_id,
            version: header.version,
            offset: header.offset,
            truncate: header.truncate,
            sync: header.sync,
            forwarded: downstream.is_some(),
        };
        // Opened here, or (when another operation uses the chunk) on a blocking thread that
        // checks the version there while the data arrives.
        let mut local = match LocalReplica::open(&self.store, plan).await {
            Ok(local) => local,
            Err(err) => {
                if let Some(downstream) = downstream.as_mut() {
                    downstream.abort().await;
                }
                return Err(err);
            }
        };

        if let Err(stop) = self
            .pump(&mut upstream, &mut local, downstream.as_mut())
            .await
        {
            if let Some(downstream) = downstream.as_mut() {
                downstream.abort().await;
            }
            // The local writer keeps what was written (with its checksums) but applies no
            // flags.
            return Err(match (stop, local.abandon().await) {
                (Stop::Failed(err), _) | (Stop::LocalGone, Err(err)) => err,
                (Stop::LocalGone, Ok(_)) => FsError::Io("local replica writer quit".into()).into(),
            });
        }

        // The flags reach the downstream only once the local replica exists at this version
        // (a stale write fails here, leaving the downstream's replicas without its flags).
        // Normally long done: the open ran while the data arrived.
        if let Err(err) = local.opened().await {
            if let Some(downstream) = downstream.as_mut() {
                downstream.abort().await;
            }
            return Err(err);
        }
        // The downstream's end first: it travels while the local replica commits.
        let remote = async {
            match downstream.as_mut() {
                Some(downstream) => Some(downstream.finish().await),
                None => None,
            }
        };
        let (remote, local) = tokio::join!(remote, local.finish());
        let length = local?;
        let mut replicas_written = 1;
        if let (Some(remote), Some(downstream)) = (remote, downstream.as_ref()) {
            let reply = remote?;
            if reply.length != length {
                return Err(downstream.error(FsError::Io(format!(
                    "replica length {} differs from the upstream replica's {length}",
                    reply.length
                ))));
            }
            replicas_written += reply.replicas_written;
        }
        Ok(WriteChunkReply {
            length,
            replicas_written,
        })
    }

    /// Moves data messages from the upstream to the downstream and the local writer until
    /// the upstream ends.
    async fn pump<S>(
        &self,
        upstream: &mut S,
        local: &mut LocalReplica,
        mut downstream: Option<&mut Downstream>,
    ) -> Result<(), Stop>
    where
        S: Stream<Item = Result<WriteChunkRequest, Status>> + Unpin,
    {
        while let Some(message) = self.next(upstream).await.map_err(Stop::Failed)? {
            let piece = match message.msg {
                Some(Msg::Data(data)) if data.is_empty() => continue,
                Some(Msg::Data(data)) => Piece::Data(data),
                Some(Msg::Ranges(ranges)) if ranges.ranges.is_empty() => continue,
                Some(Msg::Ranges(ranges)) => Piece::Ranges(ranges),
                None => {
                    let err = FsError::Invalid("write stream aborted by its sender".into());
                    return Err(Stop::Failed(err.into()));
                }
                Some(Msg::Header(_)) => {
                    let err = FsError::Invalid("a write stream has one header, then data".into());
                    return Err(Stop::Failed(err.into()));
                }
            };
            // Forward first: the next hop starts on this piece while the local disk does.
            // (Cloning shares the `Bytes` buffers.)
            if let Some(downstream) = downstream.as_deref_mut() {
                downstream.send(piece.clone()).await.map_err(Stop::Failed)?;
            }
            let len = local::data_len(&piece);
            local.write(piece).await.map_err(|_| Stop::LocalGone)?;
            self.metrics.written(len);
        }
        Ok(())
    }

    /// The next upstream message, or `None` at its end; an error if it broke or went silent.
    async fn next<S>(&self, upstream: &mut S) -> Result<Option<WriteChunkRequest>>
    where
        S: Stream<Item = Result<WriteChunkRequest, Status>> + Unpin,
    {
        match timeout(self.timeouts.idle, upstream.next()).await {
            Err(_) => Err(FsError::Unavailable(format!(
                "write stream silent for {:?}; abandoned",
                self.timeouts.idle
            ))
            .into()),
            Ok(Some(Err(status))) => Err(FsError::from_status(&status).into()),
            Ok(Some(Ok(message))) => Ok(Some(message)),
            Ok(None) => Ok(None),
        }
    }
}

/// The write stream to the next chunkserver of the chain, running in its own task.
struct Downstream {
    addr: String,
    pieces: mpsc::Sender<Piece>,
    /// The `WriteChunk` call; taken once its outcome has been awaited.
    call: Option<JoinHandle<Result<WriteChunkReply, Status>>>,
    rpc_timeout: Duration,
}

impl Downstream {
    /// Starts the call to `addr`, opening with `header`.
    fn open(peers: &Peers, addr: &str, header: WriteHeader, rpc_timeout: Duration) -> Result<Self> {
        let mut client = peers.client(addr)?;
        let (pieces, queue) = mpsc::channel(QUEUE_DEPTH);
        let requests = request_stream(header, queue);
        let call = tokio::spawn(async move {
            client
                .write_chunk(requests)
                .await
                .map(tonic::Response::into_inner)
        });
        Ok(Downstream {
            addr: addr.to_string(),
            pieces,
            call: Some(call),
            rpc_timeout,
        })
    }

    /// Queues a data piece; fails if the downstream failed or accepts nothing for the RPC
    /// timeout.
    async fn send(&mut self, piece: Piece) -> Result<()> {
        match timeout(self.rpc_timeout, self.pieces.send(piece)).await {
            Ok(Ok(())) => Ok(()),
            // The call ended before the stream did: its outcome says why.
            Ok(Err(_)) => Err(match self.outcome().await {
                Ok(_) => self.error(FsError::Io("replied before the write stream ended".into())),
                Err(err) => err,
            }),
            Err(_) => Err(self.error(FsError::Unavailable(format!(
                "accepted no data for {:?}",
                self.rpc_timeout
            )))),
        }
    }

    /// Ends the stream cleanly and waits for the downstream's reply.
    async fn finish(&mut self) -> Result<WriteChunkReply> {
        // A closed queue means the call already ended: its outcome says how.
        if timeout(self.rpc_timeout, self.pieces.send(Piece::End))
            .await
            .is_err()
        {
            return Err(self.error(FsError::Unavailable(format!(
                "accepted no data for {:?}",
                self.rpc_timeout
            ))));
        }
        self.outcome().await
    }

    /// Aborts the downstream's write (see the module docs) and waits, bounded, until it
    /// has failed.
    async fn abort(&mut self) {
        if let Some(call) = self.call.take() {
            abort_call(self.pieces.clone(), call, self.rpc_timeout).await;
        }
    }

    /// Waits (bounded) for the call to end.
    async fn outcome(&mut self) -> Result<WriteChunkReply> {
        let Some(mut call) = self.call.take() else {
            return Err(self.error(FsError::Io("write stream already failed".into())));
        };
        match timeout(self.rpc_timeout, &mut call).await {
            Ok(Ok(Ok(reply))) => Ok(reply),
            // The downstream may name a server further down the chain as the one that broke.
            Ok(Ok(Err(status))) => Err(Error::Downstream {
                addr: dfs_proto::error::failed_replica(&status)
                    .unwrap_or_else(|| self.addr.clone()),
                cause: FsError::from_status(&status),
            }),
            Ok(Err(join)) => Err(Error::Task(join)),
            Err(_) => {
                call.abort();
                Err(self.error(FsError::Unavailable(format!(
                    "no reply within {:?}",
                    self.rpc_timeout
                ))))
            }
        }
    }

    fn error(&self, cause: FsError) -> Error {
        Error::Downstream {
            addr: self.addr.clone(),
            cause,
        }
    }
}

impl Drop for Downstream {
    /// A write dropped half-way (the handler was cancelled) must abort the downstream's
    /// write too, not leave it running or let it look complete.
    fn drop(&mut self) {
        if let (Some(call), Ok(runtime)) = (self.call.take(), tokio::runtime::Handle::try_current())
        {
            runtime.spawn(abort_call(self.pieces.clone(), call, self.rpc_timeout));
        }
    }
}

/// Sends the abort message and waits (bounded) for the call to fail; cancels it if the
/// downstream does not take the message in time (it is then broken anyway).
async fn abort_call(
    pieces: mpsc::Sender<Piece>,
    mut call: JoinHandle<Result<WriteChunkReply, Status>>,
    rpc_timeout: Duration,
) {
    let sent = timeout(rpc_timeout, pieces.send(Piece::Abort)).await;
    if matches!(sent, Ok(Ok(()))) && timeout(rpc_timeout, &mut call).await.is_ok() {
        return;
    }
    call.abort();
    let _ = call.await;
}

/// The messages sent downstream: the header, then the queued data until `End`, or an empty
/// message at `Abort`. Neither a closed queue nor an abort ever ends the stream cleanly: the
/// stream then stays open until the call ends, so a failed write never looks complete.
fn request_stream(
    header: WriteHeader,
    queue: mpsc::Receiver<Piece>,
) -> impl Stream<Item = WriteChunkRequest> + Send + 'static {
    let header = WriteChunkRequest {
        msg: Some(Msg::Header(header)),
    };
    let data = ReceiverStream::new(queue)
        .chain(tokio_stream::pending())
        .map_while(|piece| {
            match piece {
                // `Bytes`: the local writer and the downstream share one buffer, no copy.
                Piece::Data(data) => Some(WriteChunkRequest {
                    msg: Some(Msg::Data(data)),
                }),
                Piece::Ranges(ranges) => Some(WriteChunkRequest {
                    msg: Some(Msg::Ranges(ranges)),
                }),
                Piece::Abort => Some(WriteChunkRequest { msg: None }),
                Piece::End => None,
            }
        });
    tokio_stream::once(header).chain(data)
}
