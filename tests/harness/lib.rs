//! Test harness: real dfs clusters on loopback, as the integration tests in this directory use
//! them.
//!
//! A [`Cluster`] is one `dfs-master` and N `dfs-chunkserver` child processes, each on
//! `127.0.0.1:0` with its own data directory under one temporary directory. Every server writes
//! its bound address to an `--addr-file` once it is ready (a chunkserver only after registering
//! with the master), so tests wait for readiness instead of sleeping. A [`Mount`] is a
//! `dfs-fuse` child process with a real FUSE mount in a temporary directory. A
//! [`LocalCluster`] runs the same servers inside the test process (through `dfs_master::run`
//! and `dfs_chunkserver::run`), for client-library tests that need neither FUSE nor root.
//!
//! Everything is torn down on drop — also when a test panics — so a failing test leaves no
//! mount and no process behind. Drop the [`Mount`] before its [`Cluster`] (declare it after).
//!
//! The binaries are taken from the cargo target directory the test itself was built in, so
//! `cargo build --release --bins` must have run first (`scripts/test` does).
//!
//! One module per concern: `cluster` (the servers' life cycle), `local` (the in-process
//! cluster), `admin` (the `dfs` CLI, chunk maps, replica files and the masters' status),
//! `mount` (FUSE mounts), `process` (spawning, readiness, signals), `shell` (commands and
//! errnos), `files` (page-cache drops and checked closes), `http` (requests to the HTTP services), `browser` (headless Chromium over WebDriver), `data` (reproducible test data),
//! `model` (what applications were told succeeded, checked against a mount) and `wait` (hang
//! detectors).
//! Tests import everything from the crate root (`dfs_tests::…`), re-exported below; a new helper
//! goes into the module of its concern.

mod admin;
mod browser;
mod cluster;
mod data;
mod files;
mod http;
mod local;
mod model;
mod mount;
mod process;
mod shell;
mod wait;

pub use admin::{report_value, status_healthy};
pub use browser::{Browser, Element, artifacts_dir};
pub use cluster::{Cluster, ClusterOptions, tls_args};
pub use data::{XorShift, pseudo_random_bytes, sha256_file};
pub use files::{close, drop_page_cache, drop_pages, read_fresh, try_read_fresh};
pub use http::{HttpReply, http_get, http_request};
pub use local::LocalCluster;
pub use model::{Acknowledged, check_acknowledged, differences};
pub use mount::{Mount, is_mounted};
pub use process::binary;
pub use shell::{assert_success, errno, expect_errno, output_text, repo_path, sh, sh_output};
pub use wait::{in_syscall, wait_until, within};
