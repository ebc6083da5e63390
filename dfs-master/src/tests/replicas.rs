//! Replica-list changes: failed chain writes and bad replicas reported by readers.

use dfs_proto::pb;
use dfs_proto::{FsError, ROOT_INO};

use super::{Fixture, fs_err};
use crate::chunks::replicas::BadReplicaOutcome;

fn replace(ino: u64, chunk_id: u64, version: u64, failed: &[u64]) -> pb::ReplaceReplicasRequest {
    pb::ReplaceReplicasRequest {
        ino,
        index: 0,
        chunk_id,
        version,
        failed: failed.to_vec(),
        holder: String::new(),
    }
}

fn bad(chunk_id: u64, server_id: u64, version: u64) -> pb::ReportBadReplicaRequest {
    pb::ReportBadReplicaRequest {
        chunk_id,
        server_id,
        version,
        reason: "checksum mismatch".into(),
    }
}

#[test]
fn a_failed_server_is_dropped_and_the_version_bumped_by_the_rewrite() {
    let fx = Fixture::new();
    let ino = fx.file(ROOT_INO, "f");
    let map = fx.master.chunk_map();
    let chunk = map.allocate_chunk(ino, 0, vec![1, 2, 3]).unwrap();
    let now = std::time::Instant::now();
    let info = fx
        .master
        .replace_replicas(&replace(ino, chunk.chunk_id, chunk.version, &[2]), now)
        .unwrap();
    assert_eq!(info.version, chunk.version + 1);
    let stored = map.chunk(ino, 0).unwrap().unwrap();
    assert_eq!(stored.replicas, vec![1, 3]);
    // The record keeps the version the survivors hold until the rewrite is committed.
    assert_eq!(stored.version, chunk.version);
    // The dropped replica is queued for deletion on its server.
    let store = fx.master.namespace().writer.store();
    assert_eq!(store.deletions(2).unwrap(), vec![chunk.chunk_id]);
    let commit = pb::CommitWriteRequest {
        ino,
        chunks: vec![pb::ChunkCommit {
            index: 0,
            chunk_id: chunk.chunk_id,
            version: info.version,
            length: 5,
            placed_servers: Vec::new(),
        }],
        size: 5,
        ..Default::default()
    };
    fx.master
        .commit_write(&commit, super::ts(3), std::time::Instant::now())
        .unwrap();
    assert_eq!(map.chunk(ino, 0).unwrap().unwrap().version, info.version);
    // A writer that still has the old version gets the current chunk, unchanged.
    let again = fx
        .master
        .replace_replicas(&replace(ino, chunk.chunk_id, chunk.version, &[1]), now)
        .unwrap();
    assert_eq!(again.version, chunk.version + 1);
    assert_eq!(map.chunk(ino, 0).unwrap().unwrap().replicas, vec![1, 3]);
    // Below the minimum replication (2 by default) the write fails with ENOSPC.
    assert_eq!(
        fs_err(
            fx.master
                .replace_replicas(&replace(ino, chunk.chunk_id, chunk.version + 1, &[3]), now)
        ),
        FsError::NoSpace
    );
    // A chunk that is gone is stale.
    assert!(matches!(
        fs_err(
            fx.master
                .replace_replicas(&replace(ino, 999, chunk.version, &[1]), now)
        ),
        FsError::Stale(_)
    ));
}

#[test]
fn a_bad_replica_is_dropped_but_never_the_last() {
    let fx = Fixture::new();
    let ino = fx.file(ROOT_INO, "f");
    let map = fx.master.chunk_map();
    let chunk = map.allocate_chunk(ino, 0, vec![1, 2]).unwrap();
    let id = chunk.chunk_id;
    // A reader with an older version than the master's says nothing about the replica.
    assert_eq!(
        fx.master.report_bad_replica(&bad(id, 1, 0)).unwrap(),
        BadReplicaOutcome::Ignored
    );
    assert_eq!(
        fx.master.report_bad_replica(&bad(id, 1, 1)).unwrap(),
        BadReplicaOutcome::Dropped
    );
    assert_eq!(map.chunk(ino, 0).unwrap().unwrap().replicas, vec![2]);
    let store = fx.master.namespace().writer.store();
    assert_eq!(store.deletions(1).unwrap(), vec![id]);
    assert_eq!(
        fx.master.report_bad_replica(&bad(id, 1, 1)).unwrap(),
        BadReplicaOutcome::Ignored
    );
    assert_eq!(
        fx.master.report_bad_replica(&bad(id, 2, 1)).unwrap(),
        BadReplicaOutcome::KeptLast
    );
    assert_eq!(map.chunk(ino, 0).unwrap().unwrap().replicas, vec![2]);
    assert_eq!(
        fx.master.report_bad_replica(&bad(777, 2, 1)).unwrap(),
        BadReplicaOutcome::Ignored
    );
}

#[test]
fn a_writer_that_lost_the_lease_cannot_replace_replicas() {
    let fx = Fixture::new();
    let ino = fx.file(ROOT_INO, "f");
    let map = fx.master.chunk_map();
    let chunk = map.allocate_chunk(ino, 0, vec![1, 2, 3]).unwrap();
    let t0 = std::time::Instant::now();
    let leases = fx.master.leases();
    leases.acquire(ino, "old", t0).unwrap();
    // The old holder's lease expires and another mount takes the file over.
    let t1 = t0 + leases.ttl() + std::time::Duration::from_secs(1);
    assert!(leases.acquire(ino, "new", t1).unwrap().recover);
    let from = |holder: &str| pb::ReplaceReplicasRequest {
        holder: holder.into(),
        ..replace(ino, chunk.chunk_id, chunk.version, &[2])
    };
    for holder in ["old", ""] {
        assert!(
            matches!(
                fs_err(fx.master.replace_replicas(&from(holder), t1)),
                FsError::Stale(_)
            ),
            "holder {holder:?}"
        );
    }
    assert_eq!(
        map.chunk(ino, 0).unwrap().unwrap(),
        chunk,
        "nothing changed"
    );
    // The holder itself may.
    let info = fx.master.replace_replicas(&from("new"), t1).unwrap();
    assert_eq!(info.version, chunk.version + 1);
}

#[test]
fn a_takeover_stamps_above_a_version_issued_for_a_rewrite() {
    let fx = Fixture::new();
    let ino = fx.file(ROOT_INO, "f");
    let map = fx.master.chunk_map();
    let chunk = map.allocate_chunk(ino, 0, vec![1, 2, 3]).unwrap();
    let now = std::time::Instant::now();
    // A writer is handed the next version for a rewrite it never commits.
    let info = fx
        .master
        .replace_replicas(&replace(ino, chunk.chunk_id, chunk.version, &[3]), now)
        .unwrap();
    let stored = map.chunk(ino, 0).unwrap().unwrap();
    assert_eq!(stored.version, chunk.version);
    assert_eq!(stored.issued_version, info.version);
    // Clients see the issued version, and a new lease holder stamps above it.
    let served = fx.master.get_chunks(ino, 0, 0, now).unwrap();
    assert_eq!(served.chunks[0].issued_version, info.version);
}
