//! Re-replication: keeping every chunk at its replication factor.
//!
//! A periodic check ([`Replication::check`], driven by [`crate::background`]) walks the chunk map
//! and classifies each chunk's replicas by the state of their servers ([`ChunkHealth`]). One check
//! reads at most `scan_chunks` records, continuing where the previous one stopped, so its time and
//! memory stay bounded however large the map grows: a large map is walked over several checks (a
//! cycle), and the health counts are those of the last complete cycle.
//!
//! * **under-replicated** (fewer healthy replicas than the replication factor, at least one
//!   readable): a copy is planned, most endangered chunk first — a source holding the chunk,
//!   a target chosen by placement (free space, a rack the chunk is not on yet), and at most
//!   `max_copies_per_server` copies in flight per server as source or target. The command
//!   travels to the target in its next heartbeat reply; the target pulls the replica with
//!   `ReadChunk` and reports it in a later heartbeat ([`Replication::replicated`]), which adds
//!   it to the chunk's record. The master never moves data itself.
//! * **fully replicated**: replicas on dead or draining servers are dropped from the record
//!   and queued for deletion (a dead server deletes them when it comes back), and replicas
//!   beyond the replication factor are trimmed, from a crowded rack or the fullest server
//!   first.
//! * **missing**: no replica on a live server; nothing to copy from until one returns.
//!
//! When every chunk is healthy (in the last cycle and in this one so far) and no copy is in flight,
//! [`balance`] may plan moves from the fullest to the emptiest server among the chunks of the check
//! (copies whose surplus replica is then trimmed).
//!
//! Every record change re-reads the chunk under the writer lock and is one batch, so a
//! concurrent write commit is never overwritten. Copies in flight live in memory only: after
//! a master restart, the next check plans them again.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use dfs_proto::pb;

use crate::chunks::Chunk;
use crate::chunks::placement::{self, Candidate, PlacementPolicy};
use crate::cluster::balance;
use crate::cluster::registry::{ServerState, ServerView};
use crate::error::Result;
use crate::store::txn::Writer;

/// How the replicas of one chunk stand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkHealth {
    /// Replicas on active or stale servers: they count towards the replication factor.
    pub healthy: Vec<u64>,
    /// Replicas on draining servers: readable, but to be copied elsewhere.
    pub draining: Vec<u64>,
    /// Replicas on dead (or unknown) servers.
    pub dead: Vec<u64>,
}

impl ChunkHealth {
    /// Classifies the replicas of `chunk` by the states in `servers`.
    pub fn of(chunk: &Chunk, servers: &HashMap<u64, &ServerView>) -> ChunkHealth {
        let mut health = ChunkHealth::default();
        for &server_id in &chunk.replicas {
            match servers.get(&server_id).map(|s| s.state) {
                Some(ServerState::Active | ServerState::Stale) => health.healthy.push(server_id),
                Some(ServerState::Draining) => health.draining.push(server_id),
                _ => health.dead.push(server_id),
            }
        }
        health
    }

    /// No replica is readable.
    pub fn is_missing(&self) -> bool {
        self.healthy.is_empty() && self.draining.is_empty()
    }
}

/// Replication health of the whole cluster, as of the last check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HealthCounts {
    /// Chunks in the chunk map.
    pub chunks: u64,
    /// Chunks with fewer healthy replicas than wanted, but at least one readable.
    pub under_replicated: u64,
    /// Chunks with no readable replica.
    pub missing: u64,
    /// Chunks with more healthy replicas than wanted.
    pub over_replicated: u64,
}

/// Limits of re-replication.
#[derive(Debug, Clone, Copy)]
pub struct ReplicationLimits {
    /// Copies in flight per server, as source or target.
    pub max_copies_per_server: usize,
    /// A copy not reported done after this long is forgotten (and planned again).
    pub copy_timeout: Duration,
    /// Largest difference in disk usage (a fraction of capacity) between the fullest and the
    /// emptiest active server before replicas are moved to balance them; `None` disables it.
    pub balance_spread: Option<f64>,
    /// How old a full block report may be when it arrives: a chunk committed more recently
    /// than this may be missing from it without being lost (see [`Replication::reconcile`]).
    pub report_grace: Duration,
    /// Chunk records one check (or one page of a block report's reconciliation) reads.
    pub scan_chunks: usize,
}

