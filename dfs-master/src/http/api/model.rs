//! The JSON shapes of the API and their conversions from the client library's and the wire's
//! types: all in one place, so the contract the dashboard and scripts rely on reads as one
//! list, and the OpenAPI document is derived from it.

use std::time::{SystemTime, UNIX_EPOCH};

use dfs_client::{Attr, DirEntry, FileKind};
use dfs_proto::pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Milliseconds since the Unix epoch (0 for times before it).
fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The name of a node kind in the API.
fn kind_name(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Regular => "file",
        FileKind::Directory => "dir",
        FileKind::Symlink => "symlink",
        FileKind::Fifo => "fifo",
        FileKind::CharDevice => "char_device",
        FileKind::BlockDevice => "block_device",
        FileKind::Socket => "socket",
    }
}

/// The name of a chunkserver state in the API.
fn server_state_name(state: i32) -> &'static str {
    match pb::ServerState::try_from(state) {
        Ok(pb::ServerState::Active) => "active",
        Ok(pb::ServerState::Stale) => "stale",
        Ok(pb::ServerState::Dead) => "dead",
        Ok(pb::ServerState::Draining) => "draining",
        _ => "unknown",
    }
}

/// The name of a master's role in the API.
fn role_name(role: i32) -> &'static str {
    match pb::MasterRole::try_from(role) {
        Ok(pb::MasterRole::Leader) => "leader",
        Ok(pb::MasterRole::Follower) => "follower",
        Ok(pb::MasterRole::Candidate) => "candidate",
        Ok(pb::MasterRole::Learner) => "learner",
        _ => "unknown",
    }
}

/// The attributes of a node (`GET /stat/…`, and the answer of uploads, mkdir and rename).
#[derive(Debug, Serialize, ToSchema)]
pub struct Stat {
    /// The path asked about.
    pub path: String,
    /// Inode number.
    pub ino: u64,
    /// `file`, `dir`, `symlink`, `fifo`, `char_device`, `block_device` or `socket`.
    pub kind: &'static str,
    /// Size in bytes (of a symlink: of its target).
    pub size: u64,
    /// Permission bits (with setuid, setgid and sticky), without the type bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Number of hard links.
    pub nlink: u32,
    /// Last access, in milliseconds since the Unix epoch.
    pub atime_ms: u64,
    /// Last change of content, in milliseconds since the Unix epoch.
    pub mtime_ms: u64,
    /// Last change of content or attributes, in milliseconds since the Unix epoch.
    pub ctime_ms: u64,
}

impl Stat {
    /// The attributes `attr` of `path`.
    pub fn new(path: &str, attr: &Attr) -> Stat {
        Stat {
            path: path.to_string(),
            ino: attr.ino,
            kind: kind_name(attr.kind),
            size: attr.size,
            mode: u32::from(attr.perm),
            uid: attr.uid,
            gid: attr.gid,
            nlink: attr.nlink,
            atime_ms: millis(attr.atime),
            mtime_ms: millis(attr.mtime),
            ctime_ms: millis(attr.ctime),
        }
    }
}

/// One entry of a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct Entry {
    /// Its name in the directory (invalid UTF-8 replaced by U+FFFD).
    pub name: String,
    /// `file`, `dir`, `symlink`, …
    pub kind: &'static str,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits, without the type bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Last change of content, in milliseconds since the Unix epoch.
    pub mtime_ms: u64,
}

impl From<&DirEntry> for Entry {
    fn from(entry: &DirEntry) -> Entry {
        Entry {
            name: String::from_utf8_lossy(&entry.name).into_owned(),
            kind: kind_name(entry.attr.kind),
            size: entry.attr.size,
            mode: u32::from(entry.attr.perm),
            uid: entry.attr.uid,
            gid: entry.attr.gid,
            mtime_ms: millis(entry.attr.mtime),
        }
    }
}

