//! Chunk replicas on local disk.
//!
//! Layout of a data directory:
//!
//! ```text
//! storage_uuid                      random 128-bit hex id of this disk, made once
//! chunks/<xx>/<chunk id>.data       the replica's bytes (xx = last two hex digits of the id)
//! chunks/<xx>/<chunk id>.meta       version, length and per-block CRC32C (see `meta`)
//! ```
//!
//! [`ChunkStore`] is a cheap, cloneable handle. Its methods do blocking file I/O: async callers
//! run them in `spawn_blocking`, or inline where the work is short and cannot wait for another
//! operation (a small read; a small write to a chunk no one else uses, opened with
//! [`ChunkStore::try_open_writer`]). Concurrency:
//! * every chunk has one lock (a [`Slot`]), so operations on one chunk never interleave
//!   while operations on different chunks run in parallel; readers of one chunk share it;
//! * a slot exists only while someone uses the chunk, and holds the opened replica — a write
//!   stream keeps its replica open and its sidecar in memory, and persists it at the end;
//! * an in-memory index of every replica (id, version, length) answers block reports and
//!   space accounting without touching the disk.

mod direct;
#[cfg(test)]
mod format_tests;
mod layout;
mod meta;
mod replica;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};

use bytes::Bytes;
use dfs_proto::FsError;

use self::layout::{disk_space, load_or_create_uuid, remove_if_exists, scan};
use self::replica::{Replica, ReplicaPaths};
use crate::error::{Error, Result};

/// Directory under the data directory holding the replicas.
const CHUNKS_DIR: &str = "chunks";

/// How a store lays out and limits replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// Checksum block size of new replicas (the cluster's block size). Existing replicas keep
    /// the block size recorded in their sidecar.
    pub block_size: u64,
    /// Largest replica length accepted: a write past the chunk size is a client bug, and
    /// refusing it keeps one bad client from filling the disk.
    pub chunk_size: u64,
    /// Report at most this capacity and refuse writes that would store more replica bytes
    /// than this, even if the disk is larger.
    pub capacity_limit: Option<u64>,
}

/// One replica as a block report states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaInfo {
    /// The chunk this is a replica of.
    pub chunk_id: u64,
    /// The chunk version the replica holds.
    pub version: u64,
    /// Replica length in bytes.
    pub length: u64,
}

/// Capacity and use of the store, as heartbeats report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpaceUsage {
    /// Bytes the store may hold: the disk's size, or the configured limit if smaller.
    pub capacity_bytes: u64,
    /// Bytes still available for replicas.
    pub free_bytes: u64,
    /// Bytes of replica data stored.
    pub used_bytes: u64,
    /// Number of replicas stored.
    pub replica_count: u64,
}

/// A read, write or copy in progress (see [`ChunkStore::begin_transfer`]).
#[derive(Debug)]
pub struct Transfer {
    store: ChunkStore,
}

