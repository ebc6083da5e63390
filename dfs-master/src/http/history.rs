//! The dashboard's history: this master's activity over the last hour, sampled from the
//! running totals of [`MasterMetrics`] every `--history-interval-ms` and kept in a bounded ring
//! in memory, so the charts need no Prometheus.
//!
//! A sample is the difference of two readings divided by the time between them: calls and
//! errors per second, bytes per second read from and written to the chunkservers, and the
//! 50th, 95th and 99th percentile of call latency, estimated from how many calls fell into
//! each latency bucket in between ([`latency_quantile`]).
//!
//! Every master samples its own totals, leader or not: a follower answers few calls, and its
//! charts say so. `GET /api/v1/history` serves the ring as JSON, with the node that sampled it.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

use crate::http::HttpState;
use crate::metrics::{ActivityTotals, LATENCY_BUCKETS, MasterMetrics};

/// How far back the history reaches.
pub const HISTORY_SPAN: Duration = Duration::from_secs(3600);

/// One point of the charts: the activity between two readings of the totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// When the interval ended, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Calls answered per second.
    pub ops_per_sec: f64,
    /// Calls answered with an error per second.
    pub errors_per_sec: f64,
    /// Bytes per second the chunkservers served to readers.
    pub read_bytes_per_sec: f64,
    /// Bytes per second the chunkservers stored from writers.
    pub write_bytes_per_sec: f64,
    /// Median call latency in milliseconds; absent when no call was answered.
    pub latency_p50_ms: Option<f64>,
    /// 95th percentile of call latency in milliseconds.
    pub latency_p95_ms: Option<f64>,
    /// 99th percentile of call latency in milliseconds.
    pub latency_p99_ms: Option<f64>,
}

impl Sample {
    /// The activity from reading `before` to reading `after`, `elapsed` apart, ending at
    /// `time_ms`. Totals only grow; a counter that went back counts as no activity.
    pub fn between(
        before: &ActivityTotals,
        after: &ActivityTotals,
        elapsed: Duration,
        time_ms: u64,
    ) -> Sample {
        let secs = elapsed.as_secs_f64().max(1e-3);
        let rate = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs;
        let buckets: Vec<u64> = after
            .latency
            .iter()
            .enumerate()
            .map(|(i, n)| n.saturating_sub(before.latency.get(i).copied().unwrap_or(0)))
            .collect();
        let quantile_ms = |q: f64| latency_quantile(&buckets, q).map(|secs| secs * 1000.0);
        Sample {
            time_ms,
            ops_per_sec: rate(before.calls, after.calls),
            errors_per_sec: rate(before.errors, after.errors),
            read_bytes_per_sec: rate(before.bytes_read, after.bytes_read),
            write_bytes_per_sec: rate(before.bytes_written, after.bytes_written),
            latency_p50_ms: quantile_ms(0.50),
            latency_p95_ms: quantile_ms(0.95),
            latency_p99_ms: quantile_ms(0.99),
        }
    }
}

/// The `q` quantile (0 < q ≤ 1), in seconds, of calls counted per latency bucket: `counts[i]`
/// calls took at most `LATENCY_BUCKETS[i]` and more than the bound before it; the entry after
/// the last bound counts calls slower than every bound. `None` when there are no calls.
///
/// As Prometheus' `histogram_quantile`, the value is interpolated linearly inside the bucket
/// that holds the quantile's rank (calls are taken as spread evenly over it), and a quantile
/// that falls past the last bound is reported as that bound: the histogram knows no more.
pub fn latency_quantile(counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let mut below = 0u64;
    for (i, &count) in counts.iter().enumerate() {
        if count == 0 {
            continue;
        }
        if (below + count) as f64 >= rank {
            let Some(&upper) = LATENCY_BUCKETS.get(i) else {
                return LATENCY_BUCKETS.last().copied();
            };
            let lower = if i == 0 { 0.0 } else { LATENCY_BUCKETS[i - 1] };
            let within = ((rank - below as f64) / count as f64).clamp(0.0, 1.0);
            return Some(lower + (upper - lower) * within);
        }
        below += count;
    }
    LATENCY_BUCKETS.last().copied()
}

/// The last hour of samples: a ring bounded by the span over the interval.
#[derive(Debug)]
pub struct History {
    interval: Duration,
    capacity: usize,
    /// Oldest first. A `std` mutex: it is held only to push or copy, never across an await.
    samples: Mutex<VecDeque<Sample>>,
}

impl History {
    /// An empty history sampled every `interval`, keeping [`HISTORY_SPAN`] of samples.
    pub fn new(interval: Duration) -> History {
        let interval = interval.max(Duration::from_millis(1));
        let capacity = (HISTORY_SPAN.as_millis() / interval.as_millis()).max(1) as usize;
        History {
            interval,
            capacity,
            samples: Mutex::new(VecDeque::with_capacity(capacity.min(4096))),
        }
    }

