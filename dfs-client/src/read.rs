//! The read path: fetch the spans of a read from chunk replicas and assemble the reply.
//!
//! A read is clipped to the file size this client sees; inside it, a chunk that was never
//! allocated (a hole) and the part of a replica shorter than asked (a sparse chunk) both read
//! as zeros.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use dfs_proto::FsError;
use dfs_proto::chunk::ChunkSpan;
use dfs_proto::pb;
use tokio::task::JoinSet;

use crate::datapath::DataPath;
use crate::inode::OpenInode;

/// Bytes fetched for one span of a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// Offset of the span in the reply.
    pub buf_offset: u64,
    /// Length of the span.
    pub len: u64,
    /// What the replica returned (may be shorter than `len`).
    pub data: Bytes,
}

/// Reads up to `len` bytes at `offset` of an open inode.
pub async fn read(
    io: &DataPath,
    inode: &OpenInode,
    offset: u64,
    len: u64,
) -> Result<Bytes, FsError> {
    let plan = inode.plan_read(io, offset, len).await?;
    let mut pieces = Vec::with_capacity(plan.spans.len());
    for (span, chunk) in plan.spans {
        let Some(chunk) = chunk else { continue };
        let (data, fresh) = read_span(io, inode.ino, &chunk, &span).await?;
        if let Some(fresh) = fresh {
            inode.adopt_token(&fresh).await;
        }
        pieces.push(Piece {
            buf_offset: span.buf_offset,
            len: span.len,
            data,
        });
    }
    Ok(assemble(plan.len, pieces))
}

/// Reads up to `len` bytes at `offset` of an open inode if they can be had at once: the
/// inode is idle, without buffered writes, and every block the read touches is cached.
/// Answering from the thread that took the request saves two thread hand-offs, most of the
/// cost of a small cached read.
pub fn read_from_cache(io: &DataPath, inode: &OpenInode, offset: u64, len: u64) -> Option<Bytes> {
    let plan = inode.try_plan_read(&io.layout, offset, len)?;
    let mut pieces = Vec::with_capacity(plan.spans.len());
    for (span, chunk) in plan.spans {
        let Some(chunk) = chunk else { continue };
        pieces.push(Piece {
            buf_offset: span.buf_offset,
            len: span.len,
            data: io.cached(&chunk, span.offset, span.len)?,
        });
    }
    Some(assemble(plan.len, pieces))
}

/// Fetches `len` bytes at `offset` of a sequentially read file into the block cache, in
/// pieces of at most [`READ_AHEAD_PIECE`] (aligned to it), [`READ_AHEAD_PARALLEL`] at a
/// time, so chunkservers read and verify pieces in parallel on every core (and the runs of
/// a chunk go to different replicas, [`DataPath::read_chunk`]), and the reader, when it
/// catches up, finds the first pieces cached while later ones are on their way.
pub async fn read_ahead(io: DataPath, inode: Arc<OpenInode>, offset: u64, len: u64) {
    let plan = match inode.plan_read(&io, offset, len).await {
        Ok(plan) => plan,
        Err(err) => {
            tracing::debug!(ino = inode.ino, error = %err, "read-ahead not planned");
            return;
        }
    };
    let mut fetches = JoinSet::new();
    for (span, chunk) in plan.spans {
        let Some(chunk) = chunk else { continue };
        let end = span.offset + span.len;
        let mut pos = span.offset;
        while pos < end {
            let piece_end = end.min((pos / READ_AHEAD_PIECE + 1) * READ_AHEAD_PIECE);
            if fetches.len() >= READ_AHEAD_PARALLEL {
                fetches.join_next().await;
            }
            let (io, chunk) = (io.clone(), chunk.clone());
            fetches.spawn(async move { io.prefetch(&chunk, pos, piece_end - pos).await });
            pos = piece_end;
        }
    }
    while fetches.join_next().await.is_some() {}
}

/// Largest single fetch of read-ahead: the chunkserver's read piece, one pread and one
/// verification there.
pub const READ_AHEAD_PIECE: u64 = 1 << 20;

