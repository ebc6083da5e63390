//! Configuration of the master: command-line options (each with a `DFS_*` environment
//! variable), also constructible directly by tests through [`Config::new`].

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use dfs_proto::chunk::ChunkLayout;
use dfs_proto::http::HttpConfig;
use dfs_proto::{DEFAULT_BLOCK_SIZE, DEFAULT_CHUNK_SIZE};

use crate::error::{Error, Result};
use crate::store::SyncPolicy;

/// Default listen address of the master's gRPC service.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9400";
/// Default number of replicas per chunk.
pub const DEFAULT_REPLICATION: u32 = 3;
/// Default minimum number of replicas for a chunk allocation to succeed.
pub const DEFAULT_MIN_REPLICATION: u32 = 2;
/// Default seconds without a heartbeat after which a chunkserver is considered dead.
pub const DEFAULT_HEARTBEAT_TIMEOUT_SECS: u64 = 15;
/// Default milliseconds a writer lease lives without a renewal.
pub const DEFAULT_LEASE_TTL_MS: u64 = 30_000;
/// Default seconds without a heartbeat after which a chunkserver's replicas are copied
/// elsewhere.
pub const DEFAULT_DEAD_TIMEOUT_SECS: u64 = 120;
/// Default seconds a replica no metadata references survives before it is deleted.
pub const DEFAULT_ORPHAN_GRACE_SECS: u64 = 600;
/// Default milliseconds between replication checks.
pub const DEFAULT_REPLICATION_INTERVAL_MS: u64 = 2000;
/// Default chunk records read per replication check: a few tens of milliseconds of work.
pub const DEFAULT_REPLICATION_SCAN_CHUNKS: u64 = 65_536;
/// Default copies in flight per chunkserver.
pub const DEFAULT_MAX_COPIES_PER_SERVER: u32 = 4;
/// Default bound on how long an acknowledged change of names waits for the WAL sync: a
/// machine crash loses at most this much of it (ext4 commits its journal every 5 s).
pub const DEFAULT_METADATA_SYNC_INTERVAL_MS: u64 = 50;
/// Default lower bound of the election timeout: failover well within three seconds, while a
/// busy machine's pauses of a few hundred milliseconds do not depose a healthy leader.
pub const DEFAULT_ELECTION_TIMEOUT_MS: u64 = 750;
/// Default milliseconds between two samples of the dashboard's history.
pub const DEFAULT_HISTORY_INTERVAL_MS: u64 = 10_000;
/// Default log entries between metadata snapshots.
pub const DEFAULT_SNAPSHOT_ENTRIES: u64 = 20_000;

