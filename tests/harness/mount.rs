//! [`Mount`]: a `dfs-fuse` child process with a real FUSE mount in a temporary directory, torn
//! down (unmounted, daemon stopped) on drop.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::Cluster;
use crate::process::{
    READY_TIMEOUT, binary, signal, signal_and_reap, spawn_logged, tail, unique_log,
};

/// A FUSE mount of a [`Cluster`], served by a `dfs-fuse` child process.
pub struct Mount {
    child: Child,
    path: PathBuf,
    log: PathBuf,
    http_file: PathBuf,
    _dir: TempDir,
}

impl Mount {
    pub(crate) fn start(cluster: &Cluster, extra_args: &[&str]) -> Mount {
        let dir = tempfile::Builder::new()
            .prefix("dfs-mnt-")
            .tempdir()
            .expect("tempdir");
        let path = dir.path().join("mnt");
        fs::create_dir(&path).expect("create mount point");
        let log = unique_log(cluster.dir(), "fuse");
        let http_file = dir.path().join("fuse.http");
        let mut cmd = Command::new(binary("dfs-fuse"));
        cmd.arg("--master")
            .arg(cluster.master_addr())
            .arg("--mountpoint")
            .arg(&path)
            .arg("--rpc-timeout-ms")
            .arg(cluster.options.rpc_timeout_ms.to_string())
            .args(["--http-listen", "127.0.0.1:0", "--http-addr-file"])
            .arg(&http_file)
            .args(cluster.client_tls_args())
            .args(extra_args);
        let child = spawn_logged(cmd, &log);
        let mut mount = Mount {
            child,
            path,
            log,
            http_file,
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

    /// `host:port` of the mount's HTTP service (`/metrics`).
    pub fn http(&self) -> String {
        let addr = fs::read_to_string(&self.http_file).expect("the mount wrote its HTTP address");
        addr.trim().to_string()
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

/// Whether `path` is a mount point right now, according to the kernel.
pub fn is_mounted(path: &Path) -> bool {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = path.to_string_lossy();
    mountinfo
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(want.as_ref()))
}

pub(crate) fn lazy_unmount(path: &Path) {
    let _ = Command::new("fusermount3")
        .arg("-u")
        .arg("-z")
        .arg(path)
        .output();
    if is_mounted(path) {
        let _ = Command::new("umount").arg("-l").arg(path).output();
    }
}
