//! What the `dfs` admin CLI asks the master: the state of every chunkserver and the
//! replication health of the cluster, of one file, or of a subtree; and decommissioning.
//!
//! Health is judged as the replication check judges it ([`ChunkHealth`]): a replica on an
//! active or stale server is healthy, one on a draining server is readable but leaving, one
//! on a dead server does not count.

use std::collections::HashMap;
use std::time::Instant;

use dfs_proto::pb::{self, FileKind};
use dfs_proto::{FsError, ROOT_INO};

use crate::chunks::Chunk;
use crate::cluster::registry::ServerView;
use crate::cluster::replication::ChunkHealth;
use crate::error::Result;
use crate::master::Master;

/// Directory entries read per page while walking a subtree.
const WALK_PAGE: u32 = 1000;

/// Every server with its state, and the cluster's replication health as of the last check.
pub fn cluster_status(master: &Master, now: Instant) -> Result<pb::ClusterStatusReply> {
    let views = master.registry().snapshot(now);
    let mut replicas: HashMap<u64, u64> = HashMap::new();
    // Replica counts per server come from the chunk map, which is the truth the master acts on.
    let store_chunks = master.chunk_map().all_chunks()?;
    for (_, _, chunk) in &store_chunks {
        for &id in &chunk.replicas {
            *replicas.entry(id).or_default() += 1;
        }
    }
    let (counts, in_flight) = master.replication().counts();
    let servers = views
        .iter()
        .map(|v| server_status(v, replicas.get(&v.server_id).copied().unwrap_or(0)))
        .collect();
    Ok(pb::ClusterStatusReply {
        servers,
        files: master.namespace().inode_count()?,
        chunks: store_chunks.len() as u64,
        under_replicated: counts.under_replicated,
        missing: counts.missing,
        over_replicated: counts.over_replicated,
        replications_in_flight: in_flight as u64,
        replication: master.cluster_config().replication,
    })
}

/// The chunks of the regular file at `path`, with their replicas and health.
pub fn file_info(master: &Master, path: &str, now: Instant) -> Result<pb::FileInfoReply> {
    let attr = resolve(master, path)?;
    if attr.kind() != FileKind::Regular {
        return Err(FsError::IsDir.into());
    }
    let views = master.registry().snapshot(now);
    let by_id: HashMap<u64, &ServerView> = views.iter().map(|v| (v.server_id, v)).collect();
    let file = master.chunk_map().chunks(attr.ino, 0, 0)?;
    let chunks = file
        .chunks
        .iter()
        .map(|(index, chunk)| chunk_health(*index, chunk, &by_id))
        .collect();
    Ok(pb::FileInfoReply {
        attr: Some(attr),
        chunks,
        replication: master.cluster_config().replication,
    })
}

/// The replication health of the file at `path`, or of the files directly in the directory
/// at `path` (the root for "" or "/"), with the directory's subdirectories listed for the
/// caller to check next. One level per call keeps every call small and lets the caller (the
/// `dfs fsck` walk) report progress on large trees.
pub fn fsck(master: &Master, path: &str, now: Instant) -> Result<pb::FsckReply> {
    let top = resolve(master, path)?;
    let path = normalize(path);
    let views = master.registry().snapshot(now);
    let by_id: HashMap<u64, &ServerView> = views.iter().map(|v| (v.server_id, v)).collect();
    let replication = master.cluster_config().replication as usize;
    let mut reply = pb::FsckReply::default();
    if top.kind() != FileKind::Directory {
        check_file(master, &top, path, replication, &by_id, &mut reply)?;
        return Ok(reply);
    }
    reply.directories = 1;
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
                    reply.subdirectories.push(child)
                }
                Some(attr) => check_file(master, &attr, child, replication, &by_id, &mut reply)?,
                None => {}
            }
        }
        match page.entries.last() {
            Some(last) if page.more => after = last.name.clone(),
            _ => break,
        }
    }
    reply.damaged_files.sort();
    Ok(reply)
}

/// Adds the chunks of one regular file (other kinds hold no chunks) to an fsck reply.
fn check_file(
    master: &Master,
    attr: &pb::Attr,
    path: String,
    replication: usize,
    by_id: &HashMap<u64, &ServerView>,
    reply: &mut pb::FsckReply,
) -> Result<()> {
    if attr.kind() != FileKind::Regular {
        return Ok(());
    }
    reply.files += 1;
    let mut damaged = false;
    for (_, chunk) in master.chunk_map().chunks(attr.ino, 0, 0)?.chunks {
        reply.chunks += 1;
        let health = ChunkHealth::of(&chunk, by_id);
        if health.is_missing() {
            reply.missing += 1;
            damaged = true;
        } else if health.healthy.len() < replication {
            reply.under_replicated += 1;
            damaged = true;
        } else {
            reply.healthy_chunks += 1;
        }
    }
    if damaged {
        reply.damaged_files.push(path);
    }
    Ok(())
}

/// Starts draining `server` (an id or an address) and returns its status.
pub fn decommission(master: &Master, server: &str, now: Instant) -> Result<pb::ServerStatus> {
    let server_id = master.registry().decommission(server)?;
    let status = cluster_status(master, now)?;
    Ok(status
        .servers
        .into_iter()
        .find(|s| s.server_id == server_id)
        .unwrap_or_default())
}

fn server_status(view: &ServerView, replicas: u64) -> pb::ServerStatus {
    pb::ServerStatus {
        server_id: view.server_id,
        addr: view.addr.clone(),
        rack: view.rack.clone(),
        state: view.state as i32,
        capacity_bytes: view.capacity_bytes,
        free_bytes: view.free_bytes,
        replicas,
        last_heartbeat_ms: view
            .since_heartbeat
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
        active_transfers: view.active_transfers,
    }
}

fn chunk_health(index: u64, chunk: &Chunk, by_id: &HashMap<u64, &ServerView>) -> pb::ChunkHealth {
    let health = ChunkHealth::of(chunk, by_id);
    let replicas = chunk
        .replicas
        .iter()
        .map(|id| {
            let view = by_id.get(id);
            pb::ReplicaHealth {
                server_id: *id,
                addr: view.map(|v| v.addr.clone()).unwrap_or_default(),
                rack: view.map(|v| v.rack.clone()).unwrap_or_default(),
                state: view.map_or(pb::ServerState::Dead, |v| v.state) as i32,
            }
        })
        .collect();
    pb::ChunkHealth {
        index,
        chunk_id: chunk.chunk_id,
        version: chunk.version,
        length: chunk.length,
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
fn resolve(master: &Master, path: &str) -> Result<pb::Attr> {
    let mut attr = master.namespace().getattr(ROOT_INO)?;
    for component in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
        attr = master.namespace().lookup(attr.ino, component.as_bytes())?;
    }
    Ok(attr)
}
