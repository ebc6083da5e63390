//! `dfs-cli`: the operator's view of a dfs cluster, over the master's admin RPCs.
//!
//! * `dfs status` — every chunkserver with its state (active, stale, dead, draining),
//!   capacity and replica count, and the cluster's under-replicated and missing chunks.
//! * `dfs info PATH` — a file's chunks, versions, replicas and their health.
//! * `dfs fsck [PATH]` — replication health of a subtree ([`fsck`], with progress on large
//!   trees); exits 1 if a chunk is damaged.
//! * `dfs decommission SERVER` — start draining a server (by id or address).
//! * `dfs put LOCAL PATH`, `dfs get PATH LOCAL` — copy a file in or out without a mount
//!   ([`transfer`]), with progress on standard error.
//!
//! Paths are relative to the filesystem's root, not to a mount. The output is plain text
//! with one `key: value` per line for the summary, so scripts (and the tests) can read it.

pub mod fsck;
pub mod transfer;

use std::fmt::Write as _;
use std::path::PathBuf;

use dfs_proto::FsError;
use dfs_proto::pb::admin_client::AdminClient;
use dfs_proto::pb::{self, ServerState};
use tonic::transport::Channel;

/// Options of the `dfs` command.
#[derive(Debug, clap::Parser)]
#[command(name = "dfs", version, about = "Administer a dfs cluster")]
pub struct Cli {
    /// Address of the master (`host:port` or `http://host:port`).
    #[arg(
        long,
        env = "DFS_MASTER",
        default_value = "127.0.0.1:9400",
        global = true
    )]
    pub master: String,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The admin commands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Servers, their states and capacity; under-replicated and missing chunk counts.
    Status,
    /// A file's chunks, versions, replicas and their health.
    Info {
        /// Path of the file, relative to the filesystem root.
        path: String,
    },
    /// Replication health of every file under PATH (default: the whole filesystem).
    Fsck {
        /// Path of a directory or file, relative to the filesystem root.
        #[arg(default_value = "/")]
        path: String,
    },
    /// Drain a chunkserver: its replicas are copied elsewhere, then it can be stopped.
    Decommission {
        /// The server's id or `host:port` address, as `dfs status` lists it.
        server: String,
    },
    /// Copy a local file into the cluster (created or replaced), synced on every replica.
    Put {
        /// The local file.
        local: PathBuf,
        /// Path in the cluster, relative to the filesystem root; its directory must exist.
        path: String,
    },
    /// Copy a file out of the cluster.
    Get {
        /// Path in the cluster, relative to the filesystem root.
        path: String,
        /// The local file to write.
        local: PathBuf,
    },
}

/// Everything that makes a `dfs` command fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The master could not be reached.
    #[error("cannot reach the master at {addr}: {source}")]
    Connect {
        /// The master's address.
        addr: String,
        /// Why.
        source: tonic::transport::Error,
    },
    /// The master (or a chunkserver) refused or failed the request.
    #[error("{0}")]
    Master(FsError),
    /// A local file could not be read or written.
    #[error("{0}: {1}")]
    Local(String, std::io::Error),
}

/// What a command prints and its exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Text for standard output.
    pub text: String,
    /// Process exit code: 0, or 1 when `fsck` finds damage.
    pub code: u8,
}

/// Runs one command against the master.
pub async fn run(cli: Cli) -> Result<Output, Error> {
    let ok = |text| Output { text, code: 0 };
    match &cli.command {
        Command::Put { local, path } => {
            return Ok(ok(transfer::put(&cli.master, local, path).await?));
        }
        Command::Get { path, local } => {
            return Ok(ok(transfer::get(&cli.master, path, local).await?));
        }
        _ => {}
    }
    let uri = if cli.master.contains("://") {
        cli.master.clone()
    } else {
        format!("http://{}", cli.master)
    };
    let connect = |source| Error::Connect {
        addr: cli.master.clone(),
        source,
    };
    let channel = Channel::from_shared(uri)
        .map_err(|e| Error::Master(FsError::Invalid(e.to_string())))?
        .connect()
        .await
        .map_err(connect)?;
    let mut master = AdminClient::new(channel);
    let rpc = |status: tonic::Status| Error::Master(FsError::from_status(&status));
    match cli.command {
        Command::Status => {
            let reply = master.cluster_status(pb::Empty {}).await.map_err(rpc)?;
            Ok(ok(format_status(&reply.into_inner())))
        }
        Command::Info { path } => {
            let request = pb::PathRequest { path: path.clone() };
            let reply = master.file_info(request).await.map_err(rpc)?;
            Ok(ok(format_info(&path, &reply.into_inner())))
        }
        Command::Fsck { path } => {
            let reply = fsck::walk(&mut master, &path).await?;
            let damaged = reply.under_replicated + reply.missing > 0;
            Ok(Output {
                text: format_fsck(&path, &reply),
                code: u8::from(damaged),
            })
        }
        Command::Decommission { server } => {
            let request = pb::DecommissionRequest { server };
            let reply = master
                .decommission(request)
                .await
                .map_err(rpc)?
                .into_inner();
            Ok(ok(format!(
                "server {} ({}) is {}\n",
                reply.server_id,
                reply.addr,
                state_name(reply.state)
            )))
        }
        Command::Put { .. } | Command::Get { .. } => unreachable!("handled above"),
    }
}