impl Drop for Transfer {
    fn drop(&mut self) {
        self.store.inner.transfers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The replicas of one data directory. Clones share the same store.
#[derive(Debug, Clone)]
pub struct ChunkStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    data_dir: PathBuf,
    chunks_dir: PathBuf,
    storage_uuid: String,
    options: StoreOptions,
    /// Per-chunk locks of the chunks in use. Entries are weak so a slot (and its open files)
    /// goes away with its last user; dead entries are swept as the map grows.
    slots: Mutex<SlotMap>,
    /// Every replica on disk. A std mutex: held for a few map operations, never across I/O.
    index: Mutex<Index>,
    /// Reads, writes and copies in progress: the load reported in heartbeats.
    transfers: AtomicU32,
}

#[derive(Debug, Default)]
struct SlotMap {
    slots: HashMap<u64, Weak<Slot>>,
    /// Sweep dead entries when the map reaches this size.
    sweep_at: usize,
}

/// The lock of one chunk and, while the chunk is in use, its opened replica.
#[derive(Debug)]
struct Slot {
    chunk_id: u64,
    replica: RwLock<Option<Replica>>,
}

#[derive(Debug, Default)]
struct Index {
    replicas: HashMap<u64, ReplicaInfo>,
    used_bytes: u64,
}

impl ChunkStore {
    /// Opens (creating if needed) the store in `data_dir`: reads or makes the storage uuid,
    /// removes leftovers of interrupted operations, and indexes every replica.
    pub fn open(data_dir: impl AsRef<Path>, options: StoreOptions) -> Result<ChunkStore> {
        let block_size = options.block_size;
        if block_size == 0 || block_size > u64::from(u32::MAX) || options.chunk_size == 0 {
            return Err(Error::Config(format!(
                "unusable chunk size {} / block size {block_size}",
                options.chunk_size
            )));
        }
        let data_dir = data_dir.as_ref().to_path_buf();
        let chunks_dir = data_dir.join(CHUNKS_DIR);
        fs::create_dir_all(&chunks_dir)
            .map_err(|e| Error::io(format!("create {}", chunks_dir.display()), e))?;
        let storage_uuid = load_or_create_uuid(&data_dir)?;
        let index = scan(&chunks_dir)?;
        let inner = Inner {
            data_dir,
            chunks_dir,
            storage_uuid,
            options,
            slots: Mutex::default(),
            index: Mutex::new(index),
            transfers: AtomicU32::new(0),
        };
        Ok(ChunkStore {
            inner: Arc::new(inner),
        })
    }

    /// The stable identity of this data directory, which the master uses to recognise a
    /// restarted server.
    pub fn storage_uuid(&self) -> &str {
        &self.inner.storage_uuid
    }

    /// The options the store was opened with.
    pub fn options(&self) -> StoreOptions {
        self.inner.options
    }

    /// Opens the replica of `chunk_id` for a write by the holder of chunk version `version`,
    /// creating it if missing. Fails with `Stale` if the replica already has a newer version;
    /// an older replica takes on `version`.
    pub fn open_writer(&self, chunk_id: u64, version: u64) -> Result<ReplicaWriter> {
        let slot = self.slot(chunk_id);
        self.open_locked(chunk_id, version, &mut slot.write())?;
        Ok(self.writer(slot, version))
    }

    /// Like [`ChunkStore::open_writer`], for a caller that must not wait for the chunk's lock:
    /// `None` if someone else is using the chunk right now (a write stream, a read, a copy, a
    /// delete), whose operation may hold the lock across slow disk I/O such as an fsync. A
    /// small chain write opens its replica this way on the async task serving it, and goes to
    /// a blocking thread on `None`.
    pub fn try_open_writer(&self, chunk_id: u64, version: u64) -> Option<Result<ReplicaWriter>> {
        let slot = self.slot(chunk_id);
        if Arc::strong_count(&slot) > 1 {
            return None;
        }
        // Poisoned counts as busy: `open_writer` clears it.
        let opened = {
            let mut guard = slot.replica.try_write().ok()?;
            self.open_locked(chunk_id, version, &mut guard)
        };
        Some(opened.map(|()| self.writer(slot, version)))
    }

    /// The work of [`ChunkStore::open_writer`] with the chunk's lock held: loads or creates the
    /// replica in `guard` and checks or adopts `version`.
    fn open_locked(&self, chunk_id: u64, version: u64, guard: &mut Option<Replica>) -> Result<()> {
        if guard.is_none() {
            *guard = self.load(chunk_id)?;
        }
        match guard.as_mut() {
            None => {
                let replica = Replica::create(
                    chunk_id,
                    self.paths(chunk_id),
                    version,
                    self.inner.options.block_size,
                )?;
                self.record(replica.info(), 0)?;
                *guard = Some(replica);
            }
            Some(replica) if replica.version() > version => {
                return Err(stale(chunk_id, replica.version(), version));
            }
            Some(replica) => {
                if replica.version() < version {
                    replica.set_version(version);
                    self.record(replica.info(), replica.length())?;
                }
            }
        }
        Ok(())
    }

