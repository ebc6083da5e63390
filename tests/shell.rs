//! Ordinary shell use of a mount: the tools a user reaches for first, checked against a local
//! copy of the same tree with `diff -r` and exact listings.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use dfs_tests::{Cluster, ClusterOptions, pseudo_random_bytes, sh};

/// Writes a small source tree: nested directories, empty/small/multi-chunk files, a symlink.
fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("src/deep/er/still")).unwrap();
    fs::create_dir_all(root.join("docs")).unwrap();
    fs::write(root.join("README"), b"hello dfs\n").unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    fs::write(
        root.join("src/main.rs"),
        b"fn main() { println!(\"hi\"); }\n",
    )
    .unwrap();
    fs::write(
        root.join("src/deep/er/still/blob.bin"),
        pseudo_random_bytes(7, 3 << 20),
    )
    .unwrap();
    for i in 0..50 {
        fs::write(
            root.join(format!("docs/page-{i:03}.txt")),
            format!("page {i}\n").repeat(i + 1),
        )
        .unwrap();
    }
    std::os::unix::fs::symlink("../README", root.join("docs/readme-link")).unwrap();
}

#[test]
fn shell_tools_round_trip_a_tree() {
    // 1 MiB chunks so the 3 MiB blob spans several chunks.
    let cluster = Cluster::start(ClusterOptions {
        chunk_size: 1 << 20,
        ..Default::default()
    });
    let mount = cluster.mount();
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("tree");
    make_tree(&src);
    let m = mount.path();

    sh(m, "mkdir -p a/b/c && test -d a/b/c");
    sh(m, &format!("cp -a {} a/b/c/tree", src.display()));
    sh(m, &format!("diff -r {} a/b/c/tree", src.display()));

    // ls -l shows every entry with its size and link target.
    let listing = sh(&m.join("a/b/c/tree"), "ls -l docs | wc -l");
    assert_eq!(listing.trim(), "52", "50 pages + a link + the total line");
    let long = sh(&m.join("a/b/c/tree"), "ls -l docs/readme-link README");
    assert!(long.contains("docs/readme-link -> ../README"), "{long}");
    assert!(long.contains(" 10 "), "README is 10 bytes: {long}");

    // mv within and across directories.
    sh(
        m,
        "mv a/b/c/tree/README a/moved && mv a/b/c/tree/docs a/docs",
    );
    assert_eq!(fs::read(m.join("a/moved")).unwrap(), b"hello dfs\n");
    assert!(!m.join("a/b/c/tree/docs").exists());
    assert_eq!(fs::read_dir(m.join("a/docs")).unwrap().count(), 51);

    // Hard link and symlink.
    sh(m, "ln a/moved a/hard && ln -s moved a/soft");
    assert_eq!(fs::metadata(m.join("a/moved")).unwrap().nlink(), 2);
    assert_eq!(fs::read(m.join("a/soft")).unwrap(), b"hello dfs\n");
    assert_eq!(fs::read_link(m.join("a/soft")).unwrap(), Path::new("moved"));
    sh(m, "rm a/moved");
    assert_eq!(fs::metadata(m.join("a/hard")).unwrap().nlink(), 1);
    assert_eq!(fs::read(m.join("a/hard")).unwrap(), b"hello dfs\n");

    // tar: extract a local archive onto dfs, re-create an archive from dfs, compare.
    sh(local.path(), "tar -cf tree.tar tree");
    sh(
        m,
        &format!(
            "mkdir x && tar -xf {}/tree.tar -C x",
            local.path().display()
        ),
    );
    sh(m, &format!("diff -r {} x/tree", src.display()));
    sh(
        m,
        &format!("tar -cf {}/again.tar -C x tree", local.path().display()),
    );
    sh(
        local.path(),
        "mkdir again && tar -xf again.tar -C again && diff -r tree again/tree",
    );

    // rm -rf leaves nothing behind.
    sh(m, "rm -rf a x");
    assert_eq!(fs::read_dir(m).unwrap().count(), 0);
}

#[test]
fn listing_a_large_directory_pages_through_every_entry() {
    let cluster = Cluster::start_default();
    let mount = cluster.mount();
    let dir = mount.join("many");
    fs::create_dir(&dir).unwrap();
    for i in 0..3000 {
        fs::File::create(dir.join(format!("f{i:05}"))).unwrap();
    }
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let expected: Vec<String> = (0..3000).map(|i| format!("f{i:05}")).collect();
    assert_eq!(names, expected);
    assert_eq!(sh(&dir, "ls | wc -l").trim(), "3000");
}
