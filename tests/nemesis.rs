//! A Jepsen-style randomized fault test: two mounts work on files while a nemesis kills and
//! freezes masters and kills chunkservers under them, then a third mount checks that everything the
//! applications were told succeeded holds.
//!
//! Each worker (one thread per mount) creates, writes and fsyncs, renames, unlinks, overwrites
//! and patches files in its own directory, reads its files back, and reads the files the other
//! worker was told it holds. It records every operation that returned success in a model
//! (file name → bytes, or gone). No operation may fail: mounts wait out a failover (their RPC
//! timeout is well above an election), and the nemesis never takes down a majority of the
//! masters nor more than one chunkserver, and faults a chunkserver only once `dfs status` shows
//! every chunk fully replicated again. Writes may go on with one replica left
//! (`--min-replication 1`): a chunk written while one server was out has two replicas until
//! re-replication restores the third, and may lose another to the next fault before that
//! (with the default minimum of two, that write fails with ENOSPC, as documented).
//!
//! The run is reproducible from its seed: `DFS_NEMESIS_SEED` (else one from the clock, printed
//! at the start and on failure) fixes the faults and each worker's operations, though not their
//! timing against each other. `DFS_NEMESIS_SECS` (default 40) is how long faults go on.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dfs_tests::{
    Acknowledged, Cluster, ClusterOptions, XorShift, close, differences, pseudo_random_bytes,
    status_healthy, try_read_fresh, wait_until,
};

/// Chunks of 1 MiB, so that the larger files cross chunk boundaries.
const CHUNK: usize = 1 << 20;

/// How long faults go on when `DFS_NEMESIS_SECS` does not say.
const DEFAULT_SECS: u64 = 40;

/// A worker keeps at most about this many files, so that it unlinks as much as it creates.
const MAX_FILES: usize = 24;

#[test]
fn acknowledged_operations_survive_random_faults() {
    let seed = std::env::var("DFS_NEMESIS_SEED")
        .map(|s| s.parse().expect("DFS_NEMESIS_SEED is a number"))
        .unwrap_or_else(|_| {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
            now.as_nanos() as u64
        });
    let secs = std::env::var("DFS_NEMESIS_SECS")
        .map(|s| s.parse().expect("DFS_NEMESIS_SECS is a number"))
        .unwrap_or(DEFAULT_SECS);
    eprintln!("nemesis: seed {seed} (replay with DFS_NEMESIS_SEED={seed}), {secs} s of faults");
    let _report = ReportSeed(seed);

    let mut cluster = Cluster::start(ClusterOptions {
        masters: 3,
        chunk_size: CHUNK as u64,
        // A mount waits out an election and a restarted chunkserver instead of failing a call.
        rpc_timeout_ms: 30_000,
        // A write goes on with one replica left: a chunk written while a chunkserver was out
        // (two replicas) may lose another to the next fault before re-replication restores
        // it, and with the default minimum of two that write fails with ENOSPC, as
        // documented. The nemesis waits for full replication before each chunkserver fault,
        // so the one replica left is never the last to fail.
        master_args: vec!["--min-replication".into(), "1".into()],
        ..Default::default()
    });
    let mounts = [cluster.mount(), cluster.mount()];
    for (w, mount) in mounts.iter().enumerate() {
        fs::create_dir(mount.join(worker_dir(w))).unwrap();
    }
    let models = [Model::default(), Model::default()];
    let stop = AtomicBool::new(false);
    let start = Instant::now();

    let failures: Vec<String> = thread::scope(|scope| {
        let workers: Vec<_> = (0..2)
            .map(|w| {
                let worker = Worker {
                    id: w,
                    seed,
                    rng: XorShift::new(seed.wrapping_add(w as u64 + 1)),
                    dir: mounts[w].join(worker_dir(w)),
                    model: &models[w],
                    other_dir: mounts[w].join(worker_dir(1 - w)),
                    other_model: &models[1 - w],
                    next_name: 0,
                    start,
                    done: 0,
                };
                let stop = &stop;
                scope.spawn(move || worker.run(stop))
            })
            .collect();
        let nemesis = Nemesis {
            cluster: &mut cluster,
            rng: XorShift::new(seed),
            start,
            faults: Vec::new(),
            leader: None,
        };
        let stop = &stop;
        scope
            .spawn(move || nemesis.run(start + Duration::from_secs(secs), stop))
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        workers
            .into_iter()
            .filter_map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                    .err()
            })
            .collect()
    });
    assert!(
        failures.is_empty(),
        "seed {seed}: an application saw an error:\n{}",
        failures.join("\n")
    );

    // Every fault is healed: the masters agree on a leader and every member has applied all.
    wait_until(Duration::from_secs(60), "every master catches up", || {
        (0..3).all(|i| cluster.caught_up(i))
    });
    let check = cluster.mount();
    let mut found = Vec::new();
    for (w, model) in models.iter().enumerate() {
        let dir = worker_dir(w);
        let acknowledged = model.acknowledged();
        let files = acknowledged.values().filter(|v| v.is_some()).count();
        eprintln!(
            "nemesis: checking {dir}: {} names, {files} files",
            acknowledged.len()
        );
        found.extend(
            differences(&check.join(&dir), &acknowledged)
                .into_iter()
                .map(|d| format!("{dir}/{d}")),
        );
    }
    assert!(
        found.is_empty(),
        "seed {seed}: acknowledged operations do not hold:\n{}",
        found.join("\n")
    );
}

