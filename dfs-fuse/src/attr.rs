//! Conversions between the client's domain types and the kernel's (`fuser` types). All of
//! them live here, so the rest of the adapter speaks one language.

use std::time::SystemTime;

use dfs_client::{Attr, FileKind, PREFERRED_IO_SIZE};
use fuser::{FileAttr, FileType, INodeNo, TimeOrNow};

/// The kernel's file type for a file kind.
pub fn file_type(kind: FileKind) -> FileType {
    match kind {
        FileKind::Regular => FileType::RegularFile,
        FileKind::Directory => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
        FileKind::Fifo => FileType::NamedPipe,
        FileKind::CharDevice => FileType::CharDevice,
        FileKind::BlockDevice => FileType::BlockDevice,
        FileKind::Socket => FileType::Socket,
    }
}

/// The time a `setattr` sets: an explicit time, or this machine's clock for `UTIME_NOW`.
pub fn set_time(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

/// The kernel's attributes for a client's attributes.
pub fn file_attr(attr: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(attr.ino),
        size: attr.size,
        blocks: attr.blocks(),
        atime: attr.atime,
        mtime: attr.mtime,
        ctime: attr.ctime,
        crtime: attr.crtime,
        kind: file_type(attr.kind),
        perm: attr.perm,
        nlink: attr.nlink,
        uid: attr.uid,
        gid: attr.gid,
        rdev: attr.rdev,
        blksize: PREFERRED_IO_SIZE,
        flags: 0,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn kinds_map_to_the_kernel_types() {
        for (kind, ty) in [
            (FileKind::Regular, FileType::RegularFile),
            (FileKind::Directory, FileType::Directory),
            (FileKind::Symlink, FileType::Symlink),
            (FileKind::Fifo, FileType::NamedPipe),
            (FileKind::CharDevice, FileType::CharDevice),
            (FileKind::BlockDevice, FileType::BlockDevice),
            (FileKind::Socket, FileType::Socket),
        ] {
            assert_eq!(file_type(kind), ty);
        }
    }

    #[test]
    fn setattr_times_are_explicit_or_now() {
        let t = UNIX_EPOCH + Duration::new(42, 7);
        assert_eq!(set_time(TimeOrNow::SpecificTime(t)), t);
        assert!(set_time(TimeOrNow::Now) > UNIX_EPOCH + Duration::from_secs(1_600_000_000));
    }

    #[test]
    fn attributes_convert_with_times_and_blocks() {
        let mtime = UNIX_EPOCH + Duration::new(10, 5);
        let attr = Attr {
            ino: 9,
            kind: FileKind::Regular,
            perm: 0o640,
            size: 1025,
            nlink: 1,
            uid: 1,
            gid: 2,
            rdev: 0,
            atime: UNIX_EPOCH,
            mtime,
            ctime: mtime,
            crtime: UNIX_EPOCH,
        };
        let fa = file_attr(&attr);
        assert_eq!(fa.ino, INodeNo(9));
        assert_eq!(fa.blocks, 3);
        assert_eq!(fa.perm, 0o640);
        assert_eq!(fa.mtime, mtime);
        assert_eq!(fa.blksize, PREFERRED_IO_SIZE);
    }
}
