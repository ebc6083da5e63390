//! [`Client`]: every filesystem operation as a plain async method, in the domain's terms.
//!
//! A kernel adapter (the mount) only unpacks kernel requests, calls a method here, and packs
//! the answer; everything the operation means (name checks, umask, open inode state,
//! page-cache decisions, directory snapshots) lives here.
//!
//! This file holds the client's state and construction; the operations are grouped by concern
//! in `impl Client` blocks of the submodules: `namespace` (names and attributes), `files`
//! (open, read, write, flush), `dirs` (listings), `leases` (writer leases, files unlinked
//! while open) and `xattrs` (extended attributes); `crate::path` adds the path-level calls.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use dfs_proto::chunk::ChunkLayout;
use dfs_proto::pb;
use dfs_proto::{FsError, MAX_NAME_LEN};
use lru::LruCache;

use crate::attr::Attr;
use crate::blockcache::{BlockCache, CacheStats};
use crate::chunkio::ChunkIo;
use crate::config::Config;
use crate::datapath::DataPath;
use crate::error::Error;
use crate::fresh::FreshAttrs;
use crate::handles::OpenInodes;
use crate::inode::OpenInode;
use crate::lease::MountLeases;
use crate::marks::AccessMarks;
use crate::master::MasterClient;
use crate::metrics::ClientMetrics;
use crate::writebuf::WriteBudget;

mod dirs;
mod files;
mod leases;
mod namespace;
mod xattrs;

pub use self::dirs::{DirEntry, DirPage};
pub use self::xattrs::XattrMode;

/// Files whose last-seen version is remembered for `FOPEN_KEEP_CACHE`.
const SEEN_VERSIONS: usize = 65_536;

/// `statfs` block size: the unit `df` reports in.
pub const STATFS_BLOCK_SIZE: u32 = 4096;

/// Who asks: the owner of the nodes a request creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// User id of the calling process.
    pub uid: u32,
    /// Group id of the calling process.
    pub gid: u32,
}

/// An open file handle: its number and what the kernel may keep of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// The handle number passed back with every request on it.
    pub fh: u64,
    /// The file is unchanged since this mount last saw it and the open marked no access:
    /// cached pages are still valid, and reading them owes no atime mark.
    pub keep_cache: bool,
    /// The kernel's copy of the attributes is stale in a way its reads will not notice (the
    /// file changed elsewhere, or was truncated, or its atime was marked with no data to
    /// read): it must be dropped.
    pub attrs_stale: bool,
}

/// Capacity and usage as `statfs` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatFs {
    /// Total blocks of [`STATFS_BLOCK_SIZE`] bytes.
    pub blocks: u64,
    /// Free blocks.
    pub bfree: u64,
    /// Total inodes (used + free).
    pub files: u64,
    /// Free inodes.
    pub ffree: u64,
}

/// What a new node is, for [`Client::make_node`] and [`Client::create`].
#[derive(Debug, Clone, Copy)]
struct NewNode<'a> {
    parent: u64,
    name: &'a [u8],
    kind: pb::FileKind,
    perm: u32,
    rdev: u32,
    symlink_target: &'a [u8],
    exclusive: bool,
}

/// A file's content version as far as page caching goes.
type Version = (Option<pb::Timestamp>, u64);

/// The mount's client: metadata through the master, data through chunkservers, plus the
/// client-side state of open files and directories. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    io: DataPath,
    replication: u32,
    write_buffer_bytes: usize,
    read_ahead_bytes: u64,
    inodes: OpenInodes,
    leases: Arc<MountLeases>,
    next_fh: AtomicU64,
    // A std mutex: only held to look up or record a version, never across an `.await`.
    seen: Mutex<LruCache<u64, Version>>,
    /// Files unlinked while open here, kept under a hidden name in their directory until
    /// their last handle closes (as libfuse does): ino → (parent, hidden name).
    hidden: Mutex<HashMap<u64, (u64, Vec<u8>)>>,
    /// Attributes read-only opens fetched, for the kernel's `getattr` that follows them.
    fresh: FreshAttrs,
    /// Atime marks of opens answered here, on their way to the master.
    marks: Arc<AccessMarks>,
    /// Lookups of small files bring their chunk map for the open (`--open-ahead`).
    open_ahead: bool,
}

/// Rejects names the master would refuse anyway, before any RPC.
fn check_name(name: &[u8]) -> Result<(), FsError> {
    if name.len() > MAX_NAME_LEN {
        return Err(FsError::NameTooLong);
    }
    Ok(())
}

impl Client {
    /// Connects to the masters and fetches the cluster configuration from their leader,
    /// retrying for up to the RPC timeout: a mount whose masters are unreachable fails here
    /// instead of serving EIO.
    pub async fn connect(config: &Config) -> Result<Client, Error> {
        let timeout = config.rpc_timeout();
        let metrics = ClientMetrics::default();
        let tls = config.tls.load_client()?;
        let master = MasterClient::with_tls(&config.master, timeout, tls.clone())
            .map_err(|e| Error::Config(e.to_string()))?
            .with_metrics(metrics.clone());
        let cluster = master
            .cluster_config()
            .await
            .map_err(|source| Error::MasterUnreachable {
                addr: config.master.clone(),
                source,
            })?;
        let block_size = u64::from(cluster.block_size);
        if cluster.chunk_size == 0 || block_size == 0 || cluster.chunk_size % block_size != 0 {
            return Err(Error::Config(format!(
                "master sent an unusable cluster config: {cluster:?}"
            )));
        }
        tracing::info!(
            chunk_size = cluster.chunk_size,
            block_size,
            replication = cluster.replication,
            "connected to master"
        );
        let io = DataPath {
            master,
            chunks: ChunkIo::new(timeout, metrics).with_tls(tls),
            layout: ChunkLayout::new(cluster.chunk_size, block_size),
            write_budget: WriteBudget::new(config.write_back_bytes()),
            cache: BlockCache::new(config.cache_bytes()),
            cache_writes: config.cache_writes,
        };
        Ok(Client::new(
            io,
            cluster.replication,
            config.write_buffer_bytes(),
            config.client_read_ahead_bytes,
            config.lease_wait(),
            config.open_ahead,
        ))
    }

