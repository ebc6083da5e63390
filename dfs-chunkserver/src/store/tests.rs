//! Tests of the store against real files in a temporary directory.

use std::fs;
use std::os::unix::fs::FileExt;

use dfs_proto::FsError;
use tempfile::TempDir;

use super::*;

/// Small blocks so that tests cross block boundaries with a few bytes.
const BLOCK: u64 = 64;
const CHUNK: u64 = 64 * BLOCK;

fn options() -> StoreOptions {
    StoreOptions {
        block_size: BLOCK,
        chunk_size: CHUNK,
        capacity_limit: None,
    }
}

fn open(dir: &TempDir) -> ChunkStore {
    ChunkStore::open(dir.path(), options()).unwrap()
}

fn fs_error(result: Result<impl std::fmt::Debug>) -> FsError {
    match result {
        Err(Error::Fs(fs)) => fs,
        other => panic!("expected an FsError, got {other:?}"),
    }
}

/// Deterministic pseudo-random numbers (xorshift), so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_add((i * 7) as u8) | 1)
        .collect()
}

#[test]
fn writes_at_arbitrary_offsets_read_back_like_a_model() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let mut model: Vec<u8> = Vec::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for step in 0..300u64 {
        let offset = rng.below(CHUNK - 200);
        let len = 1 + rng.below(3 * BLOCK);
        let data = pattern(step as u8, len as usize);
        let length = store.write(7, 1, offset, &data).unwrap();
        let end = (offset + len) as usize;
        if model.len() < end {
            model.resize(end, 0);
        }
        model[offset as usize..end].copy_from_slice(&data);
        assert_eq!(length, model.len() as u64);

        // A random range, possibly running past the end.
        let from = rng.below(model.len() as u64 + 10);
        let want = rng.below(4 * BLOCK);
        let got = store.read(7, 1, from, want).unwrap();
        let lo = (from as usize).min(model.len());
        let hi = ((from + want) as usize).min(model.len());
        assert_eq!(&got[..], &model[lo..hi], "step {step}: read {from}+{want}");
    }
    assert_eq!(&store.read(7, 1, 0, CHUNK).unwrap()[..], &model[..]);
    // Everything was persisted: a reopened store reads the same bytes.
    drop(store);
    let store = open(&dir);
    assert_eq!(&store.read(7, 1, 0, CHUNK).unwrap()[..], &model[..]);
    // The data file is exactly the replica, no padding.
    let data_file = dir.path().join("chunks/07/0000000000000007.data");
    assert_eq!(fs::read(data_file).unwrap(), model);
}

#[test]
fn a_write_past_the_end_leaves_a_hole_of_zeros() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    store.write(1, 1, 0, b"head").unwrap();
    // The gap spans the rest of block 0, whole blocks 1-2 and the start of block 3.
    let offset = 3 * BLOCK + 10;
    assert_eq!(store.write(1, 1, offset, b"tail").unwrap(), offset + 4);
    let all = store.read(1, 1, 0, CHUNK).unwrap();
    assert_eq!(all.len() as u64, offset + 4);
    assert_eq!(&all[..4], b"head");
    assert!(all[4..offset as usize].iter().all(|&b| b == 0));
    assert_eq!(&all[offset as usize..], b"tail");
    // Reading only inside the hole verifies the zero blocks' checksums.
    assert_eq!(
        &store.read(1, 1, BLOCK, BLOCK).unwrap()[..],
        &[0u8; BLOCK as usize][..]
    );
}

#[test]
fn a_flipped_byte_in_the_data_file_is_detected() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let data = pattern(3, (4 * BLOCK) as usize);
    store.write(0xab, 2, 0, &data).unwrap();
    let path = dir.path().join("chunks/ab/00000000000000ab.data");
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&[data[(2 * BLOCK + 5) as usize] ^ 0x01], 2 * BLOCK + 5)
        .unwrap();
    // Reopen so no state is cached: the check is against the sidecar on disk.
    let store = open(&dir);
    assert!(matches!(
        fs_error(store.read(0xab, 2, 2 * BLOCK, 1)),
        FsError::Corrupt(_)
    ));
    assert!(matches!(
        fs_error(store.read(0xab, 2, 0, CHUNK)),
        FsError::Corrupt(_)
    ));
    // Blocks the damage does not touch still read fine.
    assert_eq!(
        &store.read(0xab, 2, 0, 2 * BLOCK).unwrap()[..],
        &data[..(2 * BLOCK) as usize]
    );
    assert_eq!(
        &store.read(0xab, 2, 3 * BLOCK, BLOCK).unwrap()[..],
        &data[(3 * BLOCK) as usize..]
    );
}

