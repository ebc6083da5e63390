//! `run` against fake masters in this process: the chunkserver registers before it writes
//! its address file, sends full block reports on schedule, deletes what the master names,
//! registers again when asked, stops on shutdown, and follows the leader a member that is not
//! the leader names.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dfs_chunkserver::{ChunkStore, Config, StoreOptions};
use dfs_proto::masters::not_leader;
use dfs_proto::pb::registry_server::{Registry, RegistryServer};
use dfs_proto::pb::*;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

const CHUNK: u64 = 1 << 20;
const BLOCK: u32 = 64 << 10;

/// What the fake master saw, and what it will answer next.
#[derive(Default)]
struct State {
    registrations: Vec<RegisterChunkserverRequest>,
    heartbeats: Vec<HeartbeatRequest>,
    /// Sent in the next heartbeat reply, once.
    delete_next: Vec<u64>,
    /// Answer the next heartbeat with `reregister`.
    reregister_next: bool,
    /// As a member that is not the leader: refuse calls, naming this leader.
    refuse: Refuse,
    /// Calls refused.
    refused: usize,
}

/// Which calls a fake master refuses as a member that is not the leader.
#[derive(Default)]
enum Refuse {
    /// None: it leads.
    #[default]
    Nothing,
    /// Every call, naming the leader.
    Everything(String),
    /// Heartbeats only (it lost the leadership after the server registered), naming the
    /// leader.
    Heartbeats(String),
}

/// A master serving only the `Registry` service: all a chunkserver calls.
#[derive(Clone, Default)]
struct FakeMaster(Arc<Mutex<State>>);

impl FakeMaster {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap()
    }

    /// Waits until `done` holds for the state, failing the test after 10 seconds.
    async fn wait_for(&self, what: &str, done: impl Fn(&State) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done(&self.state()) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The refusal of a call, if this master refuses it.
    fn refusal(&self, heartbeat: bool) -> Result<(), Status> {
        let mut state = self.state();
        let leader = match &state.refuse {
            Refuse::Everything(leader) => leader.clone(),
            Refuse::Heartbeats(leader) if heartbeat => leader.clone(),
            _ => return Ok(()),
        };
        state.refused += 1;
        Err(not_leader(Some(&leader)))
    }

    /// Serves this master on a loopback port; answers its address.
    async fn serve(&self) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(RegistryServer::new(self.clone()))
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        addr
    }
}

