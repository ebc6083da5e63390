//! The master's metrics: what `/metrics` exposes to Prometheus, and the running totals the
//! dashboard's history samples (so the dashboard needs no Prometheus).
//!
//! One [`MasterMetrics`] per master process, registered in that process's own registry.
//! It holds what is counted as it happens: calls (by the [`service::metrics`] layer), the
//! cluster's data throughput (from chunkserver heartbeats, see
//! [`crate::cluster::throughput`]) and changes of leader (by the member's leadership
//! watcher). What is a state rather than an event (inodes, chunk health, servers, the Raft
//! log) is read when Prometheus scrapes, by [`gauges`].
//!
//! [`service::metrics`]: crate::service::metrics

pub mod gauges;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tonic::Code;

/// Upper bounds, in seconds, of the call latency buckets: 100 µs to about 13 s.
pub const LATENCY_BUCKETS: [f64; 18] = [
    0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
    10.0, 15.0, 20.0,
];

/// Labels of a call: its gRPC method (`Namespace/Lookup`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    /// `Service/Method`.
    pub method: String,
}

/// Labels of a call answered with an error: its method and its gRPC code (`NotFound`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// `Service/Method`.
    pub method: String,
    /// The code's name, as gRPC spells it.
    pub code: &'static str,
}

/// Every metric the master keeps; a cheap handle to share (`Arc`).
#[derive(Debug)]
pub struct MasterMetrics {
    calls: Family<MethodLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    latency: Family<MethodLabels, Histogram>,
    cluster_read_bytes: Counter,
    cluster_written_bytes: Counter,
    leader_changes: Counter,
    activity: Activity,
}

/// Running totals over all calls, for the dashboard's history.
#[derive(Debug, Default)]
struct Activity {
    calls: AtomicU64,
    errors: AtomicU64,
    /// Calls per latency bucket (not cumulative), the last one past every bound.
    latency: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
}

/// A reading of the running totals: the difference of two readings is the activity between
/// them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActivityTotals {
    /// Calls answered since the master started.
    pub calls: u64,
    /// Calls the master failed to serve (see [`is_failure`]); answers such as "no such
    /// file" are not counted.
    pub errors: u64,
    /// Calls per latency bucket: `latency[i]` took at most `LATENCY_BUCKETS[i]` (and more
    /// than the bound before); the last entry took longer than every bound.
    pub latency: Vec<u64>,
    /// Bytes the chunkservers have served to readers (from their heartbeats).
    pub bytes_read: u64,
    /// Bytes the chunkservers have stored from writers (from their heartbeats).
    pub bytes_written: u64,
}