    fn writer(&self, slot: Arc<Slot>, version: u64) -> ReplicaWriter {
        ReplicaWriter {
            store: self.clone(),
            slot,
            version,
        }
    }

    /// Writes `data` at `offset` of the replica, creating or updating it as
    /// [`ChunkStore::open_writer`] does, and persists its sidecar. Returns the replica length.
    pub fn write(&self, chunk_id: u64, version: u64, offset: u64, data: &[u8]) -> Result<u64> {
        let writer = self.open_writer(chunk_id, version)?;
        writer.write(offset, data)?;
        writer.commit(false)
    }

    /// Cuts or extends (with zeros) the replica to `len` bytes and persists its sidecar.
    pub fn truncate(&self, chunk_id: u64, version: u64, len: u64) -> Result<u64> {
        let writer = self.open_writer(chunk_id, version)?;
        writer.truncate(len)?;
        writer.commit(false)
    }

    /// Makes the replica durable: fsyncs its data, sidecar and directory.
    pub fn sync(&self, chunk_id: u64) -> Result<()> {
        let slot = self.slot(chunk_id);
        let mut guard = slot.write();
        if guard.is_none() {
            *guard = self.load(chunk_id)?;
        }
        guard.as_mut().ok_or(FsError::NotFound)?.persist(true)
    }

    /// Reads up to `len` bytes at `offset` from the replica, verifying every block the range
    /// touches. Fails with `NotFound` if there is no replica, `Stale` if its version is older
    /// than `version`, `Corrupt` on a checksum mismatch. Bytes past the replica's end are not
    /// returned.
    pub fn read(&self, chunk_id: u64, version: u64, offset: u64, len: u64) -> Result<Bytes> {
        let slot = self.slot(chunk_id);
        {
            let guard = slot.read();
            if let Some(replica) = guard.as_ref() {
                return replica.read(version, offset, len);
            }
        }
        let mut guard = slot.write();
        if guard.is_none() {
            *guard = self.load(chunk_id)?;
        }
        guard
            .as_ref()
            .ok_or(FsError::NotFound)?
            .read(version, offset, len)
    }

    /// The version and length of the replica of `chunk_id`, if there is one.
    pub fn replica(&self, chunk_id: u64) -> Option<ReplicaInfo> {
        self.lock_index().replicas.get(&chunk_id).copied()
    }

    /// Removes the replica's files. Returns whether there was a replica. A write stream still
    /// running on it fails with `NotFound` at its next step.
    pub fn delete(&self, chunk_id: u64) -> Result<bool> {
        let slot = self.slot(chunk_id);
        let mut guard = slot.write();
        *guard = None;
        let paths = self.paths(chunk_id);
        // Sidecar first: a crash in between leaves a data file without sidecar, which the
        // next open removes.
        let persisted = remove_if_exists(&paths.meta)?;
        remove_if_exists(&paths.data)?;
        remove_if_exists(&paths.meta_tmp())?;
        let mut index = self.lock_index();
        // A replica whose first write stream is still running has no sidecar yet.
        let indexed = index.replicas.remove(&chunk_id);
        if let Some(old) = indexed {
            index.used_bytes -= old.length;
        }
        Ok(persisted || indexed.is_some())
    }

    /// Every replica, ordered by chunk id: the content of a full block report.
    pub fn list(&self) -> Vec<ReplicaInfo> {
        let mut all: Vec<_> = self.lock_index().replicas.values().copied().collect();
        all.sort_by_key(|r| r.chunk_id);
        all
    }

    /// Counts a read, write or copy as in progress until the returned guard drops.
    pub fn begin_transfer(&self) -> Transfer {
        self.inner.transfers.fetch_add(1, Ordering::Relaxed);
        Transfer {
            store: self.clone(),
        }
    }

    /// Reads, writes and copies in progress right now.
    pub fn active_transfers(&self) -> u32 {
        self.inner.transfers.load(Ordering::Relaxed)
    }

