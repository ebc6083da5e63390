//! The master's logic in one handle: opens the store, settles the cluster's chunk layout, and
//! ties the namespace, the chunk map, the registry and placement together for the few
//! operations that need more than one of them. The services ([`crate::service`]) and the
//! background loops ([`crate::background`]) call only this; tests drive it directly, without
//! a network. Where an operation spans several managers, the handle answers in the contract's
//! messages, built in [`crate::convert`], so tests see what clients see.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dfs_proto::chunk::ChunkLayout;
use dfs_proto::pb::{self, Timestamp};
use dfs_proto::token::{self, TokenSigner};
use dfs_proto::{FsError, MAX_NAME_LEN};

use crate::chunks::leases::Leases;
use crate::chunks::placement::{self, PlacementPolicy};
use crate::chunks::replicas::{BadReplicaOutcome, ReplicaChanges};
use crate::chunks::{Chunk, ChunkMap};
use crate::cluster::registry::Registry;
use crate::cluster::replication::{Replication, ReplicationLimits};
use crate::config::Config;
use crate::convert;
use crate::error::{Error, Result};
use crate::locks::LockTable;
use crate::metrics::MasterMetrics;
use crate::namespace::Namespace;
use crate::store::txn::Writer;
use crate::store::{CF_META, Store, meta};

/// Name of the RocksDB directory inside the data directory.
const DB_DIR: &str = "metadata";

/// Cluster-wide settings a client or a chunkserver needs before it does any I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterSettings {
    /// Bytes per chunk.
    pub chunk_size: u64,
    /// Bytes per checksum block.
    pub block_size: u32,
    /// Replicas each chunk aims for.
    pub replication: u32,
}

/// Filesystem statistics, as `statfs` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsStats {
    /// Capacity summed over live chunkservers.
    pub total_bytes: u64,
    /// Free bytes summed over live chunkservers.
    pub free_bytes: u64,
    /// Inodes in the namespace.
    pub files: u64,
    /// The checksum block size, the natural I/O size.
    pub block_size: u32,
    /// Longest name of a directory entry.
    pub max_name_len: u32,
    /// Live chunkservers.
    pub live_servers: u32,
}

/// One master's state: namespace, chunk map and chunkserver registry over one RocksDB.
pub struct Master {
    namespace: Namespace,
    chunk_map: ChunkMap,
    registry: Registry,
    leases: Leases,
    locks: LockTable,
    replication: Replication,
    layout: ChunkLayout,
    policy: PlacementPolicy,
    replicas: ReplicaChanges,
    tokens: TokenSigner,
}

impl Master {
    /// Opens (or creates) the master's database in `config.data_dir` and serves it alone,
    /// applying mutations straight to it: the metadata logic without a group (its tests).
    pub fn open(config: &Config, now: Timestamp) -> Result<Master> {
        config.validate()?;
        let store = Arc::new(open_store(config)?);
        let metrics = Arc::new(MasterMetrics::unregistered());
        Master::lead(config, Writer::new(store), now, metrics)
    }

