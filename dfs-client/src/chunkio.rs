//! The data path: streaming chunk reads and chain-replicated chunk writes to chunkservers.
//!
//! A write is ONE stream to the first replica of a chunk, whose header names the rest of the
//! chain as `downstream`; each chunkserver forwards the stream to the next, so the client sends
//! every byte once and the reply arrives when every replica holds the data. A failed write
//! names the replica that broke the chain ([`ChainFailure`]), so the caller can ask for a chain
//! without it. A read goes to one replica; falling back to the next, and reporting bad
//! replicas, is [`crate::datapath::DataPath`]'s.
//!
//! Channels are pooled per chunkserver address and connect lazily, with the same timeouts as
//! the master channel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use dfs_proto::FsError;
use dfs_proto::pb::{self, chunkserver_client::ChunkserverClient, write_chunk_request::Msg};
use dfs_proto::tls::Tls;
use tonic::transport::Channel;

use crate::master::lazy_channel;
use crate::metrics::{ChunkOp, ClientMetrics};

/// Largest data message of a write stream: big enough to amortise per-message costs, small
/// enough to pipeline along the chain.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// A failed chain write: the error, and the address of the replica that broke the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainFailure {
    /// What went wrong.
    pub error: FsError,
    /// `host:port` of the replica to leave out of the next chain (`None` if the chunk had no
    /// replicas at all).
    pub failed_addr: Option<String>,
}

/// Pool of chunkserver channels, keyed by `host:port`.
#[derive(Debug, Clone)]
pub struct ChunkIo {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    timeout: Duration,
    /// Where every call's duration is recorded.
    metrics: ClientMetrics,
    /// The certificates of mutual TLS with the chunkservers, if it is on.
    tls: Option<Tls>,
}

/// What a chunk write stream asks the chain to do besides storing data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteFlags {
    /// fsync every replica before acknowledging.
    pub sync: bool,
    /// Cut every replica to end where this stream's data ends.
    pub truncate: bool,
}

impl ChunkIo {
    /// An empty pool whose calls fail after `timeout`, recording their durations in
    /// `metrics`.
    pub fn new(timeout: Duration, metrics: ClientMetrics) -> ChunkIo {
        ChunkIo {
            channels: Arc::default(),
            timeout,
            metrics,
            tls: None,
        }
    }

    /// This pool, speaking mutual TLS with `tls` (if any) to every chunkserver.
    pub fn with_tls(mut self, tls: Option<Tls>) -> ChunkIo {
        self.tls = tls;
        self
    }

    fn client(&self, addr: &str) -> Result<ChunkserverClient<Channel>, FsError> {
        // A std mutex is fine: it is held only to look up or insert a channel, never across an
        // `.await`.
        let mut channels = self.channels.lock().expect("channel pool poisoned");
        let channel = match channels.get(addr) {
            Some(channel) => channel.clone(),
            None => {
                let channel = lazy_channel(addr, self.timeout, self.tls.as_ref())?;
                channels.insert(addr.to_string(), channel.clone());
                channel
            }
        };
        Ok(ChunkserverClient::new(channel).max_decoding_message_size(2 * MAX_MESSAGE_BYTES))
    }

    /// Writes `data` at `offset` inside `chunk` on every replica, through the chain starting
    /// at its first replica. Returns the replica length after the write.
    pub async fn write_chunk(
        &self,
        chunk: &pb::ChunkInfo,
        offset: u64,
        data: Bytes,
        flags: WriteFlags,
    ) -> Result<u64, FsError> {
        self.write_chain(chunk, offset, data, flags)
            .await
            .map_err(|failure| failure.error)
    }

    /// Like [`write_chunk`](ChunkIo::write_chunk), but a failure also says which replica
    /// broke the chain: the one a chunkserver named, else the first (which the client could
    /// not reach, or which failed by itself).
    pub async fn write_chain(
        &self,
        chunk: &pb::ChunkInfo,
        offset: u64,
        data: Bytes,
        flags: WriteFlags,
    ) -> Result<u64, ChainFailure> {
        self.write_chain_pieces(chunk, &[(offset, data)], flags)
            .await
    }

