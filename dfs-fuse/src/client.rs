//! [`Client`]: every filesystem operation as a plain async method, in the domain's terms.
//!
//! The FUSE adapter ([`crate::fs`]) only unpacks kernel requests, calls a method here on the
//! runtime, and packs the answer; everything the operation means (name checks, umask, open
//! inode state, page-cache decisions, directory snapshots) lives here.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use dfs_proto::chunk::ChunkLayout;
use dfs_proto::pb::{self, FileKind};
use dfs_proto::{FsError, MAX_NAME_LEN};
use fuser::FileAttr;
use lru::LruCache;

use crate::attr::{access_due, creation_perm, file_attr};
use crate::blockcache::BlockCache;
use crate::chunkio::ChunkIo;
use crate::config::Config;
use crate::datapath::DataPath;
use crate::error::Error;
use crate::handles::OpenInodes;
use crate::inode::OpenInode;
use crate::lease::{self, MountLeases};
use crate::master::MasterClient;
use crate::read;
use crate::readdir::{DirHandles, DirListing, PAGE_ENTRIES, Slot};
use crate::writebuf::WriteBudget;

/// Files whose last-seen version is remembered for `FOPEN_KEEP_CACHE`.
const SEEN_VERSIONS: usize = 65_536;

/// `statfs` block size: the unit `df` reports in.
pub const STATFS_BLOCK_SIZE: u32 = 4096;

/// Free inodes reported by `statfs`: the master allocates inode numbers without a fixed table.
const STATFS_FREE_INODES: u64 = 1 << 32;

/// Who asks: the owner of the nodes a request creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// User id of the calling process.
    pub uid: u32,
    /// Group id of the calling process.
    pub gid: u32,
}

/// An open file handle: its number and whether the kernel may keep the file's page cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// The handle number passed back with every request on it.
    pub fh: u64,
    /// The file is unchanged since this mount last saw it: cached pages are still valid.
    pub keep_cache: bool,
    /// The open changed the file's attributes (it marked atime): the kernel's copy is stale.
    pub attrs_changed: bool,
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
    kind: FileKind,
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
    dirs: DirHandles,
    next_fh: AtomicU64,
    // A std mutex: only held to look up or record a version, never across an `.await`.
    seen: Mutex<LruCache<u64, Version>>,
    /// Files unlinked while open here, kept under a hidden name in their directory until
    /// their last handle closes (as libfuse does): ino → (parent, hidden name).
    hidden: Mutex<HashMap<u64, (u64, Vec<u8>)>>,
}

/// Rejects names the master would refuse anyway, before any RPC.
fn check_name(name: &[u8]) -> Result<(), FsError> {
    if name.len() > MAX_NAME_LEN {
        return Err(FsError::NameTooLong);
    }
    Ok(())
}

