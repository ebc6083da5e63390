//! When acknowledged mutations reach the disk under the deferred sync policy: changes of
//! names and lengths wait for the next log sync, chunk versions and deletions handed to
//! chunkservers never do, and ids survive a lost sync without being handed out twice.

use std::time::Instant;

use dfs_proto::ROOT_INO;
use dfs_proto::pb;

use super::registry::replica;
use super::{CHUNK, Fixture, ts};
use crate::store::txn::ID_RESERVATION;

/// A master that syncs as a production one does by default.
fn deferred() -> Fixture {
    Fixture::with(|config| {
        config.sync_writes = true;
        config.metadata_sync_interval_ms = 50;
    })
}

fn commit(index: u64, chunk: &crate::chunks::Chunk, version: u64) -> pb::ChunkCommit {
    pb::ChunkCommit {
        index,
        chunk_id: chunk.chunk_id,
        version,
        length: 100,
        placed_servers: Vec::new(),
    }
}

#[test]
fn name_and_length_changes_wait_for_the_log_sync_versions_do_not() {
    let fx = deferred();
    let m = &fx.master;
    let server = fx.register("a", 10 * CHUNK, Instant::now());
    // The first create reserves a block of inode numbers, which is synced at once.
    let f = fx.file(ROOT_INO, "f");
    assert!(!m.has_unsynced_metadata());
    // Later creates within the reservation are acknowledged unsynced.
    let d = fx.dir(ROOT_INO, "d");
    assert!(m.has_unsynced_metadata());
    m.sync_metadata().unwrap();
    assert!(!m.has_unsynced_metadata());
    let waits_for_the_sync = |what: &str| {
        assert!(m.has_unsynced_metadata(), "{what} waits for the sync");
        m.sync_metadata().unwrap();
        assert!(!m.has_unsynced_metadata());
    };
    fx.ns()
        .rename(ROOT_INO, b"d", ROOT_INO, b"e", 0, ts(20))
        .unwrap();
    waits_for_the_sync("rename");
    fx.ns().link(f, d, b"g", ts(21)).unwrap();
    waits_for_the_sync("link");
    fx.ns().unlink(d, b"g", ts(22)).unwrap();
    waits_for_the_sync("unlink");
    fx.ns().rmdir(ROOT_INO, b"e", ts(23)).unwrap();
    waits_for_the_sync("rmdir");

    // A chunk allocation is synced, and carries every deferred change before it to disk.
    fx.file(ROOT_INO, "h");
    assert!(m.has_unsynced_metadata());
    let chunk = m.chunk_map().allocate_chunk(f, 0, vec![server]).unwrap();
    assert!(!m.has_unsynced_metadata());
    // A commit of lengths at the chunk's version waits for the sync...
    let chunks = m.chunk_map();
    chunks
        .commit_write(
            f,
            &[commit(0, &chunk, chunk.version)],
            100,
            None,
            None,
            ts(30),
        )
        .unwrap();
    assert!(m.has_unsynced_metadata());
    m.sync_metadata().unwrap();
    // ... one that moves the version (a rewrite after a replica replacement) does not.
    chunks
        .commit_write(
            f,
            &[commit(0, &chunk, chunk.version + 1)],
            100,
            None,
            None,
            ts(31),
        )
        .unwrap();
    assert!(!m.has_unsynced_metadata());
}

#[test]
fn every_change_is_synced_when_the_interval_is_zero() {
    let fx = Fixture::with(|config| {
        config.sync_writes = true;
        config.metadata_sync_interval_ms = 0;
    });
    fx.file(ROOT_INO, "a");
    fx.file(ROOT_INO, "b");
    fx.ns().unlink(ROOT_INO, b"a", ts(20)).unwrap();
    assert!(!fx.master.has_unsynced_metadata());
}

#[test]
fn replicas_of_an_unlinked_file_are_handed_out_for_deletion_only_once_synced() {
    let fx = deferred();
    let m = &fx.master;
    let now = Instant::now();
    let server = fx.register("a", 10 * CHUNK, now);
    fx.file(ROOT_INO, "first");
    let f = fx.file(ROOT_INO, "f");
    let chunk = m.chunk_map().allocate_chunk(f, 0, vec![server]).unwrap();
    // The server reports the replica, so its version is known to exist.
    fx.heartbeat(
        server,
        Some(vec![replica(chunk.chunk_id, chunk.version)]),
        now,
    );
    fx.ns().unlink(ROOT_INO, b"f", ts(20)).unwrap();
    assert!(m.has_unsynced_metadata());
    let reply = fx.heartbeat(server, None, now);
    assert_eq!(reply.delete_chunks, [chunk.chunk_id]);
    // The unlink reached the disk before the reply that lets the server delete the data.
    assert!(!m.has_unsynced_metadata());
}

#[test]
fn ids_handed_out_by_unsynced_creates_are_never_handed_out_again() {
    let fx = deferred();
    let first = fx.file(ROOT_INO, "a");
    let b = fx.file(ROOT_INO, "b");
    let c = fx.file(ROOT_INO, "c");
    assert_eq!((b, c), (first + 1, first + 2));
    // Had a machine crash lost the creates of b and c, the counter on disk would say b is
    // next: a restart moves every counter to its synced reservation instead.
    let fx = fx.reopen();
    let next = fx.file(ROOT_INO, "d");
    assert_eq!(next, first + ID_RESERVATION);
    // The same holds for chunk ids: one handed out is never handed out again.
    let chunk_a = fx.master.chunk_map().allocate_chunk(first, 0, vec![1]);
    let chunk_a = chunk_a.unwrap().chunk_id;
    let fx = fx.reopen();
    let chunk_b = fx
        .master
        .chunk_map()
        .allocate_chunk(next, 0, vec![1])
        .unwrap();
    assert_eq!(chunk_b.chunk_id, chunk_a + ID_RESERVATION);
}
