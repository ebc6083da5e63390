//! Extended attributes: `setxattr` modes, ctime, the list bound, removal with the inode.

use dfs_proto::FsError;
use dfs_proto::ROOT_INO;

use super::{Fixture, fs_err, ts};
use crate::namespace::xattrs::{MAX_XATTR_LIST_LEN, XattrMode};

#[test]
fn set_get_list_remove_and_the_modes() {
    let fx = Fixture::new();
    let f = fx.file(ROOT_INO, "f");
    let ns = fx.ns();
    assert_eq!(fs_err(ns.get_xattr(f, b"user.a")), FsError::NoData);
    ns.set_xattr(f, b"user.b", b"2", XattrMode::Upsert, ts(20))
        .unwrap();
    ns.set_xattr(f, b"user.a", b"1", XattrMode::Create, ts(21))
        .unwrap();
    assert_eq!(fx.attr(f).ctime, Some(ts(21)));
    assert_eq!(
        fs_err(ns.set_xattr(f, b"user.a", b"x", XattrMode::Create, ts(22))),
        FsError::Exists
    );
    assert_eq!(
        fs_err(ns.set_xattr(f, b"user.c", b"x", XattrMode::Replace, ts(22))),
        FsError::NoData
    );
    ns.set_xattr(f, b"user.a", b"one", XattrMode::Replace, ts(23))
        .unwrap();
    assert_eq!(ns.get_xattr(f, b"user.a").unwrap(), b"one");
    assert_eq!(
        ns.list_xattrs(f).unwrap(),
        vec![b"user.a".to_vec(), b"user.b".to_vec()]
    );
    ns.remove_xattr(f, b"user.a", ts(24)).unwrap();
    assert_eq!(fx.attr(f).ctime, Some(ts(24)));
    assert_eq!(
        fs_err(ns.remove_xattr(f, b"user.a", ts(25))),
        FsError::NoData
    );
    assert_eq!(fs_err(ns.list_xattrs(999)), FsError::NotFound);
}

#[test]
fn the_names_of_one_inode_fit_a_listxattr_buffer() {
    let fx = Fixture::new();
    let f = fx.file(ROOT_INO, "f");
    // 255-byte names take 256 bytes each in a list: 256 of them fill it exactly.
    for i in 0..MAX_XATTR_LIST_LEN / 256 {
        let name = format!("user.{i:0>250}");
        fx.ns()
            .set_xattr(f, name.as_bytes(), b"", XattrMode::Upsert, ts(20))
            .unwrap();
    }
    assert_eq!(
        fs_err(
            fx.ns()
                .set_xattr(f, b"user.more", b"", XattrMode::Upsert, ts(21))
        ),
        FsError::NoSpace
    );
    // Replacing an existing one needs no room.
    let first = format!("user.{:0>250}", 0);
    fx.ns()
        .set_xattr(f, first.as_bytes(), b"v", XattrMode::Replace, ts(22))
        .unwrap();
}

#[test]
fn attributes_go_with_the_inode_and_survive_a_restart() {
    let fx = Fixture::new();
    let a = fx.file(ROOT_INO, "a");
    let b = fx.file(ROOT_INO, "b");
    assert_eq!(
        b,
        a + 1,
        "neighbouring inodes, so a range delete could overreach"
    );
    for ino in [a, b] {
        fx.ns()
            .set_xattr(ino, b"user.x", b"v", XattrMode::Upsert, ts(20))
            .unwrap();
    }
    let fx = fx.reopen();
    assert_eq!(fx.ns().get_xattr(b, b"user.x").unwrap(), b"v");
    fx.ns().unlink(ROOT_INO, b"a", ts(30)).unwrap();
    assert!(
        fx.master
            .namespace()
            .writer
            .store()
            .xattr_names(a)
            .unwrap()
            .is_empty()
    );
    assert_eq!(fx.ns().list_xattrs(b).unwrap(), vec![b"user.x".to_vec()]);
}
