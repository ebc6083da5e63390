//! Small files through the block cache: a file this mount wrote is one short block (its tail,
//! ending at end of file), cached by the write-through, so reading it again costs no
//! chunkserver read. The cached tail carries its length and is keyed by chunk version, so it
//! is never served stale or short: not after an append, an extension or a truncate on this
//! mount, not after another mount's writes, not after this mount takes the file back.
//! Reading many small files also keeps the kernel's atime right while the close of a file
//! only read is answered without a round trip, and a listing opens without one.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};

use dfs_tests::{Cluster, pseudo_random_bytes, read_fresh};

/// Sizes of small files as a source tree has them: under, at and just over a block.
fn small_sizes() -> Vec<usize> {
    let mut sizes: Vec<usize> = (0..40).map(|i| 1024 + i * 181).collect();
    sizes.extend([1, 4095, 4096, 64 << 10, (64 << 10) + 100, (128 << 10) + 7]);
    sizes
}

#[test]
fn small_files_written_here_are_read_again_without_any_chunkserver() {
    let mut cluster = Cluster::start_default();
    let mount = cluster.mount();
    let dir = mount.join("tree");
    fs::create_dir(&dir).unwrap();
    let mut files = Vec::new();
    for (i, size) in small_sizes().into_iter().enumerate() {
        let data = pseudo_random_bytes(100 + i as u64, size);
        let path = dir.join(format!("f{i:03}"));
        if i % 2 == 0 {
            fs::write(&path, &data).unwrap();
        } else {
            // In pieces, as tar and cp write (one open, several writes, mtime set, close).
            let mut file = fs::File::create(&path).unwrap();
            for piece in data.chunks(1000) {
                file.write_all(piece).unwrap();
            }
            file.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::new(5, 0))
                .unwrap();
        }
        files.push((path, data));
    }
    // Every chunkserver is dead: no chunkserver read can succeed, so each byte read comes
    // from the mount's block cache (the kernel's pages are dropped first), twice over.
    for i in 0..3 {
        cluster.stop_chunkserver(i, libc::SIGKILL);
    }
    for _ in 0..2 {
        for (path, data) in &files {
            assert!(read_fresh(path) == *data, "{} read wrong", path.display());
        }
    }
}

/// A file flushed part way (the close of a duplicated descriptor flushes it, as the child of
/// any fork closes its copy at exec) is committed in two pieces: the second continues the
/// tail the first cached, so the file is still read whole from the cache.
#[test]
fn a_file_flushed_part_way_is_read_again_without_any_chunkserver() {
    let mut cluster = Cluster::start_default();
    let mount = cluster.mount();
    let mut files = Vec::new();
    for (i, size) in [2500usize, 9000, (64 << 10) + 3000].into_iter().enumerate() {
        let data = pseudo_random_bytes(300 + i as u64, size);
        let path = mount.join(format!("f{i}"));
        let mut file = fs::File::create(&path).unwrap();
        let (head, rest) = data.split_at(size / 3);
        file.write_all(head).unwrap();
        // Closing a duplicate sends a flush: the head is committed now.
        drop(file.try_clone().unwrap());
        file.write_all(rest).unwrap();
        drop(file);
        files.push((path, data));
    }
    for i in 0..3 {
        cluster.stop_chunkserver(i, libc::SIGKILL);
    }
    for (path, data) in &files {
        assert!(read_fresh(path) == *data, "{} read wrong", path.display());
    }
}

