//! A metadata mutation in progress: the single writer's view of the store plus the
//! [`Command`] (the key writes) that will apply it atomically.
//!
//! Every mutation of the master (namespace, chunk map, registry, deletion queue) is a
//! read-modify-write: read inodes and counters, decide, write. Two such mutations interleaved
//! would lose updates (two creates reading the same `next_ino`, two renames both checking the
//! target is free), so they are serialised: [`Writer::begin`] takes a `std::sync::Mutex`
//! that the [`Txn`] holds until it is committed or dropped. A plain mutex is the right tool:
//! a mutation is a handful of point reads plus one (possibly synced) batch write, it never
//! holds the lock across an `.await` (the service runs it inline, see
//! [`crate::service`]), and a single ordered writer is exactly the shape a replicated state
//! machine needs. [`Txn::commit`] hands the command to the writer's [`Commit`]: the Raft group
//! ([`crate::raft`]), which returns once a majority has it and this member has applied it, or
//! [`Local`], which applies it at once. The writer lock is held until then, so the next
//! mutation reads this one's result. Reads outside a transaction go straight to the [`Store`]
//! and run concurrently; each command lands in one atomic batch, so a reader sees a mutation
//! entirely or not at all, and only once the group has committed it.
//!
//! Inodes and counters read through a transaction see its own earlier writes, so an operation
//! that touches the same inode twice (a rename inside one directory, a hard link replacing
//! another link of itself) composes correctly.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use prost::Message;

use crate::chunks::Chunk;
use crate::chunks::leases::GrantedLease;
use crate::cluster::registry::ServerIdentity;
use crate::error::Result;
use crate::locks::HeldLock;
use crate::namespace::{Dentry, Inode};
use crate::store::command::Command;
use crate::store::keys::{dentry_key, encode_dentry, id_key, pair_key};
use crate::store::records::{ChunkRecord, InodeRecord, LeaseRecord, LockRecords, ServerRecord};
use crate::store::{
    CF_CHUNK_IDS, CF_CHUNKS, CF_DELETIONS, CF_DENTRIES, CF_INODES, CF_LEASES, CF_LOCKS, CF_META,
    CF_REPLIES, CF_REPLY_TIMES, CF_SERVERS, CF_SYMLINKS, CF_XATTRS, Store, SyncPolicy, meta,
};

/// Ids a raised reservation covers: one synced write per this many creates.
pub const ID_RESERVATION: u64 = 1024;

/// Whether a commit waits for the WAL to reach the disk.
enum WalSync {
    Now,
    Later,
}

/// Where a committed transaction's [`Command`] goes.
pub trait Commit: Send + Sync {
    /// Makes `command` part of the metadata and returns once it is applied to this member's
    /// store (so the next transaction reads it), or fails and applies nothing here.
    fn commit(&self, command: Command) -> Result<()>;

    /// Makes every command committed so far durable (a client's `fsync`).
    fn sync(&self) -> Result<()>;
}

/// Applies commands straight to the store: a master on its own, outside any group (the
/// unit tests of the metadata logic).
pub struct Local(pub Arc<Store>);

impl Commit for Local {
    fn commit(&self, command: Command) -> Result<()> {
        let batch = self.0.batch_of(&command)?;
        self.0.write_with(batch, command.sync)
    }

    fn sync(&self) -> Result<()> {
        self.0.sync_wal()
    }
}

/// The store plus the lock that makes its mutations one-at-a-time. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    store: Arc<Store>,
    lock: Arc<Mutex<()>>,
    commit: Arc<dyn Commit>,
    /// Replies of calls made [once](Writer::once), to be recorded with the next command.
    replies: Arc<Mutex<PendingReplies>>,
}

/// Replies waiting to be recorded: `replies` key and value.
type PendingReplies = Vec<(Vec<u8>, Vec<u8>)>;

impl Writer {
    /// Wraps an open store whose mutations apply to it directly ([`Local`]).
    pub fn new(store: Arc<Store>) -> Writer {
        let commit = Arc::new(Local(Arc::clone(&store)));
        Writer::with_commit(store, commit)
    }

    /// Wraps an open store whose mutations go through `commit` (the Raft group).
    pub fn with_commit(store: Arc<Store>, commit: Arc<dyn Commit>) -> Writer {
        Writer {
            store,
            lock: Arc::new(Mutex::new(())),
            commit,
            replies: Arc::default(),
        }
    }

