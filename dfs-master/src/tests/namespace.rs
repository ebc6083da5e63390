//! Namespace operations and their errno cases.

use dfs_proto::pb::{self, FileKind};
use dfs_proto::{FsError, ROOT_INO};

use super::{Fixture, fs_err, ts};

#[test]
fn make_node_creates_every_kind() {
    let fx = Fixture::new();
    for (name, kind) in [
        ("file", FileKind::Regular),
        ("dir", FileKind::Directory),
        ("link", FileKind::Symlink),
        ("fifo", FileKind::Fifo),
        ("chr", FileKind::CharDevice),
        ("blk", FileKind::BlockDevice),
        ("sock", FileKind::Socket),
    ] {
        let attr = fx.make(ROOT_INO, name, kind);
        assert_eq!(attr.kind(), kind);
        assert_eq!((attr.perm, attr.uid, attr.gid), (0o644, 1000, 1000));
        assert_eq!(attr.mtime, Some(ts(10)));
        assert_eq!(fx.lookup(ROOT_INO, name).unwrap(), attr);
    }
    assert_eq!(
        fx.names(ROOT_INO),
        ["blk", "chr", "dir", "fifo", "file", "link", "sock"]
    );
    assert_eq!(fx.ns().inode_count().unwrap(), 8);

    let link = fx.lookup(ROOT_INO, "link").unwrap();
    assert_eq!(fx.ns().readlink(link.ino).unwrap(), b"target");
    assert_eq!(link.size, 6);
    let file = fx.lookup(ROOT_INO, "file").unwrap();
    assert!(matches!(
        fs_err(fx.ns().readlink(file.ino)),
        FsError::Invalid(_)
    ));
}

#[test]
fn devices_keep_rdev_and_perm_is_masked() {
    let fx = Fixture::new();
    let req = pb::MakeNodeRequest {
        parent: ROOT_INO,
        name: b"null".to_vec(),
        kind: FileKind::CharDevice as i32,
        perm: 0o100_666,
        rdev: 0x0103,
        exclusive: true,
        ..Default::default()
    };
    let attr = fx.ns().make_node(&req, ts(5)).unwrap();
    assert_eq!((attr.rdev, attr.perm), (0x0103, 0o666));
}

#[test]
fn directories_count_links_and_parents_get_new_times() {
    let fx = Fixture::new();
    let a = fx.dir(ROOT_INO, "a");
    assert_eq!(fx.attr(a).nlink, 2);
    assert_eq!(fx.attr(ROOT_INO).nlink, 3);
    fx.dir(a, "sub1");
    fx.dir(a, "sub2");
    fx.file(a, "file");
    assert_eq!(fx.attr(a).nlink, 4);

    fx.try_make(a, "late", FileKind::Regular, ts(50)).unwrap();
    let dir = fx.attr(a);
    assert_eq!((dir.mtime, dir.ctime), (Some(ts(50)), Some(ts(50))));

    fx.ns().rmdir(a, b"sub1", ts(60)).unwrap();
    let dir = fx.attr(a);
    assert_eq!(dir.nlink, 3);
    assert_eq!(dir.mtime, Some(ts(60)));
    fx.ns().unlink(a, b"file", ts(70)).unwrap();
    assert_eq!(fx.attr(a).mtime, Some(ts(70)));
}

#[test]
fn create_of_an_existing_name() {
    let fx = Fixture::new();
    let file = fx.make(ROOT_INO, "f", FileKind::Regular);
    fx.dir(ROOT_INO, "d");
    assert_eq!(
        fs_err(fx.try_make(ROOT_INO, "f", FileKind::Regular, ts(11))),
        FsError::Exists
    );
    assert_eq!(
        fs_err(fx.try_make(ROOT_INO, "f", FileKind::Directory, ts(11))),
        FsError::Exists
    );
    assert_eq!(
        fs_err(fx.try_make(ROOT_INO, "d", FileKind::Symlink, ts(11))),
        FsError::Exists
    );

    // Without O_EXCL, opening with O_CREAT returns the existing file.
    let mut req = pb::MakeNodeRequest {
        parent: ROOT_INO,
        name: b"f".to_vec(),
        kind: FileKind::Regular as i32,
        perm: 0o600,
        exclusive: false,
        ..Default::default()
    };
    assert_eq!(fx.ns().make_node(&req, ts(12)).unwrap(), file);
    req.name = b"d".to_vec();
    assert_eq!(fs_err(fx.ns().make_node(&req, ts(12))), FsError::IsDir);
    assert_eq!(fx.ns().inode_count().unwrap(), 3);
}

