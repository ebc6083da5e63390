//! POSIX conformance of the namespace through a real mount: mkdir and rmdir (setgid
//! directories), unlink and rename (sticky directories, replacement rules, RENAME_EXCHANGE across
//! directories, parent times), link, symlink, mkfifo, mknod and sockets. Each call is exercised
//! as root and as an unprivileged user (a forked child that drops to `nobody` before the call),
//! checking the exact errno and the resulting attributes.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, symlink};
use std::path::Path;

use dfs_tests::Cluster;

#[path = "conformance/common.rs"]
mod common;
use common::{
    OTHER_GROUP, USER, USER_GROUP, check, chmod, chown, cstr, expect_errno, mknod, mode, renameat2,
    setup, times, user,
};

#[test]
fn mkdir_rmdir_and_setgid_directories() {
    let cluster = Cluster::start_default();
    let mount = setup(&cluster);
    let m = mount.path();

    fs::create_dir(m.join("root/d")).unwrap();
    expect_errno(
        fs::create_dir(m.join("root/d")),
        libc::EEXIST,
        "mkdir twice",
    );
    fs::write(m.join("root/d/f"), b"").unwrap();
    expect_errno(
        fs::remove_dir(m.join("root/d")),
        libc::ENOTEMPTY,
        "rmdir non-empty",
    );
    expect_errno(
        fs::remove_dir(m.join("root/d/f")),
        libc::ENOTDIR,
        "rmdir file",
    );

    let d = m.join("root/e");
    assert_eq!(user(|| fs::create_dir(&d)), Err(libc::EACCES));
    fs::create_dir(m.join("root/gone")).unwrap();
    let gone = m.join("root/gone");
    assert_eq!(user(|| fs::remove_dir(&gone)), Err(libc::EACCES));
    let d = m.join("pub/ud");
    user(|| fs::create_dir(&d)).unwrap();
    let meta = fs::metadata(&d).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (USER, USER_GROUP));
    let before = times(&m.join("pub"));
    user(|| fs::remove_dir(&d)).unwrap();
    assert!(
        times(&m.join("pub"))[2] > before[2],
        "rmdir sets parent ctime"
    );

    // A set-group-ID directory passes its group to new entries, and its bit to subdirectories.
    let sg = m.join("sg");
    fs::create_dir(&sg).unwrap();
    chown(&sg, 0, OTHER_GROUP).unwrap();
    chmod(&sg, 0o2777).unwrap();
    let (file, dir) = (sg.join("f"), sg.join("d"));
    user(|| fs::write(&file, b"")).unwrap();
    user(|| fs::create_dir(&dir)).unwrap();
    let fm = fs::metadata(&file).unwrap();
    assert_eq!((fm.uid(), fm.gid()), (USER, OTHER_GROUP));
    let dm = fs::metadata(&dir).unwrap();
    assert_eq!((dm.uid(), dm.gid()), (USER, OTHER_GROUP));
    assert_eq!(dm.mode() & 0o2000, 0o2000, "subdirectory keeps setgid");
    assert_eq!(fm.mode() & 0o2000, 0, "file gets no setgid");
    // Asking for setgid on a group-executable file in someone else's group is not granted.
    let asked = sg.join("asked");
    user(|| mknod(&asked, libc::S_IFREG | 0o2775, 0)).unwrap();
    assert_eq!(mode(&asked) & 0o2000, 0, "setgid granted to a non-member");
    mknod(&sg.join("by-root"), libc::S_IFREG | 0o2775, 0).unwrap();
    assert_eq!(
        mode(&sg.join("by-root")) & 0o2000,
        0o2000,
        "root keeps setgid"
    );
}