    /// Moves every id counter up to its reservation (at start-up): ids between the two may
    /// have been handed out by unsynced mutations that a machine crash lost, and must not be
    /// handed out again (a lost create's chunk id may still name replicas on chunkservers).
    pub fn skip_reserved_ids(&self) -> Result<()> {
        let mut txn = self.begin();
        for (counter, reservation) in meta::ID_COUNTERS {
            let reserved = txn.counter(reservation)?;
            if txn.counter(counter)? < reserved {
                txn.set_counter(counter, reserved);
            }
        }
        txn.commit()
    }

    /// Makes every mutation committed so far durable: on this store alone, or on a majority
    /// of the group. Not serialised with the mutations: it covers those before it.
    pub fn sync(&self) -> Result<()> {
        self.commit.sync()
    }

    /// Takes the writer lock. A panic in another mutation leaves nothing half-applied (its
    /// command was never committed), so a poisoned lock is safe to take over.
    fn lock(&self) -> MutexGuard<'_, ()> {
        self.lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs the mutation `op` of the call named `request_id` at most once.
    ///
    /// Every command `op` commits also records `request_id` (stamped `now_ms`) in the same
    /// atomic write, and the reply (`encode`d) follows with the next command committed. A
    /// call whose id is recorded already is a retry of one that was applied and whose reply
    /// was lost in a failover: it gets the recorded reply (`decode`d) or, if the leader that
    /// applied it died before recording it, the answer of `replay`, which reads it off the
    /// current state (the attributes of the name a create made, the directories a rename
    /// changed) or repeats an idempotent form of the call. Either way `op` is not applied
    /// again. The writer lock is held from the check through `op`, so two copies of a call
    /// cannot both apply.
    pub fn once<T>(
        &self,
        request_id: &[u8],
        now_ms: u64,
        op: impl FnOnce() -> Result<T>,
        codec: (impl FnOnce(&T) -> Vec<u8>, impl FnOnce(&[u8]) -> Result<T>),
        replay: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let (encode, decode) = codec;
        let guard = self.lock();
        let pending = self
            .pending_replies()
            .iter()
            .find(|(key, _)| key == request_id)
            .map(|(_, value)| value.clone());
        let recorded = match pending {
            Some(value) => Some(value),
            None => self.store.raw(CF_REPLIES, request_id)?,
        };
        if let Some(recorded) = recorded {
            drop(guard);
            return match recorded.get(8..) {
                Some(reply) if !reply.is_empty() => decode(reply),
                _ => {
                    tracing::debug!("a retried call was applied, its reply lost: replaying");
                    replay()
                }
            };
        }
        let scope = RequestScope::enter(request_id, now_ms);
        let result = op();
        // Whether `op` committed anything (and with it the id): only then is there a reply
        // worth recording.
        if let Ok(reply) = &result
            && scope.leave()
        {
            let mut value = now_ms.to_be_bytes().to_vec();
            value.extend(encode(reply));
            self.pending_replies().push((request_id.to_vec(), value));
        }
        result
    }

    fn pending_replies(&self) -> std::sync::MutexGuard<'_, PendingReplies> {
        self.replies.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets the request ids recorded before `cutoff_ms`: a client retries a call only
    /// within its RPC timeout. Answers how many it forgot.
    pub fn forget_replies_before(&self, cutoff_ms: u64) -> Result<usize> {
        let old = self
            .store
            .raw_range(CF_REPLY_TIMES, &[], Some(&cutoff_ms.to_be_bytes()))?;
        if old.is_empty() {
            return Ok(0);
        }
        let mut command = Command::default();
        for (key, value) in self.pending_replies().drain(..) {
            command.put(CF_REPLIES, key, value);
        }
        for (key, _) in &old {
            command.delete(CF_REPLY_TIMES, key.clone());
            command.delete(CF_REPLIES, key.get(8..).unwrap_or_default().to_vec());
        }
        let _guard = self.lock();
        self.commit.commit(command)?;
        Ok(old.len())
    }

    /// The store, for reads outside a transaction.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Starts a mutation, waiting for the one in progress (if any) to finish. Inside
    /// [`Writer::once`] the lock is held already, by the whole call.
    pub fn begin(&self) -> Txn<'_> {
        let guard = (!in_request()).then(|| self.lock());
        Txn {
            store: &self.store,
            commit: &*self.commit,
            replies: &self.replies,
            _guard: guard,
            command: Command::default(),
            inodes: HashMap::new(),
            counters: HashMap::new(),
            reserved_ids: false,
            deferrable: false,
        }
    }
}

