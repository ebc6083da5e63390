//! The `Locks` service: advisory locks a mount holds on behalf of its processes (see
//! `dfs_fuse::locks`), kept alive by a session.

use dfs_proto::FsError;
use dfs_proto::pb;

use super::{Locks, MasterClient};

impl MasterClient {
    /// Takes, changes or drops a lock; the reply says whether another owner's lock is in
    /// the way.
    pub async fn set_lock(&self, req: pb::LockRequest) -> Result<pb::LockReply, FsError> {
        self.call("Locks/SetLock", req, |mut s: Locks, r| async move {
            s.set_lock(r).await
        })
        .await
    }

    /// Whether a lock could be taken, and if not, which lock is in the way.
    pub async fn test_lock(&self, req: pb::LockRequest) -> Result<pb::LockReply, FsError> {
        self.call("Locks/TestLock", req, |mut s: Locks, r| async move {
            s.test_lock(r).await
        })
        .await
    }

    /// Drops every lock of `owner` in `session` on `ino`.
    pub async fn release_lock_owner(
        &self,
        session: &str,
        ino: u64,
        owner: u64,
    ) -> Result<(), FsError> {
        let req = pb::LockOwnerRequest {
            session: session.to_string(),
            ino,
            owner,
        };
        self.call(
            "Locks/ReleaseLockOwner",
            req,
            |mut s: Locks, r| async move { s.release_lock_owner(r).await },
        )
        .await
        .map(drop)
    }

    /// Keeps `session` (and its locks) alive for another time-to-live.
    pub async fn renew_lock_session(&self, session: &str) -> Result<pb::LockSessionReply, FsError> {
        let req = pb::LockSessionRequest {
            session: session.to_string(),
        };
        self.call(
            "Locks/RenewLockSession",
            req,
            |mut s: Locks, r| async move { s.renew_lock_session(r).await },
        )
        .await
    }

    /// Ends `session`, dropping its locks.
    pub async fn end_lock_session(&self, session: &str) -> Result<(), FsError> {
        let req = pb::LockSessionRequest {
            session: session.to_string(),
        };
        self.call("Locks/EndLockSession", req, |mut s: Locks, r| async move {
            s.end_lock_session(r).await
        })
        .await
        .map(drop)
    }
}
