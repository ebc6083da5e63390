//! Path-level calls of [`Client`], for programs without a kernel in between (the `dfs`
//! command, scripts, services): names resolved component by component from the root, and
//! [`File`], an open regular file.
//!
//! Paths are absolute from the filesystem's root (`/a/b`; a relative path is taken from the
//! root too). Symbolic links in the directories of a path are followed, as the kernel does;
//! the last component is not, so `stat_path` of a link describes the link (as `lstat`).
//! Everything else behaves as the inode-level calls do: the same leases, the same
//! close-to-open consistency, the same errors.

use bytes::Bytes;
use dfs_proto::{FsError, ROOT_INO};

use crate::attr::{Attr, FileKind, OpenFlags};
use crate::client::{Caller, Client, DirEntry, DirPage};

/// Most symbolic links followed while resolving one path, as Linux's `MAXSYMLINKS`.
const MAX_SYMLINKS: u32 = 40;

/// Entries asked of the master per page of a listing.
const LIST_PAGE_ENTRIES: u32 = 1024;

/// Umask applied to the modes of nodes created by path (the caller's mode is taken as is).
const NO_UMASK: u32 = 0;

/// An open regular file. Close it with [`close`](File::close), which commits its writes and
/// reports their errors; dropping it without closing releases it in the background.
#[derive(Debug)]
pub struct File {
    client: Client,
    ino: u64,
    closed: bool,
}

/// The components of `path`, without empty ones and `.`.
fn components(path: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
}

/// `path` split into its parent directory's path and its last name; `None` for the root.
fn split_last(path: &str) -> Option<(&str, &[u8])> {
    let trimmed = path.trim_end_matches('/');
    let (parent, name) = trimmed.rsplit_once('/').unwrap_or(("", trimmed));
    (!name.is_empty() && name != "." && name != "..").then_some((parent, name.as_bytes()))
}

/// The uid and gid of this process: the owner of what it creates.
fn this_process() -> Caller {
    // SAFETY: getuid and getgid have no preconditions and cannot fail.
    unsafe {
        Caller {
            uid: libc::getuid(),
            gid: libc::getgid(),
        }
    }
}

impl Client {
    /// The attributes of what `path` names, without following a symlink at its end.
    pub async fn stat_path(&self, path: &str) -> Result<Attr, FsError> {
        self.resolve(path.as_bytes(), false).await
    }

    /// The entries of directory `path` in name order, without `.` and `..`.
    pub async fn list_path(&self, path: &str) -> Result<Vec<DirEntry>, FsError> {
        let dir = self.resolve_dir(path).await?;
        let mut entries: Vec<DirEntry> = Vec::new();
        loop {
            let after = entries.last().map_or(&[][..], |e| e.name.as_slice());
            let page = self
                .read_dir(dir, after, LIST_PAGE_ENTRIES, entries.is_empty())
                .await?;
            // A page that adds nothing while claiming more would loop forever.
            let more = page.more && !page.entries.is_empty();
            entries.extend(page.entries);
            if !more {
                return Ok(entries);
            }
        }
    }

    /// One page of directory `path`'s listing: up to `limit` entries after the name `after`
    /// (empty: from the start), for callers that page through a large directory themselves
    /// (an HTTP listing) instead of holding all of it.
    pub async fn list_page_path(
        &self,
        path: &str,
        after: &[u8],
        limit: u32,
    ) -> Result<DirPage, FsError> {
        let dir = self.resolve_dir(path).await?;
        self.read_dir(dir, after, limit, after.is_empty()).await
    }

    /// Creates directory `path` with permission bits `mode`; its parent must exist.
    pub async fn mkdir_path(&self, path: &str, mode: u32) -> Result<Attr, FsError> {
        let (parent, name) = self.parent_of(path).await?;
        self.make_node(
            this_process(),
            parent,
            name,
            FileKind::Directory,
            mode,
            NO_UMASK,
            0,
            &[],
        )
        .await
    }

