//! The RocksDB schema of the master: column families, key layout and value encoding.
//!
//! This module only knows how metadata is laid out on disk; what the records *mean* lives in
//! [`crate::namespace`], [`crate::chunks`] and [`crate::cluster::registry`], and every write
//! goes through a [`txn::Txn`].
//!
//! | column family | key | value |
//! |---|---|---|
//! | `inodes` | ino u64 BE | [`Inode`] |
//! | `dentries` | parent u64 BE ‖ name bytes | child ino u64 BE ‖ kind byte ([`Dentry`]) |
//! | `symlinks` | ino u64 BE | target bytes |
//! | `chunks` | ino u64 BE ‖ chunk index u64 BE | [`ChunkRecord`] |
//! | `chunk_ids` | chunk id u64 BE | ino u64 BE ‖ chunk index u64 BE |
//! | `servers` | server id u64 BE | [`ServerRecord`] |
//! | `deletions` | server id u64 BE ‖ chunk id u64 BE | empty |
//! | `meta` | counter name | u64 BE |
//! | `leases` | ino u64 BE | [`LeaseRecord`] |
//! | `locks` | ino u64 BE | [`LockRecords`] (advisory locks) |
//!
//! Keys are fixed-width big-endian integers so that RocksDB's byte order is numeric order: the
//! entries of one directory, the chunks of one file or the pending deletions of one server are
//! each a single prefix scan, in order. `chunk_ids` is the reverse index a block report needs
//! to tell a live replica from garbage without scanning every file.

pub mod txn;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use dfs_proto::pb::{self, FileKind};
use prost::Message;
use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options, PrefixRange,
    ReadOptions, WriteBatch, WriteOptions,
};

use crate::error::{Error, Result};

/// Column family of inode records.
pub const CF_INODES: &str = "inodes";
/// Column family of directory entries.
pub const CF_DENTRIES: &str = "dentries";
/// Column family of symlink targets.
pub const CF_SYMLINKS: &str = "symlinks";
/// Column family of the chunks of every file.
pub const CF_CHUNKS: &str = "chunks";
/// Column family mapping a chunk id back to its file and index.
pub const CF_CHUNK_IDS: &str = "chunk_ids";
/// Column family of registered chunkservers.
pub const CF_SERVERS: &str = "servers";
/// Column family of replicas that chunkservers must delete.
pub const CF_DELETIONS: &str = "deletions";
/// Column family of counters and cluster settings.
pub const CF_META: &str = "meta";
/// Column family of writer leases that were granted and not released.
pub const CF_LEASES: &str = "leases";
/// Column family of extended attributes: `ino ‖ name` → value.
pub const CF_XATTRS: &str = "xattrs";
/// Column family of advisory locks: every lock held on one file.
pub const CF_LOCKS: &str = "locks";

const ALL_CFS: [&str; 11] = [
    CF_INODES,
    CF_DENTRIES,
    CF_SYMLINKS,
    CF_CHUNKS,
    CF_CHUNK_IDS,
    CF_SERVERS,
    CF_DELETIONS,
    CF_META,
    CF_LEASES,
    CF_XATTRS,
    CF_LOCKS,
];

/// Names of the `meta` entries; each holds a u64 BE.
pub mod meta {
    /// The next inode number to hand out.
    pub const NEXT_INO: &[u8] = b"next_ino";
    /// The next chunk id to hand out.
    pub const NEXT_CHUNK_ID: &[u8] = b"next_chunk_id";
    /// The next chunkserver id to hand out.
    pub const NEXT_SERVER_ID: &[u8] = b"next_server_id";
    /// Number of inodes in the namespace (for `statfs`).
    pub const INODE_COUNT: &[u8] = b"inode_count";
    /// The cluster's chunk size, fixed when the cluster was created.
    pub const CHUNK_SIZE: &[u8] = b"chunk_size";
    /// The cluster's checksum block size, fixed when the cluster was created.
    pub const BLOCK_SIZE: &[u8] = b"block_size";
    /// The next writer-lease generation to hand out.
    pub const NEXT_LEASE_GENERATION: &[u8] = b"next_lease_generation";

    /// The id counters, each with the key of its *reservation*: the value below which ids
    /// may have been handed out. A reservation is raised (and synced) ahead of the counter,
    /// a block of ids at a time, so a counter written by an unsynced mutation (a create)
    /// and lost in a machine crash restarts at its reservation and never hands an id out
    /// twice (see `Txn::next_id`).
    pub const ID_COUNTERS: [(&[u8], &[u8]); 4] = [
        (NEXT_INO, b"reserved_ino"),
        (NEXT_CHUNK_ID, b"reserved_chunk_id"),
        (NEXT_SERVER_ID, b"reserved_server_id"),
        (NEXT_LEASE_GENERATION, b"reserved_lease_generation"),
    ];

