//! Configuration of a mount: the client's options (which master, caches, buffers; see
//! [`dfs_client::Config`]), where to mount, and what the kernel is told (cache TTLs,
//! readahead, who may use the mount).
//!
//! Every option is a command-line flag with an environment variable, so the same binary is
//! configured by scripts, systemd units, `mount.dfs` and integration tests alike.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use dfs_proto::http::HttpConfig;

/// Options of the `dfs-fuse` daemon.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// The client's options: master address, RPC timeout, caches and buffers.
    #[command(flatten)]
    pub client: dfs_client::Config,

    /// Directory to mount the filesystem on (positional form; wins over `--mountpoint`).
    #[arg(value_name = "MOUNTPOINT")]
    pub mountpoint_arg: Option<PathBuf>,

    /// Directory to mount the filesystem on.
    #[arg(long = "mountpoint", env = "DFS_MOUNT", default_value = "/mnt/dfs")]
    pub mountpoint_opt: PathBuf,

    /// How long the kernel may cache attributes (size, mode, times) before asking again.
    /// Longer is faster for `stat`-heavy workloads; shorter sees other mounts' changes sooner.
    #[arg(long, env = "DFS_ATTR_TTL_MS", default_value_t = 1_000)]
    pub attr_ttl_ms: u64,

    /// How long the kernel may cache a name -> inode lookup before asking again.
    #[arg(long, env = "DFS_ENTRY_TTL_MS", default_value_t = 1_000)]
    pub entry_ttl_ms: u64,

    /// Kernel readahead for the mount, in KiB (0 keeps the kernel's default of 128 KiB, the most
    /// it grants at mount time). Sequential reads of large files are several times faster with
    /// a few MiB; raised through `/sys/class/bdi`, so it needs root.
    #[arg(long, env = "DFS_READ_AHEAD_KB", default_value_t = 4096)]
    pub read_ahead_kb: u32,

    /// Let users other than the one who mounted access the filesystem (the kernel still checks
    /// permission bits). Defaults to true when running as root.
    #[arg(long, env = "DFS_ALLOW_OTHER", num_args = 0..=1, default_missing_value = "true")]
    pub allow_other: Option<bool>,

    /// Mount read-only: the kernel answers every write, create or attribute change with
    /// EROFS before it reaches the daemon (`mount -o ro` through `mount.dfs`).
    #[arg(long, env = "DFS_READ_ONLY")]
    pub read_only: bool,

    /// Number of threads reading requests from the kernel. Requests are handed to the async
    /// runtime at once, so a few threads suffice even for many concurrent readers.
    #[arg(long, env = "DFS_FUSE_THREADS", default_value_t = 4)]
    pub fuse_threads: usize,

    /// Log every FUSE request and reply (the `fuser` crate's debug log).
    #[arg(long, env = "DFS_DEBUG_FUSE")]
    pub debug_fuse: bool,

    /// The HTTP address, serving `/metrics`.
    #[command(flatten)]
    pub http: HttpConfig,
}

impl Config {
    /// A configuration with every default, for tests and embedding.
    pub fn new(master: impl Into<String>, mountpoint: impl Into<PathBuf>) -> Config {
        Config {
            client: dfs_client::Config::new(master),
            mountpoint_arg: None,
            mountpoint_opt: mountpoint.into(),
            attr_ttl_ms: 1_000,
            entry_ttl_ms: 1_000,
            read_ahead_kb: 4096,
            allow_other: None,
            read_only: false,
            fuse_threads: 4,
            debug_fuse: false,
            http: HttpConfig::default(),
        }
    }

    /// The directory to mount on.
    pub fn mountpoint(&self) -> &PathBuf {
        self.mountpoint_arg.as_ref().unwrap_or(&self.mountpoint_opt)
    }

    /// Attribute cache TTL handed to the kernel.
    pub fn attr_ttl(&self) -> Duration {
        Duration::from_millis(self.attr_ttl_ms)
    }

    /// Entry cache TTL handed to the kernel.
    pub fn entry_ttl(&self) -> Duration {
        Duration::from_millis(self.entry_ttl_ms)
    }

    /// Whether other users may use the mount: as configured, else only when running as root
    /// (an unprivileged user needs `user_allow_other` in /etc/fuse.conf for it).
    pub fn allow_other(&self) -> bool {
        // SAFETY: geteuid has no preconditions and cannot fail.
        self.allow_other
            .unwrap_or_else(|| unsafe { libc::geteuid() } == 0)
    }
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
    fn positional_mountpoint_wins_and_client_options_reach_the_client() {
        let cli = Cli::parse_from(["dfs-fuse", "/tmp/x", "--write-buffer-bytes", "10"]);
        assert_eq!(cli.config.mountpoint(), &PathBuf::from("/tmp/x"));
        assert_eq!(
            cli.config.client.write_buffer_bytes(),
            dfs_client::config::MIN_WRITE_BUFFER_BYTES
        );
        let cli = Cli::parse_from(["dfs-fuse", "--mountpoint", "/tmp/y", "--allow-other"]);
        assert_eq!(cli.config.mountpoint(), &PathBuf::from("/tmp/y"));
        assert_eq!(cli.config.allow_other, Some(true));
        let cli = Cli::parse_from(["dfs-fuse", "--allow-other", "false", "--read-only"]);
        assert_eq!(cli.config.allow_other, Some(false));
        assert!(cli.config.read_only);
        assert!(!Cli::parse_from(["dfs-fuse"]).config.read_only);
    }
}
