//! dfs chunkserver: stores chunk replicas on local disk and serves them.
//!
//! A tour, in the order data flows:
//!
//! * [`store`] — replicas on disk: a data file plus a sidecar with the version, the length and
//!   a CRC32C per block, so a small read verifies one block. [`ChunkStore`] is the one
//!   handle every other part uses; its operations are blocking and run in `spawn_blocking`,
//!   except small reads and writes, done inline where the thread hand-offs would cost more.
//! * [`chain`] — the pipelined chain write: a `WriteChunk` stream is written locally and
//!   forwarded to the next replica at the same time; the reply waits for the whole chain.
//! * [`service`] — the `Chunkserver` gRPC service: thin handlers over the two above, and the
//!   streaming read.
//! * [`heartbeat`] — the master protocol: cluster configuration, registration, heartbeats with
//!   block reports, deleting the replicas the master no longer references.
//! * [`repair`] — copying replicas from other chunkservers on the master's command
//!   (re-replication), and the repair outcomes heartbeats report.
//! * [`scrub`] — the background scrubber that re-verifies replicas at a bounded rate.
//! * [`metrics`] — what `/metrics` exposes: bytes moved, request durations, corruption
//!   found, scrub progress and disk usage.
//! * [`net`] — transport settings shared by the server and its clients, and the pool of
//!   connections to other chunkservers.
//! * [`config`] and [`error`] — the command-line options and the crate's one error type.
//!
//! [`run`] puts it together (what `main` and the integration tests start); [`serve`] is the
//! data service alone, without a master, for tests of reads and chain writes.

pub mod chain;
pub mod config;
pub mod error;
pub mod heartbeat;
pub mod metrics;
pub mod net;
pub mod repair;
pub mod scrub;
pub mod service;
pub mod shutdown;
pub mod store;

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use dfs_proto::pb::ClusterConfig;
use dfs_proto::tls::Tls;
use dfs_proto::token::TokenVerifier;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::task;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tracing::{info, warn};

pub use crate::chain::ChainTimeouts;
pub use crate::config::Config;
pub use crate::error::{Error, Result};
pub use crate::store::{ChunkStore, StoreOptions};

use crate::heartbeat::{HeartbeatSchedule, Heartbeater, Master, Registration};
use crate::metrics::ChunkserverMetrics;
use crate::net::{CONNECTION_WINDOW, Peers, STREAM_WINDOW};
use crate::repair::{Copier, RepairReports};
use crate::service::ChunkserverService;
use crate::shutdown::Shutdown;

