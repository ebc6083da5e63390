//! POSIX conformance of attributes and permission checks through a real mount: chmod, chown,
//! utimensat (UTIME_NOW, UTIME_OMIT, who may set which time), access with supplementary groups,
//! and open's errors by file type. Each call is exercised as root and as an unprivileged user (a
//! forked child that drops to `nobody` before the call), checking the exact errno and the
//! resulting attributes.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use dfs_tests::Cluster;

#[path = "conformance/common.rs"]
mod common;
use common::{
    EXTRA_GROUP, OTHER_GROUP, USER, USER_GROUP, as_user, check, chmod, chown, cstr, expect_errno,
    mode, setup, times, ts, user, utimensat,
};

#[test]
fn chmod_and_chown() {
    let cluster = Cluster::start_default();
    let mount = setup(&cluster);
    let m = mount.path();

    // Root chmod: only ctime changes.
    let f = m.join("root/f");
    fs::write(&f, b"x").unwrap();
    let before = times(&f);
    chmod(&f, 0o640).unwrap();
    let after = times(&f);
    assert_eq!(mode(&f), 0o640);
    assert_eq!(after[1], before[1], "chmod leaves mtime");
    assert!(after[2] > before[2], "chmod sets ctime");

    // Non-owner chmod: EPERM; owner chmod: fine.
    let target = f.clone();
    assert_eq!(user(|| chmod(&target, 0o777)), Err(libc::EPERM));
    let own = m.join("mine/f");
    fs::write(&own, b"x").unwrap();
    chown(&own, USER, USER_GROUP).unwrap();
    let target = own.clone();
    assert_eq!(user(|| chmod(&target, 0o600)), Ok(()));
    assert_eq!(mode(&own), 0o600);

    // chown: to another uid EPERM for non-root; chgrp to a group of the caller's fine, to
    // another group EPERM.
    let target = own.clone();
    assert_eq!(user(|| chown(&target, 0, USER_GROUP)), Err(libc::EPERM));
    let target = own.clone();
    assert_eq!(
        as_user(&[EXTRA_GROUP], || std::os::unix::fs::chown(
            &target,
            None,
            Some(EXTRA_GROUP)
        )),
        Ok(())
    );
    assert_eq!(fs::metadata(&own).unwrap().gid(), EXTRA_GROUP);
    let target = own.clone();
    assert_eq!(
        user(|| std::os::unix::fs::chown(&target, None, Some(OTHER_GROUP))),
        Err(libc::EPERM)
    );
    // Non-owner chown of a root file.
    let target = f.clone();
    assert_eq!(
        user(|| std::os::unix::fs::chown(&target, None, Some(USER_GROUP))),
        Err(libc::EPERM)
    );

    // Root chown: any owner; clears setuid and setgid of an executable; sets ctime.
    let s = m.join("root/suid");
    fs::write(&s, b"x").unwrap();
    chmod(&s, 0o6755).unwrap();
    let before = times(&s);
    chown(&s, USER, OTHER_GROUP).unwrap();
    let meta = fs::metadata(&s).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (USER, OTHER_GROUP));
    assert_eq!(mode(&s), 0o755, "chown clears setuid/setgid");
    assert!(times(&s)[2] > before[2], "chown sets ctime");
}

