//! What the `dfs` admin CLI asks the master: the state of every chunkserver and the
//! replication health of the cluster, of one file, or of a subtree; and decommissioning.
//!
//! Health is judged as the replication check judges it ([`ChunkHealth`]): a replica on an
//! active or stale server is healthy, one on a draining server is readable but leaving, one
//! on a dead server does not count. The answers are the master's own types; the service turns
//! them into the admin messages ([`crate::convert`]).

use std::collections::HashMap;
use std::time::Instant;

use dfs_proto::pb::{Attr, FileKind};
use dfs_proto::{FsError, ROOT_INO};

use crate::chunks::Chunk;
use crate::cluster::registry::{ServerState, ServerView};
use crate::cluster::replication::{ChunkHealth, HealthCounts};
use crate::error::Result;
use crate::master::Master;

/// Directory entries read per page while walking a subtree.
const WALK_PAGE: u32 = 1000;

/// One chunkserver with the number of replicas the chunk map places on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerReport {
    /// The server as the registry sees it now.
    pub view: ServerView,
    /// Replicas the master places on this server.
    pub replicas: u64,
}

/// The whole cluster at a glance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterStatus {
    /// Every registered server, in id order.
    pub servers: Vec<ServerReport>,
    /// Inodes in the namespace.
    pub files: u64,
    /// Chunks in the chunk map.
    pub chunks: u64,
    /// Replication health as of the last complete replication check (`None` before one).
    pub health: Option<HealthCounts>,
    /// Copies in flight.
    pub replications_in_flight: u64,
    /// The replication factor.
    pub replication: u32,
}

/// One replica of a chunk, with the state of its server (dead if the server is unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaReport {
    /// The server holding it.
    pub server_id: u64,
    /// The server's data address (empty if unknown).
    pub addr: String,
    /// The server's rack label.
    pub rack: String,
    /// The server's state.
    pub state: ServerState,
}

/// One chunk of a file with its replicas and how many of them are healthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkReport {
    /// The chunk's index in the file.
    pub index: u64,
    /// The chunk.
    pub chunk: Chunk,
    /// Its replicas, in chain order.
    pub replicas: Vec<ReplicaReport>,
    /// Replicas that count towards the replication factor.
    pub healthy: u32,
}

/// A regular file's chunks and their health.
#[derive(Debug, Clone, PartialEq)]
pub struct FileReport {
    /// The file's attributes.
    pub attr: Attr,
    /// Its allocated chunks, in index order.
    pub chunks: Vec<ChunkReport>,
    /// The replication factor.
    pub replication: u32,
}

/// The replication health of a file, or of the files directly in one directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsckReport {
    /// Directories checked (one, or none for a file).
    pub directories: u64,
    /// Regular files checked.
    pub files: u64,
    /// Their chunks.
    pub chunks: u64,
    /// Chunks with at least the replication factor of healthy replicas.
    pub healthy_chunks: u64,
    /// Chunks with fewer healthy replicas, but at least one readable.
    pub under_replicated: u64,
    /// Chunks with no readable replica.
    pub missing: u64,
    /// Paths (relative to the root) of files with an under-replicated or missing chunk, sorted.
    pub damaged_files: Vec<String>,
    /// Subdirectories of the checked directory (paths relative to the root), left for the
    /// caller to check next.
    pub subdirectories: Vec<String>,
}

/// Every server with its state, and the cluster's replication health as of the last check.
pub fn cluster_status(master: &Master, now: Instant) -> Result<ClusterStatus> {
    let views = master.registry().snapshot(now);
    let mut replicas: HashMap<u64, u64> = HashMap::new();
    // Replica counts per server come from the chunk map, which is the truth the master acts on.
    let store_chunks = master.chunk_map().all_chunks()?;
    for (_, _, chunk) in &store_chunks {
        for &id in &chunk.replicas {
            *replicas.entry(id).or_default() += 1;
        }
    }
    let (health, in_flight) = master.replication().counts();
    let servers = views
        .into_iter()
        .map(|view| ServerReport {
            replicas: replicas.get(&view.server_id).copied().unwrap_or(0),
            view,
        })
        .collect();
    Ok(ClusterStatus {
        servers,
        files: master.namespace().inode_count()?,
        chunks: store_chunks.len() as u64,
        health,
        replications_in_flight: in_flight as u64,
        replication: master.cluster_config().replication,
    })
}