#[tonic::async_trait]
impl Registry for FakeMaster {
    async fn get_cluster_config(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<ClusterConfig>, Status> {
        self.refusal(false)?;
        Ok(Response::new(ClusterConfig {
            chunk_size: CHUNK,
            block_size: BLOCK,
            replication: 3,
        }))
    }
    async fn register_chunkserver(
        &self,
        request: Request<RegisterChunkserverRequest>,
    ) -> Result<Response<RegisterChunkserverReply>, Status> {
        self.refusal(false)?;
        let mut state = self.state();
        state.registrations.push(request.into_inner());
        Ok(Response::new(RegisterChunkserverReply {
            server_id: 40 + state.registrations.len() as u64,
            token_keys: Vec::new(),
        }))
    }
    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatReply>, Status> {
        self.refusal(true)?;
        let mut state = self.state();
        state.heartbeats.push(request.into_inner());
        let reply = HeartbeatReply {
            delete_chunks: std::mem::take(&mut state.delete_next),
            reregister: std::mem::take(&mut state.reregister_next),
            replicate: Vec::new(),
            token_keys: Vec::new(),
        };
        Ok(Response::new(reply))
    }
}

/// Reported chunk ids of a heartbeat.
fn reported(heartbeat: &HeartbeatRequest) -> Vec<u64> {
    heartbeat.chunks.iter().map(|c| c.chunk_id).collect()
}

fn replica_exists(data_dir: &Path, chunk_id: u64) -> bool {
    let dir = data_dir.join(format!("chunks/{:02x}", chunk_id & 0xff));
    dir.join(format!("{chunk_id:016x}.meta")).exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_reports_deletes_and_reregisters() {
    let master = FakeMaster::default();
    let master_addr = master.serve().await;

    // Two replicas on disk before the server starts.
    let dir = TempDir::new().unwrap();
    let data_dir = dir.path().join("data");
    let options = StoreOptions {
        block_size: BLOCK.into(),
        chunk_size: CHUNK,
        capacity_limit: None,
    };
    let store = ChunkStore::open(&data_dir, options).unwrap();
    store.write(5, 1, 0, b"five").unwrap();
    store.write(6, 2, 0, b"six").unwrap();
    let uuid = store.storage_uuid().to_string();
    drop(store);

    let addr_file = dir.path().join("cs.addr");
    let mut config = Config::new(&data_dir);
    config.tls = dfs_proto::tls::TlsOptions::insecure();
    config.master = master_addr;
    config.rack = "r1".into();
    config.heartbeat_interval_ms = 30;
    config.full_report_every = 3;
    config.capacity_bytes = Some(1 << 30);
    config.addr_file = Some(addr_file.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bound = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(dfs_chunkserver::run(config, listener, async {
        let _ = stopped.await;
    }));

    // The address file appears only after registration.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !addr_file.exists() {
        assert!(Instant::now() < deadline, "no address file");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(std::fs::read_to_string(&addr_file).unwrap().trim(), bound);
    {
        let state = master.state();
        let registration = &state.registrations[0];
        assert_eq!(registration.addr, bound);
        assert_eq!(registration.storage_uuid, uuid);
        assert_eq!(registration.rack, "r1");
        assert_eq!(registration.capacity_bytes, 1 << 30);
    }

    // A full report first, then one every fourth heartbeat (three in between).
    master
        .wait_for("eight heartbeats", |s| s.heartbeats.len() >= 8)
        .await;
    {
        let state = master.state();
        let fulls: Vec<bool> = state.heartbeats[..8]
            .iter()
            .map(|h| h.full_report)
            .collect();
        assert_eq!(
            fulls,
            [true, false, false, false, true, false, false, false]
        );
        let first = &state.heartbeats[0];
        assert_eq!(first.server_id, 41);
        assert_eq!(first.chunk_count, 2);
        assert_eq!(reported(first), [5, 6]);
        assert_eq!(first.chunks[1].version, 2);
        assert_eq!(first.chunks[1].length, 3);
        assert!(state.heartbeats[1].chunks.is_empty());
    }

    // Deletion through a heartbeat reply.
    master.state().delete_next = vec![5];
    let deadline = Instant::now() + Duration::from_secs(10);
    while replica_exists(&data_dir, 5) {
        assert!(Instant::now() < deadline, "replica 5 was not deleted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(replica_exists(&data_dir, 6));

    // A master that forgot the server gets a registration, then a full report.
    master.state().reregister_next = true;
    master
        .wait_for("a second registration", |s| s.registrations.len() == 2)
        .await;
    master
        .wait_for("a full report under the new id", |s| {
            s.heartbeats
                .iter()
                .any(|h| h.server_id == 42 && h.full_report)
        })
        .await;
    let state_after = master
        .state()
        .heartbeats
        .iter()
        .rev()
        .find(|h| h.full_report)
        .cloned();
    assert_eq!(reported(&state_after.unwrap()), [6]);

    // Shutdown ends `run` cleanly.
    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("run stopped");
    result.unwrap().unwrap();
}

/// Starts a chunkserver with an empty store under `dir` on masters `list`, heartbeating every
/// `interval_ms`; answers the sender that stops it.
async fn start_chunkserver(dir: &Path, list: &str, interval_ms: u64) -> oneshot::Sender<()> {
    let mut config = Config::new(dir.join("data"));
    config.tls = dfs_proto::tls::TlsOptions::insecure();
    config.master = list.to_string();
    config.heartbeat_interval_ms = interval_ms;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(dfs_chunkserver::run(config, listener, async {
        let _ = stopped.await;
    }));
    stop
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_follows_the_leader_a_member_names() {
    let leader = FakeMaster::default();
    let leader_addr = leader.serve().await;
    let follower = FakeMaster::default();
    follower.state().refuse = Refuse::Everything(leader_addr.clone());
    let follower_addr = follower.serve().await;

    // Only the follower is configured: the leader is learned from its refusal.
    let dir = TempDir::new().unwrap();
    let _stop = start_chunkserver(dir.path(), &follower_addr, 30).await;
    leader
        .wait_for("a registration and heartbeats at the leader", |s| {
            s.registrations.len() == 1 && s.heartbeats.len() >= 3
        })
        .await;
    // Refused once (the cluster configuration), then every call went to the leader.
    assert_eq!(follower.state().refused, 1);
    assert!(follower.state().registrations.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_heartbeat_goes_to_the_leader_at_once() {
    let old_leader = FakeMaster::default();
    let old_leader_addr = old_leader.serve().await;
    let new_leader = FakeMaster::default();
    let new_leader_addr = new_leader.serve().await;
    old_leader.state().refuse = Refuse::Heartbeats(new_leader_addr.clone());

    // Registered at the old leader; its first heartbeat is refused there. With an hour between
    // heartbeats, the new leader only hears one if the refused heartbeat went on to it.
    let dir = TempDir::new().unwrap();
    let list = format!("{old_leader_addr},{new_leader_addr}");
    let _stop = start_chunkserver(dir.path(), &list, 3_600_000).await;
    new_leader
        .wait_for("the first heartbeat at the new leader", |s| {
            s.heartbeats.len() == 1
        })
        .await;
    assert_eq!(old_leader.state().registrations.len(), 1);
    assert_eq!(old_leader.state().refused, 1);
    assert!(new_leader.state().heartbeats[0].full_report);
}
