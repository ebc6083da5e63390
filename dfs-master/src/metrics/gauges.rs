//! The master's gauges, read when Prometheus scrapes rather than kept up to date on every
//! call: the namespace, chunk health, leases and locks, the chunkservers, and the Raft group.
//!
//! Every reading is cheap, in memory or a single point read; nothing walks RocksDB per
//! scrape. The inode count is the counter the namespace keeps in its store, so every member
//! reports it from its own applied state. What only the leader's metadata logic knows is
//! reported by the leader alone, and absent on the other members: chunk health as of the last
//! complete replication check (which walks the chunk map in the background anyway), copies
//! in flight, leases, locks, and the chunkservers by state.

use std::sync::Arc;
use std::time::Instant;

use openraft::ServerState;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::cluster::registry::ServerState as ChunkserverState;
use crate::raft::node::Node;
use crate::store::meta;

/// Reads a member's gauges at scrape time; registered with
/// [`Registry::register_collector`](prometheus_client::registry::Registry::register_collector)
/// under the `dfs_master` prefix.
#[derive(Clone)]
pub struct MasterGauges {
    node: Arc<Node>,
}

impl std::fmt::Debug for MasterGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterGauges")
            .field("node_id", &self.node.id())
            .finish()
    }
}

impl MasterGauges {
    /// The gauges of `node`.
    pub fn new(node: Arc<Node>) -> MasterGauges {
        MasterGauges { node }
    }
}

/// Encodes one unlabelled gauge.
fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(value).encode(metric)
}

/// A count as a gauge value.
fn count(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// The label of a chunkserver's state, in operators' words.
fn state_label(state: ChunkserverState) -> &'static str {
    match state {
        ChunkserverState::Active => "live",
        ChunkserverState::Stale => "stale",
        ChunkserverState::Dead => "dead",
        ChunkserverState::Draining => "decommissioning",
    }
}

impl Collector for MasterGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let raft = self.node.raft().metrics().borrow().clone();
        gauge(
            &mut encoder,
            "raft_term",
            "Current Raft term of this member",
            count(raft.current_term),
        )?;
        let leads = raft.state == ServerState::Leader && raft.current_leader == Some(raft.id);
        gauge(
            &mut encoder,
            "raft_is_leader",
            "1 if this member leads the group of masters, else 0",
            i64::from(leads),
        )?;
        gauge(
            &mut encoder,
            "raft_commit_index",
            "Index of the last entry in this member's Raft log (openraft does not expose the \
             commit index; the applied index never exceeds it)",
            raft.last_log_index.map_or(0, count),
        )?;
        gauge(
            &mut encoder,
            "raft_applied_index",
            "Index of the last Raft entry this member applied to its metadata",
            raft.last_applied.map_or(0, |id| count(id.index)),
        )?;
        // A point read of the namespace's own counter; a failed read leaves the gauge out.
        if let Ok(inodes) = self.node.store().meta(meta::INODE_COUNT) {
            gauge(
                &mut encoder,
                "inodes",
                "Inodes in the namespace, as this member has applied it",
                count(inodes.unwrap_or(0)),
            )?;
        }
        let Some(master) = self.node.serving() else {
            return Ok(());
        };
        let (health, in_flight) = master.replication().counts();
        // Absent until the leader has checked every chunk: zeros would read as healthy.
        if let Some(health) = health {
            gauge(
                &mut encoder,
                "chunks",
                "Chunks in the chunk map, as of the last complete replication check (leader only)",
                count(health.chunks),
            )?;
            gauge(
                &mut encoder,
                "chunks_under_replicated",
                "Chunks with fewer healthy replicas than the replication factor but one readable, \
                 as of the last complete replication check (leader only)",
                count(health.under_replicated),
            )?;
            gauge(
                &mut encoder,
                "chunks_missing",
                "Chunks with no readable replica, as of the last complete replication check \
                 (leader only)",
                count(health.missing),
            )?;
        }
        gauge(
            &mut encoder,
            "copies_in_flight",
            "Replica copies commanded and not yet reported done (leader only)",
            count(in_flight),
        )?;
        gauge(
            &mut encoder,
            "leases",
            "Writer leases recorded, held or expired but not yet taken over (leader only)",
            count(master.leases().count()),
        )?;
        gauge(
            &mut encoder,
            "locks",
            "Advisory locks held, over every file (leader only)",
            count(master.locks().count()),
        )?;
        let states = [
            ChunkserverState::Active,
            ChunkserverState::Stale,
            ChunkserverState::Dead,
            ChunkserverState::Draining,
        ];
        let mut servers = [0i64; 4];
        for view in master.registry().snapshot(Instant::now()) {
            if let Some(i) = states.iter().position(|s| *s == view.state) {
                servers[i] += 1;
            }
        }
        let mut family = encoder.encode_descriptor(
            "chunkservers",
            "Registered chunkservers by state: live (heartbeating), stale (missed heartbeats), \
             dead (its replicas are copied elsewhere), decommissioning (leader only)",
            None,
            MetricType::Gauge,
        )?;
        for (state, n) in states.into_iter().zip(servers) {
            let labels = [("state", state_label(state))];
            ConstGauge::new(n).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