/// The chunks of the regular file at `path`, with their replicas and health.
pub fn file_info(master: &Master, path: &str, now: Instant) -> Result<FileReport> {
    let attr = resolve(master, path)?;
    if attr.kind() != FileKind::Regular {
        return Err(FsError::IsDir.into());
    }
    let views = master.registry().snapshot(now);
    let by_id: HashMap<u64, &ServerView> = views.iter().map(|v| (v.server_id, v)).collect();
    let file = master.chunk_map().chunks(attr.ino, 0, 0)?;
    let chunks = file
        .chunks
        .into_iter()
        .map(|(index, chunk)| chunk_report(index, chunk, &by_id))
        .collect();
    Ok(FileReport {
        attr,
        chunks,
        replication: master.cluster_config().replication,
    })
}

/// The replication health of the file at `path`, or of the files directly in the directory
/// at `path` (the root for "" or "/"), with the directory's subdirectories listed for the
/// caller to check next. One level per call keeps every call small and lets the caller (the
/// `dfs fsck` walk) report progress on large trees.
pub fn fsck(master: &Master, path: &str, now: Instant) -> Result<FsckReport> {
    let top = resolve(master, path)?;
    let path = normalize(path);
    let views = master.registry().snapshot(now);
    let by_id: HashMap<u64, &ServerView> = views.iter().map(|v| (v.server_id, v)).collect();
    let replication = master.cluster_config().replication as usize;
    let mut report = FsckReport::default();
    if top.kind() != FileKind::Directory {
        check_file(master, &top, path, replication, &by_id, &mut report)?;
        return Ok(report);
    }
    report.directories = 1;
    let mut after = Vec::new();
    loop {
        let page = master.namespace().readdir(top.ino, &after, WALK_PAGE)?;
        for entry in &page.entries {
            let name = String::from_utf8_lossy(&entry.name);
            let child = if path.is_empty() {
                name.into_owned()
            } else {
                format!("{path}/{name}")
            };
            match entry.attr {
                Some(attr) if attr.kind() == FileKind::Directory => {
                    report.subdirectories.push(child)
                }
                Some(attr) => check_file(master, &attr, child, replication, &by_id, &mut report)?,
                None => {}
            }
        }
        match page.entries.last() {
            Some(last) if page.more => after = last.name.clone(),
            _ => break,
        }
    }
    report.damaged_files.sort();
    Ok(report)
}

/// Adds the chunks of one regular file (other kinds hold no chunks) to an fsck report.
fn check_file(
    master: &Master,
    attr: &Attr,
    path: String,
    replication: usize,
    by_id: &HashMap<u64, &ServerView>,
    report: &mut FsckReport,
) -> Result<()> {
    if attr.kind() != FileKind::Regular {
        return Ok(());
    }
    report.files += 1;
    let mut damaged = false;
    for (_, chunk) in master.chunk_map().chunks(attr.ino, 0, 0)?.chunks {
        report.chunks += 1;
        let health = ChunkHealth::of(&chunk, by_id);
        if health.is_missing() {
            report.missing += 1;
            damaged = true;
        } else if health.healthy.len() < replication {
            report.under_replicated += 1;
            damaged = true;
        } else {
            report.healthy_chunks += 1;
        }
    }
    if damaged {
        report.damaged_files.push(path);
    }
    Ok(())
}

/// Starts draining `server` (an id or an address) and returns its report (`None` if it left
/// the registry meanwhile).
pub fn decommission(master: &Master, server: &str, now: Instant) -> Result<Option<ServerReport>> {
    let server_id = master.registry().decommission(server)?;
    let status = cluster_status(master, now)?;
    Ok(status
        .servers
        .into_iter()
        .find(|s| s.view.server_id == server_id))
}

/// A chunk with its replicas as the servers in `by_id` stand.
fn chunk_report(index: u64, chunk: Chunk, by_id: &HashMap<u64, &ServerView>) -> ChunkReport {
    let health = ChunkHealth::of(&chunk, by_id);
    let replicas = chunk
        .replicas
        .iter()
        .map(|id| {
            let view = by_id.get(id);
            ReplicaReport {
                server_id: *id,
                addr: view.map(|v| v.addr.clone()).unwrap_or_default(),
                rack: view.map(|v| v.rack.clone()).unwrap_or_default(),
                state: view.map_or(ServerState::Dead, |v| v.state),
            }
        })
        .collect();
    ChunkReport {
        index,
        chunk,
        replicas,
        healthy: health.healthy.len() as u32,
    }
}

/// `path` without leading, trailing or doubled slashes ("" for the root).
fn normalize(path: &str) -> String {
    path.split('/')
        .filter(|c| !c.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

/// The attributes of the inode at `path`, relative to the root.
fn resolve(master: &Master, path: &str) -> Result<Attr> {
    let mut attr = master.namespace().getattr(ROOT_INO)?;
    for component in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
        attr = master.namespace().lookup(attr.ino, component.as_bytes())?;
    }
    Ok(attr)
}
