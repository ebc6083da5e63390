//! [`MountLeases`]: the writer leases this mount holds, renewed in the background.
//!
//! A file opened for writing needs its lease from the master (see `dfs_master::leases`). The
//! mount asks once per file, under one holder id for the whole mount, so every handle of the
//! mount shares it; the lease is released when the file's last handle closes. While another
//! mount holds it, asking is retried for `--lease-wait-ms` and then fails with `EBUSY`.
//!
//! Releases are sent in batches: a release waits [`RELEASE_BATCH_WINDOW`] for others, and
//! one call (one commit in the group of masters) gives them all up. Writing many small files
//! would otherwise cost a replicated commit per file for the release alone. The delay is
//! invisible to this mount (an open of a file whose release still waits takes it back without
//! asking the master again) and to readers (the data was committed at the close); another
//! mount that wants to write the file waits for it as for any held lease.
//!
//! One background task renews every held lease a few times per time-to-live. A lease the
//! master no longer grants (this mount was cut off longer than the time-to-live and another
//! writer took over) is dropped from the table with an error in the log; the chunk versions
//! the new holder moved on make the old holder's further writes and commits fail, so they
//! can never overwrite the new holder's data.
//!
//! When the previous holder died holding the lease, the new holder recovers the file first
//! ([`recover`]):
//! * every chunk moves to a new version: the next version is stamped on its replicas, then
//!   the master records it (`LeaseChunk`), so whatever the old holder may still have in
//!   flight (it may only be cut off, not dead) is refused as stale by every replica, and a
//!   replica that missed the stamp is stale for readers and garbage for the master;
//! * the last chunk's replicas may disagree on their length (the dead writer's last stream
//!   reached some of them, or reached them all but was never committed): they are cut to the
//!   shortest replica's length (never below the committed length), and that length is
//!   committed, so every reader sees one length and one content.
//!
//! After a clean release nothing of the previous holder can be in flight, so an ordinary
//! open-write-close costs no version changes. Commits name their holder and are refused once
//! its lease is gone.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use dfs_proto::FsError;
use dfs_proto::pb;

use crate::datapath::DataPath;
use crate::master::MasterClient;

/// How often a lease is renewed per time-to-live.
const RENEWALS_PER_TTL: u32 = 3;

/// Pause between attempts while another mount holds a lease.
const BUSY_RETRY: Duration = Duration::from_millis(100);

/// Renewal interval until the master has told its time-to-live.
const DEFAULT_RENEW_INTERVAL: Duration = Duration::from_secs(1);

/// How long a release waits for others to go to the master with it.
pub const RELEASE_BATCH_WINDOW: Duration = Duration::from_millis(10);

/// The leases of one mount.
#[derive(Debug)]
pub struct MountLeases {
    holder: String,
    wait: Duration,
    // A std mutex: held only to read or change the table, never across an `.await`.
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    held: HashSet<u64>,
    renew_interval: Option<Duration>,
    renewer_running: bool,
    /// Leases given up here and not yet sent to the master, which still counts them as held.
    queued: Vec<u64>,
    /// Whether a task is sending the queued releases.
    releaser_running: bool,
    /// Releases on their way to the master, woken when answered. A release that reaches
    /// the master after a new grant of the same file to this mount would undo that grant.
    releasing: HashMap<u64, Arc<tokio::sync::Notify>>,
    /// Releases sent so far, and the number of the last one of each file (recent ones).
    releases: u64,
    last_release: HashMap<u64, u64>,
    /// `last_release` forgot the releases up to this number.
    forgotten: u64,
}

/// Files `last_release` remembers before it forgets the oldest half.
const REMEMBERED_RELEASES: usize = 4096;

/// What was known of this mount's lease releases at one moment (see
/// [`MountLeases::acquire_with`]).
#[derive(Debug)]
struct ReleaseMark {
    releases: u64,
    in_flight: Vec<u64>,
}

/// What acquiring a lease found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acquired {
    /// The previous holder died holding the lease: run [`recover`] before writing.
    pub recover: bool,
}