/// A copy for a chunkserver to make: fetch chunk `chunk_id` at `version` from the server at
/// `source` and keep it as a replica (handed to the target with its next heartbeat reply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyCommand {
    /// The chunk to copy.
    pub chunk_id: u64,
    /// The version the copy must hold.
    pub version: u64,
    /// `host:port` of the server to copy from.
    pub source: String,
}

/// A copy handed to (or waiting for) its target.
#[derive(Debug, Clone)]
struct Copy {
    source: u64,
    target: u64,
    issued: Instant,
}

#[derive(Debug, Default)]
struct Pending {
    /// Copies in flight, by chunk id (at most one per chunk).
    copies: HashMap<u64, Copy>,
    /// Commands not yet handed out, by target server.
    outbox: HashMap<u64, Vec<CopyCommand>>,
    /// Result of the last complete cycle that began with every server heard from; `None`
    /// before one (a new leader has not yet heard every chunkserver, and until it has, a
    /// server it has not heard from counts as healthy, so "nothing under-replicated" would
    /// be a guess).
    counts: Option<HealthCounts>,
    /// Where the cycle under way stands.
    scan: Scan,
}

/// A walk over the chunk map spread over several checks.
#[derive(Debug, Default)]
struct Scan {
    /// Key (file, index) of the last chunk visited; `None` at the start of a cycle.
    cursor: Option<(u64, u64)>,
    /// Counts of the chunks visited so far.
    counts: HealthCounts,
    /// Whether every server not dead had been heard from when the cycle began.
    informed: bool,
}

/// The re-replication planner of one master.
pub struct Replication {
    writer: Writer,
    policy: PlacementPolicy,
    limits: ReplicationLimits,
    pending: Mutex<Pending>,
    /// When each chunk last had data committed, for the chunks committed within
    /// `limits.report_grace` (a std mutex: map operations only).
    committed: Mutex<HashMap<u64, Instant>>,
}

impl Replication {
    /// A planner over `writer`'s chunk map.
    pub fn new(writer: Writer, policy: PlacementPolicy, limits: ReplicationLimits) -> Replication {
        Replication {
            writer,
            policy,
            limits,
            pending: Mutex::default(),
            committed: Mutex::default(),
        }
    }

    /// Notes that data of `chunk_ids` was committed at `now` (their replicas hold it).
    pub fn committed(&self, chunk_ids: impl IntoIterator<Item = u64>, now: Instant) {
        let mut committed = self.committed.lock().unwrap_or_else(|p| p.into_inner());
        for chunk_id in chunk_ids {
            committed.insert(chunk_id, now);
        }
    }

