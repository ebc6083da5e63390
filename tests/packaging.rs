//! Packaging: the mount(8) helper `packaging/mount.dfs` mounts a real cluster as users
//! expect: `mount -t dfs`, `-o ro`, an fstab line, a bad option, and `umount`. (The systemd
//! units and sample settings are checked in `systemd_units.rs`.)
//!
//! The mount tests run mount(8), so they need root (as CI has): they install the helper as
//! `/sbin/mount.dfs`, a symlink to this checkout's script (removed again if they created it),
//! and point it at the built `dfs-fuse` through `DFS_FUSE`. The daemon the helper starts is
//! not a child of the test: [`HelperMount`] finds it by its command line, and on drop unmounts
//! and stops it, also when the test fails.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{OpenOptionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use dfs_tests::{
    Cluster, ClusterOptions, assert_success, binary, errno, is_mounted, output_text,
    pseudo_random_bytes, repo_path, wait_until,
};
use tempfile::TempDir;

/// Where mount(8) looks for the helper of type `dfs`.
const HELPER: &str = "/sbin/mount.dfs";

/// mount(8)'s exit status for a failed mount, which the helper returns for a bad option.
const MOUNT_FAILURE: i32 = 32;

fn packaging() -> PathBuf {
    repo_path("packaging")
}

/// Whether the test can run mount(8): as root. Elsewhere than CI (which runs as root) a
/// developer's unprivileged run skips the test with a note instead of failing.
fn can_mount(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test} needs root to run mount(8), as CI has"
    );
    eprintln!("skipping {test}: mount(8) needs root");
    false
}

/// A one-chunkserver cluster: enough for the helper, cheap to start.
fn small_cluster() -> Cluster {
    Cluster::start(ClusterOptions {
        chunkservers: 1,
        replication: 1,
        chunk_size: 1 << 20,
        ..Default::default()
    })
}

