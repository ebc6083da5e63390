//! The `Registry` service: what chunkservers ask the master. The cluster's settings before a
//! server opens its store, registration, and heartbeats (answered with deletions and copies).

use std::time::Instant;

use dfs_proto::pb::{self, registry_server};
use tonic::{Request, Response, Status};

use crate::convert;
use crate::service::Calls;

/// The `Registry` service of a master.
pub struct RegistryService {
    calls: Calls,
}

impl RegistryService {
    /// Serves `calls`' master.
    pub fn new(calls: Calls) -> RegistryService {
        RegistryService { calls }
    }
}

#[tonic::async_trait]
impl registry_server::Registry for RegistryService {
    async fn get_cluster_config(
        &self,
        _request: Request<pb::Empty>,
    ) -> Result<Response<pb::ClusterConfig>, Status> {
        self.calls
            .read(|m| Ok(convert::cluster_config(m.cluster_config())))
    }

    async fn register_chunkserver(
        &self,
        request: Request<pb::RegisterChunkserverRequest>,
    ) -> Result<Response<pb::RegisterChunkserverReply>, Status> {
        let req = request.into_inner();
        let now = Instant::now();
        self.calls.write(move |m| {
            let server_id = m.registry().register(&req, now)?;
            Ok(convert::registered(server_id, m.token_keys()))
        })
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatReply>, Status> {
        let req = request.into_inner();
        let now = Instant::now();
        // A full block report is reconciled against the whole chunk map: off the runtime.
        self.calls.blocking(move |m| m.heartbeat(&req, now)).await
    }
}
