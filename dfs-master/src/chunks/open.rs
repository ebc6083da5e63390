//! The small-file fast path: opening a file, creating one and listing a directory each take
//! one master round trip.
//!
//! With separate calls, opening a file takes four round trips (attributes, chunk map, an atime
//! mark, the writer lease) and creating one two (the node, the lease); for a tree of small files
//! those round trips, not the bytes, are the cost. [`Master::open_file`] answers attributes and
//! chunk map together, marks atime by the relatime rule and grants the writer lease in the same
//! transaction; [`Master::create_file`] creates the file and grants its lease in one synced batch,
//! and may place the new file's chunk 0 in it (see [`crate::chunks`]: placed chunks). Both keep the
//! meaning of the separate calls: the lease is granted exactly as
//! [`Leases::acquire`](crate::chunks::leases::Leases::acquire) grants it (`EBUSY` while another
//! holder's lease is live, `recover` after an expired one), and an open that fails grants nothing
//! and marks nothing. [`Master::read_dir`] likewise answers the first page of a listing with the
//! directory's attributes after its relatime mark (`opendir` costs no call of its own), and
//! [`Master::lookup`] may bring a small file's chunk map, so that a read-only open right after it
//! costs none either.

use std::time::{Instant, SystemTime};

use dfs_proto::pb::{self, FileKind, Timestamp};
use dfs_proto::time::{access_due, time_or_epoch};

use crate::chunks::{Chunk, FIRST_CHUNK_VERSION};
use crate::convert;
use crate::error::Result;
use crate::master::Master;
use crate::namespace::{invalid, require};
use crate::store::txn::Txn;

/// Files of at most this many chunks come with their chunk map when looked up for an open.
pub const OPEN_AHEAD_CHUNKS: u64 = 4;