#[test]
fn a_cached_tail_is_never_served_stale_or_short() {
    let cluster = Cluster::start_default();
    let mount = cluster.mount();
    let other = cluster.mount();
    let path = mount.join("f");
    let mut expected = pseudo_random_bytes(1, 5000);
    fs::write(&path, &expected).unwrap();
    assert!(read_fresh(&path) == expected);

    // Appended here, in a second open: the cached tail is not the file's end any more.
    let more = pseudo_random_bytes(2, 3000);
    OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&more)
        .unwrap();
    expected.extend_from_slice(&more);
    assert!(read_fresh(&path) == expected, "append lost");

    // Written again from the start (cached anew), then extended: zeros past the old end.
    expected = pseudo_random_bytes(3, 6000);
    fs::write(&path, &expected).unwrap();
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(20_000).unwrap();
    drop(file);
    expected.resize(20_000, 0);
    assert!(read_fresh(&path) == expected, "extension read wrong");

    // Cut inside the cached block and grown again: the cut bytes read as zeros.
    expected = pseudo_random_bytes(4, 7000);
    fs::write(&path, &expected).unwrap();
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(1000).unwrap();
    file.set_len(6000).unwrap();
    drop(file);
    expected.truncate(1000);
    expected.resize(6000, 0);
    assert!(read_fresh(&path) == expected, "old bytes after a cut");

    // Patched inside the tail by a second open here.
    expected = pseudo_random_bytes(5, 4000);
    fs::write(&path, &expected).unwrap();
    let patch = pseudo_random_bytes(6, 100);
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&patch, 500).unwrap();
    drop(file);
    expected[500..600].copy_from_slice(&patch);
    assert!(read_fresh(&path) == expected, "patch lost");

    // Another mount appends to the file this mount cached: a newer version, a longer tail.
    let theirs = pseudo_random_bytes(7, 2500);
    OpenOptions::new()
        .append(true)
        .open(other.join("f"))
        .unwrap()
        .write_all(&theirs)
        .unwrap();
    expected.extend_from_slice(&theirs);
    assert!(read_fresh(&path) == expected, "other mount's append unseen");

    // Another mount rewrites it in place, same size.
    let rewrite = pseudo_random_bytes(8, expected.len());
    let file = OpenOptions::new()
        .write(true)
        .open(other.join("f"))
        .unwrap();
    file.write_all_at(&rewrite, 0).unwrap();
    drop(file);
    expected = rewrite;
    assert!(
        read_fresh(&path) == expected,
        "other mount's rewrite unseen"
    );

    // This mount takes the file back (a newer version of the chunk under its lease) and
    // writes less than there was: no byte of the longer old tail shows.
    let short = pseudo_random_bytes(9, 1500);
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&short, 0).unwrap();
    file.set_len(1500).unwrap();
    drop(file);
    assert!(read_fresh(&path) == short, "takeover read wrong");
    assert!(read_fresh(&other.join("f")) == short);
    // And the other mount, which cached nothing of that, agrees after its own rewrite.
    fs::write(other.join("f"), b"tiny").unwrap();
    assert_eq!(read_fresh(&path), b"tiny");
}

#[test]
fn reading_many_small_files_keeps_atime_and_closes_cleanly() {
    let cluster = Cluster::start_default();
    let mount = cluster.mount();
    let other = cluster.mount();
    let dir = mount.join("d");
    fs::create_dir(&dir).unwrap();
    for i in 0..20 {
        fs::write(dir.join(format!("f{i}")), format!("file {i}")).unwrap();
    }
    // The first read of each file since it was written marks atime (relatime), and a stat
    // right after the read shows the mark, though no master call fetched it.
    for i in 0..20 {
        let path = dir.join(format!("f{i}"));
        let before = fs::metadata(&path).unwrap();
        assert_eq!(read_fresh(&path), format!("file {i}").as_bytes());
        let after = fs::metadata(&path).unwrap();
        assert!(
            (after.atime(), after.atime_nsec()) > (before.atime(), before.atime_nsec()),
            "atime of f{i} not marked"
        );
        assert_eq!(after.size(), before.size());
        assert_eq!(after.mtime(), before.mtime());
    }
    // A file read here is closed without owing anything: another mount can take its writer
    // lease at once and this mount sees what it wrote (close-to-open).
    let path = dir.join("f3");
    {
        let reader = fs::File::open(&path).unwrap();
        let mut byte = [0u8; 1];
        reader.read_at(&mut byte, 0).unwrap();
        // A chmod here while the file is open: the next stat shows it.
        fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
    }
    fs::write(other.join("d/f3"), b"changed elsewhere").unwrap();
    assert_eq!(read_fresh(&path), b"changed elsewhere");
    assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
}

#[test]
fn a_listing_needs_no_call_to_open_and_marks_the_directory() {
    let cluster = Cluster::start_default();
    let mount = cluster.mount();
    let checker = cluster.mount_with(&["--attr-ttl-ms", "0", "--entry-ttl-ms", "0"]);
    let dir = mount.join("d");
    fs::create_dir(&dir).unwrap();
    fs::create_dir(dir.join("empty")).unwrap();
    let mut names: Vec<String> = (0..1500).map(|i| format!("n{i:04}")).collect();
    for name in &names {
        fs::write(dir.join(name), b"x").unwrap();
    }
    let before = fs::metadata(checker.join("d")).unwrap();
    // More entries than one page of the master: listed whole, in order, once each.
    let mut listed: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "empty")
        .collect();
    listed.sort();
    names.sort();
    assert_eq!(listed, names);
    // The listing marked the directory's atime (relatime: it changed since).
    let after = fs::metadata(checker.join("d")).unwrap();
    assert!(
        (after.atime(), after.atime_nsec()) > (before.atime(), before.atime_nsec()),
        "listing left atime"
    );
    // An empty directory lists nothing (`.` and `..` come from its first, empty page).
    assert_eq!(fs::read_dir(dir.join("empty")).unwrap().count(), 0);
    fs::remove_dir(checker.join("d/empty")).unwrap();
    assert!(fs::read_dir(checker.join("d/empty")).is_err());
    // `ls -l` sees sizes and kinds through the listing's attributes.
    let out = std::process::Command::new("ls")
        .arg("-la")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().filter(|l| l.ends_with(" n0007")).count(), 1);
    assert!(
        text.lines()
            .any(|l| l.starts_with('d') && l.ends_with(" ."))
    );
}