#[test]
fn unlink_rename_and_sticky_directories() {
    let cluster = Cluster::start_default();
    let mount = setup(&cluster);
    let m = mount.path();

    fs::write(m.join("root/f"), b"x").unwrap();
    let f = m.join("root/f");
    assert_eq!(user(|| fs::remove_file(&f)), Err(libc::EACCES));
    let to = m.join("pub/moved");
    assert_eq!(user(|| fs::rename(&f, &to)), Err(libc::EACCES));
    expect_errno(fs::remove_file(m.join("root")), libc::EISDIR, "unlink dir");

    // Sticky: only the owner of the entry (or of the directory) may remove or rename it.
    let sticky = m.join("sticky");
    fs::create_dir(&sticky).unwrap();
    chmod(&sticky, 0o1777).unwrap();
    fs::write(sticky.join("roots"), b"").unwrap();
    chmod(&sticky.join("roots"), 0o666).unwrap();
    let (roots, renamed) = (sticky.join("roots"), sticky.join("renamed"));
    assert_eq!(user(|| fs::remove_file(&roots)), Err(libc::EPERM));
    assert_eq!(user(|| fs::rename(&roots, &renamed)), Err(libc::EPERM));
    let own = sticky.join("own");
    user(|| fs::write(&own, b"")).unwrap();
    assert_eq!(user(|| fs::remove_file(&own)), Ok(()));
    fs::remove_file(sticky.join("roots")).unwrap();

    // Rename updates the moved inode's ctime; unlink of one link updates ctime and nlink.
    let a = m.join("root/a");
    fs::write(&a, b"a").unwrap();
    let before = times(&a);
    fs::rename(&a, m.join("root/b")).unwrap();
    assert!(times(&m.join("root/b"))[2] > before[2], "rename sets ctime");
    fs::hard_link(m.join("root/b"), m.join("root/c")).unwrap();
    let before = times(&m.join("root/c"));
    fs::remove_file(m.join("root/b")).unwrap();
    let meta = fs::metadata(m.join("root/c")).unwrap();
    assert_eq!(meta.nlink(), 1);
    assert!(times(&m.join("root/c"))[2] > before[2], "unlink sets ctime");

    // renameat2: NOREPLACE refuses an existing target, EXCHANGE swaps.
    fs::write(m.join("root/x"), b"x").unwrap();
    fs::write(m.join("root/y"), b"y").unwrap();
    expect_errno(
        renameat2(&m.join("root/x"), &m.join("root/y"), libc::RENAME_NOREPLACE),
        libc::EEXIST,
        "RENAME_NOREPLACE",
    );
    renameat2(&m.join("root/x"), &m.join("root/y"), libc::RENAME_EXCHANGE).unwrap();
    assert_eq!(fs::read(m.join("root/x")).unwrap(), b"y");
    assert_eq!(fs::read(m.join("root/y")).unwrap(), b"x");
    expect_errno(
        renameat2(
            &m.join("root/x"),
            &m.join("root/none"),
            libc::RENAME_EXCHANGE,
        ),
        libc::ENOENT,
        "RENAME_EXCHANGE with missing target",
    );
    // As the user in their own directory.
    let (p, q) = (m.join("mine/p"), m.join("mine/q"));
    user(|| fs::write(&p, b"p")).unwrap();
    user(|| fs::write(&q, b"q")).unwrap();
    assert_eq!(
        user(|| renameat2(&p, &q, libc::RENAME_NOREPLACE)),
        Err(libc::EEXIST)
    );
    assert_eq!(user(|| renameat2(&p, &q, libc::RENAME_EXCHANGE)), Ok(()));
    assert_eq!(fs::read(&p).unwrap(), b"q");
}

