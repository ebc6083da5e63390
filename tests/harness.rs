//! Test harness: real dfs clusters on loopback, as the integration tests in this directory use
//! them.
//!
//! A [`Cluster`] is one `dfs-master` and N `dfs-chunkserver` child processes, each on
//! `127.0.0.1:0` with its own data directory under one temporary directory. Every server writes
//! its bound address to an `--addr-file` once it is ready (a chunkserver only after registering
//! with the master), so tests wait for readiness instead of sleeping. A [`Mount`] is a
//! `dfs-fuse` child process with a real FUSE mount in a temporary directory.
//!
//! Everything is torn down on drop — also when a test panics — so a failing test leaves no
//! mount and no process behind. Drop the [`Mount`] before its [`Cluster`] (declare it after).
//!
//! The binaries are taken from the cargo target directory the test itself was built in, so
//! `cargo build --release --bins` must have run first (`scripts/test` does).

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a server or mount may take to become ready before the test fails.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

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

/// One server child process.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    /// Stops the process: SIGTERM (a clean shutdown) or SIGKILL (a crash).
    fn stop(&mut self, signal: i32) {
        signal_and_reap(&mut self.child, signal);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        signal_and_reap(&mut self.child, libc::SIGKILL);
    }
}

/// A running dfs cluster of child processes.
pub struct Cluster {
    /// Options the cluster was started with.
    pub options: ClusterOptions,
    master: Option<Server>,
    chunkservers: Vec<Option<Server>>,
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

/// A FUSE mount of a [`Cluster`], served by a `dfs-fuse` child process.
pub struct Mount {
    child: Child,
    path: PathBuf,
    log: PathBuf,
    _dir: TempDir,
}

impl Mount {
    fn start(cluster: &Cluster, extra_args: &[&str]) -> Mount {
        let dir = tempfile::Builder::new()
            .prefix("dfs-mnt-")
            .tempdir()
            .expect("tempdir");
        let path = dir.path().join("mnt");
        fs::create_dir(&path).expect("create mount point");
        let log = unique_log(cluster.dir(), "fuse");
        let mut cmd = Command::new(binary("dfs-fuse"));
        cmd.arg("--master")
            .arg(cluster.master_addr())
            .arg("--mountpoint")
            .arg(&path)
            .arg("--rpc-timeout-ms")
            .arg(cluster.options.rpc_timeout_ms.to_string())
            .args(extra_args);
        let child = spawn_logged(cmd, &log);
        let mut mount = Mount {
            child,
            path,
            log,
            _dir: dir,
        };
        mount.wait_mounted();
        mount
    }