/// Runs a chunkserver until `shutdown` completes: asks the master for the cluster
/// configuration, opens the store, serves the data service on `listener`, registers, writes
/// the address file (so its existence means "ready"), and heartbeats. A master that is down
/// delays startup (retried, logged) but is never fatal.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    // Before anything else: a chunkserver without certificates or --insecure starts nothing.
    let tls = config
        .tls
        .load()
        .map_err(|err| Error::Config(err.to_string()))?;
    let mut stop = Shutdown::new(shutdown);
    let mut registry = Registry::default();
    // The store opens once the master has sent the cluster's layout; its gauges wait for it.
    let opened = Arc::new(OnceLock::new());
    let http = config
        .http
        .bind()
        .await
        .map_err(|e| Error::io("serve HTTP", e))?;
    let metrics = if http.is_some() {
        ChunkserverMetrics::new(&mut registry, Arc::clone(&opened))
    } else {
        ChunkserverMetrics::untimed()
    };
    let registry = Arc::new(registry);
    if let Some(http) = http {
        let mut http_stop = stop.clone();
        let router = dfs_proto::http::metrics_router(Arc::clone(&registry));
        tokio::spawn(async move {
            let stopped = async move { http_stop.wait().await };
            if let Err(err) = dfs_proto::http::serve(http, router, stopped).await {
                warn!(error = %err, "HTTP service failed");
            }
        });
    }
    let bound = listener
        .local_addr()
        .map_err(|e| Error::io("read the bound address", e))?;
    let advertise = config
        .advertise
        .clone()
        .unwrap_or_else(|| bound.to_string());
    if config.advertise.is_none() && bound.ip().is_unspecified() {
        warn!(%bound, "listening on a wildcard address without --advertise: \
            the master will hand out an address other hosts cannot reach");
    }

    let master = Master::new(&config.master, config.rpc_timeout(), tls.clone())?;
    info!(master = %config.master, "asking the master for the cluster configuration");
    let Some(cluster) = master.cluster_config(&mut stop).await else {
        return Ok(());
    };
    let options = store_options(&cluster, config.capacity_bytes)?;
    let data_dir = config.data_dir.clone();
    let store = task::spawn_blocking(move || ChunkStore::open(data_dir, options)).await??;
    info!(data_dir = %config.data_dir.display(), storage_uuid = %store.storage_uuid(),
        replicas = store.list().len(), block_size = options.block_size, "store opened");
    let _ = opened.set(store.clone());

    let timeouts = ChainTimeouts {
        rpc: config.rpc_timeout(),
        idle: config.write_idle_timeout(),
    };
    let reports = RepairReports::default();
    // Filled by registration and heartbeats; until the first, requests are answered UNAVAILABLE
    // (clients turn to another replica).
    let tokens = Arc::new(TokenVerifier::default());
    let service = ChunkserverService::new(store.clone(), timeouts)
        .with_tokens(Arc::clone(&tokens))
        .with_repair_reports(reports.clone())
        .with_metrics(metrics.clone())
        .with_peer_tls(tls.clone());
    let mut server_stop = stop.clone();
    let mut server = tokio::spawn(serve_service(service, listener, tls.clone(), async move {
        server_stop.wait().await
    }));
    info!(listen = %bound, advertise = %advertise, "serving");

    let registration = Registration {
        addr: advertise,
        rack: config.rack.clone(),
    };
    let schedule = HeartbeatSchedule {
        interval: config.heartbeat_interval(),
        full_report_every: config.full_report_every,
    };
    let peers = Arc::new(Peers::new(config.rpc_timeout()).with_tls(tls));
    let copier = Copier::new(
        store.clone(),
        peers,
        config.max_copies as usize,
        reports.clone(),
        metrics.clone(),
    );
    tokio::spawn(scrub::run(
        store.clone(),
        reports.clone(),
        config.scrub_bytes_per_sec,
        metrics.clone(),
        stop.clone(),
    ));
    let mut heartbeater = Heartbeater::new(master, store, registration, schedule, copier, reports)
        .with_metrics(metrics)
        .with_tokens(tokens);
    let addr_file = config.addr_file.clone();
    let heartbeats = async move {
        if heartbeater.register(&mut stop).await.is_none() {
            return Ok(());
        }
        if let Some(path) = addr_file {
            write_addr_file(&path, &bound.to_string())?;
        }
        heartbeater.run(stop).await;
        Ok::<_, Error>(())
    };
    tokio::select! {
        served = &mut server => {
            // The server only ends on its own if it failed.
            return served?;
        }
        registered = heartbeats => registered?,
    }

    // Shutdown: let requests in flight finish, within bounds.
    match tokio::time::timeout(config.rpc_timeout(), &mut server).await {
        Ok(served) => served??,
        Err(_) => {
            warn!("requests still running at shutdown; stopping them");
            server.abort();
        }
    }
    info!("stopped");
    Ok(())
}

/// Serves the data service of `store` on `listener` until `shutdown` completes, then lets
/// requests in flight finish, checking chunk tokens with the keys of `tokens`. Needs no
/// master: [`run`] adds registration and heartbeats, which bring the keys.
pub async fn serve(
    store: ChunkStore,
    timeouts: ChainTimeouts,
    tokens: Arc<TokenVerifier>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    serve_service(
        ChunkserverService::new(store, timeouts).with_tokens(tokens),
        listener,
        None,
        shutdown,
    )
    .await
}

/// Serves `service` on `listener` until `shutdown` completes.
/// Serves `service` on `listener` until `shutdown`; with `tls`, only to peers presenting a
/// certificate of the cluster's CA (clients, chunkservers, and masters' API clients alike).
async fn serve_service(
    service: ChunkserverService,
    listener: TcpListener,
    tls: Option<Tls>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    // Small write acknowledgements and read pieces should not wait for Nagle.
    let incoming = TcpListenerStream::new(listener).map(|conn| {
        if let Ok(conn) = &conn {
            let _ = conn.set_nodelay(true);
        }
        conn
    });
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = &tls {
        server = server
            .tls_config(tls.server())
            .map_err(|e| Error::Config(format!("TLS: {e}")))?;
    }
    server
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .add_service(service.into_server())
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}

/// The store layout the cluster asks for, checked for sanity.
fn store_options(cluster: &ClusterConfig, capacity_limit: Option<u64>) -> Result<StoreOptions> {
    let block_size = u64::from(cluster.block_size);
    if block_size == 0 || cluster.chunk_size == 0 || cluster.chunk_size % block_size != 0 {
        return Err(Error::Config(format!(
            "the master announced chunk size {} and block size {block_size}; \
             the block size must be non-zero and divide the chunk size",
            cluster.chunk_size
        )));
    }
    Ok(StoreOptions {
        block_size,
        chunk_size: cluster.chunk_size,
        capacity_limit,
    })
}

/// Writes `addr` to `path` via a temporary file and a rename, so a reader never sees half
/// a line.
fn write_addr_file(path: &Path, addr: &str) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, format!("{addr}\n"))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| Error::io(format!("write address file {}", path.display()), e))
}
