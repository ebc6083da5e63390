//! The `Files` service: the clients' data path. Opening and creating files in one call each,
//! the chunk map (where a file's data is, allocating chunks, committing writes), writer
//! leases, and replica failures found while writing or reading.

use std::time::Instant;

use dfs_proto::FsError;
use dfs_proto::pb::{self, files_server};
use dfs_proto::time;
use tonic::{Request, Response, Status};

use crate::convert;
use crate::service::{Calls, placement_seed, writable};

/// The `Files` service of a master.
pub struct FilesService {
    calls: Calls,
}

impl FilesService {
    /// Serves `calls`' master.
    pub fn new(calls: Calls) -> FilesService {
        FilesService { calls }
    }
}

#[tonic::async_trait]
impl files_server::Files for FilesService {
    async fn open_file(
        &self,
        request: Request<pb::OpenFileRequest>,
    ) -> Result<Response<pb::OpenFileReply>, Status> {
        let reader = dfs_proto::tls::peer_is_read_only(&request);
        let req = request.into_inner();
        if reader && !req.lease_holder.is_empty() {
            // A writer's open: the lease is what writing takes.
            return Err(FsError::ReadOnly.into());
        }
        let (now, clock) = (time::now(), Instant::now());
        self.calls.write(move |m| {
            let mut reply = m.open_file(&req, now, clock)?;
            if let Some(map) = reply.chunk_map.as_mut().filter(|_| reader) {
                m.read_only_tokens(&mut map.chunks);
            }
            Ok(reply)
        })
    }

    async fn create_file(
        &self,
        request: Request<pb::CreateFileRequest>,
    ) -> Result<Response<pb::CreateFileReply>, Status> {
        writable(&request)?;
        let req = request.into_inner();
        let (now, clock) = (time::now(), Instant::now());
        // A retry of an applied exclusive create finds the file it made (and takes its
        // lease again, as the same holder).
        let mut again = req.clone();
        if let Some(node) = again.node.as_mut() {
            node.exclusive = false;
        }
        self.calls.write_once(
            move |m| m.create_file(&req, now, clock),
            move |m| m.create_file(&again, now, clock),
        )
    }

    async fn get_chunks(
        &self,
        request: Request<pb::GetChunksRequest>,
    ) -> Result<Response<pb::GetChunksReply>, Status> {
        let reader = dfs_proto::tls::peer_is_read_only(&request);
        let req = request.into_inner();
        let now = Instant::now();
        self.calls.read(move |m| {
            let mut reply = m.get_chunks(req.ino, req.first_index, req.count, now)?;
            if reader {
                m.read_only_tokens(&mut reply.chunks);
            }
            Ok(reply)
        })
    }

    async fn allocate_chunk(
        &self,
        request: Request<pb::AllocateChunkRequest>,
    ) -> Result<Response<pb::ChunkInfo>, Status> {
        writable(&request)?;
        let req = request.into_inner();
        let (now, seed) = (Instant::now(), placement_seed());
        self.calls
            .write(move |m| m.allocate_chunk(req.ino, req.index, now, seed))
    }

    async fn commit_write(
        &self,
        request: Request<pb::CommitWriteRequest>,
    ) -> Result<Response<pb::AttrReply>, Status> {
        writable(&request)?;
        let req = request.into_inner();
        let (now, clock) = (time::now(), Instant::now());
        self.calls
            .write(move |m| m.commit_write(&req, now, clock).map(convert::attr_reply))
    }

    async fn replace_replicas(
        &self,
        request: Request<pb::ReplaceReplicasRequest>,
    ) -> Result<Response<pb::ChunkInfo>, Status> {
        writable(&request)?;
        let req = request.into_inner();
        let now = Instant::now();
        self.calls.write(move |m| m.replace_replicas(&req, now))
    }

    async fn report_bad_replica(
        &self,
        request: Request<pb::ReportBadReplicaRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let req = request.into_inner();
        self.calls
            .write(move |m| m.report_bad_replica(&req).map(convert::done))
    }

    async fn acquire_lease(
        &self,
        request: Request<pb::LeaseRequest>,
    ) -> Result<Response<pb::LeaseReply>, Status> {
        writable(&request)?;
        let req = request.into_inner();
        let now = Instant::now();
        self.calls.write(move |m| {
            let grant = m.leases().acquire(req.ino, &req.holder, now)?;
            Ok(m.lease_reply(grant.recover))
        })
    }

    async fn renew_lease(
        &self,
        request: Request<pb::LeaseRequest>,
    ) -> Result<Response<pb::LeaseReply>, Status> {
        writable(&request)?;
        let req = request.into_inner();
        let now = Instant::now();
        self.calls.write(move |m| {
            m.leases().renew(req.ino, &req.holder, now)?;
            Ok(m.lease_reply(false))
        })
    }

    async fn release_lease(
        &self,
        request: Request<pb::LeaseRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let req = request.into_inner();
        self.calls
            .write(move |m| m.leases().release(req.ino, &req.holder).map(convert::done))
    }

    async fn release_leases(
        &self,
        request: Request<pb::ReleaseLeasesRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let req = request.into_inner();
        self.calls.write(move |m| {
            m.leases()
                .release_many(&req.inos, &req.holder)
                .map(convert::done)
        })
    }

    async fn lease_chunk(
        &self,
        request: Request<pb::LeaseChunkRequest>,
    ) -> Result<Response<pb::ChunkInfo>, Status> {
        writable(&request)?;
        let req = request.into_inner();
        let (now, seed) = (Instant::now(), placement_seed());
        self.calls.write(move |m| m.lease_chunk(&req, now, seed))
    }
}