/// One page of a directory listing (`GET /list/…`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Listing {
    /// The directory listed.
    pub path: String,
    /// Entries in name (byte) order, without `.` and `..`.
    pub entries: Vec<Entry>,
    /// The `after` of the next page; null on the last page.
    pub next: Option<String>,
}

/// The query of a listing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Most entries in the page (default 1000, at most 10000).
    pub limit: Option<u32>,
    /// List the entries after this name (the `next` of the previous page).
    pub after: Option<String>,
    /// Only entries whose name contains this text.
    pub name: Option<String>,
}

/// The query of an upload.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// `true`: refuse (409) to replace an existing file.
    #[serde(default)]
    pub exclusive: bool,
}

/// The query of an fsck.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FsckQuery {
    /// The absolute path of the subtree to check (default `/`).
    pub path: Option<String>,
}

/// The body of `POST /rename`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RenameRequest {
    /// The absolute path renamed.
    pub from: String,
    /// Its new absolute path; an existing file there is replaced, as `rename(2)` does.
    pub to: String,
}

/// Where one replica of a chunk is.
#[derive(Debug, Serialize, ToSchema)]
pub struct Replica {
    /// The chunkserver's id.
    pub server: u64,
    /// Its address (`host:port`).
    pub address: String,
    /// Its rack label (empty if none).
    pub rack: String,
    /// Its state: `active`, `stale`, `dead` or `draining`.
    pub state: &'static str,
}

/// One chunk of a file.
#[derive(Debug, Serialize, ToSchema)]
pub struct Chunk {
    /// Its position in the file (chunk `i` holds bytes from `i × chunk size`).
    pub index: u64,
    /// The chunk id.
    pub id: u64,
    /// Its version, bumped by every new writer.
    pub version: u64,
    /// Bytes it holds.
    pub length: u64,
    /// Replicas on active or stale servers, which count towards the replication factor.
    pub healthy: u32,
    /// Every known replica.
    pub replicas: Vec<Replica>,
}

/// A file's chunks and their replicas (`GET /chunks/…`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Chunks {
    /// The file.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// The cluster's replication factor.
    pub replication: u32,
    /// Its chunks in order.
    pub chunks: Vec<Chunk>,
}

impl Chunks {
    /// The chunk report `info` of `path`.
    pub fn new(path: &str, info: pb::FileInfoReply) -> Chunks {
        let chunks = info
            .chunks
            .into_iter()
            .map(|chunk| Chunk {
                index: chunk.index,
                id: chunk.chunk_id,
                version: chunk.version,
                length: chunk.length,
                healthy: chunk.healthy,
                replicas: chunk
                    .replicas
                    .into_iter()
                    .map(|r| Replica {
                        server: r.server_id,
                        address: r.addr,
                        rack: r.rack,
                        state: server_state_name(r.state),
                    })
                    .collect(),
            })
            .collect();
        Chunks {
            path: path.to_string(),
            size: info.attr.map_or(0, |a| a.size),
            replication: info.replication,
            chunks,
        }
    }
}

/// A chunkserver as the leader sees it (`GET /servers`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Server {
    /// Its id.
    pub id: u64,
    /// Its address (`host:port`).
    pub address: String,
    /// Its rack label (empty if none).
    pub rack: String,
    /// `active`, `stale` (missed heartbeats), `dead` or `draining` (decommissioning).
    pub state: &'static str,
    /// Bytes it offers.
    pub capacity_bytes: u64,
    /// Bytes used of them.
    pub used_bytes: u64,
    /// Bytes free.
    pub free_bytes: u64,
    /// Replicas the master places on it.
    pub replicas: u64,
    /// Transfers in progress at its last heartbeat: its load.
    pub active_transfers: u32,
    /// Milliseconds since its last heartbeat (0: not heard from since the leader started).
    pub last_heartbeat_ms: u64,
}

