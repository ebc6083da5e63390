//! [`MasterClient`]: every RPC a client makes to the masters — metadata for the data path,
//! and the admin calls of the `dfs` command — sent to the leader of the group of masters.
//!
//! The client holds one lazily connecting channel per master (see
//! [`dfs_proto::masters::MasterGroup`]) and sends every call through one retry path that
//! follows the leader: a member that is not the leader names it, a master that is down is
//! skipped for the next. While no master answers, every call fails within the RPC timeout (as
//! [`FsError::Unavailable`], i.e. EIO) and a client works again as soon as a leader is back,
//! without being restarted.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dfs_proto::FsError;
use dfs_proto::masters::{self, MasterGroup};
use dfs_proto::pb::{
    self, admin_client::AdminClient, files_client::FilesClient, locks_client::LocksClient,
    namespace_client::NamespaceClient, xattrs_client::XattrsClient,
};
use dfs_proto::tls::Tls;
use tonic::transport::{Channel, Endpoint};
use tonic::{Response, Status};

use crate::metrics::ClientMetrics;

mod admin;
mod locks;
mod xattrs;

/// Largest message accepted from a master: chunk maps of huge files and directory pages can
/// exceed tonic's 4 MiB default.
const MAX_MESSAGE_SIZE: usize = 64 << 20;

