//! [`MasterClient`]: every RPC a client makes to the master — metadata for the data path,
//! and the admin calls of the `dfs` command — over one lazily connecting channel.
//!
//! The channel connects on first use and reconnects by itself, so while the master is down
//! every call fails within the RPC timeout (as [`FsError::Unavailable`], i.e. EIO) and a
//! client works again as soon as the master is back, without being restarted.

use std::time::Duration;

use dfs_proto::FsError;
use dfs_proto::pb::{
    self, admin_client::AdminClient, files_client::FilesClient, locks_client::LocksClient,
    namespace_client::NamespaceClient, xattrs_client::XattrsClient,
};
use tonic::transport::{Channel, Endpoint};

/// Builds a lazily connecting channel with the client's timeouts: a connect timeout, a
/// per-request timeout and HTTP/2 keepalives (so a dead peer is noticed on an idle channel).
pub fn lazy_channel(uri: &str, timeout: Duration) -> Result<Channel, FsError> {
    let endpoint = Endpoint::from_shared(uri.to_string())
        .map_err(|err| FsError::Invalid(format!("bad address {uri}: {err}")))?
        .connect_timeout(timeout)
        .timeout(timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(timeout)
        .keep_alive_while_idle(true)
        .initial_stream_window_size(4u32 << 20)
        .initial_connection_window_size(16u32 << 20);
    Ok(endpoint.connect_lazy())
}

/// A cheap, cloneable handle on the master's services a client calls: one generated client
/// per service (`Namespace`, `Files`, `Xattrs`, `Locks`, `Admin`), all over one channel.
#[derive(Debug, Clone)]
pub struct MasterClient {
    namespace: NamespaceClient<Channel>,
    files: FilesClient<Channel>,
    xattrs: XattrsClient<Channel>,
    locks: LocksClient<Channel>,
    admin: AdminClient<Channel>,
    /// The client's RPC timeout, also the bound on retrying an allocation the master defers.
    timeout: Duration,
}

/// Unwraps an `AttrReply`, which always carries an attribute on success.
fn attr_of(reply: pb::AttrReply) -> Result<pb::Attr, FsError> {
    reply
        .attr
        .ok_or_else(|| FsError::Io("master replied without attributes".into()))
}

/// Converts a tonic result into the shared error vocabulary.
fn answer<T>(result: Result<tonic::Response<T>, tonic::Status>) -> Result<T, FsError> {
    result
        .map(tonic::Response::into_inner)
        .map_err(|status| FsError::from_status(&status))
}

impl MasterClient {
    /// A client for the master at `uri` (`http://host:port`); does not connect yet.
    pub fn new(uri: &str, timeout: Duration) -> Result<MasterClient, FsError> {
        let channel = lazy_channel(uri, timeout)?;
        // Chunk maps of huge files and directory pages can exceed tonic's 4 MiB default.
        let max = 64 << 20;
        Ok(MasterClient {
            namespace: NamespaceClient::new(channel.clone()).max_decoding_message_size(max),
            files: FilesClient::new(channel.clone()).max_decoding_message_size(max),
            xattrs: XattrsClient::new(channel.clone()).max_decoding_message_size(max),
            locks: LocksClient::new(channel.clone()).max_decoding_message_size(max),
            admin: AdminClient::new(channel).max_decoding_message_size(max),
            timeout,
        })
    }

    fn namespace(&self) -> NamespaceClient<Channel> {
        self.namespace.clone()
    }

    fn files(&self) -> FilesClient<Channel> {
        self.files.clone()
    }

    fn xattrs(&self) -> XattrsClient<Channel> {
        self.xattrs.clone()
    }

    fn locks(&self) -> LocksClient<Channel> {
        self.locks.clone()
    }

    fn admin(&self) -> AdminClient<Channel> {
        self.admin.clone()
    }

    /// The cluster's chunk size, block size and replication.
    pub async fn cluster_config(&self) -> Result<pb::ClusterConfig, FsError> {
        answer(self.namespace().get_cluster_config(pb::Empty {}).await)
    }

    /// The inode named `name` in directory `parent`.
    pub async fn lookup(&self, parent: u64, name: &[u8]) -> Result<pb::Attr, FsError> {
        let req = pb::LookupRequest {
            parent,
            name: name.to_vec(),
            open_ahead: false,
        };
        attr_of(answer(self.namespace().lookup(req).await)?)
    }

    /// Looks `name` up in `parent` for an open that may follow: a small regular file comes
    /// with its chunk map (see `LookupRequest.open_ahead`).
    pub async fn lookup_ahead(
        &self,
        parent: u64,
        name: &[u8],
    ) -> Result<(pb::Attr, Option<pb::GetChunksReply>), FsError> {
        let req = pb::LookupRequest {
            parent,
            name: name.to_vec(),
            open_ahead: true,
        };
        let mut reply = answer(self.namespace().lookup(req).await)?;
        let chunk_map = reply.chunk_map.take();
        Ok((attr_of(reply)?, chunk_map))
    }

    /// Attributes of an inode.
    pub async fn get_attr(&self, ino: u64) -> Result<pb::Attr, FsError> {
        attr_of(answer(
            self.namespace().get_attr(pb::GetAttrRequest { ino }).await,
        )?)
    }

    /// Changes attributes; absent fields of `req` are left alone.
    pub async fn set_attr(&self, req: pb::SetAttrRequest) -> Result<pb::Attr, FsError> {
        attr_of(answer(self.namespace().set_attr(req).await)?)
    }

    /// Creates a node of any kind.
    /// Creates a node; answers its attributes and the parent's after the change.
    pub async fn make_node(
        &self,
        req: pb::MakeNodeRequest,
    ) -> Result<(pb::Attr, Vec<pb::Attr>), FsError> {
        let mut reply = answer(self.namespace().make_node(req).await)?;
        let dirs = std::mem::take(&mut reply.changed_dirs);
        Ok((attr_of(reply)?, dirs))
    }

    /// Removes a non-directory entry; answers the parent's attributes after the change.
    pub async fn unlink(&self, parent: u64, name: &[u8]) -> Result<Vec<pb::Attr>, FsError> {
        let req = pb::RemoveRequest {
            parent,
            name: name.to_vec(),
        };
        answer(self.namespace().unlink(req).await).map(|changed| changed.dirs)
    }

    /// Removes an empty directory; answers the parent's attributes after the change.
    pub async fn rmdir(&self, parent: u64, name: &[u8]) -> Result<Vec<pb::Attr>, FsError> {
        let req = pb::RemoveRequest {
            parent,
            name: name.to_vec(),
        };
        answer(self.namespace().rmdir(req).await).map(|changed| changed.dirs)
    }

    /// Renames an entry (`flags` as for `renameat2`); answers the attributes of the one or
    /// two parents after the change.
    pub async fn rename(&self, req: pb::RenameRequest) -> Result<Vec<pb::Attr>, FsError> {
        answer(self.namespace().rename(req).await).map(|changed| changed.dirs)
    }

    /// Adds a hard link to `ino`; answers its attributes and the new parent's after the
    /// change.
    pub async fn link(
        &self,
        ino: u64,
        new_parent: u64,
        new_name: &[u8],
    ) -> Result<(pb::Attr, Vec<pb::Attr>), FsError> {
        let req = pb::LinkRequest {
            ino,
            new_parent,
            new_name: new_name.to_vec(),
        };
        let mut reply = answer(self.namespace().link(req).await)?;
        let dirs = std::mem::take(&mut reply.changed_dirs);
        Ok((attr_of(reply)?, dirs))
    }

    /// The target of a symlink.
    pub async fn read_link(&self, ino: u64) -> Result<Vec<u8>, FsError> {
        let reply = answer(
            self.namespace()
                .read_link(pb::ReadLinkRequest { ino })
                .await,
        )?;
        Ok(reply.target)
    }

    /// One page of a directory listing: up to `limit` entries after `after`; with `open`
    /// (the first page) also the directory's attributes, after its relatime atime mark.
    pub async fn read_dir(
        &self,
        ino: u64,
        after: &[u8],
        limit: u32,
        open: bool,
    ) -> Result<pb::ReadDirReply, FsError> {
        let req = pb::ReadDirRequest {
            ino,
            after: after.to_vec(),
            limit,
            open,
        };
        answer(self.namespace().read_dir(req).await)
    }

    /// Capacity and usage of the cluster.
    pub async fn stat_fs(&self) -> Result<pb::StatFsReply, FsError> {
        answer(self.namespace().stat_fs(pb::Empty {}).await)
    }

    /// Allocated chunks of a file from `first_index` on (`count` 0 = all), and its size.
    pub async fn get_chunks(
        &self,
        ino: u64,
        first_index: u64,
        count: u64,
    ) -> Result<pb::GetChunksReply, FsError> {
        let req = pb::GetChunksRequest {
            ino,
            first_index,
            count,
        };
        answer(self.files().get_chunks(req).await)
    }

    /// The chunk at `index` of a file, allocated with fresh replicas if it does not exist.
    ///
    /// A master that has just restarted answers `Unavailable` until its chunkservers have
    /// reported again; the allocation is retried for up to the RPC timeout, so a write right
    /// after a master restart waits a moment instead of failing.
    pub async fn allocate_chunk(&self, ino: u64, index: u64) -> Result<pb::ChunkInfo, FsError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let req = pb::AllocateChunkRequest { ino, index };
            match answer(self.files().allocate_chunk(req).await) {
                Err(FsError::Unavailable(why)) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!(ino, index, %why, "allocation deferred, retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                result => return result,
            }
        }
    }

    /// Records written chunk lengths and the file's new size; returns the new attributes.
    pub async fn commit_write(&self, req: pb::CommitWriteRequest) -> Result<pb::Attr, FsError> {
        attr_of(answer(self.files().commit_write(req).await)?)
    }

    /// Makes every metadata change the master acknowledged so far durable on its disk.
    pub async fn sync_metadata(&self) -> Result<(), FsError> {
        answer(self.namespace().sync_metadata(pb::Empty {}).await).map(|_| ())
    }

    /// Asks for the writer lease of `ino` for `holder` (`EBUSY` while another holds it).
    pub async fn acquire_lease(&self, ino: u64, holder: &str) -> Result<pb::LeaseReply, FsError> {
        let req = pb::LeaseRequest {
            ino,
            holder: holder.to_string(),
        };
        answer(self.files().acquire_lease(req).await)
    }

    /// Extends `holder`'s lease of `ino` (`ESTALE` if it was lost).
    pub async fn renew_lease(&self, ino: u64, holder: &str) -> Result<pb::LeaseReply, FsError> {
        let req = pb::LeaseRequest {
            ino,
            holder: holder.to_string(),
        };
        answer(self.files().renew_lease(req).await)
    }

    /// Gives up `holder`'s lease of `ino`.
    pub async fn release_lease(&self, ino: u64, holder: &str) -> Result<(), FsError> {
        let req = pb::LeaseRequest {
            ino,
            holder: holder.to_string(),
        };
        answer(self.files().release_lease(req).await).map(drop)
    }

    /// The chunk at `index` of a file for writing under `holder`'s lease: allocated if
    /// missing, else moved to a version of at least `min_version` the first time this lease
    /// writes it. Retried like [`allocate_chunk`](MasterClient::allocate_chunk) while a
    /// restarted master waits for its chunkservers.
    pub async fn lease_chunk(
        &self,
        ino: u64,
        index: u64,
        holder: &str,
        min_version: u64,
    ) -> Result<pb::ChunkInfo, FsError> {
        let req = pb::LeaseChunkRequest {
            ino,
            index,
            holder: holder.to_string(),
            min_version,
            ..Default::default()
        };
        self.lease_chunk_request(req).await
    }

    /// Has the master record `placed`, the chunk at `index` of `ino` that `CreateFile` placed
    /// but nobody recorded yet (see `dfs_master::chunks`), under `holder`'s lease; answers the
    /// chunk as recorded.
    pub async fn record_placed_chunk(
        &self,
        ino: u64,
        index: u64,
        holder: &str,
        placed: &pb::ChunkInfo,
    ) -> Result<pb::ChunkInfo, FsError> {
        let req = pb::LeaseChunkRequest {
            ino,
            index,
            holder: holder.to_string(),
            min_version: 0,
            placed_chunk_id: placed.chunk_id,
            placed_servers: placed.replicas.iter().map(|r| r.server_id).collect(),
        };
        self.lease_chunk_request(req).await
    }

    /// `LeaseChunk`, asked again while the master defers allocations (after its restart).
    async fn lease_chunk_request(
        &self,
        req: pb::LeaseChunkRequest,
    ) -> Result<pb::ChunkInfo, FsError> {
        let (ino, index) = (req.ino, req.index);
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            match answer(self.files().lease_chunk(req.clone()).await) {
                Err(FsError::Unavailable(why)) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!(ino, index, %why, "allocation deferred, retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                result => return result,
            }
        }
    }

    // --- Replicated data path ---

    /// Asks for a chain without the `failed` servers for a chunk whose write failed; the
    /// answer has a newer version (or is the current chunk, if another writer replaced the
    /// chain first). A writer under a lease names itself as `holder`: the master refuses
    /// (ESTALE) once another mount took the lease over.
    pub async fn replace_replicas(
        &self,
        ino: u64,
        chunk: &pb::ChunkInfo,
        failed: Vec<u64>,
        holder: Option<&str>,
    ) -> Result<pb::ChunkInfo, FsError> {
        let req = pb::ReplaceReplicasRequest {
            ino,
            index: chunk.index,
            chunk_id: chunk.chunk_id,
            version: chunk.version,
            failed,
            holder: holder.unwrap_or_default().to_string(),
        };
        answer(self.files().replace_replicas(req).await)
    }

    /// Tells the master that a replica is corrupt or stale.
    pub async fn report_bad_replica(
        &self,
        req: pb::ReportBadReplicaRequest,
    ) -> Result<(), FsError> {
        answer(self.files().report_bad_replica(req).await).map(drop)
    }

    /// The value of extended attribute `name` of `ino`.
    pub async fn get_xattr(&self, ino: u64, name: &[u8]) -> Result<Vec<u8>, FsError> {
        let req = pb::XattrRequest {
            ino,
            name: name.to_vec(),
        };
        Ok(answer(self.xattrs().get_xattr(req).await)?.value)
    }

    /// Sets extended attribute `name` of `ino`.
    pub async fn set_xattr(
        &self,
        ino: u64,
        name: &[u8],
        value: &[u8],
        mode: pb::XattrMode,
    ) -> Result<(), FsError> {
        let req = pb::SetXattrRequest {
            ino,
            name: name.to_vec(),
            value: value.to_vec(),
            mode: mode.into(),
        };
        answer(self.xattrs().set_xattr(req).await).map(drop)
    }

    /// The names of the extended attributes of `ino`.
    pub async fn list_xattrs(&self, ino: u64) -> Result<Vec<Vec<u8>>, FsError> {
        let req = pb::GetAttrRequest { ino };
        Ok(answer(self.xattrs().list_xattrs(req).await)?.names)
    }

    /// Removes extended attribute `name` of `ino`.
    pub async fn remove_xattr(&self, ino: u64, name: &[u8]) -> Result<(), FsError> {
        let req = pb::XattrRequest {
            ino,
            name: name.to_vec(),
        };
        answer(self.xattrs().remove_xattr(req).await).map(drop)
    }

    // --- small-file fast path ---

    /// Opens `ino`: attributes and chunk map in one answer; with `read`, atime marked by the
    /// relatime rule; with `lease_holder`, the writer lease granted (`EBUSY` while another
    /// holder's lease is live).
    pub async fn open_file(
        &self,
        ino: u64,
        read: bool,
        lease_holder: Option<&str>,
    ) -> Result<pb::OpenFileReply, FsError> {
        let req = pb::OpenFileRequest {
            ino,
            read,
            lease_holder: lease_holder.unwrap_or_default().to_string(),
        };
        answer(self.files().open_file(req).await)
    }

    /// Applies read accesses this mount marked itself (see `crate::marks`).
    pub async fn mark_access(&self, marks: Vec<pb::AccessMark>) -> Result<(), FsError> {
        let req = pb::MarkAccessRequest { marks };
        answer(self.namespace().mark_access(req).await).map(|_| ())
    }

    /// Creates (or finds, without `exclusive`) a regular file; with `lease_holder`, its writer
    /// lease is granted in the same call.
    pub async fn create_file(
        &self,
        node: pb::MakeNodeRequest,
        lease_holder: Option<&str>,
    ) -> Result<pb::CreateFileReply, FsError> {
        let req = pb::CreateFileRequest {
            node: Some(node),
            lease_holder: lease_holder.unwrap_or_default().to_string(),
            // A writer places chunk 0 in the same call (no allocation at the first flush).
            place_first_chunk: lease_holder.is_some(),
        };
        answer(self.files().create_file(req).await)
    }
}

