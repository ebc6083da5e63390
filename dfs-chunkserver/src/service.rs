//! The `Chunkserver` gRPC service: thin handlers over the chain writer and the store.
//!
//! `WriteChunk` hands its stream to [`ChainWriter`]. `ReadChunk` streams the requested range
//! in pieces of at most [`READ_PIECE`] bytes, each read and verified on a blocking thread (or
//! inline when small, see [`INLINE_READ`])
//! while the previous one is on the wire. A read that finds a corrupt block also reports
//! the replica to the master (through the [`RepairReports`] of the next heartbeat), so the
//! replica is replaced without waiting for the scrubber.

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use dfs_proto::FsError;
use dfs_proto::pb::chunkserver_server::{Chunkserver, ChunkserverServer};
use dfs_proto::pb::{
    ReadChunkReply, ReadChunkRequest, StatReplicaReply, StatReplicaRequest, WriteChunkReply,
    WriteChunkRequest,
};
use dfs_proto::tls::Tls;
use dfs_proto::token::{self, TokenVerifier};
use tokio::sync::mpsc;
use tokio::task;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::chain::{ChainTimeouts, ChainWriter};
use crate::error::{Error, Result};
use crate::metrics::{ChunkserverMetrics, Op};
use crate::net::MAX_MESSAGE_SIZE;
use crate::repair::RepairReports;
use crate::store::ChunkStore;

/// Largest data message of a read reply. Pieces after the first start at multiples of this
/// (a multiple of any sensible block size), so every block is read and verified once.
pub const READ_PIECE: u64 = 1 << 20;

/// Read pieces buffered ahead of the network: one being sent, one being read.
const READ_AHEAD: usize = 2;

/// The data service of one chunkserver.
#[derive(Debug)]
pub struct ChunkserverService {
    store: ChunkStore,
    chain: ChainWriter,
    reports: RepairReports,
    metrics: ChunkserverMetrics,
    tokens: Arc<TokenVerifier>,
}

impl ChunkserverService {
    /// A service over `store`, forwarding chain writes with `timeouts`.
    pub fn new(store: ChunkStore, timeouts: ChainTimeouts) -> ChunkserverService {
        ChunkserverService {
            chain: ChainWriter::new(store.clone(), timeouts),
            store,
            reports: RepairReports::default(),
            metrics: ChunkserverMetrics::default(),
            tokens: Arc::default(),
        }
    }

    /// Checks every request's chunk token with `tokens`' keys (which registration and
    /// heartbeats keep current); until it has keys, every request is
    /// answered UNAVAILABLE, so clients turn to another replica.
    pub fn with_tokens(mut self, tokens: Arc<TokenVerifier>) -> ChunkserverService {
        self.chain.check_tokens_with(Arc::clone(&tokens));
        self.tokens = tokens;
        self
    }

    /// Forwards chain writes to the next replicas over mutual TLS with `tls` (if any).
    pub fn with_peer_tls(mut self, tls: Option<Tls>) -> ChunkserverService {
        self.chain.forward_with_tls(tls);
        self
    }

    /// Counts reads, writes and their durations (and the local bytes of chain writes) in
    /// `metrics`.
    pub fn with_metrics(mut self, metrics: ChunkserverMetrics) -> ChunkserverService {
        self.chain.count_in(metrics.clone());
        self.metrics = metrics;
        self
    }

    /// Reports corrupt replicas found by reads to `reports` (which heartbeats send on).
    pub fn with_repair_reports(mut self, reports: RepairReports) -> ChunkserverService {
        self.reports = reports;
        self
    }

    /// The tonic server for this service, accepting and sending messages of up to
    /// [`MAX_MESSAGE_SIZE`].
    pub fn into_server(self) -> ChunkserverServer<ChunkserverService> {
        ChunkserverServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
    }
}

/// Stream of read pieces sent to the client.
type ReadStream = Pin<Box<dyn Stream<Item = Result<ReadChunkReply, Status>> + Send>>;

#[tonic::async_trait]
impl Chunkserver for ChunkserverService {
    async fn write_chunk(
        &self,
        request: Request<Streaming<WriteChunkRequest>>,
    ) -> Result<Response<WriteChunkReply>, Status> {
        let _transfer = self.store.begin_transfer();
        let _timer = self.metrics.start(Op::Write);
        let reply = self.chain.write(request.into_inner()).await?;
        Ok(Response::new(reply))
    }

    type ReadChunkStream = ReadStream;

