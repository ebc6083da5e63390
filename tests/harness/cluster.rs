//! [`Cluster`]: one `dfs-master` and N `dfs-chunkserver` child processes on `127.0.0.1:0`, each
//! with its own data directory under one temporary directory, and their life cycle (start,
//! stop, restart, freeze, crash, one more chunkserver).

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;

use tempfile::TempDir;

use crate::Mount;
use crate::process::{Server, port_of, signal, spawn_server, tail};

/// Shape of a test cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Number of chunkservers.
    pub chunkservers: usize,
    /// Replication factor.
    pub replication: u32,
    /// Chunk size in bytes; small chunks let tests cross chunk boundaries cheaply.
    pub chunk_size: u64,
    /// Capacity each chunkserver reports, if it should be smaller than the disk.
    pub capacity_bytes: Option<u64>,
    /// RPC timeout of mounts and chunkservers, in milliseconds.
    pub rpc_timeout_ms: u64,
    /// Extra `dfs-master` arguments (e.g. short dead timeouts, `--lease-ttl-ms`).
    pub master_args: Vec<String>,
    /// Extra arguments for every chunkserver.
    pub chunkserver_args: Vec<String>,
    /// Rack label of chunkserver `i` (none when the list is shorter).
    pub racks: Vec<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            chunkservers: 3,
            replication: 3,
            chunk_size: 64 << 20,
            capacity_bytes: None,
            rpc_timeout_ms: 5_000,
            master_args: Vec::new(),
            chunkserver_args: Vec::new(),
            racks: Vec::new(),
        }
    }
}

/// A running dfs cluster of child processes.
pub struct Cluster {
    /// Options the cluster was started with.
    pub options: ClusterOptions,
    master: Option<Server>,
    pub(crate) chunkservers: Vec<Option<Server>>,
    // Last: removed after the processes using it are gone.
    dir: TempDir,
}