    /// The metadata logic of a leader over `writer`'s store, whose commits go to the group.
    /// A new cluster gets the configured chunk layout and a root directory stamped `now`; an
    /// existing one keeps the layout it was created with. Leases and lock sessions found in
    /// the store are honoured for a full time-to-live from now, as after a restart. The data
    /// chunkservers report moving is counted in `metrics`.
    pub fn lead(
        config: &Config,
        writer: Writer,
        now: Timestamp,
        metrics: Arc<MasterMetrics>,
    ) -> Result<Master> {
        writer.skip_reserved_ids()?;
        let layout = settle_layout(&writer, config.layout())?;
        let tokens = TokenSigner::new(
            &settle_token_secret(&writer)?,
            config.chunk_token_lifetime(),
        );
        let namespace = Namespace::new(writer.clone(), layout);
        namespace.bootstrap(now)?;
        let chunk_map = ChunkMap::new(writer.clone(), layout);
        let replicas = ReplicaChanges::new(writer.clone(), config.effective_min_replication());
        // Liveness and lease expiry are measured on the monotonic clock of this process, from
        // now on.
        let started = Instant::now();
        let leases = Leases::open(writer.clone(), config.lease_ttl(), started)?;
        let registry =
            Registry::open(writer.clone(), config.registry_timeouts(), started, metrics)?;
        // Lock sessions live as long as leases: both mean "this mount is alive".
        let locks = LockTable::open(writer.clone(), config.lease_ttl(), started)?;
        let policy = PlacementPolicy {
            replication: config.replication as usize,
            min_replication: config.effective_min_replication(),
            chunk_size: layout.chunk_size,
        };
        let limits = ReplicationLimits {
            max_copies_per_server: config.max_copies_per_server as usize,
            // Generous: a copy of a whole chunk between two busy servers.
            copy_timeout: config.registry_timeouts().dead.max(Duration::from_secs(60)),
            balance_spread: (config.balance_spread_percent > 0)
                .then(|| f64::from(config.balance_spread_percent) / 100.0),
            // A heartbeat older than this marks its server stale anyway.
            report_grace: config.heartbeat_timeout(),
            scan_chunks: usize::try_from(config.replication_scan_chunks).unwrap_or(usize::MAX),
        };
        let replication = Replication::new(writer, policy, limits);
        Ok(Master {
            namespace,
            chunk_map,
            registry,
            leases,
            locks,
            replication,
            layout,
            policy,
            replicas,
            tokens,
        })
    }

    /// The single writer every mutation goes through.
    pub fn writer(&self) -> &Writer {
        &self.namespace.writer
    }

    /// The namespace (lookups, attributes, directory operations).
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// The chunk map (allocation and write commits of file chunks).
    pub fn chunk_map(&self) -> &ChunkMap {
        &self.chunk_map
    }

    /// The chunkserver registry (registration, heartbeats, liveness).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The writer leases.
    pub fn leases(&self) -> &Leases {
        &self.leases
    }

    /// The advisory locks.
    pub fn locks(&self) -> &LockTable {
        &self.locks
    }

    /// Re-replication planning.
    pub fn replication(&self) -> &Replication {
        &self.replication
    }

    /// Takes a chunkserver heartbeat: load, liveness and deletions through the registry;
    /// replicas a full report lacks, completed and failed copies and corrupt replicas through
    /// re-replication; and hands the server the copies planned for it.
    pub fn heartbeat(
        &self,
        req: &pb::HeartbeatRequest,
        now: Instant,
    ) -> Result<pb::HeartbeatReply> {
        // Before the registry hands out deletions: a finished copy holds its version.
        for copy in &req.replicated {
            self.registry.witness().confirm(copy.chunk_id, copy.version);
        }
        let answer = self.registry.heartbeat(req, now)?;
        if answer.reregister {
            return Ok(convert::heartbeat_reply(answer, Vec::new()));
        }
        if req.full_report {
            // Before adding finished copies: the report was listed before they were taken.
            self.replication
                .reconcile(req.server_id, &req.chunks, now)?;
        }
        self.replication.failed(req.server_id, &req.failed_copies);
        self.replication
            .replicated(req.server_id, &req.replicated)?;
        self.replication
            .corrupt(req.server_id, &req.corrupt_chunks)?;
        let commands = self.replication.take_commands(req.server_id);
        let mut reply = convert::heartbeat_reply(answer, commands);
        let now_ms = dfs_proto::token::unix_ms_now();
        for copy in &mut reply.replicate {
            copy.token = Some(
                self.tokens
                    .issue(copy.chunk_id, copy.version, token::READ, now_ms),
            );
        }
        reply.token_keys = self.token_keys();
        Ok(reply)
    }

    /// Replaces the tokens of `chunks` with tokens that allow reading only, for a client
    /// whose certificate is read-only.
    pub fn read_only_tokens(&self, chunks: &mut [pb::ChunkInfo]) {
        let now_ms = dfs_proto::token::unix_ms_now();
        for chunk in chunks {
            if let Some(held) = &chunk.token {
                let token = self
                    .tokens
                    .issue(held.chunk_id, held.version, token::READ, now_ms);
                chunk.token = Some(token);
            }
        }
    }

    /// The keys chunkservers check chunk tokens with, as of now.
    pub fn token_keys(&self) -> Vec<pb::TokenKey> {
        self.tokens.keys(dfs_proto::token::unix_ms_now())
    }