// advisory locks (see `crate::locks`).
impl MasterClient {
    /// Takes, changes or drops a lock; the reply says whether another owner's lock is in
    /// the way.
    pub async fn set_lock(&self, req: pb::LockRequest) -> Result<pb::LockReply, FsError> {
        answer(self.locks().set_lock(req).await)
    }

    /// Whether a lock could be taken, and if not, which lock is in the way.
    pub async fn test_lock(&self, req: pb::LockRequest) -> Result<pb::LockReply, FsError> {
        answer(self.locks().test_lock(req).await)
    }

    /// Drops every lock of `owner` in `session` on `ino`.
    pub async fn release_lock_owner(
        &self,
        session: &str,
        ino: u64,
        owner: u64,
    ) -> Result<(), FsError> {
        let req = pb::LockOwnerRequest {
            session: session.to_string(),
            ino,
            owner,
        };
        answer(self.locks().release_lock_owner(req).await).map(drop)
    }

    /// Keeps `session` (and its locks) alive for another time-to-live.
    pub async fn renew_lock_session(&self, session: &str) -> Result<pb::LockSessionReply, FsError> {
        let req = pb::LockSessionRequest {
            session: session.to_string(),
        };
        answer(self.locks().renew_lock_session(req).await)
    }

    /// Ends `session`, dropping its locks.
    pub async fn end_lock_session(&self, session: &str) -> Result<(), FsError> {
        let req = pb::LockSessionRequest {
            session: session.to_string(),
        };
        answer(self.locks().end_lock_session(req).await).map(drop)
    }

