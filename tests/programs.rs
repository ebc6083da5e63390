//! Real programs on a mount: `git`, `tar`, `rsync` and SQLite, which never heard of dfs and rely
//! on what a local POSIX filesystem gives them (rename over files, fsync of directories, locks,
//! permissions and symlinks kept). Each is checked by its own consistency tool (`git fsck`,
//! `diff -r`, `rsync --checksum`, `PRAGMA integrity_check`), not just by a zero exit status.

use std::fs;
use std::path::Path;

use std::time::Duration;

use dfs_tests::{Cluster, ClusterOptions, pseudo_random_bytes, sh, sh_output, wait_until};

/// Writes a tree with assorted modes, an empty directory, a multi-chunk file and symlinks
/// (relative, absolute, dangling).
fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::create_dir_all(root.join("etc/empty")).unwrap();
    fs::write(root.join("bin/run.sh"), b"#!/bin/sh\necho run\n").unwrap();
    fs::write(root.join("etc/secret"), b"hush\n").unwrap();
    fs::write(
        root.join("etc/blob"),
        pseudo_random_bytes(11, (2 << 20) + 4321),
    )
    .unwrap();
    fs::write(root.join("notes.txt"), b"notes\n").unwrap();
    std::os::unix::fs::symlink("../notes.txt", root.join("bin/notes")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", root.join("abs-link")).unwrap();
    std::os::unix::fs::symlink("nowhere", root.join("dangling")).unwrap();
    sh(
        root,
        "chmod 755 bin/run.sh && chmod 600 etc/secret && chmod 444 notes.txt && \
         chmod 700 etc/empty && chmod 750 bin",
    );
}

/// Every entry under `root` with its octal mode, type, mtime (whole seconds: what tar keeps)
/// and, for files and symlinks, size, sorted: what a copy must keep. Directory sizes are left
/// out (dfs reports 0, ext4 a block).
fn listing(root: &Path) -> String {
    sh(
        root,
        "find . -mindepth 1 \\( -type d -printf '%p %m %y %Ts\\n' \\) \
         -o -printf '%p %m %y %Ts %s\\n' | sort",
    )
}

#[test]
fn git_init_commit_log_and_fsck() {
    let cluster = Cluster::start_default();
    let mount = cluster.mount();
    let repo = mount.join("repo");
    fs::create_dir(&repo).unwrap();
    let git = "git -c user.name=Tester -c user.email=t@example.com -c init.defaultBranch=main";
    sh(&repo, &format!("{git} init -q ."));
    fs::write(repo.join("hello.txt"), b"hello\n").unwrap();
    fs::create_dir(repo.join("src")).unwrap();
    fs::write(repo.join("src/lib.rs"), b"pub fn f() {}\n").unwrap();
    sh(
        &repo,
        &format!("{git} add -A && {git} commit -q -m 'first commit'"),
    );
    fs::write(repo.join("hello.txt"), b"hello again\n").unwrap();
    sh(&repo, &format!("{git} commit -q -am 'second commit'"));
    sh(
        &repo,
        &format!("{git} mv hello.txt greeting.txt && {git} commit -q -m 'rename'"),
    );

    let log = sh(&repo, &format!("{git} log --format=%s"));
    assert_eq!(log, "rename\nsecond commit\nfirst commit\n");
    let status = sh(&repo, &format!("{git} status --porcelain"));
    assert_eq!(status, "", "clean work tree");
    sh(&repo, &format!("{git} fsck --full --strict"));
    // Repack (rename of packs over loose objects, deletion of open files) and check again.
    sh(&repo, &format!("{git} gc -q && {git} fsck --full --strict"));
    assert_eq!(
        sh(&repo, &format!("{git} show HEAD~1:hello.txt")),
        "hello again\n"
    );
    // A clone from dfs to dfs.
    sh(mount.path(), &format!("{git} clone -q repo copy"));
    assert_eq!(
        fs::read(mount.join("copy/greeting.txt")).unwrap(),
        b"hello again\n"
    );
}

