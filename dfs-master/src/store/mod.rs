//! The RocksDB schema of the master: column families, key layout and value encoding.
//!
//! This module only knows how metadata is laid out on disk; what it *means* lives in
//! [`crate::namespace`], [`crate::chunks`], [`crate::cluster`] and [`crate::locks`], which
//! read through [`Store`] and write through a [`Txn`]. Values are versioned storage records
//! ([`records`]), converted to and from the master's own types here, never wire messages.
//!
//! | column family | key | value |
//! |---|---|---|
//! | `inodes` | ino u64 BE | [`InodeRecord`] |
//! | `dentries` | parent u64 BE ‖ name bytes | child ino u64 BE ‖ kind byte |
//! | `symlinks` | ino u64 BE | target bytes |
//! | `chunks` | ino u64 BE ‖ chunk index u64 BE | [`ChunkRecord`] |
//! | `chunk_ids` | chunk id u64 BE | ino u64 BE ‖ chunk index u64 BE |
//! | `servers` | server id u64 BE | [`ServerRecord`] |
//! | `deletions` | server id u64 BE ‖ chunk id u64 BE | empty |
//! | `meta` | counter name | u64 BE |
//! | `leases` | ino u64 BE | [`LeaseRecord`] |
//! | `xattrs` | ino u64 BE ‖ name bytes | value bytes |
//! | `locks` | ino u64 BE | [`LockRecords`] (advisory locks) |
//! | `replies` | request id | time ms u64 BE (applied mutations, for retries) |
//! | `reply_times` | time ms u64 BE ‖ request id | empty |
//! | `raft_log` | log index u64 BE | openraft entry (postcard) |
//! | `raft_state` | `vote`, `committed`, `purged` | openraft's vote and log ids (postcard) |
//!
//! The first thirteen are the metadata, the state the masters replicate ([`STATE_CFS`]); `meta`
//! also holds the position of the last log entry applied to it and the group's membership, so
//! that both change in the same batch as the state. The last two are this member's own Raft
//! log ([`crate::raft`]), which a snapshot leaves out.
//!
//! Keys are fixed-width big-endian integers ([`keys`]) so that RocksDB's byte order is numeric
//! order: the entries of one directory, the chunks of one file or the pending deletions of one
//! server are each a single prefix scan, in order. `chunk_ids` is the reverse index a block
//! report needs to tell a live replica from garbage without scanning every file.
//!
//! * [`keys`] — key and dentry value encoding.
//! * [`records`] — the storage records, their schema version, and their conversions.
//! * [`txn`] — a mutation in progress: the single writer and its atomic batch.
//! * [`command`] — a mutation as the group replicates it: the key writes the leader decided.

pub mod command;
pub mod keys;
pub mod records;
pub mod txn;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options, PrefixRange,
    ReadOptions, WriteBatch, WriteOptions,
};

use crate::chunks::Chunk;
use crate::chunks::leases::GrantedLease;
use crate::cluster::registry::ServerIdentity;
use crate::error::{Error, Result};
use crate::locks::HeldLock;
use crate::namespace::{Dentry, Inode};
use crate::store::keys::{decode_dentry, decode_pair, decode_u64, dentry_key, id_key, pair_key};
use crate::store::records::{
    ChunkRecord, InodeRecord, LeaseRecord, LockRecords, SCHEMA_VERSION, ServerRecord, decode,
};

pub use txn::{Txn, Writer};

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

/// Column family of the request ids of recently applied mutations (see
/// [`crate::service::request_id`]): the time each was applied (ms, u64 BE).
pub const CF_REPLIES: &str = "replies";
/// Column family of the same request ids by age, to forget them: time (ms, u64 BE) ‖ id.
pub const CF_REPLY_TIMES: &str = "reply_times";

/// Column family of this member's Raft log entries.
pub const CF_RAFT_LOG: &str = "raft_log";
/// Column family of this member's Raft vote and log bounds.
pub const CF_RAFT_STATE: &str = "raft_state";

