//! [`MountLocks`]: advisory locks (`fcntl`, `flock`) held through the master, so they are
//! honoured across mounts (see `dfs_master::locks` for the rules and the table).
//!
//! The mount negotiates `FUSE_POSIX_LOCKS` and `FUSE_FLOCK_LOCKS`, so the kernel stops keeping
//! locks itself and sends every `fcntl` lock (classic and OFD) and every `flock` here as a
//! `getlk`/`setlk` on a byte range. fuser 0.18 does not pass the `FUSE_LK_FLOCK` flag on, so a
//! `flock` is a lock on the whole file owned by its open file description, exactly as Linux NFS
//! emulates it; the difference from a local filesystem is that `flock` and `fcntl` locks of one
//! file conflict.
//!
//! Who owns a lock, and when it goes:
//! * the owner is the kernel's FUSE lock owner (a process's file table for classic locks, the
//!   open file description for OFD locks and `flock`), qualified on the master by this
//!   mount's session id;
//! * a `close` of any descriptor of the file sends `flush` with the closing process's owner:
//!   its classic locks on the file go (POSIX);
//! * the last close of an open file description sends `release` of its handle: the owners that
//!   locked through that handle (its OFD and `flock` locks) go;
//! * a mount that dies stops renewing its session, and the master drops its locks after the
//!   session time-to-live (the lease TTL); an unmount ends the session at once.
//!
//! The mount remembers which owners locked which file through which handle, so a `close`
//! without locks (nearly all of them) costs no round trip.
//!
//! A blocking `F_SETLKW` or `flock` is a task that asks again with a growing pause (10 ms up to
//! 200 ms); no FUSE thread waits. fuser 0.18 answers `FUSE_INTERRUPT` itself with ENOSYS, after
//! which the kernel sends no more interrupts and lets only fatal signals end the wait, and even
//! those only once we answer. So between attempts the waiting task looks at the caller's
//! pending signals in `/proc/<tid>/status`: a signal that is caught or fatal ends the wait with
//! EINTR (the kernel restarts the call if the handler asked for `SA_RESTART`). There is no
//! deadlock detection (EDEADLK): two owners waiting for each other wait until one is
//! interrupted.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use dfs_proto::FsError;
use dfs_proto::pb;

use dfs_client::MasterClient;

/// First pause of a blocked lock request before asking again.
const FIRST_RETRY: Duration = Duration::from_millis(10);

/// Longest pause between two attempts of a blocked lock request.
const MAX_RETRY: Duration = Duration::from_millis(200);

/// How often the session is renewed per time-to-live.
const RENEWALS_PER_TTL: u32 = 3;

/// Renewal interval until the master has told its time-to-live.
const DEFAULT_RENEW_INTERVAL: Duration = Duration::from_secs(1);

/// A lock request as the kernel sends it: bytes `[start, end]` (inclusive) of a file, for one
/// lock owner, by one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockRange {
    /// The file.
    pub ino: u64,
    /// The open handle the request came through.
    pub fh: u64,
    /// The kernel's lock owner.
    pub owner: u64,
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive; `i64::MAX` for "to end of file").
    pub end: u64,
    /// `F_RDLCK`, `F_WRLCK` or `F_UNLCK`.
    pub typ: i32,
    /// The process the lock is for (0 for unlocks).
    pub pid: u32,
}

impl LockRange {
    /// The request for bytes `start..=end` as the kernel passes it.
    pub fn new(
        ino: u64,
        fh: u64,
        owner: u64,
        (start, end): (u64, u64),
        typ: i32,
        pid: u32,
    ) -> Self {
        LockRange {
            ino,
            fh,
            owner,
            start,
            end,
            typ,
            pid,
        }
    }
}

/// A lock another owner holds, as `F_GETLK` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conflict {
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive).
    pub end: u64,
    /// `F_RDLCK` or `F_WRLCK`.
    pub typ: i32,
    /// The holding process (in its own machine's pid namespace).
    pub pid: u32,
}

/// The advisory locks of one mount.
#[derive(Debug)]
pub struct MountLocks {
    master: MasterClient,
    session: String,
    // A std mutex: held only to read or change the table, never across an `.await`.
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// ino → lock owner → handles it locked through. An owner is listed from its first lock
    /// on the file until it closes the file (it may have unlocked everything meanwhile).
    owners: HashMap<u64, HashMap<u64, HashSet<u64>>>,
    renew_interval: Option<Duration>,
    renewer_running: bool,
}

fn wire_kind(typ: i32) -> Result<pb::LockKind, FsError> {
    match typ {
        libc::F_RDLCK => Ok(pb::LockKind::Read),
        libc::F_WRLCK => Ok(pb::LockKind::Write),
        libc::F_UNLCK => Ok(pb::LockKind::Unlock),
        other => Err(FsError::Invalid(format!("lock type {other}"))),
    }
}

fn conflict_of(held: pb::HeldLock) -> Conflict {
    let typ = match held.kind() {
        pb::LockKind::Read => libc::F_RDLCK,
        _ => libc::F_WRLCK,
    };
    Conflict {
        start: held.start,
        end: held.end,
        typ,
        pid: held.pid,
    }
}

