//! The chunk map: allocation, write commits, truncation and the deletions they queue.

use std::time::Instant;

use dfs_proto::pb::{self, ChunkCommit};
use dfs_proto::{FsError, ROOT_INO};

use super::registry::addr_of;
use super::{CHUNK, Fixture, fs_err, ts};
use crate::chunks::Chunk;

impl Fixture {
    /// Allocates chunks `0..count` of `ino` on servers 1 and 2.
    fn allocate(&self, ino: u64, count: u64) -> Vec<Chunk> {
        (0..count)
            .map(|i| {
                self.master
                    .chunk_map()
                    .allocate_chunk(ino, i, vec![1, 2])
                    .unwrap()
            })
            .collect()
    }

    /// Commits full chunks for `chunks` and a file size of `size`.
    fn commit_all(&self, ino: u64, chunks: &[Chunk], size: u64) -> pb::Attr {
        let commits: Vec<_> = chunks
            .iter()
            .enumerate()
            .map(|(i, c)| {
                commit(
                    i as u64,
                    c,
                    CHUNK.min(size.saturating_sub(i as u64 * CHUNK)),
                )
            })
            .collect();
        self.master
            .chunk_map()
            .commit_write(ino, &commits, size, None, None, ts(30))
            .unwrap()
    }
}

fn commit(index: u64, chunk: &Chunk, length: u64) -> ChunkCommit {
    ChunkCommit {
        index,
        chunk_id: chunk.chunk_id,
        version: chunk.version,
        length,
        placed_servers: Vec::new(),
    }
}

#[test]
fn allocation_is_idempotent_per_index() {
    let fx = Fixture::new();
    let ino = fx.file(ROOT_INO, "f");
    let map = fx.master.chunk_map();
    let first = map.allocate_chunk(ino, 0, vec![3, 1]).unwrap();
    assert_eq!(
        (first.version, first.length, first.replicas.clone()),
        (1, 0, vec![3, 1])
    );
    assert_eq!(map.allocate_chunk(ino, 0, vec![2]).unwrap(), first);
    let other = map.allocate_chunk(ino, 5, vec![2]).unwrap();
    assert_ne!(other.chunk_id, first.chunk_id);

    let file = map.chunks(ino, 0, 0).unwrap();
    assert_eq!(file.chunks, vec![(0, first.clone()), (5, other.clone())]);
    assert_eq!(map.chunks(ino, 1, 4).unwrap().chunks, vec![]);
    assert_eq!(map.chunks(ino, 1, 5).unwrap().chunks, vec![(5, other)]);
    assert_eq!(map.chunks(ino, 0, 1).unwrap().chunks, vec![(0, first)]);

    let dir = fx.dir(ROOT_INO, "d");
    assert_eq!(fs_err(map.allocate_chunk(dir, 0, vec![1])), FsError::IsDir);
    assert_eq!(
        fs_err(map.allocate_chunk(999, 0, vec![1])),
        FsError::NotFound
    );
    assert_eq!(fs_err(map.chunks(999, 0, 0)), FsError::NotFound);
    assert_eq!(fs_err(map.allocate_chunk(ino, 1, vec![])), FsError::NoSpace);
    assert!(matches!(
        fs_err(map.allocate_chunk(ino, u64::MAX, vec![1])),
        FsError::Invalid(_)
    ));
}

#[test]
fn commits_grow_lengths_and_size() {
    let fx = Fixture::new();
    let ino = fx.file(ROOT_INO, "f");
    let chunks = fx.allocate(ino, 2);
    let map = fx.master.chunk_map();
    // A chmod and chown made while the writes were buffered ride on the commit.
    let changes = pb::SetAttrRequest {
        perm: Some(0o100640),
        uid: Some(7),
        gid: Some(8),
        ..Default::default()
    };
    let attr = map
        .commit_write(
            ino,
            &[commit(0, &chunks[0], CHUNK), commit(1, &chunks[1], 10)],
            CHUNK + 10,
            Some(ts(77)),
            Some(&changes),
            ts(80),
        )
        .unwrap();
    assert_eq!(
        (attr.size, attr.mtime, attr.ctime),
        (CHUNK + 10, Some(ts(77)), Some(ts(80)))
    );
    assert_eq!((attr.perm, attr.uid, attr.gid), (0o640, 7, 8));
    // A carried utimens wins over the commit's own mtime; a size change is no commit's.
    let utimens = pb::SetAttrRequest {
        mtime: Some(ts(5)),
        ..Default::default()
    };
    let attr = map
        .commit_write(ino, &[], 0, Some(ts(78)), Some(&utimens), ts(81))
        .unwrap();
    assert_eq!((attr.mtime, attr.ctime), (Some(ts(5)), Some(ts(81))));
    let resize = pb::SetAttrRequest {
        size: Some(1),
        ..Default::default()
    };
    assert!(matches!(
        fs_err(map.commit_write(ino, &[], 0, None, Some(&resize), ts(82))),
        FsError::Invalid(_)
    ));
    // A late, shorter commit (an earlier write finishing last) never shrinks anything.
    let attr = map
        .commit_write(ino, &[commit(1, &chunks[1], 5)], 5, None, None, ts(90))
        .unwrap();
    assert_eq!((attr.size, attr.mtime), (CHUNK + 10, Some(ts(90))));
    let file = map.chunks(ino, 0, 0).unwrap();
    assert_eq!(file.file_size, CHUNK + 10);
    assert_eq!(file.chunks[1].1.length, 10);
    // Two commits of one chunk in one request accumulate.
    map.commit_write(
        ino,
        &[commit(1, &chunks[1], 30), commit(1, &chunks[1], 20)],
        0,
        None,
        None,
        ts(91),
    )
    .unwrap();
    assert_eq!(map.chunk(ino, 1).unwrap().unwrap().length, 30);
    assert_eq!(fx.attr(ino).size, CHUNK + 10);
}

