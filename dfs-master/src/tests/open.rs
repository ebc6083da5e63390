//! The small-file fast path: `OpenFile` and `CreateFile` keep the meaning of the separate
//! calls they replace (attributes, chunk map, relatime atime mark, writer lease).

use std::time::{Duration, Instant};

use dfs_proto::pb::{self, FileKind};
use dfs_proto::{FsError, ROOT_INO};

use super::{Fixture, fs_err, ts};

fn open(ino: u64, read: bool, holder: &str) -> pb::OpenFileRequest {
    pb::OpenFileRequest {
        ino,
        read,
        lease_holder: holder.to_string(),
    }
}

fn create(name: &str, exclusive: bool, holder: &str) -> pb::CreateFileRequest {
    pb::CreateFileRequest {
        node: Some(pb::MakeNodeRequest {
            parent: ROOT_INO,
            name: name.as_bytes().to_vec(),
            kind: FileKind::Regular as i32,
            perm: 0o644,
            uid: 1000,
            gid: 1000,
            exclusive,
            ..Default::default()
        }),
        lease_holder: holder.to_string(),
        place_first_chunk: false,
    }
}

#[test]
fn an_open_for_reading_marks_atime_by_the_relatime_rule() {
    let fx = Fixture::new();
    // Created at 10: atime equals mtime and ctime, so the first read marks it.
    let ino = fx.file(ROOT_INO, "f");
    let clock = Instant::now();
    let first = fx
        .master
        .open_file(&open(ino, true, ""), ts(20), clock)
        .unwrap();
    assert!(first.access_marked);
    assert_eq!(first.attr.unwrap().atime, Some(ts(20)));
    assert_eq!(fx.attr(ino).atime, Some(ts(20)));
    // The mark changes atime only.
    assert_eq!(fx.attr(ino).ctime, Some(ts(10)));
    // atime is now newer than mtime and ctime, and less than a day old: no mark.
    let again = fx
        .master
        .open_file(&open(ino, true, ""), ts(30), clock)
        .unwrap();
    assert!(!again.access_marked);
    assert_eq!(fx.attr(ino).atime, Some(ts(20)));
    // A day later it is marked again.
    let day = 24 * 60 * 60;
    let later = fx
        .master
        .open_file(&open(ino, true, ""), ts(20 + day), clock)
        .unwrap();
    assert!(later.access_marked);
    // An open that does not read never marks.
    let fresh = fx.file(ROOT_INO, "g");
    let write_only = fx
        .master
        .open_file(&open(fresh, false, ""), ts(40), clock)
        .unwrap();
    assert!(!write_only.access_marked);
    assert_eq!(fx.attr(fresh).atime, Some(ts(10)));
}

#[test]
fn marks_a_mount_made_move_atime_forward_only_and_skip_files_gone() {
    let fx = Fixture::new();
    let (f, g) = (fx.file(ROOT_INO, "f"), fx.file(ROOT_INO, "g"));
    let mark = |ino, secs| pb::AccessMark {
        ino,
        atime: Some(ts(secs)),
    };
    let batch = |marks| pb::MarkAccessRequest { marks };
    // f forward to 30; g's mark is older than its atime (10): kept; 999 names no file.
    fx.master
        .mark_accesses(&batch(vec![mark(f, 30), mark(g, 5), mark(999, 40)]))
        .unwrap();
    assert_eq!(fx.attr(f).atime, Some(ts(30)));
    assert_eq!(fx.attr(g).atime, Some(ts(10)));
    // A mark changes atime only.
    assert_eq!(fx.attr(f).ctime, Some(ts(10)));
    fx.master.mark_accesses(&batch(vec![mark(f, 20)])).unwrap();
    assert_eq!(fx.attr(f).atime, Some(ts(30)));
}

#[test]
fn an_open_answers_the_chunk_map_and_size() {
    let fx = Fixture::new();
    let ino = fx.file(ROOT_INO, "f");
    let reply = fx
        .master
        .open_file(&open(ino, false, ""), ts(20), Instant::now())
        .unwrap();
    let map = reply.chunk_map.unwrap();
    assert!(map.chunks.is_empty());
    assert_eq!(map.file_size, 0);
    assert_eq!(
        fs_err(
            fx.master
                .open_file(&open(999, true, ""), ts(20), Instant::now())
        ),
        FsError::NotFound
    );
}

