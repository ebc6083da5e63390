//! Two mounts of one cluster: close-to-open consistency, writer leases (one writing mount per
//! file, EBUSY for the other after its wait), and recovery when a writing mount dies.

use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use dfs_tests::{Cluster, ClusterOptions, errno, pseudo_random_bytes, within};

/// Chunks of 1 MiB, so a few MiB cross chunk boundaries.
const CHUNK: u64 = 1 << 20;

fn cluster(lease_ttl_ms: u64) -> Cluster {
    Cluster::start(ClusterOptions {
        chunk_size: CHUNK,
        master_args: vec!["--lease-ttl-ms".into(), lease_ttl_ms.to_string()],
        ..Default::default()
    })
}

#[test]
fn what_one_mount_closes_or_fsyncs_the_other_sees_whole_at_its_next_open() {
    let cluster = cluster(30_000);
    let a = cluster.mount();
    let b = cluster.mount();
    let (in_a, in_b) = (a.join("f"), b.join("f"));

    let first = pseudo_random_bytes(1, (CHUNK + CHUNK / 2) as usize);
    fs::write(&in_a, &first).unwrap();
    // `b` reads it, so its page cache holds the first version.
    assert!(fs::read(&in_b).unwrap() == first);

    // Larger, smaller, and the same size with other bytes (only mtime tells them apart).
    let sizes = [3 * CHUNK + 17, 1000, 1000, CHUNK];
    for (round, size) in sizes.into_iter().enumerate() {
        write_then_read_whole(&in_a, &in_b, 10 + round as u64, size as usize);
    }

    // An fsync publishes like a close: the writer keeps its handle open.
    let mut writer = OpenOptions::new().append(true).open(&in_a).unwrap();
    writer.write_all(b"appended").unwrap();
    writer.sync_all().unwrap();
    let seen = fs::read(&in_b).unwrap();
    assert_eq!(seen.len() as u64, CHUNK + 8);
    assert_eq!(&seen[CHUNK as usize..], b"appended");
    drop(writer);

    // Once the writer is gone, `b` may write, and `a` sees it.
    fs::write(&in_b, b"from b").unwrap();
    assert_eq!(fs::read(&in_a).unwrap(), b"from b");
}

/// After creating and removing names in a directory, a mount answers the `stat` the kernel
/// makes of the directory from what the changing call answered (no `GetAttr`): it must be
/// exactly what the master holds, as another mount sees it.
#[test]
fn a_directory_changed_on_one_mount_stats_the_same_on_another() {
    use std::os::unix::fs::MetadataExt;
    let cluster = cluster(30_000);
    let a = cluster.mount();
    // A short attribute TTL, so that `b` forgets `d` between steps.
    let b = cluster.mount_with(&["--attr-ttl-ms", "100", "--entry-ttl-ms", "100"]);
    let view = |meta: fs::Metadata| {
        (
            meta.nlink(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec(),
            meta.mode(),
        )
    };
    fs::create_dir(a.join("d")).unwrap();
    for step in 0..4 {
        match step {
            0 => fs::write(a.join("d/f"), b"x").unwrap(),
            1 => fs::create_dir(a.join("d/sub")).unwrap(),
            2 => fs::rename(a.join("d/f"), a.join("d/sub/f")).unwrap(),
            _ => {
                fs::remove_file(a.join("d/sub/f")).unwrap();
                fs::remove_dir(a.join("d/sub")).unwrap();
            }
        }
        // `a` has just changed `d`: its kernel asks for `d`'s attributes again. `b` never
        // looked at `d` within its attribute TTL before this step's stat.
        let here = view(fs::metadata(a.join("d")).unwrap());
        std::thread::sleep(Duration::from_millis(150));
        let there = view(fs::metadata(b.join("d")).unwrap());
        assert_eq!(here, there, "step {step}");
    }
    let nlink = fs::metadata(a.join("d")).unwrap().nlink();
    assert_eq!(nlink, 2, "an empty directory again");
}

#[test]
fn a_chunk_map_looked_up_before_another_mounts_rewrite_never_serves_a_later_open() {
    let cluster = cluster(30_000);
    let a = cluster.mount();
    let b = cluster.mount();
    let (in_a, in_b) = (a.join("f"), b.join("f"));
    let first = pseudo_random_bytes(3, 5000);
    fs::write(&in_a, &first).unwrap();
    // `b` reads the first version (its block cache keeps it), and once its kernel has
    // forgotten the name (entry TTL 1 s), looks it up without opening it: the lookup brings
    // the chunk map of the first version along for an open that does not come.
    assert!(fs::read(&in_b).unwrap() == first);
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(fs::metadata(&in_b).unwrap().len(), 5000);
    // `a` rewrites it in place, same size, and closes.
    let second = pseudo_random_bytes(4, 5000);
    fs::write(&in_a, &second).unwrap();
    // `b` opens it later (its kernel still knows the name, so no new lookup): the map its
    // lookup brought is too old to answer the open, which asks the master and reads the
    // second version.
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        fs::read(&in_b).unwrap() == second,
        "the first version was served"
    );
}

