//! openraft's messages between masters, over the `Raft` gRPC service of each member.
//!
//! Every request and reply is openraft's own type, postcard-encoded into one `bytes` field
//! (see `proto/raft.proto`). Each peer gets two connections: one for appends (which are also
//! the leader's heartbeats) and votes, one for snapshot pieces, so a large snapshot in flight
//! never holds up the heartbeats that keep a leader in office.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dfs_proto::pb::RaftMessage;
use dfs_proto::pb::raft_client::RaftClient;
use dfs_proto::tls::Tls;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{AnyError, BasicNode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::Channel;

use crate::raft::{NodeId, TypeConfig};

/// How long a connection attempt to a peer may take: short, so a dead peer costs the leader
/// little; openraft backs off from an unreachable peer on its own.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// When each other member last answered this one (for `dfs masters`). Cheap to clone.
#[derive(Clone, Default)]
pub struct Contacts(Arc<Mutex<HashMap<NodeId, Instant>>>);

impl Contacts {
    /// How long ago member `id` last answered, if it ever did.
    pub fn since(&self, id: NodeId) -> Option<Duration> {
        let contacts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        contacts.get(&id).map(Instant::elapsed)
    }

    fn heard_from(&self, id: NodeId) {
        let mut contacts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        contacts.insert(id, Instant::now());
    }
}

/// Makes the connections to the other members.
pub struct Network {
    contacts: Contacts,
    tls: Option<Tls>,
}

impl Network {
    /// Connections that record when each member answers in `contacts`, over mutual TLS with
    /// `tls`.
    pub fn new(contacts: Contacts, tls: Option<Tls>) -> Network {
        Network { contacts, tls }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Peer {
        Peer {
            target,
            messages: channel(&node.addr, self.tls.as_ref()),
            snapshots: channel(&node.addr, self.tls.as_ref()),
            contacts: self.contacts.clone(),
        }
    }
}

/// A lazily connected channel to `addr`; `None` if the address is unusable (every call to the
/// peer then fails as unreachable, and the log says why).
fn channel(addr: &str, tls: Option<&Tls>) -> Option<Channel> {
    match dfs_proto::tls::endpoint(addr, tls) {
        Ok(endpoint) => Some(
            endpoint
                .connect_timeout(CONNECT_TIMEOUT)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(5))
                .connect_lazy(),
        ),
        Err(err) => {
            tracing::error!(%addr, error = %err, "unusable master address");
            None
        }
    }
}

/// The connections to one other member.
pub struct Peer {
    target: NodeId,
    messages: Option<Channel>,
    snapshots: Option<Channel>,
    contacts: Contacts,
}

/// The error a call to a peer failed with, before openraft's typing.
enum CallError<E> {
    /// The peer could not be reached, or the exchange failed on the way.
    Unreachable(AnyError),
    /// A reply we could not decode or a request we could not encode.
    Network(AnyError),
    /// The peer's Raft answered with an error.
    Remote(E),
}

impl Peer {
    /// Sends `request` with `rpc` on `channel`, waiting at most `timeout`, and decodes the
    /// peer's `Result`.
    async fn call<Req, Resp, E, F, Fut>(
        channel: &Option<Channel>,
        request: &Req,
        timeout: Duration,
        rpc: F,
    ) -> Result<Resp, CallError<E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: DeserializeOwned,
        F: FnOnce(RaftClient<Channel>, tonic::Request<RaftMessage>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<RaftMessage>, tonic::Status>>,
    {
        let Some(channel) = channel else {
            return Err(CallError::Unreachable(AnyError::error("unusable address")));
        };
        let payload = postcard::to_allocvec(request)
            .map_err(|e| CallError::Network(AnyError::error(e.to_string())))?;
        let mut request = tonic::Request::new(RaftMessage { payload });
        request.set_timeout(timeout);
        let client = RaftClient::new(channel.clone())
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        let reply = rpc(client, request)
            .await
            .map_err(|status| CallError::Unreachable(AnyError::new(&status)))?;
        let result: Result<Resp, E> = postcard::from_bytes(&reply.into_inner().payload)
            .map_err(|e| CallError::Network(AnyError::error(e.to_string())))?;
        result.map_err(CallError::Remote)
    }

    /// openraft's error for a failed call.
    fn rpc_error<E: std::error::Error>(&self, err: CallError<E>) -> RPCError<NodeId, BasicNode, E> {
        match err {
            CallError::Unreachable(e) => RPCError::Unreachable(Unreachable::from(e)),
            CallError::Network(e) => RPCError::Network(NetworkError::from(e)),
            CallError::Remote(e) => RPCError::RemoteError(RemoteError::new(self.target, e)),
        }
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let call = |mut c: RaftClient<Channel>, r| async move { c.append_entries(r).await };
        let reply = Peer::call(&self.messages, &rpc, option.hard_ttl(), call).await;
        if reply.is_ok() {
            self.contacts.heard_from(self.target);
        }
        reply.map_err(|e| self.rpc_error(e))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let call = |mut c: RaftClient<Channel>, r| async move { c.install_snapshot(r).await };
        Peer::call(&self.snapshots, &rpc, option.hard_ttl(), call)
            .await
            .map_err(|e| self.rpc_error(e))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let call = |mut c: RaftClient<Channel>, r| async move { c.vote(r).await };
        Peer::call(&self.messages, &rpc, option.hard_ttl(), call)
            .await
            .map_err(|e| self.rpc_error(e))
    }
}
