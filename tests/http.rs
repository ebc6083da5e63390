//! The HTTP address of every process: a master, its chunkservers and a mount each serve
//! `/metrics` in the OpenMetrics text format on `--http-listen`, and a master answers its
//! health check under `/api/v1`.

use dfs_tests::{Cluster, ClusterOptions, http_get};

#[test]
fn every_process_serves_metrics_and_each_master_its_health() {
    let cluster = Cluster::start(ClusterOptions {
        masters: 3,
        ..ClusterOptions::default()
    });
    let mount = cluster.mount();
    let mut addrs: Vec<String> = (0..3).map(|i| cluster.master_http_at(i)).collect();
    addrs.extend((0..3).map(|i| cluster.chunkserver_http_at(i)));
    addrs.push(mount.http());
    for addr in &addrs {
        let reply = http_get(addr, "/metrics");
        assert_eq!(reply.status, 200, "{addr}: {}", reply.text());
        let content_type = reply.header("content-type").unwrap_or_default();
        assert!(
            content_type.starts_with("application/openmetrics-text"),
            "{content_type}"
        );
        assert!(
            reply.text().trim_end().ends_with("# EOF"),
            "{}",
            reply.text()
        );
    }

    let leader = cluster.leader();
    for i in 0..3 {
        let reply = http_get(&cluster.master_http_at(i), "/api/v1/health");
        assert_eq!(reply.status, 200, "{}", reply.text());
        let health = reply.json();
        assert_eq!(health["status"], "ok");
        assert_eq!(health["node_id"], (i + 1) as u64);
        assert_eq!(health["leader"], i == leader, "{health}");
    }
    let missing = http_get(&cluster.master_http_at(0), "/api/v1/no-such-thing");
    assert_eq!(missing.status, 404);
}
