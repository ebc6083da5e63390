//! Write-through block cache: what a mount writes in full, and a block it writes from its
//! start to the end of the chunk's data (a short block), is read back from its block cache,
//! and never after it went stale — not after another mount rewrote the file, not after a
//! truncate and regrowth, not for blocks written only in part, not for bytes the chunk gained
//! after a short block.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;

use dfs_tests::{Cluster, ClusterOptions, close, drop_page_cache, pseudo_random_bytes, read_fresh};

/// Small chunks so that a file of a few MiB spans several chunks.
const CHUNK: u64 = 2 << 20;

fn small_chunks() -> Cluster {
    Cluster::start(ClusterOptions {
        chunk_size: CHUNK,
        ..Default::default()
    })
}

fn read_at(path: &std::path::Path, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let n = fs::File::open(path)?.read_at(&mut buf, offset)?;
    buf.truncate(n);
    Ok(buf)
}

#[test]
fn a_file_written_here_reads_back_with_every_chunkserver_killed() {
    let mut cluster = small_chunks();
    let mount = cluster.mount();
    // Several chunks, ending in a short block.
    let data = pseudo_random_bytes(31, (5 << 20) + 1234);
    fs::write(mount.join("written"), &data).unwrap();
    // A small file: one short block, from its start to the end of the chunk's data.
    let small = pseudo_random_bytes(30, 5000);
    fs::write(mount.join("small"), &small).unwrap();
    // A block this mount wrote only in part cannot be cached: its other bytes are the
    // replicas'.
    let patched_at = (3 << 20) + 100;
    let patch = pseudo_random_bytes(32, 10);
    {
        let file = OpenOptions::new()
            .write(true)
            .open(mount.join("written"))
            .unwrap();
        file.write_all_at(&patch, patched_at).unwrap();
    }
    let mut expected = data.clone();
    expected[patched_at as usize..patched_at as usize + 10].copy_from_slice(&patch);

    // With every chunkserver dead no chunkserver read can succeed: what is read comes from the
    // block cache (the kernel's page cache is dropped first).
    for i in 0..3 {
        cluster.stop_chunkserver(i, libc::SIGKILL);
    }
    assert!(
        read_fresh(&mount.join("small")) == small,
        "small file read wrong"
    );
    let path = mount.join("written");
    drop_page_cache(&path);
    assert!(read_at(&path, 0, 3 << 20).unwrap() == expected[..3 << 20]);
    let tail = (4 << 20) as usize;
    assert!(read_at(&path, tail as u64, 2 << 20).unwrap() == expected[tail..]);
    // The block written in part is not served from the cache, old or new: it needs a replica.
    let err = read_at(&path, patched_at, 10).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
}

#[test]
fn a_file_written_here_is_not_served_after_another_mount_rewrote_it() {
    let cluster = small_chunks();
    let first = cluster.mount();
    let second = cluster.mount();
    let old = pseudo_random_bytes(33, 3 << 20);
    fs::write(first.join("f"), &old).unwrap();
    drop_page_cache(&first.join("f"));
    assert!(fs::read(first.join("f")).unwrap() == old);

    // The other mount rewrites the middle in place (same chunks, same size)...
    let patch = pseudo_random_bytes(34, 1 << 20);
    {
        let file = OpenOptions::new()
            .write(true)
            .open(second.join("f"))
            .unwrap();
        file.write_all_at(&patch, 1 << 20).unwrap();
    }
    let mut new = old.clone();
    new[1 << 20..2 << 20].copy_from_slice(&patch);
    drop_page_cache(&first.join("f"));
    assert!(
        fs::read(first.join("f")).unwrap() == new,
        "stale bytes served"
    );

    // ...then replaces the whole file with one of the same size.
    let replaced = pseudo_random_bytes(35, 3 << 20);
    fs::write(second.join("f"), &replaced).unwrap();
    drop_page_cache(&first.join("f"));
    assert!(
        fs::read(first.join("f")).unwrap() == replaced,
        "stale bytes served"
    );

    // And the first mount, writing again, caches its own newest bytes.
    let mine = pseudo_random_bytes(36, 3 << 20);
    fs::write(first.join("f"), &mine).unwrap();
    drop_page_cache(&second.join("f"));
    assert!(fs::read(second.join("f")).unwrap() == mine);
    drop_page_cache(&first.join("f"));
    assert!(fs::read(first.join("f")).unwrap() == mine);
}

