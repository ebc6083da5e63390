//! Configuration of a client: which masters to talk to, and the knobs that trade consistency or
//! memory for speed (write buffers, block cache, read-ahead, leases).
//!
//! Every option is a command-line flag with an environment variable (a `clap::Args` group that
//! the mount and the `dfs` command flatten into their own options), so the same settings reach
//! a client from scripts, systemd units and integration tests alike.

use std::time::Duration;

use clap::Args;

/// Smallest accepted per-file write buffer: one kernel write request (`max_write` is 1 MiB),
/// so a single request never has to be split across buffers.
pub const MIN_WRITE_BUFFER_BYTES: usize = 1 << 20;

/// Default write-back memory of a client: enough to absorb a few hundred MiB of random writes
/// (rewrites of one page coalesce), small next to a machine's memory.
pub const DEFAULT_WRITE_BACK_BYTES: usize = 512 << 20;

/// Share of physical memory the block cache takes by default (one eighth).
pub const CACHE_MEMORY_DIVISOR: u64 = 8;

/// Least default block cache, even on a small machine: the working set of a few sequential
/// readers.
pub const MIN_DEFAULT_CACHE_BYTES: u64 = 128 << 20;

/// Most default block cache, even on a large machine.
pub const MAX_DEFAULT_CACHE_BYTES: u64 = 16 << 30;

/// Default read-ahead window of the client (on top of the kernel's readahead, for a mount).
pub const DEFAULT_CLIENT_READ_AHEAD_BYTES: u64 = 16 << 20;

/// Options of a client.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Addresses of the masters, separated by commas: `host:port` (or `http://host:port`)
    /// each. One is enough to find the others' leader; list them all so that the client
    /// still finds a leader while some masters are down.
    #[arg(long, env = "DFS_MASTER", default_value = "127.0.0.1:9400")]
    pub master: String,

    /// Every master and chunkserver call fails after this many milliseconds instead of
    /// hanging (connect timeout and per-request timeout); the mount stays usable and the next
    /// call tries again.
    #[arg(long, env = "DFS_RPC_TIMEOUT_MS", default_value_t = 10_000)]
    pub rpc_timeout_ms: u64,

    /// Lookups of small files bring their chunk map, so a read-only open right after costs no
    /// master call. Close-to-open then needs the kernel to look such a name up again at every
    /// path walk (no entry lifetime): a master round trip per `stat` of a path even within
    /// `--entry-ttl-ms`. Off, names keep their lifetime and every open asks the master:
    /// better for workloads that `stat` the same paths over and over (make, pollers).
    #[arg(long, env = "DFS_OPEN_AHEAD", default_value_t = true, action = clap::ArgAction::Set)]
    pub open_ahead: bool,

    /// Bytes of a sequential run of writes buffered before they are streamed to the replica
    /// chain in the background while the application goes on writing (at least 1 MiB).
    #[arg(long, env = "DFS_WRITE_BUFFER_BYTES", default_value_t = 8 << 20)]
    pub write_buffer_bytes: usize,

    /// Bytes of written, not yet sent data the mount keeps in memory over all its open files
    /// (write-back); one file keeps at most a quarter of it before sending it all. Raised to
    /// at least 4 write buffers. Close and fsync always send everything first.
    #[arg(long, env = "DFS_WRITE_BACK_BYTES", default_value_t = DEFAULT_WRITE_BACK_BYTES)]
    pub write_back_bytes: usize,

    /// How long opening a file for writing waits while another mount holds the file's writer
    /// lease, before failing with EBUSY. A lease whose holder died frees up after the master's
    /// lease time-to-live.
    #[arg(long, env = "DFS_LEASE_WAIT_MS", default_value_t = 5_000)]
    pub lease_wait_ms: u64,

    /// Bytes of verified chunk blocks kept in the mount's LRU block cache (0 disables it).
    /// Re-reads of cached blocks cost no chunkserver round trip; entries are keyed by chunk
    /// version, so a rewritten chunk is never served from the cache. Default: one eighth of
    /// physical memory, between 128 MiB and 16 GiB. The kernel's page cache cannot stand in
    /// for it: it is dropped whenever a file changed on another mount and by `fadvise`
    /// (fio drops it before every job), so this cache is what keeps a file's hot data in
    /// memory; an eighth leaves the rest to applications and the kernel.
    #[arg(long, env = "DFS_CACHE_BYTES")]
    pub cache_bytes: Option<usize>,

    /// Put the blocks this mount writes in full into the block cache, and a block written
    /// from its start to the end of the chunk's data (the one short block of a small file),
    /// so reading back what was just written costs no chunkserver read (as a local file's
    /// page cache does); the blocks of a large write share its buffer, small ones are copied.
    /// Turn it off for write-once workloads (backups, logs) whose writes would push the read
    /// working set out of the cache.
    #[arg(long, env = "DFS_CACHE_WRITES", default_value_t = true, action = clap::ArgAction::Set)]
    pub cache_writes: bool,

    /// Bytes the daemon fetches into the block cache ahead of a sequential reader, in the
    /// background (0 disables it).
    #[arg(long, env = "DFS_CLIENT_READ_AHEAD_BYTES", default_value_t = DEFAULT_CLIENT_READ_AHEAD_BYTES)]
    pub client_read_ahead_bytes: u64,

    /// The cluster's CA and this client's certificate, for mutual TLS with the masters.
    #[command(flatten)]
    pub tls: dfs_proto::tls::TlsOptions,
}

