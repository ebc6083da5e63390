//! Prometheus metrics of a real cluster: every process's `/metrics` passes `promtool check
//! metrics`, the alert rules pass `promtool`'s checks and unit tests, the Grafana dashboard
//! asks only for metrics a cluster serves, and the counters move with a known workload.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use dfs_tests::{Cluster, ClusterOptions, drop_page_cache, http_request, wait_until};

const MIB: f64 = (1 << 20) as f64;

/// One scrape of `addr`, in the Prometheus text format (as promtool reads it).
fn scrape(addr: &str) -> String {
    let reply = http_request(
        addr,
        "GET",
        "/metrics",
        &[("Accept", "text/plain;version=0.0.4")],
        &[],
    );
    assert_eq!(reply.status, 200, "{addr}: {}", reply.text());
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    reply.text()
}

/// Sum of every sample of `series`: a metric name (all its series) or one series with its
/// labels as encoded (`name{a="b"}`).
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(name, _)| {
            *name == series
                || (!series.contains('{')
                    && name
                        .strip_prefix(series)
                        .is_some_and(|labels| labels.starts_with('{')))
        })
        .map(|(_, value)| value.parse::<f64>().unwrap())
        .sum()
}

/// Metric names a scrape exposes: every sample's name and every family's.
fn names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let name = match line.strip_prefix("# TYPE ") {
            Some(rest) => rest.split(' ').next(),
            None if line.starts_with('#') => None,
            None => line.split(['{', ' ']).next(),
        };
        names.extend(name.filter(|n| !n.is_empty()).map(str::to_owned));
    }
    names
}

/// Runs `promtool` with `args` (and `stdin`); fails the test with its output unless it
/// succeeds.
fn promtool(args: &[&str], stdin: &str) {
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(monitoring_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/test installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn monitoring_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/monitoring")
}

/// Every metric name the dashboard's queries use.
fn dashboard_metric_names() -> BTreeSet<String> {
    let text = std::fs::read_to_string(monitoring_dir().join("grafana-dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard parses");
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().expect("an expression").to_owned());
        }
    }
    assert!(exprs.len() > 10, "{exprs:?}");
    let mut names = BTreeSet::new();
    for expr in exprs {
        let mut rest = expr.as_str();
        while let Some(at) = rest.find("dfs_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            names.insert(name);
        }
    }
    names
}

#[test]
fn every_endpoint_passes_promtool_and_the_dashboard_asks_only_for_served_metrics() {
    let cluster = Cluster::start(ClusterOptions {
        masters: 3,
        ..ClusterOptions::default()
    });
    let mount = cluster.mount();
    // Some of everything, so that labelled series exist: data, a failed lookup, a re-read.
    let path = mount.join("file");
    std::fs::write(&path, vec![7u8; 3 << 20]).unwrap();
    assert!(std::fs::metadata(mount.join("missing")).is_err());
    drop_page_cache(&path);
    assert_eq!(std::fs::read(&path).unwrap().len(), 3 << 20);

    // The chunk-health gauges appear once the leader has checked every chunk with every
    // chunkserver heard from (until then `dfs status` says `checking`).
    wait_until(
        Duration::from_secs(60),
        "the leader knows the chunks' health",
        || !cluster.dfs(&["status"]).contains(": checking"),
    );
    let mut addrs: Vec<String> = (0..3).map(|i| cluster.master_http_at(i)).collect();
    addrs.extend((0..3).map(|i| cluster.chunkserver_http_at(i)));
    addrs.push(mount.http());
    let mut served = BTreeSet::new();
    for addr in &addrs {
        let text = scrape(addr);
        promtool(&["check", "metrics"], &text);
        served.extend(names(&text));
    }
    let missing: Vec<_> = dashboard_metric_names()
        .into_iter()
        .filter(|name| !served.contains(name))
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard asks for unserved {missing:?}"
    );

    promtool(&["check", "rules", "alerts.yml"], "");
    promtool(&["test", "rules", "alerts_test.yml"], "");
}

