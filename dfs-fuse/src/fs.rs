//! The `fuser::Filesystem` adapter: kernel requests in, [`Client`] calls, replies out.
//!
//! Every request is moved into a task on the tokio runtime and replied to from there, so the
//! threads reading `/dev/fuse` never wait on the network: a slow read of one file never blocks
//! a `stat` of another. Handlers only copy the request's arguments (the request buffer is
//! reused as soon as they return), call the client, and map errors to errno through
//! [`Error::errno`], the crate's one mapping. One exception: a write that only lands in the
//! file's write-back buffer (no waiting) is answered from the reading thread, saving a thread
//! hand-off per request.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use dfs_proto::pb::{self, FileKind};
use dfs_proto::{FsError, MAX_NAME_LEN};
use fuser::{
    AccessFlags, BsdFileFlags, Errno, FileHandle, Filesystem, FopenFlags, Generation, INodeNo,
    InitFlags, IoctlFlags, KernelConfig, LockOwner, Notifier, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl,
    ReplyLock, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use tokio::runtime::Handle;

use crate::attr::{kind_from_mode, wire_time};
use crate::client::{Caller, Client, Opened, STATFS_BLOCK_SIZE};
use crate::error::Error;
use crate::locks::{LockRange, MountLocks};
use crate::prealloc;
use crate::xattr::{self, Sized, XattrError};

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
}

fn errno(err: FsError) -> Errno {
    Error::from(err).errno()
}

fn caller(req: &Request) -> Caller {
    Caller {
        uid: req.uid(),
        gid: req.gid(),
    }
}

/// Makes the kernel drop its cached attributes of `ino`, so the next `stat` or read past the
/// cached size asks again. Needed at an open that found the file changed by another mount:
/// without it the kernel would clip reads at the size it cached before the change.
fn invalidate_attrs(notifier: &OnceLock<Notifier>, ino: INodeNo) {
    if let Some(notifier) = notifier.get() {
        // Offset -1: attributes only; the page cache is dropped by opening without KEEP_CACHE.
        // ENOENT just means the kernel has nothing cached.
        if let Err(err) = notifier.inval_inode(ino, -1, 0) {
            tracing::debug!(ino = ino.0, error = %err, "attribute invalidation refused");
        }
    }
}

fn open_flags(opened: Opened) -> FopenFlags {
    if opened.keep_cache {
        FopenFlags::FOPEN_KEEP_CACHE
    } else {
        FopenFlags::empty()
    }
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
        }
    }

    /// Where the session's notifier goes once the session is created.
    pub fn notifier_slot(&self) -> Arc<OnceLock<Notifier>> {
        self.notifier.clone()
    }

    /// Runs the task `op` builds from a clone of the client on the runtime.
    fn spawn<Fut>(&self, op: impl FnOnce(Client) -> Fut)
    where
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.runtime.spawn(op(self.client.clone()));
    }

    /// Runs an operation that answers with a new or found entry.
    fn reply_entry<Fut>(&self, reply: ReplyEntry, op: impl FnOnce(Client) -> Fut)
    where
        Fut: Future<Output = Result<fuser::FileAttr, FsError>> + Send + 'static,
    {
        let (attr_ttl, entry_ttl) = (self.attr_ttl, self.entry_ttl);
        let op = op(self.client.clone());
        self.runtime.spawn(async move {
            match op.await {
                Ok(attr) => reply.entry_with_ttls(&attr_ttl, &entry_ttl, &attr, GENERATION),
                Err(err) => reply.error(errno(err)),
            }
        });
    }

    /// Runs an operation that answers with nothing.
    fn reply_empty<Fut>(&self, reply: ReplyEmpty, op: impl FnOnce(Client) -> Fut)
    where
        Fut: Future<Output = Result<(), FsError>> + Send + 'static,
    {
        let op = op(self.client.clone());
        self.runtime.spawn(async move {
            match op.await {
                Ok(()) => reply.ok(),
                Err(err) => reply.error(errno(err)),
            }
        });
    }

    /// Runs an operation that answers with attributes.
    fn reply_attr<Fut>(&self, reply: ReplyAttr, op: impl FnOnce(Client) -> Fut)
    where
        Fut: Future<Output = Result<fuser::FileAttr, FsError>> + Send + 'static,
    {
        let ttl = self.attr_ttl;
        let op = op(self.client.clone());
        self.runtime.spawn(async move {
            match op.await {
                Ok(attr) => reply.attr(&ttl, &attr),
                Err(err) => reply.error(errno(err)),
            }
        });
    }
}

fn xattr_errno(err: XattrError) -> Errno {
    match err {
        XattrError::Fs(err) => errno(err),
        XattrError::Errno(code) => Errno::from_i32(code),
    }
}

