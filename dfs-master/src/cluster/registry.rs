//! The chunkserver registry: who the chunkservers are, which are live, how full they are, and
//! which replicas each must delete.
//!
//! A server's identity (id, address, storage uuid, rack) is persisted: a chunkserver that
//! restarts with the same data directory (same `storage_uuid`) gets its old id back, and the
//! master remembers every server across its own restarts. Load and liveness are in memory only,
//! fed by heartbeats: after a master restart a server counts as live again with its first
//! heartbeat.
//!
//! Garbage collection rides on heartbeats. Replicas of dropped chunks are queued in the
//! `deletions` column family (by the same batch that drops the chunk) and handed to their
//! server with its next heartbeat reply, then dequeued. A full block report additionally
//! returns every reported replica the master does not reference or whose version is older
//! than the master's, so a deletion lost in transit is repaired by the next full report.
//!
//! Such orphans are deleted only once they have been reported unreferenced for the orphan
//! grace period: a replica being copied for re-replication exists on its new server a moment
//! before the master records it, and nothing should race to delete it.
//!
//! Each server has a [`ServerState`]: active while it heartbeats, stale after missing
//! heartbeats for the heartbeat timeout, dead after the (longer) dead timeout, draining once
//! an operator decommissions it (persisted, so a master restart keeps draining it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dfs_proto::pb;

use crate::chunks::placement::Candidate;
use crate::cluster::throughput::DataTotals;
use crate::cluster::witness::VersionWitness;
use crate::error::Result;
use crate::metrics::MasterMetrics;
use crate::namespace::invalid;
use crate::store::meta;
use crate::store::txn::Writer;

/// The persisted identity of a chunkserver (its load is in memory only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerIdentity {
    /// `host:port` of the server's data service, updated on every registration.
    pub addr: String,
    /// Identity of the server's data directory; the same uuid always gets the same id.
    pub storage_uuid: String,
    /// Rack label used by placement; empty when racks are not configured.
    pub rack: String,
    /// Being decommissioned: its replicas are copied elsewhere and it takes no new ones.
    pub draining: bool,
}

/// Liveness and role of a chunkserver as the master sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerState {
    /// Heartbeating; takes new replicas.
    Active,
    /// Missed heartbeats but not yet dead: its replicas still count, it gets no new ones.
    Stale,
    /// Silent past the dead timeout: its replicas are copied elsewhere.
    Dead,
    /// Being decommissioned: its replicas are copied elsewhere, then dropped from it.
    Draining,
}

/// Where one replica of a chunk lives: the server, and the address of its data service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaAddr {
    /// The server's id.
    pub server_id: u64,
    /// `host:port` of the server's data service.
    pub addr: String,
}

/// What the registry answers a heartbeat with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeartbeatAnswer {
    /// Replicas the server should delete: the master no longer references them.
    pub delete_chunks: Vec<u64>,
    /// The master does not know the server: it should register again.
    pub reregister: bool,
}

/// What the master knows about one chunkserver.
#[derive(Debug, Clone)]
struct Server {
    identity: ServerIdentity,
    capacity_bytes: u64,
    free_bytes: u64,
    /// Reads, writes and copies in progress at its last heartbeat.
    active_transfers: u32,
    /// When the last heartbeat (or registration) arrived; `None` since the master started.
    last_heartbeat: Option<Instant>,
    /// Bytes read and written as of its last heartbeat (see [`crate::cluster::throughput`]);
    /// `None` until this master has heard from it.
    data: Option<DataTotals>,
}

/// Capacity summed over live chunkservers, for `statfs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClusterCapacity {
    /// Total bytes of the live servers' data directories.
    pub total_bytes: u64,
    /// Free bytes on the live servers.
    pub free_bytes: u64,
    /// Number of live servers.
    pub live_servers: u32,
}

/// The timeouts and grace periods of the registry.
#[derive(Debug, Clone, Copy)]
pub struct RegistryTimeouts {
    /// Silence after which a server is stale (gets no new replicas).
    pub heartbeat: Duration,
    /// Silence after which a server is dead (its replicas are copied elsewhere).
    pub dead: Duration,
    /// How long a replica no metadata references survives before it is deleted.
    pub orphan_grace: Duration,
}

/// One server as the replication check and the admin CLI see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerView {
    /// The server's id.
    pub server_id: u64,
    /// Its data address.
    pub addr: String,
    /// Its rack label.
    pub rack: String,
    /// Its state now.
    pub state: ServerState,
    /// Capacity from its last heartbeat.
    pub capacity_bytes: u64,
    /// Free space from its last heartbeat.
    pub free_bytes: u64,
    /// Transfers in progress at its last heartbeat (its load).
    pub active_transfers: u32,
    /// Time since its last heartbeat; `None` if not heard from since the master started.
    pub since_heartbeat: Option<Duration>,
}

