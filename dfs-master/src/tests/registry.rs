//! The chunkserver registry: identities, liveness, and garbage collection through heartbeats.

use std::time::{Duration, Instant};

use dfs_proto::pb::{self, ChunkReplicaReport};
use dfs_proto::{FsError, ROOT_INO};

use super::{CHUNK, Fixture};
use crate::cluster::registry::HeartbeatAnswer;

/// The address a test server with `uuid` registers with.
pub(super) fn addr_of(uuid: &str) -> String {
    format!("{uuid}.test:7000")
}

impl Fixture {
    /// Registers a chunkserver with `free` bytes free; returns its id.
    pub(super) fn register(&self, uuid: &str, free: u64, now: Instant) -> u64 {
        let req = pb::RegisterChunkserverRequest {
            addr: addr_of(uuid),
            storage_uuid: uuid.into(),
            rack: String::new(),
            capacity_bytes: 2 * free,
            free_bytes: free,
        };
        self.master.registry().register(&req, now).unwrap()
    }

    /// Registers a server per name in `uuids`, each with 10 chunks free; their ids in order.
    pub(super) fn register_all(&self, uuids: &[&str], now: Instant) -> Vec<u64> {
        uuids
            .iter()
            .map(|uuid| self.register(uuid, 10 * CHUNK, now))
            .collect()
    }

    pub(super) fn heartbeat(
        &self,
        server_id: u64,
        report: Option<Vec<ChunkReplicaReport>>,
        now: Instant,
    ) -> HeartbeatAnswer {
        let req = pb::HeartbeatRequest {
            server_id,
            capacity_bytes: 100 * CHUNK,
            free_bytes: 50 * CHUNK,
            chunk_count: report.as_ref().map_or(0, |r| r.len() as u64),
            full_report: report.is_some(),
            chunks: report.unwrap_or_default(),
            ..Default::default()
        };
        self.master.registry().heartbeat(&req, now).unwrap()
    }
}

pub(super) fn replica(chunk_id: u64, version: u64) -> ChunkReplicaReport {
    ChunkReplicaReport {
        chunk_id,
        version,
        length: 0,
    }
}

#[test]
fn a_storage_uuid_keeps_its_server_id() {
    let fx = Fixture::new();
    let now = Instant::now();
    let a = fx.register("a", CHUNK, now);
    let b = fx.register("b", CHUNK, now);
    assert_ne!(a, b);
    let moved = pb::RegisterChunkserverRequest {
        addr: "elsewhere:9".into(),
        storage_uuid: "a".into(),
        ..Default::default()
    };
    assert_eq!(fx.master.registry().register(&moved, now).unwrap(), a);
    let locations = fx.master.registry().locations(&[a, b], now);
    assert_eq!(locations[0].addr, "elsewhere:9");
    assert_eq!(fx.master.registry().server_id("b"), Some(b));
    let anonymous = pb::RegisterChunkserverRequest {
        addr: "x:1".into(),
        ..Default::default()
    };
    assert!(fx.master.registry().register(&anonymous, now).is_err());
}

#[test]
fn servers_without_recent_heartbeats_are_not_live() {
    let fx = Fixture::new();
    let start = Instant::now();
    let a = fx.register("a", 10 * CHUNK, start);
    let b = fx.register("b", 10 * CHUNK, start);
    let timeout = fx.config.heartbeat_timeout();
    let later = start + timeout + Duration::from_secs(1);
    fx.heartbeat(b, None, later);

    let registry = fx.master.registry();
    let live: Vec<u64> = registry
        .candidates(later)
        .iter()
        .map(|c| c.server_id)
        .collect();
    assert_eq!(live, [b]);
    let capacity = registry.capacity(later);
    assert_eq!(
        (
            capacity.live_servers,
            capacity.free_bytes,
            capacity.total_bytes
        ),
        (1, 50 * CHUNK, 100 * CHUNK)
    );
    // Dead replicas are still listed, after the live ones, for a reader to try last.
    let order: Vec<u64> = registry
        .locations(&[a, b, 77], later)
        .iter()
        .map(|l| l.server_id)
        .collect();
    assert_eq!(order, [b, a]);
    assert_eq!(registry.capacity(start).live_servers, 2);
}

#[test]
fn unknown_servers_are_told_to_register() {
    let fx = Fixture::new();
    let reply = fx.heartbeat(42, None, Instant::now());
    assert!(reply.reregister);
}

#[test]
fn block_reports_return_unknown_and_stale_replicas() {
    let fx = Fixture::new();
    let now = Instant::now();
    let server = fx.register("a", 10 * CHUNK, now);
    // A deleted file leaves two replicas in the server's deletion queue.
    let gone = fx.file(ROOT_INO, "gone");
    let map = fx.master.chunk_map();
    let gone_ids: Vec<u64> = (0..2)
        .map(|i| map.allocate_chunk(gone, i, vec![server]).unwrap().chunk_id)
        .collect();
    fx.ns().unlink(ROOT_INO, b"gone", super::ts(5)).unwrap();

    let ino = fx.file(ROOT_INO, "kept");
    let live = map.allocate_chunk(ino, 0, vec![server]).unwrap();
    let unknown = live.chunk_id + 1000;
    let report = vec![
        replica(live.chunk_id, live.version),
        replica(unknown, 1),
        replica(gone_ids[0], 1),
    ];
    // The queued deletions plus the unknown replica; the referenced one stays.
    let reply = fx.heartbeat(server, Some(report.clone()), now);
    assert!(!reply.reregister);
    let mut expected = vec![gone_ids[0], gone_ids[1], unknown];
    expected.sort_unstable();
    assert_eq!(reply.delete_chunks, expected);
    let store = fx.master.namespace().writer.store();
    assert!(
        store.deletions(server).unwrap().is_empty(),
        "the queue is drained"
    );

    // A later report finds the unreferenced replicas again (the queue is empty now).
    let reply = fx.heartbeat(server, Some(report), now);
    assert_eq!(reply.delete_chunks, [gone_ids[0], unknown]);
    // A heartbeat without a report hands out nothing new.
    assert!(fx.heartbeat(server, None, now).delete_chunks.is_empty());
}

