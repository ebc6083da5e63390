//! [`LocalCluster`]: a master and N chunkservers inside the test process, started through
//! `dfs_master::run` and `dfs_chunkserver::run` on one tokio runtime, for tests of the client
//! library and the data path that need neither FUSE nor root nor child processes.
//!
//! Every server binds `127.0.0.1:0` and reports readiness through its address file (a
//! chunkserver only after registering with the master), so starting waits for an event, not
//! a sleep. Dropping the cluster signals every server to shut down and waits for them, also
//! when a test panics. Tests that kill processes (`kill -9`, SIGSTOP) use the process-based
//! [`Cluster`](crate::Cluster) instead.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a server may take to become ready before the test fails.
const READY_LIMIT: Duration = Duration::from_secs(30);

/// A server running as a task of the cluster's runtime, and how to stop it.
struct Task {
    stop: Option<oneshot::Sender<()>>,
    done: JoinHandle<Result<(), String>>,
}

/// A dfs cluster inside this process.
pub struct LocalCluster {
    runtime: Runtime,
    master: Task,
    master_addr: String,
    chunkservers: Vec<Option<Task>>,
    // Last: removed after the servers using it are gone.
    dir: TempDir,
}

/// Waits until the server writes its address file; returns the address.
fn wait_for_addr(path: &Path, task: &JoinHandle<Result<(), String>>, what: &str) -> String {
    let deadline = Instant::now() + READY_LIMIT;
    loop {
        if let Ok(addr) = std::fs::read_to_string(path) {
            if !addr.trim().is_empty() {
                return addr.trim().to_string();
            }
        }
        assert!(!task.is_finished(), "{what} exited before it was ready");
        assert!(
            Instant::now() < deadline,
            "{what} not ready within {READY_LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl LocalCluster {
    /// Starts a master with replication `replication` and chunks of `chunk_size` bytes, and
    /// `chunkservers` chunkservers registered with it.
    pub fn start(chunkservers: usize, replication: u32, chunk_size: u64) -> LocalCluster {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the servers");
        let dir = tempfile::Builder::new()
            .prefix("dfs-local-")
            .tempdir()
            .expect("a temporary directory");
        let mut config = dfs_master::Config::new(dir.path().join("master"));
        config.replication = replication;
        // In-process servers on loopback: the TLS tests use real processes.
        config.tls = dfs_proto::tls::TlsOptions::insecure();
        config.chunk_size = chunk_size;
        config.addr_file = Some(dir.path().join("master.addr"));
        let master = Self::spawn(&runtime, |listener, stop| async move {
            let stop = async move { drop(stop.await) };
            dfs_master::run(config, listener, stop)
                .await
                .map_err(|err| err.to_string())
        });
        let master_addr = wait_for_addr(&dir.path().join("master.addr"), &master.done, "master");
        let mut cluster = LocalCluster {
            runtime,
            master,
            master_addr,
            chunkservers: Vec::new(),
            dir,
        };
        for _ in 0..chunkservers {
            cluster.add_chunkserver();
        }
        cluster
    }

    /// Binds a loopback port and runs `server` on it until the receiver it is given fires (or
    /// its sender is dropped).
    fn spawn<Fut>(
        runtime: &Runtime,
        server: impl FnOnce(TcpListener, oneshot::Receiver<()>) -> Fut,
    ) -> Task
    where
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind a loopback port");
        let (stop, stopped) = oneshot::channel();
        let done = runtime.spawn(server(listener, stopped));
        Task {
            stop: Some(stop),
            done,
        }
    }

    /// Starts one more chunkserver and waits until it has registered; returns its index.
    pub fn add_chunkserver(&mut self) -> usize {
        let i = self.chunkservers.len();
        let mut config = dfs_chunkserver::Config::new(self.chunkserver_dir(i));
        config.master = self.master_addr.clone();
        // In-process servers on loopback: the TLS tests use real processes.
        config.tls = dfs_proto::tls::TlsOptions::insecure();
        config.heartbeat_interval_ms = 200;
        config.rpc_timeout_ms = 5_000;
        let addr_file = self.dir.path().join(format!("cs{i}.addr"));
        config.addr_file = Some(addr_file.clone());
        let task = Self::spawn(&self.runtime, |listener, stop| async move {
            let stop = async move { drop(stop.await) };
            dfs_chunkserver::run(config, listener, stop)
                .await
                .map_err(|err| err.to_string())
        });
        wait_for_addr(&addr_file, &task.done, "chunkserver");
        self.chunkservers.push(Some(task));
        i
    }

    /// Stops chunkserver `i` (as a clean shutdown) and waits until it is gone.
    pub fn stop_chunkserver(&mut self, i: usize) {
        if let Some(task) = self.chunkservers[i].take() {
            self.stop(task, "chunkserver");
        }
    }

    fn stop(&self, mut task: Task, what: &str) {
        if let Some(stop) = task.stop.take() {
            let _ = stop.send(());
        }
        let result = self
            .runtime
            .block_on(async { tokio::time::timeout(READY_LIMIT, &mut task.done).await });
        match result {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(err))) => panic!("{what} failed: {err}"),
            Ok(Err(err)) => panic!("{what} task failed: {err}"),
            Err(_) => panic!("{what} did not stop within {READY_LIMIT:?}"),
        }
    }

    /// `host:port` of the master.
    pub fn master_addr(&self) -> &str {
        &self.master_addr
    }

    /// Where chunkserver `i` keeps its replicas.
    pub fn chunkserver_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("cs{i}"))
    }

    /// A client of this cluster with every default but a short RPC timeout.
    pub fn client(&self) -> dfs_client::Client {
        let mut config = dfs_client::Config::new(self.master_addr.clone());
        config.rpc_timeout_ms = 5_000;
        config.lease_wait_ms = 500;
        // In-process servers on loopback: the TLS tests use real processes.
        config.tls = dfs_proto::tls::TlsOptions::insecure();
        self.block_on(dfs_client::Client::connect(&config))
            .expect("connect a client")
    }

    /// Runs `future` on the cluster's runtime (where clients must run) to completion.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let chunkservers: Vec<Task> = self
            .chunkservers
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        for mut task in chunkservers {
            if let Some(stop) = task.stop.take() {
                let _ = stop.send(());
            }
            let _ = self
                .runtime
                .block_on(async { tokio::time::timeout(READY_LIMIT, task.done).await });
        }
        if let Some(stop) = self.master.stop.take() {
            let _ = stop.send(());
        }
        let done = &mut self.master.done;
        let _ = self
            .runtime
            .block_on(async { tokio::time::timeout(READY_LIMIT, done).await });
    }
}
