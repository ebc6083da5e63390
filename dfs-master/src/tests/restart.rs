//! Everything the master acknowledged is still there after it reopens its database, and a
//! database it cannot read is refused.

use std::time::Instant;

use dfs_proto::ROOT_INO;
use dfs_proto::pb::{self, FileKind};

use super::{BLOCK, CHUNK, Fixture, ts};
use crate::error::Error;
use crate::store::meta;
use crate::store::records::SCHEMA_VERSION;

#[test]
fn reopen_finds_namespace_chunks_servers_and_counters() {
    let fx = Fixture::new();
    let now = Instant::now();
    let server = fx.register("disk-a", 10 * CHUNK, now);
    let d = fx.dir(ROOT_INO, "d");
    let f = fx.file(d, "f");
    fx.make(d, "l", FileKind::Symlink);
    fx.ns().link(f, ROOT_INO, b"hard", ts(20)).unwrap();
    let chunks: Vec<_> = (0..2)
        .map(|i| {
            fx.master
                .chunk_map()
                .allocate_chunk(f, i, vec![server])
                .unwrap()
        })
        .collect();
    let commits: Vec<_> = chunks
        .iter()
        .enumerate()
        .map(|(i, c)| pb::ChunkCommit {
            index: i as u64,
            chunk_id: c.chunk_id,
            version: c.version,
            length: 100,
            placed_servers: Vec::new(),
        })
        .collect();
    fx.master
        .chunk_map()
        .commit_write(f, &commits, CHUNK + 100, None, None, ts(30))
        .unwrap();
    let doomed = fx.file(ROOT_INO, "doomed");
    let doomed_chunk = fx
        .master
        .chunk_map()
        .allocate_chunk(doomed, 0, vec![server])
        .unwrap();
    fx.ns().unlink(ROOT_INO, b"doomed", ts(31)).unwrap();
    let before_attrs = (fx.attr(ROOT_INO), fx.attr(d), fx.attr(f));

    let fx = fx.reopen();
    assert_eq!((fx.attr(ROOT_INO), fx.attr(d), fx.attr(f)), before_attrs);
    assert_eq!(fx.names(ROOT_INO), ["d", "hard"]);
    assert_eq!(fx.names(d), ["f", "l"]);
    let link = fx.lookup(d, "l").unwrap();
    assert_eq!(fx.ns().readlink(link.ino).unwrap(), b"target");
    assert_eq!(fx.ns().inode_count().unwrap(), 4);

    let file = fx.master.chunk_map().chunks(f, 0, 0).unwrap();
    assert_eq!(file.file_size, CHUNK + 100);
    let ids: Vec<_> = file
        .chunks
        .iter()
        .map(|(i, c)| (*i, c.chunk_id, c.length))
        .collect();
    assert_eq!(
        ids,
        [(0, chunks[0].chunk_id, 100), (1, chunks[1].chunk_id, 100)]
    );
    let store = fx.master.namespace().writer.store();
    assert_eq!(store.deletions(server).unwrap(), [doomed_chunk.chunk_id]);

    // The server is known (not live until it heartbeats) and keeps its id.
    let later = Instant::now();
    assert_eq!(fx.master.registry().capacity(later).live_servers, 0);
    assert_eq!(fx.master.registry().server_id("disk-a"), Some(server));
    assert_eq!(fx.register("disk-a", CHUNK, later), server);
    assert_ne!(fx.register("disk-b", CHUNK, later), server);

    // Counters continue: nothing handed out before is handed out again.
    let g = fx.file(ROOT_INO, "g");
    assert!(g > doomed);
    let next = fx
        .master
        .chunk_map()
        .allocate_chunk(g, 0, vec![server])
        .unwrap();
    assert!(next.chunk_id > doomed_chunk.chunk_id);
}

#[test]
fn the_chunk_layout_of_a_cluster_never_changes() {
    let fx = Fixture::new();
    let Fixture {
        dir,
        mut config,
        master,
    } = fx;
    drop(master);
    config.chunk_size = 4 * CHUNK;
    config.block_size = 2 * BLOCK;
    let master = crate::master::Master::open(&config, ts(5)).unwrap();
    let layout = master.layout();
    assert_eq!(
        (layout.chunk_size, layout.block_size),
        (CHUNK, u64::from(BLOCK))
    );
    drop((master, dir));
}

#[test]
fn a_database_records_its_schema_and_a_newer_one_is_refused() {
    let fx = Fixture::new();
    let store = fx.master.namespace().writer.store();
    assert_eq!(
        store.meta(meta::SCHEMA_VERSION).unwrap(),
        Some(SCHEMA_VERSION)
    );
    // As a newer master would leave it.
    let mut txn = fx.master.namespace().writer.begin();
    txn.set_counter(meta::SCHEMA_VERSION, SCHEMA_VERSION + 1);
    txn.commit().unwrap();
    let Fixture {
        dir,
        config,
        master,
    } = fx;
    drop(master);
    match crate::master::Master::open(&config, ts(5)) {
        Err(Error::Schema { found, supported }) => {
            assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        Err(other) => panic!("expected a schema error, got {other}"),
        Ok(_) => panic!("a newer schema was opened"),
    }
    drop(dir);
}

#[test]
fn a_backup_restores_into_an_empty_data_directory_and_never_over_a_database() {
    let fx = Fixture::new();
    fx.dir(ROOT_INO, "kept");
    let backup = fx.dir.path().join("backup");
    fx.master.backup(&backup).expect("backup");
    fx.dir(ROOT_INO, "after");
    // A backup never overwrites anything.
    assert!(matches!(fx.master.backup(&backup), Err(Error::Config(_))));

    let mut config = fx.config.clone();
    config.data_dir = fx.dir.path().join("restored");
    config.restore = Some(backup.clone());
    let restored = crate::master::Master::open(&config, ts(999)).expect("open from the backup");
    let page = restored.namespace().readdir(ROOT_INO, b"", 0).unwrap();
    let names: Vec<&[u8]> = page.entries.iter().map(|e| e.name.as_slice()).collect();
    assert_eq!(names, [b"kept"]);
    drop(restored);

    // The restored directory holds a database now: restoring over it is refused.
    let err = crate::master::Master::open(&config, ts(999))
        .err()
        .expect("a refusal");
    assert!(matches!(err, Error::Config(_)), "{err}");
}
