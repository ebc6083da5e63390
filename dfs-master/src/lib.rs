//! `dfs-master`: the metadata server of dfs.
//!
//! The master owns everything about the filesystem except file data: the namespace (inodes and
//! directory entries), the chunk map (which chunks make up a file and where their replicas
//! live), and the registry of chunkservers. Clients ask it where data is, then move the data
//! straight to and from chunkservers.
//!
//! A tour, bottom up:
//! * [`store`] — the RocksDB schema: one column family per key space, fixed-width big-endian
//!   keys ([`store::keys`]) so a directory listing or a file's chunk list is one prefix scan;
//!   the on-disk records, versioned and private to the master ([`store::records`]); and
//!   [`store::txn`], a mutation in progress: mutations are serialised on one writer lock and
//!   applied as one atomic `WriteBatch`, synced at once or, for changes of names and lengths,
//!   within `--metadata-sync-interval-ms` and at a client's `fsync`.
//! * [`namespace`] — POSIX namespace operations (rename, permissions, extended attributes)
//!   as a deterministic state machine: the caller passes in the time and credentials.
//! * [`chunks`] — the chunk map: allocation and write commits, opening and creating files in
//!   one call, writer leases, replica changes on the data path, and placement.
//! * [`locks`] — advisory locks (`fcntl`, `flock`) across mounts, by mount session,
//!   served from memory and written through to RocksDB.
//! * [`cluster`] — the chunkservers: registry (registration, heartbeats, liveness, garbage
//!   collection), re-replication, balancing, and the witness of replica versions.
//! * [`admin`] — what the `dfs` admin CLI asks: cluster status, file health, fsck.
//! * [`master`] — the [`Master`] handle tying these together; what the services, the
//!   background loops and the tests call. It exists only on the leader of the group.
//! * [`raft`] — the masters as a Raft group (openraft): the log and the state machine on
//!   RocksDB, the transport between masters, and this member's [`Node`](raft::node::Node),
//!   which proposes the leader's mutations and follows who leads.
//! * [`convert`] — every translation between the wire contract and the master's own types.
//! * [`service`] — the six thin tonic services (`Namespace`, `Files`, `Xattrs`, `Locks`,
//!   `Registry`, `Admin`), one file each, all on one listener.
//! * [`http`] — the HTTP service on `--http-listen`: metrics, the JSON API, the dashboard.
//! * [`metrics`] — what `/metrics` exposes, and the running totals the dashboard samples.
//! * [`background`] — the leader's periodic replication check.
//! * [`config`] and [`error`] — settings (clap options) and the crate's error type.
//!
//! Only [`service`] and [`background`] read the clock or draw placement seeds; everything
//! below takes them as arguments. A mutation ends as a [`Command`](store::command::Command):
//! the key writes the leader decided, which every member applies in log order.
//!
//! [`run`] serves a master on a listener until a shutdown signal; `main` and the tests both
//! call it.

#![warn(missing_docs)]

pub mod admin;
pub mod background;
pub mod chunks;
pub mod cluster;
pub mod config;
pub mod convert;
pub mod error;
pub mod http;
pub mod locks;
pub mod master;
pub mod metrics;
pub mod namespace;
pub mod raft;
pub mod service;
pub mod store;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::metrics::MasterMetrics;
use crate::metrics::gauges::MasterGauges;
use crate::raft::node::Node;

pub use crate::config::Config;
pub use crate::error::{Error, Result};
pub use crate::master::Master;

/// Serves a master with `config` on `listener` until `shutdown` completes, then drains
/// in-flight requests, stops openraft and syncs the database.
///
/// The database is opened and the member joins its group before anything is served. A group
/// of one waits until it leads (a new cluster is initialised by then); only then is
/// `config.addr_file` written, so whoever waits for that file finds a master ready to answer.
/// A member of a larger group writes it once it serves, whoever leads: clients follow the
/// leader from any member.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    // Before anything else: a master without certificates or --insecure starts nothing.
    let tls = config
        .tls
        .load()
        .map_err(|err| Error::Config(err.to_string()))?;
    let local_addr = listener.local_addr()?;
    let addr_file = config.addr_file.clone();
    let data_dir = config.data_dir.clone();
    let http_listener = config.http.bind().await?;
    let mut registry = Registry::default();
    let metrics = Arc::new(MasterMetrics::new(&mut registry));
    let node = Node::start(&config, local_addr, Arc::clone(&metrics), tls.clone()).await?;
    registry
        .sub_registry_with_prefix("dfs_master")
        .register_collector(Box::new(MasterGauges::new(Arc::clone(&node))));
    let registry = Arc::new(registry);
    if !config.join && node.alone().await {
        node.wait_leading(Duration::from_secs(30)).await?;
    }
    if let Some(path) = &addr_file {
        write_addr_file(path, local_addr)?;
    }
    tracing::info!(%local_addr, data_dir = %data_dir.display(), node_id = node.id(), "master serving");
    // Metadata calls are small request/response pairs: without TCP_NODELAY, Nagle's
    // algorithm would hold replies back for tens of milliseconds.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let shutdown = shutdown.shared();
    let http_server = http_listener.map(|listener| {
        let metrics = Arc::clone(&metrics);
        let history = Arc::new(http::history::History::new(config.history_interval()));
        tokio::spawn(Arc::clone(&history).sample(Arc::clone(&metrics), shutdown.clone()));
        let state = http::HttpState::new(
            Arc::clone(&node),
            metrics,
            history,
            http::API_RPC_TIMEOUT,
            config.tls.clone(),
        );
        tokio::spawn(dfs_proto::http::serve(
            listener,
            http::router(state, registry),
            shutdown.clone(),
        ))
    });
    // Calls are timed only where something can read the figures: over HTTP.
    let call_metrics = http_server.is_some().then_some(metrics);
    let mut server = Server::builder();
    if let Some(tls) = &tls {
        server = server
            .tls_config(tls.server())
            .map_err(|err| Error::Config(format!("TLS: {err}")))?;
    }
    let served = service::router(server, &node, call_metrics)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    if let Some(http_server) = http_server {
        match http_server.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "HTTP service failed"),
            Err(err) => tracing::warn!(error = %err, "HTTP service panicked"),
        }
    }
    node.shutdown().await;
    served?;
    tracing::info!("master stopped");
    Ok(())
}

/// Writes `addr` to `path` atomically (see [`dfs_proto::http::write_addr_file`]).
fn write_addr_file(path: &Path, addr: SocketAddr) -> Result<()> {
    Ok(dfs_proto::http::write_addr_file(path, addr)?)
}
