//! Advisory locks across processes and across mounts: `flock` (util-linux and the system
//! call), `fcntl` byte ranges (F_SETLK, F_SETLKW, F_GETLK, splitting by unlock), OFD locks,
//! release when a process closes or exits, and release when a mount's daemon is killed.
//!
//! Each locking process is a small Python agent on one mount, driven line by line from the
//! test, so a lock can be held by one process while another is asked to take it.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use dfs_tests::{Cluster, ClusterOptions, wait_until, within};

/// Time-to-live of writer leases and lock sessions: short, so a killed mount's locks go soon.
const SESSION_TTL_MS: u64 = 1500;

/// Generous bound on anything that should finish (hang detector, not a timing assertion).
const HANG: Duration = Duration::from_secs(60);

/// The agent: reads commands, answers `ok`, `err <ERRNO>`, or a lock description.
const AGENT: &str = r#"
import errno, fcntl, os, signal, struct, sys
def interrupted(*_):
    raise InterruptedError(errno.EINTR, 'signal')
signal.signal(signal.SIGUSR1, interrupted)
fds = {}
KIND = {'r': fcntl.F_RDLCK, 'w': fcntl.F_WRLCK, 'u': fcntl.F_UNLCK}
NAME = {fcntl.F_RDLCK: 'r', fcntl.F_WRLCK: 'w', fcntl.F_UNLCK: 'u'}
F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW = 36, 37, 38
def flock_struct(kind, start, length):
    return struct.pack('hhqqi4x', KIND[kind], os.SEEK_SET, int(start), int(length), 0)
for line in sys.stdin:
    cmd = line.split()
    try:
        op = cmd[0]
        if op == 'open':
            # open <fd> <path> <r|rw>
            fds[cmd[1]] = os.open(cmd[2], os.O_RDWR if cmd[3] == 'rw' else os.O_RDONLY)
            out = 'ok'
        elif op == 'close':
            os.close(fds.pop(cmd[1]))
            out = 'ok'
        elif op == 'flock':
            how = {'ex': fcntl.LOCK_EX, 'sh': fcntl.LOCK_SH, 'un': fcntl.LOCK_UN}[cmd[2]]
            fcntl.flock(fds[cmd[1]], how | (fcntl.LOCK_NB if 'nb' in cmd[3:] else 0))
            out = 'ok'
        elif op in ('setlk', 'setlkw', 'ofd_setlk', 'ofd_setlkw'):
            # setlk <fd> <r|w|u> <start> <len>
            code = {'setlk': fcntl.F_SETLK, 'setlkw': fcntl.F_SETLKW,
                    'ofd_setlk': F_OFD_SETLK, 'ofd_setlkw': F_OFD_SETLKW}[op]
            fcntl.fcntl(fds[cmd[1]], code, flock_struct(cmd[2], cmd[3], cmd[4]))
            out = 'ok'
        elif op in ('getlk', 'ofd_getlk'):
            code = fcntl.F_GETLK if op == 'getlk' else F_OFD_GETLK
            got = fcntl.fcntl(fds[cmd[1]], code, flock_struct(cmd[2], cmd[3], cmd[4]))
            kind, _, start, length, pid = struct.unpack('hhqqi4x', got)
            out = 'unlocked' if kind == fcntl.F_UNLCK else f'{NAME[kind]} {start} {length} {pid}'
        elif op == 'pid':
            out = str(os.getpid())
        else:
            out = 'unknown ' + op
    except OSError as e:
        out = 'err ' + errno.errorcode[e.errno]
    print(out, flush=True)
"#;

/// One Python process holding descriptors on a mount.
struct Agent {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Agent {
    fn start() -> Agent {
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(AGENT)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Agent {
            child,
            stdin,
            stdout,
        }
    }

    /// Sends a command without waiting for its answer (a blocking lock).
    fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").expect("agent stdin");
    }

    /// The answer to the oldest command not yet answered.
    fn answer(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("agent stdout");
        assert!(!line.is_empty(), "the agent died");
        line.trim().to_string()
    }

    fn run(&mut self, command: &str) -> String {
        self.send(command);
        self.answer()
    }