    /// Creates regular file `path` (or truncates it if it exists) with permission bits `mode`
    /// and opens it for writing, holding its writer lease until it is closed.
    pub async fn create_path(&self, path: &str, mode: u32) -> Result<File, FsError> {
        self.create_path_with(path, mode, false).await
    }

    /// Creates regular file `path` with permission bits `mode`, failing with `EEXIST` if the
    /// name exists (`O_EXCL`), and opens it for writing as [`create_path`](Client::create_path).
    pub async fn create_new_path(&self, path: &str, mode: u32) -> Result<File, FsError> {
        self.create_path_with(path, mode, true).await
    }

    async fn create_path_with(
        &self,
        path: &str,
        mode: u32,
        exclusive: bool,
    ) -> Result<File, FsError> {
        let (parent, name) = self.parent_of(path).await?;
        let flags = OpenFlags {
            exclusive,
            ..OpenFlags::WRITE_TRUNCATE
        };
        let (attr, _) = self
            .create(this_process(), parent, name, mode, NO_UMASK, flags)
            .await?;
        if attr.kind != FileKind::Regular {
            self.release(attr.ino).await?;
            return Err(FsError::IsDir);
        }
        Ok(File::new(self.clone(), attr.ino))
    }

    /// Opens regular file `path` (following a symlink at its end) as `flags` say.
    pub async fn open_path(&self, path: &str, flags: OpenFlags) -> Result<File, FsError> {
        let attr = self.resolve(path.as_bytes(), true).await?;
        match attr.kind {
            FileKind::Regular => {}
            FileKind::Directory => return Err(FsError::IsDir),
            _ => return Err(FsError::NotSupported),
        }
        self.open(attr.ino, flags, None).await?;
        Ok(File::new(self.clone(), attr.ino))
    }

    /// Renames `from` to `to`, replacing `to` as `rename(2)` does.
    pub async fn rename_path(&self, from: &str, to: &str) -> Result<(), FsError> {
        let (parent, name) = self.parent_of(from).await?;
        let (new_parent, new_name) = self.parent_of(to).await?;
        self.rename(parent, name, new_parent, new_name, 0).await
    }

    /// Removes the name `path` of a file, symlink or other non-directory.
    pub async fn unlink_path(&self, path: &str) -> Result<(), FsError> {
        let (parent, name) = self.parent_of(path).await?;
        self.unlink(parent, name).await
    }

    /// Removes the empty directory `path`.
    pub async fn rmdir_path(&self, path: &str) -> Result<(), FsError> {
        let (parent, name) = self.parent_of(path).await?;
        self.rmdir(parent, name).await
    }

    /// The target of symlink `path`.
    pub async fn readlink_path(&self, path: &str) -> Result<Vec<u8>, FsError> {
        let attr = self.resolve(path.as_bytes(), false).await?;
        if attr.kind != FileKind::Symlink {
            return Err(FsError::Invalid(format!("{path} is not a symbolic link")));
        }
        self.readlink(attr.ino).await
    }

    /// The inode of directory `path` (following a symlink at its end).
    async fn resolve_dir(&self, path: &str) -> Result<u64, FsError> {
        let dir = self.resolve(path.as_bytes(), true).await?;
        if dir.kind != FileKind::Directory {
            return Err(FsError::NotDir);
        }
        Ok(dir.ino)
    }