impl From<pb::ServerStatus> for Server {
    fn from(s: pb::ServerStatus) -> Server {
        Server {
            id: s.server_id,
            state: server_state_name(s.state),
            used_bytes: s.capacity_bytes.saturating_sub(s.free_bytes),
            address: s.addr,
            rack: s.rack,
            capacity_bytes: s.capacity_bytes,
            free_bytes: s.free_bytes,
            replicas: s.replicas,
            active_transfers: s.active_transfers,
            last_heartbeat_ms: s.last_heartbeat_ms,
        }
    }
}

/// How many chunkservers are in each state.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct ServerCounts {
    /// All known chunkservers.
    pub total: u64,
    /// Heartbeating, taking new replicas.
    pub active: u64,
    /// Missed heartbeats, not yet dead.
    pub stale: u64,
    /// Silent past the dead timeout.
    pub dead: u64,
    /// Being decommissioned.
    pub draining: u64,
}

/// Capacity of the servers that are not dead.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Capacity {
    /// Bytes offered.
    pub total_bytes: u64,
    /// Bytes used.
    pub used_bytes: u64,
    /// Bytes free.
    pub free_bytes: u64,
}

/// The whole cluster at a glance (`GET /status`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterStatus {
    /// Chunkservers by state.
    pub servers: ServerCounts,
    /// Capacity of the live chunkservers.
    pub capacity: Capacity,
    /// Inodes in the namespace: files, directories, symlinks, … (the root included).
    pub inodes: u64,
    /// Chunks of the files.
    pub chunks: u64,
    /// The replication factor.
    pub replication: u32,
    /// Whether the leader has checked every chunk since it took office; until then the three
    /// counts below read zero and say nothing.
    pub health_checked: bool,
    /// Chunks with fewer healthy replicas than the replication factor (at least one).
    pub under_replicated: u64,
    /// Chunks with no readable replica.
    pub missing: u64,
    /// Chunks with more replicas than the replication factor.
    pub over_replicated: u64,
    /// Re-replications in progress.
    pub replications_in_flight: u64,
    /// The group of masters.
    pub masters: Masters,
}

impl ClusterStatus {
    /// The status of a cluster from the leader's report and the group's.
    pub fn new(status: pb::ClusterStatusReply, masters: Masters) -> ClusterStatus {
        let mut servers = ServerCounts::default();
        let mut capacity = Capacity::default();
        for server in &status.servers {
            servers.total += 1;
            match pb::ServerState::try_from(server.state) {
                Ok(pb::ServerState::Active) => servers.active += 1,
                Ok(pb::ServerState::Stale) => servers.stale += 1,
                Ok(pb::ServerState::Draining) => servers.draining += 1,
                _ => servers.dead += 1,
            }
            if server.state != pb::ServerState::Dead as i32 {
                capacity.total_bytes += server.capacity_bytes;
                capacity.free_bytes += server.free_bytes;
                capacity.used_bytes += server.capacity_bytes.saturating_sub(server.free_bytes);
            }
        }
        ClusterStatus {
            servers,
            capacity,
            inodes: status.files,
            chunks: status.chunks,
            replication: status.replication,
            health_checked: status.health_checked,
            under_replicated: status.under_replicated,
            missing: status.missing,
            over_replicated: status.over_replicated,
            replications_in_flight: status.replications_in_flight,
            masters,
        }
    }
}

/// One member of the group of masters.
#[derive(Debug, Serialize, ToSchema)]
pub struct MasterMember {
    /// Its node id.
    pub id: u64,
    /// The address clients and the other masters use.
    pub address: String,
    /// `leader`, `follower`, `candidate`, `learner` or `unknown` (unreachable).
    pub role: &'static str,
    /// Whether it votes.
    pub voter: bool,
    /// Its Raft term.
    pub term: u64,
    /// Index of the last entry of its log.
    pub last_log_index: u64,
    /// Index of the last entry applied to its metadata.
    pub applied_index: u64,
    /// Entries it is behind the leader's log.
    pub lag: u64,
    /// Milliseconds since the leader last heard from it (null if never or unknown).
    pub last_contact_ms: Option<u64>,
}

