//! Advisory locks: `fcntl` byte-range locks and `flock`, honoured across every mount.
//!
//! Each mount names itself with a session id (its lease holder id) and each lock with the
//! FUSE lock owner the kernel gives it: the process's file table for classic POSIX locks, the
//! open file description for OFD locks and for `flock` (which the kernel sends as a lock on
//! the whole file, as NFS does; so on dfs an `flock` and an `fcntl` lock of the same file
//! conflict, where on a local filesystem they would not). An owner is the pair
//! (session, owner), so the same kernel pointer on two machines never collides.
//!
//! The rules are POSIX's: read locks of different owners coexist, a write lock excludes every
//! other owner's lock on the bytes it covers, and an owner's new lock replaces whatever that
//! owner held on its range (splitting a longer lock, converting read to write and back);
//! adjacent locks of one owner and kind merge. Blocking (`F_SETLKW`) is the mount's business:
//! it asks again with a backoff, so no master thread ever waits.
//!
//! A session not renewed within its time-to-live (the lease time-to-live) is presumed dead and
//! its locks are dropped, so a mount killed with `kill -9` frees its locks within one
//! time-to-live.
//!
//! The table is served from memory and written through to the `locks` column family (one
//! record per file, unsynced: a lock is cheap to ask for and slow to sync), so a restarted
//! master still knows every lock; as with leases, every session it loads counts as renewed at
//! the start, and one that is not renewed within a time-to-live loses its locks then. Locks
//! whose record had not reached the disk when the machine crashed are lost; their mount finds
//! out at its next renewal (its session is unknown) and logs it.
//!
//! Every method takes the caller's `now`: expiry is decided on the instants the service
//! passes in, which keeps this a deterministic state machine.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dfs_proto::FsError;

use crate::error::Result;
use crate::store::txn::Writer;

/// Shared or exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// A read (shared) lock: `F_RDLCK`, `LOCK_SH`.
    Read,
    /// A write (exclusive) lock: `F_WRLCK`, `LOCK_EX`.
    Write,
}

/// Who holds a lock: a lock owner inside one mount session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner {
    /// The mount's session id.
    pub session: String,
    /// The FUSE lock owner within the mount.
    pub owner: u64,
}

/// One lock held on bytes `[start, end]` (inclusive) of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLock {
    /// Who holds it.
    pub owner: Owner,
    /// First byte covered.
    pub start: u64,
    /// Last byte covered (inclusive).
    pub end: u64,
    /// Read or write.
    pub kind: LockKind,
    /// The process that took it, reported to `F_GETLK`.
    pub pid: u32,
}

impl HeldLock {
    fn overlaps(&self, start: u64, end: u64) -> bool {
        self.start <= end && start <= self.end
    }

    fn conflicts_with(&self, owner: &Owner, start: u64, end: u64, kind: LockKind) -> bool {
        self.owner != *owner
            && self.overlaps(start, end)
            && (kind == LockKind::Write || self.kind == LockKind::Write)
    }
}

/// What a caller asks about: a range of one file for one owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockSpec {
    /// The file.
    pub ino: u64,
    /// The asking owner.
    pub owner: Owner,
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive).
    pub end: u64,
    /// The asking process.
    pub pid: u32,
}

#[derive(Debug, Default)]
struct State {
    /// Live sessions and when each expires without a renewal.
    sessions: HashMap<String, Instant>,
    /// The locks of each file, in no particular order.
    files: HashMap<u64, Vec<HeldLock>>,
}

/// The advisory locks of the cluster.
pub struct LockTable {
    writer: Writer,
    ttl: Duration,
    // A std mutex: held for a scan of one file's locks plus one unsynced batch, never across
    // an `.await`. Always taken before the writer lock.
    state: Mutex<State>,
}

impl LockTable {
    /// Advisory locks held now, over every file (a gauge of `/metrics`).
    pub fn count(&self) -> usize {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.files.values().map(Vec::len).sum()
    }