impl MasterMetrics {
    /// The master's metrics, registered in `registry` under the `dfs_master` prefix.
    pub fn new(registry: &mut Registry) -> MasterMetrics {
        let metrics = MasterMetrics {
            calls: Family::default(),
            errors: Family::default(),
            latency: Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS)),
            cluster_read_bytes: Counter::default(),
            cluster_written_bytes: Counter::default(),
            leader_changes: Counter::default(),
            activity: Activity::default(),
        };
        let registry = registry.sub_registry_with_prefix("dfs_master");
        registry.register(
            "rpc_calls",
            "gRPC calls answered, by method",
            metrics.calls.clone(),
        );
        registry.register(
            "rpc_errors",
            "gRPC calls answered with an error, by method and code (NotFound and \
             AlreadyExists are answers applications expect; Unavailable, Internal, Unknown, \
             DataLoss, DeadlineExceeded and ResourceExhausted are failures)",
            metrics.errors.clone(),
        );
        registry.register(
            "rpc_latency_seconds",
            "Time to answer a gRPC call, by method",
            metrics.latency.clone(),
        );
        registry.register(
            "cluster_read_bytes",
            "Bytes the chunkservers served to readers, as their heartbeats to this master \
             reported while it led",
            metrics.cluster_read_bytes.clone(),
        );
        registry.register(
            "cluster_written_bytes",
            "Bytes the chunkservers stored as replicas (writes, chain writes, copies), as \
             their heartbeats to this master reported while it led",
            metrics.cluster_written_bytes.clone(),
        );
        registry.register(
            "raft_leader_changes",
            "Changes of the group's leader this member observed (an election won by another \
             member than the last known leader)",
            metrics.leader_changes.clone(),
        );
        metrics
    }

    /// Metrics that no registry exposes: for a master without a process around it (the
    /// metadata logic's tests), which records as usual and is never scraped.
    pub fn unregistered() -> MasterMetrics {
        MasterMetrics::new(&mut Registry::default())
    }

    /// Records that the group's leader changed (as this member observed it).
    pub fn record_leader_change(&self) {
        self.leader_changes.inc();
    }

    /// Records one answered call of `method` that took `elapsed`, answered with `code`.
    pub fn record_call(&self, method: &str, elapsed: Duration, code: Code) {
        let labels = MethodLabels {
            method: method.to_owned(),
        };
        self.calls.get_or_create(&labels).inc();
        let secs = elapsed.as_secs_f64();
        self.latency.get_or_create(&labels).observe(secs);
        let activity = &self.activity;
        activity.calls.fetch_add(1, Ordering::Relaxed);
        if code != Code::Ok {
            let labels = ErrorLabels {
                method: labels.method,
                code: code_name(code),
            };
            self.errors.get_or_create(&labels).inc();
        }
        if is_failure(code) {
            activity.errors.fetch_add(1, Ordering::Relaxed);
        }
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|bound| secs <= *bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        activity.latency[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// Adds data moved by the chunkservers since their last report.
    pub fn record_data(&self, bytes_read: u64, bytes_written: u64) {
        self.cluster_read_bytes.inc_by(bytes_read);
        self.cluster_written_bytes.inc_by(bytes_written);
        let activity = &self.activity;
        activity.bytes_read.fetch_add(bytes_read, Ordering::Relaxed);
        activity
            .bytes_written
            .fetch_add(bytes_written, Ordering::Relaxed);
    }

    /// The running totals now.
    pub fn totals(&self) -> ActivityTotals {
        let activity = &self.activity;
        ActivityTotals {
            calls: activity.calls.load(Ordering::Relaxed),
            errors: activity.errors.load(Ordering::Relaxed),
            latency: activity
                .latency
                .iter()
                .map(|count| count.load(Ordering::Relaxed))
                .collect(),
            bytes_read: activity.bytes_read.load(Ordering::Relaxed),
            bytes_written: activity.bytes_written.load(Ordering::Relaxed),
        }
    }
}

/// Whether a reply with `code` means the master failed to serve the call (the group had no
/// leader, a disk failed, a deadline passed, space ran out), rather than answering it: a
/// lookup of a missing name (`NotFound`) or a create of an existing one is how applications
/// work, and an error rate that counted them would alarm on every `tar -x`.
pub fn is_failure(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::Internal
            | Code::Unknown
            | Code::DataLoss
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
    )
}

/// The name of `code` as gRPC spells it (`NotFound`), for the `code` label.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "Ok",
        Code::Cancelled => "Cancelled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_by_method_and_in_the_totals() {
        let mut registry = Registry::default();
        let metrics = MasterMetrics::new(&mut registry);
        metrics.record_call("Namespace/Lookup", Duration::from_micros(150), Code::Ok);
        metrics.record_call("Namespace/Lookup", Duration::from_millis(3), Code::NotFound);
        metrics.record_call("Files/Open", Duration::from_secs(60), Code::Unavailable);
        metrics.record_data(10, 30);

        let totals = metrics.totals();
        assert_eq!(
            (totals.calls, totals.errors),
            (3, 1),
            "a missing name is an answer; an unavailable group is a failure"
        );
        assert_eq!(totals.latency[1], 1, "150 µs falls in the 200 µs bucket");
        assert_eq!(totals.latency[5], 1, "3 ms falls in the 5 ms bucket");
        assert_eq!(
            totals.latency[LATENCY_BUCKETS.len()],
            1,
            "60 s is past every bound"
        );
        assert_eq!((totals.bytes_read, totals.bytes_written), (10, 30));

        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains(r#"dfs_master_rpc_calls_total{method="Namespace/Lookup"} 2"#));
        assert!(text.contains(
            r#"dfs_master_rpc_errors_total{method="Namespace/Lookup",code="NotFound"} 1"#
        ));
        assert!(
            text.contains(
                r#"dfs_master_rpc_errors_total{method="Files/Open",code="Unavailable"} 1"#
            )
        );
        assert!(text.contains(r#"dfs_master_rpc_latency_seconds_count{method="Files/Open"} 1"#));
        assert!(text.contains("dfs_master_cluster_read_bytes_total 10"));
        assert!(text.contains("dfs_master_cluster_written_bytes_total 30"));
    }
}