/// The group of masters (`GET /masters`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Masters {
    /// The member that answered.
    pub answered_by: u64,
    /// The leader's id (null if there is none).
    pub leader: Option<u64>,
    /// The current Raft term.
    pub term: u64,
    /// Every member.
    pub members: Vec<MasterMember>,
}

impl From<pb::MastersReply> for Masters {
    fn from(reply: pb::MastersReply) -> Masters {
        Masters {
            answered_by: reply.answered_by,
            leader: (reply.leader_id != 0).then_some(reply.leader_id),
            term: reply.term,
            members: reply
                .members
                .into_iter()
                .map(|m| MasterMember {
                    id: m.id,
                    role: role_name(m.role),
                    address: m.addr,
                    voter: m.voter,
                    term: m.term,
                    last_log_index: m.last_log_index,
                    applied_index: m.applied_index,
                    lag: m.lag,
                    last_contact_ms: m.last_contact_ms,
                })
                .collect(),
        }
    }
}

/// The replication health of a subtree (`GET /fsck`).
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct FsckReport {
    /// The subtree checked.
    pub path: String,
    /// Directories checked.
    pub directories: u64,
    /// Files checked.
    pub files: u64,
    /// Chunks of those files.
    pub chunks: u64,
    /// Chunks with all their replicas.
    pub healthy_chunks: u64,
    /// Chunks with fewer healthy replicas than the replication factor.
    pub under_replicated: u64,
    /// Chunks with no readable replica.
    pub missing: u64,
    /// Absolute paths of the files with an under-replicated or missing chunk, sorted.
    pub damaged_files: Vec<String>,
}

impl FsckReport {
    /// Adds one directory's report to this one; returns the subdirectories to check next.
    pub fn add(&mut self, reply: pb::FsckReply) -> Vec<String> {
        self.directories += reply.directories;
        self.files += reply.files;
        self.chunks += reply.chunks;
        self.healthy_chunks += reply.healthy_chunks;
        self.under_replicated += reply.under_replicated;
        self.missing += reply.missing;
        self.damaged_files
            .extend(reply.damaged_files.into_iter().map(absolute));
        reply.subdirectories
    }
}

/// `path` (relative to the root, as the master names them) made absolute.
fn absolute(path: String) -> String {
    if path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    }
}

/// The answer of `GET /health`: this master is up and knows its place in the group.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `"ok"`: an answer at all means the process serves.
    pub status: &'static str,
    /// This member's node id.
    pub node_id: u64,
    /// Whether this member leads its group and serves metadata calls.
    pub leader: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_counts_servers_by_state_and_live_capacity() {
        let server = |state: pb::ServerState, capacity, free| pb::ServerStatus {
            state: state as i32,
            capacity_bytes: capacity,
            free_bytes: free,
            ..Default::default()
        };
        let reply = pb::ClusterStatusReply {
            servers: vec![
                server(pb::ServerState::Active, 100, 40),
                server(pb::ServerState::Draining, 100, 90),
                server(pb::ServerState::Dead, 1000, 0),
            ],
            files: 3,
            ..Default::default()
        };
        let masters = Masters::from(pb::MastersReply::default());
        let status = ClusterStatus::new(reply, masters);
        assert_eq!((status.servers.total, status.servers.active), (3, 1));
        assert_eq!((status.servers.dead, status.servers.draining), (1, 1));
        assert_eq!(status.capacity.total_bytes, 200);
        assert_eq!(status.capacity.used_bytes, 70);
        assert_eq!(status.masters.leader, None);
    }

    #[test]
    fn fsck_reports_add_up_with_absolute_paths() {
        let mut report = FsckReport::default();
        let next = report.add(pb::FsckReply {
            directories: 1,
            files: 2,
            damaged_files: vec!["a/x".into()],
            subdirectories: vec!["a".into()],
            ..Default::default()
        });
        assert_eq!(next, ["a"]);
        assert_eq!(report.damaged_files, ["/a/x"]);
        assert_eq!((report.directories, report.files), (1, 2));
    }
}
