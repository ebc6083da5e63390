//! This master as a member of the group: it runs openraft, proposes the leader's commands,
//! and holds the metadata logic ([`Master`]) only while it leads.
//!
//! * **Leadership.** A watcher follows openraft's metrics. When this member becomes leader it
//!   first confirms the leadership with a round of heartbeats and waits until every entry
//!   committed before its term is applied ([`Raft::ensure_linearizable`]); only then does it
//!   build a [`Master`] over the store, as a restarted master would: leases granted by any
//!   earlier leader are honoured for a full time-to-live, lock sessions and chunkserver
//!   liveness start afresh, and the background loops (replication, balancing, garbage
//!   collection) start. When it stops leading, the `Master` and its loops go.
//! * **Mutations.** The `Master`'s writer commits through a [`Proposer`]: the command is
//!   proposed, and the commit returns once openraft has it in a majority's logs and applied
//!   here. A proposal that fails because another member leads says which one; one that finds
//!   no majority within the time an election takes fails with a clear error, and the leadership
//!   is rebuilt from the store before it serves again (the outcome of that entry is unknown).
//! * **Reads.** The leader serves reads under a lease: a read is answered from the local store
//!   only within a fraction of the election timeout after a majority last confirmed this
//!   member's leadership (a confirmation loop renews it every heartbeat interval); the members
//!   that confirmed it refuse to elect anyone else for that long. Otherwise the read first
//!   confirms leadership itself (ReadIndex). A read never sees an entry that is not committed,
//!   since only committed entries are applied.
//! * Openraft runs on a runtime of its own, so that a mutation waiting for its commit (which
//!   blocks the thread serving it, see [`crate::service::Calls::write`]) can never starve the
//!   tasks that commit it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dfs_proto::time;
use dfs_proto::tls::Tls;
use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, ServerState};
use tokio::runtime::{Handle, Runtime};

use crate::background::Background;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::master::{self, Master};
use crate::metrics::MasterMetrics;
use crate::raft::log_store::LogStore;
use crate::raft::network::{Contacts, Network};
use crate::raft::state_machine::StateMachine;
use crate::raft::{NodeId, Raft};
use crate::store::Store;
use crate::store::command::Command;
use crate::store::txn::{Commit, Writer};

/// This member of the group of masters.
pub struct Node {
    pub(super) id: NodeId,
    pub(super) raft: Raft,
    store: Arc<Store>,
    pub(super) config: Config,
    /// openraft's runtime; taken at shutdown.
    runtime: Mutex<Option<Runtime>>,
    pub(super) raft_handle: Handle,
    /// The runtime serving requests, where the leader's background loops run.
    main_handle: Handle,
    leadership: Mutex<Leadership>,
    /// When a majority last confirmed this member's leadership (nanoseconds after `epoch`,
    /// 0 = never in the current term).
    confirmed_at: AtomicU64,
    epoch: Instant,
    /// Set by a proposal whose outcome is unknown: the leadership must be rebuilt from the
    /// store before it serves again.
    uncertain: Arc<AtomicBool>,
    /// A leadership transfer is under way: the lease loop sends no heartbeats.
    pub(super) transferring: AtomicBool,
    stopping: AtomicBool,
    /// When each other member last answered (while this one leads).
    pub(super) contacts: Contacts,
    /// The log sync loop, awaited at shutdown (it holds the store).
    sync_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// This process's metrics: changes of leader, and what each leadership's [`Master`]
    /// counts.
    metrics: Arc<MasterMetrics>,
    /// The certificates of mutual TLS with the other members, if it is on.
    tls: Option<Tls>,
}

/// Whether this member leads, and its metadata logic if it does.
enum Leadership {
    /// Another member leads, or nobody.
    Following,
    /// Leads in `term`; its [`Master`] is being built.
    Starting { term: u64 },
    /// Leads in `term` and serves.
    Leading {
        term: u64,
        master: Arc<Master>,
        background: Background,
    },
}