/// The chunkserver registry.
///
/// Lock order: a registry mutation takes the store's writer (a [`Txn`](crate::store::txn::Txn))
/// before the in-memory `servers` lock, and never holds `servers` while waiting for the writer,
/// so the two locks cannot deadlock. `servers` is held only for short in-memory updates.
pub struct Registry {
    writer: Writer,
    heartbeat_timeout: Duration,
    /// Silence after which a server is dead and its replicas are copied elsewhere.
    dead_timeout: Duration,
    /// How long a reported replica stays unreferenced before it is deleted.
    orphan_grace: Duration,
    /// Unreferenced replicas by `(server, chunk)`, with when they were first reported so.
    orphans: Mutex<HashMap<(u64, u64), Instant>>,
    /// When this master started: for one heartbeat timeout after it, known servers that have
    /// not reported yet are presumed alive but not yet heard from (see
    /// [`Registry::awaiting_reports`]).
    started: Instant,
    servers: Mutex<HashMap<u64, Server>>,
    /// Chunk versions some replica is known to hold: no replica of a live chunk is deleted
    /// before its current version is (see [`crate::cluster::witness`]).
    witness: VersionWitness,
    /// Where the bytes the servers report moving are counted.
    metrics: Arc<MasterMetrics>,
}

impl Registry {
    /// Loads the registered servers from the store; none counts as live until it heartbeats.
    /// The bytes servers report moving are counted in `metrics`.
    pub fn open(
        writer: Writer,
        timeouts: RegistryTimeouts,
        started: Instant,
        metrics: Arc<MasterMetrics>,
    ) -> Result<Registry> {
        let servers = writer
            .store()
            .servers()?
            .into_iter()
            .map(|(id, identity)| {
                let server = Server {
                    identity,
                    capacity_bytes: 0,
                    free_bytes: 0,
                    active_transfers: 0,
                    last_heartbeat: None,
                    data: None,
                };
                (id, server)
            })
            .collect();
        Ok(Registry {
            writer,
            heartbeat_timeout: timeouts.heartbeat,
            dead_timeout: timeouts.dead.max(timeouts.heartbeat),
            orphan_grace: timeouts.orphan_grace,
            orphans: Mutex::default(),
            witness: VersionWitness::default(),
            started,
            servers: Mutex::new(servers),
            metrics,
        })
    }