    /// The chunks committed within the report grace before `now`; older entries go.
    fn recently_committed(&self, now: Instant) -> HashSet<u64> {
        let mut committed = self.committed.lock().unwrap_or_else(|p| p.into_inner());
        let grace = self.limits.report_grace;
        committed.retain(|_, at| now.saturating_duration_since(*at) <= grace);
        committed.keys().copied().collect()
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
        // Updates under this lock are plain map operations; a panic cannot leave it half-done.
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Health counts of the last complete, informed cycle (`None` before one), and the
    /// number of copies in flight.
    pub fn counts(&self) -> (Option<HealthCounts>, usize) {
        let pending = self.pending();
        (pending.counts, pending.copies.len())
    }

    /// One step of the walk over the chunk map (see the module documentation): tidies the
    /// fully replicated chunks of the next `scan_chunks` and plans copies for the
    /// under-replicated ones. `seed` drives placement. Returns the counts of the last complete
    /// informed cycle (this check's, if it completed one).
    pub fn check(
        &self,
        servers: &[ServerView],
        now: Instant,
        seed: u64,
    ) -> Result<Option<HealthCounts>> {
        let views: HashMap<u64, &ServerView> = servers.iter().map(|s| (s.server_id, s)).collect();
        let (busy_chunks, cursor, mut counts, informed, last_healthy) = {
            let mut pending = self.pending();
            let timeout = self.limits.copy_timeout;
            pending.copies.retain(|chunk_id, copy| {
                let alive = now.saturating_duration_since(copy.issued) < timeout;
                if !alive {
                    tracing::warn!(chunk = %format!("{chunk_id:016x}"), target = copy.target,
                        "copy not reported in time; planning it again");
                }
                alive
            });
            let busy: HashSet<u64> = pending.copies.keys().copied().collect();
            let healthy = pending
                .counts
                .is_some_and(|last| last.under_replicated == 0 && last.missing == 0);
            let informed = match pending.scan.cursor {
                Some(_) => pending.scan.informed,
                None => servers
                    .iter()
                    .all(|s| s.since_heartbeat.is_some() || s.state == ServerState::Dead),
            };
            let scan = &pending.scan;
            (busy, scan.cursor, scan.counts, informed, healthy)
        };
        let replication = self.policy.replication;
        let mut endangered = Vec::new();
        let page_size = self.limits.scan_chunks.max(1);
        let page = self.writer.store().chunks_after(cursor, page_size)?;
        let cycle_done = page.len() < page_size;
        for (ino, index, chunk) in &page {
            let (ino, index) = (*ino, *index);
            counts.chunks += 1;
            let health = ChunkHealth::of(chunk, &views);
            if health.is_missing() {
                counts.missing += 1;
            } else if health.healthy.len() < replication {
                counts.under_replicated += 1;
                if !busy_chunks.contains(&chunk.chunk_id) {
                    endangered.push((health, chunk.clone()));
                }
            } else if !busy_chunks.contains(&chunk.chunk_id) {
                if health.healthy.len() > replication {
                    counts.over_replicated += 1;
                }
                let mut drop = health.dead.clone();
                drop.extend(&health.draining);
                drop.extend(surplus(&health.healthy, replication, &views));
                if !drop.is_empty() {
                    self.drop_replicas(ino, index, chunk.chunk_id, &drop)?;
                }
            }
        }
        // Most endangered first: fewest healthy replicas.
        endangered.sort_by_key(|(health, _)| health.healthy.len());
        let mut planned = 0;
        for (i, (health, chunk)) in endangered.iter().enumerate() {
            if self.plan_copy(health, chunk, &views, now, seed.wrapping_add(i as u64)) {
                planned += 1;
            }
        }
        let healthy = counts.under_replicated == 0 && counts.missing == 0;
        if let Some(spread) = self
            .limits
            .balance_spread
            .filter(|_| healthy && last_healthy && busy_chunks.is_empty())
        {
            let moves = balance::plan_moves(
                servers,
                page.iter().map(|(_, _, c)| c),
                spread,
                self.policy.chunk_size,
                self.limits.max_copies_per_server,
            );
            for m in moves {
                self.issue_copy(m.chunk_id, m.version, m.source, m.target, &views, now);
                planned += 1;
            }
        }
        let unhealthy = counts.under_replicated > 0 || counts.missing > 0;
        if planned > 0 || (cycle_done && unhealthy) {
            tracing::info!(
                under_replicated = counts.under_replicated,
                missing = counts.missing,
                planned,
                cycle_done,
                "replication check"
            );
        }
        let mut pending = self.pending();
        if cycle_done {
            if informed {
                pending.counts = Some(counts);
            }
            pending.scan = Scan::default();
        } else {
            let cursor = page.last().map(|&(ino, index, _)| (ino, index));
            pending.scan = Scan {
                cursor,
                counts,
                informed,
            };
        }
        Ok(pending.counts)
    }

    /// Plans one copy of `chunk` if a source and a target with spare copy slots exist.
    fn plan_copy(
        &self,
        health: &ChunkHealth,
        chunk: &Chunk,
        views: &HashMap<u64, &ServerView>,
        now: Instant,
        seed: u64,
    ) -> bool {
        let pending = self.pending();
        let mut load: HashMap<u64, usize> = HashMap::new();
        for copy in pending.copies.values() {
            *load.entry(copy.source).or_default() += 1;
            *load.entry(copy.target).or_default() += 1;
        }
        let max = self.limits.max_copies_per_server;
        let has_room = |id: &u64| load.get(id).copied().unwrap_or(0) < max;
        // Prefer an active source, then a stale or draining one; the least busy of them.
        let source = health
            .healthy
            .iter()
            .chain(&health.draining)
            .filter(|id| has_room(id))
            .min_by_key(|id| {
                let active = views
                    .get(id)
                    .is_some_and(|v| v.state == ServerState::Active);
                (!active, load.get(id).copied().unwrap_or(0))
            });
        let Some(&source) = source else {
            return false;
        };
        let candidates: Vec<Candidate> = views
            .values()
            .filter(|v| v.state == ServerState::Active)
            .filter(|v| !chunk.replicas.contains(&v.server_id) && has_room(&v.server_id))
            .map(|v| Candidate {
                server_id: v.server_id,
                free_bytes: v.free_bytes,
                rack: v.rack.clone(),
            })
            .collect();
        let used_racks: Vec<&str> = health
            .healthy
            .iter()
            .filter_map(|id| views.get(id).map(|v| v.rack.as_str()))
            .collect();
        let Some(target) =
            placement::choose_extra_replica(&candidates, &used_racks, &self.policy, seed)
        else {
            return false;
        };
        tracing::info!(chunk = %format!("{:016x}", chunk.chunk_id), source, target,
            healthy = health.healthy.len(), "copying replica");
        drop(pending);
        self.issue_copy(chunk.chunk_id, chunk.version, source, target, views, now);
        true
    }

    /// Records a copy in flight and queues its command for the target's next heartbeat.
    fn issue_copy(
        &self,
        chunk_id: u64,
        version: u64,
        source: u64,
        target: u64,
        views: &HashMap<u64, &ServerView>,
        now: Instant,
    ) {
        let source_addr = views
            .get(&source)
            .map(|v| v.addr.clone())
            .unwrap_or_default();
        let mut pending = self.pending();
        let copy = Copy {
            source,
            target,
            issued: now,
        };
        pending.copies.insert(chunk_id, copy);
        let command = CopyCommand {
            chunk_id,
            version,
            source: source_addr,
        };
        pending.outbox.entry(target).or_default().push(command);
    }

    /// Drops `servers` from the record of chunk `chunk_id` (at `ino`/`index`) and queues
    /// their replicas for deletion, in one batch.
    fn drop_replicas(&self, ino: u64, index: u64, chunk_id: u64, servers: &[u64]) -> Result<()> {
        let mut txn = self.writer.begin();
        let Some(mut chunk) = txn.store().chunk(ino, index)? else {
            return Ok(());
        };
        if chunk.chunk_id != chunk_id {
            return Ok(());
        }
        chunk.replicas.retain(|id| !servers.contains(id));
        for &server_id in servers {
            txn.queue_deletion(server_id, chunk_id);
        }
        txn.put_chunk(ino, index, &chunk);
        txn.commit()?;
        tracing::info!(chunk = %format!("{chunk_id:016x}"), ?servers, "replicas dropped");
        Ok(())
    }

    /// The copy commands waiting for `server_id`, handed out once.
    pub fn take_commands(&self, server_id: u64) -> Vec<CopyCommand> {
        self.pending().outbox.remove(&server_id).unwrap_or_default()
    }

    /// Records copies `server_id` completed: each becomes a replica of its chunk if the chunk
    /// still exists at that version and the copy holds at least the committed length (a copy
    /// cut short is left to orphan collection).
    pub fn replicated(&self, server_id: u64, copies: &[pb::ChunkReplicaReport]) -> Result<()> {
        if copies.is_empty() {
            return Ok(());
        }
        {
            let mut pending = self.pending();
            for copy in copies {
                if pending
                    .copies
                    .get(&copy.chunk_id)
                    .is_some_and(|c| c.target == server_id)
                {
                    pending.copies.remove(&copy.chunk_id);
                }
            }
        }
        let mut txn = self.writer.begin();
        for copy in copies {
            let Some((ino, index)) = txn.store().chunk_owner(copy.chunk_id)? else {
                continue;
            };
            let Some(mut chunk) = txn.store().chunk(ino, index)? else {
                continue;
            };
            if chunk.chunk_id == copy.chunk_id
                && copy.version >= chunk.version
                && copy.length >= chunk.length
                && !chunk.replicas.contains(&server_id)
            {
                chunk.replicas.push(server_id);
                txn.put_chunk(ino, index, &chunk);
            }
        }
        txn.commit()
    }

    /// Forgets copies to `server_id` that failed, so the next check plans them again.
    pub fn failed(&self, server_id: u64, chunk_ids: &[u64]) {
        let mut pending = self.pending();
        for chunk_id in chunk_ids {
            if pending
                .copies
                .get(chunk_id)
                .is_some_and(|c| c.target == server_id)
            {
                pending.copies.remove(chunk_id);
            }
        }
    }

    /// Squares the chunk map with a full block report of `server_id` arriving at `now`: a
    /// chunk with committed data whose record lists the server but which the report lacks
    /// (the replica was lost, e.g. its files were removed) no longer counts the server, so
    /// the check copies it again. Left alone are chunks without committed data (their first
    /// write may still be on its way) and chunks committed within the report grace: the
    /// server listed its replicas before sending the report, and a small file's replica
    /// created and committed in between is missing from the list but not from the disk (it
    /// is in the next full report). A full scan of the chunk map, once per full report, read
    /// a page at a time.
    pub fn reconcile(
        &self,
        server_id: u64,
        reported: &[pb::ChunkReplicaReport],
        now: Instant,
    ) -> Result<()> {
        let held: HashSet<u64> = reported.iter().map(|r| r.chunk_id).collect();
        let recent = self.recently_committed(now);
        let page_size = self.limits.scan_chunks.max(1);
        let mut lost: Vec<(u64, u64, u64)> = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.writer.store().chunks_after(cursor, page_size)?;
            lost.extend(
                page.iter()
                    .filter(|(_, _, c)| {
                        c.length > 0
                            && c.replicas.contains(&server_id)
                            && !held.contains(&c.chunk_id)
                            && !recent.contains(&c.chunk_id)
                    })
                    .map(|(ino, index, c)| (*ino, *index, c.chunk_id)),
            );
            if page.len() < page_size {
                break;
            }
            cursor = page.last().map(|&(ino, index, _)| (ino, index));
        }
        if lost.is_empty() {
            return Ok(());
        }
        let mut txn = self.writer.begin();
        for &(ino, index, chunk_id) in &lost {
            let Some(mut chunk) = txn.store().chunk(ino, index)? else {
                continue;
            };
            if chunk.chunk_id == chunk_id && chunk.length > 0 {
                chunk.replicas.retain(|&id| id != server_id);
                txn.put_chunk(ino, index, &chunk);
            }
        }
        txn.commit()?;
        tracing::warn!(
            server_id,
            lost = lost.len(),
            "replicas missing from a block report"
        );
        Ok(())
    }