/// The directory of worker `w`, at the root of the file system.
fn worker_dir(w: usize) -> String {
    format!("w{w}")
}

/// Seconds since `start`, for log lines that line up faults with slow operations.
fn at(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

/// Names the seed once more when the test fails, next to the logs the harness prints.
struct ReportSeed(u64);

impl Drop for ReportSeed {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "nemesis: failed with seed {0}; replay with DFS_NEMESIS_SEED={0}",
                self.0
            );
        }
    }
}

/// Tells every other thread to stop when dropped: a worker that fails, or a nemesis that
/// panics, ends the run instead of leaving the others working until the deadline.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// What one worker was told about the files of its directory, shared with the other worker's
/// reads of them.
#[derive(Default)]
struct Model(Mutex<BTreeMap<String, Entry>>);

/// One name of a worker's directory.
#[derive(Clone, Default)]
struct Entry {
    /// The bytes the file was last acknowledged with, or `None` once it was acknowledged gone.
    bytes: Option<Vec<u8>>,
    /// Bumped when a change of the name begins and again when it is acknowledged: odd while
    /// one is under way. A read by the other mount proves something only if this did not move.
    changes: u64,
}

impl Model {
    fn entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        // A worker that panicked holding the lock leaves a model still worth reading.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks `name` as being changed.
    fn begin(&self, name: &str) {
        self.entries().entry(name.to_string()).or_default().changes += 1;
    }

    /// Records that the change of `name` succeeded and left it holding `bytes` (or gone).
    fn acknowledge(&self, name: &str, bytes: Option<Vec<u8>>) {
        let mut entries = self.entries();
        let entry = entries.get_mut(name).expect("the change began");
        entry.bytes = bytes;
        entry.changes += 1;
    }

    /// A file that exists, picked at random, with its bytes and change count.
    fn pick(&self, rng: &mut XorShift) -> Option<(String, Vec<u8>, u64)> {
        let entries = self.entries();
        let files: Vec<(&String, &Entry)> = entries
            .iter()
            .filter(|(_, e)| e.bytes.is_some() && e.changes % 2 == 0)
            .collect();
        if files.is_empty() {
            return None;
        }
        let (name, entry) = files[rng.below(files.len() as u64) as usize];
        Some((name.clone(), entry.bytes.clone()?, entry.changes))
    }

    /// How often `name` has been changed (see [`Entry::changes`]).
    fn changes(&self, name: &str) -> u64 {
        self.entries().get(name).map_or(0, |e| e.changes)
    }

    /// The number of files that exist.
    fn files(&self) -> usize {
        self.entries()
            .values()
            .filter(|e| e.bytes.is_some())
            .count()
    }

    /// Every name and what it must hold, for the final check.
    fn acknowledged(&self) -> Acknowledged {
        self.entries()
            .iter()
            .map(|(name, entry)| (name.clone(), entry.bytes.clone()))
            .collect()
    }
}

/// The operations a worker picks from.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// Create a new file, write it whole, fsync, close.
    Create,
    /// Rename a file to a new name.
    Rename,
    /// Unlink a file.
    Unlink,
    /// Truncate a file and write it anew, fsync, close.
    Overwrite,
    /// Write a range inside or past the end of a file, fsync, close.
    Patch,
    /// Read one of the worker's own files back.
    ReadBack,
    /// Read a file the other worker was told it holds, through this worker's mount.
    ReadOther,
}

/// One mount's workload: its own directory, and reads of the other worker's.
struct Worker<'a> {
    id: usize,
    seed: u64,
    rng: XorShift,
    dir: PathBuf,
    model: &'a Model,
    other_dir: PathBuf,
    other_model: &'a Model,
    /// Names are never reused, so the other mount's cached dentries cannot go stale.
    next_name: u64,
    start: Instant,
    /// Operations that succeeded.
    done: u64,
}