#[test]
fn names_are_validated() {
    let fx = Fixture::new();
    for bad in ["", "a/b", "nul\0byte"] {
        let err = fs_err(fx.try_make(ROOT_INO, bad, FileKind::Regular, ts(1)));
        assert!(matches!(err, FsError::Invalid(_)), "{bad:?}: {err:?}");
        assert!(matches!(
            fs_err(fx.lookup(ROOT_INO, bad)),
            FsError::Invalid(_)
        ));
    }
    let longest = "x".repeat(255);
    fx.file(ROOT_INO, &longest);
    assert!(fx.lookup(ROOT_INO, &longest).is_ok());
    let too_long = "x".repeat(256);
    assert_eq!(
        fs_err(fx.try_make(ROOT_INO, &too_long, FileKind::Regular, ts(1))),
        FsError::NameTooLong
    );
    assert_eq!(fs_err(fx.lookup(ROOT_INO, &too_long)), FsError::NameTooLong);
    let unknown = pb::MakeNodeRequest {
        parent: ROOT_INO,
        name: b"k".to_vec(),
        kind: 99,
        ..Default::default()
    };
    assert!(matches!(
        fs_err(fx.ns().make_node(&unknown, ts(1))),
        FsError::Invalid(_)
    ));
}

#[test]
fn missing_or_non_directory_parents() {
    let fx = Fixture::new();
    let file = fx.file(ROOT_INO, "f");
    assert_eq!(
        fs_err(fx.try_make(999, "x", FileKind::Regular, ts(1))),
        FsError::NotFound
    );
    assert_eq!(
        fs_err(fx.try_make(file, "x", FileKind::Regular, ts(1))),
        FsError::NotDir
    );
    assert_eq!(fs_err(fx.lookup(ROOT_INO, "nope")), FsError::NotFound);
    assert_eq!(fs_err(fx.lookup(999, "x")), FsError::NotFound);
    assert_eq!(fs_err(fx.lookup(file, "x")), FsError::NotDir);
    assert_eq!(fs_err(fx.ns().getattr(999)), FsError::NotFound);
    assert_eq!(fs_err(fx.ns().readdir(file, b"", 10)), FsError::NotDir);
    assert_eq!(fs_err(fx.ns().readdir(999, b"", 10)), FsError::NotFound);
    assert_eq!(fs_err(fx.ns().unlink(file, b"x", ts(1))), FsError::NotDir);
    assert_eq!(
        fs_err(fx.ns().unlink(ROOT_INO, b"nope", ts(1))),
        FsError::NotFound
    );
    assert_eq!(
        fs_err(fx.ns().rmdir(ROOT_INO, b"nope", ts(1))),
        FsError::NotFound
    );
}

#[test]
fn setattr_changes_what_it_is_given() {
    let fx = Fixture::new();
    let ino = fx.file(ROOT_INO, "f");
    let req = pb::SetAttrRequest {
        ino,
        perm: Some(0o4755),
        uid: Some(7),
        atime: Some(ts(100)),
        ..Default::default()
    };
    let attr = fx.ns().setattr(&req, ts(200)).unwrap();
    assert_eq!((attr.perm, attr.uid, attr.gid), (0o4755, 7, 1000));
    assert_eq!(
        (attr.atime, attr.mtime, attr.ctime),
        (Some(ts(100)), Some(ts(10)), Some(ts(200)))
    );
    assert_eq!(fx.attr(ino), attr);

    let grow = pb::SetAttrRequest {
        ino,
        size: Some(5000),
        ..Default::default()
    };
    let attr = fx.ns().setattr(&grow, ts(300)).unwrap();
    assert_eq!((attr.size, attr.mtime), (5000, Some(ts(300))));

    let dir = fx.dir(ROOT_INO, "d");
    let truncate_dir = pb::SetAttrRequest {
        ino: dir,
        size: Some(0),
        ..Default::default()
    };
    assert_eq!(
        fs_err(fx.ns().setattr(&truncate_dir, ts(1))),
        FsError::IsDir
    );
    let missing = pb::SetAttrRequest {
        ino: 999,
        ..Default::default()
    };
    assert_eq!(fs_err(fx.ns().setattr(&missing, ts(1))), FsError::NotFound);
}