    fn ok(&mut self, command: &str) {
        assert_eq!(self.run(command), "ok", "{command}");
    }

    /// Opens `path` as descriptor `fd`, for reading and writing: a mount writing a file holds
    /// its writer lease, so only one mount can (F_WRLCK needs a writable descriptor).
    fn open_rw(&mut self, fd: &str, path: &Path) {
        self.ok(&format!("open {fd} {} rw", path.display()));
    }

    /// Opens `path` read-only as descriptor `fd` (`flock` of any kind, F_RDLCK, F_GETLK).
    fn open_ro(&mut self, fd: &str, path: &Path) {
        self.ok(&format!("open {fd} {} r", path.display()));
    }

    fn pid(&mut self) -> u32 {
        self.run("pid").parse().unwrap()
    }

    /// Kills the agent (a process that dies holding locks) and reaps it.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cluster() -> Cluster {
    Cluster::start(ClusterOptions {
        master_args: vec!["--lease-ttl-ms".into(), SESSION_TTL_MS.to_string()],
        ..Default::default()
    })
}

/// Runs `f` under the hang detector (agents block on their pipes otherwise).
fn guarded(f: impl FnOnce() + Send + 'static) {
    within(HANG * 3, f);
}

#[test]
fn flock_on_one_mount_excludes_the_other_until_it_is_closed() {
    guarded(|| {
        let cluster = cluster();
        let (a, b) = (cluster.mount(), cluster.mount());
        std::fs::write(a.join("f"), b"x").unwrap();
        let (mut in_a, mut in_b) = (Agent::start(), Agent::start());
        in_a.open_ro("1", &a.join("f"));
        in_b.open_ro("1", &b.join("f"));

        in_a.ok("flock 1 ex nb");
        assert_eq!(in_b.run("flock 1 ex nb"), "err EAGAIN");
        assert_eq!(in_b.run("flock 1 sh nb"), "err EAGAIN");
        // A blocking request waits; it is granted once `a` closes its descriptor.
        in_b.send("flock 1 ex");
        in_a.ok("close 1");
        assert_eq!(in_b.answer(), "ok");
        // Now `a` is the one refused; readers share once `b` downgrades.
        in_a.open_ro("2", &a.join("f"));
        assert_eq!(in_a.run("flock 2 sh nb"), "err EAGAIN");
        in_b.ok("flock 1 sh");
        in_a.ok("flock 2 sh nb");
        assert_eq!(in_a.run("flock 2 ex nb"), "err EAGAIN");
        in_b.ok("flock 1 un");
        in_a.ok("flock 2 ex nb");

        // util-linux flock(1) on the other mount agrees: -n fails with its conflict code.
        let busy = Command::new("flock")
            .args(["-n", "-E", "75"])
            .arg(b.join("f"))
            .arg("true")
            .status()
            .unwrap();
        assert_eq!(busy.code(), Some(75));
        in_a.ok("close 2");
        let free = Command::new("flock")
            .arg(b.join("f"))
            .arg("true")
            .status()
            .unwrap();
        assert!(free.success());
    });
}