    /// Every chunkserver with its state and capacity, and the cluster's replication health.
    pub async fn cluster_status(&self) -> Result<pb::ClusterStatusReply, FsError> {
        answer(self.admin().cluster_status(pb::Empty {}).await)
    }

    /// A file's chunks, versions and replicas, by path from the root.
    pub async fn file_info(&self, path: &str) -> Result<pb::FileInfoReply, FsError> {
        let req = pb::PathRequest {
            path: path.to_string(),
        };
        answer(self.admin().file_info(req).await)
    }

    /// The replication health of the files directly in directory `path` (or of file
    /// `path`), and the subdirectories to check next.
    pub async fn fsck(&self, path: &str) -> Result<pb::FsckReply, FsError> {
        let req = pb::PathRequest {
            path: path.to_string(),
        };
        answer(self.admin().fsck(req).await)
    }

    /// Starts draining chunkserver `server` (its id or address).
    pub async fn decommission(&self, server: &str) -> Result<pb::ServerStatus, FsError> {
        let req = pb::DecommissionRequest {
            server: server.to_string(),
        };
        answer(self.admin().decommission(req).await)
    }

    /// Has the master write a consistent copy of its metadata to `dest`, a directory on the
    /// master's machine that does not exist yet.
    pub async fn backup(&self, dest: &str) -> Result<pb::BackupReply, FsError> {
        let req = pb::BackupRequest {
            dest: dest.to_string(),
        };
        answer(self.admin().backup(req).await)
    }
}