impl Node {
    /// Opens the store in `config.data_dir`, starts openraft, forms the group on first start
    /// (unless `--join`), and starts following leadership. `local_addr` is where this master
    /// listens; members reach it at `--advertise`, or there. Leader changes, and what each
    /// leadership counts, go to `metrics`.
    pub async fn start(
        config: &Config,
        local_addr: SocketAddr,
        metrics: Arc<MasterMetrics>,
        tls: Option<Tls>,
    ) -> Result<Arc<Node>> {
        config.validate()?;
        let began = Instant::now();
        let opened = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || master::open_store(&config)).await??
        };
        let store = Arc::new(opened);
        // How long start-up takes, by phase: opening RocksDB replays its log after a crash,
        // and openraft reads its log and re-applies committed entries.
        let opened_ms = began.elapsed().as_millis();
        let id = config.node_id;
        let addr = config
            .advertise
            .clone()
            .unwrap_or_else(|| local_addr.to_string());
        // One thread: an entry's way through openraft is a chain of small tasks, and handing
        // each to another thread costs more than running it (measured: 1000 mkdirs on three
        // masters took half as long with one thread as with two).
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("dfs-raft")
            .enable_all()
            .build()?;
        let raft_config = config
            .raft_config()
            .validate()
            .map_err(|e| Error::Config(e.to_string()))?;
        let adopted = {
            let (store, addr) = (Arc::clone(&store), addr.clone());
            tokio::task::spawn_blocking(move || adopt_existing_metadata(&store, id, &addr))
                .await??
        };
        if adopted && !config.initial_peers()?.is_empty() {
            tracing::warn!(
                "this data directory holds metadata from before the group: it forms a group of \
                 this master alone; add the others with `dfs masters add`"
            );
        }
        let contacts = Contacts::default();
        let raft = {
            let (log, machine) = (
                LogStore::new(Arc::clone(&store)),
                StateMachine::new(Arc::clone(&store)),
            );
            let network = Network::new(contacts.clone(), tls.clone());
            let start = Raft::new(id, Arc::new(raft_config), network, log, machine);
            runtime
                .spawn(start)
                .await?
                .map_err(|e| Error::Raft(e.to_string()))?
        };
        if !config.join && !raft.is_initialized().await.map_err(raft_error)? {
            let mut members: BTreeMap<NodeId, BasicNode> = config
                .initial_peers()?
                .into_iter()
                .map(|(id, addr)| (id, BasicNode::new(addr)))
                .collect();
            if members.is_empty() {
                members.insert(id, BasicNode::new(&addr));
            }
            tracing::info!(node_id = id, members = ?members.keys().collect::<Vec<_>>(), "forming the group of masters");
            match raft.initialize(members).await {
                Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(err) => return Err(Error::Raft(err.to_string())),
            }
        }
        let node = Arc::new(Node {
            id,
            raft,
            store,
            config: config.clone(),
            raft_handle: runtime.handle().clone(),
            runtime: Mutex::new(Some(runtime)),
            main_handle: Handle::current(),
            leadership: Mutex::new(Leadership::Following),
            confirmed_at: AtomicU64::new(0),
            epoch: Instant::now(),
            uncertain: Arc::new(AtomicBool::new(false)),
            transferring: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            sync_task: Mutex::new(None),
            contacts,
            metrics,
            tls,
        });
        node.raft_handle.spawn(Arc::clone(&node).watch_leadership());
        node.raft_handle
            .spawn(Arc::clone(&node).confirm_leadership_loop());
        let sync_task = node.main_handle.spawn(Arc::clone(&node).log_sync_loop());
        *node.sync_task.lock().unwrap_or_else(|p| p.into_inner()) = Some(sync_task);
        let started_ms = began.elapsed().as_millis();
        tracing::info!(node_id = id, %addr, opened_ms, started_ms, "master joined its group");
        Ok(node)
    }

    /// This member's node id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The openraft handle (for the `Raft` service).
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// This member's store: its applied state, whoever leads.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The metadata logic if this member leads and serves, without any of the checks of
    /// [`Node::leader`] (and without their side effects): for reporting, never for serving.
    pub fn serving(&self) -> Option<Arc<Master>> {
        match &*self.lock_leadership() {
            Leadership::Leading { master, .. } => Some(Arc::clone(master)),
            _ => None,
        }
    }

    /// Whether this member is the only voter of its group (a group of one, which elects
    /// itself at once). Waits briefly for openraft to load the membership.
    pub async fn alone(&self) -> bool {
        let loaded = self
            .raft
            .wait(Some(Duration::from_secs(5)))
            .metrics(
                |m| m.membership_config.voter_ids().next().is_some(),
                "membership",
            )
            .await;
        loaded.is_ok_and(|m| m.membership_config.voter_ids().eq([self.id]))
    }

    /// Waits until this member leads and serves (a group of one at start-up), at most
    /// `timeout`.
    pub async fn wait_leading(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if matches!(&*self.lock_leadership(), Leadership::Leading { .. }) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Err(Error::Raft(format!(
            "not leading its group after {timeout:?}"
        )))
    }

    /// The metadata logic, if this member leads and is ready to serve a mutation; otherwise
    /// the refusal to send, naming the leader if one is known.
    pub fn leader(&self) -> Result<Arc<Master>> {
        // A load first: the swap, a write, is only needed in the rare case.
        if self.uncertain.load(Ordering::Acquire) && self.uncertain.swap(false, Ordering::AcqRel) {
            tracing::warn!(
                "a proposal's outcome is unknown: rebuilding the leadership from the store"
            );
            self.step_down();
            return Err(self.not_leader());
        }
        if self.transferring.load(Ordering::Acquire) {
            // Any entry sent now would renew the followers' lease on this leader.
            return Err(self.not_leader());
        }
        match &*self.lock_leadership() {
            Leadership::Leading { master, .. } => Ok(Arc::clone(master)),
            _ => Err(self.not_leader()),
        }
    }

    /// The certificates of mutual TLS with the other members (`None`: plaintext).
    pub fn tls(&self) -> Option<&Tls> {
        self.tls.as_ref()
    }

    /// The metadata logic for a read: as [`Node::leader`], and only while the leadership is
    /// confirmed (see the module documentation); otherwise it is confirmed first.
    pub fn leader_for_read(&self) -> Result<Arc<Master>> {
        let master = self.leader()?;
        if self.lease_valid() {
            return Ok(master);
        }
        let raft = self.raft.clone();
        let confirmed = self.block_on_raft(self.proposal_timeout(), async move {
            raft.ensure_linearizable().await.is_ok()
        });
        match confirmed {
            Some(true) => Ok(master),
            _ => Err(self.not_leader()),
        }
    }

    /// The refusal of a member that does not lead (or cannot serve as leader right now).
    pub(super) fn not_leader(&self) -> Error {
        let metrics = self.raft.metrics().borrow().clone();
        let leader = metrics
            .current_leader
            .filter(|leader| *leader != self.id)
            .and_then(|leader| {
                metrics
                    .membership_config
                    .nodes()
                    .find(|(id, _)| **id == leader)
                    .map(|(_, node)| node.addr.clone())
            });
        Error::NotLeader(leader)
    }

    /// Whether a majority confirmed this member's leadership recently enough that no other
    /// member can have been elected since: within half the election timeout.
    fn lease_valid(&self) -> bool {
        let confirmed = self.confirmed_at.load(Ordering::Acquire);
        if confirmed == 0 {
            return false;
        }
        let lease = Duration::from_millis(self.config.election_timeout_ms / 2);
        let since = self.elapsed_nanos().saturating_sub(confirmed);
        Duration::from_nanos(since) < lease
    }

    fn elapsed_nanos(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// How long a proposal or a leadership check may wait for a majority: two full election
    /// timeouts, time enough for an election to settle who leads.
    fn proposal_timeout(&self) -> Duration {
        Duration::from_millis(self.config.election_timeout_ms * 4)
    }

    /// Runs `future` on openraft's runtime and waits for it on this thread, at most `timeout`.
    fn block_on_raft<T: Send + 'static>(
        &self,
        timeout: Duration,
        future: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.raft_handle.spawn(async move {
            let _ = tx.send(future.await);
        });
        rx.recv_timeout(timeout).ok()
    }

    fn lock_leadership(&self) -> std::sync::MutexGuard<'_, Leadership> {
        self.leadership.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Follows openraft's view of who leads, starting and stopping this member's leadership.
    ///
    /// Watches openraft's server metrics, which change with the role, the vote and the
    /// membership only, not with every entry.
    async fn watch_leadership(self: Arc<Node>) {
        let mut metrics = self.raft.server_metrics();
        // Also looks again now and then without a change: a leadership that could not take
        // office (or gave it up after a proposal of unknown outcome) tries again while openraft
        // still says this member leads.
        let every = Duration::from_millis((self.config.election_timeout_ms / 5).max(10));
        // The last leader seen, for counting changes of leader; a spell without one is not a
        // change, a different leader after it is.
        let mut last_leader = None;
        loop {
            let (state, leader, term) = {
                let m = metrics.borrow_and_update();
                (m.state, m.current_leader, m.vote.leader_id().term)
            };
            if leader.is_some() && leader != last_leader {
                last_leader = leader;
                self.metrics.record_leader_change();
            }
            self.follow(state, leader, term);
            let changed = tokio::time::timeout(every, metrics.changed()).await;
            if matches!(changed, Ok(Err(_))) || self.stopping.load(Ordering::Acquire) {
                return;
            }
        }
    }

    /// Starts leading if openraft says this member leads (`state`, `leader`) in a `term` it
    /// does not serve yet; stops if it does not lead.
    fn follow(self: &Arc<Node>, state: ServerState, leader: Option<NodeId>, term: u64) {
        let leads = state == ServerState::Leader && leader == Some(self.id);
        let mut leadership = self.lock_leadership();
        match (&*leadership, leads) {
            (Leadership::Following, true) => {}
            (Leadership::Starting { term: t } | Leadership::Leading { term: t, .. }, true)
                if *t == term =>
            {
                return;
            }
            (Leadership::Following, false) => return,
            _ => {}
        }
        let previous = std::mem::replace(&mut *leadership, Leadership::Following);
        self.confirmed_at.store(0, Ordering::Release);
        if let Leadership::Leading { background, .. } = previous {
            tracing::info!(
                node_id = self.id,
                "no longer the leader: metadata service stopped"
            );
            self.main_handle.spawn(background.stop());
        }
        if leads && !self.stopping.load(Ordering::Acquire) {
            *leadership = Leadership::Starting { term };
            let node = Arc::clone(self);
            std::thread::Builder::new()
                .name("dfs-lead".into())
                .spawn(move || node.take_office(term))
                .expect("spawn a thread");
        }
    }

    /// Gives up the current leadership's metadata logic (it is rebuilt if this member still
    /// leads).
    fn step_down(&self) {
        let previous = std::mem::replace(&mut *self.lock_leadership(), Leadership::Following);
        self.confirmed_at.store(0, Ordering::Release);
        if let Leadership::Leading { background, .. } = previous {
            self.main_handle.spawn(background.stop());
        }
        // The watcher takes office again within a heartbeat interval if this member still
        // leads.
    }

    /// Builds the metadata logic of a new leadership in `term` (on a thread of its own: it
    /// proposes and waits for commands).
    fn take_office(self: Arc<Node>, term: u64) {
        let raft = self.raft.clone();
        let ready = self.block_on_raft(self.proposal_timeout(), async move {
            raft.ensure_linearizable().await
        });
        let outcome = match ready {
            Some(Ok(_)) => {
                let proposer = Arc::new(Proposer {
                    raft: self.raft.clone(),
                    handle: self.raft_handle.clone(),
                    timeout: self.proposal_timeout(),
                    uncertain: Arc::clone(&self.uncertain),
                });
                let writer = Writer::with_commit(Arc::clone(&self.store), proposer);
                let metrics = Arc::clone(&self.metrics);
                Master::lead(&self.config, writer, time::now(), metrics).map(Arc::new)
            }
            Some(Err(err)) => Err(Error::Raft(err.to_string())),
            None => Err(Error::Raft("leadership not confirmed in time".into())),
        };
        let mut leadership = self.lock_leadership();
        if !matches!(&*leadership, Leadership::Starting { term: t } if *t == term) {
            return; // Lost the leadership meanwhile; nothing was started.
        }
        match outcome {
            Ok(master) => {
                let _runtime = self.main_handle.enter();
                let background = Background::start(&master, self.config.replication_interval());
                tracing::info!(
                    node_id = self.id,
                    term,
                    "leading the group: metadata service started"
                );
                *leadership = Leadership::Leading {
                    term,
                    master,
                    background,
                };
            }
            Err(err) => {
                tracing::warn!(node_id = self.id, term, error = %err, "could not take office");
                *leadership = Leadership::Following;
                drop(leadership);
                self.step_down();
            }
        }
    }

    /// Renews the read lease while this member leads: one round of heartbeats per heartbeat
    /// interval, timed from before it is sent.
    async fn confirm_leadership_loop(self: Arc<Node>) {
        let every = Duration::from_millis((self.config.election_timeout_ms / 5).max(10));
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !self.stopping.load(Ordering::Acquire) {
            ticker.tick().await;
            let leading = matches!(&*self.lock_leadership(), Leadership::Leading { .. });
            if !leading || self.transferring.load(Ordering::Acquire) {
                continue;
            }
            let started = self.elapsed_nanos();
            let confirm = tokio::time::timeout(every * 4, self.raft.ensure_linearizable());
            if let Ok(Ok(_)) = confirm.await {
                self.confirmed_at.fetch_max(started, Ordering::AcqRel);
            }
        }
    }

    /// Syncs this member's log when a deferred entry waits for it (every member: followers
    /// hold deferred entries too), until shutdown.
    async fn log_sync_loop(self: Arc<Node>) {
        let every = self.config.metadata_sync_interval();
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let stopping = self.stopping.load(Ordering::Acquire);
            if self.store.has_unsynced_writes() {
                let store = Arc::clone(&self.store);
                match tokio::task::spawn_blocking(move || store.sync_wal()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) => tracing::warn!(error = %err, "log sync failed"),
                    Err(err) => tracing::warn!(error = %err, "log sync panicked"),
                }
            }
            if stopping {
                return;
            }
        }
    }

    /// Stops leading and shuts openraft down (at the end of [`crate::run`]).
    pub async fn shutdown(&self) {
        self.stopping.store(true, Ordering::Release);
        let previous = std::mem::replace(&mut *self.lock_leadership(), Leadership::Following);
        if let Leadership::Leading { background, .. } = previous {
            background.stop().await;
        }
        let raft = self.raft.clone();
        let _ = self
            .raft_handle
            .spawn(async move { raft.shutdown().await })
            .await;
        let sync_task = self
            .sync_task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(task) = sync_task {
            let _ = task.await; // It syncs once more on its way out.
        }
        // Waits for openraft's tasks to be dropped: they hold the store, which must be closed
        // when `run` returns (a restart in the same process opens it again).
        let runtime = self
            .runtime
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(runtime) = runtime {
            let _ = tokio::task::spawn_blocking(move || {
                runtime.shutdown_timeout(Duration::from_secs(10));
            })
            .await;
        }
    }
}

