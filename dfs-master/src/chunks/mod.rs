//! The chunk map: which chunks make up each file, where their replicas are, and how long
//! they are.
//!
//! A chunk is allocated the first time a writer needs it, with replicas that placement chose
//! beforehand (the choice is an input, so applying an allocation is deterministic). After
//! writing data to the replica chain, the writer commits the new lengths and file size; a
//! commit for a chunk that was dropped or replaced meanwhile (a truncate, an unlink) is
//! refused as stale rather than resurrecting it.
//!
//! **Placed chunks** (small-file writes). `CreateFile` may hand out chunk 0 of a new file
//! *placed* but not recorded: an id reserved in the create's batch and the servers placement
//! chose. The holder writes the chain, and its first commit records the chunk, so creating
//! and writing a small file needs no allocation round trip, and a file that stays empty has
//! no chunk. Until then the replicas are unreferenced on their servers, which the orphan
//! grace period protects (a writer that dies first leaves garbage, never a lost
//! acknowledged write). A chain write that fails records the chunk (`LeaseChunk` with the
//! placement) so that its chain can be replaced like any other.
//!
//! * [`open`] — opening and creating a file, and listing a directory, in one round trip each.
//! * [`leases`] — writer leases: one writing mount per file, expiry and recovery.
//! * [`replicas`] — replica changes the data path asks for (failed chain writes, bad replicas).
//! * [`placement`] — which servers get a new chunk's replicas.

pub mod leases;
pub mod open;
pub mod placement;
pub mod replicas;

use dfs_proto::FsError;
use dfs_proto::chunk::ChunkLayout;
use dfs_proto::pb::{self, Attr, FileKind, Timestamp};

use crate::error::Result;
use crate::namespace::{Inode, invalid, require};
use crate::store::meta;
use crate::store::txn::{Txn, Writer};

/// The first version of a new chunk.
pub const FIRST_CHUNK_VERSION: u64 = 1;

/// One chunk of a file as the master knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Cluster-unique id of the chunk; replicas on chunkservers are named by it.
    pub chunk_id: u64,
    /// Version of the chunk; replicas with an older version are stale.
    pub version: u64,
    /// Committed length in bytes.
    pub length: u64,
    /// Servers holding a replica, in write-chain order.
    pub replicas: Vec<u64>,
    /// The highest version handed to a writer to rewrite on the survivors of a replica
    /// replacement; `version` catches up when the rewrite is committed. A lease takeover
    /// stamps above it, so the cut-off writer's rewrite is stale.
    pub issued_version: u64,
}

/// The chunks of (part of) one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChunks {
    /// Allocated chunks as `(index, chunk)`, in index order; a missing index is a hole.
    pub chunks: Vec<(u64, Chunk)>,
    /// Size of the file in bytes.
    pub file_size: u64,
}

/// The chunk map of one cluster.
pub struct ChunkMap {
    writer: Writer,
    layout: ChunkLayout,
}

impl ChunkMap {
    /// A chunk map over `writer`'s store, with chunks of `layout.chunk_size` bytes.
    pub fn new(writer: Writer, layout: ChunkLayout) -> ChunkMap {
        ChunkMap { writer, layout }
    }

    /// The chunks of regular file `ino` with indexes in `[first, first + count)` (`count` 0 =
    /// to the end of the file), and the file's size.
    pub fn chunks(&self, ino: u64, first: u64, count: u64) -> Result<FileChunks> {
        let store = self.writer.store();
        let inode = regular_file(store.inode(ino)?)?;
        let end = if count == 0 {
            None
        } else {
            first.checked_add(count)
        };
        let chunks = store.chunks(ino, first, end)?;
        Ok(FileChunks {
            chunks,
            file_size: inode.attr.size,
        })
    }

    /// Every chunk of every file as `(ino, index, chunk)`: a full scan for the admin CLI.
    pub fn all_chunks(&self) -> Result<Vec<(u64, u64, Chunk)>> {
        self.writer.store().all_chunks()
    }

    /// The chunk at `index` of regular file `ino`, if allocated.
    pub fn chunk(&self, ino: u64, index: u64) -> Result<Option<Chunk>> {
        let store = self.writer.store();
        regular_file(store.inode(ino)?)?;
        store.chunk(ino, index)
    }

