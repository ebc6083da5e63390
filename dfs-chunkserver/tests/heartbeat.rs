//! `run` against a fake master in this process: the chunkserver registers before it writes
//! its address file, sends full block reports on schedule, deletes what the master names,
//! registers again when asked, and stops on shutdown.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dfs_chunkserver::{ChunkStore, Config, StoreOptions};
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
}

#[tonic::async_trait]
impl Registry for FakeMaster {
    async fn get_cluster_config(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<ClusterConfig>, Status> {
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
        let mut state = self.state();
        state.registrations.push(request.into_inner());
        Ok(Response::new(RegisterChunkserverReply {
            server_id: 40 + state.registrations.len() as u64,
        }))
    }
    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatReply>, Status> {
        let mut state = self.state();
        state.heartbeats.push(request.into_inner());
        let reply = HeartbeatReply {
            delete_chunks: std::mem::take(&mut state.delete_next),
            reregister: std::mem::take(&mut state.reregister_next),
            replicate: Vec::new(),
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
    let master_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let master_addr = master_listener.local_addr().unwrap().to_string();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(RegistryServer::new(master.clone()))
            .serve_with_incoming(TcpListenerStream::new(master_listener)),
    );

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
