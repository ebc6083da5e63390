//! The `Master` gRPC service: thin handlers that unwrap a request, call [`Master`], and wrap
//! the answer ([`crate::convert`]).
//!
//! The clock is read here (and by the [`background`](crate::background) loops) and nowhere
//! below: wall-clock timestamps (`time::now()`) for namespace mutations and monotonic instants
//! for chunkserver liveness are passed down as arguments, which keeps the metadata logic
//! deterministic.
//!
//! Reads and mutations run inline on the task serving the request (see
//! [`MasterService::read`] and [`MasterService::write`]): a point read or a synced batch is
//! tens of microseconds, less than handing it to a blocking thread and back. Only long jobs
//! (heartbeats, admin walks of the whole namespace) go to the blocking pool.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::Instant;

use dfs_proto::pb::{self, master_server};
use dfs_proto::time;
use tonic::{Request, Response, Status};

use crate::admin;
use crate::convert;
use crate::error::{Error, Result};
use crate::locks::LockKind;
use crate::master::Master;

/// The gRPC face of a [`Master`].
pub struct MasterService {
    master: Arc<Master>,
}

impl MasterService {
    /// Serves `master`.
    pub fn new(master: Arc<Master>) -> MasterService {
        MasterService { master }
    }

    /// Runs a read-only `op` inline, on the task serving the request, and wraps its answer.
    ///
    /// Inline because a read is a few RocksDB point reads or one short prefix scan: memtable
    /// and block-cache work of microseconds, and it never waits for the writer lock. Handing
    /// it to a blocking thread and back cost more than the read itself (two thread wake-ups
    /// and context switches per RPC).
    fn read<T>(&self, op: impl FnOnce(&Master) -> Result<T>) -> Result<Response<T>, Status> {
        Ok(Response::new(op(&self.master)?))
    }

    /// Runs a mutation `op` inline, on the task serving the request, and wraps its answer.
    ///
    /// A mutation waits for the writer lock and for its synced `WriteBatch` (an `fdatasync`
    /// of ~60 us here). Measured per file created and unlinked (7 RPCs, 2 synced batches, on
    /// the one-worker runtime), master context switches / CPU: inline 17-19 / 530-550 us,
    /// `block_in_place` 34-37 / 610-830 us (it hands the worker's core to another thread on
    /// every call), `spawn_blocking` 29-31 / 630-760 us (two hand-offs). Inline is cheapest;
    /// its cost is that reads arriving during a sync wait for it, which the single writer lock
    /// makes other mutations do anyway. The writer lock is never held across an `.await`, so
    /// waiting for it here cannot deadlock the runtime. Group commit would not help either: a
    /// mutation holds the writer lock through its sync, and the small-file workloads issue
    /// one mutation at a time.
    fn write<T>(&self, op: impl FnOnce(&Master) -> Result<T>) -> Result<Response<T>, Status> {
        Ok(Response::new(op(&self.master)?))
    }

    /// Runs `op`, which may take long (a walk of the whole namespace, a heartbeat reconciling a
    /// server's whole replica list), on a blocking thread, so it never holds up the requests
    /// served inline.
    async fn call<T, F>(&self, op: F) -> Result<Response<T>, Status>
    where
        T: Send + 'static,
        F: FnOnce(&Master) -> Result<T> + Send + 'static,
    {
        let master = Arc::clone(&self.master);
        let reply = tokio::task::spawn_blocking(move || op(&master))
            .await
            .map_err(Error::from)??;
        Ok(Response::new(reply))
    }
}

/// A fresh random seed for placement (std's hasher keys are randomly seeded). Like the clock,
/// drawn only here and in the background loops, and passed down.
pub(crate) fn placement_seed() -> u64 {
    RandomState::new().hash_one(Instant::now())
}

#[tonic::async_trait]
impl master_server::Master for MasterService {
    async fn get_cluster_config(
        &self,
        _request: Request<pb::Empty>,
    ) -> Result<Response<pb::ClusterConfig>, Status> {
        self.read(|m| Ok(convert::cluster_config(m.cluster_config())))
    }

    async fn lookup(
        &self,
        request: Request<pb::LookupRequest>,
    ) -> Result<Response<pb::AttrReply>, Status> {
        let req = request.into_inner();
        let now = Instant::now();
        self.read(move |m| m.lookup(&req, now))
    }

