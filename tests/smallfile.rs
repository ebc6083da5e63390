//! The small-file fast path keeps its promises: a file created open for writing holds its
//! writer lease against other mounts from the create on; the one-call open marks atime by the
//! relatime rule; what `close` committed and what `chmod`/`utime` set survive a master killed
//! right after the call returned; and a tree of small files round-trips byte for byte.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use dfs_tests::{Cluster, ClusterOptions, errno, pseudo_random_bytes, wait_until, within};

fn cluster() -> Cluster {
    Cluster::start(ClusterOptions {
        master_args: vec!["--lease-ttl-ms".into(), "60000".into()],
        ..Default::default()
    })
}

#[test]
fn a_file_created_open_for_writing_holds_its_lease_against_other_mounts() {
    let cluster = cluster();
    let a = cluster.mount();
    let b = cluster.mount_with(&["--lease-wait-ms", "300"]);
    let mut writer = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(a.join("f"))
        .unwrap();
    // No write yet: the lease came with the create.
    for (what, open) in [
        ("write", OpenOptions::new().write(true).clone()),
        // A create without O_EXCL finds the file and waits for its lease like an open.
        (
            "create",
            OpenOptions::new().write(true).create(true).clone(),
        ),
        (
            "truncate",
            OpenOptions::new().write(true).truncate(true).clone(),
        ),
    ] {
        let path = b.join("f");
        let err = within(Duration::from_secs(30), move || open.open(path)).unwrap_err();
        assert_eq!(errno(&err), libc::EBUSY, "{what}: {err}");
    }
    // Reading never waits.
    assert_eq!(fs::read(b.join("f")).unwrap(), b"");
    writer.write_all(b"from a").unwrap();
    drop(writer);
    assert_eq!(fs::read(b.join("f")).unwrap(), b"from a");
    // After the close another mount writes (a fresh one: the release follows the close).
    let c = cluster.mount();
    let mut second = OpenOptions::new().append(true).open(c.join("f")).unwrap();
    second.write_all(b", then c").unwrap();
    drop(second);
    assert_eq!(fs::read(a.join("f")).unwrap(), b"from a, then c");
}

/// (atime seconds, atime nanoseconds) of `path`.
fn atime(path: &std::path::Path) -> (i64, i64) {
    let m = fs::metadata(path).unwrap();
    (m.atime(), m.atime_nsec())
}

#[test]
fn the_one_call_open_marks_atime_by_the_relatime_rule() {
    let cluster = cluster();
    let a = cluster.mount();
    let b = cluster.mount_with(&["--attr-ttl-ms", "0"]);
    let path = a.join("f");
    fs::write(&path, b"data").unwrap();
    // An atime in the past but newer than mtime? No: set it older than mtime.
    let old = libc::timespec {
        tv_sec: 1_000_000,
        tv_nsec: 0,
    };
    let keep = libc::timespec {
        tv_sec: 0,
        tv_nsec: libc::UTIME_OMIT,
    };
    let c_path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    let times = [old, keep];
    assert_eq!(
        unsafe { libc::utimensat(libc::AT_FDCWD, c_path.as_ptr(), times.as_ptr(), 0) },
        0
    );
    assert_eq!(atime(&b.join("f")).0, 1_000_000);
    // A read on the other mount marks it (atime older than mtime).
    assert_eq!(fs::read(b.join("f")).unwrap(), b"data");
    let marked = atime(&b.join("f"));
    assert!(marked.0 > 1_000_000_000, "read left atime at {marked:?}");
    // Newer than mtime and ctime, less than a day old: the next read leaves it.
    fs::read(b.join("f")).unwrap();
    assert_eq!(atime(&b.join("f")), marked);
    // Opening write-only marks nothing.
    let writer = OpenOptions::new().write(true).open(b.join("f")).unwrap();
    drop(writer);
    assert_eq!(atime(&b.join("f")), marked);
}