impl Worker<'_> {
    /// Works until `stop`; answers the first failure.
    fn run(mut self, stop: &AtomicBool) -> Result<(), String> {
        let _stop = StopOnDrop(stop);
        while !stop.load(Ordering::Acquire) {
            let op = self.pick_op();
            let began = Instant::now();
            self.apply(op)?;
            // Not an assertion: a slow call shows when the mount waited out a fault.
            if began.elapsed() > Duration::from_secs(1) {
                eprintln!(
                    "[{:8.3}s] worker {}: {op:?} took {:.1} s",
                    at(self.start),
                    self.id,
                    began.elapsed().as_secs_f64()
                );
            }
            self.done += 1;
        }
        eprintln!(
            "[{:8.3}s] worker {}: {} operations succeeded",
            at(self.start),
            self.id,
            self.done
        );
        Ok(())
    }

    fn pick_op(&mut self) -> Op {
        let files = self.model.files();
        if files < 3 {
            return Op::Create;
        }
        let unlink = if files > MAX_FILES { 6 } else { 1 };
        let weighted_ops = [
            (Op::Create, 3),
            (Op::Rename, 2),
            (Op::Unlink, unlink),
            (Op::Overwrite, 2),
            (Op::Patch, 2),
            (Op::ReadBack, 2),
            (Op::ReadOther, 2),
        ];
        weighted(&mut self.rng, &weighted_ops)
    }

    /// A fresh name with `prefix`.
    fn fresh_name(&mut self, prefix: &str) -> String {
        self.next_name += 1;
        format!("{prefix}{}", self.next_name)
    }

    /// Random bytes of a random size: mostly small files, some of a few chunks.
    fn fresh_bytes(&mut self) -> Vec<u8> {
        let len = match self.rng.below(10) {
            0..=5 => self.rng.below(64 << 10),
            6..=8 => self.rng.below(CHUNK as u64),
            _ => CHUNK as u64 + self.rng.below(3 * CHUNK as u64 / 2),
        };
        pseudo_random_bytes(self.rng.next_u64(), len as usize)
    }

    /// The failure of `op` on `name`, with everything needed to replay it.
    fn failed(&self, op: Op, name: &str, err: &io::Error) -> String {
        format!(
            "seed {}: worker {} at {:.3} s: {op:?} {}/{name}: {err} (errno {:?})",
            self.seed,
            self.id,
            at(self.start),
            self.dir.display(),
            err.raw_os_error()
        )
    }

    fn apply(&mut self, op: Op) -> Result<(), String> {
        match op {
            Op::Create => {
                let name = self.fresh_name("f");
                let bytes = self.fresh_bytes();
                self.model.begin(&name);
                let mut new = OpenOptions::new();
                new.write(true).create_new(true);
                write_fsync_close(&self.dir.join(&name), &new, 0, &bytes)
                    .map_err(|e| self.failed(op, &name, &e))?;
                self.model.acknowledge(&name, Some(bytes));
            }
            Op::Rename => {
                let Some((name, bytes, _)) = self.model.pick(&mut self.rng) else {
                    return Ok(());
                };
                let new_name = self.fresh_name("r");
                self.model.begin(&name);
                self.model.begin(&new_name);
                fs::rename(self.dir.join(&name), self.dir.join(&new_name))
                    .map_err(|e| self.failed(op, &format!("{name} -> {new_name}"), &e))?;
                self.model.acknowledge(&name, None);
                self.model.acknowledge(&new_name, Some(bytes));
            }
            Op::Unlink => {
                let Some((name, _, _)) = self.model.pick(&mut self.rng) else {
                    return Ok(());
                };
                self.model.begin(&name);
                fs::remove_file(self.dir.join(&name)).map_err(|e| self.failed(op, &name, &e))?;
                self.model.acknowledge(&name, None);
            }
            Op::Overwrite => {
                let Some((name, _, _)) = self.model.pick(&mut self.rng) else {
                    return Ok(());
                };
                let bytes = self.fresh_bytes();
                self.model.begin(&name);
                let mut truncated = OpenOptions::new();
                truncated.write(true).truncate(true);
                write_fsync_close(&self.dir.join(&name), &truncated, 0, &bytes)
                    .map_err(|e| self.failed(op, &name, &e))?;
                self.model.acknowledge(&name, Some(bytes));
            }
            Op::Patch => {
                let Some((name, mut bytes, _)) = self.model.pick(&mut self.rng) else {
                    return Ok(());
                };
                // Anywhere from the start to a little past the end, so patches also extend.
                let offset = self.rng.below(bytes.len() as u64 + 4096) as usize;
                let len = 1 + self.rng.below(256 << 10) as usize;
                let patch = pseudo_random_bytes(self.rng.next_u64(), len);
                self.model.begin(&name);
                let mut existing = OpenOptions::new();
                existing.write(true);
                write_fsync_close(&self.dir.join(&name), &existing, offset as u64, &patch)
                    .map_err(|e| self.failed(op, &name, &e))?;
                if bytes.len() < offset + len {
                    bytes.resize(offset + len, 0);
                }
                bytes[offset..offset + len].copy_from_slice(&patch);
                self.model.acknowledge(&name, Some(bytes));
            }
            Op::ReadBack => {
                let Some((name, bytes, _)) = self.model.pick(&mut self.rng) else {
                    return Ok(());
                };
                let read = try_read_fresh(&self.dir.join(&name))
                    .map_err(|e| self.failed(op, &name, &e))?;
                if read != bytes {
                    return Err(self.wrong_bytes(op, &name, &bytes, &read));
                }
            }
            Op::ReadOther => {
                let Some((name, bytes, changes)) = self.other_model.pick(&mut self.rng) else {
                    return Ok(());
                };
                let read = try_read_fresh(&self.other_dir.join(&name));
                // Only a read that no change of the other worker overlapped proves anything.
                if self.other_model.changes(&name) != changes {
                    return Ok(());
                }
                let read = read.map_err(|e| self.failed(op, &name, &e))?;
                if read != bytes {
                    return Err(self.wrong_bytes(op, &name, &bytes, &read));
                }
            }
        }
        Ok(())
    }

    fn wrong_bytes(&self, op: Op, name: &str, expected: &[u8], read: &[u8]) -> String {
        let first = expected
            .iter()
            .zip(read)
            .position(|(a, b)| a != b)
            .unwrap_or(expected.len().min(read.len()));
        format!(
            "seed {}: worker {} at {:.3} s: {op:?} {name}: read {} bytes, acknowledged {}, \
             first difference at byte {first}",
            self.seed,
            self.id,
            at(self.start),
            read.len(),
            expected.len()
        )
    }
}

