//! Configuration of a chunkserver: command-line options (each with a `DFS_*` environment
//! variable), also constructible directly by tests through [`Config::new`].
//!
//! The chunk and block sizes are not configured here: they belong to the cluster, and the
//! chunkserver asks the master for them (`GetClusterConfig`) before it opens its store.

use std::path::PathBuf;
use std::time::Duration;

use dfs_proto::http::HttpConfig;

/// Default listen address of the data service.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9500";
/// Default address of the masters.
pub const DEFAULT_MASTER: &str = "127.0.0.1:9400";

/// Settings of one chunkserver.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address the data service listens on (`host:port`; port 0 picks a free port, see
    /// --addr-file).
    #[arg(long, env = "DFS_CHUNKSERVER_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: String,

    /// Address the master hands to clients and other chunkservers to reach this server.
    /// Defaults to the bound listen address, which is right unless listening on 0.0.0.0 or
    /// behind NAT.
    #[arg(long, env = "DFS_CHUNKSERVER_ADVERTISE")]
    pub advertise: Option<String>,

    /// Directory holding the chunk replicas and the storage uuid; created if missing. One
    /// directory per disk: the uuid identifies the disk to the master across restarts.
    #[arg(long, env = "DFS_CHUNKSERVER_DATA_DIR")]
    pub data_dir: PathBuf,

    /// Addresses of the masters, separated by commas (`host:port` or `http://host:port`
    /// each). Registration and heartbeats go to their leader; list them all so that the
    /// server still finds a leader while some masters are down.
    #[arg(long, env = "DFS_MASTER", default_value = DEFAULT_MASTER)]
    pub master: String,

    /// Rack label, so that placement puts replicas of a chunk on different racks.
    #[arg(long, env = "DFS_RACK", default_value = "")]
    pub rack: String,

    /// Milliseconds between heartbeats to the master. The master declares a server dead after
    /// missing heartbeats for its own timeout, so keep this well below that.
    #[arg(
        long,
        env = "DFS_CHUNKSERVER_HEARTBEAT_INTERVAL_MS",
        default_value_t = 2000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub heartbeat_interval_ms: u64,

    /// Heartbeats between full block reports (the first heartbeat after registering always
    /// carries one). Full reports let the master find replicas it lost track of.
    #[arg(
        long,
        env = "DFS_CHUNKSERVER_FULL_REPORT_EVERY",
        default_value_t = 30,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub full_report_every: u32,

    /// Report (and accept) at most this many bytes of replicas, below the disk's real size:
    /// for sharing a disk, and for tests of a full cluster.
    #[arg(long, env = "DFS_CHUNKSERVER_CAPACITY_BYTES")]
    pub capacity_bytes: Option<u64>,

    /// Milliseconds to connect to, and wait for an answer from, the master or the next
    /// chunkserver of a write chain. A server that does not answer in time is treated as
    /// unavailable: calls fail instead of hanging.
    #[arg(
        long,
        env = "DFS_CHUNKSERVER_RPC_TIMEOUT_MS",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub rpc_timeout_ms: u64,

    /// Milliseconds a write stream may stay silent before it is abandoned, so that a client
    /// that vanished mid-write does not hold a replica chain open forever.
    #[arg(
        long,
        env = "DFS_CHUNKSERVER_WRITE_IDLE_TIMEOUT_MS",
        default_value_t = 60_000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub write_idle_timeout_ms: u64,

    /// Bytes per second the background scrubber reads to re-verify replica checksums (a
    /// corrupt replica is reported to the master, which has it replaced). 0 disables it.
    #[arg(long, env = "DFS_SCRUB_BYTES_PER_SEC", default_value_t = 8 << 20)]
    pub scrub_bytes_per_sec: u64,

    /// Replica copies (re-replication commanded by the master) run at once.
    #[arg(long, env = "DFS_CHUNKSERVER_MAX_COPIES", default_value_t = 4,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub max_copies: u64,

    /// Once the server serves and is registered with the master, write its bound `host:port`
    /// to this file (atomically, via a rename): scripts and tests that listen on port 0 wait
    /// for it.
    #[arg(long, env = "DFS_CHUNKSERVER_ADDR_FILE")]
    pub addr_file: Option<PathBuf>,

    /// The HTTP address, serving `/metrics`.
    #[command(flatten)]
    pub http: HttpConfig,

    /// The cluster's CA and this chunkserver's certificate (role chunkserver): with them, its
    /// data service, its chain writes and copies, and its connection to the masters are
    /// mutual TLS.
    #[command(flatten)]
    pub tls: dfs_proto::tls::TlsOptions,
}

impl Config {
    /// A configuration with every default, storing replicas in `data_dir` and listening on an
    /// ephemeral loopback port.
    pub fn new(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            listen: "127.0.0.1:0".into(),
            advertise: None,
            data_dir: data_dir.into(),
            master: DEFAULT_MASTER.into(),
            rack: String::new(),
            heartbeat_interval_ms: 2000,
            full_report_every: 30,
            capacity_bytes: None,
            rpc_timeout_ms: 10_000,
            write_idle_timeout_ms: 60_000,
            scrub_bytes_per_sec: 8 << 20,
            max_copies: 4,
            addr_file: None,
            http: HttpConfig::default(),
            tls: dfs_proto::tls::TlsOptions::default(),
        }
    }

    /// Time between heartbeats.
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }

    /// Connect and request timeout towards the master and downstream chunkservers.
    pub fn rpc_timeout(&self) -> Duration {
        Duration::from_millis(self.rpc_timeout_ms)
    }

    /// How long a write stream may stay silent.
    pub fn write_idle_timeout(&self) -> Duration {
        Duration::from_millis(self.write_idle_timeout_ms)
    }
}
