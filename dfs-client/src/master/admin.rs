//! The `Admin` service: what the `dfs` command asks for operators — chunkservers, replication
//! health, decommissioning, backups, and the group of masters itself.

use dfs_proto::FsError;
use dfs_proto::pb;

use super::{Admin, MasterClient};

impl MasterClient {
    /// Every chunkserver with its state and capacity, and the cluster's replication health.
    pub async fn cluster_status(&self) -> Result<pb::ClusterStatusReply, FsError> {
        self.call(
            "Admin/ClusterStatus",
            pb::Empty {},
            |mut s: Admin, r| async move { s.cluster_status(r).await },
        )
        .await
    }

    /// A file's chunks, versions and replicas, by path from the root.
    pub async fn file_info(&self, path: &str) -> Result<pb::FileInfoReply, FsError> {
        let req = pb::PathRequest {
            path: path.to_string(),
        };
        self.call("Admin/FileInfo", req, |mut s: Admin, r| async move {
            s.file_info(r).await
        })
        .await
    }

    /// The replication health of the files directly in directory `path` (or of file
    /// `path`), and the subdirectories to check next.
    pub async fn fsck(&self, path: &str) -> Result<pb::FsckReply, FsError> {
        let req = pb::PathRequest {
            path: path.to_string(),
        };
        self.call("Admin/Fsck", req, |mut s: Admin, r| async move {
            s.fsck(r).await
        })
        .await
    }

    /// Starts draining chunkserver `server` (its id or address).
    pub async fn decommission(&self, server: &str) -> Result<pb::ServerStatus, FsError> {
        let req = pb::DecommissionRequest {
            server: server.to_string(),
        };
        self.call("Admin/Decommission", req, |mut s: Admin, r| async move {
            s.decommission(r).await
        })
        .await
    }

    /// Has the master write a consistent copy of its metadata to `dest`, a directory on the
    /// master's machine that does not exist yet.
    pub async fn backup(&self, dest: &str) -> Result<pb::BackupReply, FsError> {
        let req = pb::BackupRequest {
            dest: dest.to_string(),
        };
        self.call("Admin/Backup", req, |mut s: Admin, r| async move {
            s.backup(r).await
        })
        .await
    }

    /// The group of masters: every member, its role and how far its log is, as the member
    /// that answers sees it (any member answers, leader or not).
    pub async fn masters(&self) -> Result<pb::MastersReply, FsError> {
        self.call(
            "Admin/Masters",
            pb::Empty {},
            |mut s: Admin, r| async move { s.masters(r).await },
        )
        .await
    }

    /// Adds the master at `addr` to the group, as node `id` (0: the leader picks one).
    pub async fn add_master(&self, addr: &str, id: u64) -> Result<pb::MastersReply, FsError> {
        let req = pb::AddMasterRequest {
            addr: addr.to_string(),
            id,
        };
        self.call("Admin/AddMaster", req, |mut s: Admin, r| async move {
            s.add_master(r).await
        })
        .await
    }

    /// Removes master `id` from the group.
    pub async fn remove_master(&self, id: u64) -> Result<pb::MastersReply, FsError> {
        let req = pb::MasterIdRequest { id };
        self.call("Admin/RemoveMaster", req, |mut s: Admin, r| async move {
            s.remove_master(r).await
        })
        .await
    }

    /// Hands the leadership to master `id`, a voter.
    pub async fn transfer_leader(&self, id: u64) -> Result<pb::MastersReply, FsError> {
        let req = pb::MasterIdRequest { id };
        self.call("Admin/TransferLeader", req, |mut s: Admin, r| async move {
            s.transfer_leader(r).await
        })
        .await
    }
}