    /// Time between two samples.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Most samples kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Appends `sample`, dropping the oldest one when the ring is full.
    pub fn push(&self, sample: Sample) {
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if samples.len() == self.capacity {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    /// The samples that ended after `since_ms` (milliseconds since the epoch), oldest first.
    pub fn since(&self, since_ms: u64) -> Vec<Sample> {
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let first = samples.partition_point(|s| s.time_ms <= since_ms);
        samples.range(first..).cloned().collect()
    }

    /// Reads `metrics` every interval and records the activity in between, until `shutdown`
    /// completes. Runs on every master, for as long as it serves.
    pub async fn sample(
        self: Arc<Self>,
        metrics: Arc<MasterMetrics>,
        shutdown: impl Future<Output = ()>,
    ) {
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        let mut before = (metrics.totals(), Instant::now());
        let sampling = async {
            loop {
                ticks.tick().await;
                let after = (metrics.totals(), Instant::now());
                self.push(Sample::between(
                    &before.0,
                    &after.0,
                    after.1 - before.1,
                    unix_ms(SystemTime::now()),
                ));
                before = after;
            }
        };
        tokio::select! {
            () = sampling => {}
            () = shutdown => {}
        }
    }
}

/// `t` in milliseconds since the Unix epoch (0 before it).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Query of `GET /api/v1/history`.
#[derive(Debug, Default, Deserialize)]
pub struct HistoryQuery {
    /// Only samples that ended after this time (milliseconds since the epoch): a page that
    /// already holds some asks for the rest.
    #[serde(default)]
    pub since: u64,
}

/// The answer of `GET /api/v1/history`.
#[derive(Debug, Serialize)]
pub struct HistoryReply {
    /// The master whose activity this is (each master samples its own).
    pub node_id: u64,
    /// Milliseconds between samples.
    pub interval_ms: u64,
    /// Samples, oldest first.
    pub samples: Vec<Sample>,
}

/// `GET /api/v1/history?since=`: this master's samples.
pub async fn get_history(
    State(state): State<HttpState>,
    Query(query): Query<HistoryQuery>,
) -> Json<HistoryReply> {
    let history = &state.history;
    Json(HistoryReply {
        node_id: state.node.id(),
        interval_ms: u64::try_from(history.interval().as_millis()).unwrap_or(u64::MAX),
        samples: history.since(query.since),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(usize, u64)]) -> Vec<u64> {
        let mut counts = vec![0; LATENCY_BUCKETS.len() + 1];
        for &(i, n) in pairs {
            counts[i] = n;
        }
        counts
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn no_calls_have_no_quantile() {
        assert_eq!(latency_quantile(&counts(&[]), 0.5), None);
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket_that_holds_them() {
        // 100 calls in (1 ms, 2 ms]: the median is half-way through it.
        let one_bucket = counts(&[(4, 100)]);
        assert!(close(latency_quantile(&one_bucket, 0.5), 0.0015));
        assert!(close(latency_quantile(&one_bucket, 0.99), 0.00199));
        // 90 calls at most 100 µs, 10 in (10 ms, 20 ms].
        let split = counts(&[(0, 90), (7, 10)]);
        assert!(close(latency_quantile(&split, 0.5), 0.0001 * 50.0 / 90.0));
        assert!(close(latency_quantile(&split, 0.95), 0.01 + 0.01 * 0.5));
        assert!(close(latency_quantile(&split, 0.99), 0.01 + 0.01 * 0.9));
    }

    #[test]
    fn a_quantile_past_every_bound_is_the_last_bound() {
        let slow = counts(&[(0, 1), (LATENCY_BUCKETS.len(), 99)]);
        assert_eq!(latency_quantile(&slow, 0.99), Some(20.0));
    }

    #[test]
    fn a_sample_is_the_rate_between_two_readings() {
        let before = ActivityTotals {
            calls: 100,
            errors: 1,
            latency: counts(&[(3, 100)]),
            bytes_read: 1000,
            bytes_written: 0,
        };
        let after = ActivityTotals {
            calls: 300,
            errors: 5,
            latency: counts(&[(3, 100), (5, 200)]),
            bytes_read: 5000,
            bytes_written: 2 << 20,
        };
        let sample = Sample::between(&before, &after, Duration::from_secs(2), 42);
        assert_eq!(sample.time_ms, 42);
        assert_eq!(sample.ops_per_sec, 100.0);
        assert_eq!(sample.errors_per_sec, 2.0);
        assert_eq!(sample.read_bytes_per_sec, 2000.0);
        assert_eq!(sample.write_bytes_per_sec, f64::from(1 << 20));
        // Only the 200 new calls count, all in (2 ms, 5 ms].
        assert!(close(sample.latency_p50_ms, 3.5));
        let idle = Sample::between(&after, &after, Duration::from_secs(2), 43);
        assert_eq!((idle.ops_per_sec, idle.latency_p99_ms), (0.0, None));
    }

    #[test]
    fn the_ring_keeps_the_last_hour_and_answers_what_is_newer() {
        let history = History::new(Duration::from_secs(600));
        assert_eq!(history.capacity(), 6);
        for t in 1..=8 {
            history.push(Sample::between(
                &ActivityTotals::default(),
                &ActivityTotals::default(),
                Duration::from_secs(1),
                t,
            ));
        }
        let times: Vec<u64> = history.since(0).iter().map(|s| s.time_ms).collect();
        assert_eq!(times, [3, 4, 5, 6, 7, 8]);
        let times: Vec<u64> = history.since(6).iter().map(|s| s.time_ms).collect();
        assert_eq!(times, [7, 8]);
    }
}
