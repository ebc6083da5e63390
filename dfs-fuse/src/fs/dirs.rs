//! Directory listings as the kernel sees them: `opendir`, and `readdir`/`readdirplus` filling
//! the kernel's buffer from a listing snapshot (see [`crate::readdir`]) whose pages come from
//! the client; from the reading thread when the listing is wholly fetched, as for the call
//! that finds its end.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use dfs_client::{Attr, Client};
use dfs_proto::FsError;
use fuser::{FileHandle, FopenFlags, INodeNo, ReplyDirectory, ReplyDirectoryPlus, ReplyOpen};

use super::{DfsFs, GENERATION};
use crate::attr::{file_attr, file_type};
use crate::error::errno;
use crate::readdir::{DirHandles, DirListing, PAGE_ENTRIES, Slot};

/// Feeds the fetched entries of `listing` from `pos` to `add` (cookie, entry, attributes)
/// until it reports the kernel's buffer full or they end; answers the position where a page
/// must be fetched to go on, `None` when done.
fn feed(
    listing: &DirListing,
    mut pos: u64,
    add: &mut impl FnMut(u64, Slot<'_>, &Attr) -> bool,
) -> Option<u64> {
    loop {
        if listing.needs_page(pos) {
            return Some(pos);
        }
        let slot = listing.slot(pos)?;
        let attr = match slot {
            Slot::Child(entry) => &entry.attr,
            Slot::Dot | Slot::DotDot => &listing.attr,
        };
        if add(DirListing::cookie(pos), slot, attr) {
            return None;
        }
        pos += 1;
    }
}

/// Feeds `add` from position `offset` of listing `fh`, fetching pages from the master as
/// needed. Offset 0 restarts the listing (`rewinddir`), as POSIX asks.
async fn read_dir(
    client: &Client,
    dirs: &DirHandles,
    fh: u64,
    offset: u64,
    mut add: impl FnMut(u64, Slot<'_>, &Attr) -> bool,
) -> Result<(), FsError> {
    let listing = dirs
        .get(fh)
        .ok_or_else(|| FsError::Invalid(format!("no directory handle {fh}")))?;
    let mut listing = listing.lock().await;
    if offset == 0 {
        listing.restart();
    }
    let mut pos = offset;
    while let Some(next) = feed(&listing, pos, &mut add) {
        let first = listing.last_name().is_empty();
        let page = client
            .read_dir(listing.ino, listing.last_name(), PAGE_ENTRIES, first)
            .await?;
        listing.append(page);
        pos = next;
    }
    Ok(())
}

/// [`read_dir`] if that needs no waiting: the listing is idle and wholly fetched (typically
/// the kernel's last call, which finds the end). `false` means nothing was fed.
fn read_dir_now(
    dirs: &DirHandles,
    fh: u64,
    offset: u64,
    mut add: impl FnMut(u64, Slot<'_>, &Attr) -> bool,
) -> bool {
    let Some(listing) = dirs.get(fh) else {
        return false;
    };
    let Ok(listing) = listing.try_lock() else {
        return false;
    };
    if offset == 0 || !listing.complete() {
        return false;
    }
    feed(&listing, offset, &mut add);
    true
}

impl DfsFs {
    /// `opendir`: a listing handle of directory `ino`.
    /// Answered from this thread: the listing's first page brings what opening needs.
    pub(super) fn open_dir(&self, ino: INodeNo, reply: ReplyOpen) {
        let fh = self.dirs.insert(DirListing::unopened(ino.0));
        reply.opened(FileHandle(fh), FopenFlags::empty());
    }

    /// `releasedir`: forgets the listing.
    pub(super) fn release_dir(&self, fh: FileHandle) {
        self.dirs.remove(fh.0);
    }

    /// `readdir`: names, inode numbers and kinds from position `offset` of the listing.
    pub(super) fn list_dir(&self, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let fed = read_dir_now(&self.dirs, fh.0, offset, |cookie, slot, attr| {
            let kind = file_type(attr.kind);
            reply.add(
                INodeNo(attr.ino),
                cookie,
                kind,
                OsStr::from_bytes(slot.name()),
            )
        });
        if fed {
            return reply.ok();
        }
        let dirs = self.dirs.clone();
        self.spawn(|client| async move {
            let result = read_dir(&client, &dirs, fh.0, offset, |cookie, slot, attr| {
                let kind = file_type(attr.kind);
                reply.add(
                    INodeNo(attr.ino),
                    cookie,
                    kind,
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
        let fed = read_dir_now(&self.dirs, fh.0, offset, |cookie, slot, attr| {
            let name = OsStr::from_bytes(slot.name());
            let attr = file_attr(attr);
            reply.add(attr.ino, cookie, name, &ttl, &attr, GENERATION)
        });
        if fed {
            return reply.ok();
        }
        let dirs = self.dirs.clone();
        self.spawn(|client| async move {
            let result = read_dir(&client, &dirs, fh.0, offset, |cookie, slot, attr| {
                let name = OsStr::from_bytes(slot.name());
                let attr = file_attr(attr);
                reply.add(attr.ino, cookie, name, &ttl, &attr, GENERATION)
            })
            .await;
            match result {
                Ok(()) => reply.ok(),
                Err(err) => reply.error(errno(&err)),
            }
        });
    }
}