/// One atomic mutation. Nothing reaches the database until [`Txn::commit`]; dropping the
/// transaction (for example on an error) discards it.
pub struct Txn<'a> {
    store: &'a Store,
    commit: &'a dyn Commit,
    replies: &'a Mutex<PendingReplies>,
    /// The writer lock, unless the request scope holds it.
    _guard: Option<MutexGuard<'a, ()>>,
    command: Command,
    /// Inodes read or written by this transaction (`None` = absent or deleted).
    inodes: HashMap<u64, Cached<Option<Inode>>>,
    /// Counters read or written by this transaction.
    counters: HashMap<&'static [u8], Cached<u64>>,
    /// Whether this transaction raised an id reservation, which must be synced before any
    /// id above the old one is handed out.
    reserved_ids: bool,
    /// Whether the transaction may be acknowledged before its WAL sync (see
    /// [`Txn::defer_sync`]).
    deferrable: bool,
}

/// A value read through a transaction, and whether the transaction changed it (only changed
/// values are written back on commit).
struct Cached<T> {
    value: T,
    dirty: bool,
}

impl Txn<'_> {
    /// The store, for reads this transaction does not modify (dentries, chunks).
    pub fn store(&self) -> &Store {
        self.store
    }

    /// Reads an inode, seeing this transaction's own changes.
    pub fn inode(&mut self, ino: u64) -> Result<Option<Inode>> {
        if let Some(cached) = self.inodes.get(&ino) {
            return Ok(cached.value.clone());
        }
        let inode = self.store.inode(ino)?;
        self.inodes.insert(
            ino,
            Cached {
                value: inode.clone(),
                dirty: false,
            },
        );
        Ok(inode)
    }

    /// Writes an inode (on commit).
    pub fn put_inode(&mut self, inode: Inode) {
        self.inodes.insert(
            inode.attr.ino,
            Cached {
                value: Some(inode),
                dirty: true,
            },
        );
    }

    /// Reads a counter, 0 if never set.
    pub fn counter(&mut self, key: &'static [u8]) -> Result<u64> {
        if let Some(cached) = self.counters.get(key) {
            return Ok(cached.value);
        }
        let value = self.store.meta(key)?.unwrap_or(0);
        self.counters.insert(
            key,
            Cached {
                value,
                dirty: false,
            },
        );
        Ok(value)
    }

    /// Sets a counter (on commit).
    pub fn set_counter(&mut self, key: &'static [u8], value: u64) {
        self.counters.insert(key, Cached { value, dirty: true });
    }

    /// Sets `key` of the metadata to raw `value` (not a counter).
    pub fn put_meta_raw(&mut self, key: &'static [u8], value: &[u8]) {
        self.command.put(CF_META, key, value.to_vec());
    }

    /// Hands out the next value of an id counter; ids start at `first`. Past the counter's
    /// reservation (see [`meta::ID_COUNTERS`]) the reservation moves [`ID_RESERVATION`] ids
    /// ahead and the transaction commits synced, whatever its kind.
    pub fn next_id(&mut self, key: &'static [u8], first: u64) -> Result<u64> {
        let id = self.counter(key)?.max(first);
        self.set_counter(key, id + 1);
        let reservation = meta::reservation(key);
        if id >= self.counter(reservation)? {
            self.set_counter(reservation, id + ID_RESERVATION);
            self.reserved_ids = true;
        }
        Ok(id)
    }

    /// Adds a new inode to the namespace count.
    pub fn create_inode(&mut self, inode: Inode) -> Result<()> {
        let count = self.counter(meta::INODE_COUNT)?;
        self.set_counter(meta::INODE_COUNT, count + 1);
        self.put_inode(inode);
        Ok(())
    }

    /// Deletes an inode and everything it owns: its symlink target, its recorded writer
    /// lease, its chunks, and (through the deletion queue) the replicas of those chunks.
    pub fn remove_inode(&mut self, ino: u64) -> Result<()> {
        self.inodes.insert(
            ino,
            Cached {
                value: None,
                dirty: true,
            },
        );
        self.command.delete(CF_SYMLINKS, id_key(ino));
        // A lease still held on a removed file has nothing left to protect.
        self.delete_lease(ino);
        // Its extended attributes: every key `ino ‖ name` lies in [ino, ino + 1).
        self.command
            .delete_range(CF_XATTRS, id_key(ino), id_key(ino + 1));
        for (index, chunk) in self.store.chunks(ino, 0, None)? {
            self.remove_chunk(ino, index, &chunk);
        }
        let count = self.counter(meta::INODE_COUNT)?;
        self.set_counter(meta::INODE_COUNT, count.saturating_sub(1));
        Ok(())
    }

    /// Sets extended attribute `name` of `ino`.
    pub fn put_xattr(&mut self, ino: u64, name: &[u8], value: &[u8]) {
        self.command.put(CF_XATTRS, dentry_key(ino, name), value);
    }

    /// Removes extended attribute `name` of `ino`.
    pub fn delete_xattr(&mut self, ino: u64, name: &[u8]) {
        self.command.delete(CF_XATTRS, dentry_key(ino, name));
    }

    /// Writes a directory entry.
    pub fn put_dentry(&mut self, parent: u64, name: &[u8], dentry: Dentry) {
        let key = dentry_key(parent, name);
        self.command.put(CF_DENTRIES, key, encode_dentry(dentry));
    }

    /// Deletes a directory entry.
    pub fn delete_dentry(&mut self, parent: u64, name: &[u8]) {
        self.command.delete(CF_DENTRIES, dentry_key(parent, name));
    }

    /// Writes a symlink target.
    pub fn put_symlink(&mut self, ino: u64, target: &[u8]) {
        self.command.put(CF_SYMLINKS, id_key(ino), target);
    }

    /// Writes the chunk at `index` of file `ino` (and its reverse index entry).
    pub fn put_chunk(&mut self, ino: u64, index: u64, chunk: &Chunk) {
        let key = pair_key(ino, index);
        let value = ChunkRecord::from(chunk).encode_to_vec();
        self.command.put(CF_CHUNKS, key, value);
        self.command.put(CF_CHUNK_IDS, id_key(chunk.chunk_id), key);
    }

    /// Drops the chunk at `index` of file `ino` and queues its replicas for deletion.
    pub fn remove_chunk(&mut self, ino: u64, index: u64, chunk: &Chunk) {
        self.command.delete(CF_CHUNKS, pair_key(ino, index));
        self.command.delete(CF_CHUNK_IDS, id_key(chunk.chunk_id));
        for &server_id in &chunk.replicas {
            self.queue_deletion(server_id, chunk.chunk_id);
        }
    }

    /// Queues the replica of `chunk_id` on `server_id` for deletion (handed to the server with
    /// its next heartbeat reply): a trimmed, drained, dead, corrupt or replaced replica that the
    /// chunk record no longer lists.
    pub fn queue_deletion(&mut self, server_id: u64, chunk_id: u64) {
        let key = pair_key(server_id, chunk_id);
        self.command.put(CF_DELETIONS, key, Vec::new());
    }

    /// Removes a replica from a server's deletion queue (it has been handed to the server).
    pub fn dequeue_deletion(&mut self, server_id: u64, chunk_id: u64) {
        let key = pair_key(server_id, chunk_id);
        self.command.delete(CF_DELETIONS, key);
    }

    /// Writes a chunkserver's persisted identity.
    pub fn put_server(&mut self, server_id: u64, server: &ServerIdentity) {
        let value = ServerRecord::from(server).encode_to_vec();
        self.command.put(CF_SERVERS, id_key(server_id), value);
    }

    /// Records the writer lease of file `ino`.
    pub fn put_lease(&mut self, ino: u64, lease: &GrantedLease) {
        let value = LeaseRecord::from(lease).encode_to_vec();
        self.command.put(CF_LEASES, id_key(ino), value);
    }

    /// Forgets the writer lease of file `ino`.
    pub fn delete_lease(&mut self, ino: u64) {
        self.command.delete(CF_LEASES, id_key(ino));
    }

    /// Records the advisory locks of file `ino` (none: forgets them).
    pub fn put_locks(&mut self, ino: u64, locks: &[HeldLock]) {
        if locks.is_empty() {
            self.command.delete(CF_LOCKS, id_key(ino));
        } else {
            let value = LockRecords::from(locks).encode_to_vec();
            self.command.put(CF_LOCKS, id_key(ino), value);
        }
    }

    /// Marks the transaction as a change of names or of a file's length only, which under
    /// [`SyncPolicy::Deferred`] is acknowledged unsynced and made durable by the next
    /// [`Store::sync_wal`] (or any synced write). A transaction that also raised an id
    /// reservation still syncs.
    pub fn defer_sync(&mut self) {
        self.deferrable = true;
    }

    /// Applies every change of the transaction as one atomic batch, synced before it returns
    /// (unless the store never syncs, or the transaction [may defer](Txn::defer_sync) it),
    /// then releases the writer lock.
    pub fn commit(self) -> Result<()> {
        let deferred =
            self.deferrable && !self.reserved_ids && self.store.policy() == SyncPolicy::Deferred;
        self.apply(if deferred {
            WalSync::Later
        } else {
            WalSync::Now
        })
    }

    /// Like [`commit`](Txn::commit), but does not wait for the WAL to reach the disk (unless
    /// it raised an id reservation): for changes whose loss in a machine crash is harmless
    /// (e.g. a lease release, whose loss only makes the lease expire instead).
    pub fn commit_unsynced(self) -> Result<()> {
        let sync = if self.reserved_ids {
            WalSync::Now
        } else {
            WalSync::Later
        };
        self.apply(sync)
    }

    fn apply(mut self, sync: WalSync) -> Result<()> {
        // In key order, so that the same mutation gives the same command byte for byte.
        let mut inodes: Vec<_> = std::mem::take(&mut self.inodes).into_iter().collect();
        inodes.sort_unstable_by_key(|(ino, _)| *ino);
        for (ino, cached) in inodes {
            match cached.value {
                _ if !cached.dirty => {}
                Some(inode) => {
                    let value = InodeRecord::from(&inode).encode_to_vec();
                    self.command.put(CF_INODES, id_key(ino), value);
                }
                None => self.command.delete(CF_INODES, id_key(ino)),
            }
        }
        let mut counters: Vec<_> = std::mem::take(&mut self.counters).into_iter().collect();
        counters.sort_unstable_by_key(|(key, _)| *key);
        for (key, cached) in counters {
            if cached.dirty {
                self.command.put(CF_META, key, cached.value.to_be_bytes());
            }
        }
        let mut command = std::mem::take(&mut self.command);
        if command.is_empty() {
            return Ok(());
        }
        command.sync = match sync {
            WalSync::Now => self.store.policy() != SyncPolicy::Never,
            WalSync::Later => false,
        };
        let pending = std::mem::take(&mut *self.replies.lock().unwrap_or_else(|p| p.into_inner()));
        for (key, value) in pending {
            command.put(CF_REPLIES, key, value);
        }
        let request = RequestScope::current();
        if let Some((request_id, now_ms)) = &request {
            let stamp = now_ms.to_be_bytes();
            command.put(CF_REPLIES, request_id.clone(), stamp);
            let mut by_time = stamp.to_vec();
            by_time.extend_from_slice(request_id);
            command.put(CF_REPLY_TIMES, by_time, Vec::new());
        }
        self.commit.commit(command)?;
        if request.is_some() {
            RequestScope::committed();
        }
        Ok(())
    }
}

