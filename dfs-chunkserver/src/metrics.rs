//! What a chunkserver's `/metrics` exposes: the data it moves, how long its requests take,
//! the corruption it finds, the scrubber's progress, and its disk.
//!
//! One [`ChunkserverMetrics`], a cheap handle (every metric is shared by its clones), is
//! given to whoever counts: the service (reads, request durations), the chain writer (local
//! replica bytes of writes, whether they come from a client or from the server upstream in
//! the chain), the copier (re-replication), and the scrubber. Counting is a few atomic
//! additions; the histograms of each operation are created up front, so a request never
//! looks its labels up. Disk usage and the replica count are read from the store when
//! Prometheus scrapes ([`StoreGauges`]).
//!
//! The byte totals also go to the master with every heartbeat, which turns them into the
//! cluster's throughput; so a chunkserver that serves no HTTP still counts, but times no
//! request ([`ChunkserverMetrics::untimed`]).

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use dfs_proto::http::DURATION_BUCKETS;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::store::ChunkStore;

/// A request of the data service, as the `op` label names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `ReadChunk`: from the request until its last piece is handed to the network.
    Read,
    /// `WriteChunk`: from the request until the whole chain acknowledged it.
    Write,
    /// `StatReplica`.
    Stat,
}

impl Op {
    /// Every operation, in the order of [`ChunkserverMetrics`]' histograms (their
    /// discriminants).
    const ALL: [Op; 3] = [Op::Read, Op::Write, Op::Stat];

    fn label(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Write => "write",
            Op::Stat => "stat",
        }
    }
}

/// The `op` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    op: &'static str,
}

/// Every metric a chunkserver counts; clones share them.
#[derive(Debug, Clone)]
pub struct ChunkserverMetrics {
    read_bytes: Counter,
    written_bytes: Counter,
    reads: Counter,
    writes: Counter,
    durations: Family<OpLabels, Histogram>,
    /// The histogram of each [`Op`], taken from `durations` once.
    by_op: [Histogram; 3],
    checksum_failures: Counter,
    scrubbed_bytes: Counter,
    scrub_passes: Counter,
    /// Whether requests are timed.
    timed: bool,
}

impl Default for ChunkserverMetrics {
    /// Metrics no registry exposes (a data service started without a process around it, in
    /// tests); they count as usual.
    fn default() -> ChunkserverMetrics {
        let durations: Family<OpLabels, Histogram> =
            Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS));
        let by_op = Op::ALL.map(|op| {
            durations
                .get_or_create(&OpLabels { op: op.label() })
                .clone()
        });
        ChunkserverMetrics {
            read_bytes: Counter::default(),
            written_bytes: Counter::default(),
            reads: Counter::default(),
            writes: Counter::default(),
            durations,
            by_op,
            checksum_failures: Counter::default(),
            scrubbed_bytes: Counter::default(),
            scrub_passes: Counter::default(),
            timed: true,
        }
    }
}

impl ChunkserverMetrics {
    /// New metrics, registered in `registry` under the `dfs_chunkserver` prefix, with the
    /// gauges of the store `store` will hold once it is open.
    pub fn new(registry: &mut Registry, store: Arc<OnceLock<ChunkStore>>) -> ChunkserverMetrics {
        let metrics = ChunkserverMetrics::default();
        let registry = registry.sub_registry_with_prefix("dfs_chunkserver");
        registry.register(
            "read_bytes",
            "Bytes read from local replicas for readers (clients, and servers copying a \
             replica)",
            metrics.read_bytes.clone(),
        );
        registry.register(
            "written_bytes",
            "Bytes written to local replicas: client writes, chain writes from the server \
             upstream, and copies",
            metrics.written_bytes.clone(),
        );
        registry.register("reads", "ReadChunk requests", metrics.reads.clone());
        registry.register("writes", "WriteChunk requests", metrics.writes.clone());
        registry.register(
            "request_duration_seconds",
            "Time to serve a data request, by operation (read: until its last piece is sent; \
             write: until the whole chain acknowledged it)",
            metrics.durations.clone(),
        );
        registry.register(
            "checksum_failures",
            "Replica blocks found corrupt, by reads and by the scrubber",
            metrics.checksum_failures.clone(),
        );
        registry.register(
            "scrubbed_bytes",
            "Bytes the scrubber verified",
            metrics.scrubbed_bytes.clone(),
        );
        registry.register(
            "scrub_passes",
            "Passes of the scrubber over every replica",
            metrics.scrub_passes.clone(),
        );
        registry.register_collector(Box::new(StoreGauges { store }));
        metrics
    }