impl Master {
    /// Opens file `req.ino`: its attributes (after an atime mark, if `req.read` and the
    /// relatime rule calls for one at `now`) and chunk map, and, with `req.lease_holder`, its
    /// writer lease (liveness measured at `clock`). The atime mark alone is written unsynced,
    /// like any attribute change; with a lease grant it shares the grant's synced batch.
    pub fn open_file(
        &self,
        req: &pb::OpenFileRequest,
        now: Timestamp,
        clock: Instant,
    ) -> Result<pb::OpenFileReply> {
        let ino = req.ino;
        let mark = |txn: &mut Txn<'_>| -> Result<(u64, (pb::Attr, bool))> {
            let mut inode = require(txn.inode(ino)?)?;
            let due = req.read && access_due(&inode.attr, SystemTime::from(now));
            if due {
                // A read access is no change of the inode: atime only, ctime stays.
                inode.attr.atime = Some(now);
                txn.put_inode(inode.clone());
            }
            Ok((ino, (inode.attr, due)))
        };
        let (lease, (attr, marked)) = if !req.lease_holder.is_empty() {
            let (grant, opened) = self.leases().acquire_with(&req.lease_holder, clock, mark)?;
            (Some(self.lease_reply(grant.recover)), opened)
        } else if req.read {
            (None, self.mark_access(ino, now)?)
        } else {
            (None, (self.namespace().getattr(ino)?, false))
        };
        let chunk_map = self.get_chunks(ino, 0, 0, clock)?;
        Ok(convert::opened(attr, chunk_map, marked, lease))
    }

    /// Looks `req.name` up in `req.parent`; with `req.open_ahead`, a regular file of at most
    /// [`OPEN_AHEAD_CHUNKS`] chunks comes with its chunk map (replica liveness at `clock`),
    /// which is all a read-only open with no atime mark due needs. Larger files are left to
    /// the open: their maps are bigger, and a lookup that is not followed by an open (`stat`)
    /// would carry them for nothing.
    pub fn lookup(&self, req: &pb::LookupRequest, clock: Instant) -> Result<pb::AttrReply> {
        let attr = self.namespace().lookup(req.parent, &req.name)?;
        let small = attr.size <= OPEN_AHEAD_CHUNKS * self.layout().chunk_size;
        let chunk_map = if req.open_ahead && attr.kind == FileKind::Regular as i32 && small {
            Some(self.get_chunks(attr.ino, 0, OPEN_AHEAD_CHUNKS, clock)?)
        } else {
            None
        };
        Ok(convert::looked_up(attr, chunk_map))
    }

    /// Marks a read access of `ino` at `now` if the relatime rule calls for one (written
    /// unsynced, like any attribute change); returns its attributes and whether it marked.
    fn mark_access(&self, ino: u64, now: Timestamp) -> Result<(pb::Attr, bool)> {
        let attr = self.namespace().getattr(ino)?;
        if !access_due(&attr, SystemTime::from(now)) {
            return Ok((attr, false));
        }
        let mut txn = self.namespace().writer.begin();
        let mut inode = require(txn.inode(ino)?)?;
        if !access_due(&inode.attr, SystemTime::from(now)) {
            return Ok((inode.attr, false));
        }
        inode.attr.atime = Some(now);
        txn.put_inode(inode.clone());
        txn.commit_unsynced()?;
        Ok((inode.attr, true))
    }

    /// Applies read accesses a mount marked itself (see `MarkAccessRequest`): each moves its
    /// file's atime forward, never back; files gone since are skipped. One unsynced batch.
    pub fn mark_accesses(&self, req: &pb::MarkAccessRequest) -> Result<()> {
        let mut txn = self.namespace().writer.begin();
        for mark in &req.marks {
            let Some(mut inode) = txn.inode(mark.ino)? else {
                continue;
            };
            if time_or_epoch(mark.atime) > time_or_epoch(inode.attr.atime) {
                inode.attr.atime = mark.atime;
                txn.put_inode(inode);
            }
        }
        txn.commit_unsynced()
    }

    /// One page of directory `req.ino` as
    /// [`Namespace::readdir`](crate::namespace::Namespace::readdir) lists it; with `req.open`
    /// (the first page of a listing) the directory's atime is marked first by the relatime
    /// rule at `now`, and its attributes come with the page: listing a directory takes one
    /// master call.
    pub fn read_dir(&self, req: &pb::ReadDirRequest, now: Timestamp) -> Result<pb::ReadDirReply> {
        let dir_attr = if req.open {
            let attr = self.namespace().getattr(req.ino)?;
            if attr.kind != FileKind::Directory as i32 {
                return Err(dfs_proto::FsError::NotDir.into());
            }
            Some(self.mark_access(req.ino, now)?.0)
        } else {
            None
        };
        let page = self.namespace().readdir(req.ino, &req.after, req.limit)?;
        Ok(convert::with_dir_attr(page, dir_attr))
    }

    /// Creates (or, without `exclusive`, finds) the regular file `req.node` as
    /// [`Namespace::make_node`](crate::namespace::Namespace::make_node) does, stamped `now`,
    /// and with `req.lease_holder` grants its writer lease (liveness at `clock`) in the same
    /// synced batch.
    pub fn create_file(
        &self,
        req: &pb::CreateFileRequest,
        now: Timestamp,
        clock: Instant,
    ) -> Result<pb::CreateFileReply> {
        let node = req
            .node
            .as_ref()
            .ok_or_else(|| invalid("a create names its node"))?;
        if node.kind != FileKind::Regular as i32 {
            return Err(invalid("only regular files are created open"));
        }
        if req.lease_holder.is_empty() {
            let attr = self.namespace().make_node(node, now)?;
            let dirs = self.namespace().changed_dirs(&[node.parent])?;
            return Ok(convert::created(attr, None, None, dirs));
        }
        // Placement is chosen before the transaction, which only reserves the chunk id.
        let servers = req
            .place_first_chunk
            .then(|| self.place_chunk(clock, placement_seed(node, now)))
            .flatten();
        let create = |txn: &mut Txn<'_>| {
            let attr = self.namespace().make_node_in(txn, node, now)?;
            let placed = match servers {
                Some(servers) if attr.size == 0 && txn.store().chunk(attr.ino, 0)?.is_none() => {
                    let chunk_id = self.chunk_map().reserve_chunk_id(txn)?;
                    Some(Chunk {
                        chunk_id,
                        version: FIRST_CHUNK_VERSION,
                        length: 0,
                        replicas: servers,
                        issued_version: 0,
                    })
                }
                _ => None,
            };
            Ok((attr.ino, (attr, placed)))
        };
        let (grant, (attr, placed)) =
            self.leases()
                .acquire_with(&req.lease_holder, clock, create)?;
        let lease = self.lease_reply(grant.recover);
        let first_chunk = placed.map(|chunk| self.chunk_info(0, &chunk, clock));
        let dirs = self.namespace().changed_dirs(&[node.parent])?;
        Ok(convert::created(attr, Some(lease), first_chunk, dirs))
    }

    /// What a holder is told about a lease it was granted or renewed: its time-to-live, and
    /// whether the previous holder died holding it (`recover`).
    pub fn lease_reply(&self, recover: bool) -> pb::LeaseReply {
        convert::lease_reply(self.leases().ttl(), recover)
    }
}

/// A placement seed derived from the request and its time, so that choosing a new file's
/// chunk 0 stays a function of the inputs (and creates spread over the servers).
fn placement_seed(node: &pb::MakeNodeRequest, now: Timestamp) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    (node.parent, &node.name, now.secs, now.nanos).hash(&mut hasher);
    hasher.finish()
}
