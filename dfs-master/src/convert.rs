//! Every translation between the wire contract ([`dfs_proto::pb`]) and the master's own types.
//!
//! The managers answer in the master's types ([`Chunk`], [`ServerView`], [`HeldLock`], the
//! [`admin`](crate::admin) reports, ...); the service handlers and the [`Master`] handle build
//! the contract's messages from them here, and pick apart here the requests that carry
//! something the master models itself (a lock, a set mode of an extended attribute). So a
//! change to the contract is a change to this file and the handlers, not to the logic.
//!
//! Two things cross unchanged, on purpose. Attributes are dfs-proto's [`Attr`] (with
//! [`Timestamp`](pb::Timestamp) and [`FileKind`](pb::FileKind)) throughout: they are what `stat(2)`
//! reports, and the master and the mount share their rules (`SetAttrRequest::apply_to`,
//! `time::access_due`). And a request whose fields the logic reads as they are (a `setattr`, a
//! create, a commit, a heartbeat's block report) reaches it as the message: it is the command the
//! master applies.
//!
//! [`Master`]: crate::Master

use std::time::Duration;

use dfs_proto::pb::{self, Attr};

use crate::admin::{ClusterStatus, FileReport, FsckReport, ServerReport};
use crate::chunks::Chunk;
use crate::cluster::registry::{HeartbeatAnswer, ReplicaAddr, ServerState, ServerView};
use crate::cluster::replication::CopyCommand;
use crate::locks::{HeldLock, LockKind, LockSpec, Owner};
use crate::master::{ClusterSettings, FsStats};
use crate::namespace::xattrs::XattrMode;

// --- Namespace ---

/// The answer of a call about one inode.
pub fn attr_reply(attr: Attr) -> pb::AttrReply {
    pb::AttrReply {
        attr: Some(attr),
        ..Default::default()
    }
}

/// The answer of a call that created or linked `attr` and so changed the directories `dirs`.
pub fn attr_in_dirs(attr: Attr, dirs: Vec<Attr>) -> pb::AttrReply {
    pb::AttrReply {
        attr: Some(attr),
        chunk_map: None,
        changed_dirs: dirs,
    }
}

/// The answer of a lookup, with the chunk map an open-ahead brought along.
pub fn looked_up(attr: Attr, chunk_map: Option<pb::GetChunksReply>) -> pb::AttrReply {
    pb::AttrReply {
        attr: Some(attr),
        chunk_map,
        changed_dirs: Vec::new(),
    }
}

/// The answer of a call that removed or renamed names in the directories `dirs`.
pub fn changed_dirs(dirs: Vec<Attr>) -> pb::ChangedDirs {
    pb::ChangedDirs { dirs }
}

/// One page of a directory listing: `(name, attributes)` in name order; `more` if entries
/// follow.
pub fn dir_page(entries: Vec<(Vec<u8>, Attr)>, more: bool) -> pb::ReadDirReply {
    let entries = entries
        .into_iter()
        .map(|(name, attr)| pb::DirEntry {
            name,
            attr: Some(attr),
        })
        .collect();
    pb::ReadDirReply {
        entries,
        more,
        dir_attr: None,
    }
}

/// `page` with the listed directory's own attributes (the first page of a listing).
pub fn with_dir_attr(page: pb::ReadDirReply, dir_attr: Option<Attr>) -> pb::ReadDirReply {
    pb::ReadDirReply { dir_attr, ..page }
}

/// The answer of a `readlink`.
pub fn link_target(target: Vec<u8>) -> pb::ReadLinkReply {
    pb::ReadLinkReply { target }
}

/// The cluster's settings as clients and chunkservers read them.
pub fn cluster_config(settings: ClusterSettings) -> pb::ClusterConfig {
    pb::ClusterConfig {
        chunk_size: settings.chunk_size,
        block_size: settings.block_size,
        replication: settings.replication,
    }
}

/// Filesystem statistics as `statfs` answers them.
pub fn statfs(stats: FsStats) -> pb::StatFsReply {
    pb::StatFsReply {
        total_bytes: stats.total_bytes,
        free_bytes: stats.free_bytes,
        files: stats.files,
        block_size: stats.block_size,
        max_name_len: stats.max_name_len,
        live_servers: stats.live_servers,
    }
}

/// The answer of a call that answers nothing but success.
pub fn done<T>(_: T) -> pb::Empty {
    pb::Empty {}
}