    /// Loads the recorded locks; every session holding one counts as renewed at `now`, and
    /// sessions live `ttl` without a renewal.
    pub fn open(writer: Writer, ttl: Duration, now: Instant) -> Result<LockTable> {
        let mut state = State::default();
        for (ino, locks) in writer.store().locks()? {
            for held in &locks {
                state.sessions.insert(held.owner.session.clone(), now + ttl);
            }
            state.files.insert(ino, locks);
        }
        Ok(LockTable {
            writer,
            ttl,
            state: Mutex::new(state),
        })
    }

    /// How long a session lives without a renewal.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Locks the table after dropping expired sessions and renewing `session` (if any).
    fn state(&self, session: Option<&str>, now: Instant) -> std::sync::MutexGuard<'_, State> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let changed = expire(&mut state, now);
        if !changed.is_empty() {
            if let Err(err) = self.persist(&state, &changed) {
                // A restarted master would find them and expire them again.
                tracing::warn!(error = %err, "recording expired locks failed");
            }
        }
        if let Some(session) = session {
            state.sessions.insert(session.to_string(), now + self.ttl);
        }
        state
    }

    /// Writes the locks of files `inos` as they are in `state`, in one unsynced batch.
    fn persist(&self, state: &State, inos: &[u64]) -> Result<()> {
        let mut txn = self.writer.begin();
        for &ino in inos {
            let locks = state.files.get(&ino).map(Vec::as_slice).unwrap_or_default();
            txn.put_locks(ino, locks);
        }
        txn.commit_unsynced()
    }

    /// Replaces the locks of `ino` with what `change` makes of them, on disk, then here.
    fn update(
        &self,
        state: &mut State,
        ino: u64,
        change: impl FnOnce(&mut Vec<HeldLock>),
    ) -> Result<()> {
        let mut locks = state.files.get(&ino).cloned().unwrap_or_default();
        change(&mut locks);
        let mut txn = self.writer.begin();
        txn.put_locks(ino, &locks);
        txn.commit_unsynced()?;
        if locks.is_empty() {
            state.files.remove(&ino);
        } else {
            state.files.insert(ino, locks);
        }
        Ok(())
    }

    /// Takes a `kind` lock on the range of `spec` for its owner, replacing what the owner
    /// held there; answers the lock in the way instead if another owner's conflicts.
    pub fn lock(&self, spec: &LockSpec, kind: LockKind, now: Instant) -> Result<Option<HeldLock>> {
        check(spec)?;
        let mut state = self.state(Some(&spec.owner.session), now);
        let held = state
            .files
            .get(&spec.ino)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if let Some(conflict) = first_conflict(held, spec, kind) {
            return Ok(Some(conflict));
        }
        self.update(&mut state, spec.ino, |locks| {
            carve(locks, &spec.owner, spec.start, spec.end);
            let mut new = HeldLock {
                owner: spec.owner.clone(),
                start: spec.start,
                end: spec.end,
                kind,
                pid: spec.pid,
            };
            // Merge the owner's locks of the same kind that touch the new one.
            locks.retain(|held| {
                let touches = held.owner == new.owner
                    && held.kind == kind
                    && held.start <= new.end.saturating_add(1)
                    && new.start <= held.end.saturating_add(1);
                if touches {
                    new.start = new.start.min(held.start);
                    new.end = new.end.max(held.end);
                }
                !touches
            });
            locks.push(new);
        })?;
        Ok(None)
    }

    /// Drops whatever the owner of `spec` holds on its range (splitting longer locks).
    pub fn unlock(&self, spec: &LockSpec, now: Instant) -> Result<()> {
        check(spec)?;
        let mut state = self.state(Some(&spec.owner.session), now);
        if !holds(&state, spec.ino, &spec.owner) {
            return Ok(());
        }
        self.update(&mut state, spec.ino, |locks| {
            carve(locks, &spec.owner, spec.start, spec.end)
        })
    }

    /// The lock of another owner that a `kind` lock on `spec`'s range would conflict with.
    pub fn test(&self, spec: &LockSpec, kind: LockKind, now: Instant) -> Result<Option<HeldLock>> {
        check(spec)?;
        let state = self.state(Some(&spec.owner.session), now);
        Ok(state
            .files
            .get(&spec.ino)
            .and_then(|locks| first_conflict(locks, spec, kind)))
    }

    /// Drops every lock `owner` holds on file `ino` (the owner closed the file).
    pub fn release_owner(&self, ino: u64, owner: &Owner, now: Instant) -> Result<()> {
        let mut state = self.state(Some(&owner.session), now);
        if !holds(&state, ino, owner) {
            return Ok(());
        }
        self.update(&mut state, ino, |locks| {
            locks.retain(|held| held.owner != *owner)
        })
    }

    /// Extends `session` by a time-to-live from `now`. Answers whether it was still known
    /// (false: it expired, or its locks were lost in a crash of the master's machine).
    pub fn renew(&self, session: &str, now: Instant) -> bool {
        let mut state = self.state(None, now);
        let known = state.sessions.contains_key(session);
        state.sessions.insert(session.to_string(), now + self.ttl);
        known
    }

    /// Ends `session` and drops its locks (the mount is unmounted).
    pub fn end_session(&self, session: &str, now: Instant) -> Result<()> {
        let mut state = self.state(None, now);
        state.sessions.remove(session);
        let changed = drop_sessions(&mut state, |s| s == session);
        self.persist(&state, &changed)
    }

    /// Every lock held on `ino` (for tests and diagnostics).
    pub fn held(&self, ino: u64, now: Instant) -> Vec<HeldLock> {
        let state = self.state(None, now);
        let mut locks = state.files.get(&ino).cloned().unwrap_or_default();
        locks.sort_by_key(|held| (held.start, held.end));
        locks
    }
}

