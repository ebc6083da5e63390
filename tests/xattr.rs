//! Extended attributes through a mount: `setxattr`/`getxattr`/`listxattr`/`removexattr` with
//! Linux's errno for each misuse, the `attr` tools, persistence across a master restart, and
//! removal together with the file.

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use dfs_tests::{Cluster, sh, sh_output};

fn cpath(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap()
}

fn cname(name: &str) -> CString {
    CString::new(name).unwrap()
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap()
}

/// `setxattr(2)`: Ok or the errno.
fn set(path: &Path, name: &str, value: &[u8], flags: i32) -> Result<(), i32> {
    let rc = unsafe {
        libc::setxattr(
            cpath(path).as_ptr(),
            cname(name).as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    };
    if rc == 0 { Ok(()) } else { Err(last_errno()) }
}

/// `getxattr(2)` with a buffer of `size` bytes: the bytes (or only the length for size 0).
fn get(path: &Path, name: &str, size: usize) -> Result<Vec<u8>, i32> {
    let mut buf = vec![0u8; size];
    let rc = unsafe {
        libc::getxattr(
            cpath(path).as_ptr(),
            cname(name).as_ptr(),
            buf.as_mut_ptr().cast(),
            size,
        )
    };
    if rc < 0 {
        return Err(last_errno());
    }
    if size == 0 {
        return Ok(vec![0; rc as usize]);
    }
    buf.truncate(rc as usize);
    Ok(buf)
}

/// `listxattr(2)` with a buffer of `size` bytes.
fn list(path: &Path, size: usize) -> Result<Vec<u8>, i32> {
    let mut buf = vec![0u8; size];
    let rc = unsafe { libc::listxattr(cpath(path).as_ptr(), buf.as_mut_ptr().cast(), size) };
    if rc < 0 {
        return Err(last_errno());
    }
    if size == 0 {
        return Ok(vec![0; rc as usize]);
    }
    buf.truncate(rc as usize);
    Ok(buf)
}

fn remove(path: &Path, name: &str) -> Result<(), i32> {
    let rc = unsafe { libc::removexattr(cpath(path).as_ptr(), cname(name).as_ptr()) };
    if rc == 0 { Ok(()) } else { Err(last_errno()) }
}

#[test]
fn set_get_list_remove_with_linux_errors() {
    let cluster = Cluster::start_default();
    let mount = cluster.mount();
    let file = mount.join("f");
    fs::write(&file, b"data").unwrap();

    assert_eq!(get(&file, "user.missing", 64), Err(libc::ENODATA));
    assert_eq!(list(&file, 0).unwrap().len(), 0);
    set(&file, "user.colour", b"blue", 0).unwrap();
    set(&file, "user.empty", b"", 0).unwrap();
    assert_eq!(get(&file, "user.colour", 64).unwrap(), b"blue");
    assert_eq!(get(&file, "user.colour", 0).unwrap().len(), 4, "size query");
    assert_eq!(get(&file, "user.colour", 3), Err(libc::ERANGE));
    assert_eq!(get(&file, "user.empty", 64).unwrap(), b"");
    assert_eq!(list(&file, 256).unwrap(), b"user.colour\0user.empty\0");
    assert_eq!(list(&file, 0).unwrap().len(), 23);
    assert_eq!(list(&file, 5), Err(libc::ERANGE));

    // XATTR_CREATE / XATTR_REPLACE.
    assert_eq!(
        set(&file, "user.colour", b"red", libc::XATTR_CREATE),
        Err(libc::EEXIST)
    );
    assert_eq!(
        set(&file, "user.shape", b"round", libc::XATTR_REPLACE),
        Err(libc::ENODATA)
    );
    set(&file, "user.colour", b"red", libc::XATTR_REPLACE).unwrap();
    set(&file, "user.shape", b"round", libc::XATTR_CREATE).unwrap();
    assert_eq!(get(&file, "user.colour", 64).unwrap(), b"red");

    // Values: binary and up to the 64 KiB Linux allows; larger is E2BIG.
    let big: Vec<u8> = (0..65536u32).map(|i| (i * 7) as u8).collect();
    set(&file, "user.big", &big, 0).unwrap();
    assert_eq!(get(&file, "user.big", 65536).unwrap(), big);
    assert_eq!(
        set(&file, "user.huge", &vec![1; 65537], 0),
        Err(libc::E2BIG)
    );
    // Names: at most 255 bytes (ERANGE beyond, as Linux says).
    let long = format!("user.{}", "n".repeat(250));
    set(&file, &long, b"x", 0).unwrap();
    assert_eq!(set(&file, &format!("{long}n"), b"x", 0), Err(libc::ERANGE));

    // Remove.
    remove(&file, "user.shape").unwrap();
    assert_eq!(remove(&file, "user.shape"), Err(libc::ENODATA));
    assert_eq!(get(&file, "user.shape", 64), Err(libc::ENODATA));

    // Namespaces dfs does not store, and user.* on a symlink (refused by Linux).
    assert_eq!(set(&file, "security.label", b"x", 0), Err(libc::EOPNOTSUPP));
    assert_eq!(get(&file, "security.capability", 64), Err(libc::EOPNOTSUPP));
    assert_eq!(get(&file, "security.selinux", 64), Err(libc::EOPNOTSUPP));
    std::os::unix::fs::symlink("f", mount.join("link")).unwrap();
    let rc = unsafe {
        libc::lsetxattr(
            cpath(&mount.join("link")).as_ptr(),
            cname("user.x").as_ptr(),
            b"1".as_ptr().cast(),
            1,
            0,
        )
    };
    assert_eq!((rc, last_errno()), (-1, libc::EPERM));

    // A missing file.
    assert_eq!(get(&mount.join("nope"), "user.x", 8), Err(libc::ENOENT));

    // Directories carry attributes too, and the attributes follow a rename.
    let dir = mount.join("d");
    fs::create_dir(&dir).unwrap();
    set(&dir, "user.dir", b"yes", 0).unwrap();
    fs::rename(&dir, mount.join("d2")).unwrap();
    assert_eq!(get(&mount.join("d2"), "user.dir", 8).unwrap(), b"yes");
}

#[test]
fn attr_tools_and_a_master_restart() {
    let mut cluster = Cluster::start_default();
    let mount = cluster.mount();
    let m = mount.path();
    sh(
        m,
        "touch f && setfattr -n user.comment -v 'hello world' f && \
         setfattr -n user.bin -v 0x00ff10 f && setfattr -n user.gone -v 1 f && \
         setfattr -x user.gone f",
    );
    let dump = sh(m, "getfattr -d -e hex f");
    assert_eq!(
        dump,
        "# file: f\nuser.bin=0x00ff10\nuser.comment=0x68656c6c6f20776f726c64\n\n"
    );
    let missing = sh_output(m, "getfattr -n user.gone f");
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("No such attribute"),
        "{missing:?}"
    );

    cluster.restart_master();
    assert_eq!(
        sh(m, "getfattr -d -e hex f"),
        dump,
        "attributes lost in a restart"
    );
    assert_eq!(
        sh(m, "getfattr --only-values -n user.comment f"),
        "hello world"
    );

    // Removing the file removes its attributes; a new file starts with none.
    sh(m, "rm f && touch f");
    assert_eq!(sh(m, "getfattr -d f"), "");
}
