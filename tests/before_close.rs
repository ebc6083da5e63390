//! What a mount sends before `close` while a file is open for writing: a `chmod` through the
//! open file sends the buffered bytes to the replicas, and publishes nothing until the close.
//!
//! Alone in its binary: the test watches for the first commit of an open file, and the kernel
//! sends a flush (which commits) at the close of *any* descriptor of the file. A fork by
//! another test thread of the same process (every spawn of a server or a mount) duplicates the
//! descriptor, and the child's close-on-exec closes it: an early commit, as POSIX close
//! semantics call for, seen as a failure here when tests shared the binary.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use dfs_tests::{Cluster, ClusterOptions, pseudo_random_bytes, wait_until};

/// A `chmod` through the open file (what tar, cp -p and rsync do right before `close`)
/// sends the buffered bytes to the replicas at once, before the close; after it they read
/// back whole, with the new mode, on another mount.
#[test]
fn an_attribute_change_while_writing_sends_the_bytes_before_the_close() {
    let cluster = Cluster::start(ClusterOptions::default());
    let a = cluster.mount();
    let b = cluster.mount();
    let data = pseudo_random_bytes(62, 6000);
    let mut file = fs::File::create(a.join("f")).unwrap();
    file.write_all(&data).unwrap();
    // Buffered: no replica holds the bytes yet.
    let holding = |cluster: &Cluster| {
        (0..3)
            .filter(|&i| {
                cluster
                    .replica_files(i)
                    .iter()
                    .any(|p| fs::read(p).is_ok_and(|bytes| bytes == data))
            })
            .count()
    };
    assert_eq!(
        holding(&cluster),
        0,
        "bytes left the mount before any call sent them"
    );
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .unwrap();
    wait_until(
        Duration::from_secs(10),
        "all three replicas hold the bytes",
        || holding(&cluster) == 3,
    );
    // Sent, not published: the other mount still sees the file as it was created.
    let before = fs::metadata(b.join("f")).unwrap();
    assert_eq!((before.len(), before.mode() & 0o7777), (0, 0o644));
    drop(file);
    // Close-to-open: an open on the other mount sees the commit (a bare `stat` may answer
    // from its kernel's attribute cache for up to the attribute time-to-live).
    let seen = fs::File::open(b.join("f")).unwrap().metadata().unwrap();
    assert_eq!((seen.len(), seen.mode() & 0o7777), (6000, 0o600));
    assert!(fs::read(b.join("f")).unwrap() == data);
}