    fn wait_mounted(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        while !is_mounted(&self.path) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "dfs-fuse exited with {status} before mounting:\n{}",
                    tail(&self.log, 40)
                );
            }
            assert!(
                Instant::now() < deadline,
                "mount did not appear:\n{}",
                tail(&self.log, 40)
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path` joined onto the mount point.
    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.path.join(rel)
    }

    /// The daemon's process id (to kill it in crash tests).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Unmounts cleanly (SIGTERM to the daemon) and waits for the daemon to exit; returns its
    /// exit status.
    pub fn unmount(mut self) -> std::process::ExitStatus {
        self.terminate()
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        signal(&self.child, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                if is_mounted(&self.path) {
                    lazy_unmount(&self.path);
                }
                return status;
            }
            if Instant::now() > deadline {
                lazy_unmount(&self.path);
                signal_and_reap(&mut self.child, libc::SIGKILL);
                return self.child.wait().expect("wait for dfs-fuse");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("dfs-fuse log:\n{}", tail(&self.log, 40));
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            self.terminate();
        } else if is_mounted(&self.path) {
            lazy_unmount(&self.path);
        }
    }
}

/// Path of a dfs binary in the target directory this test was built in.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/release/deps/<test> -> target/release/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (cargo build --release --bins, as scripts/test does)",
        path.display()
    );
    path
}

/// Whether `path` is a mount point right now, according to the kernel.
pub fn is_mounted(path: &Path) -> bool {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = path.to_string_lossy();
    mountinfo
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(want.as_ref()))
}

/// Runs `script` with `sh -c` in `dir`, asserting that it succeeds; returns its stdout.
pub fn sh(dir: &Path, script: &str) -> String {
    let out = sh_output(dir, script);
    assert!(
        out.status.success(),
        "`{script}` failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `script` with `sh -c` in `dir` and returns its output, whatever the exit status.
pub fn sh_output(dir: &Path, script: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .expect("run sh")
}

/// The errno of an I/O error, for asserting on it.
pub fn errno(err: &io::Error) -> i32 {
    err.raw_os_error()
        .unwrap_or_else(|| panic!("not an OS error: {err:?}"))
}

/// Deterministic pseudo-random bytes (xorshift), so a failing test can be reproduced.
pub fn pseudo_random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = XorShift::new(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A tiny deterministic PRNG for tests.
pub struct XorShift(u64);

impl XorShift {
    /// A generator from a non-zero seed.
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }
}

/// Hex SHA-256 of a file's contents, read in 1 MiB pieces.
pub fn sha256_file(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let mut file = fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Runs `f` on another thread and fails the test if it has not returned within `limit`: a
/// hang detector for calls that must fail rather than block forever (not a performance target).
pub fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("call still blocked after {limit:?}"))
}

fn spawn_server(dir: &Path, bin: &str, name: &str, args: &[String]) -> Server {
    let addr_file = dir.join(format!("{name}.addr"));
    let _ = fs::remove_file(&addr_file);
    let log = unique_log(dir, name);
    let mut cmd = Command::new(binary(bin));
    cmd.args(args).arg("--addr-file").arg(&addr_file);
    let mut child = spawn_logged(cmd, &log);
    let deadline = Instant::now() + READY_TIMEOUT;
    let addr = loop {
        if let Ok(addr) = fs::read_to_string(&addr_file) {
            if !addr.trim().is_empty() {
                break addr.trim().to_string();
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{bin} exited with {status} before it was ready:\n{}",
                tail(&log, 40)
            );
        }
        if Instant::now() > deadline {
            signal_and_reap(&mut child, libc::SIGKILL);
            panic!(
                "{bin} was not ready within {READY_TIMEOUT:?}:\n{}",
                tail(&log, 40)
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    Server { child, addr }
}

fn spawn_logged(mut cmd: Command, log: &Path) -> Child {
    let out = fs::File::create(log).expect("create log");
    let err = out.try_clone().expect("clone log handle");
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "info");
    }
    cmd.spawn()
        .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()))
}

/// A log path that does not overwrite the log of an earlier incarnation of the same server.
fn unique_log(dir: &Path, name: &str) -> PathBuf {
    (0..)
        .map(|n| dir.join(format!("{name}.{n}.log")))
        .find(|p| !p.exists())
        .expect("a free log name")
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    unsafe {
        libc::kill(child.id() as libc::pid_t, sig);
    }
}

fn signal_and_reap(child: &mut Child, sig: i32) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    signal(child, sig);
    let deadline = Instant::now() + Duration::from_secs(20);
    while matches!(child.try_wait(), Ok(None)) {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

fn lazy_unmount(path: &Path) {
    let _ = Command::new("fusermount3")
        .arg("-u")
        .arg("-z")
        .arg(path)
        .output();
    if is_mounted(path) {
        let _ = Command::new("umount").arg("-l").arg(path).output();
    }
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("addr has a port")
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// Cluster management: the `dfs` admin CLI and replica files on chunkserver disks
// ---------------------------------------------------------------------------------------------

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

    /// Starts one more chunkserver (with a fresh data directory); returns its index.
    pub fn add_chunkserver(&mut self) -> usize {
        let i = self.chunkservers.len();
        let server = self.spawn_chunkserver(i, None);
        self.chunkservers.push(Some(server));
        i
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

/// Polls `condition` every 200 ms until it holds; fails the test (showing `what`) if it does
/// not within `limit`. A hang detector, not a performance target: limits are generous.
pub fn wait_until(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(200));
    }
}

// --- Replicated data path: what the master and the chunkservers' disks say about replicas ---

impl Cluster {
    /// The master's chunk map of inode `ino` (the kernel's inode number is the master's),
    /// replicas in the order readers try them.
    pub fn chunks_of(&self, ino: u64) -> Vec<dfs_proto::pb::ChunkInfo> {
        let uri = format!("http://{}", self.master_addr());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        runtime.block_on(async move {
            let mut master = dfs_proto::pb::master_client::MasterClient::connect(uri)
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

// ---------------------------------------------------------------------------------------------
// Writer leases and crashes
// ---------------------------------------------------------------------------------------------

impl Mount {
    /// Kills the daemon with SIGKILL (a crashed client: no flush, no lease release) and waits
    /// for it to exit; the kernel mount goes away with it (`auto_unmount`).
    pub fn kill(&mut self) {
        signal_and_reap(&mut self.child, libc::SIGKILL);
        let deadline = Instant::now() + READY_TIMEOUT;
        while is_mounted(&self.path) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        if is_mounted(&self.path) {
            lazy_unmount(&self.path);
        }
    }
}

impl Cluster {
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
