//! The `Locks` service: advisory locks (`fcntl`, `flock`) across mounts, by mount session.
//!
//! Every call is a mutation, even a test: any lock call renews its session and may expire
//! others, which waits for the writer lock.

use std::time::Instant;

use dfs_proto::pb::{self, locks_server};
use tonic::{Request, Response, Status};

use crate::convert;
use crate::locks::LockKind;
use crate::service::Calls;

/// The `Locks` service of a master.
pub struct LocksService {
    calls: Calls,
}

impl LocksService {
    /// Serves `calls`' master.
    pub fn new(calls: Calls) -> LocksService {
        LocksService { calls }
    }
}

#[tonic::async_trait]
impl locks_server::Locks for LocksService {
    async fn set_lock(
        &self,
        request: Request<pb::LockRequest>,
    ) -> Result<Response<pb::LockReply>, Status> {
        let req = request.into_inner();
        let (spec, kind) = (convert::lock_spec(&req), convert::lock_kind(req.kind()));
        let now = Instant::now();
        self.calls.write(move |m| {
            let locks = m.locks();
            let conflict = match kind {
                Some(kind) => locks.lock(&spec, kind, now)?,
                None => locks.unlock(&spec, now).map(|()| None)?,
            };
            Ok(convert::lock_reply(conflict, locks.ttl()))
        })
    }

    async fn test_lock(
        &self,
        request: Request<pb::LockRequest>,
    ) -> Result<Response<pb::LockReply>, Status> {
        let req = request.into_inner();
        let spec = convert::lock_spec(&req);
        // A test for an unlock is answered as one for a read lock.
        let kind = convert::lock_kind(req.kind()).unwrap_or(LockKind::Read);
        let now = Instant::now();
        self.calls.write(move |m| {
            let conflict = m.locks().test(&spec, kind, now)?;
            Ok(convert::lock_reply(conflict, m.locks().ttl()))
        })
    }

    async fn release_lock_owner(
        &self,
        request: Request<pb::LockOwnerRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let (ino, owner) = convert::lock_owner(request.into_inner());
        let now = Instant::now();
        self.calls
            .write(move |m| m.locks().release_owner(ino, &owner, now).map(convert::done))
    }

    async fn renew_lock_session(
        &self,
        request: Request<pb::LockSessionRequest>,
    ) -> Result<Response<pb::LockSessionReply>, Status> {
        let req = request.into_inner();
        let now = Instant::now();
        self.calls.write(move |m| {
            let known = m.locks().renew(&req.session, now);
            Ok(convert::lock_session_reply(known, m.locks().ttl()))
        })
    }

    async fn end_lock_session(
        &self,
        request: Request<pb::LockSessionRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let req = request.into_inner();
        let now = Instant::now();
        self.calls
            .write(move |m| m.locks().end_session(&req.session, now).map(convert::done))
    }
}