#[test]
fn an_open_for_writing_grants_the_lease_as_acquire_does() {
    let fx = Fixture::new();
    let ino = fx.file(ROOT_INO, "f");
    let t0 = Instant::now();
    let a = fx
        .master
        .open_file(&open(ino, true, "a"), ts(20), t0)
        .unwrap();
    let lease = a.lease.unwrap();
    assert!(!lease.recover);
    assert_eq!(lease.ttl_ms, fx.master.leases().ttl().as_millis() as u64);
    fx.master.leases().generation(ino, "a").unwrap();
    // Another holder is refused, and its refused open marks nothing.
    let busy = fx.master.open_file(&open(ino, true, "b"), ts(30), t0);
    assert_eq!(fs_err(busy), FsError::Busy);
    assert_eq!(fx.attr(ino).atime, Some(ts(20)));
    assert_eq!(
        fs_err(fx.master.leases().acquire(ino, "b", t0)),
        FsError::Busy
    );
    // The same holder opens again (another handle of its mount).
    let again = fx
        .master
        .open_file(&open(ino, false, "a"), ts(30), t0)
        .unwrap();
    assert!(!again.lease.unwrap().recover);
    // Expired without a release: the next holder recovers.
    let late = t0 + fx.master.leases().ttl() + Duration::from_millis(1);
    let b = fx
        .master
        .open_file(&open(ino, false, "b"), ts(40), late)
        .unwrap();
    assert!(b.lease.unwrap().recover);
    // Directories have no leases.
    let dir = fx.dir(ROOT_INO, "d");
    assert_eq!(
        fs_err(fx.master.open_file(&open(dir, false, "a"), ts(50), late)),
        FsError::IsDir
    );
}

#[test]
fn a_create_for_writing_holds_the_lease_of_the_new_file() {
    let fx = Fixture::new();
    let t0 = Instant::now();
    let reply = fx
        .master
        .create_file(&create("f", true, "a"), ts(20), t0)
        .unwrap();
    let attr = reply.attr.unwrap();
    assert!(!reply.lease.unwrap().recover);
    assert_eq!(fx.lookup(ROOT_INO, "f").unwrap(), attr);
    assert_eq!(fx.attr(ROOT_INO).mtime, Some(ts(20)));
    fx.master.leases().generation(attr.ino, "a").unwrap();
    assert_eq!(
        fs_err(fx.master.leases().acquire(attr.ino, "b", t0)),
        FsError::Busy
    );
    // Exclusive create of an existing name: EEXIST, no lease for the asker.
    let exists = fx.master.create_file(&create("f", true, "b"), ts(30), t0);
    assert_eq!(fs_err(exists), FsError::Exists);
    // A non-exclusive create finds the file but waits for its lease like an open.
    let busy = fx.master.create_file(&create("f", false, "b"), ts(30), t0);
    assert_eq!(fs_err(busy), FsError::Busy);
    fx.master.leases().release(attr.ino, "a").unwrap();
    let found = fx
        .master
        .create_file(&create("f", false, "b"), ts(30), t0)
        .unwrap();
    assert_eq!(found.attr.unwrap().ino, attr.ino);
    fx.master.leases().generation(attr.ino, "b").unwrap();
    // Without a holder it is a plain create.
    let plain = fx
        .master
        .create_file(&create("g", true, ""), ts(40), t0)
        .unwrap();
    assert!(plain.lease.is_none());
    let ino = plain.attr.unwrap().ino;
    fx.master.leases().acquire(ino, "c", t0).unwrap();
    // Only regular files are created open.
    let mut dir = create("d", true, "a");
    dir.node.as_mut().unwrap().kind = FileKind::Directory as i32;
    assert!(matches!(
        fs_err(fx.master.create_file(&dir, ts(50), t0)),
        FsError::Invalid(_)
    ));
}

#[test]
fn created_files_and_their_leases_survive_a_restart() {
    let fx = Fixture::new();
    let t0 = Instant::now();
    let reply = fx
        .master
        .create_file(&create("f", true, "a"), ts(20), t0)
        .unwrap();
    let ino = reply.attr.unwrap().ino;
    let fx = fx.reopen();
    assert_eq!(fx.lookup(ROOT_INO, "f").unwrap().ino, ino);
    // The restarted master honours the lease for a time-to-live.
    let busy = fx.master.leases().acquire(ino, "b", Instant::now());
    assert_eq!(fs_err(busy), FsError::Busy);
    fx.master.leases().generation(ino, "a").unwrap();
}

/// A create for writing that also places chunk 0, with three servers registered at `now`.
fn create_placed(fx: &Fixture, name: &str, now: Instant) -> (u64, pb::ChunkInfo) {
    for uuid in ["a", "b", "c"] {
        fx.register(uuid, 1 << 30, now);
    }
    let req = pb::CreateFileRequest {
        place_first_chunk: true,
        ..create(name, true, "m1")
    };
    let reply = fx.master.create_file(&req, ts(10), now).unwrap();
    let placed = reply.first_chunk.expect("chunk 0 placed");
    (reply.attr.unwrap().ino, placed)
}

fn placed_commit(ino: u64, placed: &pb::ChunkInfo, length: u64) -> pb::CommitWriteRequest {
    pb::CommitWriteRequest {
        ino,
        chunks: vec![pb::ChunkCommit {
            index: 0,
            chunk_id: placed.chunk_id,
            version: placed.version,
            length,
            placed_servers: placed.replicas.iter().map(|r| r.server_id).collect(),
        }],
        size: length,
        lease_holder: "m1".into(),
        ..Default::default()
    }
}