/// Opens the file at `path` with `options`, writes `bytes` at `offset`, fsyncs and closes
/// it, reporting what each step said: an application is told the bytes are safe only once all
/// of them succeed.
fn write_fsync_close(
    path: &Path,
    options: &OpenOptions,
    offset: u64,
    bytes: &[u8],
) -> io::Result<()> {
    let file = options.open(path)?;
    file.write_all_at(bytes, offset)?;
    file.sync_all()?;
    close(file)
}

/// One of `choices`, each as likely as its weight.
fn weighted<T: Copy>(rng: &mut XorShift, choices: &[(T, u64)]) -> T {
    let total: u64 = choices.iter().map(|(_, weight)| weight).sum();
    let mut roll = rng.below(total);
    for &(choice, weight) in choices {
        if roll < weight {
            return choice;
        }
        roll -= weight;
    }
    unreachable!("the roll is below the total weight")
}

/// One fault in force.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Master `i` was killed with SIGKILL.
    KilledMaster(usize),
    /// Master `i` was frozen with SIGSTOP.
    FrozenMaster(usize),
    /// Chunkserver `i` was killed with SIGKILL.
    KilledChunkserver(usize),
}

/// The kinds of fault the nemesis picks from.
#[derive(Clone, Copy)]
enum Kind {
    KillMaster,
    FreezeMaster,
    KillChunkserver,
}

impl Fault {
    fn on_master(self) -> bool {
        matches!(self, Fault::KilledMaster(_) | Fault::FrozenMaster(_))
    }
}

/// The thread that injects faults and heals them.
struct Nemesis<'a> {
    cluster: &'a mut Cluster,
    rng: XorShift,
    start: Instant,
    /// The faults in force and when each is to be healed.
    faults: Vec<(Instant, Fault)>,
    /// The leader when a master was last picked, for the log.
    leader: Option<usize>,
}