/// Asserts that a mount failed as mount(8) reports it (exit 32), saying `says`.
fn assert_mount_failed(out: &Output, says: &str) {
    assert_eq!(
        out.status.code(),
        Some(MOUNT_FAILURE),
        "{}",
        output_text(out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(says),
        "{}",
        output_text(out)
    );
}

// ---------------------------------------------------------------------------------------------
// The helper as /sbin/mount.dfs.

/// Tests using `/sbin/mount.dfs` at the moment, and whether this process created it.
static HELPER_USERS: Mutex<(usize, bool)> = Mutex::new((0, false));

/// `/sbin/mount.dfs` pointing at this checkout's script while it lives; tests of this binary
/// share it (the last one out removes it, if it was not there before).
struct Helper;

impl Helper {
    fn install() -> Helper {
        let mut users = HELPER_USERS.lock().unwrap_or_else(|e| e.into_inner());
        if users.0 == 0 {
            let script = packaging().join("mount.dfs");
            let ours = fs::read(&script).expect("read packaging/mount.dfs");
            match fs::symlink_metadata(HELPER) {
                Err(err) if err.kind() == ErrorKind::NotFound => {
                    symlink(&script, HELPER).expect("install /sbin/mount.dfs");
                    users.1 = true;
                }
                Err(err) => panic!("{HELPER}: {err}"),
                // A symlink left by a killed run whose checkout is gone: ours now.
                Ok(meta) if meta.file_type().is_symlink() && fs::metadata(HELPER).is_err() => {
                    fs::remove_file(HELPER).expect("remove dangling /sbin/mount.dfs");
                    symlink(&script, HELPER).expect("install /sbin/mount.dfs");
                    users.1 = true;
                }
                // Installed already (a symlink to this script, or packaging/install's copy).
                Ok(_) => assert!(
                    fs::read(HELPER).ok().as_ref() == Some(&ours),
                    "{HELPER} is another version of mount.dfs; remove it so that the test \
                     can link {} there",
                    script.display()
                ),
            }
        }
        users.0 += 1;
        Helper
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let mut users = HELPER_USERS.lock().unwrap_or_else(|e| e.into_inner());
        users.0 -= 1;
        if users.0 == 0 && users.1 {
            let _ = fs::remove_file(HELPER);
            users.1 = false;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Mounts made by the helper.

/// A mount point for the helper, with the daemon's log directory beside it; on drop, unmounts
/// whatever is mounted there and stops every `dfs-fuse` serving it.
struct HelperMount {
    mnt: PathBuf,
    logs: PathBuf,
    dir: TempDir,
}

impl HelperMount {
    fn new() -> HelperMount {
        let dir = tempfile::Builder::new()
            .prefix("dfs-pkg-")
            .tempdir()
            .expect("tempdir");
        let mnt = dir.path().join("mnt");
        let logs = dir.path().join("log");
        fs::create_dir(&mnt).expect("create mount point");
        HelperMount { mnt, logs, dir }
    }

    fn path(&self) -> &Path {
        &self.mnt
    }

    fn join(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// Runs `program args` with the environment the helper needs: the built `dfs-fuse`, and a
    /// log directory of this test instead of /var/log/dfs.
    fn run(&self, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Output {
        Command::new(program)
            .args(args)
            .env("DFS_FUSE", binary("dfs-fuse"))
            .env("DFS_LOG_DIR", &self.logs)
            // The harness's clusters speak plaintext.
            .env("DFS_INSECURE", "true")
            .output()
            .expect("run mount")
    }

    /// Runs mount(8) with `args`.
    fn mount(&self, args: &[&str]) -> Output {
        self.run("mount", args)
    }

    /// Runs umount(8) on the mount point.
    fn umount(&self) -> Output {
        Command::new("umount")
            .arg(&self.mnt)
            .output()
            .expect("run umount")
    }

    /// The top mount on the mount point: (file system type, per-mount options, super options,
    /// source).
    fn entry(&self) -> Option<(String, String, String, String)> {
        mount_entry(&self.mnt)
    }

    /// Pids of the `dfs-fuse` processes serving this mount point.
    fn daemons(&self) -> Vec<i32> {
        daemons_of(&self.mnt)
    }

    /// Everything the daemons logged, for failure messages.
    fn logs(&self) -> String {
        let mut out = String::new();
        for entry in fs::read_dir(&self.logs).into_iter().flatten().flatten() {
            let text = fs::read_to_string(entry.path()).unwrap_or_default();
            out.push_str(&format!("--- {}\n{text}\n", entry.path().display()));
        }
        out
    }

    /// Checks that nothing is mounted and no daemon is left after a failed mount or an
    /// unmount (the daemon exits by itself once the kernel has unmounted).
    fn assert_nothing_left(&self) {
        assert!(
            !is_mounted(&self.mnt),
            "{} is still mounted",
            self.mnt.display()
        );
        wait_until(
            Duration::from_secs(30),
            "no dfs-fuse serves the mount point",
            || self.daemons().is_empty(),
        );
    }
}

impl Drop for HelperMount {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "helper mount logs ({}):\n{}",
                self.dir.path().display(),
                self.logs()
            );
        }
        if is_mounted(&self.mnt) {
            let _ = Command::new("umount").arg(&self.mnt).output();
        }
        if is_mounted(&self.mnt) {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).output();
        }
        for signal in [libc::SIGTERM, libc::SIGKILL] {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let pids = self.daemons();
                if pids.is_empty() {
                    return;
                }
                if Instant::now() > deadline {
                    break;
                }
                for pid in pids {
                    // SAFETY: kill(2) has no memory-safety preconditions.
                    unsafe { libc::kill(pid, signal) };
                }
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// The top mount on `path` in /proc/self/mountinfo (the last one listed): (file system type,
/// per-mount options, super options, source).
fn mount_entry(path: &Path) -> Option<(String, String, String, String)> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    let want = path.to_string_lossy();
    mountinfo.lines().rev().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.get(4) != Some(&want.as_ref()) {
            return None;
        }
        let sep = fields.iter().position(|f| *f == "-")?;
        Some((
            fields.get(sep + 1)?.to_string(),
            fields[5].to_string(),
            fields.get(sep + 3)?.to_string(),
            fields.get(sep + 2)?.to_string(),
        ))
    })
}

/// Pids of the `dfs-fuse` processes with `mountpoint` among their arguments.
fn daemons_of(mountpoint: &Path) -> Vec<i32> {
    let want = mountpoint.as_os_str().as_encoded_bytes();
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").expect("read /proc").flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let mut args = cmdline.split(|b| *b == 0);
        let is_daemon = args.next().is_some_and(|arg0| arg0.ends_with(b"dfs-fuse"));
        if is_daemon && args.any(|arg| arg == want) {
            pids.push(pid);
        }
    }
    pids
}

/// Opens `path` for writing, creating it: the error a read-only mount must give.
fn create_for_writing(path: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)
}