#[test]
fn old_versions_are_garbage_once_the_current_one_is_known() {
    let fx = Fixture::new();
    let now = Instant::now();
    let server = fx.register("a", 10 * CHUNK, now);
    let other = fx.register("b", 10 * CHUNK, now);
    let ino = fx.file(ROOT_INO, "f");
    let chunk = fx
        .master
        .chunk_map()
        .allocate_chunk(ino, 0, vec![server, other])
        .unwrap();
    let old = vec![replica(chunk.chunk_id, chunk.version - 1)];
    // No replica is known at the chunk's version: the old one may be all there is.
    let reply = fx.heartbeat(server, Some(old.clone()), now);
    assert!(reply.delete_chunks.is_empty());
    // Another server reports the current version: now the old one goes.
    let current = vec![replica(chunk.chunk_id, chunk.version)];
    assert!(
        fx.heartbeat(other, Some(current), now)
            .delete_chunks
            .is_empty()
    );
    let reply = fx.heartbeat(server, Some(old), now);
    assert_eq!(reply.delete_chunks, [chunk.chunk_id]);
    // A newer version than the master's is not garbage (the master may have lost a bump).
    let reply = fx.heartbeat(
        server,
        Some(vec![replica(chunk.chunk_id, chunk.version + 1)]),
        now,
    );
    assert!(reply.delete_chunks.is_empty());
}

/// The data-loss guard: if a chunk's version moves ahead of every replica (a version raised
/// before any replica took it), neither block reports nor a dropped replica's queued deletion
/// may remove any of them; once a replica at the new version is known, the old ones go.
#[test]
fn replicas_of_an_unwritten_version_are_never_deleted() {
    let fx = Fixture::new();
    let now = Instant::now();
    let servers = fx.register_all(&["a", "b", "c"], now);
    let ino = fx.file(ROOT_INO, "f");
    let map = fx.master.chunk_map();
    let chunk = map.allocate_chunk(ino, 0, servers.clone()).unwrap();
    let old = vec![replica(chunk.chunk_id, chunk.version)];
    for &server in &servers {
        assert!(
            fx.heartbeat(server, Some(old.clone()), now)
                .delete_chunks
                .is_empty()
        );
    }
    // `a` failed a write and is dropped; then the version moves with no replica holding it.
    let req = pb::ReplaceReplicasRequest {
        ino,
        index: 0,
        chunk_id: chunk.chunk_id,
        version: chunk.version,
        failed: vec![servers[0]],
        holder: String::new(),
    };
    let bumped = fx.master.replace_replicas(&req, now).unwrap();
    map.raise_version(ino, 0, bumped.version).unwrap();
    // Repeated full reports (the orphan grace is zero here) delete nothing anywhere, and the
    // dropped replica's queued deletion is held back.
    for _ in 0..3 {
        for &server in &servers {
            let reply = fx.heartbeat(server, Some(old.clone()), now);
            assert!(reply.delete_chunks.is_empty(), "server {server}: {reply:?}");
        }
    }
    let store = fx.master.namespace().writer.store();
    assert_eq!(store.deletions(servers[0]).unwrap(), vec![chunk.chunk_id]);

    // The rewrite lands and is committed at the new version: the old replicas may go now.
    let commit = pb::CommitWriteRequest {
        ino,
        chunks: vec![pb::ChunkCommit {
            index: 0,
            chunk_id: chunk.chunk_id,
            version: bumped.version,
            length: 10,
            placed_servers: Vec::new(),
        }],
        size: 10,
        ..Default::default()
    };
    fx.master
        .commit_write(&commit, super::ts(7), Instant::now())
        .unwrap();
    let reply = fx.heartbeat(servers[0], Some(old.clone()), now);
    assert_eq!(reply.delete_chunks, [chunk.chunk_id]);
    assert!(store.deletions(servers[0]).unwrap().is_empty());
    // A survivor still reporting the old version (it missed the rewrite) is stale now.
    let reply = fx.heartbeat(servers[1], Some(old), now);
    assert_eq!(reply.delete_chunks, [chunk.chunk_id]);
    let current = vec![replica(chunk.chunk_id, bumped.version)];
    assert!(
        fx.heartbeat(servers[2], Some(current), now)
            .delete_chunks
            .is_empty()
    );
}

#[test]
fn a_restarted_master_defers_allocation_until_its_servers_report() {
    let fx = Fixture::new();
    let file = fx.file(ROOT_INO, "f");
    for uuid in ["a", "b", "c"] {
        fx.register(uuid, 10 * CHUNK, Instant::now());
    }
    let fx = fx.reopen();
    let now = Instant::now();
    assert!(fx.master.registry().awaiting_reports(now));
    // No server has reported to the new master yet: retry later, not ENOSPC.
    let err = fx.master.allocate_chunk(file, 0, now, 1).unwrap_err();
    assert!(
        matches!(err, crate::error::Error::Fs(FsError::Unavailable(_))),
        "{err:?}"
    );

    for uuid in ["a", "b", "c"] {
        fx.register(uuid, 10 * CHUNK, now);
    }
    assert!(!fx.master.registry().awaiting_reports(now));
    let chunk = fx.master.allocate_chunk(file, 0, now, 1).unwrap();
    assert_eq!(chunk.replicas.len(), 3);
}
