//! Writing a small file costs fewer round trips and keeps every promise: a new file's chunk 0
//! is placed by the create and recorded by the first commit, so a file written and closed on
//! one mount reads back byte for byte on another; a file left empty allocates no chunk and
//! leaves no replica; a chunkserver killed while small files are written loses nothing that
//! `close` acknowledged (the placed chunk is recorded and its chain replaced); and a chain
//! write that cannot complete is reported by `close`.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use dfs_tests::{Cluster, ClusterOptions, close, pseudo_random_bytes, within};

/// Creates `path` exclusively, writes `data` and closes it, reporting close's outcome.
fn write_new(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(data)?;
    close(file)
}

/// The contents of small file `i` (1 to 8 KiB, as the small-file benchmark has them).
fn small(i: u64) -> Vec<u8> {
    pseudo_random_bytes(i, 1024 + (i as usize * 997) % 7169)
}

#[test]
fn small_files_written_on_one_mount_read_back_on_another() {
    let cluster = Cluster::start_default();
    let a = cluster.mount();
    let b = cluster.mount();
    fs::create_dir(a.join("d")).unwrap();
    for i in 0..40 {
        write_new(&a.join(format!("d/f{i}")), &small(i)).unwrap();
    }
    for i in 0..40 {
        let path = b.join(format!("d/f{i}"));
        assert_eq!(fs::read(&path).unwrap(), small(i), "file {i}");
        // One chunk, recorded with every replica and the committed length.
        let chunks = cluster.chunks_of(fs::metadata(&path).unwrap().ino());
        assert_eq!(chunks.len(), 1, "file {i}: {chunks:?}");
        assert_eq!(chunks[0].index, 0);
        assert_eq!(chunks[0].length, small(i).len() as u64);
        assert_eq!(chunks[0].replicas.len(), 3);
    }
    // The writing mount reads its own files too, and a file grows past its first flush.
    let mut file = OpenOptions::new()
        .append(true)
        .open(a.join("d/f0"))
        .unwrap();
    file.write_all(b"tail").unwrap();
    close(file).unwrap();
    let mut expected = small(0);
    expected.extend_from_slice(b"tail");
    assert_eq!(fs::read(b.join("d/f0")).unwrap(), expected);
}

#[test]
fn a_file_read_through_a_second_descriptor_before_its_close_sees_the_writes() {
    let cluster = Cluster::start_default();
    let a = cluster.mount();
    let mut writer = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(a.join("f"))
        .unwrap();
    writer.write_all(&small(7)).unwrap();
    // A second open reloads the chunk map from the master, which has not recorded the placed
    // chunk yet: the mount keeps it.
    assert_eq!(fs::read(a.join("f")).unwrap(), small(7));
    writer.write_all(b"more").unwrap();
    close(writer).unwrap();
    let b = cluster.mount();
    let mut expected = small(7);
    expected.extend_from_slice(b"more");
    assert_eq!(fs::read(b.join("f")).unwrap(), expected);
}

#[test]
fn a_file_created_and_left_empty_allocates_no_chunk() {
    let cluster = Cluster::start_default();
    let a = cluster.mount();
    for i in 0..10 {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(a.join(format!("empty{i}")))
            .unwrap();
        close(file).unwrap();
    }
    let b = cluster.mount();
    for i in 0..10 {
        let path = b.join(format!("empty{i}"));
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), 0);
        assert_eq!(cluster.chunks_of(meta.ino()), Vec::new(), "empty{i}");
    }
    for i in 0..3 {
        assert_eq!(cluster.replica_files(i), Vec::<std::path::PathBuf>::new());
    }
}

#[test]
fn a_chunkserver_killed_during_small_file_writes_loses_no_acknowledged_file() {
    let mut cluster = Cluster::start(ClusterOptions {
        chunkservers: 4,
        rpc_timeout_ms: 2_000,
        ..Default::default()
    });
    let a = cluster.mount();
    let root = a.path().to_path_buf();
    // Files whose placement names the server are created before the kill and written after.
    let open: Vec<(u64, File)> = (0..12)
        .map(|i| {
            let path = root.join(format!("early{i}"));
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .unwrap();
            (i, file)
        })
        .collect();
    cluster.stop_chunkserver(1, libc::SIGKILL);
    let writes = within(Duration::from_secs(120), move || {
        let mut acknowledged = Vec::new();
        for (i, mut file) in open {
            if file.write_all(&small(i)).is_ok() && close(file).is_ok() {
                acknowledged.push(format!("early{i}"));
            }
        }
        for i in 100..130 {
            let name = format!("late{i}");
            if write_new(&root.join(&name), &small(i)).is_ok() {
                acknowledged.push(name);
            }
        }
        acknowledged
    });
    // Degraded writes go on on the survivors: every close succeeded.
    assert_eq!(writes.len(), 42, "acknowledged: {writes:?}");
    let b = cluster.mount();
    for name in &writes {
        let i: u64 = name
            .trim_start_matches(char::is_alphabetic)
            .parse()
            .unwrap();
        assert_eq!(fs::read(b.join(name)).unwrap(), small(i), "{name}");
    }
}

#[test]
fn a_chain_write_that_cannot_complete_is_reported_by_close() {
    let mut cluster = Cluster::start(ClusterOptions {
        chunkservers: 1,
        replication: 1,
        rpc_timeout_ms: 2_000,
        ..Default::default()
    });
    let a = cluster.mount();
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(a.join("f"))
        .unwrap();
    // The only replica of the placed chunk (the last of its chain) is gone.
    cluster.stop_chunkserver(0, libc::SIGKILL);
    let result = within(Duration::from_secs(60), move || {
        file.write_all(&small(3))?;
        close(file)
    });
    assert!(result.is_err(), "close reported success for a lost write");
    let b = cluster.mount();
    assert_eq!(fs::metadata(b.join("f")).unwrap().len(), 0);
}