    /// The reservation key of id counter `key`.
    pub fn reservation(key: &[u8]) -> &'static [u8] {
        ID_COUNTERS
            .iter()
            .find(|(counter, _)| *counter == key)
            .map(|(_, reserved)| *reserved)
            .expect("an id counter has a reservation")
    }
}

/// The persisted form of an inode: its `stat` attributes plus what the namespace needs to
/// walk upwards.
#[derive(Clone, PartialEq, Message)]
pub struct Inode {
    /// The attributes exactly as clients see them.
    #[prost(message, required, tag = "1")]
    pub attr: pb::Attr,
    /// The directory holding this directory (directories only: they have exactly one parent,
    /// which rename needs to refuse moving a directory into its own subtree). 0 otherwise.
    #[prost(uint64, tag = "2")]
    pub parent: u64,
}

impl Inode {
    /// The kind of the inode (`FILE_KIND_UNSPECIFIED` for a value this build does not know).
    pub fn kind(&self) -> FileKind {
        self.attr.kind()
    }

    /// Whether the inode is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind() == FileKind::Directory
    }
}

/// The value of a directory entry: which inode the name points to, and its kind (so that
/// name-only decisions such as "is the rename target a directory" need no inode read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dentry {
    /// The inode the name refers to.
    pub ino: u64,
    /// The kind of that inode.
    pub kind: FileKind,
}

impl Dentry {
    /// Whether the entry names a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == FileKind::Directory
    }
}

/// One chunk of a file as the master records it.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct ChunkRecord {
    /// Cluster-unique id of the chunk; replicas on chunkservers are named by it.
    #[prost(uint64, tag = "1")]
    pub chunk_id: u64,
    /// Version of the chunk; replicas with an older version are stale.
    #[prost(uint64, tag = "2")]
    pub version: u64,
    /// Committed length in bytes.
    #[prost(uint64, tag = "3")]
    pub length: u64,
    /// Servers holding a replica, in write-chain order.
    #[prost(uint64, repeated, tag = "4")]
    pub replicas: Vec<u64>,
    /// The highest version handed to a writer to rewrite on the survivors of a replica
    /// replacement; `version` catches up when the rewrite is committed. A lease takeover
    /// stamps above it, so the cut-off writer's rewrite is stale.
    #[prost(uint64, tag = "5")]
    pub issued_version: u64,
}

/// A writer lease as persisted: who holds it. Its expiry is not persisted; a restarted master
/// lets every recorded lease run a full time-to-live from its start, so it never hands a
/// lease that may still be live to a second writer.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct LeaseRecord {
    /// The mount holding the lease.
    #[prost(string, tag = "1")]
    pub holder: String,
    /// Cluster-unique number of this grant.
    #[prost(uint64, tag = "2")]
    pub generation: u64,
}

/// One advisory lock as persisted (see [`crate::locks`]).
#[derive(Clone, PartialEq, Eq, Message)]
pub struct LockRecord {
    /// The holding mount's session id.
    #[prost(string, tag = "1")]
    pub session: String,
    /// The kernel's lock owner within that mount.
    #[prost(uint64, tag = "2")]
    pub owner: u64,
    /// First byte.
    #[prost(uint64, tag = "3")]
    pub start: u64,
    /// Last byte (inclusive).
    #[prost(uint64, tag = "4")]
    pub end: u64,
    /// A write (exclusive) lock, else a read lock.
    #[prost(bool, tag = "5")]
    pub write: bool,
    /// The process that took it.
    #[prost(uint32, tag = "6")]
    pub pid: u32,
}

/// Every advisory lock held on one file.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct LockRecords {
    /// The locks, in no particular order.
    #[prost(message, repeated, tag = "1")]
    pub locks: Vec<LockRecord>,
}

/// The persisted identity of a chunkserver (its load is in-memory only, see
/// [`crate::cluster::registry`]).
#[derive(Clone, PartialEq, Eq, Message)]
pub struct ServerRecord {
    /// `host:port` of the server's data service, updated on every registration.
    #[prost(string, tag = "1")]
    pub addr: String,
    /// Identity of the server's data directory; the same uuid always gets the same id.
    #[prost(string, tag = "2")]
    pub storage_uuid: String,
    /// Rack label used by placement; empty when racks are not configured.
    #[prost(string, tag = "3")]
    pub rack: String,
    /// Being decommissioned: its replicas are copied elsewhere and it takes no new ones.
    #[prost(bool, tag = "4")]
    pub draining: bool,
}