/// Refuses a request without a session or with an empty range.
fn check(spec: &LockSpec) -> Result<()> {
    if spec.owner.session.is_empty() || spec.start > spec.end {
        return Err(FsError::Invalid(format!(
            "bad lock request: session {:?}, range {}..={}",
            spec.owner.session, spec.start, spec.end
        ))
        .into());
    }
    Ok(())
}

fn first_conflict(locks: &[HeldLock], spec: &LockSpec, kind: LockKind) -> Option<HeldLock> {
    locks
        .iter()
        .filter(|held| held.conflicts_with(&spec.owner, spec.start, spec.end, kind))
        .min_by_key(|held| held.start)
        .cloned()
}

/// Removes `owner`'s coverage of `[start, end]`, keeping the parts of its locks outside.
fn carve(locks: &mut Vec<HeldLock>, owner: &Owner, start: u64, end: u64) {
    let mut kept = Vec::with_capacity(locks.len() + 1);
    for held in locks.drain(..) {
        if held.owner != *owner || !held.overlaps(start, end) {
            kept.push(held);
            continue;
        }
        if held.start < start {
            kept.push(HeldLock {
                end: start - 1,
                ..held.clone()
            });
        }
        if held.end > end {
            kept.push(HeldLock {
                start: end + 1,
                ..held
            });
        }
    }
    *locks = kept;
}

/// Drops sessions that expired by `now`, with their locks; answers the files that changed.
fn expire(state: &mut State, now: Instant) -> Vec<u64> {
    let expired: Vec<String> = state
        .sessions
        .iter()
        .filter(|(_, expires)| **expires <= now)
        .map(|(session, _)| session.clone())
        .collect();
    if expired.is_empty() {
        return Vec::new();
    }
    for session in &expired {
        tracing::info!(%session, "lock session expired; its locks are released");
        state.sessions.remove(session);
    }
    drop_sessions(state, |s| expired.iter().any(|e| e == s))
}

/// Drops every lock of the sessions `gone` names; answers the files that changed.
fn drop_sessions(state: &mut State, gone: impl Fn(&str) -> bool) -> Vec<u64> {
    let mut changed = Vec::new();
    state.files.retain(|&ino, locks| {
        let before = locks.len();
        locks.retain(|held| !gone(&held.owner.session));
        if locks.len() != before {
            changed.push(ino);
        }
        !locks.is_empty()
    });
    changed
}

/// Whether `owner` holds any lock on `ino`.
fn holds(state: &State, ino: u64, owner: &Owner) -> bool {
    state
        .files
        .get(&ino)
        .is_some_and(|locks| locks.iter().any(|held| held.owner == *owner))
}