impl Nemesis<'_> {
    /// Injects a fault every 2-4 s until `until` (or `stop`), heals each when its time comes,
    /// then heals whatever is left and tells the workers to stop.
    fn run(mut self, until: Instant, stop: &AtomicBool) {
        let _stop = StopOnDrop(stop);
        let mut next_fault = Instant::now() + self.interval(2_000, 4_000);
        while Instant::now() < until && !stop.load(Ordering::Acquire) {
            let now = Instant::now();
            let due: Vec<Fault> = self
                .faults
                .iter()
                .filter(|(when, _)| *when <= now)
                .map(|(_, fault)| *fault)
                .collect();
            self.faults.retain(|(when, _)| *when > now);
            for fault in due {
                self.heal(fault);
            }
            if now >= next_fault {
                self.inject();
                next_fault = Instant::now() + self.interval(2_000, 4_000);
            }
            // The schedule is the nemesis's own; short steps let it heal on time and stop
            // soon after a worker fails.
            thread::sleep(Duration::from_millis(50));
        }
        for (_, fault) in std::mem::take(&mut self.faults) {
            self.heal(fault);
        }
        self.log("everything healed".into());
    }

    /// A random duration between `min_ms` and `max_ms`.
    fn interval(&mut self, min_ms: u64, max_ms: u64) -> Duration {
        Duration::from_millis(min_ms + self.rng.below(max_ms - min_ms + 1))
    }

    fn log(&self, what: String) {
        eprintln!("[{:8.3}s] nemesis: {what}", at(self.start));
    }

    /// Picks a fault that leaves a majority of masters and two chunkservers serving, and
    /// injects it.
    fn inject(&mut self) {
        let master_down = self.faults.iter().any(|(_, f)| f.on_master());
        let chunkserver_down = self.faults.iter().any(|(_, f)| !f.on_master());
        // Killing a master (the leader more often) is the fault a group of masters exists for.
        let mut kinds = Vec::new();
        if !master_down {
            kinds.extend([(Kind::KillMaster, 3), (Kind::FreezeMaster, 2)]);
        }
        if !chunkserver_down && self.fully_replicated() {
            // Chunkservers are killed, not frozen: a frozen one holds the writes of its chains
            // until the mounts' RPC timeout (30 s here), past any fault schedule.
            kinds.push((Kind::KillChunkserver, 3));
        }
        if kinds.is_empty() {
            self.log("a master and a chunkserver are down already; no new fault".into());
            return;
        }
        let (fault, heal_in) = match weighted(&mut self.rng, &kinds) {
            Kind::KillMaster => (
                Fault::KilledMaster(self.pick_master()),
                self.interval(500, 6_000),
            ),
            Kind::FreezeMaster => (
                Fault::FrozenMaster(self.pick_master()),
                self.interval(1_000, 3_000),
            ),
            Kind::KillChunkserver => {
                let i = self.rng.below(3) as usize;
                (Fault::KilledChunkserver(i), self.interval(500, 6_000))
            }
        };
        match fault {
            Fault::KilledMaster(i) => self.cluster.stop_master_at(i, libc::SIGKILL),
            Fault::FrozenMaster(i) => self.cluster.pause_master(i),
            Fault::KilledChunkserver(i) => self.cluster.stop_chunkserver(i, libc::SIGKILL),
        }
        let leader = match fault {
            Fault::KilledMaster(i) | Fault::FrozenMaster(i) if Some(i) == self.leader => {
                " (the leader)"
            }
            _ => "",
        };
        self.log(format!(
            "{fault:?}{leader}, to be healed in {:.1} s",
            heal_in.as_secs_f64()
        ));
        self.faults.push((Instant::now() + heal_in, fault));
    }

    /// Whether no chunk lacks a replica (`dfs status`), so that the cluster tolerates a
    /// chunkserver failure again.
    fn fully_replicated(&self) -> bool {
        let status = self.cluster.dfs(&["status"]);
        let healthy = status_healthy(&status);
        if !healthy {
            self.log(
                "some chunks lack a replica, or the leader is still checking: \
                 no chunkserver fault until it reports them all replicated"
                    .to_string(),
            );
        }
        healthy
    }

    /// The master to hit: the leader two times in three, else another.
    fn pick_master(&mut self) -> usize {
        let leader = self.cluster.leader();
        self.leader = Some(leader);
        if self.rng.below(3) < 2 {
            leader
        } else {
            (leader + 1 + self.rng.below(2) as usize) % 3
        }
    }

    fn heal(&mut self, fault: Fault) {
        match fault {
            Fault::KilledMaster(i) => self.cluster.restart_master_at(i),
            Fault::FrozenMaster(i) => self.cluster.resume_master(i),
            Fault::KilledChunkserver(i) => self.cluster.restart_chunkserver(i),
        }
        self.log(format!("healed {fault:?}"));
    }
}
