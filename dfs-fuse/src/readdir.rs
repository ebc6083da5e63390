//! Directory handles: a listing snapshot per `opendir`, and the offset cookies the kernel
//! hands back to continue a listing.
//!
//! The master lists a directory in pages ordered by name (`ReadDir` with `after` = the last
//! name seen), so a huge directory is never loaded at once. The kernel, however, continues a
//! listing by an opaque 64-bit offset that must stay valid for the life of the handle, also
//! when entries are created or removed meanwhile. So each handle keeps the entries it has
//! fetched so far, and an entry's cookie is its position in that snapshot: position 0 is `.`,
//! 1 is `..`, then the children in name order, and the cookie of position `p` is `p + 1`
//! (where the next `readdir` starts). A `readdir` at offset 0 (`rewinddir`) starts a fresh
//! snapshot, as POSIX asks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use dfs_client::{Attr, DirEntry, DirPage, FileKind};

/// Number of entries asked from the master per page.
pub const PAGE_ENTRIES: u32 = 1024;

/// One entry of a listing as the kernel sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Slot<'a> {
    /// `.`: the directory itself.
    Dot,
    /// `..`: the parent (reported with the directory's own inode; the kernel never looks it
    /// up through the filesystem).
    DotDot,
    /// A child from the master.
    Child(&'a DirEntry),
}

impl Slot<'_> {
    /// The name to report.
    pub fn name(&self) -> &[u8] {
        match self {
            Slot::Dot => b".",
            Slot::DotDot => b"..",
            Slot::Child(entry) => &entry.name,
        }
    }
}

/// The part of a directory listing one handle has fetched so far.
#[derive(Debug)]
pub struct DirListing {
    /// The directory's inode.
    pub ino: u64,
    /// The directory's attributes, reported for `.` and `..`: as the first page brought them.
    pub attr: Attr,
    /// Whether `attr` came from the master (the first page was fetched).
    attr_known: bool,
    children: Vec<DirEntry>,
    more: bool,
}

/// Positions taken by `.` and `..` before the children.
const DOTS: u64 = 2;

impl DirListing {
    /// A listing with no children fetched yet.
    pub fn new(attr: Attr) -> DirListing {
        DirListing {
            ino: attr.ino,
            attr,
            attr_known: true,
            children: Vec::new(),
            more: true,
        }
    }

    /// A listing of directory `ino` opened without asking the master: its attributes come
    /// with the first page (fetched before even `.` is listed).
    pub fn unopened(ino: u64) -> DirListing {
        DirListing {
            attr_known: false,
            ..DirListing::new(Attr {
                ino,
                kind: FileKind::Directory,
                perm: 0,
                size: 0,
                nlink: 0,
                uid: 0,
                gid: 0,
                rdev: 0,
                atime: UNIX_EPOCH,
                mtime: UNIX_EPOCH,
                ctime: UNIX_EPOCH,
                crtime: UNIX_EPOCH,
            })
        }
    }

    /// Whether everything is fetched: every position is answered without the master.
    pub fn complete(&self) -> bool {
        !self.more && self.attr_known
    }

    /// Forgets every fetched child, so the next pages come fresh from the master.
    pub fn restart(&mut self) {
        self.children.clear();
        self.more = true;
    }

    /// Whether the child at `pos` is not fetched yet but the master has more: the caller
    /// fetches the page after [`last_name`](DirListing::last_name) and [`append`]s it.
    ///
    /// [`append`]: DirListing::append
    pub fn needs_page(&self, pos: u64) -> bool {
        !self.attr_known || (self.more && pos >= DOTS + self.children.len() as u64)
    }

    /// The name the next page starts after (empty for the first page).
    pub fn last_name(&self) -> &[u8] {
        self.children
            .last()
            .map(|e| e.name.as_slice())
            .unwrap_or_default()
    }

    /// Adds a page fetched from the master.
    pub fn append(&mut self, page: DirPage) {
        if let Some(attr) = page.dir_attr {
            self.attr = attr;
        }
        self.attr_known = true;
        // A page that adds nothing while claiming more would loop forever: treat it as the end.
        self.more = page.more && !page.entries.is_empty();
        self.children.extend(page.entries);
    }

    /// The entry at position `pos`, or `None` past the end of what was fetched.
    pub fn slot(&self, pos: u64) -> Option<Slot<'_>> {
        match pos {
            0 => Some(Slot::Dot),
            1 => Some(Slot::DotDot),
            _ => self
                .children
                .get(usize::try_from(pos - DOTS).ok()?)
                .map(Slot::Child),
        }
    }

    /// The cookie reported with the entry at `pos`: the offset the next `readdir` passes to
    /// continue after it.
    pub fn cookie(pos: u64) -> u64 {
        pos + 1
    }
}

