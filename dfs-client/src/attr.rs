//! The client's domain types for what a file is and how it is opened, and their conversions to
//! and from the wire types of `dfs.proto`. All conversions live here, so the rest of the crate
//! and every program built on it (the mount, the `dfs` command) speak one language, and the
//! protocol can change without reaching them.

use std::time::{SystemTime, UNIX_EPOCH};

use dfs_proto::pb;

/// What kind of node an inode is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A regular file: bytes in chunks.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link; its target is read with `readlink`.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A character device node.
    CharDevice,
    /// A block device node.
    BlockDevice,
    /// A Unix domain socket node.
    Socket,
}

impl FileKind {
    /// The kind encoded in the type bits of an `st_mode` (as `mknod` passes it); no type bits
    /// mean a regular file.
    pub fn from_mode(mode: u32) -> FileKind {
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

    /// The type bits of an `st_mode` for this kind.
    pub fn mode_bits(self) -> u32 {
        match self {
            FileKind::Regular => libc::S_IFREG,
            FileKind::Directory => libc::S_IFDIR,
            FileKind::Symlink => libc::S_IFLNK,
            FileKind::Fifo => libc::S_IFIFO,
            FileKind::CharDevice => libc::S_IFCHR,
            FileKind::BlockDevice => libc::S_IFBLK,
            FileKind::Socket => libc::S_IFSOCK,
        }
    }
}

/// The attributes of an inode, as `stat` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    /// Inode number: the master's, which is also what the kernel sees.
    pub ino: u64,
    /// What the inode is.
    pub kind: FileKind,
    /// Permission bits (including setuid, setgid and sticky).
    pub perm: u16,
    /// Size in bytes (of a symlink: of its target).
    pub size: u64,
    /// Number of hard links.
    pub nlink: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Device number of a device node.
    pub rdev: u32,
    /// Last access (relatime rule).
    pub atime: SystemTime,
    /// Last change of content.
    pub mtime: SystemTime,
    /// Last change of content or attributes.
    pub ctime: SystemTime,
    /// Creation.
    pub crtime: SystemTime,
}

impl Attr {
    /// 512-byte blocks, as `st_blocks` counts them: dfs stores no holes it could report, so
    /// a file takes what its size says.
    pub fn blocks(&self) -> u64 {
        self.size.div_ceil(512)
    }

    /// `st_mode`: type bits and permission bits.
    pub fn mode(&self) -> u32 {
        self.kind.mode_bits() | u32::from(self.perm)
    }
}

/// An attribute change (`chmod`, `chown`, `truncate`, `utimes`): the fields that are `Some`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetAttr {
    /// New permission bits (type bits are ignored).
    pub perm: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// Truncate or extend to this size.
    pub size: Option<u64>,
    /// New access time.
    pub atime: Option<SystemTime>,
    /// New modification time.
    pub mtime: Option<SystemTime>,
}

/// How a file is opened: what of `open(2)`'s flags the client acts on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenFlags {
    /// Opened for reading.
    pub read: bool,
    /// Opened for writing.
    pub write: bool,
    /// Truncate to zero length at open (`O_TRUNC`).
    pub truncate: bool,
    /// With create: fail with `EEXIST` if the name exists (`O_EXCL`).
    pub exclusive: bool,
}

impl OpenFlags {
    /// Read only.
    pub const READ: OpenFlags = OpenFlags {
        read: true,
        write: false,
        truncate: false,
        exclusive: false,
    };

    /// Write only, truncating: how a copy replaces a file's content.
    pub const WRITE_TRUNCATE: OpenFlags = OpenFlags {
        read: false,
        write: true,
        truncate: true,
        exclusive: false,
    };

    /// The client's view of `open(2)` flags.
    pub fn from_posix(flags: i32) -> OpenFlags {
        let access = flags & libc::O_ACCMODE;
        OpenFlags {
            read: access != libc::O_WRONLY,
            write: access != libc::O_RDONLY,
            truncate: flags & libc::O_TRUNC != 0,
            exclusive: flags & libc::O_EXCL != 0,
        }
    }

    /// Whether the open changes the file: writes to it or truncates it, so it needs the
    /// file's writer lease.
    pub fn changes(self) -> bool {
        self.write || self.truncate
    }

    /// Whether the open reads the file as it is: a truncating open changes it rather than
    /// reading it.
    pub fn reads(self) -> bool {
        self.read && !self.truncate
    }
}

/// `st_blksize` reported for every file: the preferred I/O size. Tools like `cp` size their
/// buffers by it, and 1 MiB matches the largest FUSE request.
pub const PREFERRED_IO_SIZE: u32 = 1 << 20;

/// Permission bits of a new node: the requested mode without type bits, minus the umask.
pub fn creation_perm(mode: u32, umask: u32) -> u32 {
    mode & 0o7777 & !umask
}

fn time(t: Option<pb::Timestamp>) -> SystemTime {
    t.map(SystemTime::from).unwrap_or(UNIX_EPOCH)
}