/// Settings of one master.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address of the gRPC service (`host:port`; port 0 picks a free port, see --addr-file).
    #[arg(long, env = "DFS_MASTER_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: String,

    /// Directory holding the metadata database; created if missing.
    #[arg(long, env = "DFS_MASTER_DATA_DIR")]
    pub data_dir: PathBuf,

    /// Bytes per chunk. Only used when the cluster is created: a cluster keeps the chunk size
    /// it was created with, because existing files are laid out in it.
    #[arg(long, env = "DFS_CHUNK_SIZE", default_value_t = DEFAULT_CHUNK_SIZE)]
    pub chunk_size: u64,

    /// Bytes per checksum block; must divide the chunk size. Fixed at cluster creation like
    /// the chunk size.
    #[arg(long, env = "DFS_BLOCK_SIZE", default_value_t = DEFAULT_BLOCK_SIZE)]
    pub block_size: u32,

    /// Replicas per chunk that new allocations aim for.
    #[arg(long, env = "DFS_REPLICATION", default_value_t = DEFAULT_REPLICATION)]
    pub replication: u32,

    /// Fewest replicas a chunk is written to: an allocation needs this many live chunkservers
    /// with room, and a chain that loses servers during a write keeps at least this many;
    /// with fewer, writes fail with ENOSPC rather than store data with too little redundancy.
    /// Capped at the replication factor.
    #[arg(long, env = "DFS_MIN_REPLICATION", default_value_t = DEFAULT_MIN_REPLICATION)]
    pub min_replication: u32,

    /// Seconds without a heartbeat after which a chunkserver no longer counts as live: it gets
    /// no new replicas and its replicas are offered last to readers.
    #[arg(long, env = "DFS_HEARTBEAT_TIMEOUT", default_value_t = DEFAULT_HEARTBEAT_TIMEOUT_SECS)]
    pub heartbeat_timeout_secs: u64,

    /// Milliseconds a writer lease lives without a renewal. Mounts renew several times per
    /// time-to-live; when a writing mount dies, other mounts can write its files after this.
    #[arg(long, env = "DFS_LEASE_TTL_MS", default_value_t = DEFAULT_LEASE_TTL_MS)]
    pub lease_ttl_ms: u64,
    /// Seconds a chunk token lives (at most 3600): how long a client may use a chunk map
    /// before it asks the master again, and how long a token that leaked stays good.
    #[arg(
        long,
        env = "DFS_CHUNK_TOKEN_LIFETIME_SECS",
        default_value_t = dfs_proto::token::DEFAULT_LIFETIME.as_secs()
    )]
    pub chunk_token_lifetime_secs: u64,
    /// Seconds without a heartbeat after which a chunkserver is dead: its replicas are copied
    /// to other servers (most endangered chunk first) and dropped from it. Never shorter than
    /// the heartbeat timeout.
    #[arg(long, env = "DFS_DEAD_TIMEOUT", default_value_t = DEFAULT_DEAD_TIMEOUT_SECS)]
    pub dead_timeout_secs: u64,

    /// Seconds a replica that no metadata references (reported in a full block report) stays
    /// on its chunkserver before it is deleted. Replicas of deleted or truncated files are
    /// deleted at once; this grace protects replicas whose record is still on its way.
    #[arg(long, env = "DFS_ORPHAN_GRACE", default_value_t = DEFAULT_ORPHAN_GRACE_SECS)]
    pub orphan_grace_secs: u64,

    /// Milliseconds between replication checks (under-replicated chunks get copies planned,
    /// surplus and dead replicas are dropped).
    #[arg(long, env = "DFS_REPLICATION_INTERVAL_MS", default_value_t = DEFAULT_REPLICATION_INTERVAL_MS,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub replication_interval_ms: u64,

    /// Chunk records one replication check reads: a larger chunk map is walked over several
    /// checks, so each check's time and memory stay bounded (at the default interval, about
    /// 30 000 chunks a second).
    #[arg(long, env = "DFS_REPLICATION_SCAN_CHUNKS", default_value_t = DEFAULT_REPLICATION_SCAN_CHUNKS,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub replication_scan_chunks: u64,

    /// Replica copies in flight per chunkserver (as source or target), so that re-replication
    /// does not swamp a server's disk or network.
    #[arg(long, env = "DFS_MAX_COPIES_PER_SERVER", default_value_t = DEFAULT_MAX_COPIES_PER_SERVER,
        value_parser = clap::value_parser!(u32).range(1..))]
    pub max_copies_per_server: u32,

    /// Largest difference in disk usage, in percent of capacity, between the fullest and the
    /// emptiest active chunkserver before replicas are moved from one to the other (e.g. onto
    /// a newly added server). 0 disables balancing.
    #[arg(long, env = "DFS_BALANCE_SPREAD_PERCENT", default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(0..=100))]
    pub balance_spread_percent: u32,

    /// Sync the database's write-ahead log before acknowledging a mutation, so that an
    /// acknowledged create, rename or commit survives a machine crash. Turning it off trades
    /// that for speed (a process crash still loses nothing).
    #[arg(
        long,
        env = "DFS_MASTER_SYNC",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_parser = BoolishValueParser::new(),
    )]
    pub sync_writes: bool,

    /// Longest time, in milliseconds, a change of names (create, mkdir, link, unlink,
    /// rename) or of a file's length stays acknowledged but unsynced: it is in the WAL at
    /// once (a killed master loses nothing), synced to disk within this time, and at once
    /// when a client calls `fsync` on a file or directory, as a local filesystem promises.
    /// 0 syncs every mutation before its reply (each create then waits for the disk).
    #[arg(long, env = "DFS_METADATA_SYNC_INTERVAL_MS", default_value_t = DEFAULT_METADATA_SYNC_INTERVAL_MS)]
    pub metadata_sync_interval_ms: u64,

    /// Once the master serves, write its bound `host:port` to this file (atomically, via a
    /// rename), so scripts and tests that listen on port 0 learn the address.
    #[arg(long, env = "DFS_MASTER_ADDR_FILE")]
    pub addr_file: Option<PathBuf>,

    /// Start from a backup (a directory `dfs backup` wrote): its metadata is copied into the
    /// data directory, which must hold none yet, before the master opens it. For disaster
    /// recovery; chunks created after the backup become garbage on the chunkservers.
    #[arg(long, env = "DFS_MASTER_RESTORE")]
    pub restore: Option<PathBuf>,

    /// This master's number in its group of masters: unique in the group, never reused.
    #[arg(long, env = "DFS_MASTER_NODE_ID", default_value_t = 1)]
    pub node_id: u64,

    /// The members of a new group, `ID=host:port` separated by commas, this master included
    /// (the same list on each). Read only when the group forms, on first start; afterwards
    /// membership changes with `dfs masters add/remove`. Empty: a group of this master alone.
    #[arg(long, env = "DFS_MASTER_PEERS", default_value = "")]
    pub peers: String,

    /// The address the other masters, chunkservers and clients reach this master at
    /// (`host:port`); by default the address it listens on.
    #[arg(long, env = "DFS_MASTER_ADVERTISE")]
    pub advertise: Option<String>,

    /// Start without forming a group, to be added to an existing one with
    /// `dfs masters add` (the data directory must be empty).
    #[arg(long, env = "DFS_MASTER_JOIN")]
    pub join: bool,

    /// Milliseconds without a word from the leader after which a follower calls an election
    /// (the lower bound; each member draws up to twice this). The leader sends heartbeats
    /// every fifth of it. Failover takes about this long plus one election round.
    #[arg(long, env = "DFS_MASTER_ELECTION_TIMEOUT_MS", default_value_t = DEFAULT_ELECTION_TIMEOUT_MS)]
    pub election_timeout_ms: u64,

    /// Log entries between two snapshots of the metadata; older entries are then dropped,
    /// and a member that needs them receives the snapshot instead.
    #[arg(long, env = "DFS_MASTER_SNAPSHOT_ENTRIES", default_value_t = DEFAULT_SNAPSHOT_ENTRIES)]
    pub snapshot_entries: u64,

    /// Milliseconds between two samples of this master's activity (calls, errors, latency,
    /// data moved) for the dashboard's charts; the last hour of samples is kept in memory.
    #[arg(long, env = "DFS_MASTER_HISTORY_INTERVAL_MS", default_value_t = DEFAULT_HISTORY_INTERVAL_MS,
        value_parser = clap::value_parser!(u64).range(10..))]
    pub history_interval_ms: u64,

    /// The HTTP address: metrics, the JSON API and the web dashboard.
    #[command(flatten)]
    pub http: HttpConfig,

    /// The cluster's CA and this master's certificate (role master): with them, every gRPC
    /// connection to and from this master is mutual TLS.
    #[command(flatten)]
    pub tls: dfs_proto::tls::TlsOptions,
}

