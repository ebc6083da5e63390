//! Directory listings of [`Client`]: `opendir`, paged `readdir` (the first page marks the
//! directory's atime on the master) and `releasedir`.

use dfs_proto::FsError;
use dfs_proto::pb;

use super::Client;
use crate::attr::Attr;
use crate::readdir::{DirListing, PAGE_ENTRIES, Slot};

impl Client {
    /// Opens a directory listing handle, without a master call: the kernel opens only
    /// directories, and the first page of the listing brings the directory's attributes and
    /// marks its atime by the relatime rule (the kernel leaves atime of FUSE inodes to the
    /// daemon).
    pub fn opendir(&self, ino: u64) -> u64 {
        let fh = self.next_fh();
        self.shared.dirs.insert(fh, DirListing::unopened(ino));
        fh
    }

    /// Feeds entries from position `offset` of the handle's listing to `add` (cookie, entry,
    /// attributes) until `add` reports the kernel's buffer full or the listing ends; pages
    /// are fetched from the master as needed. Offset 0 restarts the listing.
    pub async fn readdir(
        &self,
        fh: u64,
        offset: u64,
        mut add: impl FnMut(u64, Slot<'_>, Attr) -> bool,
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
                let first = listing.last_name().is_empty();
                let page = self
                    .master()
                    .read_dir(listing.ino, listing.last_name(), PAGE_ENTRIES, first)
                    .await?;
                listing.append(page);
            }
            match self.feed(&listing, pos, &mut add) {
                Some(next) => pos = next,
                None => break,
            }
        }
        Ok(())
    }

    /// Like [`readdir`](Client::readdir) if that needs no waiting: the listing is idle and
    /// wholly fetched (typically the kernel's last call, which finds the end). `false` means
    /// nothing was fed: call `readdir`.
    pub fn readdir_now(
        &self,
        fh: u64,
        offset: u64,
        mut add: impl FnMut(u64, Slot<'_>, Attr) -> bool,
    ) -> bool {
        let Some(listing) = self.shared.dirs.get(fh) else {
            return false;
        };
        let Ok(listing) = listing.try_lock() else {
            return false;
        };
        if offset == 0 || !listing.complete() {
            return false;
        }
        let mut pos = offset;
        while let Some(next) = self.feed(&listing, pos, &mut add) {
            pos = next;
        }
        true
    }

    /// Feeds the fetched entries from `pos` to `add` until it is full or they end; returns
    /// the position where a page must be fetched to go on, `None` when done.
    fn feed(
        &self,
        listing: &DirListing,
        mut pos: u64,
        add: &mut impl FnMut(u64, Slot<'_>, Attr) -> bool,
    ) -> Option<u64> {
        loop {
            if listing.needs_page(pos) {
                return Some(pos);
            }
            let slot = listing.slot(pos)?;
            let attr = match slot {
                Slot::Child(entry) => {
                    self.present(entry.attr.as_ref().unwrap_or(&pb::Attr::default()))
                }
                Slot::Dot | Slot::DotDot => self.present(&listing.attr),
            };
            if add(DirListing::cookie(pos), slot, attr) {
                return None;
            }
            pos += 1;
        }
    }

    /// Closes a directory listing handle.
    pub fn releasedir(&self, fh: u64) {
        self.shared.dirs.remove(fh);
    }
}
