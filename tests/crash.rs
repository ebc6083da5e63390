//! Crash durability: after kill -9 of the master and every chunkserver, every fsync'd byte
//! and every acknowledged create, rename and unlink is there; a file that was being written
//! without fsync is a prefix of what was written, or absent, never garbage.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;

use dfs_tests::{Cluster, ClusterOptions, XorShift, pseudo_random_bytes};

const CHUNK: u64 = 1 << 20;

#[test]
fn fsynced_data_and_acknowledged_namespace_changes_survive_a_cluster_crash() {
    let mut cluster = Cluster::start(ClusterOptions {
        chunk_size: CHUNK,
        ..Default::default()
    });
    let mut mount = cluster.mount();
    let m = mount.path().to_path_buf();
    let mut rng = XorShift::new(42);
    // What the namespace must hold after the crash: path -> content.
    let mut expected: BTreeMap<String, Vec<u8>> = BTreeMap::new();

    fs::create_dir(m.join("dir")).unwrap();
    for i in 0..24u64 {
        let len = match i % 4 {
            0 => 0,
            1 => rng.below(4096) as usize,
            2 => rng.below(CHUNK) as usize + 1,
            _ => (2 * CHUNK + rng.below(CHUNK)) as usize,
        };
        let data = pseudo_random_bytes(100 + i, len);
        let name = format!("dir/file{i:02}");
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(m.join(&name))
            .unwrap();
        file.write_all(&data).unwrap();
        file.sync_all().unwrap();
        expected.insert(name, data);
    }
    // Acknowledged renames and unlinks (the files were fsync'd before).
    for i in (0..24u64).step_by(5) {
        let from = format!("dir/file{i:02}");
        let to = format!("dir/renamed{i:02}");
        fs::rename(m.join(&from), m.join(&to)).unwrap();
        let data = expected.remove(&from).unwrap();
        expected.insert(to, data);
    }
    for i in [1u64, 8, 13, 22] {
        let name = format!("dir/file{i:02}");
        fs::remove_file(m.join(&name)).unwrap();
        expected.remove(&name);
    }
    // Overwrite in place under fsync.
    let name = "dir/file02".to_string();
    let mut file = OpenOptions::new().write(true).open(m.join(&name)).unwrap();
    file.write_all(b"overwritten").unwrap();
    file.sync_data().unwrap();
    drop(file);
    expected.get_mut(&name).unwrap()[..11].copy_from_slice(b"overwritten");

    // Being written, never fsync'd nor closed, when everything crashes.
    let unsynced = pseudo_random_bytes(7, (2 * CHUNK + 777) as usize);
    let mut open = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(m.join("dir/unsynced"))
        .unwrap();
    open.write_all(&unsynced).unwrap();

    cluster.crash_and_restart_all();
    // The client crashes too, so the open file is never flushed or closed.
    mount.kill();
    drop(open);

    let mount = cluster.mount();
    let m = mount.path();
    let mut names: Vec<String> = fs::read_dir(m.join("dir"))
        .unwrap()
        .map(|e| format!("dir/{}", e.unwrap().file_name().to_string_lossy()))
        .filter(|n| n != "dir/unsynced")
        .collect();
    names.sort();
    let want: Vec<&String> = expected.keys().collect();
    assert_eq!(names.iter().collect::<Vec<_>>(), want, "names after crash");
    for (name, data) in &expected {
        let seen = fs::read(m.join(name)).unwrap();
        assert_eq!(seen.len(), data.len(), "{name}: size after crash");
        assert!(&seen == data, "{name}: content differs after crash");
    }
    match fs::read(m.join("dir/unsynced")) {
        Ok(seen) => assert!(
            seen.len() <= unsynced.len() && seen[..] == unsynced[..seen.len()],
            "unsynced file is not a prefix of what was written ({} bytes)",
            seen.len()
        ),
        Err(err) => assert_eq!(err.kind(), std::io::ErrorKind::NotFound),
    }
    // The cluster takes writes again.
    fs::write(m.join("dir/after"), b"after the crash").unwrap();
    assert_eq!(fs::read(m.join("dir/after")).unwrap(), b"after the crash");
}

#[test]
fn close_reports_a_write_no_chunkserver_took() {
    use std::os::fd::IntoRawFd;

    let mut cluster = Cluster::start(ClusterOptions {
        chunk_size: CHUNK,
        rpc_timeout_ms: 2_000,
        ..Default::default()
    });
    let mount = cluster.mount();
    let path = mount.join("f");
    fs::write(&path, b"committed").unwrap();
    for i in 0..cluster.options.chunkservers {
        cluster.stop_chunkserver(i, libc::SIGKILL);
    }

    // The write is buffered by the mount; `close` sends it, and its failure is close's error.
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(b", lost").unwrap();
    let fd = file.into_raw_fd();
    // SAFETY: `fd` was just taken out of the `File`, so it is open and closed exactly once.
    let closed = unsafe { libc::close(fd) };
    let err = std::io::Error::last_os_error();
    assert_eq!(
        closed, -1,
        "close succeeded although no replica took the write"
    );
    // EIO, or ENOSPC once the master finds fewer live servers than the minimum replication
    // to replace the failed ones with (the replicated data path's answer).
    assert!(
        [Some(libc::EIO), Some(libc::ENOSPC)].contains(&err.raw_os_error()),
        "{err}"
    );

    // What was committed before is intact once the servers are back.
    for i in 0..cluster.options.chunkservers {
        cluster.restart_chunkserver(i);
    }
    assert_eq!(fs::read(&path).unwrap(), b"committed");
}
