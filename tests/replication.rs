//! The replicated data path under failure: a chunkserver killed with SIGKILL in the middle of
//! a large write and of a large read, and a replica corrupted on disk. The application sees
//! correct bytes every time; the master learns which replicas went bad.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::time::Duration;

use dfs_tests::{Cluster, ClusterOptions, drop_page_cache, pseudo_random_bytes, sha256_file};

/// Small chunks so that a file of a few dozen MiB spans many chunks and chains.
const CHUNK: u64 = 8 << 20;

fn small_chunks() -> Cluster {
    Cluster::start(ClusterOptions {
        chunk_size: CHUNK,
        ..Default::default()
    })
}

#[test]
fn a_write_survives_a_chunkserver_killed_half_way() {
    let mut cluster = small_chunks();
    let mount = cluster.mount();
    let data = pseudo_random_bytes(11, 40 << 20);
    // Killed when 12 MiB are written: chunk 1 is half written on all three servers, so its
    // chain must be replaced under the writer, and chunks 2.. are allocated while the master
    // still counts the dead server as live.
    let split = 12 << 20;
    let path = mount.join("big");
    let mut file = fs::File::create(&path).unwrap();
    file.write_all(&data[..split]).unwrap();
    cluster.stop_chunkserver(1, libc::SIGKILL);
    for piece in data[split..].chunks(1 << 20) {
        file.write_all(piece).unwrap();
    }
    file.sync_all().unwrap();
    drop(file);
    assert_eq!(fs::read(&path).unwrap(), data);

    // Every chunk is on the survivors only, at a version that tells the dead replica apart.
    let dead = cluster.chunkserver_addr(1);
    let ino = fs::metadata(&path).unwrap().ino();
    let chunks = cluster.chunks_of(ino);
    assert_eq!(chunks.len(), 5);
    for chunk in &chunks {
        let addrs: Vec<&str> = chunk.replicas.iter().map(|r| r.addr.as_str()).collect();
        assert!(!addrs.contains(&dead.as_str()), "{chunk:?}");
        assert_eq!(addrs.len(), 2, "{chunk:?}");
    }
    assert!(
        chunks[1].version > 1,
        "chunk 1 was rewritten: {:?}",
        chunks[1]
    );

    // A fresh mount (no page cache) reads every byte back from the survivors.
    drop(mount);
    let mount = cluster.mount();
    let copy = fs::read(mount.join("big")).unwrap();
    assert!(copy == data, "data read back differs");
}

#[test]
fn a_read_survives_a_chunkserver_killed_half_way() {
    let mut cluster = small_chunks();
    let data = pseudo_random_bytes(12, 40 << 20);
    {
        let mount = cluster.mount();
        fs::write(mount.join("big"), &data).unwrap();
    }
    // Without the block cache and read-ahead, so the chunks after the kill really are read
    // from chunkservers then, not fetched ahead before it.
    let mount = cluster.mount_with(&["--cache-bytes", "0", "--client-read-ahead-bytes", "0"]);
    let path = mount.join("big");
    let ino = fs::metadata(&path).unwrap().ino();
    // Kill the server readers try first for the chunks not read yet.
    let first = &cluster.chunks_of(ino)[3].replicas[0].addr;
    let victim = cluster.chunkserver_index(first);
    let mut file = fs::File::open(&path).unwrap();
    let mut read = vec![0u8; data.len()];
    let split = 20 << 20;
    file.read_exact(&mut read[..split]).unwrap();
    cluster.stop_chunkserver(victim, libc::SIGKILL);
    file.read_exact(&mut read[split..]).unwrap();
    assert!(read == data, "data read back differs");
}