#[test]
fn versions_older_than_the_replica_are_stale_and_newer_ones_are_adopted() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    store.write(5, 3, 0, b"v3").unwrap();
    assert!(matches!(
        fs_error(store.write(5, 2, 0, b"v2")),
        FsError::Stale(_)
    ));
    // A reader whose chunk map predates the replica's version reads it (the data is newer,
    // as after a new writer's version bump); one expecting a newer version is refused.
    assert_eq!(&store.read(5, 2, 0, 10).unwrap()[..], b"v3");
    assert!(matches!(
        fs_error(store.read(5, 4, 0, 10)),
        FsError::Stale(_)
    ));
    assert_eq!(&store.read(5, 3, 0, 10).unwrap()[..], b"v3");

    store.write(5, 4, 2, b"+v4").unwrap();
    assert_eq!(&store.read(5, 4, 0, 10).unwrap()[..], b"v3+v4");
    assert_eq!(&store.read(5, 3, 0, 10).unwrap()[..], b"v3+v4");
    assert_eq!(
        store.list(),
        vec![ReplicaInfo {
            chunk_id: 5,
            version: 4,
            length: 5
        }]
    );

    // A writer of the old version is stopped once a newer one took the chunk.
    let old = store.open_writer(6, 1).unwrap();
    store.write(6, 2, 0, b"new").unwrap();
    assert!(matches!(fs_error(old.write(0, b"old")), FsError::Stale(_)));
}

#[test]
fn missing_replicas_are_not_found() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    assert_eq!(fs_error(store.read(9, 1, 0, 10)), FsError::NotFound);
    assert_eq!(fs_error(store.sync(9)), FsError::NotFound);
    // An empty read of an existing replica past its end is no error.
    store.write(9, 1, 0, b"x").unwrap();
    assert!(store.read(9, 1, 100, 10).unwrap().is_empty());
}

#[test]
fn truncate_cuts_and_extends_with_zeros() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let data = pattern(9, (3 * BLOCK) as usize);
    store.write(2, 1, 0, &data).unwrap();
    // Cut in the middle of block 1: its checksum must cover only what is left.
    assert_eq!(store.truncate(2, 1, BLOCK + 10).unwrap(), BLOCK + 10);
    assert_eq!(
        &store.read(2, 1, 0, CHUNK).unwrap()[..],
        &data[..(BLOCK + 10) as usize]
    );
    // Extend to the middle of block 4: the cut bytes do not come back.
    assert_eq!(store.truncate(2, 1, 4 * BLOCK + 3).unwrap(), 4 * BLOCK + 3);
    let all = store.read(2, 1, 0, CHUNK).unwrap();
    assert_eq!(
        &all[..(BLOCK + 10) as usize],
        &data[..(BLOCK + 10) as usize]
    );
    assert!(all[(BLOCK + 10) as usize..].iter().all(|&b| b == 0));
    assert_eq!(all.len() as u64, 4 * BLOCK + 3);
    store.truncate(2, 1, 0).unwrap();
    assert!(store.read(2, 1, 0, CHUNK).unwrap().is_empty());
    let reopened = open(&dir);
    assert_eq!(
        reopened.list(),
        vec![ReplicaInfo {
            chunk_id: 2,
            version: 1,
            length: 0
        }]
    );
}

#[test]
fn writes_past_the_chunk_size_are_refused() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    assert!(matches!(
        fs_error(store.write(1, 1, CHUNK - 1, b"ab")),
        FsError::Invalid(_)
    ));
    assert!(matches!(
        fs_error(store.truncate(1, 1, CHUNK + 1)),
        FsError::Invalid(_)
    ));
    assert_eq!(store.write(1, 1, CHUNK - 2, b"ab").unwrap(), CHUNK);
}

