//! `dfs stats`: a live view of one process — a mount, a master or a chunkserver — read from its
//! `/metrics` once per interval, one line per interval as `vmstat` prints (so it also reads
//! well in a log or a pipe), with a header every screenful.
//!
//! Each line is the difference of two scrapes: operations and bytes per second, latency
//! percentiles from the difference of the latency histograms (as Prometheus'
//! `histogram_quantile` estimates them), and for a mount the block cache's hit rate. Which
//! process answers is told by the metrics it exposes.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

/// Lines between two headers.
const HEADER_EVERY: usize = 20;

/// What `dfs stats` prints, and how often.
#[derive(Debug, Clone)]
pub struct StatsOptions {
    /// `host:port` of the process's HTTP service.
    pub addr: String,
    /// Time between two lines.
    pub interval: Duration,
    /// Lines to print before exiting (none: until interrupted).
    pub count: Option<u64>,
}

/// Why `dfs stats` could not go on.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// The process did not answer, or not with metrics.
    #[error("cannot read http://{addr}/metrics: {detail}")]
    Scrape {
        /// The address asked.
        addr: String,
        /// What went wrong.
        detail: String,
    },
    /// The metrics are of no dfs process this command knows.
    #[error("http://{0}/metrics shows no dfs mount, master or chunkserver metrics")]
    Unknown(String),
}

/// Prints a line per interval to `out` until `options.count` lines are printed.
pub async fn run(options: &StatsOptions, out: &mut impl std::io::Write) -> Result<(), StatsError> {
    let mut before = scrape(&options.addr).await?;
    let kind = Kind::of(&before).ok_or_else(|| StatsError::Unknown(options.addr.clone()))?;
    let mut taken = Instant::now();
    let mut printed = 0u64;
    while options.count.is_none_or(|count| printed < count) {
        tokio::time::sleep(options.interval).await;
        let now = scrape(&options.addr).await?;
        let elapsed = taken.elapsed().as_secs_f64();
        taken = Instant::now();
        let mut text = String::new();
        if printed % HEADER_EVERY as u64 == 0 {
            text.push_str(kind.header());
        }
        text.push_str(&kind.line(&Delta::new(&before, &now, elapsed)));
        // A closed pipe (`dfs stats | head`) ends the view, as it ends vmstat.
        if out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            return Ok(());
        }
        before = now;
        printed += 1;
    }
    Ok(())
}

/// One scrape of `http://addr/metrics`, parsed.
async fn scrape(addr: &str) -> Result<Metrics, StatsError> {
    let failed = |detail: String| StatsError::Scrape {
        addr: addr.to_owned(),
        detail,
    };
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| failed(e.to_string()))?;
    tokio::spawn(connection);
    let request = hyper::Request::get("/metrics")
        .header(hyper::header::HOST, addr)
        .body(Empty::<Bytes>::new())
        .map_err(|e| failed(e.to_string()))?;
    let reply = sender
        .send_request(request)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let status = reply.status();
    let body = reply
        .into_body()
        .collect()
        .await
        .map_err(|e| failed(e.to_string()))?
        .to_bytes();
    if !status.is_success() {
        return Err(failed(format!("HTTP {status}")));
    }
    Ok(Metrics::parse(&String::from_utf8_lossy(&body)))
}

/// A sample's labels, as `(name, value)` pairs in the order written.
type Labels = Vec<(String, String)>;

/// The samples of one scrape: for each sample name, its label sets and values.
#[derive(Debug, Default)]
pub struct Metrics {
    samples: HashMap<String, Vec<(Labels, f64)>>,
}