/// Close-to-open when the reader looked the name up just before: its `stat`'s lookup brings a
/// chunk map for an open that may follow, but the open must not use it when another mount's
/// close landed in between. The file was read once, so no atime mark is due at the open.
#[test]
fn an_open_right_after_a_stat_sees_a_close_made_in_between() {
    let cluster = cluster();
    let a = cluster.mount();
    // Names expire quickly, so each round's `stat` reaches the mount; with and without maps
    // brought by lookups.
    for ahead in ["true", "false"] {
        let b = cluster.mount_with(&["--entry-ttl-ms", "50", "--open-ahead", ahead]);
        stat_then_open_rounds(a.path(), b.path());
    }
}

fn stat_then_open_rounds(a: &std::path::Path, b: &std::path::Path) {
    fs::write(a.join("f"), b"version -").unwrap();
    assert_eq!(fs::read(b.join("f")).unwrap(), b"version -");
    for round in 0..20 {
        // Longer each round: an open with the old attributes would cut the read short.
        let data = format!("version {round:02} {}", "+".repeat(round));
        let mut writer = OpenOptions::new().write(true).open(a.join("f")).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let before = fs::metadata(b.join("f")).unwrap();
        writer.write_all(data.as_bytes()).unwrap();
        drop(writer);
        assert_eq!(
            fs::read(b.join("f")).unwrap(),
            data.as_bytes(),
            "round {round}: the open missed the close (stat saw {} bytes)",
            before.len()
        );
    }
}

/// Writes `f` through mount `a`, reads it through `b` and returns the atime the read marked,
/// as `b` shows it (later than the write).
fn write_then_read_elsewhere(a: &std::path::Path, b: &std::path::Path) -> (i64, i64) {
    fs::write(a.join("f"), b"data").unwrap();
    let written = atime(&a.join("f"));
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(fs::read(b.join("f")).unwrap(), b"data");
    let marked = atime(&b.join("f"));
    assert!(marked > written, "the read left atime at {marked:?}");
    marked
}

/// A read whose open the mount answered from its lookup marks atime itself; the mark reaches
/// the master in a batch, so another mount sees it too, and a second read marks nothing.
#[test]
fn an_atime_mark_made_by_the_mount_reaches_other_mounts() {
    let cluster = cluster();
    let a = cluster.mount_with(&["--attr-ttl-ms", "0"]);
    let b = cluster.mount();
    let marked = write_then_read_elsewhere(a.path(), b.path());
    wait_until(
        Duration::from_secs(5),
        "the other mount sees the mark",
        || atime(&a.join("f")) == marked,
    );
    assert_eq!(fs::read(b.join("f")).unwrap(), b"data");
    assert_eq!(atime(&b.join("f")), marked);
    assert_eq!(atime(&a.join("f")), marked);
}

/// Marks wait up to 10 ms for a batch; a mount unmounted cleanly right after a read sends
/// the mark first (a killed one loses it, as a master crash loses an unsynced mark).
#[test]
fn a_clean_unmount_sends_the_atime_marks_not_yet_sent() {
    let cluster = cluster();
    let a = cluster.mount_with(&["--attr-ttl-ms", "0"]);
    let b = cluster.mount();
    let marked = write_then_read_elsewhere(a.path(), b.path());
    assert!(b.unmount().success());
    assert_eq!(atime(&a.join("f")), marked);
}

#[test]
fn what_close_and_attribute_changes_acknowledged_survives_a_master_kill() {
    let mut cluster = cluster();
    let mount = cluster.mount();
    let mut expected = Vec::new();
    for i in 0..20u64 {
        let data = pseudo_random_bytes(i, 1024 + (i as usize * 397) % 7000);
        let path = mount.join(format!("f{i:02}"));
        fs::write(&path, &data).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600 + i as u32 % 8)).unwrap();
        expected.push((path, data, 0o600 + i as u32 % 8));
    }
    // Killed right after the last call returned: no clean shutdown, no flush.
    cluster.stop_master(libc::SIGKILL);
    cluster.restart_master();
    let fresh = cluster.mount();
    for (path, data, mode) in &expected {
        let name = path.file_name().unwrap();
        let seen = within(Duration::from_secs(60), {
            let p = fresh.join(name);
            move || fs::read(p)
        })
        .unwrap();
        assert!(
            &seen == data,
            "{name:?}: content differs after the master kill"
        );
        let meta = fs::metadata(fresh.join(name)).unwrap();
        assert_eq!(meta.mode() & 0o7777, *mode, "{name:?}: mode");
    }
}