#[test]
fn truncate_and_regrowth_never_show_old_bytes() {
    let cluster = small_chunks();
    let mount = cluster.mount();
    let other = cluster.mount();
    let path = mount.join("f");
    let old = pseudo_random_bytes(37, (3 << 20) + 100);
    fs::write(&path, &old).unwrap();

    // Cut inside a block of the second chunk, then write past the old end: what lies between
    // the cut and the new data reads as zeros, not as the cached old bytes.
    let cut = (2 << 20) + 5000;
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(cut).unwrap();
    let fresh = pseudo_random_bytes(38, 100 << 10);
    let fresh_at = (3 << 20) + 4096;
    file.write_all_at(&fresh, fresh_at).unwrap();
    drop(file);
    let mut expected = old[..cut as usize].to_vec();
    expected.resize(fresh_at as usize, 0);
    expected.extend_from_slice(&fresh);
    drop_page_cache(&path);
    assert!(
        fs::read(&path).unwrap() == expected,
        "old bytes after regrowth"
    );
    drop_page_cache(&other.join("f"));
    assert!(fs::read(other.join("f")).unwrap() == expected);

    // To zero and back by extending: nothing but zeros.
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(0).unwrap();
    file.set_len(3 << 20).unwrap();
    drop(file);
    drop_page_cache(&path);
    assert!(fs::read(&path).unwrap().iter().all(|&b| b == 0));

    // The other mount truncates and regrows what this mount wrote and cached.
    let mine = pseudo_random_bytes(39, 3 << 20);
    fs::write(&path, &mine).unwrap();
    let file = OpenOptions::new()
        .write(true)
        .open(other.join("f"))
        .unwrap();
    file.set_len(1 << 20).unwrap();
    file.set_len(3 << 20).unwrap();
    drop(file);
    let mut expected = mine[..1 << 20].to_vec();
    expected.resize(3 << 20, 0);
    drop_page_cache(&path);
    assert!(
        fs::read(&path).unwrap() == expected,
        "old bytes after regrowth"
    );
}

#[test]
fn reads_mixing_cached_and_fetched_blocks_return_the_file() {
    let cluster = small_chunks();
    let writer = cluster.mount();
    // Without read-ahead, so what is cached is exactly what was read.
    let reader = cluster.mount_with(&["--client-read-ahead-bytes", "0"]);
    let data = pseudo_random_bytes(40, (5 << 20) + 777);
    fs::write(writer.join("f"), &data).unwrap();
    let path = reader.join("f");
    // Scattered small reads cache scattered blocks (and a short tail block)...
    for offset in [0, 70_000, 200_000, (1 << 20) + 5, 3 << 20, (5 << 20) + 700] {
        let got = read_at(&path, offset, 100).unwrap();
        let end = (offset as usize + 100).min(data.len());
        assert!(got == data[offset as usize..end]);
    }
    // ...which large reads then join with the blocks they fetch.
    drop_page_cache(&path);
    assert!(fs::read(&path).unwrap() == data);
    for (offset, len) in [(60_000, 300_000), ((2 << 20) - 3, 3 << 20)] {
        drop_page_cache(&path);
        let got = read_at(&path, offset, len).unwrap();
        let end = (offset as usize + len).min(data.len());
        assert!(got == data[offset as usize..end]);
    }
}

/// Size of a checksum block, the unit the block cache keeps.
const BLOCK: u64 = 64 << 10;