#[test]
fn fcntl_ranges_coexist_conflict_report_and_split() {
    guarded(|| {
        let cluster = cluster();
        let (a, b) = (cluster.mount(), cluster.mount());
        std::fs::write(a.join("f"), vec![0u8; 1000]).unwrap();
        // Two writing processes on mount `a` (one writing mount per file: the writer lease),
        // a reading process on mount `b`.
        let (mut w1, mut w2, mut r) = (Agent::start(), Agent::start(), Agent::start());
        w1.open_rw("1", &a.join("f"));
        w2.open_rw("1", &a.join("f"));
        r.open_ro("1", &b.join("f"));
        let (pid1, pid2) = (w1.pid(), w2.pid());

        // Non-overlapping write locks coexist; overlapping ones conflict, on either mount.
        w1.ok("setlk 1 w 0 100");
        w2.ok("setlk 1 w 100 100");
        assert_eq!(w2.run("setlk 1 w 50 10"), "err EAGAIN");
        assert_eq!(r.run("setlk 1 r 99 1"), "err EAGAIN");
        assert_eq!(r.run("setlk 1 r 100 1"), "err EAGAIN");
        r.ok("setlk 1 r 200 50");
        // F_GETLK names the lock in the way: type, range and holder.
        assert_eq!(r.run("getlk 1 w 10 5"), format!("w 0 100 {pid1}"));
        assert_eq!(w2.run("getlk 1 w 10 5"), format!("w 0 100 {pid1}"));
        assert_eq!(r.run("getlk 1 w 500 0"), "unlocked");
        assert_eq!(w1.run("getlk 1 w 240 1"), format!("r 200 50 {}", r.pid()));
        // The holder itself sees nothing in its way on its own range.
        assert_eq!(w1.run("getlk 1 w 0 100"), "unlocked");

        // Unlocking the middle splits w1's lock in two.
        w1.ok("setlk 1 u 40 20");
        w2.ok("setlk 1 w 45 10");
        assert_eq!(r.run("getlk 1 w 0 50"), format!("w 0 40 {pid1}"));
        assert_eq!(r.run("getlk 1 r 60 1"), format!("w 60 40 {pid1}"));
        assert_eq!(r.run("getlk 1 r 41 1"), "unlocked");
        r.ok("setlk 1 r 41 1");

        // Readers share across mounts; a writer is refused over a reader. A lock to end of
        // file has length 0.
        w1.ok("setlk 1 r 300 0");
        r.ok("setlk 1 r 400 10");
        assert_eq!(w2.run("setlk 1 w 400 10"), "err EAGAIN");
        assert_eq!(w2.run("getlk 1 w 5000 1"), format!("r 300 0 {pid1}"));
        // F_SETLKW blocks until the other process unlocks, then is granted.
        w2.send("setlkw 1 w 10 20");
        w1.ok("setlk 1 u 0 40");
        assert_eq!(w2.answer(), "ok");
        assert_eq!(r.run("getlk 1 r 15 1"), format!("w 10 20 {pid2}"));
    });
}

#[test]
fn locks_go_when_the_process_closes_or_exits() {
    guarded(|| {
        let cluster = cluster();
        let m = cluster.mount();
        let other = cluster.mount();
        std::fs::write(m.join("f"), b"x").unwrap();
        // `flock` is a whole-file lock of another owner, so it goes on another file than the
        // same process's fcntl locks (on dfs, as on NFS, the two kinds conflict).
        std::fs::write(m.join("g"), b"x").unwrap();
        let mut probe = Agent::start();
        probe.open_ro("1", &other.join("f"));
        probe.open_ro("2", &other.join("g"));

        // POSIX: closing any descriptor of the file drops the process's locks on it.
        let mut holder = Agent::start();
        holder.open_rw("1", &m.join("f"));
        holder.open_ro("2", &m.join("f"));
        holder.ok("setlk 1 w 0 10");
        assert_eq!(probe.run("setlk 1 r 0 1"), "err EAGAIN");
        holder.ok("close 2");
        probe.ok("setlk 1 r 0 1");
        probe.ok("setlk 1 u 0 1");

        // A process killed holding fcntl and flock locks leaves none behind.
        holder.ok("setlk 1 w 0 10");
        holder.open_ro("3", &m.join("g"));
        holder.ok("flock 3 ex");
        assert_eq!(probe.run("flock 2 sh nb"), "err EAGAIN");
        assert_eq!(probe.run("setlk 1 r 5 1"), "err EAGAIN");
        holder.kill();
        // The kernel flushes at exit and releases the open file afterwards: wait for both.
        assert_eq!(probe.run("setlkw 1 r 0 10"), "ok");
        probe.ok("setlk 1 u 0 10");
        assert_eq!(probe.run("flock 2 ex"), "ok");

        // OFD locks belong to the open file description and go with its last close.
        let mut ofd = Agent::start();
        ofd.open_rw("1", &m.join("f"));
        ofd.ok("ofd_setlk 1 w 0 5");
        assert_eq!(probe.run("setlk 1 r 0 1"), "err EAGAIN");
        assert_eq!(probe.run("ofd_setlk 1 r 4 1"), "err EAGAIN");
        assert!(probe.run("ofd_getlk 1 w 0 1").starts_with("w 0 5 "));
        ofd.ok("close 1");
        assert_eq!(probe.run("setlkw 1 r 0 1"), "ok");
    });
}

