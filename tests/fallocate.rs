//! `fallocate(2)` and `posix_fallocate(3)` by system call: mode 0 extends the size (the new
//! range reads as zeros, on this mount and another), `FALLOC_FL_KEEP_SIZE` keeps it, other
//! modes are `EOPNOTSUPP`, a read-only descriptor is `EBADF`, and a range the cluster has no
//! room for is `ENOSPC`. Preallocation writes nothing: no replica appears on any chunkserver
//! (glibc's fallback when the filesystem lacks `fallocate` writes a zero into every block).

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;

use dfs_tests::{Cluster, ClusterOptions, errno, expect_errno};

/// Usable capacity of the test cluster: three servers of 64 MiB, replication 3.
const CAPACITY: u64 = 64 << 20;

fn cluster() -> Cluster {
    Cluster::start(ClusterOptions {
        chunk_size: 4 << 20,
        capacity_bytes: Some(CAPACITY),
        ..Default::default()
    })
}

fn fallocate(file: &fs::File, mode: i32, offset: i64, len: i64) -> io::Result<()> {
    // SAFETY: a valid descriptor; fallocate has no memory arguments.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), mode, offset, len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn posix_fallocate(file: &fs::File, offset: i64, len: i64) -> io::Result<()> {
    // SAFETY: a valid descriptor.
    match unsafe { libc::posix_fallocate(file.as_raw_fd(), offset, len) } {
        0 => Ok(()),
        rc => Err(io::Error::from_raw_os_error(rc)),
    }
}

fn read_all(path: &std::path::Path) -> Vec<u8> {
    let mut data = Vec::new();
    fs::File::open(path)
        .unwrap()
        .read_to_end(&mut data)
        .unwrap();
    data
}

#[test]
fn mode_zero_extends_keep_size_keeps_and_nothing_is_written() {
    let cluster = cluster();
    let (a, b) = (cluster.mount(), cluster.mount());
    let f = a.join("f");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&f)
        .unwrap();
    // Buffered, not yet committed: the extension starts after these bytes.
    file.write_all(b"abc").unwrap();
    let len = (9 << 20) + 5;
    fallocate(&file, 0, 0, len).unwrap();
    assert_eq!(file.metadata().unwrap().len(), len as u64);
    // A range inside the file changes nothing; KEEP_SIZE past the end keeps the size.
    fallocate(&file, 0, 100, 1000).unwrap();
    fallocate(&file, libc::FALLOC_FL_KEEP_SIZE, 0, 20 << 20).unwrap();
    assert_eq!(file.metadata().unwrap().len(), len as u64);
    drop(file);

    for path in [&f, &b.join("f")] {
        let data = read_all(path);
        assert_eq!(data.len() as u64, len as u64, "{}", path.display());
        assert_eq!(&data[..3], b"abc");
        assert!(
            data[3..].iter().all(|&byte| byte == 0),
            "zeros after the data"
        );
    }
    // Only the three written bytes are stored: preallocation wrote no zeros.
    let stored: u64 = (0..3).map(|i| cluster.replica_bytes(i)).sum();
    assert_eq!(stored, 3 * 3, "bytes on the chunkservers' disks");

    // posix_fallocate takes the same path: 32 MiB more, still nothing written.
    let g = b.join("g");
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&g)
        .unwrap();
    posix_fallocate(&file, 0, 32 << 20).unwrap();
    drop(file);
    assert_eq!(fs::metadata(a.join("g")).unwrap().len(), 32 << 20);
    let stored: u64 = (0..3).map(|i| cluster.replica_bytes(i)).sum();
    assert_eq!(stored, 3 * 3, "posix_fallocate fell back to writing zeros");
}

#[test]
fn unsupported_modes_read_only_descriptors_and_full_clusters_fail() {
    let cluster = cluster();
    let m = cluster.mount();
    let f = m.join("f");
    fs::write(&f, b"0123456789").unwrap();
    let file = OpenOptions::new().read(true).write(true).open(&f).unwrap();
    let keep = libc::FALLOC_FL_KEEP_SIZE;
    for (mode, what) in [
        (libc::FALLOC_FL_PUNCH_HOLE | keep, "punch hole"),
        (libc::FALLOC_FL_ZERO_RANGE, "zero range"),
        (libc::FALLOC_FL_COLLAPSE_RANGE, "collapse range"),
        (libc::FALLOC_FL_INSERT_RANGE, "insert range"),
    ] {
        expect_errno(fallocate(&file, mode, 0, 4096), libc::EOPNOTSUPP, what);
    }
    assert_eq!(fs::read(&f).unwrap(), b"0123456789");

    // Invalid ranges are refused by the kernel before dfs sees them.
    expect_errno(fallocate(&file, 0, 0, 0), libc::EINVAL, "zero length");
    expect_errno(fallocate(&file, 0, -1, 10), libc::EINVAL, "negative offset");
    let read_only = fs::File::open(&f).unwrap();
    expect_errno(
        fallocate(&read_only, 0, 0, 100),
        libc::EBADF,
        "read-only fd",
    );
    assert_eq!(
        posix_fallocate(&read_only, 0, 100).map_err(|e| errno(&e)),
        Err(libc::EBADF)
    );

    // More than the cluster holds: ENOSPC, and the size stays.
    expect_errno(
        fallocate(&file, 0, 0, 2 * CAPACITY as i64),
        libc::ENOSPC,
        "past the capacity",
    );
    expect_errno(
        fallocate(&file, keep, 0, 2 * CAPACITY as i64),
        libc::ENOSPC,
        "past the capacity, keeping the size",
    );
    expect_errno(
        posix_fallocate(&file, 0, 2 * CAPACITY as i64),
        libc::ENOSPC,
        "posix_fallocate past the capacity",
    );
    assert_eq!(file.metadata().unwrap().len(), 10);
    // Within the capacity it works.
    fallocate(&file, 0, 0, (CAPACITY / 2) as i64).unwrap();
    assert_eq!(file.metadata().unwrap().len(), CAPACITY / 2);
}