// ---------------------------------------------------------------------------------------------
// systemd units and settings.

// ---------------------------------------------------------------------------------------------
// mount.dfs on its own: option mapping (no root needed).

/// Runs the helper directly in fake, verbose mode, returning its output.
fn fake_mount(dir: &Path, options: &str) -> Output {
    Command::new(packaging().join("mount.dfs"))
        .arg("127.0.0.1:9400")
        .arg(dir)
        .args(["-f", "-v", "-o", options])
        .env("DFS_FUSE", binary("dfs-fuse"))
        .output()
        .expect("run mount.dfs")
}

#[test]
fn mount_options_become_dfs_fuse_flags() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().display().to_string();
    let out = fake_mount(
        tmp.path(),
        "ro,rw,defaults,_netdev,nofail,noauto,x-systemd.automount,relatime,exec,allow_other,\
         attr_ttl_ms=500,entry_ttl_ms=0,open_ahead=false,debug_fuse,ro,noexec,nosuid",
    );
    assert_success("mount.dfs -f", &out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let fuse = binary("dfs-fuse").display().to_string();
    assert!(
        stdout.contains(&format!(
            "running: {fuse} --master 127.0.0.1:9400 {dir} --allow-other --attr-ttl-ms=500 \
             --entry-ttl-ms=0 --open-ahead=false --debug-fuse --read-only\n"
        )),
        "{}",
        output_text(&out)
    );
    assert!(
        stdout.contains(&format!(
            "then: mount -o remount,bind,noexec,nosuid {dir}\n"
        )),
        "{}",
        output_text(&out)
    );
    assert!(daemons_of(tmp.path()).is_empty(), "-f started a daemon");

    // The last of ro and rw wins.
    let out = fake_mount(tmp.path(), "ro,rw");
    assert_success("mount.dfs -f", &out);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("--read-only"));

    let out = fake_mount(tmp.path(), "allow_other,bogus_flag");
    assert_eq!(
        out.status.code(),
        Some(MOUNT_FAILURE),
        "{}",
        output_text(&out)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("'bogus_flag'"));
    // -s (sloppy) ignores it with a warning.
    let out = Command::new(packaging().join("mount.dfs"))
        .args(["127.0.0.1:9400", &dir, "-sfo", "bogus_flag"])
        .env("DFS_FUSE", binary("dfs-fuse"))
        .output()
        .expect("run mount.dfs");
    assert_success("mount.dfs -sf -o bogus_flag", &out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("ignoring unknown option 'bogus_flag'"));
}