    /// One replication check over the whole chunk map (see [`crate::cluster::replication`]).
    pub fn check_replication(&self, now: Instant, seed: u64) -> Result<()> {
        let servers = self.registry.snapshot(now);
        self.replication.check(&servers, now, seed)?;
        Ok(())
    }

    /// Writes a consistent copy of the metadata to `dest` on this machine (see
    /// [`Store::checkpoint`]); every mutation acknowledged before the call is in it. Answers
    /// the bytes written.
    pub fn backup(&self, dest: &Path) -> Result<u64> {
        if dest.exists() {
            return Err(Error::Config(format!(
                "backup destination {} exists already",
                dest.display()
            )));
        }
        self.namespace.writer.store().checkpoint(dest)
    }

    /// Makes every mutation acknowledged so far durable (see
    /// [`SyncPolicy::Deferred`](crate::store::SyncPolicy)): in a group, on a majority.
    pub fn sync_metadata(&self) -> Result<()> {
        self.namespace.writer.sync()
    }

    /// Whether an acknowledged mutation has not reached the disk yet.
    pub fn has_unsynced_metadata(&self) -> bool {
        self.namespace.writer.store().has_unsynced_writes()
    }

    /// The cluster's chunk layout.
    pub fn layout(&self) -> ChunkLayout {
        self.layout
    }

    /// What a client or a chunkserver needs to know before doing I/O.
    pub fn cluster_config(&self) -> ClusterSettings {
        ClusterSettings {
            chunk_size: self.layout.chunk_size,
            block_size: self.layout.block_size as u32,
            replication: self.policy.replication as u32,
        }
    }

    /// Filesystem statistics: capacity of the live chunkservers and the inode count.
    pub fn statfs(&self, now: Instant) -> Result<FsStats> {
        let capacity = self.registry.capacity(now);
        Ok(FsStats {
            total_bytes: capacity.total_bytes,
            free_bytes: capacity.free_bytes,
            files: self.namespace.inode_count()?,
            block_size: self.layout.block_size as u32,
            max_name_len: MAX_NAME_LEN as u32,
            live_servers: capacity.live_servers,
        })
    }

    /// The allocated chunks of file `ino` in `[first, first + count)` (`count` 0 = all) with
    /// their replica addresses, live servers first.
    pub fn get_chunks(
        &self,
        ino: u64,
        first: u64,
        count: u64,
        now: Instant,
    ) -> Result<pb::GetChunksReply> {
        let file = self.chunk_map.chunks(ino, first, count)?;
        let chunks = file
            .chunks
            .iter()
            .map(|(index, chunk)| self.chunk_info(*index, chunk, now))
            .collect();
        Ok(convert::chunk_map(chunks, file.file_size))
    }

    /// The chunk at `index` of file `ino`, allocated on servers chosen by placement (with
    /// `seed`) if it does not exist yet.
    pub fn allocate_chunk(
        &self,
        ino: u64,
        index: u64,
        now: Instant,
        seed: u64,
    ) -> Result<pb::ChunkInfo> {
        if let Some(chunk) = self.chunk_map.chunk(ino, index)? {
            return Ok(self.chunk_info(index, &chunk, now));
        }
        // Placement is decided before the allocation is applied, so applying it stays a
        // deterministic step. If another writer allocates the chunk in between, the
        // allocation returns theirs and this choice is discarded.
        let candidates = self.registry.candidates(now);
        let replicas = match placement::choose_replicas(&candidates, &self.policy, seed) {
            Ok(replicas) => replicas,
            Err(_) if self.registry.awaiting_reports(now) => {
                return Err(Error::Fs(FsError::Unavailable(
                    "chunkservers have not reported since the master started; retry".into(),
                )));
            }
            Err(err) => {
                tracing::warn!(
                    live = candidates.len(),
                    ino,
                    index,
                    "no room for a new chunk"
                );
                return Err(err.into());
            }
        };
        let chunk = self.chunk_map.allocate_chunk(ino, index, replicas)?;
        Ok(self.chunk_info(index, &chunk, now))
    }