/// Makes metadata that no group has served yet (a master that ran alone before groups
/// existed, or a restored backup) the state of a new group of this master alone, as of a log
/// entry that is already compacted away: a member added later receives it as a snapshot, never
/// an empty log to replay. Answers whether it did.
fn adopt_existing_metadata(store: &Store, id: NodeId, addr: &str) -> Result<bool> {
    let has_metadata = store.inode(dfs_proto::ROOT_INO)?.is_some();
    let has_group = store
        .raw(crate::store::CF_META, crate::store::meta::RAFT_APPLIED)?
        .is_some()
        || store.raw_last(crate::store::CF_RAFT_LOG)?.is_some()
        || store
            .raw(crate::store::CF_RAFT_STATE, crate::raft::log_store::VOTE)?
            .is_some();
    if !has_metadata || has_group {
        return Ok(false);
    }
    let origin = openraft::LogId::new(openraft::CommittedLeaderId::new(0, id), 0);
    let membership = openraft::Membership::new(
        vec![BTreeSet::from([id])],
        BTreeMap::from([(id, BasicNode::new(addr))]),
    );
    let stored = openraft::StoredMembership::new(Some(origin), membership);
    store.set_group_origin(&origin, &stored)?;
    tracing::info!(
        node_id = id,
        "adopted the metadata in the data directory as a new group"
    );
    Ok(true)
}