#[test]
fn a_killed_mount_frees_its_locks_within_the_session_time_to_live() {
    guarded(|| {
        let cluster = cluster();
        let mut a = cluster.mount();
        let b = cluster.mount();
        std::fs::write(b.join("f"), b"x").unwrap();
        std::fs::write(b.join("g"), b"x").unwrap();
        let (mut in_a, mut in_b) = (Agent::start(), Agent::start());
        in_a.open_ro("1", &a.join("f"));
        in_a.open_rw("2", &a.join("g"));
        in_b.open_ro("1", &b.join("f"));
        in_b.open_ro("2", &b.join("g"));
        in_a.ok("flock 1 ex");
        in_a.ok("setlk 2 w 0 0");
        assert_eq!(in_b.run("flock 1 ex nb"), "err EAGAIN");
        assert_eq!(in_b.run("setlk 2 r 7 1"), "err EAGAIN");

        // The daemon of `a` dies without releasing anything; its session expires.
        a.kill();
        in_b.send("flock 1 ex");
        assert_eq!(in_b.answer(), "ok");
        assert_eq!(in_b.run("setlkw 2 r 0 0"), "ok");
        in_a.kill();
    });
}

#[test]
fn a_blocked_lock_request_ends_with_eintr_on_a_signal_and_when_its_process_is_killed() {
    guarded(|| {
        let cluster = cluster();
        let m = cluster.mount();
        std::fs::write(m.join("f"), b"x").unwrap();
        let (mut holder, mut waiter) = (Agent::start(), Agent::start());
        holder.open_rw("1", &m.join("f"));
        waiter.open_rw("1", &m.join("f"));
        holder.ok("setlk 1 w 0 0");
        let waiter_pid = waiter.pid();
        // Whether the waiter sits in fcntl(2) (x86-64 system call 72), waiting for the mount.
        let in_fcntl = |pid: u32| {
            std::fs::read_to_string(format!("/proc/{pid}/syscall"))
                .is_ok_and(|call| call.starts_with("72 "))
        };
        waiter.send("setlkw 1 w 0 0");
        wait_until(HANG, "the waiter to block in fcntl", || {
            in_fcntl(waiter_pid)
        });
        // A signal with a handler interrupts the wait: EINTR.
        // SAFETY: kill(2) on a child process of this test has no memory-safety preconditions.
        unsafe { libc::kill(waiter_pid as libc::pid_t, libc::SIGUSR1) };
        assert_eq!(waiter.answer(), "err EINTR");
        waiter.send("setlkw 1 w 0 0");
        wait_until(HANG, "the waiter to block in fcntl again", || {
            in_fcntl(waiter_pid)
        });
        // SIGKILL: without an answer from the mount the process could never die.
        waiter.kill();
        holder.ok("setlk 1 u 0 0");
        // The waiter never got the lock: another process takes it at once.
        let mut third = Agent::start();
        third.open_rw("1", &m.join("f"));
        third.ok("setlk 1 w 0 0");
    });
}

#[test]
fn locks_survive_a_master_restart() {
    guarded(|| {
        let mut cluster = cluster();
        let (a, b) = (cluster.mount(), cluster.mount());
        std::fs::write(a.join("f"), b"x").unwrap();
        let (mut in_a, mut in_b) = (Agent::start(), Agent::start());
        in_a.open_ro("1", &a.join("f"));
        in_b.open_ro("1", &b.join("f"));
        in_a.ok("flock 1 ex");

        cluster.stop_master(libc::SIGTERM);
        cluster.restart_master();
        // Still held, and still released by the holder's close.
        assert_eq!(in_b.run("flock 1 ex nb"), "err EAGAIN");
        in_b.send("flock 1 ex");
        in_a.ok("close 1");
        assert_eq!(in_b.answer(), "ok");
    });
}