#[test]
fn tar_round_trip_keeps_permissions_and_symlinks() {
    let cluster = Cluster::start(ClusterOptions {
        chunk_size: 1 << 20,
        ..Default::default()
    });
    let mount = cluster.mount();
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("tree");
    make_tree(&src);
    let lp = local.path().display();

    // Local archive extracted onto dfs.
    sh(local.path(), "tar -cpf tree.tar tree");
    sh(
        mount.path(),
        &format!("mkdir x && tar -xpf {lp}/tree.tar -C x"),
    );
    assert_eq!(listing(&mount.join("x/tree")), listing(&src));
    sh(
        mount.path(),
        &format!("diff -r --no-dereference {} x/tree", src.display()),
    );

    // Archive made on dfs, extracted locally.
    sh(mount.path(), &format!("tar -cpf {lp}/again.tar -C x tree"));
    sh(local.path(), "mkdir again && tar -xpf again.tar -C again");
    assert_eq!(listing(&local.path().join("again/tree")), listing(&src));
    sh(local.path(), "diff -r --no-dereference tree again/tree");

    // Archive stored on dfs itself.
    sh(
        mount.path(),
        "tar -cpf x.tar -C x tree && mkdir y && tar -xpf x.tar -C y",
    );
    assert_eq!(listing(&mount.join("y/tree")), listing(&src));
}

#[test]
fn rsync_checksum_finds_nothing_to_do_after_a_copy() {
    let cluster = Cluster::start(ClusterOptions {
        chunk_size: 1 << 20,
        ..Default::default()
    });
    let mount = cluster.mount();
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("tree");
    make_tree(&src);

    sh(
        local.path(),
        &format!("rsync -a tree/ {}/tree/", mount.path().display()),
    );
    assert_eq!(listing(&mount.join("tree")), listing(&src));
    let again = sh(
        local.path(),
        &format!(
            "rsync -a --checksum --itemize-changes tree/ {}/tree/",
            mount.path().display()
        ),
    );
    assert_eq!(again, "", "a second rsync found differences");
    // Change one file; rsync (temp file + rename over it) must update exactly that file.
    fs::write(src.join("etc/secret"), b"changed\n").unwrap();
    let update = sh(
        local.path(),
        &format!(
            "rsync -a --checksum --itemize-changes tree/ {}/tree/",
            mount.path().display()
        ),
    );
    assert!(update.contains("etc/secret"), "{update}");
    assert_eq!(update.lines().count(), 1, "{update}");
    sh(
        local.path(),
        &format!(
            "diff -r --no-dereference tree {}/tree",
            mount.path().display()
        ),
    );
}

