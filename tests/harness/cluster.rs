//! [`Cluster`]: a group of `dfs-master`s (one by default) and N `dfs-chunkserver` child
//! processes on loopback, each with its own data directory under one temporary directory, and
//! their life cycle (start, stop, restart, freeze, crash, one more chunkserver).

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;

use tempfile::TempDir;

use crate::Mount;
use crate::process::{Server, port_of, signal, spawn_server, tail};

/// Shape of a test cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Number of masters (a Raft group; 1 is a group of one).
    pub masters: usize,
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
    /// The certificates the harness's own calls, the `dfs` command and mounts present, for
    /// a cluster whose masters require mutual TLS (their own come in `master_args`).
    pub client_tls: Option<dfs_proto::tls::TlsOptions>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            masters: 1,
            chunkservers: 3,
            replication: 3,
            chunk_size: 64 << 20,
            capacity_bytes: None,
            rpc_timeout_ms: 5_000,
            master_args: Vec::new(),
            chunkserver_args: Vec::new(),
            racks: Vec::new(),
            client_tls: None,
        }
    }
}

/// A running dfs cluster of child processes.
pub struct Cluster {
    /// Options the cluster was started with.
    pub options: ClusterOptions,
    pub(crate) masters: Vec<Option<Server>>,
    /// The port of each master (fixed for the group's life: it is in the group's membership).
    master_ports: Vec<u16>,
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
        let master_ports = match options.masters {
            1 => vec![0],
            n => free_ports(n),
        };
        let mut cluster = Cluster {
            masters: (0..options.masters).map(|_| None).collect(),
            options,
            master_ports,
            chunkservers: Vec::new(),
            dir,
        };
        for i in 0..cluster.options.masters {
            cluster.start_master(i);
        }
        if cluster.options.masters > 1 {
            cluster.leader();
        }
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

