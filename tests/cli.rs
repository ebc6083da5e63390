//! The `dfs` file commands against their coreutils namesakes on the same tree: the tree is
//! built and read through a FUSE mount with the real `ls`, `stat`, `cat`, `rm`, … in the C
//! locale, and `dfs` must print the same listings, the same error messages (its own `dfs ls:`
//! prefix aside) and exit with the same codes, without a mount.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Output};

use dfs_tests::{Cluster, Mount, binary, pseudo_random_bytes, sh};

/// Runs `dfs ARGS` against the cluster, in any outcome.
fn dfs(cluster: &Cluster, args: &[&str]) -> Output {
    Command::new(binary("dfs"))
        .arg("--insecure")
        .arg("--master")
        .arg(cluster.master_addr())
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .expect("run dfs")
}

/// Runs a coreutils command line in the mount's root, in the C locale, in any outcome.
fn coreutils(mount: &Mount, script: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(mount.path())
        .env("LC_ALL", "C")
        .output()
        .expect("run sh")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts that `dfs` and coreutils printed the same standard output and exited alike.
fn assert_same_output(ours: &Output, theirs: &Output, what: &str) {
    assert_eq!(
        text(&ours.stdout),
        text(&theirs.stdout),
        "{what}: standard output differs (dfs stderr: {})",
        text(&ours.stderr)
    );
    assert_eq!(
        ours.status.code(),
        theirs.status.code(),
        "{what}: exit codes differ"
    );
}

/// Asserts that `dfs` failed as coreutils did: the same exit code and the same messages once
/// each side's program name (`dfs ls: ` / `ls: `) is taken off.
fn assert_same_failure(ours: &Output, theirs: &Output, program: &str) {
    assert_failed_like(ours, program, theirs, program);
}

/// [`assert_same_failure`] for a command named otherwise in coreutils (`put` is `cp`).
fn assert_failed_like(ours: &Output, program: &str, theirs: &Output, their_program: &str) {
    let strip = |out: &Output, prefix: &str| -> Vec<String> {
        text(&out.stderr)
            .lines()
            .map(|line| {
                line.strip_prefix(prefix)
                    .unwrap_or_else(|| panic!("`{line}` does not start with `{prefix}`"))
                    .to_string()
            })
            .collect()
    };
    let (mine, coreutils) = (
        strip(ours, &format!("dfs {program}: ")),
        strip(theirs, &format!("{their_program}: ")),
    );
    assert!(!coreutils.is_empty(), "{program} printed no error");
    assert_eq!(mine, coreutils, "{program}: messages differ");
    assert_eq!(
        ours.status.code(),
        theirs.status.code(),
        "{program}: exit codes differ"
    );
    assert_ne!(ours.status.code(), Some(0), "{program} should have failed");
}

/// A tree with nested directories, files of several sizes, an empty file and a symlink.
fn build_tree(mount: &Mount) {
    sh(
        mount.path(),
        "mkdir -p t/a/b t/c && printf hello > t/z && printf x > t/a/x && : > t/c/empty \
         && head -c 70000 /dev/zero > t/a/b/y && ln -s a t/l && chmod 750 t/c",
    );
}

#[test]
fn listings_match_ls() {
    let cluster = Cluster::start_default();
    let mount = cluster.mount();
    build_tree(&mount);
    for args in [
        &["ls", "t"][..],
        &["ls", "-R", "t"],
        &["ls", "t/a/x", "t/z", "t/c"],
        &["ls", "-l", "t/a"],
        &["ls", "-l", "t"],
        &["ls", "-lR", "t"],
    ] {
        let ours = dfs(&cluster, args);
        let theirs = coreutils(&mount, &args.join(" "));
        assert_same_output(&ours, &theirs, &args.join(" "));
    }
}

#[test]
fn stat_reports_what_stat_reports() {
    let cluster = Cluster::start_default();
    let mount = cluster.mount();
    build_tree(&mount);
    for path in ["t/z", "t/c", "t/c/empty", "t/a/b/y"] {
        let ours = text(&dfs(&cluster, &["stat", path]).stdout);
        let theirs = text(&coreutils(&mount, &format!("stat {path}")).stdout);
        // Every line but the device's (a FUSE mount's anonymous device number; the cluster
        // has none), atime (reading through the mount may mark it) and birth (which the
        // kernel may not ask a FUSE filesystem for).
        let keep = |report: &str| -> Vec<String> {
            report
                .lines()
                .filter(|l| {
                    !l.starts_with("Device:")
                        && !l.starts_with("Access: 2")
                        && !l.starts_with(" Birth:")
                })
                .map(|l| l.split("\tInode:").next().unwrap_or(l).to_string())
                .collect()
        };
        assert_eq!(keep(&ours), keep(&theirs), "stat {path}");
    }
}

#[test]
fn cat_copies_the_bytes_out() {
    let cluster = Cluster::start_default();
    let mount = cluster.mount();
    let data = pseudo_random_bytes(3, 3 << 20);
    fs::write(mount.join("blob"), &data).unwrap();
    fs::write(mount.join("small"), b"tail\n").unwrap();
    let out = dfs(&cluster, &["cat", "blob", "small"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(out.stdout.len(), data.len() + 5);
    assert!(out.stdout[..data.len()] == data[..]);
    assert_eq!(&out.stdout[data.len()..], b"tail\n");
}

#[test]
fn failures_read_and_exit_as_in_coreutils() {
    let cluster = Cluster::start_default();
    let mount = cluster.mount();
    build_tree(&mount);
    for (program, args) in [
        ("ls", "t/missing"),
        ("ls", "t/missing t/z"),
        ("stat", "t/missing"),
        ("cat", "t/missing"),
        ("cat", "t/a"),
        ("rm", "t/missing"),
        ("rm", "t/a"),
        ("rmdir", "t/a"),
        ("rmdir", "t/missing"),
        ("mkdir", "t/a"),
        ("mkdir", "t/missing/new"),
        ("mv", "t/missing t/new"),
    ] {
        let ours = dfs(
            &cluster,
            &[&[program][..], &args.split(' ').collect::<Vec<_>>()].concat(),
        );
        let theirs = coreutils(&mount, &format!("{program} {args}"));
        assert_same_failure(&ours, &theirs, program);
        if program == "ls" {
            // What could be listed still is.
            assert_eq!(text(&ours.stdout), text(&theirs.stdout));
        }
    }
    // Nothing was changed by the failures.
    let listing = sh(mount.path(), "ls -R t");
    assert_eq!(text(&dfs(&cluster, &["ls", "-R", "t"]).stdout), listing);
    assert!(listing.contains("t/a/b:\ny\n"), "{listing}");
}

#[test]
fn mkdir_rm_rmdir_and_mv_change_the_tree_as_coreutils_would() {
    let cluster = Cluster::start_default();
    let mount = cluster.mount();
    build_tree(&mount);
    let ok = |args: &[&str]| {
        let out = dfs(&cluster, args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "dfs {args:?}: {}",
            text(&out.stderr)
        );
    };
    // Listings through the mount ask the master each time; a name the mount looked up stays
    // in its kernel's cache for the entry TTL, so removals are checked by listing.
    let names = |dir: &str| -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(mount.join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    ok(&["mkdir", "-p", "/p/q/r", "t/a"]);
    assert_eq!(names("p/q"), ["r"]);
    ok(&["mv", "t/z", "p/q"]);
    assert_eq!(fs::read(mount.join("p/q/z")).unwrap(), b"hello");
    ok(&["mv", "p/q/z", "p/renamed"]);
    assert_eq!(fs::read(mount.join("p/renamed")).unwrap(), b"hello");
    ok(&["rmdir", "p/q/r"]);
    assert_eq!(names("p/q"), Vec::<String>::new());
    ok(&["rm", "p/renamed"]);
    ok(&["rm", "-f", "p/never-was"]);
    assert_eq!(names("p"), ["q"]);
    ok(&["rm", "-r", "t"]);
    assert_eq!(names(""), ["p"]);
    // The root is never removed recursively, whatever it is called.
    for root in ["/", "p/.."] {
        let refused = dfs(&cluster, &["rm", "-rf", root]);
        assert_eq!(refused.status.code(), Some(1));
        assert!(
            text(&refused.stderr).contains("it is dangerous to operate recursively on"),
            "{}",
            text(&refused.stderr)
        );
    }
    assert_eq!(names(""), ["p"]);
    let left = text(&dfs(&cluster, &["ls", "-R", "/"]).stdout);
    assert_eq!(left, "/:\np\n\n/p:\nq\n\n/p/q:\n");
}

#[test]
fn put_and_get_copy_whole_trees() {
    let cluster = Cluster::start_default();
    let mount = cluster.mount();
    let local = cluster.dir().join("local");
    fs::create_dir_all(local.join("sub/deeper")).unwrap();
    fs::write(local.join("top"), pseudo_random_bytes(1, 2 << 20)).unwrap();
    fs::write(local.join("sub/one"), b"1").unwrap();
    fs::write(local.join("sub/deeper/empty"), b"").unwrap();
    let local_arg = local.to_str().unwrap();

    // A directory needs -r, as with cp.
    let refused = dfs(&cluster, &["put", local_arg, "/in"]);
    let cp = Command::new("cp")
        .args([local_arg, "/nonexistent-target"])
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    assert_failed_like(&refused, "put", &cp, "cp");
    assert!(!mount.join("in").exists());

    let out = dfs(&cluster, &["put", "-r", local_arg, "/in"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("3 files, 2097153 bytes"),
        "{}",
        text(&out.stdout)
    );
    sh(
        Path::new("/"),
        &format!("diff -r {local_arg} {}", mount.join("in").display()),
    );

    // Into an existing directory, under the source's own name.
    let back = cluster.dir().join("back");
    fs::create_dir(&back).unwrap();
    let out = dfs(&cluster, &["get", "-r", "/in", back.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    sh(
        Path::new("/"),
        &format!("diff -r {local_arg} {}", back.join("in").display()),
    );
}

#[test]
fn relative_symlinks_are_listed_with_their_targets() {
    let cluster = Cluster::start_default();
    let mount = cluster.mount();
    fs::create_dir(mount.join("d")).unwrap();
    fs::write(mount.join("d/f"), b"through").unwrap();
    symlink("d", mount.join("to-d")).unwrap();
    // `ls` follows a symlink operand to a directory; `cat` reads through one in the path.
    let ours = dfs(&cluster, &["ls", "to-d"]);
    assert_same_output(&ours, &coreutils(&mount, "ls to-d"), "ls to-d");
    assert_eq!(dfs(&cluster, &["cat", "to-d/f"]).stdout, b"through");
}