    /// Like [`write_chain`](ChunkIo::write_chain) with several `(offset, bytes)` pieces of the
    /// chunk (disjoint, in offset order) in one stream: one piece goes as plain data, several
    /// as `ranges` messages of up to [`MAX_MESSAGE_BYTES`] each.
    pub async fn write_chain_pieces(
        &self,
        chunk: &pb::ChunkInfo,
        pieces: &[(u64, Bytes)],
        flags: WriteFlags,
    ) -> Result<u64, ChainFailure> {
        let Some(first) = chunk.replicas.first() else {
            return Err(ChainFailure {
                error: FsError::Unavailable(format!("chunk {} has no replicas", chunk.chunk_id)),
                failed_addr: None,
            });
        };
        let header = pb::WriteHeader {
            chunk_id: chunk.chunk_id,
            version: chunk.version,
            offset: pieces.first().map_or(0, |(offset, _)| *offset),
            downstream: chunk.replicas[1..].iter().map(|r| r.addr.clone()).collect(),
            sync: flags.sync,
            truncate: flags.truncate,
            token: chunk.token.clone(),
        };
        let messages = match pieces {
            [(_, data)] => write_messages(header, data.clone()),
            _ => ranged_messages(header, pieces),
        };
        let failure = |error: FsError, named: Option<String>| ChainFailure {
            error,
            failed_addr: Some(named.unwrap_or_else(|| first.addr.clone())),
        };
        let mut client = self.client(&first.addr).map_err(|e| failure(e, None))?;
        let call = client.write_chunk(tokio_stream::iter(messages));
        let started = Instant::now();
        let answered = tokio::time::timeout(self.timeout, call).await;
        self.metrics
            .chunkserver_call(ChunkOp::Write, started.elapsed());
        let reply = match answered {
            Ok(Ok(reply)) => reply.into_inner(),
            Ok(Err(status)) => {
                let named = dfs_proto::error::failed_replica(&status);
                return Err(failure(FsError::from_status(&status), named));
            }
            Err(_) => {
                let error = FsError::Unavailable("chunkserver call timed out".into());
                return Err(failure(error, None));
            }
        };
        let expected = chunk.replicas.len() as u32;
        if reply.replicas_written < expected {
            tracing::warn!(
                chunk_id = chunk.chunk_id,
                written = reply.replicas_written,
                expected,
                "chunk write reached fewer replicas than the chain holds"
            );
        }
        Ok(reply.length)
    }

    /// Cuts every replica of `chunk` to `length` bytes, so bytes past a truncated file's end
    /// cannot reappear when the file grows again.
    pub async fn truncate_chunk(&self, chunk: &pb::ChunkInfo, length: u64) -> Result<u64, FsError> {
        let flags = WriteFlags {
            sync: false,
            truncate: true,
        };
        self.write_chunk(chunk, length, Bytes::new(), flags).await
    }

    /// Moves every replica of `chunk` to `chunk.version` without changing its bytes: a new
    /// lease holder does this before the master records the new version, so no replica is
    /// ever older than the master says while its data is current.
    pub async fn stamp_version(&self, chunk: &pb::ChunkInfo) -> Result<u64, FsError> {
        self.write_chunk(chunk, 0, Bytes::new(), WriteFlags::default())
            .await
    }

    /// The version and length of the replica of `chunk` on the server at `addr`.
    pub async fn stat_replica(
        &self,
        addr: &str,
        chunk: &pb::ChunkInfo,
    ) -> Result<pb::StatReplicaReply, FsError> {
        let mut client = self.client(addr)?;
        let call = client.stat_replica(pb::StatReplicaRequest {
            chunk_id: chunk.chunk_id,
            token: chunk.token.clone(),
        });
        let started = Instant::now();
        let answered = self.deadline(call).await;
        self.metrics
            .chunkserver_call(ChunkOp::Stat, started.elapsed());
        answered
    }

    /// Reads up to `len` bytes at `offset` of `chunk` from the replica at `addr`. The result
    /// is shorter than `len` when the replica ends earlier (a sparse chunk): the caller fills
    /// the rest with zeros up to the file size. Replica fallback is the caller's
    /// ([`crate::datapath::DataPath::read_chunk`]), which also reports bad replicas.
    pub async fn read_replica(
        &self,
        addr: &str,
        chunk: &pb::ChunkInfo,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, FsError> {
        let req = pb::ReadChunkRequest {
            chunk_id: chunk.chunk_id,
            version: chunk.version,
            offset,
            length: len,
            token: chunk.token.clone(),
        };
        let mut client = self.client(addr)?;
        // The channel timeout covers the call up to the response headers; the deadline here
        // also covers the streamed body.
        let read = async move {
            let mut stream = client.read_chunk(req).await?.into_inner();
            let mut pieces: Vec<Bytes> = Vec::new();
            while let Some(reply) = stream.message().await? {
                pieces.push(reply.data);
            }
            Ok::<_, tonic::Status>(concat(pieces, len))
        };
        let started = Instant::now();
        let answered = tokio::time::timeout(self.timeout, read).await;
        self.metrics
            .chunkserver_call(ChunkOp::Read, started.elapsed());
        match answered {
            Ok(result) => result.map_err(|status| FsError::from_status(&status)),
            Err(_) => Err(FsError::Unavailable(format!("read from {addr} timed out"))),
        }
    }

    async fn deadline<T>(
        &self,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, FsError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result
                .map(tonic::Response::into_inner)
                .map_err(|status| FsError::from_status(&status)),
            Err(_) => Err(FsError::Unavailable("chunkserver call timed out".into())),
        }
    }
}