/// Key of an inode, symlink, server or chunk-id entry: the id as u64 BE.
pub fn id_key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

/// Key of the directory entry `name` in directory `parent`.
pub fn dentry_key(parent: u64, name: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + name.len());
    key.extend_from_slice(&parent.to_be_bytes());
    key.extend_from_slice(name);
    key
}

/// Key of a pair of ids (`chunks`: ino ‖ index, `deletions`: server ‖ chunk id).
pub fn pair_key(a: u64, b: u64) -> [u8; 16] {
    let mut key = [0; 16];
    key[..8].copy_from_slice(&a.to_be_bytes());
    key[8..].copy_from_slice(&b.to_be_bytes());
    key
}

/// Encodes a directory entry value.
pub fn encode_dentry(dentry: Dentry) -> [u8; 9] {
    let mut value = [0; 9];
    value[..8].copy_from_slice(&dentry.ino.to_be_bytes());
    value[8] = dentry.kind as u8;
    value
}

/// A raw key and value as a RocksDB iterator yields them.
type KeyValue = (Box<[u8]>, Box<[u8]>);

fn decode_u64(cf: &'static str, bytes: &[u8]) -> Result<u64> {
    let array: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::Corrupt {
            cf,
            detail: format!("{} bytes, want 8", bytes.len()),
        })?;
    Ok(u64::from_be_bytes(array))
}

fn decode_pair(cf: &'static str, bytes: &[u8]) -> Result<(u64, u64)> {
    if bytes.len() != 16 {
        let detail = format!("{} bytes, want 16", bytes.len());
        return Err(Error::Corrupt { cf, detail });
    }
    Ok((decode_u64(cf, &bytes[..8])?, decode_u64(cf, &bytes[8..])?))
}

fn decode_dentry(bytes: &[u8]) -> Result<Dentry> {
    let ino = decode_u64(CF_DENTRIES, bytes)?;
    let kind = bytes
        .get(8)
        .and_then(|&k| FileKind::try_from(i32::from(k)).ok())
        .ok_or_else(|| Error::Corrupt {
            cf: CF_DENTRIES,
            detail: "bad kind byte".into(),
        })?;
    Ok(Dentry { ino, kind })
}

fn decode<M: Message + Default>(cf: &'static str, bytes: &[u8]) -> Result<M> {
    M::decode(bytes).map_err(|e| Error::Corrupt {
        cf,
        detail: e.to_string(),
    })
}

/// When the master's acknowledged mutations reach the disk (the WAL is synced).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Every mutation syncs the WAL before it is acknowledged.
    Always,
    /// Changes of names (create, mkdir, link, unlink, rename) and of a file's length are
    /// acknowledged once written to the WAL, which a process crash cannot lose, and synced
    /// by the next [`Store::sync_wal`]: the master runs one every few milliseconds and
    /// before answering a client's `fsync`. This is the `fsync` contract of POSIX (a local
    /// filesystem makes a create durable only at an `fsync`) and CephFS's early reply.
    /// Everything whose loss could let a stale replica pass for current (chunk versions,
    /// leases, replica lists, deletions handed to chunkservers) stays synced.
    Deferred,
    /// Nothing is synced (tests and throwaway clusters): a machine crash may lose any
    /// recent mutation.
    Never,
}

/// The master's RocksDB database with every column family open.
///
/// Reads are plain methods here and may run concurrently from any thread. Writes are
/// assembled in a [`crate::store::txn::Txn`] and applied with [`Store::write`].
pub struct Store {
    db: DB,
    policy: SyncPolicy,
    /// Unsynced writes applied so far (a count, not a sequence number).
    unsynced: AtomicU64,
    /// How many of those a WAL sync has covered.
    synced: AtomicU64,
}