/// The name of a server state as the CLI prints it.
pub fn state_name(state: i32) -> &'static str {
    match ServerState::try_from(state).unwrap_or(ServerState::Unspecified) {
        ServerState::Active => "active",
        ServerState::Stale => "stale",
        ServerState::Dead => "dead",
        ServerState::Draining => "draining",
        ServerState::Unspecified => "unknown",
    }
}

/// Bytes in binary units, e.g. `1.5 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The `dfs status` report.
pub fn format_status(status: &pb::ClusterStatusReply) -> String {
    let count = |state: ServerState| {
        status
            .servers
            .iter()
            .filter(|s| s.state == state as i32)
            .count()
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "servers: {} ({} active, {} stale, {} dead, {} draining)",
        status.servers.len(),
        count(ServerState::Active),
        count(ServerState::Stale),
        count(ServerState::Dead),
        count(ServerState::Draining),
    );
    let _ = writeln!(
        out,
        "  {:>4}  {:<9} {:<8} {:<22} {:>10} {:>10} {:>9} {:>5} {:>10}",
        "ID", "STATE", "RACK", "ADDRESS", "CAPACITY", "FREE", "REPLICAS", "LOAD", "HEARTBEAT"
    );
    for s in &status.servers {
        let rack = if s.rack.is_empty() { "-" } else { &s.rack };
        let _ = writeln!(
            out,
            "  {:>4}  {:<9} {:<8} {:<22} {:>10} {:>10} {:>9} {:>5} {:>8}ms",
            s.server_id,
            state_name(s.state),
            rack,
            s.addr,
            human_bytes(s.capacity_bytes),
            human_bytes(s.free_bytes),
            s.replicas,
            s.active_transfers,
            s.last_heartbeat_ms,
        );
    }
    let capacity: u64 = status.servers.iter().map(|s| s.capacity_bytes).sum();
    let free: u64 = status.servers.iter().map(|s| s.free_bytes).sum();
    let _ = writeln!(out, "capacity: {}", human_bytes(capacity));
    let _ = writeln!(out, "free: {}", human_bytes(free));
    let _ = writeln!(out, "inodes: {}", status.files);
    let _ = writeln!(out, "chunks: {}", status.chunks);
    let _ = writeln!(out, "replication: {}", status.replication);
    let _ = writeln!(out, "under-replicated: {}", status.under_replicated);
    let _ = writeln!(out, "missing: {}", status.missing);
    let _ = writeln!(out, "over-replicated: {}", status.over_replicated);
    let _ = writeln!(out, "copies in flight: {}", status.replications_in_flight);
    out
}

/// The health word of a chunk with `healthy` of `wanted` replicas and `readable` at all.
fn chunk_status(healthy: u32, wanted: u32, readable: bool) -> &'static str {
    if !readable {
        "missing"
    } else if healthy < wanted {
        "under-replicated"
    } else {
        "ok"
    }
}

/// The `dfs info PATH` report.
pub fn format_info(path: &str, info: &pb::FileInfoReply) -> String {
    let attr = info.attr.unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(out, "path: {path}");
    let _ = writeln!(out, "inode: {}", attr.ino);
    let _ = writeln!(out, "size: {}", attr.size);
    let _ = writeln!(out, "chunks: {}", info.chunks.len());
    let _ = writeln!(out, "replication: {}", info.replication);
    for chunk in &info.chunks {
        let readable = chunk
            .replicas
            .iter()
            .any(|r| r.state != ServerState::Dead as i32);
        let _ = writeln!(
            out,
            "chunk {} id {:016x} version {} length {} replicas {}/{} {}",
            chunk.index,
            chunk.chunk_id,
            chunk.version,
            chunk.length,
            chunk.healthy,
            info.replication,
            chunk_status(chunk.healthy, info.replication, readable),
        );
        for r in &chunk.replicas {
            let rack = if r.rack.is_empty() { "-" } else { &r.rack };
            let _ = writeln!(
                out,
                "  server {} {} rack {} {}",
                r.server_id,
                r.addr,
                rack,
                state_name(r.state)
            );
        }
    }
    out
}

/// The `dfs fsck PATH` report.
pub fn format_fsck(path: &str, fsck: &pb::FsckReply) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "path: {path}");
    let _ = writeln!(out, "directories: {}", fsck.directories);
    let _ = writeln!(out, "files: {}", fsck.files);
    let _ = writeln!(out, "chunks: {}", fsck.chunks);
    let _ = writeln!(out, "healthy: {}", fsck.healthy_chunks);
    let _ = writeln!(out, "under-replicated: {}", fsck.under_replicated);
    let _ = writeln!(out, "missing: {}", fsck.missing);
    for file in &fsck.damaged_files {
        let _ = writeln!(out, "damaged: /{file}");
    }
    let healthy = fsck.under_replicated + fsck.missing == 0;
    let _ = writeln!(
        out,
        "status: {}",
        if healthy { "HEALTHY" } else { "DAMAGED" }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
    }

    #[test]
    fn fsck_reports_damage() {
        let reply = pb::FsckReply {
            files: 2,
            chunks: 3,
            healthy_chunks: 2,
            missing: 1,
            damaged_files: vec!["a/b".into()],
            ..Default::default()
        };
        let text = format_fsck("/", &reply);
        assert!(text.contains("damaged: /a/b\n"), "{text}");
        assert!(text.ends_with("status: DAMAGED\n"), "{text}");
    }
}
