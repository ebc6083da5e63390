//! POSIX conformance of file contents and their times through a real mount: open (O_CREAT,
//! O_EXCL, O_TRUNC, O_APPEND, O_NOFOLLOW, limits), write, truncate/ftruncate/fallocate, and the
//! atime a read leaves. Each call is exercised as root and as an unprivileged user (a forked
//! child that drops to `nobody` before the call), checking the exact errno and the resulting
//! attributes. Attribute calls are in `conformance_attrs.rs`, namespace calls in
//! `conformance_names.rs`.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, symlink};

use dfs_tests::Cluster;

#[path = "conformance/common.rs"]
mod common;
use common::{
    USER, USER_GROUP, check, chmod, cstr, expect_errno, mode, setup, times, ts, user, utimensat,
};

#[test]
fn open_creat_excl_trunc_append_nofollow_and_limits() {
    let cluster = Cluster::start_default();
    let mount = setup(&cluster);
    let m = mount.path();

    // Root: O_CREAT|O_EXCL on an existing file.
    fs::write(m.join("root/f"), b"hello").unwrap();
    expect_errno(
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(m.join("root/f")),
        libc::EEXIST,
        "O_EXCL on existing",
    );
    // O_TRUNC empties the file and updates mtime and ctime.
    let before = times(&m.join("root/f"));
    OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(m.join("root/f"))
        .unwrap();
    let after = times(&m.join("root/f"));
    assert_eq!(fs::metadata(m.join("root/f")).unwrap().len(), 0);
    assert!(
        after[1] > before[1] && after[2] > before[2],
        "O_TRUNC times"
    );
    // O_APPEND writes at the end whatever the offset.
    fs::write(m.join("root/a"), b"abc").unwrap();
    let mut f = OpenOptions::new()
        .append(true)
        .open(m.join("root/a"))
        .unwrap();
    f.write_all(b"def").unwrap();
    drop(f);
    assert_eq!(fs::read(m.join("root/a")).unwrap(), b"abcdef");
    // O_NOFOLLOW on a symlink, and a symlink loop.
    symlink("a", m.join("root/link")).unwrap();
    expect_errno(
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(m.join("root/link")),
        libc::ELOOP,
        "O_NOFOLLOW",
    );
    symlink("loop2", m.join("root/loop1")).unwrap();
    symlink("loop1", m.join("root/loop2")).unwrap();
    expect_errno(fs::read(m.join("root/loop1")), libc::ELOOP, "symlink loop");
    // Name and path length limits.
    let long = "n".repeat(256);
    expect_errno(
        fs::write(m.join("root").join(&long), b""),
        libc::ENAMETOOLONG,
        "name of 256 bytes",
    );
    fs::write(m.join("root").join("n".repeat(255)), b"").unwrap();
    let deep = format!("root/{}", "d/".repeat(2100));
    expect_errno(
        fs::write(m.join(deep), b""),
        libc::ENAMETOOLONG,
        "path over PATH_MAX",
    );

    // Creating a file updates the parent's mtime and ctime; the new file is the caller's.
    let parent_before = times(&m.join("pub"));
    let pubf = m.join("pub/f");
    user(|| fs::write(&pubf, b"x")).unwrap();
    let parent_after = times(&m.join("pub"));
    assert!(parent_after[1] > parent_before[1] && parent_after[2] > parent_before[2]);
    let meta = fs::metadata(&pubf).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (USER, USER_GROUP));

    // Unprivileged: mode bits enforced.
    let rootf = m.join("root/f");
    assert_eq!(
        user(|| OpenOptions::new().write(true).open(&rootf).map(drop)),
        Err(libc::EACCES),
        "write-open of a 0644 root file"
    );
    assert_eq!(user(|| fs::read(&rootf).map(drop)), Ok(()));
    let newf = m.join("root/new");
    assert_eq!(
        user(|| fs::write(&newf, b"")),
        Err(libc::EACCES),
        "create in a 0755 root dir"
    );
    chmod(&m.join("root/f"), 0o600).unwrap();
    assert_eq!(user(|| fs::read(&rootf).map(drop)), Err(libc::EACCES));
    // No search permission on the directory: EACCES on the way through.
    let minef = m.join("mine/f");
    fs::write(&minef, b"x").unwrap();
    chmod(&m.join("mine"), 0o600).unwrap();
    assert_eq!(user(|| fs::read(&minef).map(drop)), Err(libc::EACCES));
    chmod(&m.join("mine"), 0o755).unwrap();
    let excl = m.join("pub/f");
    assert_eq!(
        user(|| OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&excl)
            .map(drop)),
        Err(libc::EEXIST)
    );
}

#[test]
fn write_updates_times_and_clears_setuid_for_others() {
    let cluster = Cluster::start_default();
    let mount = setup(&cluster);
    let m = mount.path();
    let f = m.join("pub/suid");
    fs::write(&f, b"data").unwrap();
    chmod(&f, 0o6777).unwrap();
    assert_eq!(mode(&f), 0o6777);
    let before = times(&f);
    let target = f.clone();
    user(move || {
        let mut file = OpenOptions::new().write(true).open(&target)?;
        file.write_all(b"more")
    })
    .unwrap();
    let after = times(&f);
    assert_eq!(
        mode(&f) & 0o6000,
        0,
        "setuid/setgid survive a write by another"
    );
    assert!(after[1] > before[1] && after[2] > before[2], "write times");
    assert_eq!(fs::read(&f).unwrap(), b"more");
}