    async fn read_chunk(
        &self,
        request: Request<ReadChunkRequest>,
    ) -> Result<Response<ReadStream>, Status> {
        let ReadChunkRequest {
            chunk_id,
            version,
            offset,
            length,
            token,
        } = request.into_inner();
        let now = token::unix_ms_now();
        self.tokens
            .check(token.as_ref(), chunk_id, Some(version), token::READ, now)?;
        // Held by the task streaming the reply, so the read counts until its last piece.
        let transfer = (self.store.begin_transfer(), self.metrics.start(Op::Read));
        let end = offset.saturating_add(length);
        // The first piece is read before answering, so a missing, stale or corrupt replica
        // fails the call itself rather than arriving as a stream item.
        let first_end = end.min((offset / READ_PIECE + 1) * READ_PIECE);
        let first = read_piece(&self.store, chunk_id, version, offset, first_end).await;
        let first = self.reports.note_read(chunk_id, first, &self.metrics)?;
        let first_pos = offset + first.len() as u64;
        if first_pos == end || first_pos < first_end {
            // All there is (a small read, or the replica ended): no streaming task needed. The
            // stream holds the transfer until it is sent.
            let reply = (!first.is_empty()).then_some(Ok(ReadChunkReply { data: first }));
            let stream = tokio_stream::iter(reply).map(move |reply| {
                let _transfer = &transfer;
                reply
            });
            return Ok(Response::new(Box::pin(stream)));
        }
        let (tx, rx) = mpsc::channel(READ_AHEAD);
        let store = self.store.clone();
        let reports = self.reports.clone();
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            let _transfer = transfer;
            let mut pos = offset + first.len() as u64;
            let mut full = pos == first_end;
            if !first.is_empty() && tx.send(Ok(ReadChunkReply { data: first })).await.is_err() {
                return;
            }
            // A short piece means the replica ended: stop there.
            while full && pos < end {
                let piece_end = end.min(pos + READ_PIECE);
                let piece = read_piece(&store, chunk_id, version, pos, piece_end).await;
                let piece = reports.note_read(chunk_id, piece, &metrics);
                let reply = piece.map(|data| {
                    pos += data.len() as u64;
                    full = pos == piece_end;
                    ReadChunkReply { data }
                });
                let failed = reply.is_err();
                if tx.send(reply.map_err(Status::from)).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn stat_replica(
        &self,
        request: Request<StatReplicaRequest>,
    ) -> Result<Response<StatReplicaReply>, Status> {
        let _timer = self.metrics.start(Op::Stat);
        let StatReplicaRequest { chunk_id, token } = request.into_inner();
        let now = token::unix_ms_now();
        self.tokens
            .check(token.as_ref(), chunk_id, None, token::READ, now)?;
        let replica = self.store.replica(chunk_id).ok_or(FsError::NotFound)?;
        Ok(Response::new(StatReplicaReply {
            version: replica.version,
            length: replica.length,
        }))
    }
}

/// Largest piece read inline, on the task serving the request, rather than on a blocking
/// thread.
pub const INLINE_READ: u64 = 64 << 10;

/// Reads and verifies `[offset, end)` of a replica.
///
/// A small piece (at most [`INLINE_READ`], e.g. the block behind a 4 KiB random read) is read
/// inline: from the page cache that is a copy and one block checksum, microseconds, less than
/// the two thread hand-offs of `spawn_blocking`. Larger pieces, which take long to read and
/// verify, go to a blocking thread.
async fn read_piece(
    store: &ChunkStore,
    chunk_id: u64,
    version: u64,
    offset: u64,
    end: u64,
) -> Result<Bytes> {
    if end - offset <= INLINE_READ {
        return store.read(chunk_id, version, offset, end - offset);
    }
    let store = store.clone();
    task::spawn_blocking(move || store.read(chunk_id, version, offset, end - offset)).await?
}

impl RepairReports {
    /// Passes a read result through, counting the bytes read, and noting the replica if the
    /// read found it corrupt.
    fn note_read(
        &self,
        chunk_id: u64,
        read: Result<Bytes>,
        metrics: &ChunkserverMetrics,
    ) -> Result<Bytes> {
        match &read {
            Ok(data) => metrics.read(data.len() as u64),
            Err(Error::Fs(dfs_proto::FsError::Corrupt(_))) => {
                metrics.checksum_failure();
                self.corrupt(chunk_id);
            }
            Err(_) => {}
        }
        read
    }
}