    /// Drops replicas `server_id` found corrupt from their chunks' records and queues them for
    /// deletion, so the next check copies a good replica instead. The last replica of a chunk
    /// is kept: a partly readable replica beats none.
    pub fn corrupt(&self, server_id: u64, chunk_ids: &[u64]) -> Result<()> {
        if chunk_ids.is_empty() {
            return Ok(());
        }
        let mut txn = self.writer.begin();
        for &chunk_id in chunk_ids {
            let Some((ino, index)) = txn.store().chunk_owner(chunk_id)? else {
                continue;
            };
            let Some(mut chunk) = txn.store().chunk(ino, index)? else {
                continue;
            };
            if !chunk.replicas.contains(&server_id) {
                continue;
            }
            if chunk.replicas.len() == 1 {
                tracing::error!(chunk = %format!("{chunk_id:016x}"), server_id,
                    "the only replica of a chunk is corrupt");
                continue;
            }
            tracing::warn!(chunk = %format!("{chunk_id:016x}"), server_id,
                "corrupt replica dropped; it will be copied again");
            chunk.replicas.retain(|&id| id != server_id);
            txn.put_chunk(ino, index, &chunk);
            txn.queue_deletion(server_id, chunk_id);
        }
        txn.commit()
    }
}

/// Which of `healthy` to trim so that `replication` remain: servers on a rack that holds
/// several replicas first, then the fullest servers.
fn surplus(healthy: &[u64], replication: usize, views: &HashMap<u64, &ServerView>) -> Vec<u64> {
    let mut keep: Vec<u64> = healthy.to_vec();
    let mut drop = Vec::new();
    while keep.len() > replication.max(1) {
        let rack_of = |id: &u64| views.get(id).map(|v| v.rack.as_str()).unwrap_or("");
        let crowded = |id: &u64| keep.iter().filter(|o| rack_of(o) == rack_of(id)).count();
        let free = |id: &u64| views.get(id).map(|v| v.free_bytes).unwrap_or(0);
        let (pos, _) = keep
            .iter()
            .enumerate()
            .max_by_key(|(_, id)| (crowded(id), u64::MAX - free(id)))
            .expect("keep is not empty");
        drop.push(keep.remove(pos));
    }
    drop
}