impl Config {
    /// A configuration with every default, storing metadata in `data_dir` and listening on an
    /// ephemeral loopback port.
    pub fn new(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            listen: "127.0.0.1:0".into(),
            data_dir: data_dir.into(),
            chunk_size: DEFAULT_CHUNK_SIZE,
            block_size: DEFAULT_BLOCK_SIZE,
            replication: DEFAULT_REPLICATION,
            min_replication: DEFAULT_MIN_REPLICATION,
            heartbeat_timeout_secs: DEFAULT_HEARTBEAT_TIMEOUT_SECS,
            lease_ttl_ms: DEFAULT_LEASE_TTL_MS,
            chunk_token_lifetime_secs: dfs_proto::token::DEFAULT_LIFETIME.as_secs(),
            dead_timeout_secs: DEFAULT_DEAD_TIMEOUT_SECS,
            orphan_grace_secs: DEFAULT_ORPHAN_GRACE_SECS,
            replication_interval_ms: DEFAULT_REPLICATION_INTERVAL_MS,
            replication_scan_chunks: DEFAULT_REPLICATION_SCAN_CHUNKS,
            max_copies_per_server: DEFAULT_MAX_COPIES_PER_SERVER,
            balance_spread_percent: 10,
            sync_writes: true,
            metadata_sync_interval_ms: DEFAULT_METADATA_SYNC_INTERVAL_MS,
            addr_file: None,
            restore: None,
            node_id: 1,
            peers: String::new(),
            advertise: None,
            join: false,
            election_timeout_ms: DEFAULT_ELECTION_TIMEOUT_MS,
            snapshot_entries: DEFAULT_SNAPSHOT_ENTRIES,
            history_interval_ms: DEFAULT_HISTORY_INTERVAL_MS,
            http: HttpConfig::default(),
            tls: dfs_proto::tls::TlsOptions::default(),
        }
    }

    /// Checks that the settings make sense together.
    pub fn validate(&self) -> Result<()> {
        let fail = |msg: String| Err(Error::Config(msg));
        if self.block_size == 0 || self.chunk_size == 0 {
            return fail("chunk and block size must be non-zero".into());
        }
        if self.chunk_size % u64::from(self.block_size) != 0 {
            return fail(format!(
                "chunk size {} is not a multiple of block size {}",
                self.chunk_size, self.block_size
            ));
        }
        if self.replication == 0 {
            return fail("replication must be at least 1".into());
        }
        if self.min_replication == 0 {
            return fail("min replication must be at least 1".into());
        }
        if self.heartbeat_timeout_secs == 0 {
            return fail("heartbeat timeout must be at least 1 second".into());
        }
        if self.lease_ttl_ms < 100 {
            return fail("lease time-to-live must be at least 100 ms".into());
        }
        let token_epoch = dfs_proto::token::KEY_EPOCH.as_secs();
        if self.chunk_token_lifetime_secs == 0 || self.chunk_token_lifetime_secs > token_epoch {
            return fail(format!(
                "chunk token lifetime must be 1 to {token_epoch} seconds"
            ));
        }
        if self.node_id == 0 {
            return fail("node id must be at least 1".into());
        }
        if self.election_timeout_ms < 50 {
            return fail("election timeout must be at least 50 ms".into());
        }
        let peers = self.initial_peers()?;
        if !peers.is_empty() && !peers.contains_key(&self.node_id) {
            return fail(format!(
                "--peers does not list this master (node id {})",
                self.node_id
            ));
        }
        Ok(())
    }

    /// The members `--peers` lists, by node id.
    pub fn initial_peers(&self) -> Result<std::collections::BTreeMap<u64, String>> {
        let mut peers = std::collections::BTreeMap::new();
        for item in self
            .peers
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let parsed = item.split_once('=').and_then(|(id, addr)| {
                let id = id.trim().parse::<u64>().ok().filter(|id| *id > 0)?;
                let addr = addr.trim();
                addr.contains(':').then(|| (id, addr.to_owned()))
            });
            let Some((id, addr)) = parsed else {
                return Err(Error::Config(format!(
                    "--peers entry {item:?} is not ID=host:port"
                )));
            };
            if peers.insert(id, addr).is_some() {
                return Err(Error::Config(format!("--peers lists node {id} twice")));
            }
        }
        Ok(peers)
    }

    /// The Raft settings of the group.
    pub fn raft_config(&self) -> openraft::Config {
        openraft::Config {
            cluster_name: "dfs-masters".into(),
            election_timeout_min: self.election_timeout_ms,
            election_timeout_max: self.election_timeout_ms * 2,
            heartbeat_interval: (self.election_timeout_ms / 5).max(10),
            install_snapshot_timeout: 30_000,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_entries.max(1)),
            max_in_snapshot_log_to_keep: 1000.min(self.snapshot_entries),
            snapshot_max_chunk_size: 4 << 20,
            ..openraft::Config::default()
        }
    }

    /// The chunk layout these settings ask for (a cluster may already have another one).
    pub fn layout(&self) -> ChunkLayout {
        ChunkLayout::new(self.chunk_size, u64::from(self.block_size))
    }

    /// The minimum replication in force: the configured one, capped at the replication
    /// factor (a cluster with replication 1 cannot insist on 2 replicas).
    pub fn effective_min_replication(&self) -> usize {
        self.min_replication.min(self.replication) as usize
    }

    /// How long a chunkserver stays live after its last heartbeat.
    pub fn heartbeat_timeout(&self) -> Duration {
        Duration::from_secs(self.heartbeat_timeout_secs)
    }

    /// How long a chunk token lives.
    pub fn chunk_token_lifetime(&self) -> Duration {
        Duration::from_secs(self.chunk_token_lifetime_secs)
    }

    /// How long a writer lease lives without a renewal.
    pub fn lease_ttl(&self) -> Duration {
        Duration::from_millis(self.lease_ttl_ms)
    }

    /// The registry's timeouts and grace period.
    pub fn registry_timeouts(&self) -> crate::cluster::registry::RegistryTimeouts {
        crate::cluster::registry::RegistryTimeouts {
            heartbeat: self.heartbeat_timeout(),
            dead: Duration::from_secs(self.dead_timeout_secs),
            orphan_grace: Duration::from_secs(self.orphan_grace_secs),
        }
    }

    /// When the store syncs its writes.
    pub fn sync_policy(&self) -> SyncPolicy {
        match (self.sync_writes, self.metadata_sync_interval_ms) {
            (false, _) => SyncPolicy::Never,
            (true, 0) => SyncPolicy::Always,
            (true, _) => SyncPolicy::Deferred,
        }
    }

    /// Longest time a deferred mutation waits for the WAL sync.
    pub fn metadata_sync_interval(&self) -> Duration {
        Duration::from_millis(self.metadata_sync_interval_ms.max(1))
    }

    /// Time between two samples of the dashboard's history.
    pub fn history_interval(&self) -> Duration {
        Duration::from_millis(self.history_interval_ms)
    }

    /// Time between replication checks.
    pub fn replication_interval(&self) -> Duration {
        Duration::from_millis(self.replication_interval_ms)
    }
}
