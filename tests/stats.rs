//! `dfs stats`: the live view of a mount, a master and a chunkserver, read from their HTTP
//! metrics while the cluster works, and its error for an address that serves none.

use dfs_tests::binary;
use std::process::{Command, Stdio};

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

#[allow(dead_code)]
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