impl Cluster {
    /// Starts a master and `options.chunkservers` chunkservers and waits until all are ready.
    pub fn start(options: ClusterOptions) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("dfs-test-")
            .tempdir()
            .expect("tempdir");
        let mut cluster = Cluster {
            options,
            master: None,
            chunkservers: Vec::new(),
            dir,
        };
        cluster.start_master(None);
        for i in 0..cluster.options.chunkservers {
            let server = cluster.spawn_chunkserver(i, None);
            cluster.chunkservers.push(Some(server));
        }
        cluster
    }

    /// A cluster of the default shape: 3 chunkservers, replication 3, 64 MiB chunks.
    pub fn start_default() -> Cluster {
        Cluster::start(ClusterOptions::default())
    }

    /// `host:port` of the master.
    pub fn master_addr(&self) -> String {
        self.master
            .as_ref()
            .expect("master is running")
            .addr
            .clone()
    }

    /// The temporary directory holding every server's data and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Data directory of chunkserver `i`.
    pub fn chunkserver_data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("cs{i}"))
    }

    fn start_master(&mut self, port: Option<u16>) {
        let data_dir = self.dir.path().join("master");
        let listen = format!("127.0.0.1:{}", port.unwrap_or(0));
        let args = vec![
            "--listen".to_string(),
            listen,
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--chunk-size".into(),
            self.options.chunk_size.to_string(),
            "--replication".into(),
            self.options.replication.to_string(),
        ];
        let args = [args, self.options.master_args.clone()].concat();
        let server = spawn_server(self.dir.path(), "dfs-master", "master", &args);
        self.master = Some(server);
    }

    fn spawn_chunkserver(&self, i: usize, port: Option<u16>) -> Server {
        let data_dir = self.chunkserver_data_dir(i);
        let mut args = vec![
            "--listen".to_string(),
            format!("127.0.0.1:{}", port.unwrap_or(0)),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--master".into(),
            self.master_addr(),
            "--heartbeat-interval-ms".into(),
            "500".into(),
            "--rpc-timeout-ms".into(),
            self.options.rpc_timeout_ms.to_string(),
        ];
        if let Some(capacity) = self.options.capacity_bytes {
            args.extend(["--capacity-bytes".to_string(), capacity.to_string()]);
        }
        if let Some(rack) = self.options.racks.get(i) {
            args.extend(["--rack".to_string(), rack.clone()]);
        }
        args.extend(self.options.chunkserver_args.iter().cloned());
        spawn_server(self.dir.path(), "dfs-chunkserver", &format!("cs{i}"), &args)
    }

    /// Stops the master with `signal` (SIGTERM or SIGKILL), leaving its data in place.
    pub fn stop_master(&mut self, signal: i32) {
        if let Some(master) = self.master.as_mut() {
            master.stop(signal);
        }
    }

    /// Starts the master again on the same port and data directory, and waits for it.
    pub fn restart_master(&mut self) {
        let port = port_of(&self.master_addr());
        self.stop_master(libc::SIGTERM);
        self.master = None;
        self.start_master(Some(port));
    }

    /// Stops chunkserver `i` with `signal`, leaving its data in place.
    pub fn stop_chunkserver(&mut self, i: usize, signal: i32) {
        // The stopped server stays in its slot so a restart can reuse its port.
        if let Some(server) = self.chunkservers[i].as_mut() {
            server.stop(signal);
        }
    }

    /// Restarts chunkserver `i` on its old port with its old data, and waits until it is
    /// registered again.
    pub fn restart_chunkserver(&mut self, i: usize) {
        let port = self.chunkservers[i].as_ref().map(|s| port_of(&s.addr));
        if let Some(mut old) = self.chunkservers[i].take() {
            old.stop(libc::SIGTERM);
        }
        let server = self.spawn_chunkserver(i, port);
        self.chunkservers[i] = Some(server);
    }

    /// Freezes chunkserver `i` (SIGSTOP): it keeps its connections but answers nothing, as a
    /// server stuck on a dying disk would. [`Cluster::resume_chunkserver`] thaws it.
    pub fn pause_chunkserver(&self, i: usize) {
        if let Some(server) = self.chunkservers[i].as_ref() {
            signal(&server.child, libc::SIGSTOP);
        }
    }

    /// Thaws a chunkserver frozen by [`Cluster::pause_chunkserver`].
    pub fn resume_chunkserver(&self, i: usize) {
        if let Some(server) = self.chunkservers[i].as_ref() {
            signal(&server.child, libc::SIGCONT);
        }
    }

    /// Restarts the master and every chunkserver (master first), as after a cluster reboot.
    pub fn restart_all(&mut self) {
        for i in 0..self.chunkservers.len() {
            self.stop_chunkserver(i, libc::SIGTERM);
        }
        self.restart_master();
        for i in 0..self.chunkservers.len() {
            self.restart_chunkserver(i);
        }
    }

    /// Mounts the cluster at a fresh temporary directory.
    pub fn mount(&self) -> Mount {
        Mount::start(self, &[])
    }

    /// Mounts the cluster with extra `dfs-fuse` arguments.
    pub fn mount_with(&self, extra_args: &[&str]) -> Mount {
        Mount::start(self, extra_args)
    }

    /// The last lines of every server log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for entry in fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "log") {
                out.push_str(&format!("--- {}\n{}\n", path.display(), tail(&path, 30)));
            }
        }
        out
    }

    /// Starts one more chunkserver (with a fresh data directory); returns its index.
    pub fn add_chunkserver(&mut self) -> usize {
        let i = self.chunkservers.len();
        let server = self.spawn_chunkserver(i, None);
        self.chunkservers.push(Some(server));
        i
    }

    /// Kills the master and every chunkserver with SIGKILL at once (a crash of the whole
    /// cluster), then starts them all again on their old ports and data, and waits for them.
    pub fn crash_and_restart_all(&mut self) {
        self.stop_master(libc::SIGKILL);
        for i in 0..self.chunkservers.len() {
            self.stop_chunkserver(i, libc::SIGKILL);
        }
        self.restart_master();
        for i in 0..self.chunkservers.len() {
            self.restart_chunkserver(i);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("cluster logs:\n{}", self.logs());
        }
        self.chunkservers.clear();
        self.master = None;
    }
}
