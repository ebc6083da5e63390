//! Directory listings as the kernel sees them: `opendir`, and `readdir`/`readdirplus` filling
//! the kernel's buffer from the client's paged listing (from the reading thread when the
//! listing is wholly fetched, as for the call that finds its end).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use fuser::{FileHandle, FopenFlags, INodeNo, ReplyDirectory, ReplyDirectoryPlus, ReplyOpen};

use super::{DfsFs, GENERATION};
use crate::attr::{file_attr, file_type};
use crate::error::errno;

impl DfsFs {
    /// `opendir`: a listing handle of directory `ino`.
    /// Answered from this thread: the listing's first page brings what opening needs.
    pub(super) fn open_dir(&self, ino: INodeNo, reply: ReplyOpen) {
        let fh = self.client.opendir(ino.0);
        reply.opened(FileHandle(fh), FopenFlags::empty());
    }

    /// `readdir`: names, inode numbers and kinds from position `offset` of the listing.
    pub(super) fn list_dir(&self, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let fed = self.client.readdir_now(fh.0, offset, |cookie, slot, attr| {
            reply.add(
                INodeNo(attr.ino),
                cookie,
                file_type(attr.kind),
                OsStr::from_bytes(slot.name()),
            )
        });
        if fed {
            return reply.ok();
        }
        self.spawn(|client| async move {
            let result = client
                .readdir(fh.0, offset, |cookie, slot, attr| {
                    reply.add(
                        INodeNo(attr.ino),
                        cookie,
                        file_type(attr.kind),
                        OsStr::from_bytes(slot.name()),
                    )
                })
                .await;
            match result {
                Ok(()) => reply.ok(),
                Err(err) => reply.error(errno(&err)),
            }
        });
    }

    /// `readdirplus`: entries with their attributes, so `ls -l` needs no `lookup` per name.
    pub(super) fn list_dir_plus(&self, fh: FileHandle, offset: u64, mut reply: ReplyDirectoryPlus) {
        let ttl = self.attr_ttl.min(self.entry_ttl);
        // The kernel's last call of a listing, which finds its end, needs no waiting.
        let fed = self.client.readdir_now(fh.0, offset, |cookie, slot, attr| {
            reply.add(
                INodeNo(attr.ino),
                cookie,
                OsStr::from_bytes(slot.name()),
                &ttl,
                &file_attr(&attr),
                GENERATION,
            )
        });
        if fed {
            return reply.ok();
        }
        self.spawn(|client| async move {
            let result = client
                .readdir(fh.0, offset, |cookie, slot, attr| {
                    reply.add(
                        INodeNo(attr.ino),
                        cookie,
                        OsStr::from_bytes(slot.name()),
                        &ttl,
                        &file_attr(&attr),
                        GENERATION,
                    )
                })
                .await;
            match result {
                Ok(()) => reply.ok(),
                Err(err) => reply.error(errno(&err)),
            }
        });
    }
}