/// `tar -x` sets times, owner and mode through the open file before closing it; with writes
/// buffered the mount keeps those changes for the commit at close. They must show at once on
/// the writing mount, reach another mount with the bytes (never the new bytes under the old
/// mode), and survive a master killed right after the close.
#[test]
fn attribute_changes_with_writes_buffered_arrive_with_the_bytes() {
    use std::os::unix::fs::fchown;
    let mut cluster = cluster();
    // A short attribute TTL, so the kernel asks again within the test.
    let a = cluster.mount_with(&["--attr-ttl-ms", "100"]);
    let b = cluster.mount();
    let path = a.join("f");
    let data = pseudo_random_bytes(61, 5000);
    let mut file = fs::File::create(&path).unwrap();
    file.write_all(&data).unwrap();
    let mtime = std::time::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    file.set_modified(mtime).unwrap();
    fchown(&file, Some(1234), Some(5678)).unwrap();
    file.set_permissions(fs::Permissions::from_mode(0o640))
        .unwrap();
    // This mount shows the changes at once, through the descriptor and by path.
    for meta in [file.metadata().unwrap(), fs::metadata(&path).unwrap()] {
        assert_eq!(meta.mode() & 0o7777, 0o640);
        assert_eq!((meta.uid(), meta.gid()), (1234, 5678));
        assert_eq!(meta.mtime(), 1_600_000_000);
        assert_eq!(meta.len(), 5000);
    }
    // Still kept past the kernel's attribute TTL (the mount lays them over the master's).
    std::thread::sleep(Duration::from_millis(200));
    let meta = fs::metadata(&path).unwrap();
    assert_eq!((meta.mode() & 0o7777, meta.uid()), (0o640, 1234));
    drop(file);
    let seen = fs::metadata(b.join("f")).unwrap();
    assert_eq!(seen.mode() & 0o7777, 0o640);
    assert_eq!((seen.uid(), seen.gid()), (1234, 5678));
    assert_eq!((seen.mtime(), seen.len()), (1_600_000_000, 5000));
    assert!(fs::read(b.join("f")).unwrap() == data);

    // A write after a kept utimens sets mtime again, as on any file.
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(b"more").unwrap();
    file.set_modified(mtime).unwrap();
    file.write_all(b"again").unwrap();
    drop(file);
    let seen = fs::metadata(b.join("f")).unwrap();
    assert!(seen.mtime() > 1_600_000_000, "the last write's mtime");
    assert_eq!(seen.len(), 5009);

    // Committed with the close: a master killed right after keeps them.
    cluster.stop_master(libc::SIGKILL);
    cluster.restart_master();
    let fresh = cluster.mount();
    let meta = within(Duration::from_secs(60), {
        let p = fresh.join("f");
        move || fs::metadata(p)
    })
    .unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o640);
    assert_eq!((meta.uid(), meta.gid(), meta.len()), (1234, 5678, 5009));
}

/// While a mount writes a file it answers the kernel's `stat` itself from what the master
/// last said; a size change (here a truncating open through a second descriptor) must show
/// its own times, not those of the commit before it.
#[test]
fn a_truncate_while_writing_shows_its_own_times() {
    let cluster = cluster();
    let mount = cluster.mount();
    let path = mount.join("f");
    fs::write(&path, b"hello").unwrap();
    let mut writer = OpenOptions::new().append(true).open(&path).unwrap();
    writer.write_all(b" world").unwrap();
    writer.sync_all().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let truncated_at = std::time::SystemTime::now();
    OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    writer.write_all(b"again").unwrap();
    let after = writer.metadata().unwrap();
    assert!(
        after.modified().unwrap() >= truncated_at,
        "mtime before the truncate"
    );
    assert_eq!(after.len(), 5);
    drop(writer);
    assert_eq!(fs::read(&path).unwrap(), b"again");
}

