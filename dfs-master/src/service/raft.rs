//! The `Raft` service: the other masters' appends, votes and snapshot pieces, handed to this
//! member's openraft and answered with its result, both postcard-encoded (see
//! [`crate::raft::network`] for the sending side).

use dfs_proto::pb::{self, RaftMessage, raft_server};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::{Request, Response, Status};

use crate::raft::Raft;

/// The `Raft` service of a master.
pub struct RaftService {
    raft: Raft,
}

impl RaftService {
    /// Serves `raft`.
    pub fn new(raft: Raft) -> RaftService {
        RaftService { raft }
    }
}

/// Decodes a request's openraft message.
fn decode<T: DeserializeOwned>(request: Request<RaftMessage>) -> Result<T, Status> {
    postcard::from_bytes(&request.into_inner().payload)
        .map_err(|e| Status::invalid_argument(format!("undecodable Raft message: {e}")))
}

/// Encodes openraft's answer, error included: the sender needs to know which it was.
fn encode<T: Serialize>(result: &T) -> Result<Response<RaftMessage>, Status> {
    let payload = postcard::to_allocvec(result)
        .map_err(|e| Status::internal(format!("unencodable Raft message: {e}")))?;
    Ok(Response::new(RaftMessage { payload }))
}

#[tonic::async_trait]
impl raft_server::Raft for RaftService {
    async fn append_entries(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let result = self.raft.append_entries(decode(request)?).await;
        encode(&result)
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let result = self.raft.vote(decode(request)?).await;
        encode(&result)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let result = self.raft.install_snapshot(decode(request)?).await;
        encode(&result)
    }

    async fn start_election(
        &self,
        request: Request<pb::StartElectionRequest>,
    ) -> Result<Response<pb::StartElectionReply>, Status> {
        let delay = std::time::Duration::from_millis(request.into_inner().delay_ms.min(60_000));
        let raft = self.raft.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Err(err) = raft.trigger().elect().await {
                tracing::warn!(error = %err, "could not stand for election");
            }
        });
        Ok(Response::new(pb::StartElectionReply {}))
    }
}