    /// Metrics for a chunkserver nobody scrapes: the counters its heartbeats carry, and no
    /// request timing.
    pub fn untimed() -> ChunkserverMetrics {
        ChunkserverMetrics {
            timed: false,
            ..ChunkserverMetrics::default()
        }
    }

    /// Starts timing a request of `op`; it is recorded when the returned guard drops.
    pub fn start(&self, op: Op) -> Timer {
        match op {
            Op::Read => {
                self.reads.inc();
            }
            Op::Write => {
                self.writes.inc();
            }
            Op::Stat => {}
        }
        Timer {
            timing: self
                .timed
                .then(|| (self.by_op[op as usize].clone(), Instant::now())),
        }
    }

    /// Counts bytes read from a local replica for a reader.
    pub fn read(&self, bytes: u64) {
        self.read_bytes.inc_by(bytes);
    }

    /// Counts bytes written to a local replica.
    pub fn written(&self, bytes: u64) {
        self.written_bytes.inc_by(bytes);
    }

    /// Counts a replica found corrupt.
    pub fn checksum_failure(&self) {
        self.checksum_failures.inc();
    }

    /// Counts bytes the scrubber verified.
    pub fn scrubbed(&self, bytes: u64) {
        self.scrubbed_bytes.inc_by(bytes);
    }

    /// Counts a finished scrub pass.
    pub fn scrub_pass(&self) {
        self.scrub_passes.inc();
    }

    /// Bytes read and written since the server started, for heartbeats.
    pub fn data_totals(&self) -> (u64, u64) {
        (self.read_bytes.get(), self.written_bytes.get())
    }
}

/// A request being timed; records its duration when dropped (wherever the request ends:
/// a streamed read ends in the task sending it).
#[derive(Debug)]
pub struct Timer {
    /// Where the duration goes, and when the request started; `None` when untimed.
    timing: Option<(Histogram, Instant)>,
}

impl Drop for Timer {
    fn drop(&mut self) {
        if let Some((histogram, started)) = &self.timing {
            histogram.observe(started.elapsed().as_secs_f64());
        }
    }
}

/// The store's gauges, read at scrape time; absent until the store is open (the server waits
/// for the master's cluster configuration first).
#[derive(Debug)]
struct StoreGauges {
    store: Arc<OnceLock<ChunkStore>>,
}

impl Collector for StoreGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(usage) = self.store.get().and_then(|store| store.usage().ok()) else {
            return Ok(());
        };
        let gauges = [
            (
                "disk_used_bytes",
                "Bytes the replicas take on disk",
                usage.used_bytes,
            ),
            (
                "disk_free_bytes",
                "Bytes free for replicas (the disk's free space, within --capacity-bytes)",
                usage.free_bytes,
            ),
            (
                "capacity_bytes",
                "Bytes this server offers for replicas (the disk, or --capacity-bytes)",
                usage.capacity_bytes,
            ),
            ("replicas", "Replicas stored", usage.replica_count),
        ];
        for (name, help, value) in gauges {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(metric)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_durations_are_exposed_under_their_names() {
        let mut registry = Registry::default();
        let metrics = ChunkserverMetrics::new(&mut registry, Arc::default());
        drop(metrics.start(Op::Read));
        drop(metrics.start(Op::Write));
        metrics.read(100);
        metrics.written(300);
        metrics.checksum_failure();
        metrics.scrubbed(64);
        metrics.scrub_pass();
        assert_eq!(metrics.data_totals(), (100, 300));

        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "dfs_chunkserver_read_bytes_total 100",
            "dfs_chunkserver_written_bytes_total 300",
            "dfs_chunkserver_reads_total 1",
            "dfs_chunkserver_writes_total 1",
            r#"dfs_chunkserver_request_duration_seconds_count{op="read"} 1"#,
            r#"dfs_chunkserver_request_duration_seconds_count{op="stat"} 0"#,
            "dfs_chunkserver_checksum_failures_total 1",
            "dfs_chunkserver_scrubbed_bytes_total 64",
            "dfs_chunkserver_scrub_passes_total 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(
            !text.contains("dfs_chunkserver_disk_used_bytes"),
            "no store yet"
        );
    }

    #[test]
    fn untimed_metrics_still_count_the_bytes_heartbeats_carry() {
        let metrics = ChunkserverMetrics::untimed();
        let timer = metrics.start(Op::Write);
        assert!(timer.timing.is_none());
        metrics.written(300);
        assert_eq!(metrics.data_totals(), (0, 300));
    }
}