impl From<pb::FileKind> for FileKind {
    fn from(kind: pb::FileKind) -> FileKind {
        match kind {
            pb::FileKind::Directory => FileKind::Directory,
            pb::FileKind::Symlink => FileKind::Symlink,
            pb::FileKind::Fifo => FileKind::Fifo,
            pb::FileKind::CharDevice => FileKind::CharDevice,
            pb::FileKind::BlockDevice => FileKind::BlockDevice,
            pb::FileKind::Socket => FileKind::Socket,
            pb::FileKind::Regular | pb::FileKind::Unspecified => FileKind::Regular,
        }
    }
}

impl From<FileKind> for pb::FileKind {
    fn from(kind: FileKind) -> pb::FileKind {
        match kind {
            FileKind::Regular => pb::FileKind::Regular,
            FileKind::Directory => pb::FileKind::Directory,
            FileKind::Symlink => pb::FileKind::Symlink,
            FileKind::Fifo => pb::FileKind::Fifo,
            FileKind::CharDevice => pb::FileKind::CharDevice,
            FileKind::BlockDevice => pb::FileKind::BlockDevice,
            FileKind::Socket => pb::FileKind::Socket,
        }
    }
}

/// The kind of a wire attribute record (unknown kinds read as regular files).
pub(crate) fn kind_of(attr: &pb::Attr) -> FileKind {
    pb::FileKind::try_from(attr.kind)
        .unwrap_or(pb::FileKind::Regular)
        .into()
}

impl From<&pb::Attr> for Attr {
    fn from(attr: &pb::Attr) -> Attr {
        Attr {
            ino: attr.ino,
            kind: kind_of(attr),
            perm: (attr.perm & 0o7777) as u16,
            size: attr.size,
            nlink: attr.nlink,
            uid: attr.uid,
            gid: attr.gid,
            rdev: attr.rdev,
            atime: time(attr.atime),
            mtime: time(attr.mtime),
            ctime: time(attr.ctime),
            crtime: time(attr.crtime),
        }
    }
}

impl SetAttr {
    /// The wire request changing inode `ino` so.
    pub(crate) fn request(&self, ino: u64) -> pb::SetAttrRequest {
        pb::SetAttrRequest {
            ino,
            perm: self.perm.map(|m| m & 0o7777),
            uid: self.uid,
            gid: self.gid,
            size: self.size,
            atime: self.atime.map(pb::Timestamp::from),
            mtime: self.mtime.map(pb::Timestamp::from),
            mark_access: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_mode_bits_and_the_wire() {
        for kind in [
            FileKind::Regular,
            FileKind::Directory,
            FileKind::Symlink,
            FileKind::Fifo,
            FileKind::CharDevice,
            FileKind::BlockDevice,
            FileKind::Socket,
        ] {
            assert_eq!(FileKind::from_mode(kind.mode_bits() | 0o644), kind);
            assert_eq!(FileKind::from(pb::FileKind::from(kind)), kind);
        }
        assert_eq!(FileKind::from_mode(0o644), FileKind::Regular);
    }

    #[test]
    fn creation_applies_umask_and_drops_type_bits() {
        assert_eq!(creation_perm(libc::S_IFREG | 0o666, 0o022), 0o644);
        assert_eq!(creation_perm(libc::S_IFDIR | 0o1777, 0o077), 0o1700);
    }

    #[test]
    fn attributes_convert_with_times_and_blocks() {
        let attr = pb::Attr {
            ino: 9,
            kind: pb::FileKind::Regular as i32,
            perm: 0o640,
            size: 1025,
            nlink: 1,
            mtime: Some(pb::Timestamp { secs: 10, nanos: 5 }),
            ..Default::default()
        };
        let attr = Attr::from(&attr);
        assert_eq!(attr.ino, 9);
        assert_eq!(attr.blocks(), 3);
        assert_eq!(attr.mode(), libc::S_IFREG | 0o640);
        assert_eq!(attr.mtime, UNIX_EPOCH + std::time::Duration::new(10, 5));
        assert_eq!(attr.atime, UNIX_EPOCH);
    }

    #[test]
    fn open_flags_follow_the_access_mode() {
        let rdonly = OpenFlags::from_posix(libc::O_RDONLY);
        assert!(rdonly.reads() && !rdonly.changes());
        let trunc = OpenFlags::from_posix(libc::O_RDONLY | libc::O_TRUNC);
        assert!(!trunc.reads() && trunc.changes());
        let rdwr = OpenFlags::from_posix(libc::O_RDWR | libc::O_EXCL);
        assert!(rdwr.reads() && rdwr.changes() && rdwr.exclusive);
        let wronly = OpenFlags::from_posix(libc::O_WRONLY);
        assert!(!wronly.reads() && wronly.changes());
    }

    #[test]
    fn an_attribute_change_keeps_only_permission_bits() {
        let change = SetAttr {
            perm: Some(libc::S_IFREG | 0o4755),
            size: Some(7),
            ..SetAttr::default()
        };
        let req = change.request(3);
        assert_eq!((req.ino, req.perm, req.size), (3, Some(0o4755), Some(7)));
        assert_eq!((req.uid, req.atime, req.mark_access), (None, None, false));
    }
}