/// Every dfs-fuse option that needs no value (a flag, an optional value, or a boolean) is
/// also a bare mount option, so `-o debug_fuse` keeps working as dfs-fuse gains flags.
#[test]
fn every_dfs_fuse_flag_is_a_mount_option() {
    let out = Command::new(binary("dfs-fuse"))
        .arg("--help")
        .output()
        .expect("run dfs-fuse --help");
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = help.lines().collect();
    let mut flags = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(spec) = line.trim_start().strip_prefix("--") else {
            continue;
        };
        let (name, value) = spec.split_once(' ').unwrap_or((spec, ""));
        let boolean = lines
            .get(i + 1)
            .is_some_and(|doc| doc.contains("[possible values: true, false]"));
        if matches!(name, "master" | "mountpoint") || (value.starts_with('<') && !boolean) {
            continue;
        }
        flags.push(name.replace('-', "_"));
    }
    assert!(
        flags.contains(&"read_only".to_string()),
        "no --read-only in:\n{help}"
    );
    assert!(flags.contains(&"allow_other".to_string()));
    let tmp = tempfile::tempdir().expect("tempdir");
    for flag in flags {
        let out = fake_mount(tmp.path(), &flag);
        assert_success(&format!("mount.dfs -o {flag}"), &out);
        let dashed = flag.replace('_', "-");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&format!(" --{dashed}")),
            "-o {flag} does not become --{dashed}: {}",
            output_text(&out)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// mount(8) through the helper, on a real cluster.

#[test]
fn mount_t_dfs_mounts_the_cluster_and_umount_unmounts_it() {
    if !can_mount("mount_t_dfs_mounts_the_cluster_and_umount_unmounts_it") {
        return;
    }
    let cluster = small_cluster();
    let _helper = Helper::install();
    let m = HelperMount::new();
    let dir = m.path().display().to_string();

    let out = m.mount(&[
        "-t",
        "dfs",
        &cluster.master_addr(),
        &dir,
        "-o",
        "allow_other",
    ]);
    assert_success("mount -t dfs", &out);
    let (fstype, _, super_options, _) = m.entry().expect("a mount on the mount point");
    assert_eq!(fstype, "fuse.dfs");
    assert!(
        super_options.split(',').any(|o| o == "allow_other"),
        "no allow_other in {super_options}"
    );
    assert_eq!(m.daemons().len(), 1, "one daemon serves the mount");

    let data = pseudo_random_bytes(41, (3 << 20) + 17);
    fs::write(m.join("file"), &data).expect("write through the mount");
    assert!(
        fs::read(m.join("file")).expect("read back") == data,
        "bytes differ"
    );

    let out = m.umount();
    assert_success("umount", &out);
    m.assert_nothing_left();

    // The bytes are in the cluster, not only in that mount's caches.
    let mount = cluster.mount();
    assert!(fs::read(mount.join("file")).expect("read elsewhere") == data);
}

#[test]
fn mount_o_ro_reads_and_refuses_writes_with_erofs() {
    if !can_mount("mount_o_ro_reads_and_refuses_writes_with_erofs") {
        return;
    }
    let cluster = small_cluster();
    let data = pseudo_random_bytes(42, 100_000);
    {
        let writer = cluster.mount();
        fs::write(writer.join("file"), &data).expect("write");
        fs::create_dir(writer.join("d")).expect("mkdir");
        writer.unmount();
    }
    let _helper = Helper::install();
    let m = HelperMount::new();
    let dir = m.path().display().to_string();

    let out = m.mount(&[
        "-t",
        "dfs",
        &cluster.master_addr(),
        &dir,
        "-o",
        "ro,allow_other",
    ]);
    assert_success("mount -o ro", &out);
    let (fstype, options, _, _) = m.entry().expect("a mount on the mount point");
    assert_eq!(fstype, "fuse.dfs");
    assert!(
        options.split(',').any(|o| o == "ro"),
        "mount options {options}"
    );

    assert!(
        fs::read(m.join("file")).expect("read") == data,
        "bytes differ"
    );
    assert_eq!(
        fs::read_dir(m.join("d")).expect("list d").count(),
        0,
        "d is not empty"
    );
    for path in [m.join("new"), m.join("file"), m.join("d/new")] {
        let err = create_for_writing(&path).expect_err("a read-only mount opened for writing");
        assert_eq!(errno(&err), libc::EROFS, "open {}: {err}", path.display());
    }
    let err = fs::create_dir(m.join("e")).expect_err("mkdir on a read-only mount");
    assert_eq!(errno(&err), libc::EROFS, "{err}");
    let err = fs::remove_file(m.join("file")).expect_err("unlink on a read-only mount");
    assert_eq!(errno(&err), libc::EROFS, "{err}");

    assert_success("umount", &m.umount());
    m.assert_nothing_left();
}