    /// The chunk at `index` of file `ino` for a write by `holder`, who must hold the file's
    /// lease: allocated (placed with `seed`) if missing, otherwise moved up to
    /// `min_version` (see [`ChunkMap::raise_version`]).
    pub fn lease_chunk(
        &self,
        req: &pb::LeaseChunkRequest,
        now: Instant,
        seed: u64,
    ) -> Result<pb::ChunkInfo> {
        let (ino, index) = (req.ino, req.index);
        self.leases.generation(ino, &req.holder)?;
        if req.placed_chunk_id != 0 {
            // A chunk placed at create (see `crate::chunks`), recorded now so that its chain
            // can be replaced after a failed write.
            self.chunk_map
                .record_placed(ino, index, req.placed_chunk_id, &req.placed_servers)?;
        }
        if let Some(chunk) = self.chunk_map.raise_version(ino, index, req.min_version)? {
            if req.min_version > 0 {
                // The holder stamped `min_version` on at least one replica before asking.
                self.registry
                    .witness()
                    .confirm(chunk.chunk_id, req.min_version);
            }
            return Ok(self.chunk_info(index, &chunk, now));
        }
        let candidates = self.registry.candidates(now);
        let replicas = placement::choose_replicas(&candidates, &self.policy, seed)
            .map_err(|err| self.placement_error(err, now))?;
        let chunk = self.chunk_map.allocate_chunk(ino, index, replicas)?;
        Ok(self.chunk_info(index, &chunk, now))
    }

    /// Servers for a new chunk as placement (with `seed`) chooses them at `now`, or `None`
    /// when it finds no room (an allocation later reports why).
    pub(crate) fn place_chunk(&self, now: Instant, seed: u64) -> Option<Vec<u64>> {
        let candidates = self.registry.candidates(now);
        placement::choose_replicas(&candidates, &self.policy, seed).ok()
    }

    /// Why placement found no servers: still waiting for block reports after a restart (retry
    /// soon) or really no room.
    fn placement_error(&self, err: FsError, now: Instant) -> Error {
        if self.registry.awaiting_reports(now) {
            return Error::Fs(FsError::Unavailable(
                "chunkservers have not reported since the master started; retry".into(),
            ));
        }
        err.into()
    }

    /// Records a write's new chunk lengths and file size (refused with `ESTALE` if
    /// `lease_holder` is set and does not hold the file's lease), stamped `now`; `clock` is
    /// when, for block reports in flight. A committed chunk version is held by the replicas
    /// the write reached.
    pub fn commit_write(
        &self,
        req: &pb::CommitWriteRequest,
        now: Timestamp,
        clock: Instant,
    ) -> Result<pb::Attr> {
        if !req.lease_holder.is_empty() {
            self.leases.generation(req.ino, &req.lease_holder)?;
        }
        let attr = self.chunk_map.commit_write(
            req.ino,
            &req.chunks,
            req.size,
            req.mtime,
            req.attrs.as_ref(),
            now,
        )?;
        for chunk in &req.chunks {
            self.registry
                .witness()
                .confirm(chunk.chunk_id, chunk.version);
        }
        self.replication
            .committed(req.chunks.iter().map(|c| c.chunk_id), clock);
        Ok(attr)
    }

    /// Drops the servers a chain write failed at from a chunk and bumps its version (see
    /// [`ReplicaChanges::replace_replicas`]); the answer is the chain to rewrite on. Refused
    /// (`ESTALE`) to a writer that lost the file's lease (see [`Leases::check_writer`]). The
    /// old-version replicas stay until the rewrite is confirmed (see [`crate::cluster::witness`]).
    pub fn replace_replicas(
        &self,
        req: &pb::ReplaceReplicasRequest,
        now: Instant,
    ) -> Result<pb::ChunkInfo> {
        self.leases.check_writer(req.ino, &req.holder, now)?;
        let chunk = self.replicas.replace_replicas(req)?;
        Ok(self.chunk_info(req.index, &chunk, now))
    }

    /// Drops a replica a reader found corrupt or stale (see
    /// [`ReplicaChanges::report_bad_replica`]).
    pub fn report_bad_replica(
        &self,
        req: &pb::ReportBadReplicaRequest,
    ) -> Result<BadReplicaOutcome> {
        self.replicas.report_bad_replica(req)
    }

