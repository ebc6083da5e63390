//! Directory listings of [`Client`]: pages of entries in name order, with their attributes
//! (the first page of a listing marks the directory's atime on the master). How a caller keeps
//! its place in a listing (a kernel's offset cookies, a path walk) is its own business.

use dfs_proto::FsError;

use super::Client;
use crate::attr::Attr;

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's name (bytes: dfs names need not be UTF-8).
    pub name: Vec<u8>,
    /// Its attributes when listed, as this client shows them.
    pub attr: Attr,
}

/// One page of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirPage {
    /// Entries in name order.
    pub entries: Vec<DirEntry>,
    /// Whether entries after the last one remain.
    pub more: bool,
    /// With the first page of a listing: the directory's attributes, after its atime mark.
    pub dir_attr: Option<Attr>,
}

impl Client {
    /// Up to `limit` entries of directory `ino` after the name `after` (empty: from the
    /// start). `first` opens a listing: the master marks the directory's atime by the
    /// relatime rule (the kernel leaves atime of FUSE inodes to the daemon) and the page
    /// brings the directory's attributes.
    pub async fn read_dir(
        &self,
        ino: u64,
        after: &[u8],
        limit: u32,
        first: bool,
    ) -> Result<DirPage, FsError> {
        let page = self.master().read_dir(ino, after, limit, first).await?;
        let entries = page
            .entries
            .into_iter()
            .map(|entry| DirEntry {
                attr: self.present(&entry.attr.unwrap_or_default()),
                name: entry.name,
            })
            .collect();
        Ok(DirPage {
            entries,
            more: page.more,
            dir_attr: page.dir_attr.as_ref().map(|attr| self.present(attr)),
        })
    }
}