    /// Capacity, free space and replica count, from `statvfs` on the data directory and the
    /// configured limit.
    pub fn usage(&self) -> Result<SpaceUsage> {
        let (disk_total, disk_free) = disk_space(&self.inner.data_dir)?;
        let (used_bytes, replica_count) = {
            let index = self.lock_index();
            (index.used_bytes, index.replicas.len() as u64)
        };
        let (capacity_bytes, free_bytes) = match self.inner.options.capacity_limit {
            Some(limit) => {
                let capacity = limit.min(disk_total);
                (capacity, disk_free.min(capacity.saturating_sub(used_bytes)))
            }
            None => (disk_total, disk_free),
        };
        Ok(SpaceUsage {
            capacity_bytes,
            free_bytes,
            used_bytes,
            replica_count,
        })
    }

    /// The lock of `chunk_id`, shared with everyone using the chunk right now.
    fn slot(&self, chunk_id: u64) -> Arc<Slot> {
        let mut map = self
            .inner
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = map.slots.get(&chunk_id).and_then(Weak::upgrade) {
            return slot;
        }
        if map.slots.len() >= map.sweep_at {
            map.slots.retain(|_, slot| slot.strong_count() > 0);
            map.sweep_at = (map.slots.len() * 2).max(64);
        }
        let slot = Arc::new(Slot {
            chunk_id,
            replica: RwLock::new(None),
        });
        map.slots.insert(chunk_id, Arc::downgrade(&slot));
        slot
    }

    fn load(&self, chunk_id: u64) -> Result<Option<Replica>> {
        Replica::load(chunk_id, self.paths(chunk_id))
    }

    fn paths(&self, chunk_id: u64) -> ReplicaPaths {
        let dir = self
            .inner
            .chunks_dir
            .join(format!("{:02x}", chunk_id & 0xff));
        ReplicaPaths {
            data: dir.join(format!("{chunk_id:016x}.data")),
            meta: dir.join(format!("{chunk_id:016x}.meta")),
            dir,
        }
    }

    fn lock_index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.inner
            .index
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a replica's new state in the index. A replica growing from `old_length` must
    /// fit under the capacity limit, else `NoSpace` and nothing is recorded.
    fn record(&self, info: ReplicaInfo, old_length: u64) -> Result<()> {
        let mut index = self.lock_index();
        let growth = info.length.saturating_sub(old_length);
        let limit = self.inner.options.capacity_limit.unwrap_or(u64::MAX);
        if growth > 0 && index.used_bytes.saturating_add(growth) > limit {
            return Err(FsError::NoSpace.into());
        }
        let previous = index
            .replicas
            .insert(info.chunk_id, info)
            .map_or(0, |r| r.length);
        index.used_bytes = index.used_bytes - previous + info.length;
        Ok(())
    }
}

/// A write in progress on one replica: a handle that a write stream keeps for its duration.
/// Every step re-checks that the replica still has the writer's version, so a newer writer
/// (or a delete) stops an older one. The sidecar is persisted by [`ReplicaWriter::commit`].
#[derive(Debug)]
pub struct ReplicaWriter {
    store: ChunkStore,
    slot: Arc<Slot>,
    version: u64,
}

impl ReplicaWriter {
    /// The chunk being written.
    pub fn chunk_id(&self) -> u64 {
        self.slot.chunk_id
    }

    /// Whether this writer is the chunk's only user right now. Whoever holds the chunk's lock
    /// is a user, so the writer's next step then waits for no lock, unless another user joins
    /// in between and holds it for one of its own steps (see [`ChunkStore::try_open_writer`]).
    pub fn is_sole_user(&self) -> bool {
        Arc::strong_count(&self.slot) == 1
    }

    /// Writes `data` at `offset`; returns the replica length afterwards.
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<u64> {
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|&end| end <= self.chunk_size());
        let Some(end) = end else {
            return Err(self.past_chunk_end(offset, data.len() as u64));
        };
        self.with_replica(|replica| {
            let old_length = replica.length();
            let info = ReplicaInfo {
                length: old_length.max(end),
                ..replica.info()
            };
            self.store.record(info, old_length)?;
            let written = replica.write_at(offset, data);
            if written.is_err() {
                self.store.record(replica.info(), info.length)?;
            }
            written.map(|()| replica.length())
        })
    }

