//! Shared writable `mmap` reaching the file (seen by another mount after `msync`/close), and
//! `statfs` as `df` shows it: size, used and available space in usable (post-replication)
//! bytes, inode counts, name length.

use std::fs::{self, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

use dfs_tests::{Cluster, ClusterOptions, pseudo_random_bytes, sh, wait_until};

const PAGE: usize = 4096;

/// A shared mapping of `len` bytes of `file`, unmapped on drop.
struct Mapping {
    addr: *mut u8,
    len: usize,
}

impl Mapping {
    fn shared(file: &fs::File, len: usize, writable: bool) -> Mapping {
        let prot = libc::PROT_READ | if writable { libc::PROT_WRITE } else { 0 };
        // SAFETY: a fresh mapping of an open descriptor; the kernel picks the address.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(
            addr,
            libc::MAP_FAILED,
            "mmap: {}",
            std::io::Error::last_os_error()
        );
        Mapping {
            addr: addr.cast(),
            len,
        }
    }

    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is `len` bytes long and lives as long as `self`.
        unsafe { std::slice::from_raw_parts_mut(self.addr, self.len) }
    }

    fn msync(&self) {
        // SAFETY: the whole mapping, still mapped.
        let rc = unsafe { libc::msync(self.addr.cast(), self.len, libc::MS_SYNC) };
        assert_eq!(rc, 0, "msync: {}", std::io::Error::last_os_error());
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `shared` mapped.
        unsafe { libc::munmap(self.addr.cast(), self.len) };
    }
}

#[test]
fn writes_through_a_shared_mapping_reach_the_file_and_other_mounts() {
    let cluster = Cluster::start(ClusterOptions {
        chunk_size: 1 << 20,
        ..Default::default()
    });
    let (a, b) = (cluster.mount(), cluster.mount());
    // Crosses a chunk boundary, and ends inside a page.
    let len = (1 << 20) + 3 * PAGE + 100;
    let original = pseudo_random_bytes(1, len);
    fs::write(a.join("f"), &original).unwrap();

    // msync, then read back through read(2) on the same mount and on the other one while the
    // mapping is still there.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(a.join("f"))
        .unwrap();
    let mut map = Mapping::shared(&file, len, true);
    let mut expected = original.clone();
    for (offset, text) in [
        (0usize, &b"first page"[..]),
        (PAGE - 3, b"straddles two pages"),
        ((1 << 20) - 5, b"across the chunk boundary"),
        (len - 4, b"end!"),
    ] {
        map.bytes()[offset..offset + text.len()].copy_from_slice(text);
        expected[offset..offset + text.len()].copy_from_slice(text);
    }
    map.msync();
    assert!(fs::read(a.join("f")).unwrap() == expected, "same mount");
    assert!(fs::read(b.join("f")).unwrap() == expected, "other mount");

    // Without msync: munmap and close publish the dirty pages too.
    map.bytes()[2 * PAGE..2 * PAGE + 7].copy_from_slice(b"no sync");
    expected[2 * PAGE..2 * PAGE + 7].copy_from_slice(b"no sync");
    drop(map);
    drop(file);
    assert!(fs::read(b.join("f")).unwrap() == expected, "after munmap");
    assert_eq!(fs::metadata(b.join("f")).unwrap().len(), len as u64);

    // The other mount's update shows in a new mapping here (close-to-open).
    let mut update = expected.clone();
    update[PAGE..PAGE + 12].copy_from_slice(b"from mount b");
    fs::write(b.join("f"), &update).unwrap();
    let file = fs::File::open(a.join("f")).unwrap();
    let mut map = Mapping::shared(&file, len, false);
    assert!(map.bytes() == &update[..], "mapping on a after b wrote");
}

/// `df` of `mount` in bytes: (size, used, available).
fn df_bytes(mount: &Path) -> (u64, u64, u64) {
    let out = sh(mount, "df -B1 --output=size,used,avail . | tail -n 1");
    let fields: Vec<u64> = out.split_whitespace().map(|f| f.parse().unwrap()).collect();
    (fields[0], fields[1], fields[2])
}

/// `df -i` of `mount`: (inodes, used, free).
fn df_inodes(mount: &Path) -> (u64, u64, u64) {
    let out = sh(mount, "df --output=itotal,iused,iavail . | tail -n 1");
    let fields: Vec<u64> = out.split_whitespace().map(|f| f.parse().unwrap()).collect();
    (fields[0], fields[1], fields[2])
}

#[test]
fn df_shows_usable_space_and_inodes() {
    const CAPACITY: u64 = 256 << 20;
    let cluster = Cluster::start(ClusterOptions {
        chunk_size: 4 << 20,
        capacity_bytes: Some(CAPACITY),
        ..Default::default()
    });
    let mount = cluster.mount();
    let m = mount.path();

    let fstype = sh(m, "df --output=source,fstype . | tail -n 1");
    assert_eq!(
        fstype.split_whitespace().collect::<Vec<_>>(),
        [cluster.master_addr().as_str(), "fuse.dfs"]
    );
    // Three servers of 256 MiB each, every byte stored three times: 256 MiB usable.
    let (size, used, avail) = df_bytes(m);
    assert_eq!(size, CAPACITY);
    assert_eq!(used + avail, size);
    assert!(used < 1 << 20, "an empty cluster uses {used} bytes");
    let st = nix_statvfs(m);
    assert_eq!(st.f_bsize, 4096);
    assert_eq!(st.f_namemax, 255);
    assert_eq!(st.f_bavail, st.f_bfree);

    // 16 MiB written: `used` grows by 16 MiB once the chunkservers have reported.
    fs::write(m.join("big"), pseudo_random_bytes(2, 16 << 20)).unwrap();
    wait_until(Duration::from_secs(60), "df to count the new file", || {
        df_bytes(m).1 >= 16 << 20
    });
    let (size, used, avail) = df_bytes(m);
    assert_eq!(size, CAPACITY);
    assert!(used < 17 << 20, "16 MiB stored counts as {used} bytes");
    assert_eq!(used + avail, size);

    // Inodes: every new file counts as used; free inodes are plenty.
    let (total, iused, ifree) = df_inodes(m);
    assert_eq!(total, iused + ifree);
    for i in 0..10 {
        fs::write(m.join(format!("small{i}")), b"x").unwrap();
    }
    let (_, iused_after, ifree_after) = df_inodes(m);
    assert_eq!(iused_after, iused + 10);
    assert_eq!(ifree_after, ifree);

    // Deleting gives the space back (after the replicas are collected).
    fs::remove_file(m.join("big")).unwrap();
    wait_until(
        Duration::from_secs(60),
        "df to free the deleted file",
        || df_bytes(m).1 < 1 << 20,
    );
}

fn nix_statvfs(path: &Path) -> libc::statvfs {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid path and an out-parameter of the right type.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        assert_eq!(libc::statvfs(c.as_ptr(), &mut st), 0);
        st
    }
}