impl MountLeases {
    /// The leases of a new mount, which waits up to `wait` for a lease another mount holds.
    pub fn new(wait: Duration) -> MountLeases {
        MountLeases {
            holder: holder_id(),
            wait,
            state: Mutex::default(),
        }
    }

    /// The id naming this mount to the master.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Acquires the lease of `ino`, waiting for another holder to give it up for at most the
    /// configured wait (then `EBUSY`), and starts renewing it.
    pub async fn acquire(
        self: &Arc<Self>,
        master: &MasterClient,
        ino: u64,
    ) -> Result<Acquired, FsError> {
        let (acquired, ()) = self
            .acquire_with(master, || async {
                let reply = master.acquire_lease(ino, &self.holder).await?;
                Ok((ino, reply, ()))
            })
            .await?;
        Ok(acquired)
    }

    /// Like [`acquire`](MountLeases::acquire), through `ask`: a master call that grants the
    /// lease of the file it names among other things (`OpenFile`, `CreateFile`) and answers
    /// the file, the grant and its other results. Asked again while another mount holds the
    /// lease (`EBUSY`), for at most the configured wait.
    pub async fn acquire_with<T, F, Fut>(
        self: &Arc<Self>,
        master: &MasterClient,
        ask: F,
    ) -> Result<(Acquired, T), FsError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(u64, pb::LeaseReply, T), FsError>>,
    {
        let deadline = tokio::time::Instant::now() + self.wait;
        let mark = self.mark();
        let (ino, mut reply, value) = until_not_busy(deadline, ask).await?;
        // A release still queued never reached the master: the grant just answered is the
        // lease this mount kept all along.
        let taken_back = self.take_back_queued(ino);
        if !taken_back && self.released_since(&mark, ino) {
            // A last close here was giving the lease up while the master granted it anew:
            // arriving after the grant, that release undid it. Let it land, then ask again.
            self.wait_released(ino).await;
            let recover = reply.recover;
            reply = until_not_busy(deadline, || master.acquire_lease(ino, &self.holder)).await?;
            reply.recover |= recover;
        }
        let ttl = Duration::from_millis(reply.ttl_ms.max(1));
        let start_renewer = {
            let mut state = self.state();
            state.held.insert(ino);
            state.renew_interval = Some(ttl / RENEWALS_PER_TTL);
            !std::mem::replace(&mut state.renewer_running, true)
        };
        if start_renewer {
            tokio::spawn(renew_forever(Arc::downgrade(self), master.clone()));
        }
        let acquired = Acquired {
            recover: reply.recover,
        };
        Ok((acquired, value))
    }

    /// Whether this mount holds the lease of `ino`.
    pub fn holds(&self, ino: u64) -> bool {
        self.state().held.contains(&ino)
    }

    /// Releases the lease of `ino` if this mount holds it (in the next batch).
    pub fn release(self: &Arc<Self>, master: &MasterClient, ino: u64) {
        self.release_unless(master, ino, || false)
    }

    /// Releases the lease of `ino` if this mount holds it and `in_use` (asked under the
    /// table's lock, so no open can slip between the question and the release) says no. The
    /// release goes with the next batch; a failure is logged (the lease then expires).
    pub fn release_unless(
        self: &Arc<Self>,
        master: &MasterClient,
        ino: u64,
        in_use: impl FnOnce() -> bool,
    ) {
        let start_releaser = {
            let mut state = self.state();
            if in_use() || !state.held.remove(&ino) {
                return;
            }
            state.queued.push(ino);
            !std::mem::replace(&mut state.releaser_running, true)
        };
        if start_releaser {
            tokio::spawn(send_releases(Arc::clone(self), master.clone()));
        }
    }

