//! The master's gRPC services, one file each, split by who calls them and why:
//!
//! * [`namespace`] — `Namespace`: clients' names and attributes.
//! * [`files`] — `Files`: clients' data path (open, create, chunk map, leases, replicas).
//! * [`xattrs`] — `Xattrs`: extended attributes.
//! * [`locks`] — `Locks`: advisory locks.
//! * [`registry`] — `Registry`: chunkservers' registration and heartbeats.
//! * [`admin`] — `Admin`: the `dfs` command.
//! * [`raft`] — `Raft`: the other masters of the group.
//!
//! Every call passes two tower layers: [`request_id`] (a retried mutation is applied once)
//! and [`metrics`] (every call timed and counted by method).
//!
//! All serve one [`Node`] on one listener ([`router`]). Only the leader's node has a
//! [`Master`]; on any other member a call is refused with the leader's address
//! ([`dfs_proto::masters::not_leader`]), but for `Raft` and the group's status. A handler only unwraps its
//! request, calls the master, and wraps the answer ([`crate::convert`]). The clock is read
//! here (and by the [`background`](crate::background) loops) and nowhere below: wall-clock
//! timestamps (`time::now()`) for namespace mutations and monotonic instants for chunkserver
//! liveness, leases and lock sessions are passed down as arguments, as are placement seeds,
//! which keeps the metadata logic deterministic.
//!
//! Reads and mutations run inline on the task serving the request (see [`Calls::read`] and
//! [`Calls::write`]): a point read is microseconds, and a mutation waits for its commit by the
//! group on this thread, less costly than handing it to a blocking thread and back. Only long jobs (heartbeats, admin walks of the
//! whole namespace) go to the blocking pool ([`Calls::blocking`]).

pub mod admin;
pub mod files;
pub mod locks;
pub mod metrics;
pub mod namespace;
pub mod raft;
pub mod registry;
pub mod request_id;
pub mod xattrs;

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::Instant;

use dfs_proto::pb::admin_server::AdminServer;
use dfs_proto::pb::files_server::FilesServer;
use dfs_proto::pb::locks_server::LocksServer;
use dfs_proto::pb::namespace_server::NamespaceServer;
use dfs_proto::pb::raft_server::RaftServer;
use dfs_proto::pb::registry_server::RegistryServer;
use dfs_proto::pb::xattrs_server::XattrsServer;
use dfs_proto::tls::{Role, require_role};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;
use tonic::transport::server::Router;
use tonic::{Request, Response, Status};

use crate::error::{Error, Result};
use crate::master::Master;
use crate::metrics::MasterMetrics;
use crate::raft::node::Node;

/// The layers every call passes through: its request id made available to the handler, and
/// the call timed and counted.
pub type Layers = tower_layer::Stack<
    metrics::MetricsLayer,
    tower_layer::Stack<request_id::RequestIdLayer, tower_layer::Identity>,
>;

/// Every master service over `node`, added to `server`, each call counted in `metrics` (if
/// any): what [`run`](crate::run) serves.
pub fn router(
    server: Server,
    node: &Arc<Node>,
    metrics: Option<Arc<MasterMetrics>>,
) -> Router<Layers> {
    let calls = Calls::new(Arc::clone(node));
    let tls = node.tls().is_some();
    // Snapshots travel in pieces of a few MiB, above tonic's default message limit.
    let raft = RaftServer::new(raft::RaftService::new(node.raft().clone()))
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    let raft = InterceptedService::new(raft, RoleCheck::new(tls, &[Role::Master]));
    let mut server = server
        .layer(request_id::RequestIdLayer)
        .layer(metrics::MetricsLayer::new(metrics));
    server
        .add_service(raft)
        .add_service(NamespaceServer::new(namespace::NamespaceService::new(
            calls.clone(),
        )))
        .add_service(FilesServer::new(files::FilesService::new(calls.clone())))
        .add_service(XattrsServer::new(xattrs::XattrsService::new(calls.clone())))
        .add_service(LocksServer::new(locks::LocksService::new(calls.clone())))
        .add_service(InterceptedService::new(
            RegistryServer::new(registry::RegistryService::new(calls.clone())),
            RoleCheck::new(tls, &[Role::Chunkserver]),
        ))
        .add_service(AdminServer::new(admin::AdminService::new(calls)))
}

/// Refuses a change asked by a client whose certificate is read-only (`EROFS`): a read-only
/// export is the master's to enforce, whatever the mount was told. Its reads get read-only
/// chunk tokens ([`Master::read_only_tokens`](crate::master::Master::read_only_tokens)), so
/// no chunkserver takes its writes either.
pub(crate) fn writable<T>(request: &Request<T>) -> std::result::Result<(), Status> {
    if dfs_proto::tls::peer_is_read_only(request) {
        return Err(dfs_proto::FsError::ReadOnly.into());
    }
    Ok(())
}

