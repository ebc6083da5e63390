//! The master's wire contract, spoken by a client nobody here wrote: Python `grpcio` with stubs
//! generated from `proto/` by protoc (`tests/python/wire_client.py`). It creates a directory,
//! looks it up, lists it, gets `NOT_FOUND` and `ALREADY_EXISTS` with the errno in the
//! `dfs-errno` metadata, and reads the cluster status; the `dfs` command then sees the
//! directory it made. It also sends hostile input: a request over the 4 MiB message limit
//! (`OUT_OF_RANGE`, refused from its length prefix), bytes that are no protobuf message
//! (`INTERNAL`), names no filesystem allows and a parent that does not exist, each with its
//! errno; the root lists exactly what it did before. Last, a chunkserver refuses reads,
//! writes and stats without a chunk token or with a forged one (`PERMISSION_DENIED`, `ETOKEN`).

use std::process::Command;

use dfs_tests::{Cluster, assert_success, output_text, repo_path};

/// Debian's Python, where `python3-grpcio` and `python3-protobuf` are installed.
const PYTHON: &str = "/usr/bin/python3";

#[test]
fn a_python_grpc_client_speaks_the_masters_services() {
    let cluster = Cluster::start_default();
    let stubs = tempfile::tempdir().expect("tempdir");
    let protos: Vec<_> = std::fs::read_dir(repo_path("proto/proto"))
        .expect("read proto/proto")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "proto"))
        .collect();
    let out = Command::new("protoc")
        .arg("-I")
        .arg(repo_path("proto/proto"))
        .arg(format!("--python_out={}", stubs.path().display()))
        .arg(format!("--grpc_python_out={}", stubs.path().display()))
        .arg("--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin")
        .args(&protos)
        .output()
        .expect("run protoc (Debian packages protobuf-compiler, protobuf-compiler-grpc)");
    assert_success("protoc --grpc_python_out", &out);

    let out = Command::new(PYTHON)
        .arg(repo_path("tests/python/wire_client.py"))
        .arg(cluster.master_addr())
        .arg(stubs.path())
        .arg(cluster.chunkserver_addr(0))
        .output()
        .expect("run python3 (Debian packages python3-grpcio, python3-protobuf)");
    assert_success("wire_client.py", &out);
    let checks = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        checks.lines().filter(|l| l.starts_with("ok ")).count(),
        22,
        "{}",
        output_text(&out)
    );

    let listing = cluster.dfs(&["ls", "-l", "/"]);
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("drwxr-x--- ") && l.ends_with(" from-python")),
        "{listing}"
    );
}
