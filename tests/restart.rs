//! Restarts and outages: everything a mount wrote is there after the whole cluster restarts,
//! and a mount whose master is gone fails calls in bounded time, then recovers.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use dfs_tests::{Cluster, ClusterOptions, errno, pseudo_random_bytes, sh, within};

#[test]
fn everything_survives_a_restart_of_the_whole_cluster() {
    let mut cluster = Cluster::start(ClusterOptions {
        chunk_size: 1 << 20,
        ..Default::default()
    });
    let blob = pseudo_random_bytes(11, (5 << 20) + 123);
    let before;
    {
        let mount = cluster.mount();
        let m = mount.path();
        sh(
            m,
            "mkdir -p d/e && echo hello > d/e/f && ln -s e/f d/link && ln d/e/f d/hard",
        );
        fs::write(m.join("blob"), &blob).unwrap();
        fs::set_permissions(m.join("blob"), fs::Permissions::from_mode(0o640)).unwrap();
        sh(
            m,
            "touch -m -d '2001-02-03 04:05:06.789' d/e/f && mkfifo d/fifo",
        );
        before = sh(m, "find . | sort | xargs stat -c '%n %F %a %s %h %Y %y'");
        mount.unmount();
    }

    cluster.restart_all();

    let mount = cluster.mount();
    let m = mount.path();
    let after = sh(m, "find . | sort | xargs stat -c '%n %F %a %s %h %Y %y'");
    assert_eq!(after, before, "attributes differ after restart");
    assert!(
        fs::read(m.join("blob")).unwrap() == blob,
        "blob differs after restart"
    );
    assert_eq!(fs::read(m.join("d/link")).unwrap(), b"hello\n");
    assert_eq!(fs::metadata(m.join("d/hard")).unwrap().nlink(), 2);
    // And it still takes writes.
    fs::write(m.join("d/new"), b"after").unwrap();
    assert_eq!(fs::read(m.join("d/new")).unwrap(), b"after");
}

#[test]
fn calls_fail_in_bounded_time_while_the_master_is_down_and_work_when_it_returns() {
    let mut cluster = Cluster::start(ClusterOptions {
        rpc_timeout_ms: 2_000,
        ..Default::default()
    });
    let mount = cluster.mount();
    fs::write(mount.join("before"), b"1").unwrap();

    cluster.stop_master(libc::SIGKILL);
    // A new name is never in the kernel's caches, so this reaches the (dead) master.
    let path = mount.join("while-down");
    let result = within(Duration::from_secs(60), move || fs::write(path, b"2"));
    let err = result.expect_err("create succeeded without a master");
    assert_eq!(errno(&err), libc::EIO, "{err}");

    cluster.restart_master();
    // The mount reconnects by itself: no remount. The first write may come before the
    // chunkservers have reported to the new master; it waits for them rather than failing.
    // (fsync, because `close` errors are invisible through `fs::write`.)
    let mut after = fs::File::create(mount.join("after")).unwrap();
    after.write_all(b"3").unwrap();
    after.sync_all().unwrap();
    drop(after);
    assert_eq!(fs::read(mount.join("after")).unwrap(), b"3");
    assert_eq!(fs::read(mount.join("before")).unwrap(), b"1");
    assert!(!mount.join("while-down").exists());
}

#[test]
fn unmounting_with_sigterm_leaves_no_mount_behind() {
    let cluster = Cluster::start_default();
    let mount = cluster.mount();
    let path = mount.path().to_path_buf();
    fs::write(mount.join("f"), b"x").unwrap();
    let status = mount.unmount();
    assert!(status.success(), "dfs-fuse exited with {status}");
    assert!(!dfs_tests::is_mounted(&path));
}