    /// Writes several `(offset, bytes)` pieces, in order, hashing each touched block once
    /// (see [`Replica::write_ranges`]); returns the replica length afterwards.
    pub fn write_ranges(&self, ranges: &[(u64, &[u8])]) -> Result<u64> {
        let mut end = 0;
        for &(offset, data) in ranges {
            match offset
                .checked_add(data.len() as u64)
                .filter(|&e| e <= self.chunk_size())
            {
                Some(e) => end = end.max(e),
                None => return Err(self.past_chunk_end(offset, data.len() as u64)),
            }
        }
        self.with_replica(|replica| {
            let old_length = replica.length();
            let info = ReplicaInfo {
                length: old_length.max(end),
                ..replica.info()
            };
            self.store.record(info, old_length)?;
            let written = replica.write_ranges(ranges);
            if written.is_err() {
                self.store.record(replica.info(), info.length)?;
            }
            written.map(|()| replica.length())
        })
    }

    /// Cuts or extends the replica to `len` bytes; returns `len`.
    pub fn truncate(&self, len: u64) -> Result<u64> {
        if len > self.chunk_size() {
            return Err(self.past_chunk_end(len, 0));
        }
        self.with_replica(|replica| {
            let old_length = replica.length();
            self.store.record(
                ReplicaInfo {
                    length: len,
                    ..replica.info()
                },
                old_length,
            )?;
            let cut = replica.truncate(len);
            if cut.is_err() {
                self.store.record(replica.info(), len)?;
            }
            cut.map(|()| replica.length())
        })
    }

    /// Persists the sidecar (fsyncing data and sidecar first if `sync`); returns the
    /// replica length. Also the way to keep checksums right after a write stream failed
    /// half-way: what was written stays, described by its checksums.
    pub fn commit(&self, sync: bool) -> Result<u64> {
        self.with_replica(|replica| {
            replica.persist(sync)?;
            Ok(replica.length())
        })
    }

    fn with_replica<T>(&self, op: impl FnOnce(&mut Replica) -> Result<T>) -> Result<T> {
        let chunk_id = self.slot.chunk_id;
        let mut guard = self.slot.write();
        if guard.is_none() {
            // Only after a delete (or a panic that dropped the in-memory state).
            *guard = self.store.load(chunk_id)?;
        }
        let replica = guard.as_mut().ok_or(FsError::NotFound)?;
        if replica.version() != self.version {
            return Err(stale(chunk_id, replica.version(), self.version));
        }
        op(replica)
    }

    fn chunk_size(&self) -> u64 {
        self.store.inner.options.chunk_size
    }

    fn past_chunk_end(&self, offset: u64, len: u64) -> Error {
        FsError::Invalid(format!(
            "chunk {:016x}: range {offset}+{len} ends past the chunk size {}",
            self.slot.chunk_id,
            self.chunk_size()
        ))
        .into()
    }
}

impl Slot {
    /// Exclusive access to the chunk. A panic while it was held may have left the replica's
    /// in-memory state half-updated, so a poisoned lock drops that state: the next user
    /// reloads the replica from disk.
    fn write(&self) -> RwLockWriteGuard<'_, Option<Replica>> {
        self.replica.write().unwrap_or_else(|poisoned| {
            let mut guard = poisoned.into_inner();
            *guard = None;
            self.replica.clear_poison();
            guard
        })
    }

    /// Shared access to the chunk, for readers.
    fn read(&self) -> RwLockReadGuard<'_, Option<Replica>> {
        if self.replica.is_poisoned() {
            drop(self.write());
        }
        self.replica.read().unwrap_or_else(PoisonError::into_inner)
    }
}

fn stale(chunk_id: u64, have: u64, want: u64) -> Error {
    FsError::Stale(format!(
        "chunk {chunk_id:016x}: replica has version {have}, request has {want}"
    ))
    .into()
}