#[test]
fn delete_and_list() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    store.write(0x301, 1, 0, b"one").unwrap();
    store.write(0x102, 2, 0, b"three").unwrap();
    store.write(0x203, 1, 10, b"x").unwrap();
    let all = vec![
        ReplicaInfo {
            chunk_id: 0x102,
            version: 2,
            length: 5,
        },
        ReplicaInfo {
            chunk_id: 0x203,
            version: 1,
            length: 11,
        },
        ReplicaInfo {
            chunk_id: 0x301,
            version: 1,
            length: 3,
        },
    ];
    assert_eq!(store.list(), all);
    assert_eq!(store.usage().unwrap().used_bytes, 19);
    assert_eq!(store.usage().unwrap().replica_count, 3);

    assert!(store.delete(0x203).unwrap());
    assert!(!store.delete(0x203).unwrap());
    assert_eq!(fs_error(store.read(0x203, 1, 0, 1)), FsError::NotFound);
    assert!(!dir.path().join("chunks/03/0000000000000203.data").exists());
    assert!(!dir.path().join("chunks/03/0000000000000203.meta").exists());

    // The index is rebuilt from the sidecars on reopen.
    let reopened = open(&dir);
    assert_eq!(reopened.list(), vec![all[0], all[2]]);
    assert_eq!(reopened.usage().unwrap().used_bytes, 8);
}

#[test]
fn the_storage_uuid_is_stable_across_reopen() {
    let dir = TempDir::new().unwrap();
    let uuid = open(&dir).storage_uuid().to_string();
    assert_eq!(uuid.len(), 32);
    assert!(uuid.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(open(&dir).storage_uuid(), uuid);
    let other = TempDir::new().unwrap();
    assert_ne!(open(&other).storage_uuid(), uuid);
}

#[test]
fn leftovers_of_interrupted_operations_are_cleaned_on_open() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    store.write(0x11, 1, 0, b"kept").unwrap();
    drop(store);
    let sub = dir.path().join("chunks/11");
    // A creation that crashed before its sidecar, a sidecar replacement that crashed before
    // the rename, and data appended after the last sidecar.
    fs::write(sub.join("0000000000000211.data"), b"orphan").unwrap();
    fs::write(sub.join("0000000000000011.meta.tmp"), b"half").unwrap();
    let data = sub.join("0000000000000011.data");
    fs::OpenOptions::new()
        .write(true)
        .open(&data)
        .unwrap()
        .write_all_at(b"++", 4)
        .unwrap();

    let store = open(&dir);
    assert!(!sub.join("0000000000000211.data").exists());
    assert!(!sub.join("0000000000000011.meta.tmp").exists());
    assert_eq!(&store.read(0x11, 1, 0, 100).unwrap()[..], b"kept");
    assert_eq!(fs::read(&data).unwrap(), b"kept");
}

#[test]
fn a_capacity_limit_is_reported_and_enforced() {
    let dir = TempDir::new().unwrap();
    let options = StoreOptions {
        capacity_limit: Some(100),
        ..options()
    };
    let store = ChunkStore::open(dir.path(), options).unwrap();
    store.write(1, 1, 0, &[1; 60]).unwrap();
    let usage = store.usage().unwrap();
    assert_eq!(usage.capacity_bytes, 100);
    assert_eq!(usage.free_bytes, 40);
    assert_eq!(fs_error(store.write(2, 1, 0, &[2; 41])), FsError::NoSpace);
    // Overwriting in place needs no room; the failed write left nothing behind.
    store.write(1, 1, 0, &[3; 60]).unwrap();
    assert_eq!(store.usage().unwrap().used_bytes, 60);
    store.write(2, 1, 0, &[2; 40]).unwrap();
    assert_eq!(store.usage().unwrap().free_bytes, 0);
}

#[test]
fn sync_persists_a_write_in_progress() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let writer = store.open_writer(4, 1).unwrap();
    writer.write(0, b"abc").unwrap();
    // Readers see the write before it is committed: they share the in-memory sidecar.
    assert_eq!(&store.read(4, 1, 0, 10).unwrap()[..], b"abc");
    store.sync(4).unwrap();
    drop(writer);
    assert_eq!(&open(&dir).read(4, 1, 0, 10).unwrap()[..], b"abc");
}

#[test]
fn transfers_count_while_their_guards_live() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    assert_eq!(store.active_transfers(), 0);
    let read = store.begin_transfer();
    let write = store.clone().begin_transfer();
    assert_eq!(store.active_transfers(), 2);
    drop(read);
    assert_eq!(store.active_transfers(), 1);
    drop(write);
    assert_eq!(store.active_transfers(), 0);
}