impl Client {
    /// Connects to the master and fetches the cluster configuration, retrying for up to the
    /// RPC timeout: a mount whose master is unreachable fails here instead of serving EIO.
    pub async fn connect(config: &Config) -> Result<Client, Error> {
        let timeout = config.rpc_timeout();
        let master = MasterClient::new(&config.master_uri(), timeout)
            .map_err(|e| Error::Config(e.to_string()))?;
        let deadline = Instant::now() + timeout;
        let cluster = loop {
            match master.cluster_config().await {
                Ok(cluster) => break cluster,
                Err(err) if Instant::now() >= deadline => {
                    return Err(Error::MasterUnreachable {
                        addr: config.master.clone(),
                        source: err,
                    });
                }
                Err(err) => {
                    tracing::debug!(error = %err, "master not reachable yet, retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
        };
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
            chunks: ChunkIo::new(timeout),
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
        ))
    }

    /// A client over an existing data path, reading ahead up to `read_ahead_bytes` and
    /// waiting up to `lease_wait` for writer leases other mounts hold.
    pub fn new(
        io: DataPath,
        replication: u32,
        write_buffer_bytes: usize,
        read_ahead_bytes: u64,
        lease_wait: std::time::Duration,
    ) -> Client {
        let seen = LruCache::new(NonZeroUsize::new(SEEN_VERSIONS).expect("non-zero capacity"));
        Client {
            shared: Arc::new(Shared {
                io,
                replication,
                write_buffer_bytes,
                read_ahead_bytes,
                inodes: OpenInodes::default(),
                leases: Arc::new(MountLeases::new(lease_wait)),
                dirs: DirHandles::default(),
                next_fh: AtomicU64::new(1),
                seen: Mutex::new(seen),
                hidden: Mutex::default(),
            }),
        }
    }

    fn io(&self) -> &DataPath {
        &self.shared.io
    }

    pub(crate) fn master(&self) -> &MasterClient {
        &self.shared.io.master
    }

    /// The id naming this mount to the master: its lease holder id, also its lock session.
    pub(crate) fn session_id(&self) -> &str {
        self.shared.leases.holder()
    }

    fn next_fh(&self) -> u64 {
        self.shared.next_fh.fetch_add(1, Ordering::Relaxed)
    }

    /// The kernel's attributes for `attr`, with the size of this client's uncommitted writes.
    pub fn present(&self, attr: &pb::Attr) -> FileAttr {
        let mut out = file_attr(attr);
        if let Some(size) = self
            .shared
            .inodes
            .get(attr.ino)
            .and_then(|i| i.uncommitted_size())
        {
            out.size = out.size.max(size);
            out.blocks = out.size.div_ceil(512);
        }
        if self.is_hidden(attr.ino) {
            // Unlinked while open: the hidden name is not a link POSIX counts (fstat shows 0).
            out.nlink = out.nlink.saturating_sub(1);
        }
        out
    }

    /// Whether `ino` was unlinked while open here and lives on under a hidden name.
    fn is_hidden(&self, ino: u64) -> bool {
        let hidden = self.shared.hidden.lock().expect("hidden lock poisoned");
        !hidden.is_empty() && hidden.contains_key(&ino)
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

    // ------------------------------------------------------------------------------------
    // Namespace
    // ------------------------------------------------------------------------------------

    /// Looks up `name` in directory `parent`.
    pub async fn lookup(&self, parent: u64, name: &[u8]) -> Result<FileAttr, FsError> {
        check_name(name)?;
        Ok(self.present(&self.master().lookup(parent, name).await?))
    }

    /// Attributes of an inode.
    pub async fn getattr(&self, ino: u64) -> Result<FileAttr, FsError> {
        Ok(self.present(&self.master().get_attr(ino).await?))
    }

    /// Changes attributes; a size change commits this client's writes first and cuts the
    /// replicas of the new last chunk when shrinking.
    /// A size change needs the file's writer lease: held already if this mount has the file
    /// open for writing, otherwise taken for the duration of the change.
    pub async fn setattr(&self, req: pb::SetAttrRequest) -> Result<FileAttr, FsError> {
        let ino = req.ino;
        let Some(size) = req.size else {
            // Writes still buffered here come before this call: committed later, they would
            // overwrite the mtime it sets (tar and rsync set times through the open file
            // before closing it). A change of mtime alone is what the commit records anyway
            // (mtime as given, ctime now): the commit carries it, one round trip instead of two.
            if let (Some(mtime), Some(inode)) = (only_mtime(&req), self.shared.inodes.get(ino)) {
                if let Some(attr) = inode.flush_with_mtime(self.io(), mtime).await? {
                    self.note_version(&attr);
                    return Ok(self.present(&attr));
                }
            }
            self.flush(ino).await?;
            return Ok(self.present(&self.master().set_attr(req).await?));
        };
        let borrowed = !self.shared.leases.holds(ino);
        if borrowed {
            self.acquire_lease(ino).await?;
        }
        let result = match self.shared.inodes.get(ino) {
            Some(inode) => inode.resize(self.io(), req, size).await,
            None => {
                async {
                    self.io().truncate_replicas(ino, size, 0).await?;
                    self.master().set_attr(req).await
                }
                .await
            }
        };
        if borrowed {
            self.release_lease(ino).await;
        }
        Ok(self.present(&result?))
    }

    /// Acquires the writer lease of `ino` (waiting for another mount's for the configured
    /// time) and recovers the file if its previous writer died holding it.
    async fn acquire_lease(&self, ino: u64) -> Result<(), FsError> {
        let leases = &self.shared.leases;
        let acquired = leases.acquire(self.master(), ino).await?;
        if acquired.recover {
            if let Err(err) = lease::recover(self.io(), ino, leases.holder()).await {
                self.release_lease(ino).await;
                return Err(err);
            }
        }
        Ok(())
    }

    async fn release_lease(&self, ino: u64) {
        if let Err(err) = self.shared.leases.release(self.master(), ino).await {
            tracing::warn!(ino, error = %err, "lease release failed; it expires by itself");
        }
    }

    /// Drops one handle of `ino`; with the last one goes the inode's state and its lease.
    async fn close_inode(&self, ino: u64) {
        if self.shared.inodes.close(ino) {
            self.release_lease(ino).await;
            let hidden = self
                .shared
                .hidden
                .lock()
                .expect("hidden lock poisoned")
                .remove(&ino);
            if let Some((parent, name)) = hidden {
                if let Err(err) = self.master().unlink(parent, &name).await {
                    tracing::warn!(ino, error = %err, "removing an unlinked file at its last close failed");
                }
            }
        }
    }

    /// The target of a symlink.
    pub async fn readlink(&self, ino: u64) -> Result<Vec<u8>, FsError> {
        self.master().read_link(ino).await
    }

    /// Creates a node of `kind` owned by the caller. `mode` carries the requested permission
    /// bits; `umask` is applied here.
    #[allow(clippy::too_many_arguments)]
    pub async fn make_node(
        &self,
        caller: Caller,
        parent: u64,
        name: &[u8],
        kind: FileKind,
        mode: u32,
        umask: u32,
        rdev: u32,
        symlink_target: &[u8],
    ) -> Result<FileAttr, FsError> {
        let node = NewNode {
            parent,
            name,
            kind,
            perm: creation_perm(mode, umask),
            rdev,
            symlink_target,
            exclusive: true,
        };
        Ok(self.present(&self.create_node(caller, node).await?))
    }

    async fn create_node(&self, caller: Caller, node: NewNode<'_>) -> Result<pb::Attr, FsError> {
        check_name(node.name)?;
        self.master().make_node(node_request(caller, node)).await
    }

    /// Removes a non-directory entry. The last name of a file open on this mount becomes a
    /// hidden name instead, removed at its last close (see `Shared::hidden`).
    pub async fn unlink(&self, parent: u64, name: &[u8]) -> Result<(), FsError> {
        check_name(name)?;
        if self.shared.inodes.is_empty() {
            return self.master().unlink(parent, name).await;
        }
        let attr = self.master().lookup(parent, name).await?;
        let open_here = self.shared.inodes.get(attr.ino).is_some();
        if attr.kind() == FileKind::Regular && attr.nlink == 1 && open_here {
            // The master would delete the inode with its last name, under the open handles.
            let hidden = format!(".dfs-hidden-{:016x}", attr.ino).into_bytes();
            self.rename(parent, name, parent, &hidden, 0).await?;
            let mut hidden_files = self.shared.hidden.lock().expect("hidden lock poisoned");
            hidden_files.insert(attr.ino, (parent, hidden));
            return Ok(());
        }
        self.master().unlink(parent, name).await
    }

    /// Removes an empty directory.
    pub async fn rmdir(&self, parent: u64, name: &[u8]) -> Result<(), FsError> {
        check_name(name)?;
        self.master().rmdir(parent, name).await
    }

    /// Renames an entry; `flags` are `renameat2` flags, passed through.
    pub async fn rename(
        &self,
        parent: u64,
        name: &[u8],
        new_parent: u64,
        new_name: &[u8],
        flags: u32,
    ) -> Result<(), FsError> {
        check_name(name)?;
        check_name(new_name)?;
        let req = pb::RenameRequest {
            parent,
            name: name.to_vec(),
            new_parent,
            new_name: new_name.to_vec(),
            flags,
        };
        self.master().rename(req).await
    }

    /// Adds a hard link to `ino` as `new_name` in `new_parent`.
    pub async fn link(
        &self,
        ino: u64,
        new_parent: u64,
        new_name: &[u8],
    ) -> Result<FileAttr, FsError> {
        check_name(new_name)?;
        Ok(self.present(&self.master().link(ino, new_parent, new_name).await?))
    }

    /// Whether the inode exists (permission bits are checked by the kernel, which mounts with
    /// `default_permissions`).
    pub async fn access(&self, ino: u64) -> Result<(), FsError> {
        self.master().get_attr(ino).await.map(drop)
    }

    /// Capacity and usage, in [`STATFS_BLOCK_SIZE`] blocks of usable (post-replication) space.
    pub async fn statfs(&self) -> Result<StatFs, FsError> {
        let st = self.master().stat_fs().await?;
        let unit = u64::from(STATFS_BLOCK_SIZE) * u64::from(self.shared.replication.max(1));
        Ok(StatFs {
            blocks: st.total_bytes / unit,
            bfree: st.free_bytes / unit,
            files: st.files + STATFS_FREE_INODES,
            ffree: STATFS_FREE_INODES,
        })
    }

    // ------------------------------------------------------------------------------------
    // Files
    // ------------------------------------------------------------------------------------

    /// Opens a regular file: takes its writer lease when opened for writing, loads its chunk
    /// map fresh from the master (close-to-open consistency) and truncates it for `O_TRUNC`.
    /// One master call does all that and the relatime atime mark (`OpenFile`), unless the
    /// previous writer died holding the lease and the file must be recovered first.
    pub async fn open(&self, ino: u64, flags: i32) -> Result<Opened, FsError> {
        let inode = self.shared.inodes.open(ino, self.shared.write_buffer_bytes);
        let result = async {
            let writing = opens_for_writing(flags);
            let truncating = flags & libc::O_TRUNC != 0;
            // A truncating open changes the file rather than reading it.
            let read = opens_for_reading(flags) && !truncating;
            let reply = if writing && !self.shared.leases.holds(ino) {
                self.open_leased(ino, read).await?
            } else {
                self.master().open_file(ino, read, None).await?
            };
            if writing {
                let holder = self.shared.leases.holder().to_string();
                inode.set_lease_holder(holder).await;
            }
            let attr = reply
                .attr
                .ok_or_else(|| FsError::Io("master opened a file without attributes".into()))?;
            let chunk_ids = inode.load(reply.chunk_map.unwrap_or_default()).await;
            let unchanged = self.note_version(&attr);
            if !unchanged {
                // Another mount may have rewritten blocks this mount still caches.
                self.io()
                    .cache
                    .invalidate_chunks(&chunk_ids.into_iter().collect());
            }
            if truncating && attr.size > 0 {
                let req = truncate_request(ino);
                let attr = inode.resize(self.io(), req, 0).await?;
                self.note_version(&attr);
                return Ok((false, true));
            }
            Ok::<_, FsError>((unchanged, reply.access_marked))
        }
        .await;
        match result {
            Ok((keep_cache, attrs_changed)) => Ok(Opened {
                fh: self.next_fh(),
                keep_cache,
                attrs_changed,
            }),
            Err(err) => {
                self.close_inode(ino).await;
                Err(err)
            }
        }
    }

    /// `OpenFile` with this mount's writer lease (waiting for another mount's as
    /// [`MountLeases::acquire`] does); a file whose previous writer died is recovered, then
    /// its recovered chunk map loaded.
    async fn open_leased(&self, ino: u64, read: bool) -> Result<pb::OpenFileReply, FsError> {
        let leases = &self.shared.leases;
        let (acquired, reply) = leases
            .acquire_with(self.master(), || async {
                let reply = self
                    .master()
                    .open_file(ino, read, Some(leases.holder()))
                    .await?;
                Ok((ino, reply.lease.unwrap_or_default(), reply))
            })
            .await?;
        if !acquired.recover {
            return Ok(reply);
        }
        if let Err(err) = lease::recover(self.io(), ino, leases.holder()).await {
            self.release_lease(ino).await;
            return Err(err);
        }
        let recovered = self.master().open_file(ino, false, None).await?;
        Ok(pb::OpenFileReply {
            access_marked: reply.access_marked,
            ..recovered
        })
    }

    /// Creates (or, without `O_EXCL`, possibly finds) a regular file and opens it. A create
    /// for writing takes the file's writer lease in the same master call (`CreateFile`).
    pub async fn create(
        &self,
        caller: Caller,
        parent: u64,
        name: &[u8],
        mode: u32,
        umask: u32,
        flags: i32,
    ) -> Result<(FileAttr, Opened), FsError> {
        check_name(name)?;
        let node = NewNode {
            parent,
            name,
            kind: FileKind::Regular,
            perm: creation_perm(mode, umask),
            rdev: 0,
            symlink_target: &[],
            exclusive: flags & libc::O_EXCL != 0,
        };
        let req = node_request(caller, node);
        let leases = &self.shared.leases;
        let writing = opens_for_writing(flags);
        let attr = if writing {
            let (acquired, attr) = leases
                .acquire_with(self.master(), || async {
                    let reply = self
                        .master()
                        .create_file(req.clone(), Some(leases.holder()))
                        .await?;
                    let attr = reply.attr.ok_or_else(|| {
                        FsError::Io("master created a file without attributes".into())
                    })?;
                    Ok((attr.ino, reply.lease.unwrap_or_default(), attr))
                })
                .await?;
            if acquired.recover {
                // An existing file whose previous writer died holding the lease.
                if let Err(err) = lease::recover(self.io(), attr.ino, leases.holder()).await {
                    self.release_lease(attr.ino).await;
                    return Err(err);
                }
            }
            attr
        } else {
            self.master().make_node(req).await?
        };
        if attr.size > 0 {
            // An existing file: opened like any other (its lease, if taken, is held now).
            let opened = self.open(attr.ino, flags).await?;
            return Ok((self.getattr(attr.ino).await?, opened));
        }
        // A new (or empty) file has no chunks to load.
        let inode = self
            .shared
            .inodes
            .open(attr.ino, self.shared.write_buffer_bytes);
        if writing {
            inode.set_lease_holder(leases.holder().to_string()).await;
        }
        self.note_version(&attr);
        Ok((
            self.present(&attr),
            Opened {
                fh: self.next_fh(),
                keep_cache: false,
                attrs_changed: true,
            },
        ))
    }

    /// Reads up to `len` bytes at `offset`.
    pub async fn read(&self, ino: u64, offset: u64, len: u32) -> Result<Bytes, FsError> {
        let inode = self.open_inode(ino)?;
        let data = read::read(self.io(), &inode, offset, u64::from(len)).await?;
        self.read_ahead(inode, offset, len);
        Ok(data)
    }

    /// Reads up to `len` bytes at `offset` if that needs no waiting (see
    /// [`read::read_from_cache`]); `None` means: call [`read`](Client::read). Call it inside
    /// the runtime's context: it may start read-ahead.
    pub fn read_now(&self, ino: u64, offset: u64, len: u32) -> Option<Bytes> {
        let inode = self.shared.inodes.get(ino)?;
        let data = read::read_from_cache(self.io(), &inode, offset, u64::from(len))?;
        self.read_ahead(inode, offset, len);
        Some(data)
    }

    /// Starts read-ahead if `inode`'s reader is sequential.
    fn read_ahead(&self, inode: Arc<OpenInode>, offset: u64, len: u32) {
        if let Some((from, len)) =
            inode
                .readahead
                .on_read(offset, u64::from(len), self.shared.read_ahead_bytes)
        {
            tokio::spawn(read::read_ahead(self.io().clone(), inode, from, len));
        }
    }

    /// Buffers a write; returns the bytes accepted.
    pub async fn write(&self, ino: u64, offset: u64, data: &[u8]) -> Result<u32, FsError> {
        let inode = self.open_inode(ino)?;
        inode.write(self.io(), offset, data).await?;
        Ok(data.len() as u32)
    }

    /// Buffers a write from the thread that received it if that needs no waiting (see
    /// [`OpenInode::try_write`]); `None` means: take [`write`](Client::write) instead.
    pub fn try_write(&self, ino: u64, offset: u64, data: &[u8]) -> Option<Result<u32, FsError>> {
        let inode = self.shared.inodes.get(ino)?;
        let written = inode.try_write(self.io(), offset, data)?;
        Some(written.map(|()| data.len() as u32))
    }

    /// Sends and commits this inode's writes (at every `close`).
    pub async fn flush(&self, ino: u64) -> Result<(), FsError> {
        let Some(inode) = self.shared.inodes.get(ino) else {
            return Ok(());
        };
        if let Some(attr) = inode.flush(self.io()).await? {
            self.note_version(&attr);
        }
        Ok(())
    }

    /// Sends, syncs on every replica, and commits.
    pub async fn fsync(&self, ino: u64) -> Result<(), FsError> {
        let Some(inode) = self.shared.inodes.get(ino) else {
            return Ok(());
        };
        if let Some(attr) = inode.fsync(self.io()).await? {
            self.note_version(&attr);
        }
        Ok(())
    }

    /// Drops one handle; the last one flushes and forgets the inode's state.
    pub async fn release(&self, ino: u64) -> Result<(), FsError> {
        let result = self.flush(ino).await;
        if let Err(err) = &result {
            tracing::error!(ino, error = %err, "flush at release failed");
        }
        self.close_inode(ino).await;
        result
    }

    /// Flushes every open inode and gives up every lease (when the filesystem goes away
    /// with files still open).
    pub async fn flush_all(&self) {
        for inode in self.shared.inodes.all() {
            if let Err(err) = inode.flush(self.io()).await {
                tracing::error!(ino = inode.ino, error = %err, "flush at unmount failed");
            }
        }
        self.shared.leases.release_all(self.master()).await;
    }

    // ------------------------------------------------------------------------------------
    // Directories
    // ------------------------------------------------------------------------------------

    /// Opens a directory listing handle.
    pub async fn opendir(&self, ino: u64) -> Result<u64, FsError> {
        let attr = self.master().get_attr(ino).await?;
        if attr.kind != FileKind::Directory as i32 {
            return Err(FsError::NotDir);
        }
        self.mark_access(&attr).await?;
        let fh = self.next_fh();
        self.shared.dirs.insert(fh, DirListing::new(attr));
        Ok(fh)
    }

    /// Marks a read access of the inode with attributes `attr` (opening a file for reading,
    /// a directory for listing) when the relatime rule says atime is due; returns whether it
    /// did. The kernel leaves atime of FUSE inodes to the daemon.
    async fn mark_access(&self, attr: &pb::Attr) -> Result<bool, FsError> {
        if !access_due(attr, SystemTime::now()) {
            return Ok(false);
        }
        let req = pb::SetAttrRequest {
            ino: attr.ino,
            mark_access: true,
            ..Default::default()
        };
        self.master().set_attr(req).await?;
        Ok(true)
    }

    /// Feeds entries from position `offset` of the handle's listing to `add` (cookie, entry,
    /// attributes) until `add` reports the kernel's buffer full or the listing ends; pages
    /// are fetched from the master as needed. Offset 0 restarts the listing.
    pub async fn readdir(
        &self,
        fh: u64,
        offset: u64,
        mut add: impl FnMut(u64, Slot<'_>, FileAttr) -> bool,
    ) -> Result<(), FsError> {
        let listing = self
            .shared
            .dirs
            .get(fh)
            .ok_or_else(|| FsError::Invalid(format!("no directory handle {fh}")))?;
        let mut listing = listing.lock().await;
        if offset == 0 {
            listing.restart();
        }
        let mut pos = offset;
        loop {
            if listing.needs_page(pos) {
                let page = self
                    .master()
                    .read_dir(listing.ino, listing.last_name(), PAGE_ENTRIES)
                    .await?;
                listing.append(page);
            }
            let Some(slot) = listing.slot(pos) else { break };
            let attr = match slot {
                Slot::Child(entry) => {
                    self.present(entry.attr.as_ref().unwrap_or(&pb::Attr::default()))
                }
                Slot::Dot | Slot::DotDot => self.present(&listing.attr),
            };
            if add(DirListing::cookie(pos), slot, attr) {
                break;
            }
            pos += 1;
        }
        Ok(())
    }

    /// Closes a directory listing handle.
    pub fn releasedir(&self, fh: u64) {
        self.shared.dirs.remove(fh);
    }
}

/// The master's request for creating `node` on behalf of `caller`.
fn node_request(caller: Caller, node: NewNode<'_>) -> pb::MakeNodeRequest {
    pb::MakeNodeRequest {
        parent: node.parent,
        name: node.name.to_vec(),
        kind: node.kind as i32,
        perm: node.perm,
        uid: caller.uid,
        gid: caller.gid,
        rdev: node.rdev,
        symlink_target: node.symlink_target.to_vec(),
        exclusive: node.exclusive,
    }
}

/// Whether `open` flags ask for read access (a read marks atime).
fn opens_for_reading(flags: i32) -> bool {
    flags & libc::O_ACCMODE != libc::O_WRONLY
}

/// Whether an `open` with `flags` may write (and so needs the file's writer lease).
fn opens_for_writing(flags: i32) -> bool {
    flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0
}

/// The mtime of a `SetAttr` that changes mtime and nothing else.
fn only_mtime(req: &pb::SetAttrRequest) -> Option<pb::Timestamp> {
    let other = req.perm.is_some()
        || req.uid.is_some()
        || req.gid.is_some()
        || req.size.is_some()
        || req.atime.is_some()
        || req.mark_access;
    if other { None } else { req.mtime }
}

/// A `SetAttr` that truncates a file to zero, as `open(O_TRUNC)` does (and so updates mtime).
fn truncate_request(ino: u64) -> pb::SetAttrRequest {
    pb::SetAttrRequest {
        ino,
        size: Some(0),
        mtime: Some(dfs_proto::time::now()),
        ..Default::default()
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
            chunks: ChunkIo::new(std::time::Duration::from_millis(100)),
            layout: ChunkLayout::new(64 << 20, 64 << 10),
            cache: BlockCache::new(1 << 20),
            write_budget: WriteBudget::new(4 << 20),
            cache_writes: true,
        };
        let client = Client::new(io, 3, 1 << 20, 0, std::time::Duration::ZERO);
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