    async fn get_attr(
        &self,
        request: Request<pb::GetAttrRequest>,
    ) -> Result<Response<pb::AttrReply>, Status> {
        let req = request.into_inner();
        self.read(move |m| m.namespace().getattr(req.ino).map(convert::attr_reply))
    }

    async fn set_attr(
        &self,
        request: Request<pb::SetAttrRequest>,
    ) -> Result<Response<pb::AttrReply>, Status> {
        let req = request.into_inner();
        let now = time::now();
        self.write(move |m| m.namespace().setattr(&req, now).map(convert::attr_reply))
    }

    async fn make_node(
        &self,
        request: Request<pb::MakeNodeRequest>,
    ) -> Result<Response<pb::AttrReply>, Status> {
        let req = request.into_inner();
        let now = time::now();
        self.write(move |m| {
            let attr = m.namespace().make_node(&req, now)?;
            let dirs = m.namespace().changed_dirs(&[req.parent])?;
            Ok(convert::attr_in_dirs(attr, dirs))
        })
    }

    async fn unlink(
        &self,
        request: Request<pb::RemoveRequest>,
    ) -> Result<Response<pb::ChangedDirs>, Status> {
        let req = request.into_inner();
        let now = time::now();
        self.write(move |m| {
            m.namespace().unlink(req.parent, &req.name, now)?;
            let dirs = m.namespace().changed_dirs(&[req.parent])?;
            Ok(convert::changed_dirs(dirs))
        })
    }

    async fn rmdir(
        &self,
        request: Request<pb::RemoveRequest>,
    ) -> Result<Response<pb::ChangedDirs>, Status> {
        let req = request.into_inner();
        let now = time::now();
        self.write(move |m| {
            m.namespace().rmdir(req.parent, &req.name, now)?;
            let dirs = m.namespace().changed_dirs(&[req.parent])?;
            Ok(convert::changed_dirs(dirs))
        })
    }

    async fn rename(
        &self,
        request: Request<pb::RenameRequest>,
    ) -> Result<Response<pb::ChangedDirs>, Status> {
        let r = request.into_inner();
        let now = time::now();
        self.write(move |m| {
            let ns = m.namespace();
            ns.rename(r.parent, &r.name, r.new_parent, &r.new_name, r.flags, now)?;
            let dirs = ns.changed_dirs(&[r.parent, r.new_parent])?;
            Ok(convert::changed_dirs(dirs))
        })
    }

    async fn link(
        &self,
        request: Request<pb::LinkRequest>,
    ) -> Result<Response<pb::AttrReply>, Status> {
        let req = request.into_inner();
        let now = time::now();
        self.write(move |m| {
            let ns = m.namespace();
            let attr = ns.link(req.ino, req.new_parent, &req.new_name, now)?;
            let dirs = ns.changed_dirs(&[req.new_parent])?;
            Ok(convert::attr_in_dirs(attr, dirs))
        })
    }

    async fn read_link(
        &self,
        request: Request<pb::ReadLinkRequest>,
    ) -> Result<Response<pb::ReadLinkReply>, Status> {
        let req = request.into_inner();
        self.read(move |m| m.namespace().readlink(req.ino).map(convert::link_target))
    }

    async fn read_dir(
        &self,
        request: Request<pb::ReadDirRequest>,
    ) -> Result<Response<pb::ReadDirReply>, Status> {
        let req = request.into_inner();
        let now = time::now();
        // A mutation: the first page of a listing may mark the directory's atime.
        self.write(move |m| m.read_dir(&req, now))
    }

    async fn stat_fs(
        &self,
        _request: Request<pb::Empty>,
    ) -> Result<Response<pb::StatFsReply>, Status> {
        let now = Instant::now();
        self.read(move |m| m.statfs(now).map(convert::statfs))
    }

    async fn mark_access(
        &self,
        request: Request<pb::MarkAccessRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let req = request.into_inner();
        self.write(move |m| m.mark_accesses(&req).map(convert::done))
    }

    async fn sync_metadata(
        &self,
        _request: Request<pb::Empty>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.write(|m| m.sync_metadata().map(convert::done))
    }

