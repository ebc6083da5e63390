//! Lookups of names that are not there, in directories this mount created: answered by the
//! mount without the master while it knows every name, and never hiding another mount's
//! names for longer than the entry TTL, nor past this mount's next change in the directory.

use std::fs::{self, OpenOptions};
use std::io::ErrorKind;
use std::time::Duration;

use dfs_tests::{Cluster, errno, within};

/// Thaws the master when the test ends, also when it fails while the master is frozen.
struct Frozen<'a>(&'a Cluster);

impl<'a> Frozen<'a> {
    fn master(cluster: &'a Cluster) -> Frozen<'a> {
        cluster.pause_master();
        Frozen(cluster)
    }
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        self.0.resume_master();
    }
}

#[test]
fn an_absent_name_in_a_directory_this_mount_created_needs_no_master() {
    let cluster = Cluster::start_default();
    // Long TTLs, so the kernel walks to the directory from its own caches however slow the
    // machine: only the lookup of the last name reaches the mount.
    let mount = cluster.mount_with(&["--entry-ttl-ms", "60000", "--attr-ttl-ms", "60000"]);
    let dir = mount.join("made-here");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("present"), b"bytes").unwrap();
    fs::create_dir(dir.join("sub")).unwrap();
    fs::remove_file(dir.join("present")).unwrap();
    let (missing, removed) = (dir.join("missing"), dir.join("present"));

    let frozen = Frozen::master(&cluster);
    // With the master frozen, only an answer from the mount itself comes back at once.
    let errors = within(Duration::from_secs(5), move || {
        [missing, removed].map(|path| fs::metadata(path).unwrap_err().kind())
    });
    assert_eq!(errors, [ErrorKind::NotFound, ErrorKind::NotFound]);
    drop(frozen);

    // Names that exist are still looked up at the master, and found.
    assert!(fs::metadata(dir.join("sub")).unwrap().is_dir());
}

#[test]
fn another_mounts_new_name_is_seen_once_this_mount_changes_the_directory_again() {
    let cluster = Cluster::start_default();
    let a = cluster.mount_with(&["--entry-ttl-ms", "60000"]);
    let b = cluster.mount();
    fs::create_dir(a.join("d")).unwrap();
    fs::write(a.join("d/mine"), b"a").unwrap();
    fs::write(b.join("d/theirs"), b"written by b").unwrap();
    // `a`'s next change in `d` is numbered one more than `a` expects: `a` forgets what it
    // knew of `d`, and finds `theirs` at the master although its TTL has long to run.
    fs::write(a.join("d/mine2"), b"a").unwrap();
    assert_eq!(fs::read(a.join("d/theirs")).unwrap(), b"written by b");
    let mut names: Vec<_> = fs::read_dir(a.join("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["mine", "mine2", "theirs"]);
}

#[test]
fn an_exclusive_create_of_a_name_another_mount_made_fails_with_eexist() {
    let cluster = Cluster::start_default();
    let a = cluster.mount_with(&["--entry-ttl-ms", "60000"]);
    let b = cluster.mount();
    fs::create_dir(a.join("d")).unwrap();
    fs::write(b.join("d/theirs"), b"written by b").unwrap();
    // `a` believes `theirs` absent, but the create reaches the master, which knows better;
    // the failure makes `a` forget what it knew of `d`.
    let err = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(a.join("d/theirs"))
        .unwrap_err();
    assert_eq!(errno(&err), libc::EEXIST);
    assert_eq!(fs::read(a.join("d/theirs")).unwrap(), b"written by b");
}

#[test]
fn another_mounts_new_name_is_seen_within_the_entry_ttl() {
    let cluster = Cluster::start_default();
    let a = cluster.mount_with(&["--entry-ttl-ms", "200"]);
    let b = cluster.mount();
    fs::create_dir(a.join("d")).unwrap();
    fs::write(b.join("d/theirs"), b"b").unwrap();
    // No change by `a` since: its knowledge of `d` expires with the entry TTL.
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(fs::read(a.join("d/theirs")).unwrap(), b"b");
}
