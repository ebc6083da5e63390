//! Directory listings as the kernel sees them: `opendir`, and `readdir`/`readdirplus` filling
//! the kernel's buffer from the client's paged listing.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use fuser::{FileHandle, FopenFlags, INodeNo, ReplyDirectory, ReplyDirectoryPlus, ReplyOpen};

use super::reply::errno;
use super::{DfsFs, GENERATION};

impl DfsFs {
    /// `opendir`: a listing handle of directory `ino`.
    pub(super) fn open_dir(&self, ino: INodeNo, reply: ReplyOpen) {
        self.spawn(|client| async move {
            match client.opendir(ino.0).await {
                Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
                Err(err) => reply.error(errno(err)),
            }
        });
    }

    /// `readdir`: names, inode numbers and kinds from position `offset` of the listing.
    pub(super) fn list_dir(&self, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
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

    /// `readdirplus`: entries with their attributes, so `ls -l` needs no `lookup` per name.
    pub(super) fn list_dir_plus(&self, fh: FileHandle, offset: u64, mut reply: ReplyDirectoryPlus) {
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
}
