//! Shared by the `conformance_*` test binaries: running a closure as `nobody` in a forked child,
//! thin wrappers over the system calls `std` does not offer, and the mount every conformance test
//! starts from. Each binary includes this file with `#[path]` and uses part of it.

// Each binary uses only part of these helpers; the rest would be dead code in it.
#![allow(dead_code)]

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

pub use dfs_tests::expect_errno;
use dfs_tests::{Cluster, Mount};

/// The unprivileged caller: `nobody`, with `nogroup` as primary group.
pub const USER: u32 = 65534;
pub const USER_GROUP: u32 = 65534;
/// A supplementary group `nobody` is given for the chgrp cases.
pub const EXTRA_GROUP: u32 = 100;
/// A group `nobody` is never a member of.
pub const OTHER_GROUP: u32 = 4242;

/// Runs `f` in a forked child with the credentials of `nobody` (supplementary groups `groups`)
/// and returns its outcome: `Ok` or the errno it failed with.
pub fn as_user(groups: &[u32], f: impl FnOnce() -> io::Result<()>) -> Result<(), i32> {
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
pub fn user(f: impl FnOnce() -> io::Result<()>) -> Result<(), i32> {
    as_user(&[], f)
}

pub fn cstr(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap()
}

pub fn check(rc: i32) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub fn chown(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
}

pub fn chmod(path: &Path, mode: u32) -> io::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

pub fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

/// (seconds, nanoseconds) of atime, mtime and ctime.
pub fn times(path: &Path) -> [(i64, i64); 3] {
    let m = fs::symlink_metadata(path).unwrap();
    [
        (m.atime(), m.atime_nsec()),
        (m.mtime(), m.mtime_nsec()),
        (m.ctime(), m.ctime_nsec()),
    ]
}

pub fn utimensat(path: &Path, atime: libc::timespec, mtime: libc::timespec) -> io::Result<()> {
    let p = cstr(path);
    let ts = [atime, mtime];
    // SAFETY: valid path and two timespecs.
    check(unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), ts.as_ptr(), 0) })
}

pub fn ts(sec: i64, nsec: i64) -> libc::timespec {
    libc::timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    }
}

pub fn renameat2(from: &Path, to: &Path, flags: u32) -> io::Result<()> {
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

pub fn mknod(path: &Path, mode: u32, dev: libc::dev_t) -> io::Result<()> {
    let p = cstr(path);
    // SAFETY: valid path.
    check(unsafe { libc::mknod(p.as_ptr(), mode, dev) })
}

/// A mount whose mount point `nobody` can reach, with `pub` (mode 0777), `root` (0755, owned
/// by root) and `mine` (0755, owned by nobody) directories.
pub fn setup(cluster: &Cluster) -> Mount {
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
