//! Every failure a user can meet returns the errno POSIX names, through a real mount.

use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use dfs_tests::{Cluster, ClusterOptions, expect_errno, within};

fn renameat2(from: &Path, to: &Path, flags: u32) -> std::io::Result<()> {
    let from = CString::new(from.as_os_str().as_bytes()).unwrap();
    let to = CString::new(to.as_os_str().as_bytes()).unwrap();
    // SAFETY: both paths are valid NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            flags,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[test]
fn namespace_errors_map_to_posix_errno() {
    let cluster = Cluster::start_default();
    let mount = cluster.mount();
    let m = mount.path();
    fs::create_dir(m.join("dir")).unwrap();
    fs::write(m.join("dir/file"), b"x").unwrap();
    fs::create_dir(m.join("empty")).unwrap();
    fs::write(m.join("file"), b"data").unwrap();

    // ENOENT
    expect_errno(
        fs::metadata(m.join("missing")),
        libc::ENOENT,
        "stat missing",
    );
    expect_errno(fs::read(m.join("missing")), libc::ENOENT, "open missing");
    expect_errno(
        fs::remove_file(m.join("missing")),
        libc::ENOENT,
        "unlink missing",
    );
    expect_errno(
        fs::remove_dir(m.join("missing")),
        libc::ENOENT,
        "rmdir missing",
    );
    expect_errno(
        fs::write(m.join("missing/f"), b""),
        libc::ENOENT,
        "create in missing dir",
    );
    expect_errno(
        fs::rename(m.join("missing"), m.join("x")),
        libc::ENOENT,
        "rename missing",
    );

    // EEXIST
    expect_errno(
        fs::create_dir(m.join("dir")),
        libc::EEXIST,
        "mkdir existing",
    );
    expect_errno(
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(m.join("file")),
        libc::EEXIST,
        "O_CREAT|O_EXCL on existing",
    );
    expect_errno(
        std::os::unix::fs::symlink("t", m.join("file")),
        libc::EEXIST,
        "symlink",
    );
    expect_errno(
        fs::hard_link(m.join("file"), m.join("dir/file")),
        libc::EEXIST,
        "link",
    );
    expect_errno(
        renameat2(&m.join("file"), &m.join("empty"), libc::RENAME_NOREPLACE),
        libc::EEXIST,
        "RENAME_NOREPLACE onto existing",
    );

    // ENOTEMPTY
    expect_errno(
        fs::remove_dir(m.join("dir")),
        libc::ENOTEMPTY,
        "rmdir non-empty",
    );
    expect_errno(
        fs::rename(m.join("empty"), m.join("dir")),
        libc::ENOTEMPTY,
        "dir over full",
    );

    // ENOTDIR
    expect_errno(
        fs::create_dir(m.join("file/sub")),
        libc::ENOTDIR,
        "mkdir under a file",
    );
    expect_errno(
        fs::remove_dir(m.join("file")),
        libc::ENOTDIR,
        "rmdir a file",
    );
    expect_errno(
        fs::rename(m.join("empty"), m.join("file")),
        libc::ENOTDIR,
        "dir over file",
    );
    expect_errno(
        fs::read_dir(m.join("file")),
        libc::ENOTDIR,
        "opendir a file",
    );

    // EISDIR
    expect_errno(
        fs::remove_file(m.join("dir")),
        libc::EISDIR,
        "unlink a directory",
    );
    expect_errno(
        fs::rename(m.join("file"), m.join("empty")),
        libc::EISDIR,
        "file over dir",
    );
    expect_errno(
        OpenOptions::new().write(true).open(m.join("dir")),
        libc::EISDIR,
        "open a directory for writing",
    );

    // EINVAL: a directory moved into its own subtree.
    fs::create_dir_all(m.join("top/mid/low")).unwrap();
    expect_errno(
        fs::rename(m.join("top"), m.join("top/mid/low/top")),
        libc::EINVAL,
        "into self",
    );

    // ENAMETOOLONG: 255 bytes is the limit.
    let ok = "n".repeat(255);
    fs::write(m.join(&ok), b"long").unwrap();
    assert_eq!(fs::read(m.join(&ok)).unwrap(), b"long");
    let long = "n".repeat(256);
    expect_errno(
        fs::write(m.join(&long), b""),
        libc::ENAMETOOLONG,
        "create 256-byte name",
    );
    expect_errno(
        fs::create_dir(m.join(&long)),
        libc::ENAMETOOLONG,
        "mkdir 256-byte name",
    );
    expect_errno(
        fs::metadata(m.join(&long)),
        libc::ENAMETOOLONG,
        "lookup 256-byte name",
    );

    // EXDEV: rename and link out of the mount.
    let local = tempfile::tempdir().unwrap();
    expect_errno(
        fs::rename(m.join("file"), local.path().join("f")),
        libc::EXDEV,
        "rename out",
    );
    expect_errno(
        fs::hard_link(m.join("file"), local.path().join("f")),
        libc::EXDEV,
        "link out",
    );

    // EPERM: no hard links to directories.
    expect_errno(
        fs::hard_link(m.join("dir"), m.join("dirlink")),
        libc::EPERM,
        "link a dir",
    );

    // Nothing above changed what was there.
    assert_eq!(fs::read(m.join("file")).unwrap(), b"data");
    assert_eq!(fs::read(m.join("dir/file")).unwrap(), b"x");
    let mut names: Vec<_> = fs::read_dir(m)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["dir", "empty", "file", ok.as_str(), "top"]);
}

#[test]
fn a_full_cluster_returns_enospc_and_keeps_what_was_written() {
    // Four 1 MiB chunks of room per server.
    let cluster = Cluster::start(ClusterOptions {
        chunk_size: 1 << 20,
        capacity_bytes: Some(4 << 20),
        ..Default::default()
    });
    let mount = cluster.mount();
    let kept = vec![0x5au8; 1 << 20];
    fs::write(mount.join("kept"), &kept).unwrap();

    let path = mount.join("too-big");
    let result = within(Duration::from_secs(120), move || -> std::io::Result<()> {
        let mut file = fs::File::create(path)?;
        let block = vec![0xa5u8; 1 << 20];
        for _ in 0..32 {
            file.write_all(&block)?;
        }
        file.sync_all()
    });
    expect_errno(result, libc::ENOSPC, "writing past the cluster's capacity");
    assert_eq!(fs::read(mount.join("kept")).unwrap(), kept);
}