/// Runs `sql` through the sqlite3 CLI on `db`, failing the test on any error.
fn sqlite(dir: &Path, db: &str, sql: &str) -> String {
    let out = sh_output(dir, &format!("sqlite3 -bail {db} <<'EOF'\n{sql}\nEOF"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty(),
        "sqlite3 failed: {stderr}"
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Creates a table, inserts 1000 rows in one transaction plus a rolled-back one, reads back.
fn exercise_sqlite(dir: &Path, db: &str, journal: &str) {
    let mode = sqlite(dir, db, &format!("PRAGMA journal_mode={journal};"));
    assert_eq!(mode.trim(), journal.to_lowercase());
    sqlite(
        dir,
        db,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
         BEGIN;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
           INSERT INTO t SELECT i, printf('row %d %s', i, hex(randomblob(40))) FROM n;
         COMMIT;
         BEGIN; DELETE FROM t; ROLLBACK;
         CREATE INDEX t_body ON t(body);",
    );
    let got = sqlite(
        dir,
        db,
        "SELECT count(*), sum(id), min(body LIKE 'row %') FROM t;
         SELECT body FROM t WHERE id = 500;
         PRAGMA integrity_check;",
    );
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines[0], "1000|500500|1", "{got}");
    assert!(lines[1].starts_with("row 500 "), "{got}");
    assert_eq!(lines[2], "ok", "{got}");
}

#[test]
fn sqlite_with_a_rollback_journal_on_dfs() {
    let cluster = Cluster::start_default();
    let mount = cluster.mount();
    exercise_sqlite(mount.path(), "rollback.db", "DELETE");
    // The journal was created, used and deleted on dfs.
    assert!(!mount.join("rollback.db-journal").exists());
    // Read back through a second mount too.
    let other = cluster.mount();
    let count = sqlite(other.path(), "rollback.db", "SELECT count(*) FROM t;");
    assert_eq!(count.trim(), "1000");
}

#[test]
fn sqlite_with_a_write_ahead_log_on_dfs() {
    let cluster = Cluster::start_default();
    let mount = cluster.mount();
    exercise_sqlite(mount.path(), "wal.db", "WAL");
    let count = sqlite(
        mount.path(),
        "wal.db",
        "PRAGMA wal_checkpoint(TRUNCATE); SELECT count(*) FROM t;",
    );
    assert!(count.trim().ends_with("1000"), "{count}");
}

// What those programs rely on, one call at a time.

#[test]
fn an_unlinked_open_file_stays_readable_and_writable() {
    use std::io::{Read, Seek, SeekFrom, Write};
    let cluster = Cluster::start_default();
    let mount = cluster.mount();
    let path = mount.join("tmp");
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    file.write_all(b"before ").unwrap();
    fs::remove_file(&path).unwrap();
    assert!(!path.exists());
    // fstat of the open file: no links left (the hidden name does not count).
    use std::os::unix::fs::MetadataExt;
    assert_eq!(file.metadata().unwrap().nlink(), 0);
    file.write_all(b"after").unwrap();
    file.sync_all().unwrap();
    file.seek(SeekFrom::Start(0)).unwrap();
    let mut back = String::new();
    file.read_to_string(&mut back).unwrap();
    assert_eq!(back, "before after");
    // Kept under a hidden name until the last close; FUSE releases after close returns.
    assert_eq!(fs::read_dir(mount.path()).unwrap().count(), 1);
    drop(file);
    wait_until(Duration::from_secs(30), "the hidden file removed", || {
        fs::read_dir(mount.path()).unwrap().count() == 0
    });
}

#[test]
fn directories_fsync_files_fallocate_and_symlinks_take_times() {
    use std::os::unix::io::AsRawFd;
    let cluster = Cluster::start_default();
    let mount = cluster.mount();
    let m = mount.path();
    // fsync of a directory (what git, SQLite and rsync do after a rename).
    fs::create_dir(m.join("d")).unwrap();
    fs::File::open(m.join("d")).unwrap().sync_all().unwrap();

    // posix_fallocate reserves the length and reads back zeros.
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(m.join("reserved"))
        .unwrap();
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, 3 << 20) };
    assert_eq!(rc, 0, "posix_fallocate");
    drop(file);
    let bytes = fs::read(m.join("reserved")).unwrap();
    assert_eq!(bytes.len(), 3 << 20);
    assert!(bytes.iter().all(|&b| b == 0));

    // Times set through a file still open with buffered writes (GNU tar does this before
    // closing what it extracted) are not overwritten when the writes are committed.
    let mut file = fs::File::create(m.join("extracted")).unwrap();
    std::io::Write::write_all(&mut file, b"contents").unwrap();
    let old = libc::timespec {
        tv_sec: 1_000_000_000,
        tv_nsec: 5,
    };
    let rc = unsafe { libc::futimens(file.as_raw_fd(), [old, old].as_ptr()) };
    assert_eq!(rc, 0, "futimens");
    drop(file);
    // Seen from another mount: this one's kernel keeps the times it set in its cache.
    let other = cluster.mount();
    assert_eq!(
        sh(other.path(), "stat -c '%y %s' extracted"),
        "2001-09-09 01:46:40.000000005 +0000 8\n"
    );

    // utimensat on a symlink itself (touch -h, as tar and rsync do), not its target.
    fs::write(m.join("target"), b"t").unwrap();
    std::os::unix::fs::symlink("target", m.join("link")).unwrap();
    sh(
        m,
        "touch -h -d @1000000000 link && touch -d @1200000000 target",
    );
    assert_eq!(
        sh(m, "stat -c '%n %Y' link target"),
        "link 1000000000\ntarget 1200000000\n"
    );
}