#[test]
fn stale_commits_are_refused_whole() {
    let fx = Fixture::new();
    let ino = fx.file(ROOT_INO, "f");
    let chunks = fx.allocate(ino, 1);
    let map = fx.master.chunk_map();
    let wrong_id = ChunkCommit {
        chunk_id: chunks[0].chunk_id + 100,
        ..commit(0, &chunks[0], 10)
    };
    assert!(matches!(
        fs_err(map.commit_write(ino, &[wrong_id], 10, None, None, ts(1))),
        FsError::Stale(_)
    ));
    let old_version = ChunkCommit {
        version: 0,
        ..commit(0, &chunks[0], 10)
    };
    assert!(matches!(
        fs_err(map.commit_write(ino, &[old_version], 10, None, None, ts(1))),
        FsError::Stale(_)
    ));
    let hole = commit(3, &chunks[0], 10);
    let err = fs_err(map.commit_write(
        ino,
        &[commit(0, &chunks[0], 10), hole],
        10,
        None,
        None,
        ts(1),
    ));
    assert!(matches!(err, FsError::Stale(_)));
    // Nothing of a refused commit was applied.
    assert_eq!(fx.attr(ino).size, 0);
    assert_eq!(map.chunk(ino, 0).unwrap().unwrap().length, 0);
    assert_eq!(
        fs_err(map.commit_write(999, &[], 10, None, None, ts(1))),
        FsError::NotFound
    );
    let too_long = commit(0, &chunks[0], CHUNK + 1);
    assert!(matches!(
        fs_err(map.commit_write(ino, &[too_long], 10, None, None, ts(1))),
        FsError::Invalid(_)
    ));
}

#[test]
fn truncate_drops_whole_chunks_and_queues_their_replicas() {
    let fx = Fixture::new();
    let ino = fx.file(ROOT_INO, "f");
    let chunks = fx.allocate(ino, 4);
    fx.commit_all(ino, &chunks, 3 * CHUNK + 100);

    let shrink = pb::SetAttrRequest {
        ino,
        size: Some(CHUNK + CHUNK / 2),
        ..Default::default()
    };
    let attr = fx.ns().setattr(&shrink, ts(50)).unwrap();
    assert_eq!(
        (attr.size, attr.mtime, attr.ctime),
        (CHUNK + CHUNK / 2, Some(ts(50)), Some(ts(50)))
    );
    let file = fx.master.chunk_map().chunks(ino, 0, 0).unwrap();
    let kept: Vec<_> = file
        .chunks
        .iter()
        .map(|(i, c)| (*i, c.chunk_id, c.length))
        .collect();
    assert_eq!(
        kept,
        [
            (0, chunks[0].chunk_id, CHUNK),
            (1, chunks[1].chunk_id, CHUNK / 2)
        ]
    );
    let dropped = vec![chunks[2].chunk_id, chunks[3].chunk_id];
    let store = fx.master.namespace().writer.store();
    assert_eq!(store.deletions(1).unwrap(), dropped);
    assert_eq!(store.deletions(2).unwrap(), dropped);
    assert_eq!(store.chunk_owner(chunks[2].chunk_id).unwrap(), None);

    // A commit from a writer that still holds a dropped chunk is stale.
    let late = commit(3, &chunks[3], 10);
    let err =
        fs_err(
            fx.master
                .chunk_map()
                .commit_write(ino, &[late], 4 * CHUNK, None, None, ts(60)),
        );
    assert!(matches!(err, FsError::Stale(_)));

    // Truncating to a chunk boundary drops the chunk that started there; to 0 drops all.
    let at_boundary = pb::SetAttrRequest {
        ino,
        size: Some(CHUNK),
        ..Default::default()
    };
    fx.ns().setattr(&at_boundary, ts(61)).unwrap();
    assert_eq!(
        fx.master
            .chunk_map()
            .chunks(ino, 0, 0)
            .unwrap()
            .chunks
            .len(),
        1
    );
    let empty = pb::SetAttrRequest {
        ino,
        size: Some(0),
        ..Default::default()
    };
    fx.ns().setattr(&empty, ts(62)).unwrap();
    assert!(
        fx.master
            .chunk_map()
            .chunks(ino, 0, 0)
            .unwrap()
            .chunks
            .is_empty()
    );
    assert_eq!(store.deletions(1).unwrap().len(), 4);
}

