//! The chunkserver's side of the master protocol: fetching the cluster configuration,
//! registering, and the heartbeat loop.
//!
//! * Registration names this server's address, rack and storage uuid (so a restarted server
//!   gets its old identity back) and is retried with backoff while no master answers.
//! * Every interval a heartbeat reports capacity, free space and replica count. The first
//!   heartbeat after registering, and then every `full_report_every`-th, carries a full block
//!   report: every replica with its version and length.
//! * The reply names replicas to delete (the master no longer references them) and may ask
//!   the server to register again (the master forgot it, e.g. after its registry was reset).
//! * Cluster management: a heartbeat also reports repair outcomes (copies finished, corrupt
//!   replicas found by the scrubber), and its reply may command copies from other servers,
//!   which the [`Copier`] runs in the background.
//!
//! Every call goes to the leader of the group of masters (`--master a,b,c`) through
//! [`MasterGroup`]: a member that is not the leader names it and the call goes there at once,
//! within the same heartbeat. An unreachable master is never fatal: the server keeps serving
//! reads and writes and keeps trying, logging the outage once rather than on every attempt.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use dfs_proto::FsError;
use dfs_proto::masters::{self, MasterGroup};
use dfs_proto::pb::registry_client::RegistryClient;
use dfs_proto::pb::{
    ChunkReplicaReport, ClusterConfig, Empty, HeartbeatRequest, RegisterChunkserverRequest,
};
use dfs_proto::tls::Tls;
use dfs_proto::token::TokenVerifier;
use tokio::task;
use tokio::time::{MissedTickBehavior, interval, sleep};
use tonic::transport::Channel;
use tracing::{debug, info, warn};

use crate::error::{Error, Result};
use crate::metrics::ChunkserverMetrics;
use crate::net::{MAX_MESSAGE_SIZE, endpoint};
use crate::repair::{Copier, RepairReports};
use crate::shutdown::Shutdown;
use crate::store::{ChunkStore, ReplicaInfo};

/// First wait before retrying a failed call to the master.
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// While the master stays unreachable, log every this many failed attempts.
const LOG_EVERY_FAILURES: u32 = 20;

/// A client of the masters' `Registry` service (all a chunkserver asks them), following their
/// leader, with the configured timeouts.
#[derive(Debug, Clone)]
pub struct Master {
    /// The masters as configured, for messages.
    list: String,
    group: Arc<MasterGroup>,
    /// The bound on one call, following the leader included.
    rpc_timeout: Duration,
}

impl Master {
    /// A client of the masters in `list` (`host:port` or URIs, separated by commas).
    /// Connects on first use; every call fails after `rpc_timeout` instead of hanging on
    /// masters that do not answer. With `tls`, over mutual TLS.
    pub fn new(list: &str, rpc_timeout: Duration, tls: Option<Tls>) -> Result<Master> {
        let connect = Box::new(move |addr: &str| {
            endpoint(addr, masters::connect_timeout(rpc_timeout), tls.as_ref())
                .map(|endpoint| endpoint.timeout(rpc_timeout).connect_lazy())
                .map_err(|e| e.to_string())
        });
        let group = MasterGroup::new(list, connect)
            .map_err(|e| Error::Config(format!("bad master address {list:?}: {e}")))?;
        Ok(Master {
            list: list.to_string(),
            group: Arc::new(group),
            rpc_timeout,
        })
    }

    /// The master believed to lead (`host:port`).
    pub fn leader_addr(&self) -> String {
        self.group.leader_addr()
    }

    /// Sends a `Registry` call built by `rpc` to the leader, following it for up to the RPC
    /// timeout (see [`MasterGroup::call`]).
    async fn call<T, F, Fut>(&self, rpc: F) -> Result<T, FsError>
    where
        F: Fn(RegistryClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.group
            .call(self.rpc_timeout, |channel| {
                rpc(RegistryClient::new(channel)
                    .max_decoding_message_size(MAX_MESSAGE_SIZE)
                    .max_encoding_message_size(MAX_MESSAGE_SIZE))
            })
            .await
    }

    /// The cluster's chunk and block sizes, retried until the master answers. `None` if
    /// shutdown came first.
    pub async fn cluster_config(&self, shutdown: &mut Shutdown) -> Option<ClusterConfig> {
        retry(
            "get the cluster configuration from the master",
            shutdown,
            || self.call(|mut client| async move { client.get_cluster_config(Empty {}).await }),
        )
        .await
        .ok()
    }

