//! Child processes of the harness: finding the dfs binaries, spawning servers with their output
//! in a log file, waiting for the address a server writes once it is ready, and stopping them
//! with signals.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long a server or mount may take to become ready before the test fails.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// One server child process.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) addr: String,
    /// `host:port` of its HTTP service (`/metrics`; on a master also the API and dashboard).
    pub(crate) http: String,
}

impl Server {
    /// Stops the process: SIGTERM (a clean shutdown) or SIGKILL (a crash).
    pub(crate) fn stop(&mut self, signal: i32) {
        signal_and_reap(&mut self.child, signal);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        signal_and_reap(&mut self.child, libc::SIGKILL);
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

pub(crate) fn spawn_server(dir: &Path, bin: &str, name: &str, args: &[String]) -> Server {
    let addr_file = dir.join(format!("{name}.addr"));
    let http_file = dir.join(format!("{name}.http"));
    let _ = fs::remove_file(&addr_file);
    let _ = fs::remove_file(&http_file);
    let log = unique_log(dir, name);
    let mut cmd = Command::new(binary(bin));
    cmd.args(args).arg("--addr-file").arg(&addr_file);
    // A server given no certificates must be told to speak plaintext.
    if !args.iter().any(|a| a == "--tls-ca") {
        cmd.arg("--insecure");
    }
    cmd.args(["--http-listen", "127.0.0.1:0", "--http-addr-file"])
        .arg(&http_file);
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
    // Written when the HTTP port is bound, before the server is ready.
    let http = fs::read_to_string(&http_file).unwrap_or_else(|e| {
        panic!(
            "{bin} wrote no HTTP address to {}: {e}",
            http_file.display()
        )
    });
    Server {
        child,
        addr,
        http: http.trim().to_string(),
    }
}

pub(crate) fn spawn_logged(mut cmd: Command, log: &Path) -> Child {
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
pub(crate) fn unique_log(dir: &Path, name: &str) -> PathBuf {
    (0..)
        .map(|n| dir.join(format!("{name}.{n}.log")))
        .find(|p| !p.exists())
        .expect("a free log name")
}

pub(crate) fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    unsafe {
        libc::kill(child.id() as libc::pid_t, sig);
    }
}

pub(crate) fn signal_and_reap(child: &mut Child, sig: i32) {
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

pub(crate) fn port_of(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("addr has a port")
}

pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
