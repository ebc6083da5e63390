//! Unit tests of the master's logic against a real RocksDB in a temporary directory.
//!
//! Each test opens its own [`Fixture`]; nothing is shared between tests, so they run in
//! parallel.

mod chunks;
mod durability;
mod hostile;
mod leases;
mod locks;
mod namespace;
mod open;
mod registry;
mod rename;
mod replicas;
mod replication;
mod restart;
mod xattr;

use std::fmt::Debug;

use dfs_proto::pb::{self, Attr, FileKind, Timestamp};
use dfs_proto::{FsError, ROOT_INO};
use tempfile::TempDir;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::master::Master;

/// Chunk size of test clusters: small, so chunk arithmetic is easy to follow.
const CHUNK: u64 = 1 << 20;
/// Block size of test clusters.
const BLOCK: u32 = 64 << 10;

/// A master over a fresh database, removed when the fixture drops.
struct Fixture {
    dir: TempDir,
    config: Config,
    master: Master,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with(|_| {})
    }

    /// A fixture whose master's configuration `tweak` changed from the tests' defaults.
    fn with(tweak: impl FnOnce(&mut Config)) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::new(dir.path().join("master"));
        config.chunk_size = CHUNK;
        config.block_size = BLOCK;
        // Durability is not what these tests check; syncing every batch only slows them.
        config.sync_writes = false;
        // Orphaned replicas are deleted at the first report that finds them.
        config.orphan_grace_secs = 0;
        tweak(&mut config);
        let master = Master::open(&config, ts(1)).expect("open master");
        Fixture {
            dir,
            config,
            master,
        }
    }

    /// Closes the database and opens it again, as a restarted master would.
    fn reopen(self) -> Fixture {
        let Fixture {
            dir,
            config,
            master,
        } = self;
        drop(master);
        let master = Master::open(&config, ts(999)).expect("reopen master");
        Fixture {
            dir,
            config,
            master,
        }
    }

    fn ns(&self) -> &crate::namespace::Namespace {
        self.master.namespace()
    }

    /// Creates a node of `kind` named `name` in `parent`, owned by uid/gid 1000.
    fn make(&self, parent: u64, name: &str, kind: FileKind) -> Attr {
        self.try_make(parent, name, kind, ts(10))
            .unwrap_or_else(|e| panic!("make {name}: {e}"))
    }

    fn try_make(&self, parent: u64, name: &str, kind: FileKind, now: Timestamp) -> Result<Attr> {
        let req = pb::MakeNodeRequest {
            parent,
            name: name.as_bytes().to_vec(),
            kind: kind as i32,
            perm: 0o644,
            uid: 1000,
            gid: 1000,
            exclusive: true,
            symlink_target: if kind == FileKind::Symlink {
                b"target".to_vec()
            } else {
                Vec::new()
            },
            ..Default::default()
        };
        self.ns().make_node(&req, now)
    }

    fn file(&self, parent: u64, name: &str) -> u64 {
        self.make(parent, name, FileKind::Regular).ino
    }

    fn dir(&self, parent: u64, name: &str) -> u64 {
        self.make(parent, name, FileKind::Directory).ino
    }

    fn attr(&self, ino: u64) -> Attr {
        self.ns().getattr(ino).expect("getattr")
    }

    fn lookup(&self, parent: u64, name: &str) -> Result<Attr> {
        self.ns().lookup(parent, name.as_bytes())
    }

    /// Names in directory `ino`, read in one page.
    fn names(&self, ino: u64) -> Vec<String> {
        let page = self.ns().readdir(ino, b"", 0).expect("readdir");
        assert!(!page.more);
        page.entries
            .iter()
            .map(|e| String::from_utf8(e.name.clone()).unwrap())
            .collect()
    }
}

/// A timestamp `secs` seconds after the epoch.
fn ts(secs: i64) -> Timestamp {
    Timestamp { secs, nanos: 0 }
}

/// The filesystem error of a failed call; panics on success or an internal error.
fn fs_err<T: Debug>(result: Result<T>) -> FsError {
    match result {
        Err(Error::Fs(err)) => err,
        other => panic!("expected a filesystem error, got {other:?}"),
    }
}

#[test]
fn new_cluster_has_an_empty_root() {
    let fx = Fixture::new();
    let root = fx.attr(ROOT_INO);
    assert_eq!(root.kind(), FileKind::Directory);
    assert_eq!(
        (root.perm, root.uid, root.gid, root.nlink),
        (0o755, 0, 0, 2)
    );
    assert!(fx.names(ROOT_INO).is_empty());
    assert_eq!(fx.ns().inode_count().unwrap(), 1);
    let config = fx.master.cluster_config();
    assert_eq!(
        (config.chunk_size, config.block_size, config.replication),
        (CHUNK, BLOCK, 3)
    );
}
