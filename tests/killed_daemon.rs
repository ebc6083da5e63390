//! `kill -9` of a mount's daemon leaves no dead mount behind: `fusermount3`'s auto-unmount
//! watcher, which outlives the daemon, detaches it.
//!
//! Alone in its binary: the watcher decides by reading the mount table, and while other tests
//! of the same binary mount and unmount at the same moment it can leave the mount in place
//! (the daemon a zombie and no watcher left; never seen with the test run by itself). The
//! likely reason, not proven: the watcher reads `/proc/mounts` to find its mount, and that
//! read is not atomic while other mounts come and go, so it may miss its own entry. Test
//! binaries run one at a time, so here none do.

use std::fs;
use std::time::Duration;

use dfs_tests::{Cluster, within};

#[test]
fn a_killed_daemon_leaves_no_dead_mount_behind() {
    let cluster = Cluster::start_default();
    let mount = cluster.mount();
    let path = mount.path().to_path_buf();
    // SAFETY: kill(2) on the daemon's pid.
    unsafe { libc::kill(mount.pid() as libc::pid_t, libc::SIGKILL) };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while dfs_tests::is_mounted(&path) {
        if std::time::Instant::now() > deadline {
            // Show who keeps the mount.
            let ps = std::process::Command::new("ps")
                .args(["-eo", "pid,ppid,stat,wchan:32,args"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let related: Vec<&str> = ps
                .lines()
                .filter(|l| l.contains("dfs-fuse") || l.contains("fusermount"))
                .collect();
            panic!(
                "mount of killed daemon {} still present after 30 s; processes:\n{}",
                mount.pid(),
                related.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let gone = within(Duration::from_secs(30), move || {
        fs::read_dir(&path).map(|d| d.count())
    });
    assert_eq!(
        gone.expect("mount point readable"),
        0,
        "mount point is an empty directory again"
    );
}