/// A mount whose kernel forgot the name looks it up at every open: the open keeps the
/// attributes that lookup gave the kernel when it finds them unchanged (no `getattr` before
/// the read), and the read still sees all of another mount's rewrite, never the pages of the
/// version it read before.
#[test]
fn an_open_right_after_a_lookup_reads_another_mounts_rewrite_whole() {
    let cluster = cluster(30_000);
    let a = cluster.mount();
    let b = cluster.mount_with(&["--entry-ttl-ms", "0"]);
    let (in_a, in_b) = (a.join("f"), b.join("f"));
    fs::write(&in_a, pseudo_random_bytes(5, 3000)).unwrap();
    assert_eq!(fs::read(&in_b).unwrap().len(), 3000);
    // Larger, the same size with other bytes, smaller, larger than a block.
    for (round, size) in [9000, 9000, 100, 70_000].into_iter().enumerate() {
        write_then_read_whole(&in_a, &in_b, 20 + round as u64, size);
    }
}

/// Writes `size` bytes made from `seed` at `writer` and checks that `reader` (the same file
/// on another mount) then reads exactly them.
fn write_then_read_whole(writer: &Path, reader: &Path, seed: u64, size: usize) {
    let next = pseudo_random_bytes(seed, size);
    fs::write(writer, &next).unwrap();
    let seen = fs::read(reader).unwrap();
    assert_eq!(seen.len(), size, "seed {seed}: size");
    assert!(seen == next, "seed {seed}: content differs");
}

#[test]
fn a_second_writing_mount_gets_ebusy_after_its_wait_until_the_first_closes() {
    let cluster = cluster(60_000);
    let a = cluster.mount();
    let b = cluster.mount_with(&["--lease-wait-ms", "300"]);
    let (in_a, in_b) = (a.join("f"), b.join("f"));

    let mut writer = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&in_a)
        .unwrap();
    writer.write_all(b"written by a").unwrap();

    // Every way `b` could write fails with EBUSY after its wait: open for writing, O_TRUNC,
    // truncate(2) by path. (The hang detector is generous; the wait is 300 ms.)
    for (what, open) in [
        ("write", OpenOptions::new().write(true).clone()),
        (
            "read-write",
            OpenOptions::new().read(true).write(true).clone(),
        ),
        ("append", OpenOptions::new().append(true).clone()),
        (
            "truncate",
            OpenOptions::new().write(true).truncate(true).clone(),
        ),
    ] {
        let path = in_b.clone();
        let err = within(Duration::from_secs(30), move || open.open(path)).unwrap_err();
        assert_eq!(errno(&err), libc::EBUSY, "{what}: {err}");
    }
    let path = in_b.clone();
    let out = within(Duration::from_secs(30), move || {
        dfs_tests::sh_output(path.parent().unwrap(), "truncate -s 0 f")
    });
    assert!(
        !out.status.success(),
        "truncate in b succeeded under a's lease"
    );
    // Reading is never blocked by a lease.
    fs::read(&in_b).unwrap();

    // `a` writes on, and after its close another mount can write. (The kernel sends the
    // release that gives up the lease after `close` returns, so this mount waits the default
    // time rather than 300 ms.)
    writer.write_all(b", still").unwrap();
    drop(writer);
    assert_eq!(fs::read(&in_b).unwrap(), b"written by a, still");
    let c = cluster.mount();
    let mut second = OpenOptions::new().append(true).open(c.join("f")).unwrap();
    second.write_all(b", then c").unwrap();
    drop(second);
    assert_eq!(fs::read(&in_a).unwrap(), b"written by a, still, then c");
}