fn raft_error(err: impl std::fmt::Display) -> Error {
    Error::Raft(err.to_string())
}

/// Commits a leader's commands through the group (see the module documentation).
struct Proposer {
    raft: Raft,
    handle: Handle,
    timeout: Duration,
    uncertain: Arc<AtomicBool>,
}

impl Commit for Proposer {
    fn commit(&self, command: Command) -> Result<()> {
        let raft = self.raft.clone();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(raft.client_write(command).await);
        });
        match rx.recv_timeout(self.timeout) {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => {
                // The entry may still be committed by the new leader: this leadership's view
                // of the store is not to be trusted any more.
                self.uncertain.store(true, Ordering::Release);
                Err(Error::NotLeader(forward.leader_node.map(|node| node.addr)))
            }
            Ok(Err(err)) => {
                self.uncertain.store(true, Ordering::Release);
                Err(Error::Raft(err.to_string()))
            }
            Err(_) => {
                self.uncertain.store(true, Ordering::Release);
                Err(Error::NoQuorum(self.timeout))
            }
        }
    }

    /// A synced empty command: each member syncs its log before acknowledging it, which
    /// covers every entry before it, so once a majority has it, so do their disks.
    fn sync(&self) -> Result<()> {
        self.commit(Command::sync_marker())
    }
}