    /// The inode of the directory holding `path`'s last name, and that name.
    async fn parent_of<'p>(&self, path: &'p str) -> Result<(u64, &'p [u8]), FsError> {
        let (parent, name) = split_last(path).ok_or_else(|| {
            FsError::Invalid(format!("{path}: the root and . or .. name no entry"))
        })?;
        let dir = self.resolve(parent.as_bytes(), true).await?;
        if dir.kind != FileKind::Directory {
            return Err(FsError::NotDir);
        }
        Ok((dir.ino, name))
    }

    /// Walks `path` from the root, following symlinks in its directories and, with
    /// `follow_last`, at its end.
    async fn resolve(&self, path: &[u8], follow_last: bool) -> Result<Attr, FsError> {
        let mut links = 0;
        // Components still to walk, last first; a symlink's target is pushed in its place.
        let mut todo: Vec<Vec<u8>> = components(path).rev().map(<[u8]>::to_vec).collect();
        // The directories walked so far, for `..`; the root is its own parent.
        let mut trail = vec![self.getattr(ROOT_INO).await?];
        while let Some(name) = todo.pop() {
            let dir = *trail.last().expect("the trail holds the root");
            if dir.kind != FileKind::Directory {
                return Err(FsError::NotDir);
            }
            if name == b".." {
                if trail.len() > 1 {
                    trail.pop();
                }
                continue;
            }
            let attr = self.present(&self.master().lookup(dir.ino, &name).await?);
            let last = todo.is_empty();
            if attr.kind != FileKind::Symlink || (last && !follow_last) {
                trail.push(attr);
                continue;
            }
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(FsError::Invalid("too many levels of symbolic links".into()));
            }
            let target = self.readlink(attr.ino).await?;
            if target.starts_with(b"/") {
                trail.truncate(1);
            }
            todo.extend(components(&target).rev().map(<[u8]>::to_vec));
        }
        Ok(*trail.last().expect("the trail holds the root"))
    }
}

impl File {
    fn new(client: Client, ino: u64) -> File {
        File {
            client,
            ino,
            closed: false,
        }
    }

    /// The file's inode number.
    pub fn ino(&self) -> u64 {
        self.ino
    }

    /// The file's attributes, with this client's writes not yet committed counted in.
    pub async fn attr(&self) -> Result<Attr, FsError> {
        self.client.getattr(self.ino).await
    }

    /// Reads up to `len` bytes at `offset`; fewer at the end of the file, none past it.
    pub async fn read(&self, offset: u64, len: u32) -> Result<Bytes, FsError> {
        self.client.read(self.ino, offset, len).await
    }

    /// Writes `data` at `offset` (buffered; sent down the replica chain in the background).
    pub async fn write(&self, offset: u64, data: &[u8]) -> Result<(), FsError> {
        self.client.write(self.ino, offset, data).await.map(drop)
    }

    /// Sends the writes, syncs them on every replica and commits them: durable on return.
    pub async fn fsync(&self) -> Result<(), FsError> {
        self.client.fsync(self.ino).await
    }

    /// Commits the writes and releases the file (and its writer lease): what `close(2)` does
    /// on a mount, with the same error reporting.
    pub async fn close(mut self) -> Result<(), FsError> {
        self.closed = true;
        self.client.release(self.ino).await
    }
}

impl Drop for File {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        // Not closed (an error path of the caller): release it, so its lease does not wait
        // for the time-to-live. Without a runtime there is nothing to release it on.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (client, ino) = (self.client.clone(), self.ino);
            runtime.spawn(async move {
                if let Err(err) = client.release(ino).await {
                    tracing::warn!(ino, error = %err, "releasing a file dropped unclosed");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_parent_and_name() {
        assert_eq!(split_last("/a/b"), Some(("/a", &b"b"[..])));
        assert_eq!(split_last("/a/b/"), Some(("/a", &b"b"[..])));
        assert_eq!(split_last("b"), Some(("", &b"b"[..])));
        assert_eq!(split_last("/b"), Some(("", &b"b"[..])));
        assert_eq!(split_last("/"), None);
        assert_eq!(split_last(""), None);
        assert_eq!(split_last("/a/.."), None);
    }

    #[test]
    fn components_skip_empty_names_and_dots() {
        let parts: Vec<&[u8]> = components(b"//a/./b/../c/").collect();
        assert_eq!(parts, [&b"a"[..], b"b", b"..", b"c"]);
    }
}