/// The messages of one write stream: the header, then the data in pieces of at most
/// [`MAX_MESSAGE_BYTES`] (zero-copy slices of `data`).
fn write_messages(header: pb::WriteHeader, data: Bytes) -> Vec<pb::WriteChunkRequest> {
    let mut messages = Vec::with_capacity(1 + data.len().div_ceil(MAX_MESSAGE_BYTES));
    messages.push(pb::WriteChunkRequest {
        msg: Some(Msg::Header(header)),
    });
    let mut pos = 0;
    while pos < data.len() {
        let end = (pos + MAX_MESSAGE_BYTES).min(data.len());
        // `.into()`: the generated field is `Vec<u8>` or `Bytes` depending on the proto build's
        // `bytes` configuration.
        messages.push(pb::WriteChunkRequest {
            msg: Some(Msg::Data(data.slice(pos..end))),
        });
        pos = end;
    }
    messages
}

/// The messages of a stream of scattered pieces: the header, then `ranges` messages each
/// holding up to [`MAX_MESSAGE_BYTES`] of data (a larger piece is split across messages).
fn ranged_messages(header: pb::WriteHeader, pieces: &[(u64, Bytes)]) -> Vec<pb::WriteChunkRequest> {
    let mut messages = vec![pb::WriteChunkRequest {
        msg: Some(Msg::Header(header)),
    }];
    let mut ranges: Vec<pb::WriteRange> = Vec::new();
    let mut size = 0;
    for (offset, data) in pieces {
        let mut pos = 0;
        while pos < data.len() {
            if size == MAX_MESSAGE_BYTES {
                messages.push(ranges_message(std::mem::take(&mut ranges)));
                size = 0;
            }
            let end = (pos + MAX_MESSAGE_BYTES - size).min(data.len());
            ranges.push(pb::WriteRange {
                offset: offset + pos as u64,
                data: data.slice(pos..end),
            });
            size += end - pos;
            pos = end;
        }
    }
    if !ranges.is_empty() {
        messages.push(ranges_message(ranges));
    }
    messages
}

fn ranges_message(ranges: Vec<pb::WriteRange>) -> pb::WriteChunkRequest {
    pb::WriteChunkRequest {
        msg: Some(Msg::Ranges(pb::WriteRanges { ranges })),
    }
}

/// Joins the pieces of a streamed read (without copying when there is only one), keeping at
/// most `limit` bytes in case a replica sends more than asked.
fn concat(mut pieces: Vec<Bytes>, limit: u64) -> Bytes {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut data = if pieces.len() == 1 {
        pieces.pop().unwrap_or_default()
    } else {
        let mut joined = BytesMut::with_capacity(pieces.iter().map(Bytes::len).sum());
        for piece in pieces {
            joined.extend_from_slice(&piece);
        }
        joined.freeze()
    };
    data.truncate(limit);
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_stream_is_header_then_bounded_pieces() {
        let header = pb::WriteHeader {
            chunk_id: 7,
            ..Default::default()
        };
        let data = Bytes::from(vec![1u8; 2 * MAX_MESSAGE_BYTES + 5]);
        let messages = write_messages(header, data);
        assert_eq!(messages.len(), 4);
        assert!(matches!(messages[0].msg, Some(Msg::Header(ref h)) if h.chunk_id == 7));
        let sizes: Vec<usize> = messages[1..]
            .iter()
            .map(|m| match &m.msg {
                Some(Msg::Data(d)) => d.len(),
                _ => panic!("expected data"),
            })
            .collect();
        assert_eq!(sizes, vec![MAX_MESSAGE_BYTES, MAX_MESSAGE_BYTES, 5]);
        // A truncate or sync stream is a header alone.
        assert_eq!(
            write_messages(pb::WriteHeader::default(), Bytes::new()).len(),
            1
        );
    }

    #[test]
    fn scattered_pieces_are_packed_into_bounded_ranged_messages() {
        let big = Bytes::from(vec![3u8; MAX_MESSAGE_BYTES + 10]);
        let pieces = vec![
            (0, Bytes::from_static(b"ab")),
            (100, big.clone()),
            (2 << 20, Bytes::from_static(b"cd")),
        ];
        let messages = ranged_messages(pb::WriteHeader::default(), &pieces);
        let shape: Vec<Vec<(u64, usize)>> = messages[1..]
            .iter()
            .map(|m| match &m.msg {
                Some(Msg::Ranges(r)) => r.ranges.iter().map(|r| (r.offset, r.data.len())).collect(),
                _ => panic!("expected ranges"),
            })
            .collect();
        let split = MAX_MESSAGE_BYTES - 2;
        assert_eq!(
            shape,
            vec![
                vec![(0, 2), (100, split)],
                vec![(100 + split as u64, 12), (2 << 20, 2)],
            ]
        );
    }

    #[test]
    fn read_pieces_are_joined_and_capped() {
        let pieces = vec![Bytes::from_static(b"abc"), Bytes::from_static(b"defg")];
        assert_eq!(concat(pieces, 5), Bytes::from_static(b"abcde"));
        assert_eq!(
            concat(vec![Bytes::from_static(b"xy")], 10),
            Bytes::from_static(b"xy")
        );
        assert_eq!(concat(Vec::new(), 10), Bytes::new());
    }
}
