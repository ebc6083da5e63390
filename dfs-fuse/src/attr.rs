//! Conversions between the wire types of `dfs.proto` and the kernel's view (`fuser` types,
//! `st_mode` bits). All of them live here, so the rest of the crate speaks one language.

use std::time::{SystemTime, UNIX_EPOCH};

use dfs_proto::pb::{self, FileKind};
use fuser::{FileAttr, FileType, INodeNo, TimeOrNow};

/// `st_blksize` reported for every file: the preferred I/O size. Tools like `cp` size their
/// buffers by it, and 1 MiB matches the largest FUSE request.
pub const PREFERRED_IO_SIZE: u32 = 1 << 20;

/// The kernel's file type for a wire file kind (unknown kinds read as regular files).
pub fn file_type(kind: i32) -> FileType {
    match FileKind::try_from(kind).unwrap_or(FileKind::Regular) {
        FileKind::Directory => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
        FileKind::Fifo => FileType::NamedPipe,
        FileKind::CharDevice => FileType::CharDevice,
        FileKind::BlockDevice => FileType::BlockDevice,
        FileKind::Socket => FileType::Socket,
        FileKind::Regular | FileKind::Unspecified => FileType::RegularFile,
    }
}

/// The wire file kind encoded in the type bits of an `st_mode` (as `mknod` passes it).
pub fn kind_from_mode(mode: u32) -> FileKind {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileKind::Directory,
        libc::S_IFLNK => FileKind::Symlink,
        libc::S_IFIFO => FileKind::Fifo,
        libc::S_IFCHR => FileKind::CharDevice,
        libc::S_IFBLK => FileKind::BlockDevice,
        libc::S_IFSOCK => FileKind::Socket,
        _ => FileKind::Regular,
    }
}

/// Permission bits of a new node: the requested mode without type bits, minus the umask.
pub fn creation_perm(mode: u32, umask: u32) -> u32 {
    mode & 0o7777 & !umask
}

fn time(t: Option<pb::Timestamp>) -> SystemTime {
    t.map(SystemTime::from).unwrap_or(UNIX_EPOCH)
}

/// The wire timestamp for a `setattr` time: an explicit time, or the client's clock for
/// `UTIME_NOW`.
pub fn wire_time(t: TimeOrNow) -> pb::Timestamp {
    match t {
        TimeOrNow::SpecificTime(t) => t.into(),
        TimeOrNow::Now => dfs_proto::time::now(),
    }
}

/// The kernel's attributes for a wire attribute record.
pub fn file_attr(attr: &pb::Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(attr.ino),
        size: attr.size,
        blocks: attr.size.div_ceil(512),
        atime: time(attr.atime),
        mtime: time(attr.mtime),
        ctime: time(attr.ctime),
        crtime: time(attr.crtime),
        kind: file_type(attr.kind),
        perm: (attr.perm & 0o7777) as u16,
        nlink: attr.nlink,
        uid: attr.uid,
        gid: attr.gid,
        rdev: attr.rdev,
        blksize: PREFERRED_IO_SIZE,
        flags: 0,
    }
}

/// The relatime rule, shared with the master (which applies it at open).
pub use dfs_proto::time::access_due;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_mode_bits() {
        for (mode, kind, ty) in [
            (libc::S_IFREG, FileKind::Regular, FileType::RegularFile),
            (libc::S_IFDIR, FileKind::Directory, FileType::Directory),
            (libc::S_IFLNK, FileKind::Symlink, FileType::Symlink),
            (libc::S_IFIFO, FileKind::Fifo, FileType::NamedPipe),
            (libc::S_IFCHR, FileKind::CharDevice, FileType::CharDevice),
            (libc::S_IFBLK, FileKind::BlockDevice, FileType::BlockDevice),
            (libc::S_IFSOCK, FileKind::Socket, FileType::Socket),
        ] {
            assert_eq!(kind_from_mode(mode | 0o644), kind);
            assert_eq!(file_type(kind as i32), ty);
        }
    }

    #[test]
    fn creation_applies_umask_and_drops_type_bits() {
        assert_eq!(creation_perm(libc::S_IFREG | 0o666, 0o022), 0o644);
        assert_eq!(creation_perm(libc::S_IFDIR | 0o1777, 0o077), 0o1700);
    }

    #[test]
    fn setattr_times_are_explicit_or_now() {
        let t = UNIX_EPOCH + std::time::Duration::new(42, 7);
        assert_eq!(
            wire_time(TimeOrNow::SpecificTime(t)),
            pb::Timestamp { secs: 42, nanos: 7 }
        );
        assert!(wire_time(TimeOrNow::Now).secs > 1_600_000_000);
    }

    #[test]
    fn attributes_convert_with_times_and_blocks() {
        let attr = pb::Attr {
            ino: 9,
            kind: FileKind::Regular as i32,
            perm: 0o640,
            size: 1025,
            nlink: 1,
            mtime: Some(pb::Timestamp { secs: 10, nanos: 5 }),
            ..Default::default()
        };
        let fa = file_attr(&attr);
        assert_eq!(fa.ino, INodeNo(9));
        assert_eq!(fa.blocks, 3);
        assert_eq!(fa.perm, 0o640);
        assert_eq!(fa.mtime, UNIX_EPOCH + std::time::Duration::new(10, 5));
        assert_eq!(fa.atime, UNIX_EPOCH);
    }

    #[test]
    fn reads_mark_atime_by_the_relatime_rule() {
        let at = |secs| Some(pb::Timestamp { secs, nanos: 0 });
        let now = UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        let attr = |atime, mtime| pb::Attr {
            atime: at(atime),
            mtime: at(mtime),
            ctime: at(mtime),
            ..pb::Attr::default()
        };
        assert!(access_due(&attr(100, 200), now), "atime before mtime");
        assert!(access_due(&attr(200, 200), now), "atime equal to mtime");
        assert!(
            !access_due(&attr(999_000, 200), now),
            "fresh atime after mtime"
        );
        assert!(
            access_due(&attr(900_000, 200), now),
            "atime older than a day"
        );
    }
}