#[test]
fn marking_an_access_sets_atime_only() {
    let fx = Fixture::new();
    let ino = fx.file(ROOT_INO, "f");
    let before = fx.attr(ino);
    let mark = pb::SetAttrRequest {
        ino,
        mark_access: true,
        // Ignored: a marked access changes nothing else.
        perm: Some(0o777),
        ..Default::default()
    };
    let attr = fx.ns().setattr(&mark, ts(500)).unwrap();
    assert_eq!(attr.atime, Some(ts(500)));
    assert_eq!(
        (attr.perm, attr.mtime, attr.ctime),
        (before.perm, before.mtime, before.ctime)
    );
    assert_eq!(fx.attr(ino), attr);
}

#[test]
fn setgid_directories_pass_their_group_on() {
    let fx = Fixture::new();
    let d = fx.dir(ROOT_INO, "shared");
    let req = pb::SetAttrRequest {
        ino: d,
        perm: Some(0o2775),
        gid: Some(50),
        ..Default::default()
    };
    fx.ns().setattr(&req, ts(20)).unwrap();
    let file = fx.attr(fx.file(d, "f"));
    let sub = fx.attr(fx.dir(d, "sub"));
    assert_eq!((file.gid, file.perm & 0o2000), (50, 0));
    assert_eq!((sub.gid, sub.perm & 0o2000), (50, 0o2000));
}

#[test]
fn unlink_and_rmdir_errors() {
    let fx = Fixture::new();
    let d = fx.dir(ROOT_INO, "d");
    fx.file(d, "inner");
    fx.file(ROOT_INO, "f");
    assert_eq!(
        fs_err(fx.ns().unlink(ROOT_INO, b"d", ts(1))),
        FsError::IsDir
    );
    assert_eq!(
        fs_err(fx.ns().rmdir(ROOT_INO, b"f", ts(1))),
        FsError::NotDir
    );
    assert_eq!(
        fs_err(fx.ns().rmdir(ROOT_INO, b"d", ts(1))),
        FsError::NotEmpty
    );

    fx.ns().unlink(d, b"inner", ts(2)).unwrap();
    fx.ns().rmdir(ROOT_INO, b"d", ts(3)).unwrap();
    fx.ns().unlink(ROOT_INO, b"f", ts(4)).unwrap();
    assert!(fx.names(ROOT_INO).is_empty());
    assert_eq!(fs_err(fx.ns().getattr(d)), FsError::NotFound);
    assert_eq!(fx.attr(ROOT_INO).nlink, 2);
    assert_eq!(fx.ns().inode_count().unwrap(), 1);
}

#[test]
fn hard_links_share_an_inode() {
    let fx = Fixture::new();
    let ino = fx.file(ROOT_INO, "a");
    let d = fx.dir(ROOT_INO, "d");
    let attr = fx.ns().link(ino, d, b"b", ts(20)).unwrap();
    assert_eq!((attr.nlink, attr.ctime), (2, Some(ts(20))));
    assert_eq!(fx.lookup(d, "b").unwrap().ino, ino);
    assert_eq!(fx.attr(d).mtime, Some(ts(20)));

    assert_eq!(fs_err(fx.ns().link(ino, d, b"b", ts(21))), FsError::Exists);
    assert_eq!(
        fs_err(fx.ns().link(d, ROOT_INO, b"dirlink", ts(21))),
        FsError::NotPermitted
    );
    assert_eq!(
        fs_err(fx.ns().link(999, ROOT_INO, b"x", ts(21))),
        FsError::NotFound
    );
    assert_eq!(
        fs_err(fx.ns().link(ino, 999, b"x", ts(21))),
        FsError::NotFound
    );

    fx.ns().unlink(ROOT_INO, b"a", ts(30)).unwrap();
    let attr = fx.attr(ino);
    assert_eq!((attr.nlink, attr.ctime), (1, Some(ts(30))));
    fx.ns().unlink(d, b"b", ts(31)).unwrap();
    assert_eq!(fs_err(fx.ns().getattr(ino)), FsError::NotFound);
}