#[test]
fn link_symlink_mkfifo_mknod() {
    let cluster = Cluster::start_default();
    let mount = setup(&cluster);
    let m = mount.path();

    let f = m.join("root/f");
    fs::write(&f, b"x").unwrap();
    let before = times(&f);
    fs::hard_link(&f, m.join("root/g")).unwrap();
    let meta = fs::metadata(&f).unwrap();
    assert_eq!(meta.nlink(), 2);
    assert!(times(&f)[2] > before[2], "link sets ctime");
    expect_errno(
        fs::hard_link(m.join("root"), m.join("pub/dirlink")),
        libc::EPERM,
        "link of a directory",
    );
    expect_errno(
        fs::hard_link(&f, m.join("root/g")),
        libc::EEXIST,
        "link onto existing",
    );
    // Linking needs write permission on the target directory (the caller's own file, so
    // `protected_hardlinks` does not interfere).
    let (mine, to) = (m.join("mine/own"), m.join("root/h"));
    user(|| fs::write(&mine, b"")).unwrap();
    assert_eq!(user(|| fs::hard_link(&mine, &to)), Err(libc::EACCES));
    let to = m.join("mine/own2");
    assert_eq!(user(|| fs::hard_link(&mine, &to)), Ok(()));
    assert_eq!(fs::metadata(&mine).unwrap().nlink(), 2);

    // Symlinks belong to their creator and read back their target.
    let l = m.join("pub/l");
    user(|| symlink("some/target", &l)).unwrap();
    let meta = fs::symlink_metadata(&l).unwrap();
    assert!(meta.file_type().is_symlink());
    assert_eq!((meta.uid(), meta.gid()), (USER, USER_GROUP));
    assert_eq!(fs::read_link(&l).unwrap(), Path::new("some/target"));
    expect_errno(symlink("t", &l), libc::EEXIST, "symlink onto existing");
    let l2 = m.join("root/l");
    assert_eq!(user(|| symlink("t", &l2)), Err(libc::EACCES));

    // FIFOs (mkfifo as root, mknod as the user) and device nodes.
    let rf = cstr(&m.join("root/rfifo"));
    // SAFETY: valid path.
    check(unsafe { libc::mkfifo(rf.as_ptr(), 0o600) }).unwrap();
    assert!(
        fs::metadata(m.join("root/rfifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    expect_errno(
        check(unsafe { libc::mkfifo(rf.as_ptr(), 0o600) }),
        libc::EEXIST,
        "mkfifo twice",
    );
    let uf = cstr(&m.join("root/ufifo"));
    assert_eq!(
        user(|| check(unsafe { libc::mkfifo(uf.as_ptr(), 0o600) })),
        Err(libc::EACCES)
    );
    let fifo = m.join("pub/fifo");
    user(|| mknod(&fifo, libc::S_IFIFO | 0o640, 0)).unwrap();
    let meta = fs::metadata(&fifo).unwrap();
    assert_eq!(meta.mode() & libc::S_IFMT, libc::S_IFIFO);
    assert_eq!(meta.mode() & 0o7777, 0o640);
    assert_eq!(meta.uid(), USER);
    let dev = libc::makedev(1, 3);
    mknod(&m.join("root/null"), libc::S_IFCHR | 0o666, dev).unwrap();
    let meta = fs::metadata(m.join("root/null")).unwrap();
    assert_eq!(meta.mode() & libc::S_IFMT, libc::S_IFCHR);
    assert_eq!(meta.rdev(), dev);
    let cdev = m.join("pub/null");
    assert_eq!(
        user(|| mknod(&cdev, libc::S_IFCHR | 0o666, dev)),
        Err(libc::EPERM)
    );
    mknod(
        &m.join("root/blk"),
        libc::S_IFBLK | 0o600,
        libc::makedev(7, 0),
    )
    .unwrap();
    assert_eq!(
        fs::metadata(m.join("root/blk")).unwrap().mode() & libc::S_IFMT,
        libc::S_IFBLK
    );
    expect_errno(
        mknod(&m.join("root/null"), libc::S_IFIFO | 0o600, 0),
        libc::EEXIST,
        "mknod onto existing",
    );
}

#[test]
fn rename_replacement_rules() {
    let cluster = Cluster::start_default();
    let mount = setup(&cluster);
    let m = mount.path();
    let r = |p: &str| m.join("root").join(p);

    fs::write(r("f"), b"new").unwrap();
    fs::write(r("g"), b"old").unwrap();
    fs::hard_link(r("g"), r("g2")).unwrap();
    fs::rename(r("f"), r("g")).unwrap();
    assert_eq!(fs::read(r("g")).unwrap(), b"new");
    assert_eq!(
        fs::metadata(r("g2")).unwrap().nlink(),
        1,
        "replaced inode lost a link"
    );
    fs::create_dir(r("d")).unwrap();
    fs::create_dir(r("e")).unwrap();
    fs::rename(r("d"), r("e")).unwrap();
    assert!(!r("d").exists() && r("e").is_dir());
    fs::create_dir(r("d")).unwrap();
    fs::write(r("e/inside"), b"").unwrap();
    expect_errno(
        fs::rename(r("d"), r("e")),
        libc::ENOTEMPTY,
        "onto non-empty",
    );
    expect_errno(fs::rename(r("g"), r("e")), libc::EISDIR, "file onto dir");
    expect_errno(fs::rename(r("d"), r("g")), libc::ENOTDIR, "dir onto file");
    expect_errno(
        fs::rename(r("e"), r("e/sub")),
        libc::EINVAL,
        "into own subtree",
    );
    expect_errno(
        fs::rename(r("none"), r("x")),
        libc::ENOENT,
        "missing source",
    );
    // Moving a directory updates both parents' link counts.
    let (nl_root, nl_pub) = (
        fs::metadata(m.join("root")).unwrap().nlink(),
        fs::metadata(m.join("pub")).unwrap().nlink(),
    );
    fs::rename(r("d"), m.join("pub/d")).unwrap();
    assert_eq!(fs::metadata(m.join("root")).unwrap().nlink(), nl_root - 1);
    assert_eq!(fs::metadata(m.join("pub")).unwrap().nlink(), nl_pub + 1);

    // As the user: rename within a writable directory, out of a non-writable one refused.
    let (a, b) = (m.join("pub/ua"), m.join("pub/ub"));
    user(|| fs::write(&a, b"a")).unwrap();
    assert_eq!(user(|| fs::rename(&a, &b)), Ok(()));
    assert_eq!(fs::read(&b).unwrap(), b"a");
    let (from, to) = (r("g"), m.join("pub/stolen"));
    assert_eq!(user(|| fs::rename(&from, &to)), Err(libc::EACCES));
    let (from, to) = (b.clone(), r("intruder"));
    assert_eq!(user(|| fs::rename(&from, &to)), Err(libc::EACCES));
}

#[test]
fn unlink_times_and_sockets() {
    let cluster = Cluster::start_default();
    let mount = setup(&cluster);
    let m = mount.path();

    // Unlink updates the directory's mtime and ctime.
    let f = m.join("pub/f");
    user(|| fs::write(&f, b"x")).unwrap();
    let before = times(&m.join("pub"));
    user(|| fs::remove_file(&f)).unwrap();
    let after = times(&m.join("pub"));
    assert!(
        after[1] > before[1] && after[2] > before[2],
        "unlink parent times"
    );
    assert_eq!(user(|| fs::remove_file(&f)), Err(libc::ENOENT));

    // A Unix socket bound on the mount is a socket inode of the binder.
    let sock = m.join("pub/sock");
    user(|| std::os::unix::net::UnixListener::bind(&sock).map(drop)).unwrap();
    let meta = fs::symlink_metadata(&sock).unwrap();
    assert_eq!(meta.mode() & libc::S_IFMT, libc::S_IFSOCK);
    assert_eq!(meta.uid(), USER);
    // Hard links of a symlink and of a FIFO.
    symlink("target", m.join("root/sl")).unwrap();
    fs::hard_link(m.join("root/sl"), m.join("root/sl2")).unwrap();
    assert_eq!(
        fs::read_link(m.join("root/sl2")).unwrap(),
        Path::new("target")
    );
    assert_eq!(fs::symlink_metadata(m.join("root/sl")).unwrap().nlink(), 2);
    mknod(&m.join("root/fifo"), libc::S_IFIFO | 0o600, 0).unwrap();
    fs::hard_link(m.join("root/fifo"), m.join("root/fifo2")).unwrap();
    assert_eq!(fs::metadata(m.join("root/fifo2")).unwrap().nlink(), 2);

    // chmod g+s by an owner outside the file's group drops the bit.
    let own = m.join("mine/g");
    user(|| fs::write(&own, b"")).unwrap();
    chown(&own, USER, OTHER_GROUP).unwrap();
    let t = own.clone();
    assert_eq!(user(|| chmod(&t, 0o2755)), Ok(()));
    assert_eq!(mode(&own), 0o755, "setgid kept by a non-member");
}

#[test]
fn exchange_across_directories_and_parent_times() {
    let cluster = Cluster::start_default();
    let mount = setup(&cluster);
    let m = mount.path();

    fs::create_dir(m.join("root/dx")).unwrap();
    fs::write(m.join("pub/fx"), b"fx").unwrap();
    let nl = |p: &str| fs::metadata(m.join(p)).unwrap().nlink();
    let (nl_root, nl_pub) = (nl("root"), nl("pub"));
    let (root_before, pub_before) = (times(&m.join("root")), times(&m.join("pub")));
    let (dx_before, fx_before) = (times(&m.join("root/dx")), times(&m.join("pub/fx")));
    renameat2(&m.join("root/dx"), &m.join("pub/fx"), libc::RENAME_EXCHANGE).unwrap();
    assert!(m.join("pub/fx").is_dir());
    assert_eq!(fs::read(m.join("root/dx")).unwrap(), b"fx");
    assert_eq!(
        nl("root"),
        nl_root - 1,
        "source parent loses the subdirectory"
    );
    assert_eq!(
        nl("pub"),
        nl_pub + 1,
        "target parent gains the subdirectory"
    );
    let (root_after, pub_after) = (times(&m.join("root")), times(&m.join("pub")));
    assert!(root_after[1] > root_before[1] && root_after[2] > root_before[2]);
    assert!(pub_after[1] > pub_before[1] && pub_after[2] > pub_before[2]);
    assert!(
        times(&m.join("pub/fx"))[2] > dx_before[2],
        "exchanged dir ctime"
    );
    assert!(
        times(&m.join("root/dx"))[2] > fx_before[2],
        "exchanged file ctime"
    );
    // The moved directory's `..` is its new parent.
    fs::write(m.join("pub/fx/probe"), b"").unwrap();
    assert!(m.join("pub/fx/../fx/probe").exists());

    // chown of a set-group-ID directory keeps the bit.
    fs::create_dir(m.join("root/sgd")).unwrap();
    chmod(&m.join("root/sgd"), 0o2775).unwrap();
    chown(&m.join("root/sgd"), USER, USER_GROUP).unwrap();
    assert_eq!(mode(&m.join("root/sgd")), 0o2775);
}