/// The column families of the replicated metadata, in the order [`command::Op`] numbers them
/// (append only: the numbers are in every Raft log).
pub const STATE_CFS: [&str; 13] = [
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
    CF_REPLIES,
    CF_REPLY_TIMES,
];

/// The column families of this member's Raft log (see [`crate::raft`]).
const RAFT_CFS: [&str; 2] = [CF_RAFT_LOG, CF_RAFT_STATE];

/// Names of the `meta` entries; each holds a u64 BE, but for the two Raft positions.
pub mod meta {
    /// The last Raft log id applied to the metadata (postcard).
    pub const RAFT_APPLIED: &[u8] = b"raft_applied";
    /// The group's membership as of that entry (postcard).
    pub const RAFT_MEMBERSHIP: &[u8] = b"raft_membership";
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
    /// The storage schema the records are written in (see
    /// [`SCHEMA_VERSION`](super::records::SCHEMA_VERSION)); absent in a database written
    /// before it was recorded, which is schema 1.
    pub const SCHEMA_VERSION: &[u8] = b"schema_version";
    /// The secret chunk-token keys are derived from (raw bytes; see `dfs_proto::token`),
    /// made by the first leader.
    pub const TOKEN_SECRET: &[u8] = b"token_secret";

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

/// A raw key and value as a RocksDB iterator yields them.
type KeyValue = (Box<[u8]>, Box<[u8]>);

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
/// assembled in a [`Txn`] and applied with `Store::write`.
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
        let cfs = STATE_CFS
            .iter()
            .chain(&RAFT_CFS)
            .map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        let store = Store {
            db,
            policy,
            unsynced: AtomicU64::new(0),
            synced: AtomicU64::new(0),
        };
        store.settle_schema()?;
        Ok(store)
    }

    /// Writes a consistent copy of the database to `dest` (a directory that must not exist
    /// yet), taken while writes go on: a RocksDB checkpoint, whose files are hard links where
    /// `dest` is on the same filesystem. Answers the bytes of its files.
    pub fn checkpoint(&self, dest: &Path) -> Result<u64> {
        rocksdb::checkpoint::Checkpoint::new(&self.db)?.create_checkpoint(dest)?;
        let mut bytes = 0;
        for entry in std::fs::read_dir(dest)? {
            bytes += entry?.metadata()?.len();
        }
        Ok(bytes)
    }

    /// Checks the schema the database was written in, before anything reads a record. A
    /// newer schema than this build's is refused: its records may not mean what this build
    /// would read into them. A database without a recorded schema (a new one, or one written
    /// before the schema was recorded) is schema 1, which is then recorded.
    fn settle_schema(&self) -> Result<()> {
        match self.meta(meta::SCHEMA_VERSION)? {
            Some(found) if found > SCHEMA_VERSION => Err(Error::Schema {
                found,
                supported: SCHEMA_VERSION,
            }),
            Some(_) => Ok(()),
            None => {
                let mut batch = WriteBatch::default();
                let version = SCHEMA_VERSION.to_be_bytes();
                batch.put_cf(self.cf(CF_META), meta::SCHEMA_VERSION, version);
                self.write(batch)
            }
        }
    }

    /// How writes are synced.
    pub fn policy(&self) -> SyncPolicy {
        self.policy
    }

    /// The handle of a column family. Every name in `STATE_CFS` and `RAFT_CFS` is created by [`Store::open`],
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

    /// Reads the value of `key` in `cf` as it is stored.
    pub(crate) fn raw(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(cf), key)?)
    }

    /// The entries of `cf` from `start` (inclusive) to `end` (exclusive, or to the end), in
    /// key order.
    pub(crate) fn raw_range(
        &self,
        cf: &str,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut opts = ReadOptions::default();
        if let Some(end) = end {
            opts.set_iterate_upper_bound(end.to_vec());
        }
        let mode = IteratorMode::From(start, Direction::Forward);
        let mut entries = Vec::new();
        for item in self.db.iterator_cf_opt(self.cf(cf), opts, mode) {
            let (key, value) = item?;
            entries.push((key.into_vec(), value.into_vec()));
        }
        Ok(entries)
    }

    /// The last key of `cf` and its value, if it has any.
    pub(crate) fn raw_last(&self, cf: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        match self.db.iterator_cf(self.cf(cf), IteratorMode::End).next() {
            Some(item) => {
                let (key, value) = item?;
                Ok(Some((key.into_vec(), value.into_vec())))
            }
            None => Ok(None),
        }
    }

    /// A point-in-time view of the database, for a consistent read of many keys while writes
    /// go on (a Raft snapshot).
    pub(crate) fn snapshot(&self) -> rocksdb::Snapshot<'_> {
        self.db.snapshot()
    }

    /// Every entry of `cf` as `snapshot` sees it, in key order.
    pub(crate) fn snapshot_entries(
        &self,
        snapshot: &rocksdb::Snapshot<'_>,
        cf: &str,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut entries = Vec::new();
        for item in snapshot.iterator_cf(self.cf(cf), IteratorMode::Start) {
            let (key, value) = item?;
            entries.push((key.into_vec(), value.into_vec()));
        }
        Ok(entries)
    }

    /// Applies a batch atomically without counting it as a write [`Store::sync_wal`] must
    /// cover: for state the Raft log already holds (a lost apply is applied again from the
    /// log at start-up).
    pub(crate) fn write_uncounted(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        let mut opts = WriteOptions::default();
        opts.set_sync(sync && self.policy != SyncPolicy::Never);
        self.db.write_opt(batch, &opts)?;
        Ok(())
    }

    /// Drops this member's Raft log, vote and applied position, keeping the metadata: a
    /// database restored from a backup then starts a new group whose first leader serves it.
    pub fn forget_group(&self) -> Result<()> {
        let mut batch = WriteBatch::default();
        for cf in RAFT_CFS {
            for (key, _) in self.raw_range(cf, &[], None)? {
                batch.delete_cf(self.cf(cf), key);
            }
        }
        for key in [meta::RAFT_APPLIED, meta::RAFT_MEMBERSHIP] {
            batch.delete_cf(self.cf(CF_META), key);
        }
        self.write(batch)
    }

    /// Records that the metadata as it is makes up the group's state as of log entry
    /// `origin`, which is compacted away, with membership `membership` (see
    /// [`crate::raft::node`]: metadata from before the group).
    pub fn set_group_origin(
        &self,
        origin: &openraft::LogId<u64>,
        membership: &openraft::StoredMembership<u64, openraft::BasicNode>,
    ) -> Result<()> {
        let encode = |e: postcard::Error| Error::Corrupt {
            cf: CF_META,
            detail: format!("cannot encode the group's origin: {e}"),
        };
        let mut batch = WriteBatch::default();
        let applied = postcard::to_allocvec(&Some(*origin)).map_err(encode)?;
        batch.put_cf(self.cf(CF_META), meta::RAFT_APPLIED, applied);
        let membership = postcard::to_allocvec(membership).map_err(encode)?;
        batch.put_cf(self.cf(CF_META), meta::RAFT_MEMBERSHIP, membership);
        let purged = postcard::to_allocvec(origin).map_err(encode)?;
        batch.put_cf(
            self.cf(CF_RAFT_STATE),
            crate::raft::log_store::PURGED,
            purged,
        );
        self.write(batch)
    }

    /// Reads a counter or setting from `meta`; absent means never set.
    pub fn meta(&self, key: &[u8]) -> Result<Option<u64>> {
        let value = self.db.get_cf(self.cf(CF_META), key)?;
        value.map(|v| decode_u64(CF_META, &v)).transpose()
    }

    /// Reads an inode.
    pub fn inode(&self, ino: u64) -> Result<Option<Inode>> {
        let value = self.db.get_cf(self.cf(CF_INODES), id_key(ino))?;
        let record = value
            .map(|v| decode::<InodeRecord>(CF_INODES, &v))
            .transpose()?;
        Ok(record.map(Inode::from))
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
    pub fn chunk(&self, ino: u64, index: u64) -> Result<Option<Chunk>> {
        let value = self.db.get_cf(self.cf(CF_CHUNKS), pair_key(ino, index))?;
        value.map(|v| decode_chunk(&v)).transpose()
    }

    /// Reads the chunks of file `ino` with index `>= first`, in index order, stopping before
    /// index `end` (exclusive; `None` for no bound).
    pub fn chunks(&self, ino: u64, first: u64, end: Option<u64>) -> Result<Vec<(u64, Chunk)>> {
        let prefix = id_key(ino);
        let mut chunks = Vec::new();
        for item in self.scan(CF_CHUNKS, &prefix, &pair_key(ino, first)) {
            let (key, value) = item?;
            let (_, index) = decode_pair(CF_CHUNKS, &key)?;
            if end.is_some_and(|end| index >= end) {
                break;
            }
            chunks.push((index, decode_chunk(&value)?));
        }
        Ok(chunks)
    }

    /// Finds which file and index a chunk id belongs to.
    pub fn chunk_owner(&self, chunk_id: u64) -> Result<Option<(u64, u64)>> {
        let value = self.db.get_cf(self.cf(CF_CHUNK_IDS), id_key(chunk_id))?;
        value.map(|v| decode_pair(CF_CHUNK_IDS, &v)).transpose()
    }

    /// Every chunk of every file as `(ino, index, chunk)`, in key order: what the
    /// replication check walks. A full scan, for a background task, not a request path.
    pub fn all_chunks(&self) -> Result<Vec<(u64, u64, Chunk)>> {
        self.chunks_after(None, usize::MAX)
    }

    /// Reads up to `limit` chunk records in key order (file, then index), starting right
    /// after the chunk at `after` (from the first one with `None`): a page of the chunk map,
    /// for walks that must not hold all of it at once.
    pub fn chunks_after(
        &self,
        after: Option<(u64, u64)>,
        limit: usize,
    ) -> Result<Vec<(u64, u64, Chunk)>> {
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
            chunks.push((ino, index, decode_chunk(&value)?));
        }
        Ok(chunks)
    }

    /// Reads every registered chunkserver.
    pub fn servers(&self) -> Result<Vec<(u64, ServerIdentity)>> {
        let mut servers = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_SERVERS), IteratorMode::Start)
        {
            let (key, value) = item?;
            let record: ServerRecord = decode(CF_SERVERS, &value)?;
            servers.push((decode_u64(CF_SERVERS, &key)?, record.into()));
        }
        Ok(servers)
    }

    /// Reads every recorded writer lease as `(ino, lease)`.
    pub fn leases(&self) -> Result<Vec<(u64, GrantedLease)>> {
        let mut leases = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_LEASES), IteratorMode::Start) {
            let (key, value) = item?;
            let record: LeaseRecord = decode(CF_LEASES, &value)?;
            leases.push((decode_u64(CF_LEASES, &key)?, record.into()));
        }
        Ok(leases)
    }

    /// Reads the advisory locks of every file that has some.
    pub fn locks(&self) -> Result<Vec<(u64, Vec<HeldLock>)>> {
        let mut locks = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_LOCKS), IteratorMode::Start) {
            let (key, value) = item?;
            let records: LockRecords = decode(CF_LOCKS, &value)?;
            locks.push((decode_u64(CF_LOCKS, &key)?, records.into()));
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

/// Decodes a `chunks` value.
fn decode_chunk(bytes: &[u8]) -> Result<Chunk> {
    decode::<ChunkRecord>(CF_CHUNKS, bytes).map(Chunk::from)
}