#[test]
fn a_file_reopened_right_after_its_close_keeps_its_lease_until_its_last_close() {
    let cluster = cluster(60_000);
    let a = cluster.mount();
    let b = cluster.mount_with(&["--lease-wait-ms", "300"]);
    let path = a.join("f");
    // The close queues the lease's release for a few milliseconds; the open right after it
    // takes the lease back (or, if the release went out already, asks for it again).
    fs::write(&path, b"one").unwrap();
    let mut again = OpenOptions::new().append(true).open(&path).unwrap();
    // Well past the release window, the lease is still this mount's: no release undid it.
    std::thread::sleep(Duration::from_millis(200));
    let in_b = b.join("f");
    let err = within(Duration::from_secs(30), move || {
        OpenOptions::new().append(true).open(in_b)
    })
    .unwrap_err();
    assert_eq!(errno(&err), libc::EBUSY, "{err}");
    again.write_all(b", two").unwrap();
    drop(again);
    // The last close gives it up.
    let c = cluster.mount();
    let mut from_c = OpenOptions::new().append(true).open(c.join("f")).unwrap();
    from_c.write_all(b", three").unwrap();
    drop(from_c);
    assert_eq!(fs::read(&path).unwrap(), b"one, two, three");
}

#[test]
fn when_the_writing_mount_dies_the_next_writer_recovers_one_consistent_length() {
    let cluster = cluster(2_000);
    let mut a = cluster.mount_with(&["--write-buffer-bytes", &CHUNK.to_string()]);
    // `b` waits longer than the lease time-to-live, so its open outlasts the dead lease.
    let b = cluster.mount_with(&["--lease-wait-ms", "30000"]);
    let committed = pseudo_random_bytes(3, (CHUNK + 1000) as usize);
    let unsynced = pseudo_random_bytes(4, (2 * CHUNK + 5000) as usize);
    let mut intended = committed.clone();
    intended.extend_from_slice(&unsynced);

    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(a.join("f"))
        .unwrap();
    file.write_all(&committed).unwrap();
    file.sync_all().unwrap();
    // More than the write buffer: part of it reaches the replicas, none of it is committed.
    file.write_all(&unsynced).unwrap();
    a.kill();
    drop(file);

    // The lease is still live for a moment, so `b` waits for it, then recovers the file.
    let path = b.join("f");
    let mut writer = within(Duration::from_secs(60), move || {
        OpenOptions::new().read(true).write(true).open(path)
    })
    .unwrap();
    let len = writer.metadata().unwrap().len();
    assert!(
        len >= committed.len() as u64 && len <= intended.len() as u64,
        "recovered length {len} is outside [{}, {}]",
        committed.len(),
        intended.len()
    );
    let mut recovered = Vec::new();
    writer.read_to_end(&mut recovered).unwrap();
    assert_eq!(recovered.len() as u64, len);
    assert!(
        recovered[..] == intended[..len as usize],
        "recovered content is not a prefix of what was written"
    );

    // A third mount sees exactly the same length and bytes.
    let c = cluster.mount();
    assert!(fs::read(c.join("f")).unwrap() == recovered);

    // And the new writer goes on from there.
    writer.seek(SeekFrom::End(0)).unwrap();
    writer.write_all(b"after recovery").unwrap();
    writer.write_at(b"X", 0).unwrap();
    drop(writer);
    let mut expected = recovered;
    expected.extend_from_slice(b"after recovery");
    expected[0] = b'X';
    let seen = fs::read(c.join("f")).unwrap();
    assert_eq!(seen.len(), expected.len());
    assert!(seen == expected, "content after recovery differs");
}