#[test]
fn readdir_pages_through_a_large_directory() {
    let fx = Fixture::new();
    let d = fx.dir(ROOT_INO, "big");
    let expected: Vec<String> = (0..1000).map(|i| format!("entry-{i:04}")).collect();
    // Create in a scrambled order: the listing is by name, not by creation.
    for i in (0..1000).map(|i| (i * 7919) % 1000) {
        fx.file(d, &expected[i]);
    }
    let mut listed = Vec::new();
    let mut after = Vec::new();
    let mut pages = 0;
    loop {
        let page = fx.ns().readdir(d, &after, 100).unwrap();
        pages += 1;
        assert!(page.entries.len() <= 100);
        for entry in &page.entries {
            let attr = entry.attr.expect("attr");
            assert_eq!(attr.kind(), FileKind::Regular);
            listed.push(String::from_utf8(entry.name.clone()).unwrap());
        }
        after = page
            .entries
            .last()
            .map(|e| e.name.clone())
            .unwrap_or_default();
        if !page.more {
            break;
        }
    }
    assert_eq!(pages, 10);
    assert_eq!(listed, expected);
    // A page can start after a name that does not exist.
    let page = fx.ns().readdir(d, b"entry-0499x", 2).unwrap();
    let names: Vec<_> = page.entries.iter().map(|e| e.name.as_slice()).collect();
    assert_eq!(names, [b"entry-0500".as_slice(), b"entry-0501"]);
    assert!(page.more);
    // Entries of neighbouring directories never leak into a listing.
    assert_eq!(fx.names(ROOT_INO), ["big"]);
}

#[test]
fn statfs_counts_inodes() {
    let fx = Fixture::new();
    fx.file(ROOT_INO, "a");
    fx.dir(ROOT_INO, "b");
    let stat = fx.master.statfs(std::time::Instant::now()).unwrap();
    assert_eq!(
        (stat.files, stat.max_name_len, stat.block_size),
        (3, 255, super::BLOCK)
    );
    assert_eq!((stat.live_servers, stat.total_bytes), (0, 0));
}

#[test]
fn a_call_retried_with_its_request_id_is_answered_without_applying_it_again() {
    let fx = Fixture::new();
    let writer = fx.master.writer();
    let mkdir = pb::MakeNodeRequest {
        parent: ROOT_INO,
        name: b"d".to_vec(),
        kind: FileKind::Directory as i32,
        perm: 0o755,
        exclusive: true,
        ..Default::default()
    };
    let once = |id: &[u8], at_ms| {
        let replay = || fx.ns().lookup(ROOT_INO, b"d");
        let codec = (
            |attr: &pb::Attr| attr.ino.to_be_bytes().to_vec(),
            |bytes: &[u8]| {
                fx.ns()
                    .getattr(u64::from_be_bytes(bytes.try_into().unwrap()))
            },
        );
        writer.once(
            id,
            at_ms,
            || fx.ns().make_node(&mkdir, ts(1)),
            codec,
            replay,
        )
    };
    let first = once(b"client-7", 1_000).unwrap();
    // The retry is answered from the state: the same directory, no EEXIST, no second create.
    assert_eq!(once(b"client-7", 1_500).unwrap(), first);
    assert_eq!(fx.ns().inode_count().unwrap(), 2);
    // Another id is another call.
    assert_eq!(fs_err(once(b"client-8", 1_500)), FsError::Exists);
    // A call that failed recorded nothing: its retry runs again.
    assert_eq!(fs_err(once(b"client-8", 1_600)), FsError::Exists);

    // Old ids are forgotten, newer ones kept.
    assert_eq!(writer.forget_replies_before(1_001).unwrap(), 1);
    assert_eq!(fs_err(once(b"client-7", 2_000)), FsError::Exists);
}