    /// Takes the queued releases as one batch on its way: each numbered, and marked as
    /// on its way until answered. Empty when nothing is queued (the sender then stops).
    fn take_batch(&self) -> Vec<(u64, Arc<tokio::sync::Notify>)> {
        let mut state = self.state();
        let queued = std::mem::take(&mut state.queued);
        if queued.is_empty() {
            state.releaser_running = false;
        }
        let mut batch = Vec::with_capacity(queued.len());
        for ino in queued {
            state.releases += 1;
            let number = state.releases;
            state.last_release.insert(ino, number);
            let answered = Arc::new(tokio::sync::Notify::new());
            state.releasing.insert(ino, answered.clone());
            batch.push((ino, answered));
        }
        if state.last_release.len() > REMEMBERED_RELEASES {
            let keep_after = state.releases - (REMEMBERED_RELEASES / 2) as u64;
            state.last_release.retain(|_, n| *n > keep_after);
            state.forgotten = keep_after;
        }
        batch
    }

    /// Notes that the releases of `batch` were answered, and wakes whoever waits for them.
    fn batch_answered(&self, batch: Vec<(u64, Arc<tokio::sync::Notify>)>) {
        {
            let mut state = self.state();
            for (ino, answered) in &batch {
                if state
                    .releasing
                    .get(ino)
                    .is_some_and(|n| Arc::ptr_eq(n, answered))
                {
                    state.releasing.remove(ino);
                }
            }
        }
        for (_, answered) in batch {
            answered.notify_waiters();
        }
    }

    /// Takes back the lease of `ino` if its release is still queued; whether it was.
    fn take_back_queued(&self, ino: u64) -> bool {
        let mut state = self.state();
        match state.queued.iter().position(|&queued| queued == ino) {
            Some(at) => {
                state.queued.swap_remove(at);
                true
            }
            None => false,
        }
    }

    /// What is known now of releases, to tell later whether one of a file may have
    /// reached the master after a given moment.
    fn mark(&self) -> ReleaseMark {
        let state = self.state();
        ReleaseMark {
            releases: state.releases,
            in_flight: state.releasing.keys().copied().collect(),
        }
    }

    /// Whether a release of `ino` was on its way at `mark` or started since.
    fn released_since(&self, mark: &ReleaseMark, ino: u64) -> bool {
        let state = self.state();
        mark.in_flight.contains(&ino)
            || state.releasing.contains_key(&ino)
            || mark.releases < state.forgotten
            || state
                .last_release
                .get(&ino)
                .is_some_and(|&n| n > mark.releases)
    }

    /// Returns once no release of `ino` is on its way to the master.
    async fn wait_released(&self, ino: u64) {
        loop {
            let Some(answered) = self.state().releasing.get(&ino).cloned() else {
                return;
            };
            let notified = answered.notified();
            tokio::pin!(notified);
            // Registered before looking again, so an answer in between is not missed.
            notified.as_mut().enable();
            let same = self
                .state()
                .releasing
                .get(&ino)
                .is_some_and(|n| Arc::ptr_eq(n, &answered));
            if same {
                notified.await;
            }
        }
    }

    /// Releases every lease, queued releases included (the filesystem is being unmounted).
    pub async fn release_all(&self, master: &MasterClient) {
        let inos: Vec<u64> = {
            let mut state = self.state();
            let held: Vec<u64> = state.held.drain().collect();
            state.queued.extend(held);
            std::mem::take(&mut state.queued)
        };
        if inos.is_empty() {
            return;
        }
        if let Err(err) = master.release_leases(&inos, &self.holder).await {
            tracing::warn!(leases = inos.len(), error = %err, "lease release at unmount failed");
        }
    }
}

/// Calls `ask` until it answers something other than `EBUSY` (another mount holds the lease),
/// pausing between tries, or until `deadline`, after which `EBUSY` is the answer.
async fn until_not_busy<T, F, Fut>(deadline: tokio::time::Instant, mut ask: F) -> Result<T, FsError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, FsError>>,
{
    loop {
        match ask().await {
            Err(FsError::Busy) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(BUSY_RETRY).await;
            }
            result => return result,
        }
    }
}

