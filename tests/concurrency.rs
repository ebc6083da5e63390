//! Requests run concurrently: a read stuck on unresponsive chunkservers does not hold up other
//! calls on the same mount.

use std::fs;
use std::thread;
use std::time::Duration;

use dfs_tests::{Cluster, ClusterOptions, pseudo_random_bytes, within};

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
    let reader = thread::spawn(move || fs::read(path));
    // Give the read time to be sent (ordering only; nothing is asserted on timing here).
    thread::sleep(Duration::from_millis(500));
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