/// An endpoint for `addr` (`host:port`, or a URI) with the client's timeouts: a connect
/// timeout, a per-request timeout and HTTP/2 keepalives (so a dead peer is noticed on an idle
/// channel). With `tls`, over mutual TLS (`https`).
fn endpoint(addr: &str, timeout: Duration, tls: Option<&Tls>) -> Result<Endpoint, FsError> {
    Ok(dfs_proto::tls::endpoint(addr, tls)
        .map_err(|err| FsError::Invalid(format!("bad address {addr}: {err}")))?
        .connect_timeout(timeout)
        .timeout(timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(timeout)
        .keep_alive_while_idle(true)
        .initial_stream_window_size(4u32 << 20)
        .initial_connection_window_size(16u32 << 20))
}

/// Builds a lazily connecting channel to `addr` with the client's timeouts (over mutual TLS
/// with `tls`).
pub fn lazy_channel(addr: &str, timeout: Duration, tls: Option<&Tls>) -> Result<Channel, FsError> {
    Ok(endpoint(addr, timeout, tls)?.connect_lazy())
}

/// A lazily connecting channel to the master at `addr` (`host:port`): the client's timeouts,
/// but a short connect timeout, so a master whose host is down leaves time to try the others.
fn master_channel(addr: &str, timeout: Duration, tls: Option<&Tls>) -> Result<Channel, FsError> {
    Ok(endpoint(addr, timeout, tls)?
        .connect_timeout(masters::connect_timeout(timeout))
        .connect_lazy())
}

/// A generated client of one of the masters' services, made from a channel to a master.
trait Service {
    fn on(channel: Channel) -> Self;
}

/// Implements [`Service`] for generated clients, each accepting [`MAX_MESSAGE_SIZE`].
macro_rules! services {
    ($($client:ident),*) => {$(
        impl Service for $client<Channel> {
            fn on(channel: Channel) -> Self {
                $client::new(channel).max_decoding_message_size(MAX_MESSAGE_SIZE)
            }
        }
    )*};
}
services!(
    NamespaceClient,
    FilesClient,
    XattrsClient,
    LocksClient,
    AdminClient
);

type Namespace = NamespaceClient<Channel>;
type Files = FilesClient<Channel>;
type Xattrs = XattrsClient<Channel>;
type Locks = LocksClient<Channel>;
type Admin = AdminClient<Channel>;

/// A cheap, cloneable handle on the masters' services a client calls (`Namespace`, `Files`,
/// `Xattrs`, `Locks`, `Admin`), following the leader of the group.
#[derive(Debug, Clone)]
pub struct MasterClient {
    /// The masters and which one leads, shared by every clone so that one call that finds a
    /// new leader moves them all.
    group: Arc<MasterGroup>,
    /// The bound on one call, retries included; also the bound on retrying an allocation the
    /// master defers.
    timeout: Duration,
    /// Names this client's calls.
    requests: Arc<masters::RequestIds>,
    /// Where every call's duration is recorded.
    metrics: ClientMetrics,
    /// The certificates every connection presents and checks, if TLS is on.
    tls: Option<Tls>,
}

/// Unwraps an `AttrReply`, which always carries an attribute on success.
fn attr_of(reply: pb::AttrReply) -> Result<pb::Attr, FsError> {
    reply
        .attr
        .ok_or_else(|| FsError::Io("master replied without attributes".into()))
}

impl MasterClient {
    /// A client of the masters in `list` (`host:port` or `http://host:port`, separated by
    /// commas); connects to none yet.
    pub fn new(list: &str, timeout: Duration) -> Result<MasterClient, FsError> {
        MasterClient::with_tls(list, timeout, None)
    }

    /// As [`MasterClient::new`], over mutual TLS with `tls` (if any).
    pub fn with_tls(
        list: &str,
        timeout: Duration,
        tls: Option<Tls>,
    ) -> Result<MasterClient, FsError> {
        let connect = {
            let tls = tls.clone();
            Box::new(move |addr: &str| {
                master_channel(addr, timeout, tls.as_ref()).map_err(|err| err.to_string())
            })
        };
        let group = MasterGroup::new(list, connect).map_err(FsError::Invalid)?;
        Ok(MasterClient {
            group: Arc::new(group),
            timeout,
            requests: Arc::new(masters::RequestIds::new()),
            metrics: ClientMetrics::default(),
            tls,
        })
    }

    /// A client of the masters in `list`, with this client's TLS (to ask one member alone).
    pub fn other(&self, list: &str, timeout: Duration) -> Result<MasterClient, FsError> {
        MasterClient::with_tls(list, timeout, self.tls.clone())
    }

    /// This client, recording the duration of every call in `metrics`.
    pub fn with_metrics(mut self, metrics: ClientMetrics) -> MasterClient {
        self.metrics = metrics;
        self
    }

    /// Where this client records its calls.
    pub fn metrics(&self) -> &ClientMetrics {
        &self.metrics
    }

    /// The bound on one call, retries included.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The master believed to lead (`host:port`): the one the next call goes to first.
    pub fn leader_addr(&self) -> String {
        self.group.leader_addr()
    }

    /// Sends `req` with `rpc` on service `S` of the leader, following it (see
    /// [`MasterGroup::call`]) for up to the RPC timeout; the time it took is recorded under
    /// `method` (`Service/Method`, as the master counts it).
    ///
    /// Every try carries the call's request id, the same on each, so that the group applies
    /// a mutation retried after a failover once.
    async fn call<S, Req, T, F, Fut>(
        &self,
        method: &'static str,
        req: Req,
        rpc: F,
    ) -> Result<T, FsError>
    where
        S: Service,
        Req: Clone,
        F: Fn(S, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        let id = self.requests.next();
        let started = Instant::now();
        let answered = self
            .group
            .call(self.timeout, |channel| {
                let mut request = tonic::Request::new(req.clone());
                request
                    .metadata_mut()
                    .insert(masters::REQUEST_ID, id.clone());
                rpc(S::on(channel), request)
            })
            .await;
        self.metrics.master_call(method, started.elapsed());
        answered
    }

    /// The cluster's chunk size, block size and replication.
    pub async fn cluster_config(&self) -> Result<pb::ClusterConfig, FsError> {
        self.call(
            "Namespace/GetClusterConfig",
            pb::Empty {},
            |mut s: Namespace, r| async move { s.get_cluster_config(r).await },
        )
        .await
    }

    /// The inode named `name` in directory `parent`.
    pub async fn lookup(&self, parent: u64, name: &[u8]) -> Result<pb::Attr, FsError> {
        let req = pb::LookupRequest {
            parent,
            name: name.to_vec(),
            open_ahead: false,
        };
        attr_of(
            self.call("Namespace/Lookup", req, |mut s: Namespace, r| async move {
                s.lookup(r).await
            })
            .await?,
        )
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
        let mut reply = self
            .call("Namespace/Lookup", req, |mut s: Namespace, r| async move {
                s.lookup(r).await
            })
            .await?;
        let chunk_map = reply.chunk_map.take();
        Ok((attr_of(reply)?, chunk_map))
    }

    /// Attributes of an inode.
    pub async fn get_attr(&self, ino: u64) -> Result<pb::Attr, FsError> {
        attr_of(
            self.call(
                "Namespace/GetAttr",
                pb::GetAttrRequest { ino },
                |mut s: Namespace, r| async move { s.get_attr(r).await },
            )
            .await?,
        )
    }

    /// Changes attributes; absent fields of `req` are left alone.
    pub async fn set_attr(&self, req: pb::SetAttrRequest) -> Result<pb::Attr, FsError> {
        attr_of(
            self.call("Namespace/SetAttr", req, |mut s: Namespace, r| async move {
                s.set_attr(r).await
            })
            .await?,
        )
    }

    /// Creates a node; answers its attributes and the parent's after the change.
    pub async fn make_node(
        &self,
        req: pb::MakeNodeRequest,
    ) -> Result<(pb::Attr, Vec<pb::Attr>), FsError> {
        let mut reply = self
            .call(
                "Namespace/MakeNode",
                req,
                |mut s: Namespace, r| async move { s.make_node(r).await },
            )
            .await?;
        let dirs = std::mem::take(&mut reply.changed_dirs);
        Ok((attr_of(reply)?, dirs))
    }

    /// Removes a non-directory entry; answers the parent's attributes after the change.
    pub async fn unlink(&self, parent: u64, name: &[u8]) -> Result<Vec<pb::Attr>, FsError> {
        let req = pb::RemoveRequest {
            parent,
            name: name.to_vec(),
        };
        self.call("Namespace/Unlink", req, |mut s: Namespace, r| async move {
            s.unlink(r).await
        })
        .await
        .map(|changed| changed.dirs)
    }

    /// Removes an empty directory; answers the parent's attributes after the change.
    pub async fn rmdir(&self, parent: u64, name: &[u8]) -> Result<Vec<pb::Attr>, FsError> {
        let req = pb::RemoveRequest {
            parent,
            name: name.to_vec(),
        };
        self.call("Namespace/Rmdir", req, |mut s: Namespace, r| async move {
            s.rmdir(r).await
        })
        .await
        .map(|changed| changed.dirs)
    }

    /// Renames an entry (`flags` as for `renameat2`); answers the attributes of the one or
    /// two parents after the change.
    pub async fn rename(&self, req: pb::RenameRequest) -> Result<Vec<pb::Attr>, FsError> {
        self.call("Namespace/Rename", req, |mut s: Namespace, r| async move {
            s.rename(r).await
        })
        .await
        .map(|changed| changed.dirs)
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
        let mut reply = self
            .call("Namespace/Link", req, |mut s: Namespace, r| async move {
                s.link(r).await
            })
            .await?;
        let dirs = std::mem::take(&mut reply.changed_dirs);
        Ok((attr_of(reply)?, dirs))
    }

    /// The target of a symlink.
    pub async fn read_link(&self, ino: u64) -> Result<Vec<u8>, FsError> {
        let reply = self
            .call(
                "Namespace/ReadLink",
                pb::ReadLinkRequest { ino },
                |mut s: Namespace, r| async move { s.read_link(r).await },
            )
            .await?;
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
        self.call("Namespace/ReadDir", req, |mut s: Namespace, r| async move {
            s.read_dir(r).await
        })
        .await
    }

    /// Capacity and usage of the cluster.
    pub async fn stat_fs(&self) -> Result<pb::StatFsReply, FsError> {
        self.call(
            "Namespace/StatFs",
            pb::Empty {},
            |mut s: Namespace, r| async move { s.stat_fs(r).await },
        )
        .await
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
        self.call("Files/GetChunks", req, |mut s: Files, r| async move {
            s.get_chunks(r).await
        })
        .await
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
            match self
                .call("Files/AllocateChunk", req, |mut s: Files, r| async move {
                    s.allocate_chunk(r).await
                })
                .await
            {
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
        attr_of(
            self.call("Files/CommitWrite", req, |mut s: Files, r| async move {
                s.commit_write(r).await
            })
            .await?,
        )
    }

    /// Makes every metadata change the master acknowledged so far durable on its disk.
    pub async fn sync_metadata(&self) -> Result<(), FsError> {
        self.call(
            "Namespace/SyncMetadata",
            pb::Empty {},
            |mut s: Namespace, r| async move { s.sync_metadata(r).await },
        )
        .await
        .map(|_| ())
    }

    /// Asks for the writer lease of `ino` for `holder` (`EBUSY` while another holds it).
    pub async fn acquire_lease(&self, ino: u64, holder: &str) -> Result<pb::LeaseReply, FsError> {
        let req = pb::LeaseRequest {
            ino,
            holder: holder.to_string(),
        };
        self.call("Files/AcquireLease", req, |mut s: Files, r| async move {
            s.acquire_lease(r).await
        })
        .await
    }

    /// Extends `holder`'s lease of `ino` (`ESTALE` if it was lost).
    pub async fn renew_lease(&self, ino: u64, holder: &str) -> Result<pb::LeaseReply, FsError> {
        let req = pb::LeaseRequest {
            ino,
            holder: holder.to_string(),
        };
        self.call("Files/RenewLease", req, |mut s: Files, r| async move {
            s.renew_lease(r).await
        })
        .await
    }

    /// Gives up `holder`'s leases of `inos`, in one call.
    pub async fn release_leases(&self, inos: &[u64], holder: &str) -> Result<(), FsError> {
        let req = pb::ReleaseLeasesRequest {
            holder: holder.to_string(),
            inos: inos.to_vec(),
        };
        self.call("Files/ReleaseLeases", req, |mut s: Files, r| async move {
            s.release_leases(r).await
        })
        .await
        .map(drop)
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
            match self
                .call(
                    "Files/LeaseChunk",
                    req.clone(),
                    |mut s: Files, r| async move { s.lease_chunk(r).await },
                )
                .await
            {
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
        self.call("Files/ReplaceReplicas", req, |mut s: Files, r| async move {
            s.replace_replicas(r).await
        })
        .await
    }

    /// Tells the master that a replica is corrupt or stale.
    pub async fn report_bad_replica(
        &self,
        req: pb::ReportBadReplicaRequest,
    ) -> Result<(), FsError> {
        self.call(
            "Files/ReportBadReplica",
            req,
            |mut s: Files, r| async move { s.report_bad_replica(r).await },
        )
        .await
        .map(drop)
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
        self.call("Files/OpenFile", req, |mut s: Files, r| async move {
            s.open_file(r).await
        })
        .await
    }

    /// Applies read accesses this mount marked itself (see `crate::marks`).
    pub async fn mark_access(&self, marks: Vec<pb::AccessMark>) -> Result<(), FsError> {
        let req = pb::MarkAccessRequest { marks };
        self.call(
            "Namespace/MarkAccess",
            req,
            |mut s: Namespace, r| async move { s.mark_access(r).await },
        )
        .await
        .map(|_| ())
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
        self.call("Files/CreateFile", req, |mut s: Files, r| async move {
            s.create_file(r).await
        })
        .await
    }
}