impl Config {
    /// A configuration with every default and the masters in `master` (a list as `--master`
    /// takes it), for tests and embedding.
    pub fn new(master: impl Into<String>) -> Config {
        Config {
            master: master.into(),
            rpc_timeout_ms: 10_000,
            open_ahead: true,
            write_buffer_bytes: 8 << 20,
            write_back_bytes: DEFAULT_WRITE_BACK_BYTES,
            lease_wait_ms: 5_000,
            cache_bytes: None,
            cache_writes: true,
            client_read_ahead_bytes: DEFAULT_CLIENT_READ_AHEAD_BYTES,
            tls: dfs_proto::tls::TlsOptions::default(),
        }
    }

    /// Deadline of every RPC.
    pub fn rpc_timeout(&self) -> Duration {
        Duration::from_millis(self.rpc_timeout_ms.max(1))
    }

    /// How long to wait for another client's writer lease.
    pub fn lease_wait(&self) -> Duration {
        Duration::from_millis(self.lease_wait_ms)
    }

    /// Size of the block cache: as configured, else [`default_cache_bytes`] of this machine.
    pub fn cache_bytes(&self) -> usize {
        self.cache_bytes
            .unwrap_or_else(|| default_cache_bytes(physical_memory()))
    }

    /// Per-file write buffer size, raised to the minimum if configured lower.
    pub fn write_buffer_bytes(&self) -> usize {
        self.write_buffer_bytes.max(MIN_WRITE_BUFFER_BYTES)
    }

    /// The client's write-back memory, raised to at least 4 write buffers.
    pub fn write_back_bytes(&self) -> usize {
        self.write_back_bytes.max(4 * self.write_buffer_bytes())
    }
}

/// The default block cache for a machine with `memory` bytes of RAM (`None`: unknown):
/// [`CACHE_MEMORY_DIVISOR`]-th of it, clamped to [`MIN_DEFAULT_CACHE_BYTES`] and
/// [`MAX_DEFAULT_CACHE_BYTES`].
pub fn default_cache_bytes(memory: Option<u64>) -> usize {
    let share = memory.map_or(MIN_DEFAULT_CACHE_BYTES, |m| m / CACHE_MEMORY_DIVISOR);
    let bytes = share.clamp(MIN_DEFAULT_CACHE_BYTES, MAX_DEFAULT_CACHE_BYTES);
    usize::try_from(bytes).unwrap_or(usize::MAX)
}

/// Bytes of physical memory, if the system says.
fn physical_memory() -> Option<u64> {
    // SAFETY: sysconf has no preconditions; it returns -1 for an unknown value.
    let (pages, page_size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let pages = u64::try_from(pages).ok()?;
    let page_size = u64::try_from(page_size).ok()?;
    pages.checked_mul(page_size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: Config,
    }

    #[test]
    fn the_write_buffer_has_a_floor() {
        let cli = Cli::parse_from(["dfs", "--write-buffer-bytes", "10"]);
        assert_eq!(cli.config.write_buffer_bytes(), MIN_WRITE_BUFFER_BYTES);
        assert_eq!(cli.config.write_back_bytes(), DEFAULT_WRITE_BACK_BYTES);
    }

    #[test]
    fn the_cache_defaults_to_a_clamped_share_of_memory() {
        assert_eq!(default_cache_bytes(Some(24 << 30)), 3 << 30);
        assert_eq!(default_cache_bytes(Some(512 << 20)), 128 << 20);
        assert_eq!(default_cache_bytes(Some(1 << 40)), 16 << 30);
        assert_eq!(default_cache_bytes(None), 128 << 20);
        let cli = Cli::parse_from(["dfs", "--cache-bytes", "1000"]);
        assert_eq!(cli.config.cache_bytes(), 1000);
        assert!(cli.config.cache_writes);
        assert!(Cli::parse_from(["dfs"]).config.cache_bytes() >= 128 << 20);
        let cli = Cli::parse_from(["dfs", "--cache-writes", "false"]);
        assert!(!cli.config.cache_writes);
        assert!(Cli::parse_from(["dfs"]).config.open_ahead);
        let cli = Cli::parse_from(["dfs", "--open-ahead", "false"]);
        assert!(!cli.config.open_ahead);
    }
}