#[test]
fn unlinking_the_last_link_queues_every_replica() {
    let fx = Fixture::new();
    let ino = fx.file(ROOT_INO, "f");
    let chunks = fx.allocate(ino, 3);
    fx.ns().link(ino, ROOT_INO, b"g", ts(20)).unwrap();
    fx.ns().unlink(ROOT_INO, b"f", ts(21)).unwrap();
    let store = fx.master.namespace().writer.store();
    assert!(store.deletions(1).unwrap().is_empty());
    fx.ns().unlink(ROOT_INO, b"g", ts(22)).unwrap();
    let ids: Vec<u64> = chunks.iter().map(|c| c.chunk_id).collect();
    assert_eq!(store.deletions(1).unwrap(), ids);
    assert_eq!(store.deletions(2).unwrap(), ids);
    assert!(store.chunks(ino, 0, None).unwrap().is_empty());
}

#[test]
fn allocation_through_placement_needs_live_servers() {
    let fx = Fixture::new();
    let ino = fx.file(ROOT_INO, "f");
    let now = Instant::now();
    assert_eq!(
        fs_err(fx.master.allocate_chunk(ino, 0, now, 1)),
        FsError::NoSpace
    );
    let servers: Vec<(u64, String)> = (0..4)
        .map(|i| {
            let uuid = format!("uuid-{i}");
            (fx.register(&uuid, 10 * CHUNK, now), addr_of(&uuid))
        })
        .collect();
    let info = fx.master.allocate_chunk(ino, 0, now, 1).unwrap();
    assert_eq!(info.replicas.len(), 3);
    for replica in &info.replicas {
        assert!(
            servers.contains(&(replica.server_id, replica.addr.clone())),
            "{replica:?}"
        );
    }
    // Asking again returns the same chunk, whatever the seed.
    assert_eq!(fx.master.allocate_chunk(ino, 0, now, 99).unwrap(), info);
    let listed = fx.master.get_chunks(ino, 0, 0, now).unwrap();
    assert_eq!(listed.chunks, vec![info]);
}

#[test]
fn a_lookup_for_an_open_brings_a_small_files_chunk_map() {
    let fx = Fixture::new();
    let now = Instant::now();
    let small = fx.file(ROOT_INO, "small");
    let chunks = fx.allocate(small, 2);
    fx.commit_all(small, &chunks, CHUNK + 10);
    let big = fx.file(ROOT_INO, "big");
    let big_chunks = fx.allocate(big, 5);
    fx.commit_all(big, &big_chunks, 4 * CHUNK + 1);
    fx.dir(ROOT_INO, "d");
    let lookup = |name: &str, open_ahead: bool| {
        fx.master.lookup(
            &pb::LookupRequest {
                parent: ROOT_INO,
                name: name.as_bytes().to_vec(),
                open_ahead,
            },
            now,
        )
    };
    let reply = lookup("small", true).unwrap();
    assert_eq!(reply.attr.unwrap().ino, small);
    let map = reply.chunk_map.expect("a small file's chunk map");
    let ids: Vec<u64> = map.chunks.iter().map(|c| c.chunk_id).collect();
    let expected: Vec<u64> = chunks.iter().map(|c| c.chunk_id).collect();
    assert_eq!((ids, map.file_size), (expected, CHUNK + 10));
    // Not asked for, too big for a lookup to carry, or not a file: attributes only.
    assert!(lookup("small", false).unwrap().chunk_map.is_none());
    assert!(lookup("big", true).unwrap().chunk_map.is_none());
    assert!(lookup("d", true).unwrap().chunk_map.is_none());
    assert_eq!(fs_err(lookup("nope", true)), FsError::NotFound);
}