#[test]
fn a_short_block_never_answers_for_bytes_the_chunk_gained_after_it() {
    let mut cluster = Cluster::start_default();
    let mount = cluster.mount();
    let path = mount.join("f");
    // A small file: its one block is cached short, ending where the chunk's data did.
    let head = pseudo_random_bytes(41, 5000);
    fs::write(&path, &head).unwrap();
    assert!(read_fresh(&path) == head);
    // A later open writes the next block from its start (cached short too). Block 0 is not
    // written, so its short entry stays, but the chunk now goes on past it: bytes 5000..64 KiB
    // are a hole, and the new bytes follow.
    let tail = pseudo_random_bytes(42, 3000);
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .write_all_at(&tail, BLOCK)
        .unwrap();
    let mut expected = head.clone();
    expected.resize(BLOCK as usize, 0);
    expected.extend_from_slice(&tail);
    assert!(
        read_fresh(&path) == expected,
        "the short block ended the read"
    );
    // The block fetched for that read replaced the short entry: with every chunkserver dead
    // the whole file still reads back, from the cache.
    for i in 0..3 {
        cluster.stop_chunkserver(i, libc::SIGKILL);
    }
    assert!(read_fresh(&path) == expected);
}

#[test]
fn a_small_file_reads_back_from_the_cache_through_appends_truncates_and_rewrites() {
    let mut cluster = Cluster::start_default();
    let mount = cluster.mount();
    let other = cluster.mount();
    let path = mount.join("f");
    let mut expected = pseudo_random_bytes(43, 5000);
    fs::write(&path, &expected).unwrap();
    // Each step ends with every chunkserver dead: what is read then is the mount's cache.
    let from_the_cache = |cluster: &mut Cluster, expected: &[u8], what: &str| {
        for i in 0..3 {
            cluster.stop_chunkserver(i, libc::SIGKILL);
        }
        assert!(read_fresh(&path) == expected, "{what}: cache read wrong");
        for i in 0..3 {
            cluster.restart_chunkserver(i);
        }
    };
    from_the_cache(&mut cluster, &expected, "written");

    // Appended in a second open: the write starts inside the block, so the block is dropped,
    // and the read fetches it (the replica's new tail), which is cached in its place.
    let more = pseudo_random_bytes(44, 3000);
    OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&more)
        .unwrap();
    expected.extend_from_slice(&more);
    assert!(read_fresh(&path) == expected, "append lost");
    from_the_cache(&mut cluster, &expected, "appended");

    // Cut inside the block and grown again: the replica ends at the cut, so does the block
    // read back, and the file past it reads as zeros.
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(1000).unwrap();
    file.set_len(6000).unwrap();
    drop(file);
    expected.truncate(1000);
    expected.resize(6000, 0);
    assert!(read_fresh(&path) == expected, "old bytes after a cut");
    from_the_cache(&mut cluster, &expected, "cut and grown");

    // Another mount rewrites it in place: seen at the next open here, then cached again.
    let theirs = pseudo_random_bytes(45, 6000);
    OpenOptions::new()
        .write(true)
        .open(other.join("f"))
        .unwrap()
        .write_all_at(&theirs, 0)
        .unwrap();
    assert!(read_fresh(&path) == theirs, "other mount's rewrite unseen");
    from_the_cache(&mut cluster, &theirs, "rewritten elsewhere");
}

#[test]
fn a_write_that_fails_leaves_its_block_uncached() {
    let mut cluster = Cluster::start_default();
    let mount = cluster.mount();
    let path = mount.join("f");
    fs::write(&path, pseudo_random_bytes(46, 5000)).unwrap();

    // One replica is dead: the write goes on on the other two at a new chunk version, and
    // its block is cached under that version, which the next reads are planned with.
    cluster.stop_chunkserver(0, libc::SIGKILL);
    let survivors = pseudo_random_bytes(47, 5000);
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&survivors, 0).unwrap();
    close(file).unwrap();
    cluster.stop_chunkserver(1, libc::SIGKILL);
    cluster.stop_chunkserver(2, libc::SIGKILL);
    assert!(read_fresh(&path) == survivors, "degraded write not cached");

    // Every replica is dead: the write fails (close says so), and neither its bytes nor the
    // block's older entry may answer a read, since which of them the replicas hold is the
    // replicas' to say.
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&pseudo_random_bytes(48, 5000), 0)
        .unwrap();
    assert!(
        close(file).is_err(),
        "close reported success for a lost write"
    );
    drop_page_cache(&path);
    let err = fs::read(&path).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    // Back up, the replicas answer with what the last complete write left.
    for i in 0..3 {
        cluster.restart_chunkserver(i);
    }
    assert!(read_fresh(&path) == survivors);
}