    fn error(&self, cause: FsError) -> Error {
        Error::Master {
            addr: self.list.clone(),
            cause,
        }
    }
}

/// What the master is told about this server when it registers.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Address clients and other chunkservers use to reach this server.
    pub addr: String,
    /// Rack label for placement.
    pub rack: String,
}

/// How often to heartbeat and to send full block reports.
#[derive(Debug, Clone, Copy)]
pub struct HeartbeatSchedule {
    /// Time between heartbeats.
    pub interval: Duration,
    /// Heartbeats between full block reports.
    pub full_report_every: u32,
}

/// The registration and heartbeat state of one chunkserver.
#[derive(Debug)]
pub struct Heartbeater {
    master: Master,
    store: ChunkStore,
    registration: Registration,
    schedule: HeartbeatSchedule,
    /// Runs the copies the master commands.
    copier: Copier,
    /// Repair outcomes waiting for the next heartbeat.
    reports: RepairReports,
    /// The id the master gave at the last registration.
    server_id: u64,
    /// Heartbeats left until the next full block report; 0 means the next one is full.
    beats_until_full: u32,
    /// Consecutive failed heartbeats, to log an outage once.
    failures: u32,
    /// Where the bytes read and written since start come from, for the master.
    metrics: ChunkserverMetrics,
    /// Takes the chunk-token keys each registration and heartbeat reply brings.
    tokens: Arc<TokenVerifier>,
}

impl Heartbeater {
    /// A heartbeater that has not registered yet.
    pub fn new(
        master: Master,
        store: ChunkStore,
        registration: Registration,
        schedule: HeartbeatSchedule,
        copier: Copier,
        reports: RepairReports,
    ) -> Heartbeater {
        Heartbeater {
            master,
            store,
            registration,
            schedule,
            copier,
            reports,
            server_id: 0,
            beats_until_full: 0,
            failures: 0,
            metrics: ChunkserverMetrics::default(),
            tokens: Arc::default(),
        }
    }

    /// Hands the chunk-token keys the master sends to `tokens` (which the data service checks
    /// tokens with).
    pub fn with_tokens(mut self, tokens: Arc<TokenVerifier>) -> Heartbeater {
        self.tokens = tokens;
        self
    }

    /// Reports the byte totals of `metrics` with every heartbeat (the master's view of the
    /// cluster's throughput).
    pub fn with_metrics(mut self, metrics: ChunkserverMetrics) -> Heartbeater {
        self.metrics = metrics;
        self
    }

    /// Registers with the master, retrying with backoff until it answers. Returns the
    /// server id, or `None` if shutdown came first.
    pub async fn register(&mut self, shutdown: &mut Shutdown) -> Option<u64> {
        let master = &self.master;
        let (store, registration, tokens) = (&self.store, &self.registration, &self.tokens);
        let server_id = retry("register with the master", shutdown, || async move {
            let request = registration_request(store, registration)
                .await
                .map_err(|e| FsError::Io(e.to_string()))?;
            master
                .call(|mut client| {
                    let request = request.clone();
                    async move { client.register_chunkserver(request).await }
                })
                .await
                .map(|reply| {
                    tokens.update(&reply.token_keys);
                    reply.server_id
                })
        })
        .await
        .ok()?;
        info!(server_id, addr = %self.registration.addr, storage_uuid = %self.store.storage_uuid(),
            "registered with the master");
        self.server_id = server_id;
        self.beats_until_full = 0;
        Some(server_id)
    }