#[test]
fn append_truncate_and_o_trunc_under_a_lease() {
    let cluster = cluster(30_000);
    let a = cluster.mount();
    let b = cluster.mount();
    let path = a.join("log");

    // Several O_APPEND handles of one mount share its lease and never overwrite each other.
    let mut handles: Vec<_> = (0..3)
        .map(|_| {
            OpenOptions::new()
                .append(true)
                .create(true)
                .open(&path)
                .unwrap()
        })
        .collect();
    for round in 0..4 {
        for (i, handle) in handles.iter_mut().enumerate() {
            handle.write_all(format!("{round}{i};").as_bytes()).unwrap();
        }
    }
    drop(handles);
    let log = fs::read_to_string(b.join("log")).unwrap();
    assert_eq!(log.len(), 4 * 3 * 3, "{log}");
    for round in 0..4 {
        for i in 0..3 {
            assert!(log.contains(&format!("{round}{i};")), "{log}");
        }
    }

    // Shrink and grow across chunk boundaries; the other mount sees zeros past the cut.
    let data = pseudo_random_bytes(5, (3 * CHUNK) as usize);
    fs::write(&path, &data).unwrap();
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(CHUNK + 10).unwrap();
    file.set_len(2 * CHUNK + 20).unwrap();
    drop(file);
    let seen = fs::read(b.join("log")).unwrap();
    assert_eq!(seen.len() as u64, 2 * CHUNK + 20);
    assert!(seen[..(CHUNK + 10) as usize] == data[..(CHUNK + 10) as usize]);
    assert!(seen[(CHUNK + 10) as usize..].iter().all(|&b| b == 0));

    // O_TRUNC in the other mount, once the lease is free.
    let mut file = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(b.join("log"))
        .unwrap();
    file.write_all(b"short").unwrap();
    drop(file);
    assert_eq!(fs::read(&path).unwrap(), b"short");
}

#[test]
fn a_restarted_master_keeps_the_writer_lease_of_a_live_mount() {
    let mut cluster = cluster(60_000);
    let a = cluster.mount();
    let mut writer = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(a.join("f"))
        .unwrap();
    writer.write_all(b"before").unwrap();
    writer.sync_all().unwrap();

    cluster.restart_master();

    // The restarted master still counts `a` as the writer: another mount gets EBUSY.
    let b = cluster.mount_with(&["--lease-wait-ms", "300"]);
    let path = b.join("f");
    let err = within(Duration::from_secs(30), move || {
        OpenOptions::new().write(true).open(path)
    })
    .unwrap_err();
    assert_eq!(errno(&err), libc::EBUSY);
    // `a` writes on and commits under its lease.
    writer.write_all(b", after").unwrap();
    drop(writer);
    assert_eq!(fs::read(b.join("f")).unwrap(), b"before, after");
}

#[test]
fn a_writer_cut_off_past_its_lease_cannot_overwrite_the_new_holder() {
    let cluster = cluster(2_000);
    let a = cluster.mount();
    let b = cluster.mount_with(&["--lease-wait-ms", "30000"]);
    let old = pseudo_random_bytes(6, (CHUNK + CHUNK / 2) as usize);
    let mut stale_writer = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(a.join("f"))
        .unwrap();
    stale_writer.write_all(&old).unwrap();
    stale_writer.sync_all().unwrap();

    // `a` freezes (as if cut off from the master) and its lease runs out.
    signal(a.pid(), libc::SIGSTOP);
    let path = b.join("f");
    let mut writer = within(Duration::from_secs(60), move || {
        OpenOptions::new().write(true).open(path)
    })
    .unwrap();
    writer.write_all(b"new holder").unwrap();
    drop(writer);

    // `a` wakes up and writes on through its old handle: refused, never applied.
    signal(a.pid(), libc::SIGCONT);
    // (The error surfaces once, at whichever call sends the bytes.)
    let results = [
        stale_writer.write_all_at(b"STALE WRITE", 0),
        stale_writer.write_all_at(b"STALE WRITE", CHUNK),
        stale_writer.sync_all(),
    ];
    assert!(
        results.iter().any(Result::is_err),
        "the old holder's writes and fsync all succeeded"
    );
    drop(stale_writer);

    let mut expected = old;
    expected[..10].copy_from_slice(b"new holder");
    let c = cluster.mount();
    let seen = fs::read(c.join("f")).unwrap();
    assert_eq!(seen.len(), expected.len());
    assert!(seen == expected, "the old holder's bytes reached the file");
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a child process of this test has no memory-safety preconditions.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}