/// Open directory handles of the mount, by file handle.
#[derive(Debug, Default)]
pub struct DirHandles {
    // A std mutex: held only to insert, find or remove a handle, never across an `.await`;
    // each listing has its own async mutex for the page fetches.
    handles: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<DirListing>>>>,
    last_fh: AtomicU64,
}

impl DirHandles {
    /// Registers a listing; answers its handle number.
    pub fn insert(&self, listing: DirListing) -> u64 {
        let fh = self.last_fh.fetch_add(1, Ordering::Relaxed) + 1;
        let listing = Arc::new(tokio::sync::Mutex::new(listing));
        self.handles
            .lock()
            .expect("dir handles poisoned")
            .insert(fh, listing);
        fh
    }

    /// The listing of `fh`.
    pub fn get(&self, fh: u64) -> Option<Arc<tokio::sync::Mutex<DirListing>>> {
        self.handles
            .lock()
            .expect("dir handles poisoned")
            .get(&fh)
            .cloned()
    }

    /// Drops the listing of `fh` (at `releasedir`).
    pub fn remove(&self, fh: u64) {
        self.handles
            .lock()
            .expect("dir handles poisoned")
            .remove(&fh);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(ino: u64) -> Attr {
        DirListing::unopened(ino).attr
    }

    fn entry(name: &str) -> DirEntry {
        DirEntry {
            name: name.as_bytes().to_vec(),
            attr: dir(7),
        }
    }

    fn page(names: &[&str], more: bool) -> DirPage {
        DirPage {
            entries: names.iter().map(|n| entry(n)).collect(),
            more,
            dir_attr: None,
        }
    }

    fn names_from(listing: &DirListing, mut pos: u64) -> Vec<String> {
        let mut names = Vec::new();
        while let Some(slot) = listing.slot(pos) {
            names.push(String::from_utf8(slot.name().to_vec()).unwrap());
            pos += 1;
        }
        names
    }

    #[test]
    fn cookies_address_dots_then_children_across_pages() {
        let mut listing = DirListing::new(dir(5));
        assert_eq!(listing.slot(0), Some(Slot::Dot));
        assert_eq!(listing.slot(1), Some(Slot::DotDot));
        assert!(!listing.needs_page(1));
        assert!(listing.needs_page(2));
        assert_eq!(listing.last_name(), b"");

        listing.append(page(&["a", "b"], true));
        assert_eq!(listing.last_name(), b"b");
        assert!(!listing.needs_page(3));
        assert!(listing.needs_page(4));
        listing.append(page(&["c"], false));
        assert!(!listing.needs_page(5));
        assert_eq!(listing.slot(5), None);

        // The kernel resumes with the cookie of the last entry it took.
        let last_taken = 2; // "a"
        assert_eq!(
            names_from(&listing, DirListing::cookie(last_taken)),
            vec!["b", "c"]
        );
        assert_eq!(names_from(&listing, 0), vec![".", "..", "a", "b", "c"]);
    }

    #[test]
    fn restart_refetches_and_empty_pages_end_the_listing() {
        let mut listing = DirListing::new(dir(1));
        listing.append(page(&["x"], true));
        listing.restart();
        assert!(listing.needs_page(2));
        assert_eq!(listing.slot(2), None);
        listing.append(page(&[], true));
        assert!(!listing.needs_page(2));
    }

    #[test]
    fn an_unopened_listing_fetches_its_first_page_before_the_dots() {
        let mut listing = DirListing::unopened(9);
        assert!(listing.needs_page(0));
        assert_eq!(listing.last_name(), b"");
        let attr = Attr { nlink: 3, ..dir(9) };
        listing.append(DirPage {
            dir_attr: Some(attr),
            ..page(&["a"], false)
        });
        assert_eq!(listing.attr, attr);
        assert!(!listing.needs_page(0));
        assert!(listing.complete());
        assert_eq!(names_from(&listing, 0), vec![".", "..", "a"]);
        // A rewind fetches again, keeping the attributes meanwhile.
        listing.restart();
        assert!(!listing.complete());
        assert!(listing.needs_page(2));
        assert!(!listing.needs_page(1));
    }

    #[test]
    fn handles_are_found_until_released() {
        let handles = DirHandles::default();
        let fh = handles.insert(DirListing::new(dir(1)));
        let other = handles.insert(DirListing::new(dir(2)));
        assert_ne!(fh, other);
        assert!(handles.get(fh).is_some());
        handles.remove(fh);
        assert!(handles.get(fh).is_none());
        assert!(handles.get(other).is_some());
    }
}
