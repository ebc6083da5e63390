//! What a cluster says about itself: the `dfs` admin CLI, the master's chunk maps over gRPC, and
//! the replica files on the chunkservers' disks.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use crate::Cluster;
use crate::process::binary;

impl Cluster {
    /// `host:port` of chunkserver `i` (as `dfs status` lists it).
    pub fn chunkserver_addr(&self, i: usize) -> String {
        self.chunkservers[i]
            .as_ref()
            .expect("chunkserver was started")
            .addr
            .clone()
    }

    /// Runs the `dfs` admin CLI against this cluster's master; returns its standard output.
    /// Panics if it fails (exit code 2); `fsck`'s exit code 1 (damage) is not a failure.
    pub fn dfs(&self, args: &[&str]) -> String {
        let out = Command::new(binary("dfs"))
            .args(self.client_tls_args())
            .arg("--master")
            .arg(self.master_addr())
            .args(args)
            .output()
            .expect("run dfs");
        assert!(
            out.status.code().is_some_and(|c| c < 2),
            "dfs {args:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The replica data files (`*.data`) on chunkserver `i`'s disk.
    pub fn replica_files(&self, i: usize) -> Vec<PathBuf> {
        let mut files = Vec::new();
        let chunks = self.chunkserver_data_dir(i).join("chunks");
        for dir in fs::read_dir(chunks).into_iter().flatten().flatten() {
            for entry in fs::read_dir(dir.path()).into_iter().flatten().flatten() {
                if entry.path().extension().is_some_and(|e| e == "data") {
                    files.push(entry.path());
                }
            }
        }
        files.sort();
        files
    }
    /// Bytes of replica data on chunkserver `i`'s disk.
    pub fn replica_bytes(&self, i: usize) -> u64 {
        self.replica_files(i)
            .iter()
            .filter_map(|p| fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }
}

/// Whether `dfs status` reports no chunk under-, over-replicated or missing; false while the
/// leader is still `checking` (it has not yet checked every chunk since it took office).
pub fn status_healthy(status: &str) -> bool {
    ["under-replicated", "missing", "over-replicated"]
        .iter()
        .all(|key| {
            let checking = status.lines().any(|l| l == format!("{key}: checking"));
            !checking && report_value(status, key) == 0
        })
}

/// The number after `key: ` on a line of `dfs` output (e.g. `under-replicated: 0`).
pub fn report_value(report: &str, key: &str) -> u64 {
    let prefix = format!("{key}: ");
    report
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key:?} in:\n{report}"))
}

impl Cluster {
    /// The master's chunk map of inode `ino` (the kernel's inode number is the master's),
    /// replicas in the order readers try them.
    pub fn chunks_of(&self, ino: u64) -> Vec<dfs_proto::pb::ChunkInfo> {
        let leader = if self.masters.len() > 1 {
            self.leader()
        } else {
            0
        };
        let uri = format!("http://{}", self.master_addr_at(leader));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        runtime.block_on(async move {
            let mut master = dfs_proto::pb::files_client::FilesClient::connect(uri)
                .await
                .expect("connect to master");
            let req = dfs_proto::pb::GetChunksRequest {
                ino,
                first_index: 0,
                count: 0,
            };
            master
                .get_chunks(req)
                .await
                .expect("GetChunks")
                .into_inner()
                .chunks
        })
    }

    /// What master `i` says of its group (`Admin.Masters`), or `None` if it does not answer
    /// within a second.
    pub fn masters_status(&self, i: usize) -> Option<dfs_proto::pb::MastersReply> {
        self.ask_master(i, |channel| async move {
            let mut admin = dfs_proto::pb::admin_client::AdminClient::new(channel);
            admin.masters(dfs_proto::pb::Empty {}).await
        })
    }

    /// Whether master `i` answers a metadata read (only a leader in office does).
    pub fn serves(&self, i: usize) -> bool {
        self.ask_master(i, |channel| async move {
            let mut namespace = dfs_proto::pb::namespace_client::NamespaceClient::new(channel);
            namespace.get_cluster_config(dfs_proto::pb::Empty {}).await
        })
        .is_some()
    }

    /// The answer of master `i` to `call`, or `None` if it fails or takes over a second.
    fn ask_master<T, F, Fut>(&self, i: usize, call: F) -> Option<T>
    where
        F: FnOnce(tonic::transport::Channel) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let addr = self.master_addr_at(i);
        let tls = self.options.client_tls.as_ref().map(|tls| {
            tls.load()
                .expect("usable client certificates")
                .expect("TLS")
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        runtime.block_on(async move {
            let ask = async {
                let endpoint = dfs_proto::tls::endpoint(&addr, tls.as_ref()).ok()?;
                call(endpoint.connect().await.ok()?).await.ok()
            };
            let reply = tokio::time::timeout(std::time::Duration::from_secs(1), ask).await;
            reply.ok().flatten().map(tonic::Response::into_inner)
        })
    }

    /// Whether master `i` follows the leader and has applied everything the leader has.
    pub fn caught_up(&self, i: usize) -> bool {
        let leader = self.leader();
        let (Some(lead), Some(member)) = (self.masters_status(leader), self.masters_status(i))
        else {
            return false;
        };
        applied_index(&member) >= applied_index(&lead) && member.leader_id == lead.answered_by
    }

    /// The index of the chunkserver listening at `addr`.
    pub fn chunkserver_index(&self, addr: &str) -> usize {
        self.chunkservers
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.addr == addr))
            .expect("a chunkserver with that address")
    }

    /// The data file of the replica of `chunk_id` on chunkserver `i`, if it holds one.
    pub fn replica_data_file(&self, i: usize, chunk_id: u64) -> Option<PathBuf> {
        let chunks = self.chunkserver_data_dir(i).join("chunks");
        let name = format!("{chunk_id:016x}.data");
        fs::read_dir(chunks)
            .ok()?
            .flatten()
            .map(|dir| dir.path().join(&name))
            .find(|path| path.exists())
    }
}

/// The log index a master has applied, as it reports itself in `reply`.
fn applied_index(reply: &dfs_proto::pb::MastersReply) -> u64 {
    let me = reply.answered_by;
    reply
        .members
        .iter()
        .find(|m| m.id == me)
        .map_or(0, |m| m.applied_index)
}
