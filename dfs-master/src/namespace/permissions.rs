//! POSIX permission rules the master applies itself because the kernel's
//! `default_permissions` check cannot: they depend on the parent directory as stored here,
//! not on the caller's access to it.

use dfs_proto::pb::{Attr, FileKind};

/// The set-group-ID bit of a mode.
pub const SET_GID: u32 = 0o2000;

/// Owner group and permission bits of a new `kind` inode created by a caller whose primary
/// group is `gid`, asking for `perm`, in a directory with attributes `parent`.
///
/// In a set-group-ID directory a new inode takes the directory's group instead of the
/// caller's, and a new subdirectory inherits the set-group-ID bit, so the whole subtree keeps
/// one group (how shared project directories work on every POSIX filesystem).
pub fn new_inode_owner(parent: &Attr, kind: FileKind, perm: u32, gid: u32) -> (u32, u32) {
    if parent.perm & SET_GID == 0 {
        return (perm, gid);
    }
    let perm = if kind == FileKind::Directory {
        perm | SET_GID
    } else {
        perm
    };
    (perm, parent.gid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(perm: u32, gid: u32) -> Attr {
        Attr {
            perm,
            gid,
            ..Attr::default()
        }
    }

    #[test]
    fn plain_directory_keeps_the_callers_group() {
        let got = new_inode_owner(&dir(0o755, 50), FileKind::Regular, 0o644, 7);
        assert_eq!(got, (0o644, 7));
    }

    #[test]
    fn setgid_directory_passes_its_group_and_bit_to_subdirectories() {
        let parent = dir(0o2775, 50);
        assert_eq!(
            new_inode_owner(&parent, FileKind::Regular, 0o644, 7),
            (0o644, 50)
        );
        assert_eq!(
            new_inode_owner(&parent, FileKind::Directory, 0o755, 7),
            (0o2755, 50)
        );
    }
}