    /// Allocates the chunk at `index` of file `ino` on `replicas` (in chain order) with a new
    /// chunk id, version 1 and length 0. If the chunk exists already (another writer got there
    /// first) the existing chunk is returned unchanged.
    pub fn allocate_chunk(&self, ino: u64, index: u64, replicas: Vec<u64>) -> Result<Chunk> {
        if index.checked_mul(self.layout.chunk_size).is_none() {
            return Err(invalid("chunk index past the largest file size"));
        }
        if replicas.is_empty() {
            return Err(FsError::NoSpace.into());
        }
        let mut txn = self.writer.begin();
        regular_file(txn.inode(ino)?)?;
        if let Some(existing) = txn.store().chunk(ino, index)? {
            return Ok(existing);
        }
        let chunk_id = txn.next_id(meta::NEXT_CHUNK_ID, 1)?;
        let chunk = Chunk {
            chunk_id,
            version: FIRST_CHUNK_VERSION,
            length: 0,
            replicas,
            issued_version: 0,
        };
        txn.put_chunk(ino, index, &chunk);
        txn.commit()?;
        Ok(chunk)
    }

    /// Reserves a chunk id in `txn` for a chunk placed but not yet recorded (see the module
    /// documentation).
    pub fn reserve_chunk_id(&self, txn: &mut Txn<'_>) -> Result<u64> {
        txn.next_id(meta::NEXT_CHUNK_ID, 1)
    }

    /// Records the placed chunk `chunk_id` on `servers` at `index` of file `ino` (version 1,
    /// length 0) unless the index has a chunk already (see the module documentation).
    pub fn record_placed(
        &self,
        ino: u64,
        index: u64,
        chunk_id: u64,
        servers: &[u64],
    ) -> Result<()> {
        let mut txn = self.writer.begin();
        regular_file(txn.inode(ino)?)?;
        if txn.store().chunk(ino, index)?.is_some() {
            return Ok(());
        }
        let chunk = placed_chunk(&txn, ino, index, chunk_id, FIRST_CHUNK_VERSION, servers)?;
        txn.put_chunk(ino, index, &chunk);
        txn.commit()
    }

    /// Moves the chunk at `index` of file `ino` up to `min_version` (if it is older): a new
    /// writer lease holder that took the file over has stamped that version on the replicas
    /// first, so replicas an earlier holder wrote, and commits it still sends, are
    /// recognisably stale. `None` if the chunk is not allocated.
    pub fn raise_version(&self, ino: u64, index: u64, min_version: u64) -> Result<Option<Chunk>> {
        let mut txn = self.writer.begin();
        regular_file(txn.inode(ino)?)?;
        let Some(mut chunk) = txn.store().chunk(ino, index)? else {
            return Ok(None);
        };
        if min_version > chunk.version {
            chunk.version = min_version;
            txn.put_chunk(ino, index, &chunk);
            txn.commit()?;
        }
        Ok(Some(chunk))
    }