    async fn open_file(
        &self,
        request: Request<pb::OpenFileRequest>,
    ) -> Result<Response<pb::OpenFileReply>, Status> {
        let req = request.into_inner();
        let (now, clock) = (time::now(), Instant::now());
        self.write(move |m| m.open_file(&req, now, clock))
    }

    async fn create_file(
        &self,
        request: Request<pb::CreateFileRequest>,
    ) -> Result<Response<pb::CreateFileReply>, Status> {
        let req = request.into_inner();
        let (now, clock) = (time::now(), Instant::now());
        self.write(move |m| m.create_file(&req, now, clock))
    }

    async fn get_chunks(
        &self,
        request: Request<pb::GetChunksRequest>,
    ) -> Result<Response<pb::GetChunksReply>, Status> {
        let req = request.into_inner();
        let now = Instant::now();
        self.read(move |m| m.get_chunks(req.ino, req.first_index, req.count, now))
    }

    async fn allocate_chunk(
        &self,
        request: Request<pb::AllocateChunkRequest>,
    ) -> Result<Response<pb::ChunkInfo>, Status> {
        let req = request.into_inner();
        let (now, seed) = (Instant::now(), placement_seed());
        self.write(move |m| m.allocate_chunk(req.ino, req.index, now, seed))
    }

    async fn commit_write(
        &self,
        request: Request<pb::CommitWriteRequest>,
    ) -> Result<Response<pb::AttrReply>, Status> {
        let req = request.into_inner();
        let (now, clock) = (time::now(), Instant::now());
        self.write(move |m| m.commit_write(&req, now, clock).map(convert::attr_reply))
    }

    async fn replace_replicas(
        &self,
        request: Request<pb::ReplaceReplicasRequest>,
    ) -> Result<Response<pb::ChunkInfo>, Status> {
        let req = request.into_inner();
        let now = Instant::now();
        self.write(move |m| m.replace_replicas(&req, now))
    }

    async fn report_bad_replica(
        &self,
        request: Request<pb::ReportBadReplicaRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let req = request.into_inner();
        self.write(move |m| m.report_bad_replica(&req).map(convert::done))
    }

    async fn acquire_lease(
        &self,
        request: Request<pb::LeaseRequest>,
    ) -> Result<Response<pb::LeaseReply>, Status> {
        let req = request.into_inner();
        let now = Instant::now();
        self.write(move |m| {
            let grant = m.leases().acquire(req.ino, &req.holder, now)?;
            Ok(m.lease_reply(grant.recover))
        })
    }

    async fn renew_lease(
        &self,
        request: Request<pb::LeaseRequest>,
    ) -> Result<Response<pb::LeaseReply>, Status> {
        let req = request.into_inner();
        let now = Instant::now();
        self.write(move |m| {
            m.leases().renew(req.ino, &req.holder, now)?;
            Ok(m.lease_reply(false))
        })
    }

    async fn release_lease(
        &self,
        request: Request<pb::LeaseRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let req = request.into_inner();
        self.write(move |m| m.leases().release(req.ino, &req.holder).map(convert::done))
    }

    async fn lease_chunk(
        &self,
        request: Request<pb::LeaseChunkRequest>,
    ) -> Result<Response<pb::ChunkInfo>, Status> {
        let req = request.into_inner();
        let (now, seed) = (Instant::now(), placement_seed());
        self.write(move |m| m.lease_chunk(&req, now, seed))
    }

    async fn get_xattr(
        &self,
        request: Request<pb::XattrRequest>,
    ) -> Result<Response<pb::XattrValue>, Status> {
        let req = request.into_inner();
        self.read(move |m| {
            m.namespace()
                .get_xattr(req.ino, &req.name)
                .map(convert::xattr_value)
        })
    }

    async fn set_xattr(
        &self,
        request: Request<pb::SetXattrRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let req = request.into_inner();
        let mode = convert::xattr_mode(req.mode());
        let now = time::now();
        self.write(move |m| {
            m.namespace()
                .set_xattr(req.ino, &req.name, &req.value, mode, now)
                .map(convert::done)
        })
    }

    async fn list_xattrs(
        &self,
        request: Request<pb::GetAttrRequest>,
    ) -> Result<Response<pb::XattrNames>, Status> {
        let req = request.into_inner();
        self.read(move |m| m.namespace().list_xattrs(req.ino).map(convert::xattr_names))
    }