    /// A client over an existing data path, reading ahead up to `read_ahead_bytes`, waiting
    /// up to `lease_wait` for writer leases other mounts hold, and with `open_ahead` fetching
    /// small files' chunk maps with their lookups.
    pub(crate) fn new(
        io: DataPath,
        replication: u32,
        write_buffer_bytes: usize,
        read_ahead_bytes: u64,
        lease_wait: std::time::Duration,
        open_ahead: bool,
    ) -> Client {
        let seen = LruCache::new(NonZeroUsize::new(SEEN_VERSIONS).expect("non-zero capacity"));
        let marks = AccessMarks::new(io.master.clone());
        Client {
            shared: Arc::new(Shared {
                io,
                replication,
                write_buffer_bytes,
                read_ahead_bytes,
                inodes: OpenInodes::default(),
                leases: Arc::new(MountLeases::new(lease_wait)),
                next_fh: AtomicU64::new(1),
                seen: Mutex::new(seen),
                hidden: Mutex::default(),
                fresh: FreshAttrs::default(),
                marks,
                open_ahead,
            }),
        }
    }

    fn io(&self) -> &DataPath {
        &self.shared.io
    }

    /// The client's connection to the master, for calls this API does not wrap (advisory
    /// locks, the admin commands).
    pub fn master(&self) -> &MasterClient {
        &self.shared.io.master
    }

    /// The id naming this client to the master: its lease holder id, also its lock session.
    pub fn session_id(&self) -> &str {
        self.shared.leases.holder()
    }

    /// Hits and misses of the block cache since the client started, and its bytes now.
    pub fn cache_stats(&self) -> CacheStats {
        self.io().cache.stats()
    }

    /// The durations this client records (see [`crate::metrics`]).
    pub fn metrics(&self) -> &ClientMetrics {
        self.io().master.metrics()
    }

    /// Bytes written through this client and not yet sent to chunkservers (write-back).
    pub fn write_back_bytes(&self) -> usize {
        self.io().write_budget.used()
    }

    pub(crate) fn next_fh(&self) -> u64 {
        self.shared.next_fh.fetch_add(1, Ordering::Relaxed)
    }

    /// The kernel's attributes for `attr`, with the size of this client's uncommitted writes,
    /// the attribute changes it keeps for their commit and its atime marks not yet sent.
    pub(crate) fn present(&self, attr: &pb::Attr) -> Attr {
        let inode = self.shared.inodes.get(attr.ino);
        let mut attr = *attr;
        self.shared.marks.overlay(&mut attr);
        if let Some(inode) = &inode {
            inode.overlay(&mut attr);
        }
        let mut out = Attr::from(&attr);
        if let Some(size) = inode.and_then(|i| i.uncommitted_size()) {
            out.size = out.size.max(size);
        }
        if self.is_hidden(attr.ino) {
            // Unlinked while open: the hidden name is not a link POSIX counts (fstat shows 0).
            out.nlink = out.nlink.saturating_sub(1);
        }
        out
    }

    fn open_inode(&self, ino: u64) -> Result<Arc<OpenInode>, FsError> {
        self.shared
            .inodes
            .get(ino)
            .ok_or_else(|| FsError::Invalid(format!("inode {ino} is not open")))
    }

    /// Records the version of a file this mount has seen (and has in its page cache);
    /// returns whether it equals the version seen before.
    fn note_version(&self, attr: &pb::Attr) -> bool {
        let version = (attr.mtime, attr.size);
        let mut seen = self.shared.seen.lock().expect("seen versions poisoned");
        seen.put(attr.ino, version) == Some(version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_are_refused_before_any_rpc() {
        assert_eq!(check_name(&[b'a'; MAX_NAME_LEN]), Ok(()));
        assert_eq!(
            check_name(&[b'a'; MAX_NAME_LEN + 1]),
            Err(FsError::NameTooLong)
        );
    }

    #[tokio::test]
    async fn keep_cache_only_for_unchanged_versions() {
        let io = DataPath {
            master: MasterClient::new("http://127.0.0.1:1", std::time::Duration::from_millis(100))
                .unwrap(),
            chunks: ChunkIo::new(
                std::time::Duration::from_millis(100),
                ClientMetrics::default(),
            ),
            layout: ChunkLayout::new(64 << 20, 64 << 10),
            cache: BlockCache::new(1 << 20),
            write_budget: WriteBudget::new(4 << 20),
            cache_writes: true,
        };
        let client = Client::new(io, 3, 1 << 20, 0, std::time::Duration::ZERO, true);
        let attr = pb::Attr {
            ino: 5,
            size: 10,
            mtime: Some(pb::Timestamp { secs: 1, nanos: 2 }),
            ..Default::default()
        };
        assert!(!client.note_version(&attr));
        assert!(client.note_version(&attr));
        let changed = pb::Attr {
            mtime: Some(pb::Timestamp { secs: 1, nanos: 3 }),
            ..attr
        };
        assert!(!client.note_version(&changed));
        // A master that is down fails fast with EIO-class errors instead of hanging.
        let err = client.getattr(1).await.unwrap_err();
        assert!(matches!(err, FsError::Unavailable(_)), "{err:?}");
    }
}