/// Sends the queued releases of `leases`, a batch per [`RELEASE_BATCH_WINDOW`], until none
/// is left.
async fn send_releases(leases: Arc<MountLeases>, master: MasterClient) {
    loop {
        tokio::time::sleep(RELEASE_BATCH_WINDOW).await;
        let batch = leases.take_batch();
        if batch.is_empty() {
            return;
        }
        let inos: Vec<u64> = batch.iter().map(|(ino, _)| *ino).collect();
        if let Err(err) = master.release_leases(&inos, &leases.holder).await {
            tracing::warn!(leases = inos.len(), error = %err,
                "lease release failed; the leases expire by themselves");
        }
        leases.batch_answered(batch);
    }
}

/// Renews every held lease once per interval until the leases are dropped.
async fn renew_forever(leases: Weak<MountLeases>, master: MasterClient) {
    loop {
        let interval = match leases.upgrade() {
            Some(leases) => leases.state().renew_interval,
            None => return,
        };
        tokio::time::sleep(interval.unwrap_or(DEFAULT_RENEW_INTERVAL)).await;
        let Some(leases) = leases.upgrade() else {
            return;
        };
        let held: Vec<u64> = leases.state().held.iter().copied().collect();
        for ino in held {
            match master.renew_lease(ino, &leases.holder).await {
                Ok(_) => {}
                Err(FsError::Stale(why)) => {
                    tracing::error!(ino, %why, "writer lease lost; further writes will fail");
                    leases.state().held.remove(&ino);
                }
                // The master may be restarting: it honours the lease for a full
                // time-to-live after it starts, and the next round tries again.
                Err(err) => tracing::warn!(ino, error = %err, "lease renewal failed"),
            }
        }
    }
}

/// A holder id unique to this mount: host, process and a random part.
fn holder_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let random = RandomState::new().hash_one(std::time::SystemTime::now());
    format!("{}:{}:{random:016x}", host.trim(), std::process::id())
}

/// Recovers file `ino` after its previous writer died holding the lease (the caller now
/// holds it as `holder`): moves every chunk to a new version, cuts every replica of the last
/// chunk to the length they all have (at least the committed one), and commits that length.
/// Takes a round trip to the replicas and one to the master per chunk of the file; it only
/// runs after a writer died.
pub async fn recover(io: &DataPath, ino: u64, holder: &str) -> Result<(), FsError> {
    let reply = io.master.get_chunks(ino, 0, 0).await?;
    let Some((last, earlier)) = reply.chunks.split_last() else {
        return Ok(());
    };
    for chunk in earlier {
        io.take_chunk(ino, chunk.index, holder, chunk, None).await?;
    }
    let mut answered = Vec::with_capacity(last.replicas.len());
    let mut lengths = Vec::with_capacity(last.replicas.len());
    for replica in &last.replicas {
        match io.chunks.stat_replica(&replica.addr, last).await {
            Ok(stat) => {
                answered.push(replica.clone());
                lengths.push(stat.length);
            }
            Err(err) => {
                tracing::warn!(ino, replica = %replica.addr, error = %err, "replica not reconciled")
            }
        }
    }
    let Some(&shortest) = lengths.iter().min() else {
        // No replica answered: nothing to reconcile, but the version still moves on.
        io.take_chunk(ino, last.index, holder, last, None).await?;
        return Ok(());
    };
    let agreed = shortest.max(last.length);
    // Only the replicas that answered are cut; the others miss the new version and are
    // stale from now on.
    let reachable = pb::ChunkInfo {
        replicas: answered,
        ..last.clone()
    };
    let chunk = io
        .take_chunk(ino, last.index, holder, &reachable, Some(agreed))
        .await?;
    let end = io.layout.chunk_start(last.index) + agreed;
    tracing::info!(
        ino,
        index = last.index,
        committed = last.length,
        agreed,
        "recovered the last chunk of a file whose writer died"
    );
    if agreed > last.length {
        let req = pb::CommitWriteRequest {
            ino,
            chunks: vec![pb::ChunkCommit {
                index: last.index,
                chunk_id: chunk.chunk_id,
                version: chunk.version,
                length: agreed,
                placed_servers: Vec::new(),
            }],
            size: end,
            mtime: None,
            lease_holder: holder.to_string(),
            attrs: None,
        };
        io.master.commit_write(req).await?;
    }
    Ok(())
}