#[test]
fn a_tree_of_small_files_round_trips() {
    let cluster = cluster();
    let a = cluster.mount();
    let b = cluster.mount();
    let src = tempfile::tempdir().unwrap();
    for d in 0..5 {
        fs::create_dir(src.path().join(format!("d{d}"))).unwrap();
        for f in 0..40u64 {
            let data = pseudo_random_bytes(d * 100 + f, 1 + ((d * 100 + f) as usize * 211) % 8192);
            fs::write(src.path().join(format!("d{d}/f{f:02}")), data).unwrap();
        }
    }
    let out = dfs_tests::sh_output(
        a.path(),
        &format!("tar -cf - -C {} . | tar -xf -", src.path().display()),
    );
    assert!(out.status.success(), "tar: {out:?}");
    let listing = dfs_tests::sh(b.path(), "ls -lR . | wc -l");
    assert!(listing.trim().parse::<u32>().unwrap() >= 205, "{listing}");
    let diff = dfs_tests::sh_output(b.path(), &format!("diff -r {} .", src.path().display()));
    assert!(diff.status.success(), "trees differ: {diff:?}");
    dfs_tests::sh(b.path(), "rm -rf d0 d1 d2 d3 d4");
    assert_eq!(fs::read_dir(a.path()).unwrap().count(), 0);
}

#[test]
fn an_mtime_set_through_the_open_file_after_writing_is_what_other_mounts_see() {
    use std::os::fd::AsRawFd;
    let cluster = cluster();
    let a = cluster.mount();
    let b = cluster.mount_with(&["--attr-ttl-ms", "0"]);
    // What tar does for every file: create, write, set mtime (atime omitted), close.
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(a.join("f"))
        .unwrap();
    file.write_all(b"extracted").unwrap();
    let times = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        libc::timespec {
            tv_sec: 1_234_567,
            tv_nsec: 890,
        },
    ];
    assert_eq!(
        unsafe { libc::futimens(file.as_raw_fd(), times.as_ptr()) },
        0
    );
    let meta = file.metadata().unwrap();
    assert_eq!((meta.mtime(), meta.mtime_nsec()), (1_234_567, 890));
    assert_eq!(meta.len(), 9);
    drop(file);
    let seen = fs::metadata(b.join("f")).unwrap();
    assert_eq!((seen.mtime(), seen.mtime_nsec()), (1_234_567, 890));
    assert!(seen.ctime() > 1_000_000_000, "ctime {}", seen.ctime());
    assert_eq!(fs::read(b.join("f")).unwrap(), b"extracted");
    // Without pending writes the same call still sets mtime.
    let file = OpenOptions::new().write(true).open(a.join("f")).unwrap();
    let later = [
        times[0],
        libc::timespec {
            tv_sec: 2_000_000,
            tv_nsec: 0,
        },
    ];
    assert_eq!(
        unsafe { libc::futimens(file.as_raw_fd(), later.as_ptr()) },
        0
    );
    drop(file);
    assert_eq!(fs::metadata(b.join("f")).unwrap().mtime(), 2_000_000);
}

/// The kernel sends the release of a closed descriptor after `close` returned, so a file
/// rewritten right after its close is opened again while the old handle's lease release may
/// still be on its way to the master: that release must not take the new handle's lease
/// (its commit would fail and the bytes be lost).
#[test]
fn a_file_reopened_for_writing_right_after_its_close_keeps_its_lease() {
    let cluster = cluster();
    let (a, b) = (cluster.mount(), cluster.mount());
    let path = a.join("log");
    let mut expected = Vec::new();
    for round in 0..150u64 {
        let line = format!("round {round}\n").into_bytes();
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(&line).unwrap();
        // close(2) reports a failed commit: every round must succeed.
        drop(file.sync_all().map(|()| file).unwrap());
        expected.extend_from_slice(&line);
        if round % 3 == 0 {
            // Replaced whole, through the non-exclusive create path.
            fs::write(&path, &expected).unwrap();
        }
    }
    assert_eq!(fs::read(b.join("log")).unwrap(), expected);
}
