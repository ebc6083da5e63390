//! File data through a mount: large files across many chunks, random-offset I/O against an
//! in-memory model, sparse files, and what every replica holds.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;

use dfs_tests::{Cluster, ClusterOptions, XorShift, pseudo_random_bytes, sh, sha256_file};

#[test]
fn a_large_file_written_with_dd_reads_back_identically() {
    // Default 64 MiB chunks: 320 MiB spans five chunks and crosses four boundaries.
    let cluster = Cluster::start_default();
    let mount = cluster.mount();
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("big");
    fs::write(&src, pseudo_random_bytes(42, 320 << 20)).unwrap();

    sh(
        mount.path(),
        &format!("dd if={} of=big bs=1M status=none", src.display()),
    );
    assert_eq!(fs::metadata(mount.join("big")).unwrap().len(), 320 << 20);
    assert_eq!(sha256_file(&mount.join("big")), sha256_file(&src));

    // A fresh mount has no cached pages: the bytes come from the chunkservers.
    drop(mount);
    let mount = cluster.mount();
    assert_eq!(sha256_file(&mount.join("big")), sha256_file(&src));
    let copy = local.path().join("copy");
    sh(
        mount.path(),
        &format!("dd if=big of={} bs=4M status=none", copy.display()),
    );
    assert_eq!(sha256_file(&copy), sha256_file(&src));
}

#[test]
fn random_offset_writes_and_reads_match_a_model() {
    // Small chunks so that random I/O keeps crossing chunk boundaries.
    let cluster = Cluster::start(ClusterOptions {
        chunk_size: 1 << 20,
        ..Default::default()
    });
    let mount = cluster.mount();
    let path = mount.join("random");
    let size = 5 << 20;
    let mut model = vec![0u8; size];
    let mut rng = XorShift::new(7);
    {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        file.set_len(size as u64).unwrap();
        for round in 0..400 {
            let len = 1 + rng.below(300_000) as usize;
            let off = rng.below((size - len) as u64) as usize;
            if rng.below(3) == 0 {
                let mut buf = vec![0u8; len];
                file.read_exact_at(&mut buf, off as u64).unwrap();
                assert!(
                    buf == model[off..off + len],
                    "round {round}: read {len}@{off} differs"
                );
            } else {
                let data = pseudo_random_bytes(round, len);
                file.write_all_at(&data, off as u64).unwrap();
                model[off..off + len].copy_from_slice(&data);
            }
        }
    }
    assert!(
        fs::read(&path).unwrap() == model,
        "file differs from the model after close"
    );

    // And from another mount, which shares no cache with the writer.
    let other = cluster.mount();
    assert!(
        fs::read(other.join("random")).unwrap() == model,
        "second mount sees other bytes"
    );
}

#[test]
fn sparse_files_read_back_zeros() {
    let cluster = Cluster::start(ClusterOptions {
        chunk_size: 1 << 20,
        ..Default::default()
    });
    let mount = cluster.mount();
    let path = mount.join("sparse");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    // Data at 3.5 MiB only: chunks 0-2 are never written.
    file.write_all_at(b"tail", (7 << 19) as u64).unwrap();
    drop(file);
    let bytes = fs::read(&path).unwrap();
    assert_eq!(bytes.len(), (7 << 19) + 4);
    assert!(bytes[..7 << 19].iter().all(|&b| b == 0), "hole is not zero");
    assert_eq!(&bytes[7 << 19..], b"tail");

    // Grow with truncate: the new tail is zeros too; shrink, then grow again: no stale bytes.
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(5 << 20).unwrap();
    file.set_len((7 << 19) + 2).unwrap();
    file.set_len(6 << 20).unwrap();
    drop(file);
    let bytes = fs::read(&path).unwrap();
    assert_eq!(bytes.len(), 6 << 20);
    assert_eq!(&bytes[7 << 19..(7 << 19) + 4], b"ta\0\0");
    assert!(
        bytes[(7 << 19) + 2..].iter().all(|&b| b == 0),
        "stale bytes after truncate"
    );
}

#[test]
fn every_replica_holds_the_written_chunks() {
    let cluster = Cluster::start(ClusterOptions {
        chunk_size: 1 << 20,
        ..Default::default()
    });
    let mount = cluster.mount();
    fs::write(mount.join("f"), pseudo_random_bytes(3, 3 << 20)).unwrap();
    drop(mount);
    // Three chunks, each on all three chunkservers: every server stores 3 MiB of chunk data.
    for i in 0..3 {
        let out = sh(
            &cluster.chunkserver_data_dir(i),
            "find . -name '*.data' | xargs cat | wc -c",
        );
        assert_eq!(out.trim(), (3u64 << 20).to_string(), "chunkserver {i}");
    }
}