#[test]
fn ranged_writes_with_in_place_sidecars_read_back_like_a_model() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let mut model: Vec<u8> = Vec::new();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for step in 0..200u64 {
        let writer = store.open_writer(9, 1).unwrap();
        // A stream of a few ranged messages: pieces scattered, sometimes touching one block
        // twice, sometimes overlapping, sometimes leaving a hole past the end.
        for _ in 0..1 + rng.below(3) {
            let pieces: Vec<(u64, Vec<u8>)> = (0..1 + rng.below(6))
                .map(|i| {
                    let offset = rng.below(CHUNK - 3 * BLOCK);
                    let len = 1 + rng.below(2 * BLOCK) as usize;
                    (offset, pattern((step * 8 + i) as u8, len))
                })
                .collect();
            let refs: Vec<(u64, &[u8])> = pieces.iter().map(|(o, d)| (*o, &d[..])).collect();
            let length = writer.write_ranges(&refs).unwrap();
            for (offset, data) in &pieces {
                let end = *offset as usize + data.len();
                if model.len() < end {
                    model.resize(end, 0);
                }
                model[*offset as usize..end].copy_from_slice(data);
            }
            assert_eq!(length, model.len() as u64, "step {step}");
        }
        if rng.below(10) == 0 {
            let len = rng.below(model.len() as u64 + 1);
            writer.truncate(len).unwrap();
            model.truncate(len as usize);
        }
        writer.commit(rng.below(20) == 0).unwrap();
        drop(writer);
        if step % 25 == 0 {
            // The in-place sidecar on disk matches: a reopened store verifies every block.
            let reopened = open(&dir);
            assert_eq!(
                &reopened.read(9, 1, 0, CHUNK).unwrap()[..],
                &model[..],
                "step {step}"
            );
        }
    }
    assert_eq!(&store.read(9, 1, 0, CHUNK).unwrap()[..], &model[..]);
    drop(store);
    let store = open(&dir);
    assert_eq!(&store.read(9, 1, 0, CHUNK).unwrap()[..], &model[..]);
    let meta_file = dir.path().join("chunks/09/0000000000000009.meta");
    let blocks = (model.len() as u64).div_ceil(BLOCK);
    assert_eq!(fs::metadata(meta_file).unwrap().len(), 32 + 4 * blocks);
}

#[test]
fn a_torn_sidecar_is_detected_as_corruption() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    store
        .write(4, 1, 0, &pattern(1, 4 * BLOCK as usize))
        .unwrap();
    drop(store);
    // A crash after the data of a rewrite reached the file, before its checksums did.
    let data_file = dir.path().join("chunks/04/0000000000000004.data");
    let file = fs::OpenOptions::new().write(true).open(data_file).unwrap();
    file.write_all_at(&pattern(2, BLOCK as usize), BLOCK)
        .unwrap();
    let store = open(&dir);
    assert_eq!(
        &store.read(4, 1, 0, BLOCK).unwrap()[..],
        &pattern(1, 64)[..]
    );
    assert!(matches!(
        fs_error(store.read(4, 1, BLOCK, BLOCK)),
        FsError::Corrupt(_)
    ));
}

#[test]
fn a_replica_is_persisted_once_its_first_stream_commits() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let writer = store.open_writer(5, 1).unwrap();
    writer.write(0, b"abc").unwrap();
    // Not committed yet: no sidecar, so a crash now leaves nothing a restart would keep.
    let sidecars = || {
        walk(dir.path())
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "meta"))
            .count()
    };
    assert_eq!(sidecars(), 0);
    assert_eq!(writer.commit(false).unwrap(), 3);
    drop(writer);
    assert_eq!(sidecars(), 1);
    assert_eq!(&open(&dir).read(5, 1, 0, 10).unwrap()[..], b"abc");
    // An uncommitted replica can be deleted too.
    let writer = store.open_writer(6, 1).unwrap();
    drop(writer);
    assert!(store.delete(6).unwrap());
}

/// Every file under `dir`, recursively.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn a_writer_that_must_not_wait_opens_only_a_chunk_no_one_else_uses() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let writer = store.try_open_writer(7, 1).unwrap().unwrap();
    assert!(writer.is_sole_user());
    writer.write(0, b"inline").unwrap();
    // While someone else uses the chunk, its lock may be taken at any time.
    let other = store.open_writer(7, 1).unwrap();
    assert!(!writer.is_sole_user());
    assert!(store.try_open_writer(7, 1).is_none());
    drop(other);
    assert!(writer.is_sole_user());
    assert_eq!(writer.commit(false).unwrap(), 6);
    drop(writer);
    // The version is checked as by `open_writer`.
    store.write(7, 3, 0, b"v3").unwrap();
    assert!(matches!(
        fs_error(store.try_open_writer(7, 2).unwrap()),
        FsError::Stale(_)
    ));
    assert_eq!(&open(&dir).read(7, 3, 0, 10).unwrap()[..], b"v3line");
}