// --- Files: chunk map, opens, leases ---

/// Chunk `chunk` at `index` of its file as clients see it, with its replicas' addresses.
pub fn chunk_info(index: u64, chunk: &Chunk, replicas: Vec<ReplicaAddr>) -> pb::ChunkInfo {
    pb::ChunkInfo {
        index,
        chunk_id: chunk.chunk_id,
        version: chunk.version,
        length: chunk.length,
        replicas: replicas.into_iter().map(replica_location).collect(),
        issued_version: chunk.issued_version,
        token: None,
    }
}

fn replica_location(replica: ReplicaAddr) -> pb::ReplicaLocation {
    pb::ReplicaLocation {
        server_id: replica.server_id,
        addr: replica.addr,
    }
}

/// The chunk map of (part of) a file of `file_size` bytes.
pub fn chunk_map(chunks: Vec<pb::ChunkInfo>, file_size: u64) -> pb::GetChunksReply {
    pb::GetChunksReply { chunks, file_size }
}

/// What a holder is told about a lease it was granted or renewed: how long it lives without a
/// renewal, and whether the previous holder died holding it.
pub fn lease_reply(ttl: Duration, recover: bool) -> pb::LeaseReply {
    pb::LeaseReply {
        ttl_ms: millis(ttl),
        recover,
    }
}

/// The answer of an open: attributes (after the atime mark, if `marked`), chunk map, and the
/// writer lease if one was asked for.
pub fn opened(
    attr: Attr,
    chunk_map: pb::GetChunksReply,
    marked: bool,
    lease: Option<pb::LeaseReply>,
) -> pb::OpenFileReply {
    pb::OpenFileReply {
        attr: Some(attr),
        chunk_map: Some(chunk_map),
        access_marked: marked,
        lease,
    }
}

/// The answer of a create: the file, its lease and placed chunk 0 if any, and its parent
/// directory after the change.
pub fn created(
    attr: Attr,
    lease: Option<pb::LeaseReply>,
    first_chunk: Option<pb::ChunkInfo>,
    dirs: Vec<Attr>,
) -> pb::CreateFileReply {
    pb::CreateFileReply {
        attr: Some(attr),
        lease,
        first_chunk,
        changed_dirs: dirs,
    }
}

// --- Registry ---

/// The answer of a registration.
pub fn registered(server_id: u64, token_keys: Vec<pb::TokenKey>) -> pb::RegisterChunkserverReply {
    pb::RegisterChunkserverReply {
        server_id,
        token_keys,
    }
}

/// The answer of a heartbeat: the registry's deletions (or a request to register again) and
/// the copies planned for the server.
pub fn heartbeat_reply(answer: HeartbeatAnswer, copies: Vec<CopyCommand>) -> pb::HeartbeatReply {
    pb::HeartbeatReply {
        delete_chunks: answer.delete_chunks,
        reregister: answer.reregister,
        replicate: copies.into_iter().map(replicate_command).collect(),
        token_keys: Vec::new(),
    }
}

fn replicate_command(copy: CopyCommand) -> pb::ReplicateCommand {
    pb::ReplicateCommand {
        chunk_id: copy.chunk_id,
        version: copy.version,
        source: copy.source,
        token: None,
    }
}

// --- Admin ---

fn server_state(state: ServerState) -> pb::ServerState {
    match state {
        ServerState::Active => pb::ServerState::Active,
        ServerState::Stale => pb::ServerState::Stale,
        ServerState::Dead => pb::ServerState::Dead,
        ServerState::Draining => pb::ServerState::Draining,
    }
}

/// One server as `dfs status` lists it; a server that left the registry is all zeros.
pub fn server_status(report: Option<ServerReport>) -> pb::ServerStatus {
    let Some(ServerReport { view, replicas }) = report else {
        return pb::ServerStatus::default();
    };
    let ServerView {
        server_id,
        addr,
        rack,
        state,
        capacity_bytes,
        free_bytes,
        active_transfers,
        since_heartbeat,
    } = view;
    pb::ServerStatus {
        server_id,
        addr,
        rack,
        state: server_state(state).into(),
        capacity_bytes,
        free_bytes,
        replicas,
        last_heartbeat_ms: since_heartbeat.map_or(0, millis),
        active_transfers,
    }
}

