//! Rename: replacement rules, subtree protection, no-ops and `renameat2` flags.

use dfs_proto::pb::FileKind;
use dfs_proto::{FsError, ROOT_INO};

use super::{Fixture, fs_err, ts};
use crate::error::Result;
use crate::namespace::rename::{RENAME_EXCHANGE, RENAME_NOREPLACE};

impl Fixture {
    fn rename(&self, parent: u64, name: &str, new_parent: u64, new_name: &str) -> Result<()> {
        self.rename_flags(parent, name, new_parent, new_name, 0)
    }

    fn rename_flags(
        &self,
        parent: u64,
        name: &str,
        new_parent: u64,
        new_name: &str,
        flags: u32,
    ) -> Result<()> {
        self.ns().rename(
            parent,
            name.as_bytes(),
            new_parent,
            new_name.as_bytes(),
            flags,
            ts(40),
        )
    }
}

#[test]
fn rename_within_and_across_directories() {
    let fx = Fixture::new();
    let a = fx.dir(ROOT_INO, "a");
    let b = fx.dir(ROOT_INO, "b");
    let f = fx.file(a, "f");
    fx.rename(a, "f", a, "g").unwrap();
    assert_eq!(fx.names(a), ["g"]);
    fx.rename(a, "g", b, "h").unwrap();
    assert!(fx.names(a).is_empty());
    assert_eq!(fx.lookup(b, "h").unwrap().ino, f);
    assert_eq!(fx.attr(f).ctime, Some(ts(40)));
    assert_eq!(fx.attr(a).mtime, Some(ts(40)));
    assert_eq!(fx.attr(b).mtime, Some(ts(40)));

    // A directory moving between parents moves one link from one to the other.
    let sub = fx.dir(a, "sub");
    assert_eq!((fx.attr(a).nlink, fx.attr(b).nlink), (3, 2));
    fx.rename(a, "sub", b, "sub").unwrap();
    assert_eq!((fx.attr(a).nlink, fx.attr(b).nlink), (2, 3));
    assert_eq!(fx.attr(ROOT_INO).nlink, 4);
    // Its recorded parent moved too: now `b` cannot move under it, `a` can.
    assert!(matches!(
        fs_err(fx.rename(ROOT_INO, "b", sub, "b")),
        FsError::Invalid(_)
    ));
    fx.rename(ROOT_INO, "a", sub, "a").unwrap();
    assert_eq!(fx.attr(ROOT_INO).nlink, 3);
    assert_eq!(fx.attr(sub).nlink, 3);
}

#[test]
fn replacing_targets() {
    let fx = Fixture::new();
    let f1 = fx.file(ROOT_INO, "f1");
    let f2 = fx.file(ROOT_INO, "f2");
    let d1 = fx.dir(ROOT_INO, "d1");
    let d2 = fx.dir(ROOT_INO, "d2");
    let full = fx.dir(ROOT_INO, "full");
    fx.file(full, "x");
    assert_eq!(fx.ns().inode_count().unwrap(), 7);

    assert_eq!(
        fs_err(fx.rename(ROOT_INO, "d1", ROOT_INO, "f1")),
        FsError::NotDir
    );
    assert_eq!(
        fs_err(fx.rename(ROOT_INO, "f1", ROOT_INO, "d1")),
        FsError::IsDir
    );
    assert_eq!(
        fs_err(fx.rename(ROOT_INO, "d1", ROOT_INO, "full")),
        FsError::NotEmpty
    );

    // File over file: the replaced file loses its only link and is gone.
    fx.rename(ROOT_INO, "f1", ROOT_INO, "f2").unwrap();
    assert_eq!(fx.lookup(ROOT_INO, "f2").unwrap().ino, f1);
    assert_eq!(fs_err(fx.ns().getattr(f2)), FsError::NotFound);

    // Empty directory over directory.
    let root_links = fx.attr(ROOT_INO).nlink;
    fx.rename(ROOT_INO, "d1", ROOT_INO, "d2").unwrap();
    assert_eq!(fx.lookup(ROOT_INO, "d2").unwrap().ino, d1);
    assert_eq!(fs_err(fx.ns().getattr(d2)), FsError::NotFound);
    assert_eq!(fx.attr(ROOT_INO).nlink, root_links - 1);
    assert_eq!(fx.names(ROOT_INO), ["d2", "f2", "full"]);
    assert_eq!(fx.ns().inode_count().unwrap(), 5);
}

#[test]
fn replacing_a_hard_linked_file_keeps_its_other_link() {
    let fx = Fixture::new();
    let f = fx.file(ROOT_INO, "f");
    let g = fx.file(ROOT_INO, "g");
    fx.ns().link(g, ROOT_INO, b"g2", ts(20)).unwrap();
    fx.rename(ROOT_INO, "f", ROOT_INO, "g").unwrap();
    assert_eq!(fx.lookup(ROOT_INO, "g").unwrap().ino, f);
    assert_eq!(fx.attr(g).nlink, 1);
    assert_eq!(fx.lookup(ROOT_INO, "g2").unwrap().ino, g);
}