    fn servers(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Server>> {
        // Updates under this lock are single assignments; a panic cannot leave it half-done.
        self.servers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a chunkserver (or re-registers a known `storage_uuid`, updating its address
    /// and rack) and returns its id. Registration counts as a heartbeat.
    pub fn register(&self, req: &pb::RegisterChunkserverRequest, now: Instant) -> Result<u64> {
        if req.addr.is_empty() || req.storage_uuid.is_empty() {
            return Err(invalid("a chunkserver needs an address and a storage uuid"));
        }
        let mut identity = ServerIdentity {
            addr: req.addr.clone(),
            storage_uuid: req.storage_uuid.clone(),
            rack: req.rack.clone(),
            draining: false,
        };
        let mut txn = self.writer.begin();
        let known = self
            .servers()
            .iter()
            .find(|(_, s)| s.identity.storage_uuid == req.storage_uuid)
            .map(|(&id, s)| {
                // A decommissioned server that restarts keeps draining.
                identity.draining = s.identity.draining;
                (id, s.identity == identity)
            });
        let server_id = match known {
            Some((id, true)) => id,
            Some((id, false)) => {
                txn.put_server(id, &identity);
                id
            }
            None => {
                let id = txn.next_id(meta::NEXT_SERVER_ID, 1)?;
                txn.put_server(id, &identity);
                id
            }
        };
        txn.commit()?;
        let server = Server {
            identity,
            capacity_bytes: req.capacity_bytes,
            free_bytes: req.free_bytes,
            active_transfers: 0,
            last_heartbeat: Some(now),
            // A server registers as it starts, before it has moved any data.
            data: Some(DataTotals::default()),
        };
        self.servers().insert(server_id, server);
        tracing::info!(server_id, addr = %req.addr, uuid = %req.storage_uuid, "chunkserver registered");
        Ok(server_id)
    }

    /// Takes a heartbeat: records load and liveness, and answers with the replicas the server
    /// should delete (see the module documentation). An unknown server is told to register.
    pub fn heartbeat(&self, req: &pb::HeartbeatRequest, now: Instant) -> Result<HeartbeatAnswer> {
        {
            let mut servers = self.servers();
            let Some(server) = servers.get_mut(&req.server_id) else {
                return Ok(HeartbeatAnswer {
                    delete_chunks: Vec::new(),
                    reregister: true,
                });
            };
            server.capacity_bytes = req.capacity_bytes;
            server.free_bytes = req.free_bytes;
            server.active_transfers = req.active_transfers;
            server.last_heartbeat = Some(now);
            let reported = DataTotals {
                read: req.bytes_read_total,
                written: req.bytes_written_total,
            };
            let moved = DataTotals::delta(server.data.replace(reported), reported);
            self.metrics.record_data(moved.read, moved.written);
        }

        for replica in &req.chunks {
            self.witness.confirm(replica.chunk_id, replica.version);
        }
        let mut delete_chunks = Vec::new();
        if req.full_report {
            let mut garbage = Vec::new();
            for replica in &req.chunks {
                if self.is_garbage(req.server_id, replica)? {
                    garbage.push(replica.chunk_id);
                }
            }
            delete_chunks = self.expired_orphans(req.server_id, &garbage, now);
        }
        // Most heartbeats find the queue empty; only a non-empty one needs the writer (and is
        // read again under it, so two heartbeats of one server never hand out an entry twice).
        if !self.writer.store().deletions(req.server_id)?.is_empty() {
            let mut txn = self.writer.begin();
            for chunk_id in txn.store().deletions(req.server_id)? {
                // Held back (still queued) while no replica is known at the chunk's version.
                if self.current_version_unconfirmed(chunk_id)? {
                    continue;
                }
                txn.dequeue_deletion(req.server_id, chunk_id);
                delete_chunks.push(chunk_id);
            }
            txn.commit()?;
        }
        delete_chunks.sort_unstable();
        delete_chunks.dedup();
        if !delete_chunks.is_empty() {
            tracing::debug!(
                server_id = req.server_id,
                count = delete_chunks.len(),
                "replicas to delete"
            );
        }
        Ok(HeartbeatAnswer {
            delete_chunks,
            reregister: false,
        })
    }

    /// Whether a replica reported by `server_id` is garbage: its chunk is not in any file,
    /// the master knows a newer version of it, or the chunk's record does not list the server
    /// (the replica was trimmed, drained or replaced while the server was away). A replica of
    /// a live chunk is garbage only once some replica is known at the chunk's current version
    /// (see [`crate::cluster::witness`]).
    fn is_garbage(&self, server_id: u64, replica: &pb::ChunkReplicaReport) -> Result<bool> {
        let store = self.writer.store();
        let Some((ino, index)) = store.chunk_owner(replica.chunk_id)? else {
            return Ok(true);
        };
        Ok(match store.chunk(ino, index)? {
            Some(chunk) if chunk.chunk_id == replica.chunk_id => {
                (replica.version < chunk.version || !chunk.replicas.contains(&server_id))
                    && self.witness.is_confirmed(chunk.chunk_id, chunk.version)
            }
            _ => true,
        })
    }

    /// Whether `chunk_id` belongs to a file at a version no replica is known to hold yet: then
    /// none of its replicas may be deleted, old ones are all there is.
    fn current_version_unconfirmed(&self, chunk_id: u64) -> Result<bool> {
        let store = self.writer.store();
        let Some((ino, index)) = store.chunk_owner(chunk_id)? else {
            self.witness.forget(chunk_id);
            return Ok(false);
        };
        Ok(store.chunk(ino, index)?.is_some_and(|chunk| {
            chunk.chunk_id == chunk_id && !self.witness.is_confirmed(chunk_id, chunk.version)
        }))
    }

    /// Chunk versions known to be held by some replica.
    pub fn witness(&self) -> &VersionWitness {
        &self.witness
    }

    /// Of the replicas a full report of `server_id` found unreferenced (`garbage`), those
    /// unreferenced for the orphan grace period; forgets orphans that are no longer garbage.
    fn expired_orphans(&self, server_id: u64, garbage: &[u64], now: Instant) -> Vec<u64> {
        let mut orphans = self
            .orphans
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        orphans.retain(|&(server, chunk), _| server != server_id || garbage.contains(&chunk));
        let mut expired = Vec::new();
        for &chunk_id in garbage {
            let first_seen = *orphans.entry((server_id, chunk_id)).or_insert(now);
            if now.saturating_duration_since(first_seen) >= self.orphan_grace {
                orphans.remove(&(server_id, chunk_id));
                expired.push(chunk_id);
            }
        }
        expired
    }

    fn is_live(&self, server: &Server, now: Instant) -> bool {
        server
            .last_heartbeat
            .is_some_and(|seen| now.saturating_duration_since(seen) <= self.heartbeat_timeout)
    }

    /// The state of `server` at `now`. A server not heard from since the master started is
    /// stale, not dead, until the dead timeout has passed since the start: a master restart
    /// must not set off re-replication of everything.
    fn state(&self, server: &Server, now: Instant) -> ServerState {
        let silence = now.saturating_duration_since(server.last_heartbeat.unwrap_or(self.started));
        if silence > self.dead_timeout {
            ServerState::Dead
        } else if server.identity.draining {
            ServerState::Draining
        } else if server.last_heartbeat.is_none() || silence > self.heartbeat_timeout {
            ServerState::Stale
        } else {
            ServerState::Active
        }
    }

    /// Every registered server with its state, in id order.
    pub fn snapshot(&self, now: Instant) -> Vec<ServerView> {
        let servers = self.servers();
        let mut views: Vec<ServerView> = servers
            .iter()
            .map(|(&server_id, s)| ServerView {
                server_id,
                addr: s.identity.addr.clone(),
                rack: s.identity.rack.clone(),
                state: self.state(s, now),
                capacity_bytes: s.capacity_bytes,
                free_bytes: s.free_bytes,
                active_transfers: s.active_transfers,
                since_heartbeat: s
                    .last_heartbeat
                    .map(|seen| now.saturating_duration_since(seen)),
            })
            .collect();
        views.sort_by_key(|v| v.server_id);
        views
    }

    /// Marks a server draining (persisted): it takes no new replicas, and the replication
    /// check copies its replicas elsewhere. `server` is an id or an address.
    pub fn decommission(&self, server: &str) -> Result<u64> {
        let mut txn = self.writer.begin();
        let found = self
            .servers()
            .iter()
            .find(|(id, s)| id.to_string() == server || s.identity.addr == server)
            .map(|(&id, s)| (id, s.identity.clone()));
        let Some((server_id, mut identity)) = found else {
            return Err(dfs_proto::FsError::NotFound.into());
        };
        identity.draining = true;
        txn.put_server(server_id, &identity);
        txn.commit()?;
        if let Some(s) = self.servers().get_mut(&server_id) {
            s.identity.draining = true;
        }
        tracing::info!(server_id, addr = %identity.addr, "chunkserver decommissioned: draining");
        Ok(server_id)
    }

    /// Whether the master has just started and some registered servers have not reported
    /// since: their silence says nothing yet, so a placement that finds too few live servers
    /// should be retried shortly rather than fail with ENOSPC (as HDFS's safe mode).
    pub fn awaiting_reports(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.started) < self.heartbeat_timeout
            && self.servers().values().any(|s| s.last_heartbeat.is_none())
    }

    /// The live servers that take new replicas (not draining), as placement candidates.
    pub fn candidates(&self, now: Instant) -> Vec<Candidate> {
        self.servers()
            .iter()
            .filter(|(_, s)| self.is_live(s, now) && !s.identity.draining)
            .map(|(&server_id, s)| Candidate {
                server_id,
                free_bytes: s.free_bytes,
                rack: s.identity.rack.clone(),
            })
            .collect()
    }

    /// Addresses of the replicas on `server_ids`: live servers first, each group in the given
    /// (chain) order. Servers the registry has never heard of are left out.
    pub fn locations(&self, server_ids: &[u64], now: Instant) -> Vec<ReplicaAddr> {
        let servers = self.servers();
        let known = server_ids
            .iter()
            .filter_map(|id| servers.get(id).map(|s| (*id, s)));
        let (live, dead): (Vec<_>, Vec<_>) = known.partition(|(_, s)| self.is_live(s, now));
        live.into_iter()
            .chain(dead)
            .map(|(server_id, s)| ReplicaAddr {
                server_id,
                addr: s.identity.addr.clone(),
            })
            .collect()
    }

    /// Capacity of the live servers.
    pub fn capacity(&self, now: Instant) -> ClusterCapacity {
        let servers = self.servers();
        let mut capacity = ClusterCapacity::default();
        for server in servers.values().filter(|s| self.is_live(s, now)) {
            capacity.total_bytes += server.capacity_bytes;
            capacity.free_bytes += server.free_bytes;
            capacity.live_servers += 1;
        }
        capacity
    }

    /// The id of the server registered with `storage_uuid`, if any.
    pub fn server_id(&self, storage_uuid: &str) -> Option<u64> {
        let servers = self.servers();
        servers
            .iter()
            .find(|(_, s)| s.identity.storage_uuid == storage_uuid)
            .map(|(&id, _)| id)
    }
}
