//! The master's gRPC services, one file each, split by who calls them and why:
//!
//! * [`namespace`] — `Namespace`: clients' names and attributes.
//! * [`files`] — `Files`: clients' data path (open, create, chunk map, leases, replicas).
//! * [`xattrs`] — `Xattrs`: extended attributes.
//! * [`locks`] — `Locks`: advisory locks.
//! * [`registry`] — `Registry`: chunkservers' registration and heartbeats.
//! * [`admin`] — `Admin`: the `dfs` command.
//!
//! All six serve one [`Master`] on one listener ([`router`]). A handler only unwraps its
//! request, calls the master, and wraps the answer ([`crate::convert`]). The clock is read
//! here (and by the [`background`](crate::background) loops) and nowhere below: wall-clock
//! timestamps (`time::now()`) for namespace mutations and monotonic instants for chunkserver
//! liveness, leases and lock sessions are passed down as arguments, as are placement seeds,
//! which keeps the metadata logic deterministic.
//!
//! Reads and mutations run inline on the task serving the request (see [`Calls::read`] and
//! [`Calls::write`]): a point read or a synced batch is tens of microseconds, less than
//! handing it to a blocking thread and back. Only long jobs (heartbeats, admin walks of the
//! whole namespace) go to the blocking pool ([`Calls::blocking`]).

pub mod admin;
pub mod files;
pub mod locks;
pub mod namespace;
pub mod registry;
pub mod xattrs;

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::Instant;

use dfs_proto::pb::admin_server::AdminServer;
use dfs_proto::pb::files_server::FilesServer;
use dfs_proto::pb::locks_server::LocksServer;
use dfs_proto::pb::namespace_server::NamespaceServer;
use dfs_proto::pb::registry_server::RegistryServer;
use dfs_proto::pb::xattrs_server::XattrsServer;
use tonic::transport::Server;
use tonic::transport::server::Router;
use tonic::{Response, Status};

use crate::error::{Error, Result};
use crate::master::Master;

/// Every master service over `master`, added to `server`: what [`run`](crate::run) serves.
pub fn router(server: &mut Server, master: &Arc<Master>) -> Router {
    let calls = Calls::new(Arc::clone(master));
    server
        .add_service(NamespaceServer::new(namespace::NamespaceService::new(
            calls.clone(),
        )))
        .add_service(FilesServer::new(files::FilesService::new(calls.clone())))
        .add_service(XattrsServer::new(xattrs::XattrsService::new(calls.clone())))
        .add_service(LocksServer::new(locks::LocksService::new(calls.clone())))
        .add_service(RegistryServer::new(registry::RegistryService::new(
            calls.clone(),
        )))
        .add_service(AdminServer::new(admin::AdminService::new(calls)))
}

/// A fresh random seed for placement (std's hasher keys are randomly seeded). Like the clock,
/// drawn only here and in the background loops, and passed down.
pub(crate) fn placement_seed() -> u64 {
    RandomState::new().hash_one(Instant::now())
}

/// The master as every service holds it, with the ways a handler runs a call on it. Cheap to
/// clone.
#[derive(Clone)]
pub struct Calls {
    master: Arc<Master>,
}

impl Calls {
    /// Calls on `master`.
    pub fn new(master: Arc<Master>) -> Calls {
        Calls { master }
    }

    /// Runs a read-only `op` inline, on the task serving the request, and wraps its answer.
    ///
    /// Inline because a read is a few RocksDB point reads or one short prefix scan: memtable
    /// and block-cache work of microseconds, and it never waits for the writer lock. Handing
    /// it to a blocking thread and back cost more than the read itself (two thread wake-ups
    /// and context switches per RPC).
    pub fn read<T>(&self, op: impl FnOnce(&Master) -> Result<T>) -> Result<Response<T>, Status> {
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
    pub fn write<T>(&self, op: impl FnOnce(&Master) -> Result<T>) -> Result<Response<T>, Status> {
        Ok(Response::new(op(&self.master)?))
    }

    /// Runs `op`, which may take long (a walk of the whole namespace, a heartbeat reconciling a
    /// server's whole replica list), on a blocking thread, so it never holds up the requests
    /// served inline.
    pub async fn blocking<T, F>(&self, op: F) -> Result<Response<T>, Status>
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