    /// Records a completed write to file `ino`: each committed chunk grows to at least the
    /// committed length, the file to at least `size` bytes; mtime becomes `mtime` (or `now`),
    /// then the attribute changes `attrs` made while the writes were buffered apply, and
    /// ctime becomes `now`. Fails with `ENOENT` for a missing file and `ESTALE` if a chunk no
    /// longer exists with that id (or has moved to a newer version); nothing is applied then.
    /// A commit at a newer version than the record's (the rewrite after a replica
    /// replacement) records that version.
    pub fn commit_write(
        &self,
        ino: u64,
        commits: &[pb::ChunkCommit],
        size: u64,
        mtime: Option<Timestamp>,
        attrs: Option<&pb::SetAttrRequest>,
        now: Timestamp,
    ) -> Result<Attr> {
        if attrs.is_some_and(|a| a.size.is_some() || a.mark_access) {
            return Err(invalid("a commit carries no size change or access mark"));
        }
        let mut txn = self.writer.begin();
        let mut inode = regular_file(txn.inode(ino)?)?;
        let mut updated: Vec<(u64, Chunk)> = Vec::with_capacity(commits.len());
        let mut versions_moved = false;
        for commit in commits {
            if commit.length > self.layout.chunk_size {
                return Err(invalid("chunk length past the chunk size"));
            }
            // Several commits of one chunk in one request accumulate.
            let position = updated.iter().position(|(index, _)| *index == commit.index);
            let chunk = match position {
                Some(i) => &mut updated[i].1,
                None => {
                    let chunk = current_chunk(&txn, ino, commit)?;
                    updated.push((commit.index, chunk));
                    &mut updated.last_mut().expect("just pushed").1
                }
            };
            chunk.length = chunk.length.max(commit.length);
            // A rewrite after a replica replacement: the survivors hold the new version now.
            if commit.version > chunk.version {
                chunk.version = commit.version;
                versions_moved = true;
            }
        }
        for (index, chunk) in &updated {
            txn.put_chunk(ino, *index, chunk);
        }
        inode.attr.size = inode.attr.size.max(size);
        inode.attr.mtime = Some(mtime.unwrap_or(now));
        if let Some(attrs) = attrs {
            attrs.apply_to(&mut inode.attr);
        }
        inode.attr.ctime = Some(now);
        let attr = inode.attr;
        txn.put_inode(inode);
        // Lengths may wait for the WAL sync: lost in a machine crash, the file is a prefix of
        // what was written, as with any write not fsync'd. A version may not: the master must
        // never fall back to a version some replicas have left behind.
        if !versions_moved {
            txn.defer_sync();
        }
        txn.commit()?;
        Ok(attr)
    }
}

/// The master's record of the chunk a commit names, or `ESTALE` if the commit refers to a
/// chunk that is gone or to an older version of it.
fn current_chunk(txn: &Txn<'_>, ino: u64, commit: &pb::ChunkCommit) -> Result<Chunk> {
    let stale = |why: &str| {
        FsError::Stale(format!(
            "chunk {} (index {}) of inode {ino} {why}",
            commit.chunk_id, commit.index
        ))
    };
    let chunk = match txn.store().chunk(ino, commit.index)? {
        Some(chunk) => chunk,
        None if !commit.placed_servers.is_empty() => {
            return placed_chunk(
                txn,
                ino,
                commit.index,
                commit.chunk_id,
                commit.version,
                &commit.placed_servers,
            );
        }
        None => return Err(stale("no longer exists").into()),
    };
    if chunk.chunk_id != commit.chunk_id {
        return Err(stale("was replaced").into());
    }
    if commit.version < chunk.version {
        return Err(stale("has a newer version").into());
    }
    Ok(chunk)
}

/// The record of a placed chunk about to be recorded at `index` of `ino`: its id must have
/// been reserved (handed out, below the id counter) and belong to no file (`ESTALE`
/// otherwise: a placement from before a truncate or of another file is never recorded).
fn placed_chunk(
    txn: &Txn<'_>,
    ino: u64,
    index: u64,
    chunk_id: u64,
    version: u64,
    servers: &[u64],
) -> Result<Chunk> {
    let next_id = txn.store().meta(meta::NEXT_CHUNK_ID)?.unwrap_or(0);
    let reserved = chunk_id > 0 && chunk_id < next_id;
    if !reserved || txn.store().chunk_owner(chunk_id)?.is_some() || servers.is_empty() {
        return Err(FsError::Stale(format!(
            "chunk {chunk_id} (index {index}) of inode {ino} is no placement to record"
        ))
        .into());
    }
    Ok(Chunk {
        chunk_id,
        version: version.max(FIRST_CHUNK_VERSION),
        length: 0,
        replicas: servers.to_vec(),
        issued_version: 0,
    })
}

/// The inode if it is a regular file: `ENOENT` if missing, `EISDIR` for a directory,
/// `EINVAL` for other kinds (they have no data).
pub(crate) fn regular_file(inode: Option<Inode>) -> Result<Inode> {
    let inode = require(inode)?;
    match inode.kind() {
        FileKind::Regular => Ok(inode),
        FileKind::Directory => Err(FsError::IsDir.into()),
        _ => Err(invalid("only regular files have chunks")),
    }
}
