//! What a client counts for its embedding program's `/metrics`: how long its calls to the
//! masters and chunkservers take, and its caches (hits, misses, bytes cached, write-back
//! bytes waiting to be sent).
//!
//! No registry is global: a [`Client`](crate::Client) has its own [`ClientMetrics`] (a cheap
//! shared handle), and the program that embeds it exposes them by calling
//! [`Client::register_metrics`](crate::Client::register_metrics) with its registry. Only
//! then does the client record: one that nobody can read (the `dfs` command, a mount that
//! serves no HTTP) pays nothing for them. The cache figures are read from the client when
//! Prometheus scrapes ([`CacheGauges`]), never updated on the read path for metrics' sake.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dfs_proto::http::DURATION_BUCKETS;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::Client;

/// A kind of call to a chunkserver, as the `op` label names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkOp {
    /// A chain write stream (data, a truncation or a version stamp), until the chain
    /// acknowledged it.
    Write,
    /// A read of a replica, until its last piece arrived.
    Read,
    /// `StatReplica`.
    Stat,
}

impl ChunkOp {
    const ALL: [ChunkOp; 3] = [ChunkOp::Write, ChunkOp::Read, ChunkOp::Stat];

    fn label(self) -> &'static str {
        match self {
            ChunkOp::Write => "write",
            ChunkOp::Read => "read",
            ChunkOp::Stat => "stat",
        }
    }
}

/// The `method` label of a master call: `Service/Method`, as the master counts it.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: &'static str,
}

/// The `op` label of a chunkserver call.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    op: &'static str,
}

/// The durations a client records; clones share them.
#[derive(Debug, Clone)]
pub struct ClientMetrics {
    master_calls: Family<MethodLabels, Histogram>,
    chunkserver_calls: Family<OpLabels, Histogram>,
    /// The histogram of each [`ChunkOp`] (by discriminant), taken from the family once.
    by_op: [Histogram; 3],
    /// Whether a registry exposes these metrics; until one does, nothing is recorded.
    recording: Arc<AtomicBool>,
}

fn histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

impl Default for ClientMetrics {
    fn default() -> ClientMetrics {
        let master_calls = Family::new_with_constructor(histogram as fn() -> Histogram);
        let chunkserver_calls: Family<OpLabels, Histogram> =
            Family::new_with_constructor(histogram as fn() -> Histogram);
        let by_op = ChunkOp::ALL.map(|op| {
            chunkserver_calls
                .get_or_create(&OpLabels { op: op.label() })
                .clone()
        });
        ClientMetrics {
            master_calls,
            chunkserver_calls,
            by_op,
            recording: Arc::default(),
        }
    }
}

impl ClientMetrics {
    /// Records a call of the masters' `method` (`Service/Method`) that took `elapsed`,
    /// retries and leader changes included.
    pub fn master_call(&self, method: &'static str, elapsed: Duration) {
        if !self.recording.load(Ordering::Relaxed) {
            return;
        }
        self.master_calls
            .get_or_create(&MethodLabels { method })
            .observe(elapsed.as_secs_f64());
    }

    /// Records a call to a chunkserver that took `elapsed`.
    pub fn chunkserver_call(&self, op: ChunkOp, elapsed: Duration) {
        if !self.recording.load(Ordering::Relaxed) {
            return;
        }
        self.by_op[op as usize].observe(elapsed.as_secs_f64());
    }

    /// Registers the durations in `registry` under the `dfs_client` prefix, and starts
    /// recording them.
    fn register(&self, registry: &mut Registry) {
        self.recording.store(true, Ordering::Relaxed);
        registry.register(
            "master_call_duration_seconds",
            "Time of a call to the masters, by method, retries and leader changes included",
            self.master_calls.clone(),
        );
        registry.register(
            "chunkserver_call_duration_seconds",
            "Time of a call to a chunkserver, by operation (write: until the whole chain \
             acknowledged it; read: until the last piece arrived)",
            self.chunkserver_calls.clone(),
        );
    }
}

impl Client {
    /// Exposes this client's metrics in `registry` (under `dfs_client_`): call durations,
    /// and its caches as they are at each scrape.
    pub fn register_metrics(&self, registry: &mut Registry) {
        let registry = registry.sub_registry_with_prefix("dfs_client");
        self.metrics().register(registry);
        registry.register_collector(Box::new(CacheGauges {
            client: self.clone(),
        }));
    }
}

/// The client's caches, read when Prometheus scrapes.
#[derive(Debug)]
struct CacheGauges {
    client: Client,
}

impl Collector for CacheGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.client.cache_stats();
        let counters = [
            ("cache_hits", "Blocks read from the block cache", stats.hits),
            (
                "cache_misses",
                "Blocks the block cache did not hold, read from a replica",
                stats.misses,
            ),
        ];
        for (name, help, value) in counters {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(value).encode(metric)?;
        }
        let gauges = [
            ("cache_bytes", "Bytes held in the block cache", stats.bytes),
            (
                "write_back_bytes",
                "Bytes written by applications and not yet sent to chunkservers",
                self.client.write_back_bytes(),
            ),
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
    fn durations_are_recorded_by_method_and_by_operation_once_registered() {
        let metrics = ClientMetrics::default();
        // Before registration nothing is recorded: the counts below are of one call each.
        metrics.master_call("Namespace/Lookup", Duration::from_millis(2));
        metrics.chunkserver_call(ChunkOp::Read, Duration::from_millis(5));
        let mut registry = Registry::default();
        metrics.register(registry.sub_registry_with_prefix("dfs_client"));
        metrics.master_call("Namespace/Lookup", Duration::from_millis(2));
        metrics.chunkserver_call(ChunkOp::Read, Duration::from_millis(5));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(
                r#"dfs_client_master_call_duration_seconds_count{method="Namespace/Lookup"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"dfs_client_chunkserver_call_duration_seconds_count{op="read"} 1"#)
        );
        assert!(
            text.contains(r#"dfs_client_chunkserver_call_duration_seconds_count{op="write"} 0"#)
        );
    }
}