impl Metrics {
    /// Parses the Prometheus or OpenMetrics text format; lines it cannot read are skipped.
    pub fn parse(text: &str) -> Metrics {
        let mut metrics = Metrics::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            if let Some((name, labels, value)) = parse_sample(line) {
                metrics
                    .samples
                    .entry(name)
                    .or_default()
                    .push((labels, value));
            }
        }
        metrics
    }

    /// The sum of every sample of `name` (0 if there is none).
    pub fn sum(&self, name: &str) -> f64 {
        self.samples
            .get(name)
            .map_or(0.0, |samples| samples.iter().map(|(_, v)| v).sum())
    }

    /// Whether any sample is named `name`.
    fn has(&self, name: &str) -> bool {
        self.samples.contains_key(name)
    }

    /// The cumulative buckets of histogram `name`, summed over its other labels, by upper
    /// bound.
    fn buckets(&self, name: &str) -> Vec<(f64, f64)> {
        let mut by_bound: Vec<(f64, f64)> = Vec::new();
        let samples = self.samples.get(&format!("{name}_bucket"));
        for (labels, value) in samples.into_iter().flatten() {
            let Some(bound) = labels
                .iter()
                .find(|(k, _)| k == "le")
                .and_then(|(_, v)| parse_float(v))
            else {
                continue;
            };
            match by_bound.iter_mut().find(|(b, _)| *b == bound) {
                Some((_, count)) => *count += value,
                None => by_bound.push((bound, *value)),
            }
        }
        by_bound.sort_by(|a, b| a.0.total_cmp(&b.0));
        by_bound
    }
}

/// `name{label="value",…} value [timestamp]`.
fn parse_sample(line: &str) -> Option<(String, Labels, f64)> {
    let line = line.trim();
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let close = line.rfind('}')?;
            (
                &line[..open],
                parse_labels(&line[open + 1..close]),
                &line[close + 1..],
            )
        }
        None => {
            let (name, rest) = line.split_once(' ')?;
            (name, Vec::new(), rest)
        }
    };
    let value = parse_float(rest.split_whitespace().next()?)?;
    (!name.is_empty()).then(|| (name.to_owned(), labels, value))
}

/// `a="x",b="y"`, with `\"` and `\\` escapes in values.
fn parse_labels(text: &str) -> Labels {
    let mut labels = Vec::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(if escaped == 'n' { '\n' } else { escaped });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.push((key.trim_start_matches(',').trim().to_owned(), value));
        rest = &after[end..];
    }
    labels
}

/// A sample value, with the format's spellings of infinity.
fn parse_float(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

/// What happened between two scrapes `secs` apart.
pub struct Delta<'a> {
    before: &'a Metrics,
    now: &'a Metrics,
    secs: f64,
}

impl<'a> Delta<'a> {
    /// The difference of `before` and `now`, taken `secs` apart.
    pub fn new(before: &'a Metrics, now: &'a Metrics, secs: f64) -> Delta<'a> {
        Delta {
            before,
            now,
            secs: secs.max(1e-3),
        }
    }

    /// How much counter `name` grew (a restart counts from zero).
    fn grew(&self, name: &str) -> f64 {
        let (before, now) = (self.before.sum(name), self.now.sum(name));
        if now >= before { now - before } else { now }
    }

    /// Counter `name`'s growth per second.
    fn rate(&self, name: &str) -> f64 {
        self.grew(name) / self.secs
    }

    /// The `q` quantile (0..1) of histogram `name` over the interval, in seconds; `None`
    /// without observations.
    fn quantile(&self, name: &str, q: f64) -> Option<f64> {
        let before = self.before.buckets(name);
        let buckets: Vec<(f64, f64)> = self
            .now
            .buckets(name)
            .into_iter()
            .map(|(bound, count)| {
                let earlier = before
                    .iter()
                    .find(|(b, _)| *b == bound)
                    .map_or(0.0, |(_, c)| *c);
                (bound, (count - earlier).max(0.0))
            })
            .collect();
        quantile(&buckets, q)
    }
}

/// The `q` quantile of cumulative `buckets` (upper bound, count), interpolated linearly within
/// the bucket it falls in, as Prometheus' `histogram_quantile`; in the last, unbounded bucket
/// it is the highest finite bound.
pub fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return Some(lower.0);
            }
            let in_bucket = count - lower.1;
            let fraction = if in_bucket > 0.0 {
                (rank - lower.1) / in_bucket
            } else {
                1.0
            };
            return Some(lower.0 + (bound - lower.0) * fraction);
        }
        lower = (bound, count);
    }
    Some(lower.0)
}

/// Which dfs process the metrics come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A FUSE mount.
    Mount,
    /// A master.
    Master,
    /// A chunkserver.
    Chunkserver,
}

const MIB: f64 = (1 << 20) as f64;

