//! Names and attributes as the kernel sees them: lookups, `getattr`/`setattr`, creating,
//! linking, renaming and removing names, symlink targets and `statfs`.

use std::time::Duration;

use dfs_proto::MAX_NAME_LEN;
use fuser::{INodeNo, ReplyAttr, ReplyData, ReplyEmpty, ReplyEntry, ReplyStatfs, TimeOrNow};

use super::{DfsFs, GENERATION};
use crate::error::errno;
use dfs_client::{Caller, FileKind, STATFS_BLOCK_SIZE, SetAttr};

use crate::attr::{file_attr, set_time};

impl DfsFs {
    /// `lookup`: the entry `name` of directory `parent`, for process `pid`.
    ///
    /// A name whose lookup kept a chunk map for the open that may follow is given to the
    /// kernel with no entry lifetime, so that every later path walk to it (the next `open`
    /// included) looks it up again. An open then only ever uses a map fetched after the open
    /// began: with a cached name, a `stat` followed by an `open` would open the file as of
    /// the `stat`, missing another mount's close in between (close-to-open).
    pub(super) fn look_up(&self, parent: INodeNo, name: Vec<u8>, pid: u32, reply: ReplyEntry) {
        let (attr_ttl, entry_ttl) = (self.attr_ttl, self.entry_ttl);
        self.spawn(|client| async move {
            match client.lookup(parent.0, &name, pid).await {
                Ok((attr, ahead)) => {
                    let entry_ttl = if ahead { Duration::ZERO } else { entry_ttl };
                    let attr = file_attr(&attr);
                    reply.entry_with_ttls(&attr_ttl, &entry_ttl, &attr, GENERATION);
                }
                Err(err) => reply.error(errno(&err)),
            }
        });
    }

    /// `getattr`: the attributes of `ino`.
    pub(super) fn get_attr(&self, ino: INodeNo, reply: ReplyAttr) {
        // Right after an open that marked atime: answered with the attributes it fetched.
        if let Some(attr) = self.client.getattr_now(ino.0, self.attr_ttl) {
            return reply.attr(&self.attr_ttl, &file_attr(&attr));
        }
        self.reply_attr(reply, |client| async move { client.getattr(ino.0).await });
    }

    /// `setattr`: changes the attributes given (`chmod`, `chown`, `truncate`, `utimes`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn set_attr(
        &self,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        reply: ReplyAttr,
    ) {
        let change = SetAttr {
            perm: mode,
            uid,
            gid,
            size,
            atime: atime.map(set_time),
            mtime: mtime.map(set_time),
        };
        // A change kept for the commit of buffered writes needs no waiting: answered here,
        // inside the runtime's context to start the file's sender.
        let kept = {
            let _runtime = self.runtime.enter();
            self.client.setattr_now(ino.0, &change)
        };
        if let Some(attr) = kept {
            return reply.attr(&self.attr_ttl, &file_attr(&attr));
        }
        self.reply_attr(reply, |client| async move {
            client.setattr(ino.0, &change).await
        });
    }

    /// `readlink`: the target of symlink `ino`.
    pub(super) fn read_link(&self, ino: INodeNo, reply: ReplyData) {
        self.spawn(|client| async move {
            match client.readlink(ino.0).await {
                Ok(target) => reply.data(&target),
                Err(err) => reply.error(errno(&err)),
            }
        });
    }

    /// `mknod`, `mkdir` and `symlink`: a new node of `kind` named `name` in `parent`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn make_node(
        &self,
        caller: Caller,
        parent: INodeNo,
        name: Vec<u8>,
        kind: FileKind,
        mode: u32,
        umask: u32,
        rdev: u32,
        target: Vec<u8>,
        reply: ReplyEntry,
    ) {
        self.reply_entry(reply, |client| async move {
            client
                .make_node(caller, parent.0, &name, kind, mode, umask, rdev, &target)
                .await
        });
    }

    /// `unlink`: removes the non-directory entry `name` of `parent`.
    pub(super) fn remove_file(&self, parent: INodeNo, name: Vec<u8>, reply: ReplyEmpty) {
        self.reply_empty(reply, |client| async move {
            client.unlink(parent.0, &name).await
        });
    }

    /// `rmdir`: removes the empty directory `name` of `parent`.
    pub(super) fn remove_dir(&self, parent: INodeNo, name: Vec<u8>, reply: ReplyEmpty) {
        self.reply_empty(reply, |client| async move {
            client.rmdir(parent.0, &name).await
        });
    }

    /// `rename`: moves an entry, as the `renameat2` `flags` say.
    pub(super) fn rename_entry(
        &self,
        parent: INodeNo,
        name: Vec<u8>,
        newparent: INodeNo,
        newname: Vec<u8>,
        flags: u32,
        reply: ReplyEmpty,
    ) {
        self.reply_empty(reply, |client| async move {
            client
                .rename(parent.0, &name, newparent.0, &newname, flags)
                .await
        });
    }

    /// `link`: a new name `newname` in `newparent` for `ino`.
    pub(super) fn hard_link(
        &self,
        ino: INodeNo,
        newparent: INodeNo,
        newname: Vec<u8>,
        reply: ReplyEntry,
    ) {
        self.reply_entry(reply, |client| async move {
            client.link(ino.0, newparent.0, &newname).await
        });
    }

    /// `statfs`: capacity and usage of the cluster.
    pub(super) fn stat_fs(&self, reply: ReplyStatfs) {
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
                Err(err) => reply.error(errno(&err)),
            }
        });
    }
}