#[test]
fn a_corrupt_replica_is_read_around_and_reported() {
    let cluster = small_chunks();
    let data = pseudo_random_bytes(13, 3 << 20);
    let ino = {
        let mount = cluster.mount();
        let path = mount.join("f");
        fs::write(&path, &data).unwrap();
        fs::metadata(&path).unwrap().ino()
    };
    // Flip one byte of the replica readers try first.
    let chunk = cluster.chunks_of(ino).remove(0);
    let bad_addr = chunk.replicas[0].addr.clone();
    let bad = cluster.chunkserver_index(&bad_addr);
    let data_file = cluster.replica_data_file(bad, chunk.chunk_id).unwrap();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&data_file)
        .unwrap();
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, 100_000).unwrap();
    file.write_all_at(&[byte[0] ^ 0x5a], 100_000).unwrap();
    file.sync_all().unwrap();
    drop(file);

    // A fresh mount reads correct bytes from another replica.
    let mount = cluster.mount();
    assert_eq!(fs::read(mount.join("f")).unwrap(), data);

    // The master dropped the bad replica from the chunk, and the server deletes it. With
    // three servers the re-replication that follows may copy the chunk straight back to the
    // same server (the only one without it), so either state is the end of the repair: no
    // replica there, or a fresh copy holding the original byte. The corrupt one is never
    // seen again. Polled, with a generous bound as a hang detector: the deletion rides on a
    // heartbeat.
    let mut waited = 0;
    loop {
        let replicas: Vec<String> = cluster.chunks_of(ino)[0]
            .replicas
            .iter()
            .map(|r| r.addr.clone())
            .collect();
        let on_disk = cluster.replica_data_file(bad, chunk.chunk_id).map(|path| {
            let mut now = [0u8; 1];
            let file = fs::File::open(path).unwrap();
            file.read_exact_at(&mut now, 100_000).map(|()| now[0])
        });
        match on_disk {
            None if !replicas.contains(&bad_addr) => {
                assert_eq!(replicas.len(), 2);
                break;
            }
            Some(Ok(now)) if now == byte[0] && replicas.contains(&bad_addr) => {
                assert_eq!(replicas.len(), 3);
                break;
            }
            _ => {}
        }
        waited += 1;
        assert!(
            waited < 600,
            "bad replica still listed or on disk: {replicas:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Still readable, now from the good replicas only.
    drop(mount);
    let mount = cluster.mount();
    assert_eq!(sha256_file(&mount.join("f")), {
        let local = tempfile::tempdir().unwrap();
        let copy = local.path().join("f");
        fs::write(&copy, &data).unwrap();
        sha256_file(&copy)
    });
}

#[test]
fn a_cached_file_is_read_again_without_any_chunkserver() {
    let mut cluster = small_chunks();
    let data = pseudo_random_bytes(14, 5 << 20);
    {
        let mount = cluster.mount();
        fs::write(mount.join("cached"), &data).unwrap();
        fs::write(mount.join("uncached"), &data).unwrap();
    }
    let mount = cluster.mount();
    assert_eq!(fs::read(mount.join("cached")).unwrap(), data);
    // With every chunkserver dead, no chunkserver read can succeed: the second read is
    // served by the mount's block cache (the page cache is dropped first).
    for i in 0..3 {
        cluster.stop_chunkserver(i, libc::SIGKILL);
    }
    drop_page_cache(&mount.join("cached"));
    assert_eq!(fs::read(mount.join("cached")).unwrap(), data);
    // A file this mount never read needs the chunkservers, and fails without them.
    let err = fs::read(mount.join("uncached")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
}

#[test]
fn a_cached_block_is_never_served_after_another_mount_rewrote_it() {
    let cluster = small_chunks();
    let reader = cluster.mount();
    let writer = cluster.mount();
    let old = pseudo_random_bytes(15, 3 << 20);
    fs::write(reader.join("f"), &old).unwrap();
    // Read through the daemon (not the pages the write left), filling its block cache.
    drop_page_cache(&reader.join("f"));
    assert_eq!(fs::read(reader.join("f")).unwrap(), old);

    // Another mount rewrites the middle in place (same chunk, same size).
    let patch = pseudo_random_bytes(16, 1 << 20);
    {
        let file = OpenOptions::new()
            .write(true)
            .open(writer.join("f"))
            .unwrap();
        file.write_all_at(&patch, 1 << 20).unwrap();
    }
    let mut new = old.clone();
    new[1 << 20..2 << 20].copy_from_slice(&patch);
    drop_page_cache(&reader.join("f"));
    assert!(
        fs::read(reader.join("f")).unwrap() == new,
        "stale bytes served"
    );
}

#[test]
fn fio_psync_libaio_and_direct_io_write_and_verify() {
    assert!(
        std::process::Command::new("fio")
            .arg("--version")
            .output()
            .is_ok(),
        "fio is not installed: scripts/test installs it (apt-get install -y fio)"
    );
    let cluster = small_chunks();
    let mount = cluster.mount();
    let jobs: [(&str, &[&str]); 4] = [
        (
            "psync",
            &["--ioengine=psync", "--rw=write", "--bs=1m", "--size=16m"],
        ),
        (
            "psync-rand",
            &["--ioengine=psync", "--rw=randwrite", "--bs=4k", "--size=2m"],
        ),
        (
            "libaio",
            &[
                "--ioengine=libaio",
                "--iodepth=8",
                "--rw=write",
                "--bs=128k",
                "--size=16m",
            ],
        ),
        (
            "direct",
            &[
                "--ioengine=libaio",
                "--iodepth=8",
                "--direct=1",
                "--rw=randwrite",
                "--bs=4k",
                "--size=2m",
            ],
        ),
    ];
    for (name, args) in jobs {
        // Writes with a checksum in every block, then reads everything back and verifies.
        let output = std::process::Command::new("fio")
            .arg(format!("--name={name}"))
            .arg(format!("--directory={}", mount.path().display()))
            .args(["--verify=crc32c", "--do_verify=1", "--end_fsync=1"])
            // No verify-state files left behind in the working directory.
            .arg("--verify_state_save=0")
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "fio {name} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let report = String::from_utf8_lossy(&output.stdout);
        assert!(!report.contains("verify: bad"), "fio {name}: {report}");
    }
}

#[test]
fn writes_with_fewer_live_servers_than_the_minimum_fail_with_enospc() {
    let mut cluster = small_chunks();
    let mount = cluster.mount();
    // One server down: the write completes on the two others (the minimum).
    cluster.stop_chunkserver(2, libc::SIGKILL);
    let data = pseudo_random_bytes(17, 10 << 20);
    let mut file = fs::File::create(mount.join("degraded")).unwrap();
    file.write_all(&data).unwrap();
    file.sync_all().unwrap();
    drop(file);
    assert_eq!(fs::read(mount.join("degraded")).unwrap(), data);

    // Two down: one replica is below the minimum of two, and the application is told so.
    cluster.stop_chunkserver(1, libc::SIGKILL);
    let mut file = fs::File::create(mount.join("too-few")).unwrap();
    let err = file
        .write_all(&data)
        .and_then(|()| file.sync_all())
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
}