#[test]
fn counters_move_with_a_known_workload() {
    let cluster = Cluster::start(ClusterOptions::default());
    let mount = cluster.mount();
    let master = cluster.master_http_at(0);
    let chunkservers: Vec<String> = (0..3).map(|i| cluster.chunkserver_http_at(i)).collect();
    let stored = || -> f64 {
        chunkservers
            .iter()
            .map(|cs| value(&scrape(cs), "dfs_chunkserver_written_bytes_total"))
            .sum()
    };
    let cluster_written = || value(&scrape(&master), "dfs_master_cluster_written_bytes_total");
    let (stored_before, cluster_before) = (stored(), cluster_written());
    let fuse_before = scrape(&mount.http());

    // 64 MiB through the mount, synced and closed: every byte on all three replicas.
    let path = mount.join("big");
    let mut file = std::fs::File::create(&path).unwrap();
    let piece = vec![0x5au8; 1 << 20];
    for _ in 0..64 {
        file.write_all(&piece).unwrap();
    }
    file.sync_all().unwrap();
    drop(file);
    let stored_after = stored();
    assert!(
        stored_after - stored_before >= 192.0 * MIB,
        "chunkservers stored {} MiB",
        (stored_after - stored_before) / MIB
    );
    // The master learns it from the next heartbeats.
    wait_until(
        Duration::from_secs(60),
        "the master counts the bytes stored",
        || cluster_written() - cluster_before >= 192.0 * MIB,
    );
    let fuse = scrape(&mount.http());
    assert!(
        value(&fuse, "dfs_fuse_written_bytes_total")
            - value(&fuse_before, "dfs_fuse_written_bytes_total")
            >= 64.0 * MIB
    );
    assert!(
        value(&fuse, r#"dfs_fuse_requests_total{op="write"}"#)
            > value(&fuse_before, r#"dfs_fuse_requests_total{op="write"}"#)
    );

    // A re-read past the page cache is served by the mount's block cache.
    let hits = || value(&scrape(&mount.http()), "dfs_client_cache_hits_total");
    let hits_before = hits();
    let read_back = |path: &Path| {
        drop_page_cache(path);
        let mut data = Vec::new();
        std::fs::File::open(path)
            .unwrap()
            .read_to_end(&mut data)
            .unwrap();
        assert_eq!(data.len(), 64 << 20);
    };
    read_back(&path);
    read_back(&path);
    assert!(hits() > hits_before, "no cache hit on a re-read");
    let fuse = scrape(&mount.http());
    assert!(value(&fuse, "dfs_fuse_read_bytes_total") >= 64.0 * MIB);

    // A lookup of a missing name: ENOENT for the application, a call of the master.
    let enoent = r#"dfs_fuse_errors_total{op="lookup",errno="ENOENT"}"#;
    let lookups = r#"dfs_master_rpc_calls_total{method="Namespace/Lookup"}"#;
    let (enoent_before, lookups_before) = (value(&fuse, enoent), value(&scrape(&master), lookups));
    let err = std::fs::metadata(mount.join("no-such-file")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    assert_eq!(value(&scrape(&mount.http()), enoent), enoent_before + 1.0);
    let master_text = scrape(&master);
    assert!(
        value(&master_text, lookups) > lookups_before,
        "{master_text}"
    );
    assert!(
        value(
            &master_text,
            r#"dfs_master_rpc_errors_total{method="Namespace/Lookup",code="NotFound"}"#
        ) >= 1.0
    );
    assert_eq!(value(&master_text, "dfs_master_raft_is_leader"), 1.0);
    assert!(
        value(&master_text, "dfs_master_inodes") >= 2.0,
        "the root and the file"
    );
    assert_eq!(
        value(&master_text, r#"dfs_master_chunkservers{state="live"}"#),
        3.0
    );
}