    /// The masters' addresses as clients take them: `host:port`, comma-separated when there
    /// are several.
    pub fn master_addr(&self) -> String {
        (0..self.masters.len())
            .map(|i| self.master_addr_at(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `host:port` of master `i` (whether it runs or not).
    pub fn master_addr_at(&self, i: usize) -> String {
        match &self.masters[i] {
            Some(server) => server.addr.clone(),
            None => format!("127.0.0.1:{}", self.master_ports[i]),
        }
    }

    /// `host:port` of master `i`'s HTTP service (metrics, API, dashboard), while it runs.
    pub fn master_http_at(&self, i: usize) -> String {
        let server = self.masters[i]
            .as_ref()
            .unwrap_or_else(|| panic!("master {i} is down"));
        server.http.clone()
    }

    /// `host:port` of chunkserver `i`'s data service, as the master lists it, while it runs.
    pub fn chunkserver_addr_at(&self, i: usize) -> String {
        let server = self.chunkservers[i]
            .as_ref()
            .unwrap_or_else(|| panic!("chunkserver {i} is down"));
        server.addr.clone()
    }

    /// `host:port` of chunkserver `i`'s HTTP service (metrics), while it runs.
    pub fn chunkserver_http_at(&self, i: usize) -> String {
        let server = self.chunkservers[i]
            .as_ref()
            .unwrap_or_else(|| panic!("chunkserver {i} is down"));
        server.http.clone()
    }

    /// The `--tls-*` arguments of a client of this cluster (`--insecure` without
    /// `client_tls`).
    pub fn client_tls_args(&self) -> Vec<String> {
        self.options
            .client_tls
            .as_ref()
            .map_or_else(|| vec!["--insecure".into()], tls_args)
    }

    /// The temporary directory holding every server's data and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Data directory of chunkserver `i`.
    pub fn chunkserver_data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("cs{i}"))
    }

    /// Starts master `i` on its port with its data directory, and waits until it serves.
    fn start_master(&mut self, i: usize) {
        let data_dir = self.dir.path().join(match i {
            0 => "master".to_string(),
            i => format!("master{i}"),
        });
        let mut args = vec![
            "--listen".to_string(),
            format!("127.0.0.1:{}", self.master_ports[i]),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--chunk-size".into(),
            self.options.chunk_size.to_string(),
            "--replication".into(),
            self.options.replication.to_string(),
        ];
        if self.options.masters > 1 {
            let peers: Vec<String> = (0..self.options.masters)
                .map(|j| format!("{}=127.0.0.1:{}", j + 1, self.master_ports[j]))
                .collect();
            args.extend([
                "--node-id".to_string(),
                (i + 1).to_string(),
                "--peers".into(),
                peers.join(","),
            ]);
        }
        let args = [args, self.options.master_args.clone()].concat();
        let name = match i {
            0 => "master".to_string(),
            i => format!("master{i}"),
        };
        let server = spawn_server(self.dir.path(), "dfs-master", &name, &args);
        self.master_ports[i] = port_of(&server.addr);
        self.masters[i] = Some(server);
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

    /// Stops every master with `signal` (SIGTERM or SIGKILL), leaving its data in place.
    pub fn stop_master(&mut self, signal: i32) {
        for i in 0..self.masters.len() {
            self.stop_master_at(i, signal);
        }
    }

    /// Stops master `i` with `signal`, leaving its data in place.
    pub fn stop_master_at(&mut self, i: usize, signal: i32) {
        if let Some(mut master) = self.masters[i].take() {
            master.stop(signal);
        }
    }

    /// Starts every master again on the same port and data directory (stopping any still
    /// running first), and waits for them.
    pub fn restart_master(&mut self) {
        self.stop_master(libc::SIGTERM);
        for i in 0..self.masters.len() {
            self.start_master(i);
        }
    }

    /// Starts master `i` again (stopping it first if it runs) and waits until it serves.
    pub fn restart_master_at(&mut self, i: usize) {
        self.stop_master_at(i, libc::SIGTERM);
        self.start_master(i);
    }

    /// Freezes master `i` (SIGSTOP), as a machine stalled or cut off would be.
    pub fn pause_master(&self, i: usize) {
        if let Some(server) = &self.masters[i] {
            signal(&server.child, libc::SIGSTOP);
        }
    }

    /// Thaws a master frozen by [`Cluster::pause_master`].
    pub fn resume_master(&self, i: usize) {
        if let Some(server) = &self.masters[i] {
            signal(&server.child, libc::SIGCONT);
        }
    }

    /// The index of the master that leads, once the running masters agree on one (waits for
    /// an election, at most a minute).
    pub fn leader(&self) -> usize {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            for i in 0..self.masters.len() {
                if self.masters[i].is_none() {
                    continue;
                }
                if let Some(status) = self.masters_status(i) {
                    let me = status.answered_by;
                    let leads = status.leader_id == me
                        && status.members.iter().any(|m| m.id == me && m.role == 1);
                    let i = usize::try_from(me - 1).expect("node ids start at 1");
                    // Elected, and serving: it has taken office (applied the log, built its
                    // metadata service).
                    if leads && self.serves(i) {
                        return i;
                    }
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no master leads after a minute:\n{}",
                self.logs()
            );
            thread::sleep(std::time::Duration::from_millis(50));
        }
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

    /// Restarts the masters and every chunkserver (masters first), as after a cluster reboot.
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

    /// Kills every master and every chunkserver with SIGKILL at once (a crash of the whole
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
        self.masters.clear();
    }
}

/// `n` distinct free loopback ports: the members of a group must know each other's
/// addresses before any of them starts.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

/// The `--tls-ca`, `--tls-cert` and `--tls-key` arguments that present `tls`.
pub fn tls_args(tls: &dfs_proto::tls::TlsOptions) -> Vec<String> {
    let path = |p: &Option<PathBuf>| p.as_ref().expect("all three files").display().to_string();
    vec![
        "--tls-ca".into(),
        path(&tls.ca),
        "--tls-cert".into(),
        path(&tls.cert),
        "--tls-key".into(),
        path(&tls.key),
    ]
}