    /// A chunk as clients see it, with its replica addresses resolved and a token for them.
    /// The token reaches one version above any handed out: the version a new lease holder
    /// stamps on the replicas before the master records it (see `DataPath::take_chunk`).
    pub(crate) fn chunk_info(&self, index: u64, chunk: &Chunk, now: Instant) -> pb::ChunkInfo {
        let replicas = self.registry.locations(&chunk.replicas, now);
        let mut info = convert::chunk_info(index, chunk, replicas);
        let version = chunk.version.max(chunk.issued_version) + 1;
        let access = token::READ | token::WRITE;
        let token = self.tokens.issue(
            chunk.chunk_id,
            version,
            access,
            dfs_proto::token::unix_ms_now(),
        );
        info.token = Some(token);
        info
    }
}

/// The cluster's chunk-token secret: the persisted one, or (the first time a leader takes
/// office) a fresh random one, which the group replicates like any mutation.
fn settle_token_secret(writer: &Writer) -> Result<Vec<u8>> {
    let mut txn = writer.begin();
    if let Some(secret) = txn.store().raw(CF_META, meta::TOKEN_SECRET)? {
        return Ok(secret);
    }
    let secret = dfs_proto::token::new_secret();
    txn.put_meta_raw(meta::TOKEN_SECRET, &secret);
    txn.commit()?;
    Ok(secret.to_vec())
}

/// The chunk layout of the cluster: the persisted one if the cluster exists (a differing
/// configuration is logged and ignored, since existing files are laid out in the old one),
/// otherwise `configured`, which is persisted.
fn settle_layout(writer: &Writer, configured: ChunkLayout) -> Result<ChunkLayout> {
    let mut txn = writer.begin();
    let persisted = (
        txn.counter(meta::CHUNK_SIZE)?,
        txn.counter(meta::BLOCK_SIZE)?,
    );
    let layout = match persisted {
        (0, 0) => {
            txn.set_counter(meta::CHUNK_SIZE, configured.chunk_size);
            txn.set_counter(meta::BLOCK_SIZE, configured.block_size);
            configured
        }
        (chunk_size, block_size)
            if chunk_size > 0 && block_size > 0 && chunk_size % block_size == 0 =>
        {
            ChunkLayout::new(chunk_size, block_size)
        }
        (chunk_size, block_size) => {
            let detail = format!("chunk size {chunk_size}, block size {block_size}");
            return Err(Error::Corrupt {
                cf: crate::store::CF_META,
                detail,
            });
        }
    };
    if layout != configured {
        tracing::warn!(
            chunk_size = layout.chunk_size,
            block_size = layout.block_size,
            "the cluster keeps the chunk layout it was created with; configured sizes ignored"
        );
    }
    txn.commit()?;
    Ok(layout)
}

/// Opens (or creates) the metadata database in `config.data_dir`, first restoring
/// `config.restore` into it if set. A restored database keeps the metadata and forgets the
/// Raft log and membership of the group it was taken from: it starts a new group.
pub fn open_store(config: &Config) -> Result<Store> {
    std::fs::create_dir_all(&config.data_dir)?;
    let db_dir = config.data_dir.join(DB_DIR);
    if let Some(backup) = &config.restore {
        restore(backup, &db_dir)?;
    }
    let store = Store::open(&db_dir, config.sync_policy())?;
    if config.restore.is_some() {
        store.forget_group()?;
    }
    Ok(store)
}

/// Copies the backup in `backup` (a checkpoint [`Master::backup`] wrote) to `db_dir`, which
/// must hold no metadata yet: a restore never overwrites a database.
fn restore(backup: &Path, db_dir: &Path) -> Result<()> {
    let occupied = std::fs::read_dir(db_dir).is_ok_and(|mut entries| entries.next().is_some());
    if occupied {
        return Err(Error::Config(format!(
            "cannot restore into {}: it holds metadata already (restore into an empty data directory)",
            db_dir.display()
        )));
    }
    let files = std::fs::read_dir(backup).map_err(|err| {
        Error::Config(format!(
            "cannot read the backup {}: {err}",
            backup.display()
        ))
    })?;
    std::fs::create_dir_all(db_dir)?;
    for entry in files {
        let entry = entry?;
        std::fs::copy(entry.path(), db_dir.join(entry.file_name()))?;
    }
    tracing::info!(backup = %backup.display(), "metadata restored from a backup");
    Ok(())
}