/// Answers `getxattr`/`listxattr` for a caller's buffer of `size` bytes.
fn reply_sized(reply: ReplyXattr, bytes: Result<Vec<u8>, Errno>, size: u32) {
    match bytes.map(|bytes| xattr::fit(bytes, size)) {
        Ok(Ok(Sized::Len(len))) => reply.size(len),
        Ok(Ok(Sized::Data(data))) => reply.data(&data),
        Ok(Err(code)) => reply.error(Errno::from_i32(code)),
        Err(err) => reply.error(err),
    }
}

/// Copies a name out of the request buffer.
fn name_of(name: &OsStr) -> Vec<u8> {
    name.as_bytes().to_vec()
}

impl Filesystem for DfsFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        if let Err(max) = config.set_max_write(MAX_REQUEST_BYTES) {
            let _ = config.set_max_write(max);
        }
        if let Err(max) = config.set_max_readahead(MAX_READAHEAD_BYTES) {
            let _ = config.set_max_readahead(max);
        }
        // Room for parallel readahead and async reads in flight.
        let _ = config.set_max_background(64);
        let _ = config.set_congestion_threshold(48);
        // Not FUSE_WRITEBACK_CACHE: it trades cross-mount consistency for small-write speed.
        for flag in [
            InitFlags::FUSE_ASYNC_READ,
            InitFlags::FUSE_BIG_WRITES,
            InitFlags::FUSE_MAX_PAGES,
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_READDIRPLUS_AUTO,
            InitFlags::FUSE_ATOMIC_O_TRUNC,
            InitFlags::FUSE_CACHE_SYMLINKS,
            // Advisory locks go to the master (see `crate::locks`), not the local kernel.
            InitFlags::FUSE_POSIX_LOCKS,
            InitFlags::FUSE_FLOCK_LOCKS,
        ] {
            if let Err(missing) = config.add_capabilities(flag) {
                tracing::info!(?missing, "kernel lacks a FUSE capability");
            }
        }
        tracing::info!(abi = ?config.kernel_abi(), "FUSE session initialised");
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

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let name = name_of(name);
        self.reply_entry(reply, |client| async move {
            client.lookup(parent.0, &name).await
        });
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.reply_attr(reply, |client| async move { client.getattr(ino.0).await });
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
        let req = pb::SetAttrRequest {
            ino: ino.0,
            perm: mode.map(|m| m & 0o7777),
            uid,
            gid,
            size,
            atime: atime.map(wire_time),
            mtime: mtime.map(wire_time),
            mark_access: false,
        };
        self.reply_attr(reply, |client| async move { client.setattr(req).await });
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.spawn(|client| async move {
            match client.readlink(ino.0).await {
                Ok(target) => reply.data(&target),
                Err(err) => reply.error(errno(err)),
            }
        });
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
        let (caller, name, kind) = (caller(req), name_of(name), kind_from_mode(mode));
        self.reply_entry(reply, |client| async move {
            client
                .make_node(caller, parent.0, &name, kind, mode, umask, rdev, &[])
                .await
        });
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
        let (caller, name) = (caller(req), name_of(name));
        self.reply_entry(reply, |client| async move {
            client
                .make_node(
                    caller,
                    parent.0,
                    &name,
                    FileKind::Directory,
                    mode,
                    umask,
                    0,
                    &[],
                )
                .await
        });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name_of(name);
        self.reply_empty(reply, |client| async move {
            client.unlink(parent.0, &name).await
        });
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name_of(name);
        self.reply_empty(reply, |client| async move {
            client.rmdir(parent.0, &name).await
        });
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let (caller, name, target) = (
            caller(req),
            name_of(link_name),
            target.as_os_str().as_bytes().to_vec(),
        );
        self.reply_entry(reply, |client| async move {
            client
                .make_node(
                    caller,
                    parent.0,
                    &name,
                    FileKind::Symlink,
                    0o777,
                    0,
                    0,
                    &target,
                )
                .await
        });
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
        let (name, newname) = (name_of(name), name_of(newname));
        self.reply_empty(reply, |client| async move {
            client
                .rename(parent.0, &name, newparent.0, &newname, flags.bits())
                .await
        });
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let newname = name_of(newname);
        self.reply_entry(reply, |client| async move {
            client.link(ino.0, newparent.0, &newname).await
        });
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let notifier = self.notifier.clone();
        self.spawn(|client| async move {
            match client.open(ino.0, flags.0).await {
                Ok(opened) => {
                    if !opened.keep_cache || opened.attrs_changed {
                        invalidate_attrs(&notifier, ino);
                    }
                    reply.opened(FileHandle(opened.fh), open_flags(opened))
                }
                Err(err) => reply.error(errno(err)),
            }
        });
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
        // Cached data is answered from this thread; the rest waits on the runtime.
        let _runtime = self.runtime.enter();
        if let Some(data) = self.client.read_now(ino.0, offset, size) {
            reply.data(&data);
            return;
        }
        self.spawn(|client| async move {
            match client.read(ino.0, offset, size).await {
                Ok(data) => reply.data(&data),
                Err(err) => reply.error(errno(err)),
            }
        });
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
        // Most writes only land in the file's write-back buffer: answered from this thread,
        // without a hand-off to the runtime (inside its context, to start a sender).
        let fast = {
            let _runtime = self.runtime.enter();
            self.client.try_write(ino.0, offset, data)
        };
        match fast {
            Some(Ok(written)) => return reply.written(written),
            Some(Err(err)) => return reply.error(errno(err)),
            None => {}
        }
        let data = data.to_vec();
        self.spawn(|client| async move {
            match client.write(ino.0, offset, &data).await {
                Ok(written) => reply.written(written),
                Err(err) => reply.error(errno(err)),
            }
        });
    }

    fn flush(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let locks = self.locks.clone();
        self.reply_empty(reply, |client| async move {
            // Data first: whoever gets the lock next must see what was written under it.
            let flushed = client.flush(ino.0).await;
            locks.flush(ino.0, lock_owner.0).await;
            flushed
        });
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
        let locks = self.locks.clone();
        self.reply_empty(reply, |client| async move {
            let released = client.release(ino.0).await;
            locks.release(ino.0, fh.0).await;
            released
        });
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.reply_empty(reply, |client| async move { client.fsync(ino.0).await });
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.spawn(|client| async move {
            match client.opendir(ino.0).await {
                Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
                Err(err) => reply.error(errno(err)),
            }
        });
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        self.spawn(|client| async move {
            let result = client
                .readdir(fh.0, offset, |cookie, slot, attr| {
                    reply.add(attr.ino, cookie, attr.kind, OsStr::from_bytes(slot.name()))
                })
                .await;
            match result {
                Ok(()) => reply.ok(),
                Err(err) => reply.error(errno(err)),
            }
        });
    }

    fn readdirplus(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let ttl = self.attr_ttl.min(self.entry_ttl);
        self.spawn(|client| async move {
            let result = client
                .readdir(fh.0, offset, |cookie, slot, attr| {
                    reply.add(
                        attr.ino,
                        cookie,
                        OsStr::from_bytes(slot.name()),
                        &ttl,
                        &attr,
                        GENERATION,
                    )
                })
                .await;
            match result {
                Ok(()) => reply.ok(),
                Err(err) => reply.error(errno(err)),
            }
        });
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.client.releasedir(fh.0);
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
        // Namespace changes are durable on the master when it acknowledges them.
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        self.spawn(|client| async move {
            match client.statfs().await {
                Ok(st) => reply.statfs(
                    st.blocks,
                    st.bfree,
                    st.bfree,
                    st.files,
                    st.ffree,
                    STATFS_BLOCK_SIZE,
                    MAX_NAME_LEN as u32,
                    STATFS_BLOCK_SIZE,
                ),
                Err(err) => reply.error(errno(err)),
            }
        });
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
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
        let (caller, name, ttl) = (caller(req), name_of(name), self.attr_ttl);
        self.spawn(|client| async move {
            match client
                .create(caller, parent.0, &name, mode, umask, flags)
                .await
            {
                Ok((attr, opened)) => reply.created(
                    &ttl,
                    &attr,
                    GENERATION,
                    FileHandle(opened.fh),
                    open_flags(opened),
                ),
                Err(err) => reply.error(errno(err)),
            }
        });
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
        let (name, value) = (name_of(name), value.to_vec());
        self.spawn(|client| async move {
            match client.set_xattr(ino.0, &name, &value, flags).await {
                Ok(()) => reply.ok(),
                Err(err) => reply.error(xattr_errno(err)),
            }
        });
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let name = name_of(name);
        if !crate::xattr::stored(&name) {
            // `ls -l` asks for `security.selinux` and `system.posix_acl_access` of every
            // file, and the kernel for `security.capability` before every write: answered
            // right here, without a hand-off to the runtime.
            reply.error(Errno::from_i32(libc::ENODATA));
            return;
        }
        self.spawn(|client| async move {
            let value = client.get_xattr(ino.0, &name).await.map_err(errno);
            reply_sized(reply, value, size);
        });
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        self.spawn(|client| async move {
            let list = client.list_xattrs(ino.0).await.map_err(errno);
            reply_sized(reply, list, size);
        });
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name_of(name);
        self.spawn(|client| async move {
            match client.remove_xattr(ino.0, &name).await {
                Ok(()) => reply.ok(),
                Err(err) => reply.error(xattr_errno(err)),
            }
        });
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
        self.reply_empty(reply, |client| async move {
            prealloc::fallocate(&client, ino.0, offset, length, mode).await
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
        let range = LockRange::new(ino.0, fh.0, lock_owner.0, (start, end), typ, pid);
        let locks = self.locks.clone();
        self.runtime.spawn(async move {
            match locks.test(&range).await {
                Ok(Some(held)) => reply.locked(held.start, held.end, held.typ, held.pid),
                Ok(None) => reply.locked(start, end, libc::F_UNLCK, 0),
                Err(err) => reply.error(errno(err)),
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
        // No ioctls (e.g. the TCGETS of an isatty() check): "not a terminal", quietly.
        reply.error(Errno::ENOTTY);
    }
}
