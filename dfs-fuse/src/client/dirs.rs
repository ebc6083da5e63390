//! Directory listings of [`Client`]: `opendir`, paged `readdir` and `releasedir`, and the
//! relatime atime mark of a read access.

use std::time::SystemTime;

use dfs_proto::FsError;
use dfs_proto::pb::{self, FileKind};
use fuser::FileAttr;

use super::Client;
use crate::attr::access_due;
use crate::readdir::{DirListing, PAGE_ENTRIES, Slot};

impl Client {
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