    /// Sends heartbeats every interval until shutdown, acting on the replies.
    pub async fn run(mut self, mut shutdown: Shutdown) {
        let mut ticker = interval(self.schedule.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.wait() => return,
            }
            match self.beat().await {
                Ok(reregister) => {
                    if self.failures > 0 {
                        info!(failures = self.failures, "master reachable again");
                        // It may have restarted and lost what it knew: report everything.
                        self.beats_until_full = 0;
                    }
                    self.failures = 0;
                    if reregister {
                        info!("the master does not know this server; registering again");
                        if self.register(&mut shutdown).await.is_none() {
                            return;
                        }
                    }
                }
                Err(err) => {
                    if self.failures % LOG_EVERY_FAILURES == 0 {
                        warn!(error = %err, failures = self.failures + 1, "heartbeat failed");
                    }
                    self.failures += 1;
                }
            }
        }
    }

    /// One heartbeat; returns whether the master asked to register again.
    async fn beat(&mut self) -> Result<bool> {
        let full_report = self.beats_until_full == 0;
        let store = self.store.clone();
        let (usage, replicas) = task::spawn_blocking(move || {
            let replicas = if full_report {
                store.list()
            } else {
                Vec::new()
            };
            store.usage().map(|usage| (usage, replicas))
        })
        .await??;
        let outcomes = self.reports.take();
        let (bytes_read_total, bytes_written_total) = self.metrics.data_totals();
        let request = HeartbeatRequest {
            server_id: self.server_id,
            capacity_bytes: usage.capacity_bytes,
            free_bytes: usage.free_bytes,
            chunk_count: usage.replica_count,
            chunks: replicas.into_iter().map(ChunkReplicaReport::from).collect(),
            full_report,
            replicated: outcomes.replicated.clone(),
            corrupt_chunks: outcomes.corrupt.iter().copied().collect(),
            failed_copies: outcomes.failed.clone(),
            active_transfers: self.store.active_transfers(),
            bytes_read_total,
            bytes_written_total,
        };
        let sent = self
            .master
            .call(|mut client| {
                let request = request.clone();
                async move { client.heartbeat(request).await }
            })
            .await;
        let reply = match sent {
            Ok(reply) => reply,
            Err(cause) => {
                self.reports.restore(outcomes);
                return Err(self.master.error(cause));
            }
        };
        self.tokens.update(&reply.token_keys);
        self.beats_until_full = if full_report {
            self.schedule.full_report_every
        } else {
            self.beats_until_full - 1
        };
        if !reply.delete_chunks.is_empty() {
            self.delete(reply.delete_chunks).await;
        }
        for command in reply.replicate {
            self.copier.start(command);
        }
        Ok(reply.reregister)
    }

    /// Deletes the replicas the master no longer references.
    async fn delete(&self, chunk_ids: Vec<u64>) {
        let store = self.store.clone();
        let deleted = task::spawn_blocking(move || {
            for chunk_id in chunk_ids {
                let chunk = format!("{chunk_id:016x}");
                match store.delete(chunk_id) {
                    Ok(true) => info!(%chunk, "deleted replica the master no longer references"),
                    Ok(false) => debug!(%chunk, "master asked to delete a replica we do not have"),
                    Err(err) => warn!(%chunk, error = %err, "could not delete replica"),
                }
            }
        })
        .await;
        if let Err(err) = deleted {
            warn!(error = %err, "replica deletion task failed");
        }
    }
}

impl From<ReplicaInfo> for ChunkReplicaReport {
    fn from(replica: ReplicaInfo) -> ChunkReplicaReport {
        ChunkReplicaReport {
            chunk_id: replica.chunk_id,
            version: replica.version,
            length: replica.length,
        }
    }
}

/// The registration request with current capacity figures.
async fn registration_request(
    store: &ChunkStore,
    registration: &Registration,
) -> Result<RegisterChunkserverRequest> {
    let usage = {
        let store = store.clone();
        task::spawn_blocking(move || store.usage()).await??
    };
    Ok(RegisterChunkserverRequest {
        addr: registration.addr.clone(),
        storage_uuid: store.storage_uuid().to_string(),
        rack: registration.rack.clone(),
        capacity_bytes: usage.capacity_bytes,
        free_bytes: usage.free_bytes,
    })
}

/// Calls `attempt` until it succeeds, with exponential backoff, logging the first failure
/// and then every [`LOG_EVERY_FAILURES`]-th. `Err` carries the last failure if shutdown came
/// first.
async fn retry<T, F, Fut>(what: &str, shutdown: &mut Shutdown, mut attempt: F) -> Result<T, FsError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, FsError>>,
{
    let mut delay = INITIAL_BACKOFF;
    let mut failures = 0u32;
    loop {
        let err = match attempt().await {
            Ok(value) => {
                if failures > 0 {
                    info!(failures, "{what}: succeeded after retrying");
                }
                return Ok(value);
            }
            Err(err) => err,
        };
        if failures % LOG_EVERY_FAILURES == 0 {
            warn!(error = %err, failures = failures + 1, "could not {what}; retrying");
        }
        failures += 1;
        tokio::select! {
            _ = sleep(delay) => {}
            _ = shutdown.wait() => return Err(err),
        }
        delay = (delay * 2).min(MAX_BACKOFF);
    }
}