#[test]
fn utimensat_now_omit_and_permissions() {
    let cluster = Cluster::start_default();
    let mount = setup(&cluster);
    let m = mount.path();

    let f = m.join("pub/f");
    fs::write(&f, b"x").unwrap();
    // Nanosecond precision, both times.
    utimensat(
        &f,
        ts(1_000_000_000, 123_456_789),
        ts(1_100_000_000, 987_654_321),
    )
    .unwrap();
    let t = times(&f);
    assert_eq!(t[0], (1_000_000_000, 123_456_789));
    assert_eq!(t[1], (1_100_000_000, 987_654_321));
    // UTIME_OMIT leaves atime; UTIME_NOW sets mtime to now.
    utimensat(&f, ts(0, libc::UTIME_OMIT), ts(0, libc::UTIME_NOW)).unwrap();
    let t2 = times(&f);
    assert_eq!(t2[0], t[0], "UTIME_OMIT");
    assert!(t2[1] > t[1] && t2[1].0 > 1_700_000_000, "UTIME_NOW");
    assert!(t2[2] >= t2[1], "ctime follows");

    // A non-owner with write permission may set both times to now, not explicit times.
    chmod(&f, 0o666).unwrap();
    let target = f.clone();
    assert_eq!(
        user(|| utimensat(&target, ts(0, libc::UTIME_NOW), ts(0, libc::UTIME_NOW))),
        Ok(())
    );
    let target = f.clone();
    assert_eq!(
        user(|| utimensat(&target, ts(5, 0), ts(5, 0))),
        Err(libc::EPERM)
    );
    // Without write permission, not even now.
    chmod(&f, 0o644).unwrap();
    let target = f.clone();
    assert_eq!(
        user(|| utimensat(&target, ts(0, libc::UTIME_NOW), ts(0, libc::UTIME_NOW))),
        Err(libc::EACCES)
    );
    // The owner may set explicit times.
    let own = m.join("mine/f");
    user(|| fs::write(&own, b"")).unwrap();
    let target = own.clone();
    assert_eq!(user(|| utimensat(&target, ts(7, 7), ts(8, 8))), Ok(()));
    assert_eq!(times(&own)[1], (8, 8));
}

#[test]
fn access_groups_and_open_type_errors() {
    let cluster = Cluster::start_default();
    let mount = setup(&cluster);
    let m = mount.path();

    // Group permission through a supplementary group only.
    let f = m.join("root/grp");
    fs::write(&f, b"secret").unwrap();
    chown(&f, 0, EXTRA_GROUP).unwrap();
    chmod(&f, 0o640).unwrap();
    assert_eq!(as_user(&[EXTRA_GROUP], || fs::read(&f).map(drop)), Ok(()));
    assert_eq!(user(|| fs::read(&f).map(drop)), Err(libc::EACCES));

    // access() answers by mode bits for the caller.
    let access = |path: &Path, how: i32| {
        let p = cstr(path);
        // SAFETY: valid path.
        check(unsafe { libc::access(p.as_ptr(), how) })
    };
    assert_eq!(user(|| access(&f, libc::F_OK)), Ok(()));
    assert_eq!(user(|| access(&f, libc::R_OK)), Err(libc::EACCES));
    assert_eq!(as_user(&[EXTRA_GROUP], || access(&f, libc::R_OK)), Ok(()));
    assert_eq!(
        as_user(&[EXTRA_GROUP], || access(&f, libc::W_OK)),
        Err(libc::EACCES)
    );
    access(&f, libc::R_OK | libc::W_OK).unwrap();
    let missing = m.join("root/missing");
    assert_eq!(user(|| access(&missing, libc::F_OK)), Err(libc::ENOENT));

    // Even the owner cannot open a 0444 file for writing or truncate it by name.
    let ro = m.join("mine/ro");
    user(|| fs::write(&ro, b"x")).unwrap();
    chmod(&ro, 0o444).unwrap();
    let target = ro.clone();
    assert_eq!(
        user(|| OpenOptions::new().write(true).open(&target).map(drop)),
        Err(libc::EACCES)
    );
    let p = cstr(&ro);
    assert_eq!(
        user(|| check(unsafe { libc::truncate(p.as_ptr(), 0) })),
        Err(libc::EACCES)
    );

    // Type errors of open.
    expect_errno(
        OpenOptions::new().write(true).open(m.join("root")),
        libc::EISDIR,
        "open a directory for writing",
    );
    expect_errno(
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(&f),
        libc::ENOTDIR,
        "O_DIRECTORY on a file",
    );
    expect_errno(
        fs::read(m.join("root/grp/below")),
        libc::ENOTDIR,
        "file as a directory",
    );
    // O_CREAT on an existing file keeps its owner and contents.
    let target = m.join("pub/keep");
    fs::write(&target, b"keep").unwrap();
    chmod(&target, 0o666).unwrap();
    let t = target.clone();
    user(|| {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&t)
            .map(drop)
    })
    .unwrap();
    assert_eq!(fs::metadata(&target).unwrap().uid(), 0);
    assert_eq!(fs::read(&target).unwrap(), b"keep");
}
