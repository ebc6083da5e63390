//! `dfs stats`: the live view of a mount, a master and a chunkserver, read from their HTTP
//! metrics while the cluster works, and its error for an address that serves none.

use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use dfs_tests::{Cluster, binary, sh};

/// Runs `dfs stats --http ADDR --count N` to its end: exit code, standard output and error.
fn stats(addr: &str, lines: u32) -> (Option<i32>, String, String) {
    let output = Command::new(binary("dfs"))
        .args(["stats", "--http", addr, "--interval", "0.5", "--count"])
        .arg(lines.to_string())
        .stdin(Stdio::null())
        .output()
        .expect("run dfs stats");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The numbers of the lines after the header whose first column is `first_column`.
fn rows(text: &str, first_column: &str) -> Vec<Vec<String>> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        header.split_whitespace().next() == Some(first_column),
        "no header: {text}"
    );
    lines
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

#[test]
fn a_mount_writing_shows_its_throughput_and_the_servers_their_work() {
    let cluster = Cluster::start_default();
    let mount = cluster.mount();
    let root = mount.path().to_path_buf();
    let writer = thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(4);
        while Instant::now() < deadline {
            sh(
                &root,
                "dd if=/dev/zero of=stream bs=1M count=16 conv=fsync status=none",
            );
        }
    });
    let (code, out, err) = stats(&mount.http(), 6);
    writer.join().unwrap();
    assert_eq!(code, Some(0), "{err}");
    let mount_rows = rows(&out, "ops/s");
    assert_eq!(mount_rows.len(), 6, "{out}");
    let written: Vec<f64> = mount_rows.iter().map(|r| r[2].parse().unwrap()).collect();
    assert!(written.iter().any(|mib| *mib > 0.0), "write MiB/s: {out}");

    // The chunkservers stored what the mount wrote, and show their disks.
    let (code, out, err) = stats(&cluster.chunkserver_http_at(0), 2);
    assert_eq!(code, Some(0), "{err}");
    for row in rows(&out, "reads/s") {
        assert!(row[6].ends_with('%'), "disk used: {out}");
    }
    // The master answers the chunkservers' heartbeats (every 500 ms here) at the least.
    let (code, out, err) = stats(&cluster.master_http_at(0), 3);
    assert_eq!(code, Some(0), "{err}");
    let calls: Vec<f64> = rows(&out, "calls/s")
        .iter()
        .map(|r| r[0].parse().unwrap())
        .collect();
    assert!(calls.iter().any(|c| *c > 0.0), "calls/s: {out}");
}

#[test]
fn an_address_without_metrics_is_a_clear_error() {
    // A port nothing listens on: bind one, note it, close it.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .to_string();
    let (code, out, err) = stats(&addr, 1);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains(&format!("cannot read http://{addr}/metrics")),
        "{err}"
    );
}