/// The answer of `dfs status`.
pub fn cluster_status(status: ClusterStatus) -> pb::ClusterStatusReply {
    let health = status.health.unwrap_or_default();
    pb::ClusterStatusReply {
        servers: status
            .servers
            .into_iter()
            .map(|s| server_status(Some(s)))
            .collect(),
        files: status.files,
        chunks: status.chunks,
        under_replicated: health.under_replicated,
        missing: health.missing,
        over_replicated: health.over_replicated,
        replications_in_flight: status.replications_in_flight,
        replication: status.replication,
        health_checked: status.health.is_some(),
    }
}

/// The answer of `dfs info`.
pub fn file_info(report: FileReport) -> pb::FileInfoReply {
    let chunks = report
        .chunks
        .into_iter()
        .map(|c| pb::ChunkHealth {
            index: c.index,
            chunk_id: c.chunk.chunk_id,
            version: c.chunk.version,
            length: c.chunk.length,
            replicas: c
                .replicas
                .into_iter()
                .map(|r| pb::ReplicaHealth {
                    server_id: r.server_id,
                    addr: r.addr,
                    rack: r.rack,
                    state: server_state(r.state).into(),
                })
                .collect(),
            healthy: c.healthy,
        })
        .collect();
    pb::FileInfoReply {
        attr: Some(report.attr),
        chunks,
        replication: report.replication,
    }
}

/// The answer of one `Fsck` call.
pub fn fsck_reply(report: FsckReport) -> pb::FsckReply {
    pb::FsckReply {
        directories: report.directories,
        files: report.files,
        chunks: report.chunks,
        healthy_chunks: report.healthy_chunks,
        under_replicated: report.under_replicated,
        missing: report.missing,
        damaged_files: report.damaged_files,
        subdirectories: report.subdirectories,
    }
}

// --- Locks ---

/// The range, owner and process a lock request names.
pub fn lock_spec(req: &pb::LockRequest) -> LockSpec {
    LockSpec {
        ino: req.ino,
        owner: Owner {
            session: req.session.clone(),
            owner: req.owner,
        },
        start: req.start,
        end: req.end,
        pid: req.pid,
    }
}

/// The kind of lock a request asks for; `None` for an unlock.
pub fn lock_kind(kind: pb::LockKind) -> Option<LockKind> {
    match kind {
        pb::LockKind::Unlock => None,
        pb::LockKind::Read => Some(LockKind::Read),
        pb::LockKind::Write => Some(LockKind::Write),
    }
}

/// The file and the owner whose locks a close releases.
pub fn lock_owner(req: pb::LockOwnerRequest) -> (u64, Owner) {
    let owner = Owner {
        session: req.session,
        owner: req.owner,
    };
    (req.ino, owner)
}

/// The answer of a lock or a test: granted, or the lock in the way; and the session's
/// time-to-live.
pub fn lock_reply(conflict: Option<HeldLock>, session_ttl: Duration) -> pb::LockReply {
    pb::LockReply {
        granted: conflict.is_none(),
        conflict: conflict.map(|held| pb::HeldLock {
            start: held.start,
            end: held.end,
            kind: match held.kind {
                LockKind::Read => pb::LockKind::Read,
                LockKind::Write => pb::LockKind::Write,
            }
            .into(),
            pid: held.pid,
        }),
        session_ttl_ms: millis(session_ttl),
    }
}

/// The answer of a session renewal: whether the master still knew the session.
pub fn lock_session_reply(known: bool, session_ttl: Duration) -> pb::LockSessionReply {
    pb::LockSessionReply {
        known,
        session_ttl_ms: millis(session_ttl),
    }
}

// --- Extended attributes ---

/// How a set treats an attribute that exists or not.
pub fn xattr_mode(mode: pb::XattrMode) -> XattrMode {
    match mode {
        pb::XattrMode::Upsert => XattrMode::Upsert,
        pb::XattrMode::Create => XattrMode::Create,
        pb::XattrMode::Replace => XattrMode::Replace,
    }
}

/// The value of one attribute.
pub fn xattr_value(value: Vec<u8>) -> pb::XattrValue {
    pb::XattrValue { value }
}

/// The names of an inode's attributes.
pub fn xattr_names(names: Vec<Vec<u8>>) -> pb::XattrNames {
    pb::XattrNames { names }
}

/// A duration in whole milliseconds, as the contract carries time-to-lives.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
