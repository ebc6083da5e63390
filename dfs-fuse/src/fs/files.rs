//! Open files as the kernel sees them: open and create (with the page-cache decision), reads
//! and writes (answered from the reading thread when they need no waiting), flush and release
//! (data first, then the file's advisory locks; answered from the reading thread when nothing
//! is owed, as for a file only read).

use std::sync::OnceLock;

use fuser::{
    FileHandle, FopenFlags, INodeNo, LockOwner, Notifier, OpenFlags, ReplyCreate, ReplyData,
    ReplyEmpty, ReplyOpen, ReplyWrite,
};

use dfs_client::{Caller, Opened};

use super::{DfsFs, GENERATION};
use crate::attr::file_attr;
use crate::error::errno;
use crate::metrics;

/// Makes the kernel drop its cached attributes of `ino`, so the next `stat` or read past the
/// cached size asks again. Needed at an open that found the file changed by another mount:
/// without it the kernel would clip reads at the size it cached before the change. (An atime
/// mark needs no such call: see `Client::open`.)
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
    /// `open` by process `pid`: opens `ino`, dropping the kernel's attributes if they went
    /// stale.
    pub(super) fn open_file(&self, ino: INodeNo, flags: OpenFlags, pid: u32, reply: ReplyOpen) {
        // A read-only open right after its lookup needs no waiting: answered here, inside
        // the runtime's context (an atime mark may start its batch).
        let now = {
            let _runtime = self.runtime.enter();
            self.client
                .open_now(ino.0, dfs_client::OpenFlags::from_posix(flags.0), pid)
        };
        if let Some(opened) = now {
            if opened.attrs_stale {
                invalidate_attrs(&self.notifier, ino);
            }
            return reply.opened(FileHandle(opened.fh), open_flags(opened));
        }
        let notifier = self.notifier.clone();
        self.spawn(|client| async move {
            let flags = dfs_client::OpenFlags::from_posix(flags.0);
            match client.open(ino.0, flags, Some(pid)).await {
                Ok(opened) => {
                    if opened.attrs_stale {
                        invalidate_attrs(&notifier, ino);
                    }
                    reply.opened(FileHandle(opened.fh), open_flags(opened))
                }
                Err(err) => reply.error(errno(&err)),
            }
        });
    }

    /// `create`: creates (or finds) and opens a regular file.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn create_file(
        &self,
        caller: Caller,
        parent: INodeNo,
        name: Vec<u8>,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let ttl = self.attr_ttl;
        self.spawn(|client| async move {
            match client
                .create(
                    caller,
                    parent.0,
                    &name,
                    mode,
                    umask,
                    dfs_client::OpenFlags::from_posix(flags),
                )
                .await
            {
                Ok((attr, opened)) => reply.created(
                    &ttl,
                    &file_attr(&attr),
                    GENERATION,
                    FileHandle(opened.fh),
                    open_flags(opened),
                ),
                Err(err) => reply.error(errno(&err)),
            }
        });
    }

    /// `read`: cached data is answered from this thread; the rest waits on the runtime.
    pub(super) fn read_file(&self, ino: INodeNo, offset: u64, size: u32, reply: ReplyData) {
        let _runtime = self.runtime.enter();
        if let Some(data) = self.client.read_now(ino.0, offset, size) {
            metrics::note_bytes(data.len());
            reply.data(&data);
            return;
        }
        self.spawn(|client| async move {
            match client.read(ino.0, offset, size).await {
                Ok(data) => {
                    metrics::note_bytes(data.len());
                    reply.data(&data)
                }
                Err(err) => reply.error(errno(&err)),
            }
        });
    }

    /// `write`: most writes only land in the file's write-back buffer and are answered from
    /// this thread; the rest wait on the runtime.
    pub(super) fn write_file(&self, ino: INodeNo, offset: u64, data: &[u8], reply: ReplyWrite) {
        // Without a hand-off to the runtime, but inside its context, to start a sender.
        let fast = {
            let _runtime = self.runtime.enter();
            self.client.try_write(ino.0, offset, data)
        };
        match fast {
            Some(Ok(written)) => {
                metrics::note_bytes(written as usize);
                return reply.written(written);
            }
            Some(Err(err)) => return reply.error(errno(&err)),
            None => {}
        }
        let data = data.to_vec();
        self.spawn(|client| async move {
            match client.write(ino.0, offset, &data).await {
                Ok(written) => {
                    metrics::note_bytes(written as usize);
                    reply.written(written)
                }
                Err(err) => reply.error(errno(&err)),
            }
        });
    }

    /// `flush` (at every `close`): commits the file's writes, then drops the classic locks of
    /// the closing process on the file.
    pub(super) fn flush_file(&self, ino: INodeNo, lock_owner: LockOwner, reply: ReplyEmpty) {
        // Nothing owed (the close of a file only read): answered from this thread.
        if !self.locks.may_hold(ino.0) && self.client.flush_now(ino.0) {
            return reply.ok();
        }
        let locks = self.locks.clone();
        self.reply_empty(reply, |client| async move {
            // Data first: whoever gets the lock next must see what was written under it.
            let flushed = client.flush(ino.0).await;
            locks.flush(ino.0, lock_owner.0).await;
            flushed
        });
    }

    /// `release` (the last close of a handle): drops the handle, then its `flock` and OFD
    /// locks.
    pub(super) fn release_file(&self, ino: INodeNo, fh: FileHandle, reply: ReplyEmpty) {
        // Nothing to flush, no lease or lock to give back: answered from this thread.
        if !self.locks.may_hold(ino.0) && self.client.release_now(ino.0) {
            return reply.ok();
        }
        let locks = self.locks.clone();
        self.reply_empty(reply, |client| async move {
            let released = client.release(ino.0).await;
            locks.release(ino.0, fh.0).await;
            released
        });
    }
}
