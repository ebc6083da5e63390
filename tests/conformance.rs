//! POSIX conformance through a real mount, organised by system call. Each call is exercised as
//! root and as an unprivileged user (a forked child that drops to `nobody` before the call),
//! checking the exact errno and the resulting attributes.

use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt, symlink};
use std::path::Path;

use dfs_tests::{Cluster, Mount, errno};

/// The unprivileged caller: `nobody`, with `nogroup` as primary group.
const USER: u32 = 65534;
const USER_GROUP: u32 = 65534;
/// A supplementary group `nobody` is given for the chgrp cases.
const EXTRA_GROUP: u32 = 100;
/// A group `nobody` is never a member of.
const OTHER_GROUP: u32 = 4242;

/// Runs `f` in a forked child with the credentials of `nobody` (supplementary groups `groups`)
/// and returns its outcome: `Ok` or the errno it failed with.
fn as_user(groups: &[u32], f: impl FnOnce() -> io::Result<()>) -> Result<(), i32> {
    // SAFETY: the child only makes system calls and exits with `_exit`; glibc's malloc stays
    // usable after fork, so the closure may allocate.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
    if pid == 0 {
        let code = unsafe {
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                || libc::setgid(USER_GROUP) != 0
                || libc::setuid(USER) != 0
            {
                254
            } else {
                match f() {
                    Ok(()) => 0,
                    Err(e) => e.raw_os_error().unwrap_or(255),
                }
            }
        };
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child just forked.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(rc, pid, "waitpid");
    assert!(libc::WIFEXITED(status), "child died: {status}");
    match libc::WEXITSTATUS(status) {
        0 => Ok(()),
        254 => panic!("could not drop privileges"),
        code => Err(code),
    }
}

/// Runs `f` as `nobody` with no supplementary groups.
fn user(f: impl FnOnce() -> io::Result<()>) -> Result<(), i32> {
    as_user(&[], f)
}

fn expect_errno<T: std::fmt::Debug>(result: io::Result<T>, want: i32, what: &str) {
    match result {
        Ok(v) => panic!("{what}: expected errno {want}, got Ok({v:?})"),
        Err(e) => assert_eq!(errno(&e), want, "{what}: {e}"),
    }
}

fn cstr(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap()
}

fn check(rc: i32) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn chown(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
}

fn chmod(path: &Path, mode: u32) -> io::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

/// (seconds, nanoseconds) of atime, mtime and ctime.
fn times(path: &Path) -> [(i64, i64); 3] {
    let m = fs::symlink_metadata(path).unwrap();
    [
        (m.atime(), m.atime_nsec()),
        (m.mtime(), m.mtime_nsec()),
        (m.ctime(), m.ctime_nsec()),
    ]
}

fn utimensat(path: &Path, atime: libc::timespec, mtime: libc::timespec) -> io::Result<()> {
    let p = cstr(path);
    let ts = [atime, mtime];
    // SAFETY: valid path and two timespecs.
    check(unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), ts.as_ptr(), 0) })
}

fn ts(sec: i64, nsec: i64) -> libc::timespec {
    libc::timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    }
}

fn renameat2(from: &Path, to: &Path, flags: u32) -> io::Result<()> {
    let (from, to) = (cstr(from), cstr(to));
    // SAFETY: both paths are valid NUL-terminated strings.
    check(unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            flags,
        )
    })
}

fn mknod(path: &Path, mode: u32, dev: libc::dev_t) -> io::Result<()> {
    let p = cstr(path);
    // SAFETY: valid path.
    check(unsafe { libc::mknod(p.as_ptr(), mode, dev) })
}

/// A mount whose mount point `nobody` can reach, with `pub` (mode 0777), `root` (0755, owned
/// by root) and `mine` (0755, owned by nobody) directories.
fn setup(cluster: &Cluster) -> Mount {
    let mount = cluster.mount();
    chmod(mount.path().parent().unwrap(), 0o755).unwrap();
    let m = mount.path();
    fs::create_dir(m.join("pub")).unwrap();
    chmod(&m.join("pub"), 0o777).unwrap();
    fs::create_dir(m.join("root")).unwrap();
    chmod(&m.join("root"), 0o755).unwrap();
    fs::create_dir(m.join("mine")).unwrap();
    chown(&m.join("mine"), USER, USER_GROUP).unwrap();
    mount
}

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
