//! The `fuser::Filesystem` adapter: kernel requests in, [`Client`] calls, replies out.
//!
//! Every request is moved into a task on the tokio runtime and replied to from there, so the
//! threads reading `/dev/fuse` never wait on the network: a slow read of one file never blocks
//! a `stat` of another. Handlers only copy the request's arguments (the request buffer is
//! reused as soon as they return), call the client, and map errors to errno through
//! [`crate::error::errno`], the crate's one mapping. The exceptions need no
//! waiting and are answered from the reading thread, saving a thread hand-off per request: a
//! write that only lands in the file's write-back buffer, a read-only open right after its
//! lookup, a read of cached blocks, the flush
//! and release of a handle that owes nothing, a `getattr` right after an atime-marking open,
//! a `chmod`/`chown`/`utimens` kept for the commit of buffered writes, `opendir`, a `readdir`
//! of a wholly fetched listing, and xattrs that are never stored.
//!
//! The trait implementation is here, as a table from kernel requests to handlers; the handlers
//! are grouped by concern in submodules: `namespace` (names, attributes, `statfs`), `files`
//! (open, create, read, write, flush, release), `dirs` (listings), `xattrs` (extended
//! attributes), `session` (what `init` negotiates) and `reply` (running an operation on the
//! runtime and answering the kernel). Advisory locks are handled here, in `crate::locks`.
//! Each method first makes its request the one being served ([`FuseMetrics::dispatch`]), so
//! that it is counted and timed until its reply wherever that is sent.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use dfs_client::{Client, FileKind};
use fuser::{
    AccessFlags, BsdFileFlags, Errno, FileHandle, Filesystem, Generation, INodeNo, IoctlFlags,
    KernelConfig, LockOwner, Notifier, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyLock, ReplyOpen,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use tokio::runtime::Handle;

use crate::locks::{LockRange, MountLocks};
use crate::metrics::{FuseMetrics, FuseOp};
use crate::readdir::DirHandles;

mod dirs;
mod files;
mod namespace;
mod reply;
mod session;
mod xattrs;

use self::reply::{caller, name_of};
use crate::error::errno;

/// Largest read or write request: 1 MiB, so sequential I/O moves in large pieces.
pub const MAX_REQUEST_BYTES: u32 = 1 << 20;

/// Readahead asked of the kernel (it may grant less).
pub const MAX_READAHEAD_BYTES: u32 = 4 << 20;

/// Generation of every inode: the master never reuses inode numbers.
const GENERATION: Generation = Generation(0);

/// The dfs filesystem as the kernel sees it.
#[derive(Debug)]
pub struct DfsFs {
    client: Client,
    runtime: Handle,
    attr_ttl: Duration,
    entry_ttl: Duration,
    /// Set once the session exists (the notifier comes from it, after the filesystem).
    notifier: Arc<OnceLock<Notifier>>,
    /// Advisory locks, held through the master.
    locks: Arc<MountLocks>,
    /// Open directory listings, by handle.
    dirs: Arc<DirHandles>,
    /// Every request counted and timed (see [`crate::metrics`]).
    metrics: FuseMetrics,
}

impl DfsFs {
    /// The filesystem over `client`, running its requests on `runtime`.
    pub fn new(client: Client, runtime: Handle, attr_ttl: Duration, entry_ttl: Duration) -> DfsFs {
        let locks = MountLocks::new(client.master().clone(), client.session_id().to_string());
        DfsFs {
            client,
            runtime,
            attr_ttl,
            entry_ttl,
            notifier: Arc::default(),
            locks,
            dirs: Arc::default(),
            metrics: FuseMetrics::default(),
        }
    }

    /// Counts and times every request in `metrics`.
    pub fn with_metrics(mut self, metrics: FuseMetrics) -> DfsFs {
        self.metrics = metrics;
        self
    }

    /// Where the session's notifier goes once the session is created.
    pub fn notifier_slot(&self) -> Arc<OnceLock<Notifier>> {
        self.notifier.clone()
    }
}

impl Filesystem for DfsFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        session::configure(config);
        Ok(())
    }

    fn destroy(&mut self) {
        // Runs on the session thread, outside the runtime: block until open files are flushed.
        let (client, locks) = (self.client.clone(), self.locks.clone());
        self.runtime.block_on(async move {
            client.flush_all().await;
            locks.end_session().await;
        });
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let _request = self.metrics.dispatch(FuseOp::Lookup);
        self.look_up(parent, name_of(name), req.pid(), reply);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let _request = self.metrics.dispatch(FuseOp::Getattr);
        self.get_attr(ino, reply);
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let _request = self.metrics.dispatch(FuseOp::Setattr);
        self.set_attr(ino, mode, uid, gid, size, atime, mtime, reply);
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let _request = self.metrics.dispatch(FuseOp::Readlink);
        self.read_link(ino, reply);
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let _request = self.metrics.dispatch(FuseOp::Mknod);
        let (caller, name, kind) = (caller(req), name_of(name), FileKind::from_mode(mode));
        self.make_node(caller, parent, name, kind, mode, umask, rdev, vec![], reply);
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let _request = self.metrics.dispatch(FuseOp::Mkdir);
        let (caller, name, kind) = (caller(req), name_of(name), FileKind::Directory);
        self.make_node(caller, parent, name, kind, mode, umask, 0, vec![], reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _request = self.metrics.dispatch(FuseOp::Unlink);
        self.remove_file(parent, name_of(name), reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _request = self.metrics.dispatch(FuseOp::Rmdir);
        self.remove_dir(parent, name_of(name), reply);
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let _request = self.metrics.dispatch(FuseOp::Symlink);
        let (caller, name, kind) = (caller(req), name_of(link_name), FileKind::Symlink);
        let target = target.as_os_str().as_bytes().to_vec();
        self.make_node(caller, parent, name, kind, 0o777, 0, 0, target, reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let _request = self.metrics.dispatch(FuseOp::Rename);
        let (name, newname) = (name_of(name), name_of(newname));
        self.rename_entry(parent, name, newparent, newname, flags.bits(), reply);
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let _request = self.metrics.dispatch(FuseOp::Link);
        self.hard_link(ino, newparent, name_of(newname), reply);
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let _request = self.metrics.dispatch(FuseOp::Open);
        self.open_file(ino, flags, req.pid(), reply);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let _request = self.metrics.dispatch(FuseOp::Read);
        self.read_file(ino, offset, size, reply);
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let _request = self.metrics.dispatch(FuseOp::Write);
        self.write_file(ino, offset, data, reply);
    }

    fn flush(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let _request = self.metrics.dispatch(FuseOp::Flush);
        self.flush_file(ino, lock_owner, reply);
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let _request = self.metrics.dispatch(FuseOp::Release);
        self.release_file(ino, fh, reply);
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let _request = self.metrics.dispatch(FuseOp::Fsync);
        self.reply_empty(reply, |client| async move { client.fsync(ino.0).await });
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let _request = self.metrics.dispatch(FuseOp::Opendir);
        self.open_dir(ino, reply);
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectory,
    ) {
        let _request = self.metrics.dispatch(FuseOp::Readdir);
        self.list_dir(fh, offset, reply);
    }

    fn readdirplus(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectoryPlus,
    ) {
        let _request = self.metrics.dispatch(FuseOp::Readdirplus);
        self.list_dir_plus(fh, offset, reply);
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        let _request = self.metrics.dispatch(FuseOp::Releasedir);
        self.release_dir(fh);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let _request = self.metrics.dispatch(FuseOp::Fsyncdir);
        self.reply_empty(reply, |client| async move { client.fsyncdir().await });
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let _request = self.metrics.dispatch(FuseOp::Statfs);
        self.stat_fs(reply);
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        let _request = self.metrics.dispatch(FuseOp::Access);
        self.reply_empty(reply, |client| async move { client.access(ino.0).await });
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let _request = self.metrics.dispatch(FuseOp::Create);
        let (caller, name) = (caller(req), name_of(name));
        self.create_file(caller, parent, name, mode, umask, flags, reply);
    }

    // Extended attributes: see `crate::xattr`.

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let _request = self.metrics.dispatch(FuseOp::Setxattr);
        self.set_xattr(ino, name_of(name), value.to_vec(), flags, reply);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let _request = self.metrics.dispatch(FuseOp::Getxattr);
        self.get_xattr(ino, name_of(name), size, reply);
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let _request = self.metrics.dispatch(FuseOp::Listxattr);
        self.list_xattrs(ino, size, reply);
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _request = self.metrics.dispatch(FuseOp::Removexattr);
        self.remove_xattr(ino, name_of(name), reply);
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let _request = self.metrics.dispatch(FuseOp::Fallocate);
        self.reply_empty(reply, |client| async move {
            client.fallocate(ino.0, offset, length, mode).await
        });
    }

    // Advisory locks: see `crate::locks`.

    fn getlk(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        lock_owner: LockOwner,
        start: u64,
        end: u64,
        typ: i32,
        pid: u32,
        reply: ReplyLock,
    ) {
        let _request = self.metrics.dispatch(FuseOp::Getlk);
        let range = LockRange::new(ino.0, fh.0, lock_owner.0, (start, end), typ, pid);
        let locks = self.locks.clone();
        self.spawn(|_| async move {
            match locks.test(&range).await {
                Ok(Some(held)) => reply.locked(held.start, held.end, held.typ, held.pid),
                Ok(None) => reply.locked(start, end, libc::F_UNLCK, 0),
                Err(err) => reply.error(errno(&err)),
            }
        });
    }

    fn setlk(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        lock_owner: LockOwner,
        start: u64,
        end: u64,
        typ: i32,
        pid: u32,
        sleep: bool,
        reply: ReplyEmpty,
    ) {
        let _request = self.metrics.dispatch(FuseOp::Setlk);
        let range = LockRange::new(ino.0, fh.0, lock_owner.0, (start, end), typ, pid);
        // A blocking request stops waiting when the calling thread has a signal to handle.
        let (caller, locks) = (sleep.then(|| req.pid()), self.locks.clone());
        self.reply_empty(reply, |_| async move { locks.set(&range, caller).await });
    }

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        let _request = self.metrics.dispatch(FuseOp::Ioctl);
        // No ioctls (e.g. the TCGETS of an isatty() check): "not a terminal", quietly.
        reply.error(Errno::ENOTTY);
    }
}
