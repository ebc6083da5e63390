//! Requests run concurrently: a read stuck on unresponsive chunkservers does not hold up other
//! calls on the same mount.

use std::fs;
use std::thread;
use std::time::Duration;

use dfs_tests::{Cluster, ClusterOptions, in_syscall, pseudo_random_bytes, wait_until, within};

#[test]
fn a_stuck_read_does_not_block_other_calls() {
    let cluster = Cluster::start(ClusterOptions {
        rpc_timeout_ms: 30_000,
        ..Default::default()
    });
    let data = pseudo_random_bytes(5, 8 << 20);
    {
        let writer = cluster.mount();
        fs::write(writer.join("slow"), &data).unwrap();
        fs::write(writer.join("other"), b"metadata only").unwrap();
    }
    // A fresh mount has nothing cached, so reading "slow" must reach the chunkservers.
    let mount = cluster.mount();
    for i in 0..3 {
        cluster.pause_chunkserver(i);
    }
    let path = mount.join("slow");
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let reader = thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        let _ = tid_tx.send(unsafe { libc::gettid() });
        fs::read(path)
    });
    // The reader is in read(2) on the file: its request has reached the daemon, which
    // cannot answer it while every replica is frozen.
    let tid = tid_rx.recv().unwrap();
    wait_until(Duration::from_secs(30), "the reader is in read(2)", || {
        in_syscall(tid, libc::SYS_read)
    });
    assert!(
        !reader.is_finished(),
        "the read cannot finish while every replica is frozen"
    );

    // Metadata calls on the same mount go through while the read waits.
    let root = mount.path().to_path_buf();
    let listing = within(Duration::from_secs(10), move || {
        fs::create_dir(root.join("made-while-stuck")).unwrap();
        fs::write(root.join("made-while-stuck/empty"), b"").unwrap();
        let meta = fs::metadata(root.join("other")).unwrap();
        let mut names: Vec<String> = fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        (meta.len(), names)
    });
    assert_eq!(listing.0, 13);
    assert_eq!(listing.1, vec!["made-while-stuck", "other", "slow"]);
    assert!(
        !reader.is_finished(),
        "the read finished while every replica was frozen"
    );

    // Thawed servers answer the waiting read with the right bytes.
    for i in 0..3 {
        cluster.resume_chunkserver(i);
    }
    let read = reader
        .join()
        .unwrap()
        .expect("read after the servers thawed");
    assert!(read == data, "read returned other bytes");
}