/// Read-ahead pieces fetched at once: enough to keep both cores of a small chunkserver
/// machine verifying, few enough not to crowd out the reader's own requests.
pub const READ_AHEAD_PARALLEL: usize = 4;

/// Reads one span. When every replica failed, the chunk may have moved or changed version
/// since this client loaded the chunk map, or its token expired: ask the master once and
/// retry if it did. Answers the data, and the chunk as the master answered it if it asked.
async fn read_span(
    io: &DataPath,
    ino: u64,
    chunk: &pb::ChunkInfo,
    span: &ChunkSpan,
) -> Result<(Bytes, Option<pb::ChunkInfo>), FsError> {
    let err = match io.read_cached(chunk, span.offset, span.len).await {
        Ok(data) => return Ok((data, None)),
        Err(err) if err.is_replica_fault() || err.is_token_refusal() => err,
        Err(err) => return Err(err),
    };
    match io.current_chunk(ino, span.index).await? {
        Some(fresh) if same_replicas(&fresh, chunk) && !err.is_token_refusal() => Err(err),
        Some(fresh) => {
            tracing::info!(
                ino,
                index = span.index,
                error = %err,
                "chunk moved or its token expired since open, retrying read"
            );
            let data = io.read_cached(&fresh, span.offset, span.len).await?;
            Ok((data, Some(fresh)))
        }
        // Dropped meanwhile (the file was truncated elsewhere): it reads as a hole.
        None => Ok((Bytes::new(), None)),
    }
}

/// Whether two views of a chunk name the same data on the same servers.
fn same_replicas(a: &pb::ChunkInfo, b: &pb::ChunkInfo) -> bool {
    a.chunk_id == b.chunk_id && a.version == b.version && a.replicas == b.replicas
}

/// Builds a reply of `len` bytes from the fetched pieces; whatever no piece covers (holes,
/// short replicas) is zero. A single piece covering everything is returned without a copy.
pub fn assemble(len: u64, mut pieces: Vec<Piece>) -> Bytes {
    let whole = |p: &Piece| p.buf_offset == 0 && p.len == len && p.data.len() as u64 == len;
    if pieces.len() == 1 && whole(&pieces[0]) {
        return pieces.pop().map(|p| p.data).unwrap_or_default();
    }
    let mut out = BytesMut::zeroed(len as usize);
    for piece in pieces {
        let start = piece.buf_offset as usize;
        let n = piece
            .data
            .len()
            .min(piece.len as usize)
            .min(out.len().saturating_sub(start));
        out[start..start + n].copy_from_slice(&piece.data[..n]);
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(buf_offset: u64, len: u64, data: &'static [u8]) -> Piece {
        Piece {
            buf_offset,
            len,
            data: Bytes::from_static(data),
        }
    }

    #[test]
    fn a_full_single_piece_is_passed_through() {
        let out = assemble(3, vec![piece(0, 3, b"abc")]);
        assert_eq!(out, Bytes::from_static(b"abc"));
    }

    #[test]
    fn holes_and_short_replicas_read_as_zeros() {
        // Span 0: a replica with 2 of 4 bytes; span 1: a hole (no piece); span 2: full.
        let out = assemble(10, vec![piece(0, 4, b"ab"), piece(7, 3, b"xyz")]);
        assert_eq!(&out[..], b"ab\0\0\0\0\0xyz");
        // A replica that sends more than its span never spills into the next span.
        let out = assemble(4, vec![piece(0, 2, b"abcd")]);
        assert_eq!(&out[..], b"ab\0\0");
        assert_eq!(assemble(0, Vec::new()).len(), 0);
    }

    #[test]
    fn moved_chunks_are_recognised() {
        let a = pb::ChunkInfo {
            chunk_id: 1,
            version: 2,
            length: 5,
            ..Default::default()
        };
        let longer = pb::ChunkInfo {
            length: 9,
            ..a.clone()
        };
        assert!(same_replicas(&a, &longer));
        let newer = pb::ChunkInfo {
            version: 3,
            ..a.clone()
        };
        assert!(!same_replicas(&a, &newer));
    }
}