impl Kind {
    /// The kind of process that exposes `metrics`, if any.
    pub fn of(metrics: &Metrics) -> Option<Kind> {
        if metrics.has("dfs_fuse_requests_total") {
            Some(Kind::Mount)
        } else if metrics.has("dfs_master_rpc_calls_total") || metrics.has("dfs_master_inodes") {
            Some(Kind::Master)
        } else if metrics.has("dfs_chunkserver_reads_total")
            || metrics.has("dfs_chunkserver_disk_free_bytes")
        {
            Some(Kind::Chunkserver)
        } else {
            None
        }
    }

    /// The column names.
    pub fn header(self) -> &'static str {
        match self {
            Kind::Mount => {
                "   ops/s  read MiB/s write MiB/s   p50 ms   p95 ms   p99 ms  cache hit  errors/s  master ms\n"
            }
            Kind::Master => {
                "  calls/s  errors/s   p50 ms   p95 ms   p99 ms  read MiB/s write MiB/s     inodes   chunks  under-rep\n"
            }
            Kind::Chunkserver => {
                "  reads/s  writes/s  read MiB/s write MiB/s   p50 ms   p99 ms  disk used\n"
            }
        }
    }

    /// One line of the view.
    pub fn line(self, delta: &Delta<'_>) -> String {
        let ms = |name: &str, q: f64| {
            delta
                .quantile(name, q)
                .map_or("-".to_owned(), |s| format!("{:.2}", s * 1000.0))
        };
        let mut line = String::new();
        match self {
            Kind::Mount => {
                let latency = "dfs_fuse_request_duration_seconds";
                let hits = delta.grew("dfs_client_cache_hits_total");
                let misses = delta.grew("dfs_client_cache_misses_total");
                let hit_rate = if hits + misses > 0.0 {
                    format!("{:.1}%", 100.0 * hits / (hits + misses))
                } else {
                    "-".to_owned()
                };
                let master_calls = delta.grew("dfs_client_master_call_duration_seconds_count");
                let master_ms = if master_calls > 0.0 {
                    let secs = delta.grew("dfs_client_master_call_duration_seconds_sum");
                    format!("{:.2}", secs * 1000.0 / master_calls)
                } else {
                    "-".to_owned()
                };
                let _ = writeln!(
                    line,
                    "{:>8.0} {:>11.1} {:>11.1} {:>8} {:>8} {:>8} {:>10} {:>9.1} {:>10}",
                    delta.rate("dfs_fuse_requests_total"),
                    delta.rate("dfs_fuse_read_bytes_total") / MIB,
                    delta.rate("dfs_fuse_written_bytes_total") / MIB,
                    ms(latency, 0.5),
                    ms(latency, 0.95),
                    ms(latency, 0.99),
                    hit_rate,
                    delta.rate("dfs_fuse_errors_total"),
                    master_ms,
                );
            }
            Kind::Master => {
                let latency = "dfs_master_rpc_latency_seconds";
                let _ = writeln!(
                    line,
                    "{:>9.0} {:>9.1} {:>8} {:>8} {:>8} {:>11.1} {:>11.1} {:>10} {:>8} {:>10}",
                    delta.rate("dfs_master_rpc_calls_total"),
                    delta.rate("dfs_master_rpc_errors_total"),
                    ms(latency, 0.5),
                    ms(latency, 0.95),
                    ms(latency, 0.99),
                    delta.rate("dfs_master_cluster_read_bytes_total") / MIB,
                    delta.rate("dfs_master_cluster_written_bytes_total") / MIB,
                    delta.now.sum("dfs_master_inodes"),
                    delta.now.sum("dfs_master_chunks"),
                    delta.now.sum("dfs_master_chunks_under_replicated"),
                );
            }
            Kind::Chunkserver => {
                let latency = "dfs_chunkserver_request_duration_seconds";
                let used = delta.now.sum("dfs_chunkserver_disk_used_bytes");
                let free = delta.now.sum("dfs_chunkserver_disk_free_bytes");
                let used_share = if used + free > 0.0 {
                    format!("{:.1}%", 100.0 * used / (used + free))
                } else {
                    "-".to_owned()
                };
                let _ = writeln!(
                    line,
                    "{:>9.0} {:>9.0} {:>11.1} {:>11.1} {:>8} {:>8} {:>10}",
                    delta.rate("dfs_chunkserver_reads_total"),
                    delta.rate("dfs_chunkserver_writes_total"),
                    delta.rate("dfs_chunkserver_read_bytes_total") / MIB,
                    delta.rate("dfs_chunkserver_written_bytes_total") / MIB,
                    ms(latency, 0.5),
                    ms(latency, 0.99),
                    used_share,
                );
            }
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = r#"# HELP dfs_fuse_requests Requests.
# TYPE dfs_fuse_requests counter
dfs_fuse_requests_total{op="read"} 100
dfs_fuse_requests_total{op="write"} 50
dfs_fuse_read_bytes_total 0
dfs_fuse_written_bytes_total 1048576
dfs_fuse_request_duration_seconds_bucket{op="read",le="0.001"} 100
dfs_fuse_request_duration_seconds_bucket{op="read",le="0.01"} 100
dfs_fuse_request_duration_seconds_bucket{op="read",le="+Inf"} 100
dfs_client_cache_hits_total 10
dfs_client_cache_misses_total 10
# EOF
"#;

    const NOW: &str = r#"dfs_fuse_requests_total{op="read"} 300
dfs_fuse_requests_total{op="write"} 50
dfs_fuse_read_bytes_total 4194304
dfs_fuse_written_bytes_total 1048576
dfs_fuse_request_duration_seconds_bucket{op="read",le="0.001"} 150
dfs_fuse_request_duration_seconds_bucket{op="read",le="0.01"} 300
dfs_fuse_request_duration_seconds_bucket{op="read",le="+Inf"} 300
dfs_client_cache_hits_total 40
dfs_client_cache_misses_total 20
dfs_fuse_errors_total{op="lookup",errno="ENOENT"} 2
"#;

    #[test]
    fn samples_are_parsed_with_labels_escapes_and_infinities() {
        let metrics = Metrics::parse(
            "a_total{x=\"q\\\"uote\",le=\"+Inf\"} 3\nb 1.5 1700000000\n# c 9\nbroken\n",
        );
        assert_eq!(metrics.sum("a_total"), 3.0);
        assert_eq!(metrics.sum("b"), 1.5);
        assert_eq!(metrics.sum("c"), 0.0);
        let (labels, _) = &metrics.samples["a_total"][0];
        assert_eq!(labels[0], ("x".to_owned(), "q\"uote".to_owned()));
        assert_eq!(labels[1], ("le".to_owned(), "+Inf".to_owned()));
    }

    #[test]
    fn quantiles_interpolate_within_their_bucket() {
        let buckets = [(0.001, 50.0), (0.01, 200.0), (f64::INFINITY, 200.0)];
        assert_eq!(quantile(&buckets, 0.125), Some(0.0005));
        // Rank 100 is a third of the way through the 1-10 ms bucket.
        let median = quantile(&buckets, 0.5).unwrap();
        assert!((median - 0.004).abs() < 1e-9, "{median}");
        assert_eq!(quantile(&[(0.001, 0.0), (f64::INFINITY, 0.0)], 0.5), None);
        // Past every finite bound: the highest finite bound.
        assert_eq!(
            quantile(&[(0.5, 1.0), (f64::INFINITY, 10.0)], 0.99),
            Some(0.5)
        );
    }

    #[test]
    fn a_mount_line_shows_rates_latency_and_hit_rate_of_the_interval() {
        let (before, now) = (Metrics::parse(BEFORE), Metrics::parse(NOW));
        assert_eq!(Kind::of(&before), Some(Kind::Mount));
        let line = Kind::Mount.line(&Delta::new(&before, &now, 2.0));
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[0], "100", "200 requests in 2 s: {line}");
        assert_eq!(fields[1], "2.0", "4 MiB read in 2 s: {line}");
        assert_eq!(fields[2], "0.0", "nothing written: {line}");
        // 200 reads: 50 under 1 ms, 150 between 1 and 10 ms.
        assert_eq!(fields[3], "4.00", "p50: {line}");
        assert_eq!(fields[6], "75.0%", "30 hits of 40 lookups: {line}");
        assert_eq!(fields[7], "1.0", "2 errors in 2 s: {line}");
        assert_eq!(fields[8], "-", "no master calls: {line}");
    }

    #[test]
    fn unknown_metrics_are_no_dfs_process() {
        assert_eq!(Kind::of(&Metrics::parse("up 1\n")), None);
        let master = Metrics::parse("dfs_master_rpc_calls_total{method=\"Files/Open\"} 1\n");
        assert_eq!(Kind::of(&master), Some(Kind::Master));
    }
}