#[test]
fn a_placed_chunk_is_recorded_by_the_first_commit_only() {
    let fx = Fixture::new();
    let now = Instant::now();
    let (ino, placed) = create_placed(&fx, "f", now);
    assert_eq!((placed.index, placed.version, placed.length), (0, 1, 0));
    assert_eq!(placed.replicas.len(), 3);
    // Placed, not recorded: a file that stays empty has no chunk.
    assert!(fx.master.chunk_map().chunk(ino, 0).unwrap().is_none());
    let commit = placed_commit(ino, &placed, 5000);
    fx.master
        .commit_write(&commit, ts(11), Instant::now())
        .unwrap();
    let chunk = fx.master.chunk_map().chunk(ino, 0).unwrap().unwrap();
    assert_eq!((chunk.chunk_id, chunk.length), (placed.chunk_id, 5000));
    let servers: Vec<u64> = placed.replicas.iter().map(|r| r.server_id).collect();
    assert_eq!(chunk.replicas, servers);
    assert_eq!(fx.attr(ino).size, 5000);
    // Once recorded, the same commit is an ordinary one.
    fx.master
        .commit_write(&commit, ts(12), Instant::now())
        .unwrap();
    // A placement is never recorded for another file.
    let other = fx.file(ROOT_INO, "other");
    let stolen = placed_commit(other, &placed, 10);
    assert!(matches!(
        fs_err(
            fx.master
                .chunk_map()
                .commit_write(other, &stolen.chunks, 10, None, None, ts(13))
        ),
        FsError::Stale(_)
    ));
}

#[test]
fn only_reserved_ids_are_recorded_as_placed_chunks() {
    let fx = Fixture::new();
    let now = Instant::now();
    let (ino, placed) = create_placed(&fx, "f", now);
    let never_handed_out = pb::ChunkInfo {
        chunk_id: placed.chunk_id + 1000,
        ..placed.clone()
    };
    let commit = placed_commit(ino, &never_handed_out, 10);
    assert!(matches!(
        fs_err(fx.master.commit_write(&commit, ts(11), Instant::now())),
        FsError::Stale(_)
    ));
    // A failed write records the placement through LeaseChunk, then commits as usual.
    let req = pb::LeaseChunkRequest {
        ino,
        index: 0,
        holder: "m1".into(),
        placed_chunk_id: placed.chunk_id,
        placed_servers: placed.replicas.iter().map(|r| r.server_id).collect(),
        ..Default::default()
    };
    let recorded = fx.master.lease_chunk(&req, now, 7).unwrap();
    assert_eq!(recorded.chunk_id, placed.chunk_id);
    fx.master
        .commit_write(&placed_commit(ino, &placed, 10), ts(12), Instant::now())
        .unwrap();
    assert_eq!(fx.attr(ino).size, 10);
}

#[test]
fn without_room_a_create_places_nothing() {
    let fx = Fixture::new();
    let req = pb::CreateFileRequest {
        place_first_chunk: true,
        ..create("f", true, "m1")
    };
    let reply = fx.master.create_file(&req, ts(10), Instant::now()).unwrap();
    assert!(reply.first_chunk.is_none());
    assert!(reply.lease.is_some());
}

#[test]
fn the_first_page_of_a_listing_marks_the_directory_and_answers_its_attributes() {
    let fx = Fixture::new();
    let dir = fx.dir(ROOT_INO, "d");
    fx.file(dir, "a");
    let read_dir = |open: bool, now: i64| {
        fx.master.read_dir(
            &pb::ReadDirRequest {
                ino: dir,
                after: Vec::new(),
                limit: 0,
                open,
            },
            ts(now),
        )
    };
    // A later page (or an old client) neither marks nor answers attributes.
    let plain = read_dir(false, 20).unwrap();
    assert_eq!(plain.dir_attr, None);
    assert_eq!(plain.entries.len(), 1);
    // The directory changed at 10 (its entry was made): the first page marks its atime.
    let first = read_dir(true, 20).unwrap();
    assert_eq!(first.entries.len(), 1);
    let attr = first.dir_attr.unwrap();
    assert_eq!((attr.ino, attr.atime), (dir, Some(ts(20))));
    assert_eq!(fx.attr(dir).atime, Some(ts(20)));
    // Newer than mtime and ctime, less than a day old: no mark.
    assert_eq!(
        read_dir(true, 30).unwrap().dir_attr.unwrap().atime,
        Some(ts(20))
    );
    assert_eq!(fx.attr(dir).atime, Some(ts(20)));
    // Listing a file is refused, and marks nothing.
    let file = fx.file(ROOT_INO, "f");
    let listed = fx.master.read_dir(
        &pb::ReadDirRequest {
            ino: file,
            open: true,
            ..Default::default()
        },
        ts(40),
    );
    assert_eq!(fs_err(listed), FsError::NotDir);
    assert_eq!(fx.attr(file).atime, Some(ts(10)));
}