impl Store {
    /// Opens (creating if needed) the database at `path`, syncing writes as `policy` says.
    pub fn open(path: &Path, policy: SyncPolicy) -> Result<Store> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let cfs = ALL_CFS
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        Ok(Store {
            db,
            policy,
            unsynced: AtomicU64::new(0),
            synced: AtomicU64::new(0),
        })
    }

    /// How writes are synced.
    pub fn policy(&self) -> SyncPolicy {
        self.policy
    }

    /// The handle of a column family. Every name in `ALL_CFS` is created by [`Store::open`],
    /// so a missing one is a programming error, not a runtime condition.
    pub(crate) fn cf(&self, name: &str) -> &ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column family created at open")
    }

    /// Applies a batch atomically, syncing the WAL first unless the policy is
    /// [`SyncPolicy::Never`].
    pub(crate) fn write(&self, batch: WriteBatch) -> Result<()> {
        self.write_with(batch, self.policy != SyncPolicy::Never)
    }

    /// Applies a batch atomically, syncing the WAL only if `sync`: for changes whose loss in
    /// a machine crash is harmless or that [`Store::sync_wal`] covers soon enough (a process
    /// crash loses nothing either way). Callers serialise writes (see [`txn`]), which the
    /// counting of unsynced writes relies on.
    pub(crate) fn write_with(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        // A synced write syncs the whole log, so it covers every unsynced write before it.
        let before = self.unsynced.load(Ordering::Acquire);
        self.db.write_opt(batch, &opts)?;
        if sync {
            self.synced.fetch_max(before, Ordering::AcqRel);
        } else {
            self.unsynced.fetch_add(1, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Whether some write has not reached the disk yet, so [`Store::sync_wal`] has work to
    /// do (never, for a store that does not sync).
    pub fn has_unsynced_writes(&self) -> bool {
        self.policy != SyncPolicy::Never
            && self.synced.load(Ordering::Acquire) < self.unsynced.load(Ordering::Acquire)
    }

    /// Syncs the WAL if any write has not reached the disk yet, so that every mutation
    /// acknowledged before this call survives a machine crash. Blocks for one `fdatasync`
    /// (none when everything is synced already).
    pub fn sync_wal(&self) -> Result<()> {
        let written = self.unsynced.load(Ordering::Acquire);
        if !self.has_unsynced_writes() {
            return Ok(());
        }
        self.db.flush_wal(true)?;
        self.synced.fetch_max(written, Ordering::AcqRel);
        Ok(())
    }

    /// Reads a counter or setting from `meta`; absent means never set.
    pub fn meta(&self, key: &[u8]) -> Result<Option<u64>> {
        let value = self.db.get_cf(self.cf(CF_META), key)?;
        value.map(|v| decode_u64(CF_META, &v)).transpose()
    }

    /// Reads an inode.
    pub fn inode(&self, ino: u64) -> Result<Option<Inode>> {
        let value = self.db.get_cf(self.cf(CF_INODES), id_key(ino))?;
        value.map(|v| decode(CF_INODES, &v)).transpose()
    }

    /// Reads the directory entry `name` of `parent`.
    pub fn dentry(&self, parent: u64, name: &[u8]) -> Result<Option<Dentry>> {
        let value = self
            .db
            .get_cf(self.cf(CF_DENTRIES), dentry_key(parent, name))?;
        value.map(|v| decode_dentry(&v)).transpose()
    }

    /// Reads up to `limit` entries of directory `parent` whose names sort strictly after
    /// `after` (all entries when `after` is empty), in name order.
    pub fn dentries_after(
        &self,
        parent: u64,
        after: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Dentry)>> {
        let prefix = id_key(parent);
        let mut start = dentry_key(parent, after);
        if !after.is_empty() {
            // The smallest key strictly greater than `parent ‖ after`.
            start.push(0);
        }
        let mut entries = Vec::new();
        for item in self.scan(CF_DENTRIES, &prefix, &start).take(limit) {
            let (key, value) = item?;
            entries.push((key[8..].to_vec(), decode_dentry(&value)?));
        }
        Ok(entries)
    }

    /// Whether directory `ino` has no entries.
    pub fn dir_is_empty(&self, ino: u64) -> Result<bool> {
        let prefix = id_key(ino);
        Ok(self
            .scan(CF_DENTRIES, &prefix, &prefix)
            .next()
            .transpose()?
            .is_none())
    }

    /// The value of extended attribute `name` of `ino`.
    pub fn xattr(&self, ino: u64, name: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(CF_XATTRS), dentry_key(ino, name))?)
    }

    /// The names of every extended attribute of `ino`, in byte order.
    pub fn xattr_names(&self, ino: u64) -> Result<Vec<Vec<u8>>> {
        let prefix = id_key(ino);
        let mut names = Vec::new();
        for item in self.scan(CF_XATTRS, &prefix, &prefix) {
            let (key, _) = item?;
            names.push(key[8..].to_vec());
        }
        Ok(names)
    }

    /// Reads the target of a symlink.
    pub fn symlink(&self, ino: u64) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(CF_SYMLINKS), id_key(ino))?)
    }

    /// Reads the chunk at `index` of file `ino`.
    pub fn chunk(&self, ino: u64, index: u64) -> Result<Option<ChunkRecord>> {
        let value = self.db.get_cf(self.cf(CF_CHUNKS), pair_key(ino, index))?;
        value.map(|v| decode(CF_CHUNKS, &v)).transpose()
    }

    /// Reads the chunks of file `ino` with index `>= first`, in index order, stopping before
    /// index `end` (exclusive; `None` for no bound).
    pub fn chunks(
        &self,
        ino: u64,
        first: u64,
        end: Option<u64>,
    ) -> Result<Vec<(u64, ChunkRecord)>> {
        let prefix = id_key(ino);
        let mut chunks = Vec::new();
        for item in self.scan(CF_CHUNKS, &prefix, &pair_key(ino, first)) {
            let (key, value) = item?;
            let (_, index) = decode_pair(CF_CHUNKS, &key)?;
            if end.is_some_and(|end| index >= end) {
                break;
            }
            chunks.push((index, decode(CF_CHUNKS, &value)?));
        }
        Ok(chunks)
    }

    /// Finds which file and index a chunk id belongs to.
    pub fn chunk_owner(&self, chunk_id: u64) -> Result<Option<(u64, u64)>> {
        let value = self.db.get_cf(self.cf(CF_CHUNK_IDS), id_key(chunk_id))?;
        value.map(|v| decode_pair(CF_CHUNK_IDS, &v)).transpose()
    }

    /// Every chunk of every file as `(ino, index, record)`, in key order: what the
    /// replication check walks. A full scan, for a background task, not a request path.
    pub fn all_chunks(&self) -> Result<Vec<(u64, u64, ChunkRecord)>> {
        self.chunks_after(None, usize::MAX)
    }

    /// Reads up to `limit` chunk records in key order (file, then index), starting right
    /// after the chunk at `after` (from the first one with `None`): a page of the chunk map,
    /// for walks that must not hold all of it at once.
    pub fn chunks_after(
        &self,
        after: Option<(u64, u64)>,
        limit: usize,
    ) -> Result<Vec<(u64, u64, ChunkRecord)>> {
        let start = after.map(|(ino, index)| {
            // The smallest key strictly greater than the cursor's.
            let mut key = pair_key(ino, index).to_vec();
            key.push(0);
            key
        });
        let mode = match &start {
            Some(key) => IteratorMode::From(key, Direction::Forward),
            None => IteratorMode::Start,
        };
        let mut chunks = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_CHUNKS), mode).take(limit) {
            let (key, value) = item?;
            let (ino, index) = decode_pair(CF_CHUNKS, &key)?;
            chunks.push((ino, index, decode(CF_CHUNKS, &value)?));
        }
        Ok(chunks)
    }

    /// Reads every registered chunkserver.
    pub fn servers(&self) -> Result<Vec<(u64, ServerRecord)>> {
        let mut servers = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_SERVERS), IteratorMode::Start)
        {
            let (key, value) = item?;
            servers.push((decode_u64(CF_SERVERS, &key)?, decode(CF_SERVERS, &value)?));
        }
        Ok(servers)
    }

    /// Reads every recorded writer lease as `(ino, record)`.
    pub fn leases(&self) -> Result<Vec<(u64, LeaseRecord)>> {
        let mut leases = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_LEASES), IteratorMode::Start) {
            let (key, value) = item?;
            leases.push((decode_u64(CF_LEASES, &key)?, decode(CF_LEASES, &value)?));
        }
        Ok(leases)
    }

    /// Reads the advisory locks of every file that has some.
    pub fn locks(&self) -> Result<Vec<(u64, LockRecords)>> {
        let mut locks = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_LOCKS), IteratorMode::Start) {
            let (key, value) = item?;
            locks.push((decode_u64(CF_LOCKS, &key)?, decode(CF_LOCKS, &value)?));
        }
        Ok(locks)
    }

    /// Reads the chunk ids queued for deletion on `server_id`, in id order.
    pub fn deletions(&self, server_id: u64) -> Result<Vec<u64>> {
        let prefix = id_key(server_id);
        let mut chunk_ids = Vec::new();
        for item in self.scan(CF_DELETIONS, &prefix, &prefix) {
            let (key, _) = item?;
            chunk_ids.push(decode_pair(CF_DELETIONS, &key)?.1);
        }
        Ok(chunk_ids)
    }

    /// Iterates the keys of `cf` that start with `prefix`, beginning at `start`.
    fn scan<'a>(
        &'a self,
        cf: &str,
        prefix: &[u8],
        start: &[u8],
    ) -> impl Iterator<Item = Result<KeyValue>> + 'a {
        let mut opts = ReadOptions::default();
        opts.set_iterate_range(PrefixRange(prefix.to_vec()));
        self.db
            .iterator_cf_opt(
                self.cf(cf),
                opts,
                IteratorMode::From(start, Direction::Forward),
            )
            .map(|item| item.map_err(Error::from))
    }
}