/// Admits a call to a service only some roles may use (Raft: masters; Registry:
/// chunkservers) when its peer's certificate names one of them. Without TLS there is no
/// certificate to read and every call passes, as every call did before TLS.
#[derive(Clone)]
struct RoleCheck {
    tls: bool,
    allowed: &'static [Role],
}

impl RoleCheck {
    fn new(tls: bool, allowed: &'static [Role]) -> RoleCheck {
        RoleCheck { tls, allowed }
    }
}

impl tonic::service::Interceptor for RoleCheck {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if self.tls {
            require_role(&request, self.allowed)?;
        }
        Ok(request)
    }
}

/// A fresh random seed for placement (std's hasher keys are randomly seeded). Like the clock,
/// drawn only here and in the background loops, and passed down.
pub(crate) fn placement_seed() -> u64 {
    RandomState::new().hash_one(Instant::now())
}

/// The member as every service holds it, with the ways a handler runs a call on its
/// leader's [`Master`]. Cheap to clone.
#[derive(Clone)]
pub struct Calls {
    node: Arc<Node>,
}

impl Calls {
    /// Calls on `node`.
    pub fn new(node: Arc<Node>) -> Calls {
        Calls { node }
    }

    /// The member itself (the group's status and membership).
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Runs a read-only `op` inline, on the task serving the request, and wraps its answer.
    ///
    /// Inline because a read is a few RocksDB point reads or one short prefix scan: memtable
    /// and block-cache work of microseconds, and it never waits for the writer lock. Handing
    /// it to a blocking thread and back cost more than the read itself (two thread wake-ups
    /// and context switches per RPC).
    ///
    /// Only the leader answers, under its lease (see [`crate::raft::node`]).
    pub fn read<T>(&self, op: impl FnOnce(&Master) -> Result<T>) -> Result<Response<T>, Status> {
        let master = self.node.leader_for_read()?;
        Ok(Response::new(op(&master)?))
    }

    /// Runs a mutation `op` inline, on the task serving the request, and wraps its answer.
    ///
    /// A mutation waits for the writer lock and for its commit: a majority of the group has
    /// it in its log (a synced write, an `fdatasync` of ~60 us here, unless deferred) and this
    /// member has applied it. openraft runs on its own runtime, so blocking this thread for
    /// that cannot starve it. Measured per file created and unlinked (7 RPCs, 2 synced batches, on
    /// the one-worker runtime), master context switches / CPU: inline 17-19 / 530-550 us,
    /// `block_in_place` 34-37 / 610-830 us (it hands the worker's core to another thread on
    /// every call), `spawn_blocking` 29-31 / 630-760 us (two hand-offs). Inline is cheapest;
    /// its cost is that reads arriving during a sync wait for it, which the single writer lock
    /// makes other mutations do anyway. The writer lock is never held across an `.await`, so
    /// waiting for it here cannot deadlock the runtime. Group commit would not help either: a
    /// mutation holds the writer lock through its sync, and the small-file workloads issue
    /// one mutation at a time.
    pub fn write<T>(&self, op: impl FnOnce(&Master) -> Result<T>) -> Result<Response<T>, Status> {
        let master = self.node.leader()?;
        Ok(Response::new(op(&master)?))
    }

    /// Runs a mutation `op` that must not be applied twice (creates, removals, renames,
    /// links) as [`Calls::write`] does, once per request id: a retry of a call that was
    /// applied (its reply lost in a failover) is answered by `replay`, from the state, instead
    /// (see [`Writer::once`](crate::store::Writer::once)). Calls without a request id run `op`.
    pub fn write_once<T: prost::Message + Default>(
        &self,
        op: impl FnOnce(&Master) -> Result<T>,
        replay: impl FnOnce(&Master) -> Result<T>,
    ) -> Result<Response<T>, Status> {
        let master = self.node.leader()?;
        let reply = match request_id::current() {
            Some(id) => {
                let now_ms = dfs_proto::time::unix_millis();
                let encode = |reply: &T| reply.encode_to_vec();
                let decode = |bytes: &[u8]| {
                    T::decode(bytes).map_err(|e| Error::Corrupt {
                        cf: crate::store::CF_REPLIES,
                        detail: e.to_string(),
                    })
                };
                let writer = master.writer();
                writer.once(
                    &id,
                    now_ms,
                    || op(&master),
                    (encode, decode),
                    || replay(&master),
                )?
            }
            None => op(&master)?,
        };
        Ok(Response::new(reply))
    }

    /// Runs `op`, which may take long (a walk of the whole namespace, a heartbeat reconciling a
    /// server's whole replica list), on a blocking thread, so it never holds up the requests
    /// served inline.
    pub async fn blocking<T, F>(&self, op: F) -> Result<Response<T>, Status>
    where
        T: Send + 'static,
        F: FnOnce(&Master) -> Result<T> + Send + 'static,
    {
        let master = self.node.leader()?;
        let reply = tokio::task::spawn_blocking(move || op(&master))
            .await
            .map_err(Error::from)??;
        Ok(Response::new(reply))
    }
}
