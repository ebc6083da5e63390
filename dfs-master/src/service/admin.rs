//! The `Admin` service: what the `dfs` command asks for operators. Each call may walk the
//! whole chunk map or a directory, so it runs on a blocking thread.

use std::time::Instant;

use dfs_proto::pb::{self, admin_server};
use tonic::{Request, Response, Status};

use crate::admin;
use crate::convert;
use crate::service::{Calls, writable};

/// The `Admin` service of a master.
pub struct AdminService {
    calls: Calls,
}

impl AdminService {
    /// Serves `calls`' master.
    pub fn new(calls: Calls) -> AdminService {
        AdminService { calls }
    }
}

#[tonic::async_trait]
impl admin_server::Admin for AdminService {
    async fn cluster_status(
        &self,
        _request: Request<pb::Empty>,
    ) -> Result<Response<pb::ClusterStatusReply>, Status> {
        let now = Instant::now();
        self.calls
            .blocking(move |m| admin::cluster_status(m, now).map(convert::cluster_status))
            .await
    }

    async fn file_info(
        &self,
        request: Request<pb::PathRequest>,
    ) -> Result<Response<pb::FileInfoReply>, Status> {
        let req = request.into_inner();
        let now = Instant::now();
        self.calls
            .blocking(move |m| admin::file_info(m, &req.path, now).map(convert::file_info))
            .await
    }

    async fn fsck(
        &self,
        request: Request<pb::PathRequest>,
    ) -> Result<Response<pb::FsckReply>, Status> {
        let req = request.into_inner();
        let now = Instant::now();
        self.calls
            .blocking(move |m| admin::fsck(m, &req.path, now).map(convert::fsck_reply))
            .await
    }

    async fn decommission(
        &self,
        request: Request<pb::DecommissionRequest>,
    ) -> Result<Response<pb::ServerStatus>, Status> {
        writable(&request)?;
        let req = request.into_inner();
        let now = Instant::now();
        self.calls
            .blocking(move |m| admin::decommission(m, &req.server, now).map(convert::server_status))
            .await
    }

    async fn backup(
        &self,
        request: Request<pb::BackupRequest>,
    ) -> Result<Response<pb::BackupReply>, Status> {
        writable(&request)?;
        let dest = std::path::PathBuf::from(request.into_inner().dest);
        self.calls
            .blocking(move |m| {
                let bytes = m.backup(&dest)?;
                Ok(pb::BackupReply {
                    dest: dest.display().to_string(),
                    bytes,
                })
            })
            .await
    }

    async fn masters(
        &self,
        _request: Request<pb::Empty>,
    ) -> Result<Response<pb::MastersReply>, Status> {
        Ok(Response::new(self.calls.node().status()))
    }

    async fn add_master(
        &self,
        request: Request<pb::AddMasterRequest>,
    ) -> Result<Response<pb::MastersReply>, Status> {
        writable(&request)?;
        let req = request.into_inner();
        let node = self.calls.node();
        node.leader()?;
        let id = match req.id {
            0 => node_id_of(&req.addr, node.tls()).await?,
            id => id,
        };
        node.add_member(id, req.addr).await?;
        Ok(Response::new(node.status()))
    }

    async fn remove_master(
        &self,
        request: Request<pb::MasterIdRequest>,
    ) -> Result<Response<pb::MastersReply>, Status> {
        writable(&request)?;
        let node = self.calls.node();
        node.leader()?;
        node.remove_member(request.into_inner().id).await?;
        Ok(Response::new(node.status()))
    }

    async fn transfer_leader(
        &self,
        request: Request<pb::MasterIdRequest>,
    ) -> Result<Response<pb::MastersReply>, Status> {
        writable(&request)?;
        let node = self.calls.node();
        node.leader()?;
        node.transfer_leadership(request.into_inner().id).await?;
        Ok(Response::new(node.status()))
    }
}

/// The node id of the master at `addr`, as it answers `Masters` itself.
async fn node_id_of(addr: &str, tls: Option<&dfs_proto::tls::Tls>) -> Result<u64, Status> {
    let unreachable = |e: &dyn std::fmt::Display| {
        Status::unavailable(format!("cannot reach the master at {addr}: {e}"))
    };
    let endpoint = dfs_proto::tls::endpoint(addr, tls)
        .map_err(|e| Status::invalid_argument(format!("bad master address {addr:?}: {e}")))?
        .connect_timeout(std::time::Duration::from_secs(2))
        .timeout(std::time::Duration::from_secs(5));
    let channel = endpoint.connect().await.map_err(|e| unreachable(&e))?;
    let reply = pb::admin_client::AdminClient::new(channel)
        .masters(pb::Empty {})
        .await
        .map_err(|e| unreachable(&e))?;
    Ok(reply.into_inner().answered_by)
}