#[test]
fn directories_cannot_move_into_their_own_subtree() {
    let fx = Fixture::new();
    let a = fx.dir(ROOT_INO, "a");
    let b = fx.dir(a, "b");
    let c = fx.dir(b, "c");
    for (target, name) in [(a, "a2"), (b, "a2"), (c, "a2")] {
        assert!(matches!(
            fs_err(fx.rename(ROOT_INO, "a", target, name)),
            FsError::Invalid(_)
        ));
    }
    assert!(matches!(
        fs_err(fx.rename(a, "b", c, "b")),
        FsError::Invalid(_)
    ));
    // Moving up is fine.
    fx.rename(b, "c", ROOT_INO, "c").unwrap();
    assert_eq!(fx.names(ROOT_INO), ["a", "c"]);
    // A target that is an ancestor of the source is non-empty.
    assert_eq!(fs_err(fx.rename(a, "b", ROOT_INO, "a")), FsError::NotEmpty);
}

#[test]
fn rename_onto_the_same_inode_does_nothing() {
    let fx = Fixture::new();
    let f = fx.file(ROOT_INO, "f");
    fx.ns().link(f, ROOT_INO, b"g", ts(20)).unwrap();
    fx.rename(ROOT_INO, "f", ROOT_INO, "f").unwrap();
    fx.rename(ROOT_INO, "f", ROOT_INO, "g").unwrap();
    assert_eq!(fx.names(ROOT_INO), ["f", "g"]);
    assert_eq!(fx.attr(f).nlink, 2);
    let d = fx.dir(ROOT_INO, "d");
    fx.rename(ROOT_INO, "d", ROOT_INO, "d").unwrap();
    assert_eq!(fx.attr(d).nlink, 2);
}

#[test]
fn rename_errors() {
    let fx = Fixture::new();
    let f = fx.file(ROOT_INO, "f");
    assert_eq!(
        fs_err(fx.rename(ROOT_INO, "nope", ROOT_INO, "x")),
        FsError::NotFound
    );
    assert_eq!(
        fs_err(fx.rename(ROOT_INO, "f", 999, "x")),
        FsError::NotFound
    );
    assert_eq!(fs_err(fx.rename(ROOT_INO, "f", f, "x")), FsError::NotDir);
    assert_eq!(fs_err(fx.rename(f, "x", ROOT_INO, "y")), FsError::NotDir);
    assert_eq!(
        fs_err(fx.rename(ROOT_INO, "f", ROOT_INO, &"n".repeat(256))),
        FsError::NameTooLong
    );
    assert!(matches!(
        fs_err(fx.rename(ROOT_INO, "f", ROOT_INO, "a/b")),
        FsError::Invalid(_)
    ));
    for flags in [4, RENAME_NOREPLACE | RENAME_EXCHANGE] {
        assert!(matches!(
            fs_err(fx.rename_flags(ROOT_INO, "f", ROOT_INO, "g", flags)),
            FsError::Invalid(_)
        ));
    }
}

#[test]
fn noreplace_refuses_an_existing_target() {
    let fx = Fixture::new();
    fx.file(ROOT_INO, "a");
    fx.file(ROOT_INO, "b");
    let err = fs_err(fx.rename_flags(ROOT_INO, "a", ROOT_INO, "b", RENAME_NOREPLACE));
    assert_eq!(err, FsError::Exists);
    fx.rename_flags(ROOT_INO, "a", ROOT_INO, "c", RENAME_NOREPLACE)
        .unwrap();
    assert_eq!(fx.names(ROOT_INO), ["b", "c"]);
}

#[test]
fn exchange_swaps_entries() {
    let fx = Fixture::new();
    let a = fx.dir(ROOT_INO, "a");
    let b = fx.dir(ROOT_INO, "b");
    let file = fx.file(a, "file");
    let dir = fx.dir(b, "dir");
    fx.file(dir, "inside");
    assert_eq!((fx.attr(a).nlink, fx.attr(b).nlink), (2, 3));

    fx.rename_flags(a, "file", b, "dir", RENAME_EXCHANGE)
        .unwrap();
    assert_eq!(fx.lookup(a, "file").unwrap().ino, dir);
    assert_eq!(fx.lookup(b, "dir").unwrap().ino, file);
    assert_eq!((fx.attr(a).nlink, fx.attr(b).nlink), (3, 2));
    assert_eq!(fx.lookup(a, "file").unwrap().kind(), FileKind::Directory);
    // The swapped directory's parent is now `a`: `a` cannot be moved into it.
    assert!(matches!(
        fs_err(fx.rename(ROOT_INO, "a", dir, "a")),
        FsError::Invalid(_)
    ));

    let err = fs_err(fx.rename_flags(a, "file", b, "missing", RENAME_EXCHANGE));
    assert_eq!(err, FsError::NotFound);
    // Exchanging a directory with an entry inside it would cut a loop out of the tree.
    let err = fs_err(fx.rename_flags(ROOT_INO, "a", dir, "inside", RENAME_EXCHANGE));
    assert!(matches!(err, FsError::Invalid(_)));
    // Within one directory.
    fx.rename_flags(ROOT_INO, "a", ROOT_INO, "b", RENAME_EXCHANGE)
        .unwrap();
    assert_eq!(fx.lookup(ROOT_INO, "a").unwrap().ino, b);
    assert_eq!(fx.attr(ROOT_INO).nlink, 4);
}