    async fn remove_xattr(
        &self,
        request: Request<pb::XattrRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let req = request.into_inner();
        let now = time::now();
        self.write(move |m| {
            m.namespace()
                .remove_xattr(req.ino, &req.name, now)
                .map(convert::done)
        })
    }

    async fn set_lock(
        &self,
        request: Request<pb::LockRequest>,
    ) -> Result<Response<pb::LockReply>, Status> {
        let req = request.into_inner();
        let (spec, kind) = (convert::lock_spec(&req), convert::lock_kind(req.kind()));
        let now = Instant::now();
        self.write(move |m| {
            let locks = m.locks();
            let conflict = match kind {
                Some(kind) => locks.lock(&spec, kind, now)?,
                None => locks.unlock(&spec, now).map(|()| None)?,
            };
            Ok(convert::lock_reply(conflict, locks.ttl()))
        })
    }

    async fn test_lock(
        &self,
        request: Request<pb::LockRequest>,
    ) -> Result<Response<pb::LockReply>, Status> {
        let req = request.into_inner();
        let spec = convert::lock_spec(&req);
        // A test for an unlock is answered as one for a read lock.
        let kind = convert::lock_kind(req.kind()).unwrap_or(LockKind::Read);
        let now = Instant::now();
        self.write(move |m| {
            let conflict = m.locks().test(&spec, kind, now)?;
            Ok(convert::lock_reply(conflict, m.locks().ttl()))
        })
    }

    async fn release_lock_owner(
        &self,
        request: Request<pb::LockOwnerRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let (ino, owner) = convert::lock_owner(request.into_inner());
        let now = Instant::now();
        self.write(move |m| m.locks().release_owner(ino, &owner, now).map(convert::done))
    }

    async fn renew_lock_session(
        &self,
        request: Request<pb::LockSessionRequest>,
    ) -> Result<Response<pb::LockSessionReply>, Status> {
        let req = request.into_inner();
        let now = Instant::now();
        self.write(move |m| {
            let known = m.locks().renew(&req.session, now);
            Ok(convert::lock_session_reply(known, m.locks().ttl()))
        })
    }

    async fn end_lock_session(
        &self,
        request: Request<pb::LockSessionRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let req = request.into_inner();
        let now = Instant::now();
        self.write(move |m| m.locks().end_session(&req.session, now).map(convert::done))
    }

    async fn register_chunkserver(
        &self,
        request: Request<pb::RegisterChunkserverRequest>,
    ) -> Result<Response<pb::RegisterChunkserverReply>, Status> {
        let req = request.into_inner();
        let now = Instant::now();
        self.write(move |m| m.registry().register(&req, now).map(convert::registered))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatReply>, Status> {
        let req = request.into_inner();
        let now = Instant::now();
        // A full block report is reconciled against the whole chunk map: off the runtime.
        self.call(move |m| m.heartbeat(&req, now)).await
    }

    async fn cluster_status(
        &self,
        _request: Request<pb::Empty>,
    ) -> Result<Response<pb::ClusterStatusReply>, Status> {
        let now = Instant::now();
        self.call(move |m| admin::cluster_status(m, now).map(convert::cluster_status))
            .await
    }

    async fn file_info(
        &self,
        request: Request<pb::PathRequest>,
    ) -> Result<Response<pb::FileInfoReply>, Status> {
        let req = request.into_inner();
        let now = Instant::now();
        self.call(move |m| admin::file_info(m, &req.path, now).map(convert::file_info))
            .await
    }

    async fn fsck(
        &self,
        request: Request<pb::PathRequest>,
    ) -> Result<Response<pb::FsckReply>, Status> {
        let req = request.into_inner();
        let now = Instant::now();
        self.call(move |m| admin::fsck(m, &req.path, now).map(convert::fsck_reply))
            .await
    }

    async fn decommission(
        &self,
        request: Request<pb::DecommissionRequest>,
    ) -> Result<Response<pb::ServerStatus>, Status> {
        let req = request.into_inner();
        let now = Instant::now();
        self.call(move |m| admin::decommission(m, &req.server, now).map(convert::server_status))
            .await
    }
}