#[test]
fn truncate_ftruncate_and_fallocate() {
    let cluster = Cluster::start_default();
    let mount = setup(&cluster);
    let m = mount.path();

    let f = m.join("root/f");
    fs::write(&f, b"0123456789").unwrap();
    let before = times(&f);
    let p = cstr(&f);
    // SAFETY: valid path.
    check(unsafe { libc::truncate(p.as_ptr(), 4) }).unwrap();
    assert_eq!(fs::read(&f).unwrap(), b"0123");
    let after = times(&f);
    assert!(
        after[1] > before[1] && after[2] > before[2],
        "truncate times"
    );
    check(unsafe { libc::truncate(p.as_ptr(), 8) }).unwrap();
    assert_eq!(fs::read(&f).unwrap(), b"0123\0\0\0\0");
    assert_eq!(
        user(|| check(unsafe { libc::truncate(p.as_ptr(), 0) })),
        Err(libc::EACCES),
        "truncate without write permission"
    );
    expect_errno(
        check(unsafe { libc::truncate(cstr(&m.join("root")).as_ptr(), 0) }),
        libc::EISDIR,
        "truncate a directory",
    );

    // ftruncate needs a descriptor open for writing.
    let file = fs::File::open(&f).unwrap();
    expect_errno(file.set_len(0), libc::EINVAL, "ftruncate of a read-only fd");
    let own = m.join("mine/f");
    user(|| {
        let file = fs::File::create(&own)?;
        file.set_len(3)?;
        file.set_len(1)
    })
    .unwrap();
    assert_eq!(fs::read(&own).unwrap(), b"\0");
    // A descriptor opened for writing by the create itself may truncate a 0444 file.
    let ro = m.join("mine/ro");
    user(|| {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o444)
            .open(&ro)?;
        file.set_len(5)
    })
    .unwrap();
    assert_eq!(fs::metadata(&ro).unwrap().len(), 5);
    assert_eq!(mode(&ro), 0o444);

    // posix_fallocate extends the file; the new range reads as zeros.
    let g = m.join("pub/g");
    fs::write(&g, b"abc").unwrap();
    chmod(&g, 0o666).unwrap();
    let target = g.clone();
    user(|| {
        let file = OpenOptions::new().write(true).open(&target)?;
        use std::os::fd::AsRawFd;
        // SAFETY: valid descriptor.
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, 100_000) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(rc))
        }
    })
    .unwrap();
    let mut data = Vec::new();
    fs::File::open(&g).unwrap().read_to_end(&mut data).unwrap();
    assert_eq!(data.len(), 100_000);
    assert_eq!(&data[..3], b"abc");
    assert!(data[3..].iter().all(|&b| b == 0));
}

#[test]
fn read_marks_atime_by_relatime() {
    let cluster = Cluster::start_default();
    let mount = setup(&cluster);
    let m = mount.path();
    let f = m.join("pub/f");
    fs::write(&f, b"x").unwrap();
    utimensat(&f, ts(1_000_000_000, 0), ts(0, libc::UTIME_OMIT)).unwrap();
    let before = times(&f);
    let target = f.clone();
    user(|| fs::read(&target).map(drop)).unwrap();
    let after = times(&f);
    assert!(after[0].0 > 1_000_000_000, "read left atime");
    assert_eq!(
        (after[1], after[2]),
        (before[1], before[2]),
        "read changed mtime/ctime"
    );
    // Writing alone does not mark atime (the file is opened write-only).
    let before = times(&f);
    OpenOptions::new()
        .write(true)
        .open(&f)
        .unwrap()
        .write_all(b"y")
        .unwrap();
    assert_eq!(times(&f)[0], before[0], "write marked atime");
    // A read after the write marks it again (relatime: atime not newer than mtime).
    fs::read(&f).unwrap();
    assert!(times(&f)[0] > before[0], "read after write left atime");

    // Listing a directory marks its atime, not its mtime or ctime.
    let d = m.join("pub");
    utimensat(&d, ts(1_000_000_000, 0), ts(0, libc::UTIME_OMIT)).unwrap();
    let before = times(&d);
    let target = d.clone();
    user(|| fs::read_dir(&target).map(|entries| entries.for_each(drop))).unwrap();
    let after = times(&d);
    assert!(after[0].0 > 1_000_000_000, "listing left atime");
    assert_eq!(
        (after[1], after[2]),
        (before[1], before[2]),
        "listing changed mtime/ctime"
    );
}

/// The first read of a file written here marks atime also where the kernel held the file's
/// pages (full pages written through this mount) and where there is nothing to read.
#[test]
fn first_reads_of_cached_pages_and_of_empty_files_mark_atime() {
    let cluster = Cluster::start_default();
    let mount = setup(&cluster);
    let m = mount.path();
    for (name, data) in [("pages", vec![7u8; 3 * 4096]), ("empty", Vec::new())] {
        let f = m.join("pub").join(name);
        fs::write(&f, &data).unwrap();
        let before = times(&f);
        assert_eq!(fs::read(&f).unwrap(), data, "{name}");
        let after = times(&f);
        assert!(
            after[0] > before[0],
            "{name}: read left atime at {:?}",
            after[0]
        );
        assert_eq!((after[1], after[2]), (before[1], before[2]), "{name}");
        // Marked once: a second read leaves it (relatime: atime is newer than mtime now).
        assert_eq!(fs::read(&f).unwrap(), data, "{name}");
        assert_eq!(times(&f)[0], after[0], "{name}");
    }
}