impl MountLocks {
    /// The locks of a mount that names itself `session` to the master.
    pub fn new(master: MasterClient, session: String) -> Arc<MountLocks> {
        Arc::new(MountLocks {
            master,
            session,
            state: Mutex::default(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn request(&self, range: &LockRange, kind: pb::LockKind) -> pb::LockRequest {
        pb::LockRequest {
            session: self.session.clone(),
            ino: range.ino,
            owner: range.owner,
            start: range.start,
            end: range.end,
            kind: kind.into(),
            pid: range.pid,
        }
    }

    /// `F_GETLK`: the lock of another owner in the way of `range`, if any.
    pub async fn test(&self, range: &LockRange) -> Result<Option<Conflict>, FsError> {
        let kind = wire_kind(range.typ)?;
        let reply = self.master.test_lock(self.request(range, kind)).await?;
        Ok(reply.conflict.filter(|_| !reply.granted).map(conflict_of))
    }

    /// `F_SETLK` (`caller` None: EAGAIN if another owner is in the way) or `F_SETLKW`
    /// (`caller` = the waiting thread's id: asks again until granted, EINTR once the caller
    /// has a signal to handle).
    pub async fn set(
        self: &Arc<Self>,
        range: &LockRange,
        caller: Option<u32>,
    ) -> Result<(), FsError> {
        let kind = wire_kind(range.typ)?;
        if kind != pb::LockKind::Unlock {
            // Listed before asking, so a close racing the grant still releases it.
            self.note_owner(range);
        }
        let mut pause = FIRST_RETRY;
        loop {
            let reply = self.master.set_lock(self.request(range, kind)).await?;
            if reply.granted {
                if kind != pb::LockKind::Unlock {
                    self.keep_session_alive(Duration::from_millis(reply.session_ttl_ms.max(1)));
                }
                return Ok(());
            }
            let Some(tid) = caller else {
                return Err(FsError::WouldBlock);
            };
            if signal_pending(tid) {
                return Err(FsError::Interrupted);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_RETRY);
        }
    }

    fn note_owner(&self, range: &LockRange) {
        let mut state = self.state();
        let owners = state.owners.entry(range.ino).or_default();
        owners.entry(range.owner).or_default().insert(range.fh);
    }

    /// Whether any owner may hold a lock on `ino` through this mount (if not, `flush` and
    /// `release` of the file have no lock to drop).
    pub fn may_hold(&self, ino: u64) -> bool {
        self.state().owners.contains_key(&ino)
    }

    /// A descriptor of `ino` was closed by a process with lock owner `owner`: its classic
    /// locks on the file go (a no-op without a round trip if it never locked the file).
    pub async fn flush(&self, ino: u64, owner: u64) {
        let listed = {
            let mut state = self.state();
            let Some(owners) = state.owners.get_mut(&ino) else {
                return;
            };
            let listed = owners.remove(&owner).is_some();
            if owners.is_empty() {
                state.owners.remove(&ino);
            }
            listed
        };
        if listed {
            self.release_owner(ino, owner).await;
        }
    }

    /// The last descriptor of handle `fh` of `ino` was closed: the owners that locked through
    /// it (its `flock` and OFD locks) release their locks on the file.
    pub async fn release(&self, ino: u64, fh: u64) {
        let gone: Vec<u64> = {
            let mut state = self.state();
            let Some(owners) = state.owners.get_mut(&ino) else {
                return;
            };
            let gone: Vec<u64> = owners
                .iter()
                .filter(|(_, handles)| handles.contains(&fh))
                .map(|(owner, _)| *owner)
                .collect();
            for owner in &gone {
                owners.remove(owner);
            }
            if owners.is_empty() {
                state.owners.remove(&ino);
            }
            gone
        };
        for owner in gone {
            self.release_owner(ino, owner).await;
        }
    }

    async fn release_owner(&self, ino: u64, owner: u64) {
        if let Err(err) = self
            .master
            .release_lock_owner(&self.session, ino, owner)
            .await
        {
            // The locks stay until this mount's session ends.
            tracing::warn!(ino, owner, error = %err, "releasing locks at close failed");
        }
    }

    /// Ends the session and with it every lock of this mount (unmount).
    pub async fn end_session(&self) {
        let had_locks = !std::mem::take(&mut self.state().owners).is_empty();
        if had_locks || self.state().renewer_running {
            if let Err(err) = self.master.end_lock_session(&self.session).await {
                tracing::warn!(error = %err, "ending the lock session failed");
            }
        }
    }

    /// Starts renewing the session (if not running yet) every third of `ttl`.
    fn keep_session_alive(self: &Arc<Self>, ttl: Duration) {
        let start = {
            let mut state = self.state();
            state.renew_interval = Some(ttl / RENEWALS_PER_TTL);
            !std::mem::replace(&mut state.renewer_running, true)
        };
        if start {
            tokio::spawn(renew_forever(Arc::downgrade(self)));
        }
    }
}

/// Renews the session while the mount has owners that may hold locks.
async fn renew_forever(locks: Weak<MountLocks>) {
    loop {
        let interval = match locks.upgrade() {
            Some(locks) => locks.state().renew_interval,
            None => return,
        };
        tokio::time::sleep(interval.unwrap_or(DEFAULT_RENEW_INTERVAL)).await;
        let Some(locks) = locks.upgrade() else {
            return;
        };
        {
            let mut state = locks.state();
            if state.owners.is_empty() {
                state.renewer_running = false;
                return;
            }
        }
        match locks.master.renew_lock_session(&locks.session).await {
            Ok(reply) if reply.known => {
                let ttl = Duration::from_millis(reply.session_ttl_ms.max(1));
                locks.state().renew_interval = Some(ttl / RENEWALS_PER_TTL);
            }
            Ok(_) => tracing::error!(
                session = %locks.session,
                "the master forgot this mount's lock session (this mount was cut off for longer \
                 than the time-to-live, or the master's machine crashed): the locks held here \
                 are lost"
            ),
            Err(err) => tracing::warn!(error = %err, "lock session renewal failed"),
        }
    }
}

/// Whether thread `tid` has a signal pending that would interrupt a system call: one it does
/// not block or ignore, and that it catches or that would kill it. False when it cannot be
/// told (no such thread visible: e.g. the caller is in another pid namespace, pid 0).
pub fn signal_pending(tid: u32) -> bool {
    if tid == 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{tid}/status")) {
        Ok(status) => interrupting_signals(&status) != 0,
        // The thread is gone: nobody waits for the answer any more.
        Err(_) => true,
    }
}

/// The set of pending signals (bit `n - 1` for signal `n`) that interrupt a system call, from
/// the text of `/proc/<tid>/status`.
pub fn interrupting_signals(status: &str) -> u64 {
    let mask = |key: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
            .unwrap_or(0)
    };
    let bit = |sig: i32| 1u64 << (sig - 1);
    // Signals whose default action neither kills nor is caught: ignoring or stopping.
    let harmless_by_default = [
        libc::SIGCHLD,
        libc::SIGCONT,
        libc::SIGURG,
        libc::SIGWINCH,
        libc::SIGSTOP,
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGTTOU,
    ]
    .into_iter()
    .fold(0, |set, sig| set | bit(sig));
    let pending = mask("SigPnd:") | mask("ShdPnd:");
    let caught = mask("SigCgt:");
    let live = pending & !mask("SigBlk:") & !mask("SigIgn:");
    live & (caught | !harmless_by_default)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(pending: u64, shared: u64, blocked: u64, ignored: u64, caught: u64) -> String {
        format!(
            "Name:\tx\nSigQ:\t0/1\nSigPnd:\t{pending:016x}\nShdPnd:\t{shared:016x}\n\
             SigBlk:\t{blocked:016x}\nSigIgn:\t{ignored:016x}\nSigCgt:\t{caught:016x}\n"
        )
    }

    const fn bit(sig: i32) -> u64 {
        1 << (sig - 1)
    }

    #[test]
    fn fatal_and_caught_signals_interrupt_blocked_and_harmless_ones_do_not() {
        // SIGKILL pending on the thread: interrupts.
        assert_ne!(interrupting_signals(&status(bit(9), 0, 0, 0, 0)), 0);
        // SIGINT to the process, no handler: fatal, interrupts.
        assert_ne!(interrupting_signals(&status(0, bit(2), 0, 0, 0)), 0);
        // SIGALRM caught by a handler: interrupts.
        assert_ne!(interrupting_signals(&status(0, bit(14), 0, 0, bit(14))), 0);
        // Blocked or ignored: no.
        assert_eq!(interrupting_signals(&status(bit(14), 0, bit(14), 0, 0)), 0);
        assert_eq!(interrupting_signals(&status(0, bit(2), 0, bit(2), 0)), 0);
        // SIGCHLD without a handler is ignored by default; with one, it interrupts.
        assert_eq!(interrupting_signals(&status(0, bit(17), 0, 0, 0)), 0);
        assert_ne!(interrupting_signals(&status(0, bit(17), 0, 0, bit(17))), 0);
        // Nothing pending.
        assert_eq!(interrupting_signals(&status(0, 0, 0, 0, u64::MAX)), 0);
    }

    #[test]
    fn lock_types_map_to_the_wire_and_back() {
        assert_eq!(wire_kind(libc::F_RDLCK).unwrap(), pb::LockKind::Read);
        assert_eq!(wire_kind(libc::F_WRLCK).unwrap(), pb::LockKind::Write);
        assert_eq!(wire_kind(libc::F_UNLCK).unwrap(), pb::LockKind::Unlock);
        assert!(wire_kind(77).is_err());
        let held = pb::HeldLock {
            start: 1,
            end: 2,
            kind: pb::LockKind::Read.into(),
            pid: 3,
        };
        assert_eq!(conflict_of(held).typ, libc::F_RDLCK);
    }
}