#[test]
fn an_fstab_line_mounts_by_its_mount_point() {
    if !can_mount("an_fstab_line_mounts_by_its_mount_point") {
        return;
    }
    let cluster = small_cluster();
    let _helper = Helper::install();
    let m = HelperMount::new();
    let dir = m.path().display().to_string();
    let fstab = m.dir.path().join("fstab");
    // A list of masters (the second one never answers: the first leads).
    let masters = format!("{},127.0.0.1:1", cluster.master_addr());
    fs::write(
        &fstab,
        format!(
            "# an alternative fstab for the test\n\
             {masters}  {dir}  dfs  _netdev,allow_other,attr_ttl_ms=500,x-systemd.requires=x.service  0  0\n"
        ),
    )
    .expect("write fstab");
    let fstab = fstab.display().to_string();

    let out = m.mount(&["-T", &fstab, &dir]);
    assert_success("mount -T FSTAB DIR", &out);
    let (fstype, _, _, source) = m.entry().expect("mounted");
    assert_eq!(fstype, "fuse.dfs");
    assert_eq!(source, masters, "the whole list is the mount's source");
    let daemons = m.daemons();
    assert_eq!(daemons.len(), 1);
    let cmdline = fs::read(format!("/proc/{}/cmdline", daemons[0])).expect("cmdline");
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert!(args.contains(&"--attr-ttl-ms=500".to_string()), "{args:?}");
    assert!(args.contains(&"--allow-other".to_string()), "{args:?}");
    assert!(
        !args
            .iter()
            .any(|a| a.contains("netdev") || a.contains("x-")),
        "{args:?}"
    );

    fs::write(m.join("f"), b"from fstab\n").expect("write");
    assert_eq!(fs::read(m.join("f")).expect("read"), b"from fstab\n");

    // A second mount on the same point is refused; the first one stays.
    let out = m.mount(&["-T", &fstab, &dir]);
    assert_mount_failed(&out, "already mounted");
    assert_eq!(m.daemons(), daemons);
    assert_eq!(fs::read(m.join("f")).expect("read"), b"from fstab\n");

    // `mount -a` over the same fstab knows the line is mounted (the mount's source is the
    // masters' list) and starts nothing.
    let out = m.mount(&["-a", "-T", &fstab]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(m.daemons(), daemons);

    assert_success("umount", &m.umount());
    m.assert_nothing_left();
}

#[test]
fn a_bad_option_or_an_unreachable_master_fails_the_mount_and_says_why() {
    if !can_mount("a_bad_option_or_an_unreachable_master_fails_the_mount_and_says_why") {
        return;
    }
    let cluster = small_cluster();
    let _helper = Helper::install();
    let m = HelperMount::new();
    let dir = m.path().display().to_string();
    let addr = cluster.master_addr();

    // Refused by the helper before anything starts.
    let out = m.mount(&["-t", "dfs", &addr, &dir, "-o", "bogus_flag"]);
    assert_mount_failed(&out, "bogus_flag");
    m.assert_nothing_left();

    // Refused by dfs-fuse: the helper passes its error on.
    let out = m.mount(&["-t", "dfs", &addr, &dir, "-o", "bogus_key=1"]);
    assert_mount_failed(&out, "--bogus-key");
    m.assert_nothing_left();

    // A master that does not answer: the daemon gives up after its RPC timeout.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let nobody = format!("127.0.0.1:{port}");
    let out = m.mount(&["-t", "dfs", &nobody, &dir, "-o", "rpc_timeout_ms=1000"]);
    assert_mount_failed(&out, &format!("{nobody} unreachable"));
    m.assert_nothing_left();

    // And the same mount point still mounts.
    let out = m.mount(&["-t", "dfs", &addr, &dir]);
    assert_success("mount after failures", &out);
    assert_success("umount", &m.umount());
    m.assert_nothing_left();
}