/// The call a thread runs in [`Writer::once`]: its request id, its time, and whether a
/// command recording it has been committed.
struct Request {
    id: Vec<u8>,
    now_ms: u64,
    committed: bool,
}

thread_local! {
    /// The call this thread runs in [`Writer::once`], which holds the writer lock for it.
    static REQUEST: std::cell::RefCell<Option<Request>> = const { std::cell::RefCell::new(None) };
}

/// Whether this thread runs a call in [`Writer::once`] (which holds the writer lock).
fn in_request() -> bool {
    REQUEST.with(|r| r.borrow().is_some())
}

/// The request scope of this thread; left on drop, also when the mutation fails or panics.
struct RequestScope;

impl RequestScope {
    fn enter(request_id: &[u8], now_ms: u64) -> RequestScope {
        let request = Request {
            id: request_id.to_vec(),
            now_ms,
            committed: false,
        };
        REQUEST.with(|r| *r.borrow_mut() = Some(request));
        RequestScope
    }

    /// The id and time of the call in progress.
    fn current() -> Option<(Vec<u8>, u64)> {
        REQUEST.with(|r| r.borrow().as_ref().map(|r| (r.id.clone(), r.now_ms)))
    }

    /// A command recording the call has been committed.
    fn committed() {
        REQUEST.with(|r| {
            if let Some(request) = r.borrow_mut().as_mut() {
                request.committed = true;
            }
        });
    }

    /// Leaves the scope; answers whether a command recording the call was committed.
    fn leave(self) -> bool {
        REQUEST
            .with(|r| r.borrow_mut().take())
            .is_some_and(|r| r.committed)
    }
}

impl Drop for RequestScope {
    fn drop(&mut self) {
        REQUEST.with(|r| *r.borrow_mut() = None);
    }
}
