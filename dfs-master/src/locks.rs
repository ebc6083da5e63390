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
//! The table lives in memory only. A session not renewed within its time-to-live (the lease
//! time-to-live) is presumed dead and its locks are dropped, so a mount killed with `kill -9`
//! frees its locks within one time-to-live. A master restart forgets every lock: a mount finds
//! out at its next renewal (the session is unknown) and logs that its locks were lost; programs
//! holding locks keep running as if they held them, as NFSv3 clients do without lock recovery.
//!
//! Every method takes the caller's `now`: expiry is decided on the instants the service
//! passes in, which keeps this a deterministic state machine.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dfs_proto::FsError;

use crate::error::Result;

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
#[derive(Debug)]
pub struct LockTable {
    ttl: Duration,
    // A std mutex: held for a scan of one file's locks, never across an `.await`.
    state: Mutex<State>,
}

impl LockTable {
    /// An empty table whose sessions live `ttl` without a renewal.
    pub fn new(ttl: Duration) -> LockTable {
        LockTable {
            ttl,
            state: Mutex::default(),
        }
    }

    /// How long a session lives without a renewal.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Locks the table after dropping expired sessions and renewing `session` (if any).
    fn state(&self, session: Option<&str>, now: Instant) -> std::sync::MutexGuard<'_, State> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        expire(&mut state, now);
        if let Some(session) = session {
            state.sessions.insert(session.to_string(), now + self.ttl);
        }
        state
    }

    /// Takes a `kind` lock on the range of `spec` for its owner, replacing what the owner
    /// held there; answers the lock in the way instead if another owner's conflicts.
    pub fn lock(&self, spec: &LockSpec, kind: LockKind, now: Instant) -> Result<Option<HeldLock>> {
        check(spec)?;
        let mut state = self.state(Some(&spec.owner.session), now);
        let locks = state.files.entry(spec.ino).or_default();
        if let Some(conflict) = first_conflict(locks, spec, kind) {
            return Ok(Some(conflict));
        }
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
        Ok(None)
    }

    /// Drops whatever the owner of `spec` holds on its range (splitting longer locks).
    pub fn unlock(&self, spec: &LockSpec, now: Instant) -> Result<()> {
        check(spec)?;
        let mut state = self.state(Some(&spec.owner.session), now);
        if let Some(locks) = state.files.get_mut(&spec.ino) {
            carve(locks, &spec.owner, spec.start, spec.end);
            if locks.is_empty() {
                state.files.remove(&spec.ino);
            }
        }
        Ok(())
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
    pub fn release_owner(&self, ino: u64, owner: &Owner, now: Instant) {
        let mut state = self.state(Some(&owner.session), now);
        if let Some(locks) = state.files.get_mut(&ino) {
            locks.retain(|held| held.owner != *owner);
            if locks.is_empty() {
                state.files.remove(&ino);
            }
        }
    }

    /// Extends `session` by a time-to-live from `now`. Answers whether it was still known
    /// (false: it expired or the master restarted, and its locks are gone).
    pub fn renew(&self, session: &str, now: Instant) -> bool {
        let mut state = self.state(None, now);
        let known = state.sessions.contains_key(session);
        state.sessions.insert(session.to_string(), now + self.ttl);
        known
    }

    /// Ends `session` and drops its locks (the mount is unmounted).
    pub fn end_session(&self, session: &str, now: Instant) {
        let mut state = self.state(None, now);
        state.sessions.remove(session);
        drop_sessions(&mut state, |s| s == session);
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

/// Drops sessions that expired by `now`, with their locks.
fn expire(state: &mut State, now: Instant) {
    let expired: Vec<String> = state
        .sessions
        .iter()
        .filter(|(_, expires)| **expires <= now)
        .map(|(session, _)| session.clone())
        .collect();
    if expired.is_empty() {
        return;
    }
    for session in &expired {
        tracing::info!(%session, "lock session expired; its locks are released");
        state.sessions.remove(session);
    }
    drop_sessions(state, |s| expired.iter().any(|e| e == s));
}

fn drop_sessions(state: &mut State, gone: impl Fn(&str) -> bool) {
    state.files.retain(|_, locks| {
        locks.retain(|held| !gone(&held.owner.session));
        !locks.is_empty()
    });
}
