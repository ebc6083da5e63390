//! The namespace: inodes and directory entries, as a deterministic state machine over the
//! store.
//!
//! Every mutation takes its timestamp (`now`) and the caller's credentials from the caller and
//! never reads the clock itself; inode numbers come from a persisted counter. Applying the same
//! commands in the same order to the same store therefore gives the same result, which is what
//! a replicated (Raft) master will rely on. Each mutation is one [`Txn`]: serialised with every
//! other mutation and applied as one atomic batch. Name changes are WAL-synced within the
//! master's sync interval or at a client's `fsync` ([`Txn::defer_sync`]); the rest at once.
//!
//! POSIX rules kept here: directory `nlink` is 2 plus its subdirectories; creating, removing or
//! renaming an entry updates the parent's mtime and ctime; unlinking the last link of an inode
//! deletes it together with its chunks, whose replicas are queued for deletion on their
//! chunkservers. `.` and `..` are not stored: the kernel resolves them.
//!
//! * [`rename`] — `rename(2)` and `renameat2(2)`, the one operation over two directories.
//! * [`permissions`] — POSIX rules the kernel cannot check for us (set-group-ID directories).
//! * [`xattrs`] — extended attributes.

pub mod permissions;
pub mod rename;
pub mod xattrs;

use dfs_proto::chunk::ChunkLayout;
use dfs_proto::pb::{self, Attr, FileKind, Timestamp};
use dfs_proto::{FsError, MAX_NAME_LEN, ROOT_INO};

use crate::convert;
use crate::error::{Error, Result};
use crate::store::meta;
use crate::store::txn::{Txn, Writer};

/// Longest symlink target, in bytes (Linux `PATH_MAX`).
pub const MAX_SYMLINK_LEN: usize = 4096;

/// Directory entries per `readdir` page when the caller asks for 0.
pub const DEFAULT_READDIR_LIMIT: u32 = 1024;

/// Most directory entries one `readdir` page returns, whatever the caller asks for, so a reply
/// stays well below gRPC's message size limit.
pub const MAX_READDIR_LIMIT: u32 = 8192;

/// Permission of the root directory created with a new cluster.
const ROOT_PERM: u32 = 0o755;

/// An inode: its `stat` attributes, as clients see them, plus what the namespace needs to
/// walk upwards.
#[derive(Debug, Clone, PartialEq)]
pub struct Inode {
    /// The attributes.
    pub attr: Attr,
    /// The directory holding this directory (directories only: they have exactly one parent,
    /// which rename needs to refuse moving a directory into its own subtree). 0 otherwise.
    pub parent: u64,
}

impl Inode {
    /// The kind of the inode (`FILE_KIND_UNSPECIFIED` for a value this build does not know).
    pub fn kind(&self) -> FileKind {
        self.attr.kind()
    }

    /// Whether the inode is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind() == FileKind::Directory
    }
}

/// A directory entry: which inode the name points to, and its kind (so that name-only
/// decisions such as "is the rename target a directory" need no inode read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dentry {
    /// The inode the name refers to.
    pub ino: u64,
    /// The kind of that inode.
    pub kind: FileKind,
}

impl Dentry {
    /// Whether the entry names a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == FileKind::Directory
    }
}

/// The namespace of one cluster. Cheap to share: reads take no lock, mutations serialise on
/// the store's writer.
pub struct Namespace {
    pub(crate) writer: Writer,
    pub(crate) layout: ChunkLayout,
}

impl Namespace {
    /// A namespace over `writer`'s store, whose files are laid out in `layout`.
    pub fn new(writer: Writer, layout: ChunkLayout) -> Namespace {
        Namespace { writer, layout }
    }

    /// Creates the root directory (inode 1, mode 0755, owned by root) if it does not exist
    /// yet, so a new cluster starts with an empty, usable filesystem.
    pub fn bootstrap(&self, now: Timestamp) -> Result<()> {
        let mut txn = self.writer.begin();
        if txn.inode(ROOT_INO)?.is_none() {
            let attr = new_attr(ROOT_INO, FileKind::Directory, ROOT_PERM, 0, 0, now);
            // The root is its own parent, which ends every walk up the tree.
            txn.create_inode(Inode {
                attr,
                parent: ROOT_INO,
            })?;
            tracing::info!("created the root directory of a new namespace");
        }
        txn.commit()
    }

    /// Resolves `name` in directory `parent`.
    pub fn lookup(&self, parent: u64, name: &[u8]) -> Result<Attr> {
        check_name(name)?;
        let store = self.writer.store();
        let Some(dentry) = store.dentry(parent, name)? else {
            // Tell "no such directory" and "not a directory" apart from "no such name".
            require_dir(store.inode(parent)?)?;
            return Err(FsError::NotFound.into());
        };
        // A concurrent unlink may remove the inode between the two reads.
        Ok(require(store.inode(dentry.ino)?)?.attr)
    }

    /// The attributes of an inode.
    pub fn getattr(&self, ino: u64) -> Result<Attr> {
        Ok(require(self.writer.store().inode(ino)?)?.attr)
    }

    /// What a call that changed names in `dirs` answers about them: their attributes now
    /// (each directory once; one gone meanwhile is left out). Read after the change, so never
    /// older than it.
    pub fn changed_dirs(&self, dirs: &[u64]) -> Result<Vec<Attr>> {
        let store = self.writer.store();
        let mut changed = Vec::with_capacity(dirs.len());
        for (i, &dir) in dirs.iter().enumerate() {
            if dirs[..i].contains(&dir) {
                continue;
            }
            if let Some(inode) = store.inode(dir)? {
                changed.push(inode.attr);
            }
        }
        Ok(changed)
    }

    /// Applies a `setattr`: permission bits, owner, group, times and size. A size change of
    /// a regular file also sets mtime (unless given), and shrinking drops the chunks wholly
    /// past the new end (queuing their replicas for deletion) and clamps the new last chunk.
    pub fn setattr(&self, req: &pb::SetAttrRequest, now: Timestamp) -> Result<Attr> {
        let mut txn = self.writer.begin();
        let mut inode = require(txn.inode(req.ino)?)?;
        if req.mark_access {
            // A read access is no change of the inode: atime only, ctime stays.
            inode.attr.atime = Some(now);
            let attr = inode.attr;
            txn.put_inode(inode);
            txn.commit_unsynced()?;
            return Ok(attr);
        }
        let kind = inode.kind();
        if let Some(size) = req.size {
            match kind {
                FileKind::Regular => {}
                FileKind::Directory => return Err(FsError::IsDir.into()),
                _ => return Err(invalid("only regular files have a settable size")),
            }
            if size < inode.attr.size {
                self.truncate_chunks(&mut txn, req.ino, size)?;
            }
            inode.attr.size = size;
            inode.attr.mtime = Some(now);
        }
        let attr = &mut inode.attr;
        req.apply_to(attr);
        attr.ctime = Some(now);
        let attr = *attr;
        txn.put_inode(inode);
        if req.size.is_some() {
            // A size change drops chunks and queues replica deletions: durable when acknowledged.
            txn.commit()?;
        } else {
            // Mode, owner and times are kept like ext4 metadata without fsync: they survive a
            // killed master (the WAL write reached the OS), not a power cut, unless a later
            // synced write (any create, rename, unlink or commit) carries them to disk.
            txn.commit_unsynced()?;
        }
        Ok(attr)
    }

    /// Drops the chunks of `ino` that lie wholly at or past `size` and clamps the length of
    /// the chunk that now ends the file.
    fn truncate_chunks(&self, txn: &mut Txn<'_>, ino: u64, size: u64) -> Result<()> {
        let keep = self.layout.chunk_count(size);
        let first = keep.saturating_sub(1);
        for (index, mut chunk) in txn.store().chunks(ino, first, None)? {
            if index >= keep {
                txn.remove_chunk(ino, index, &chunk);
                continue;
            }
            let end_in_chunk = size - self.layout.chunk_start(index);
            if chunk.length > end_in_chunk {
                chunk.length = end_in_chunk;
                txn.put_chunk(ino, index, &chunk);
            }
        }
        Ok(())
    }

    /// Creates a regular file, directory, symlink, FIFO, device node or socket named
    /// `req.name` in `req.parent`, owned by `req.uid`/`req.gid`. A non-exclusive create of a
    /// regular file that already exists returns the existing file.
    pub fn make_node(&self, req: &pb::MakeNodeRequest, now: Timestamp) -> Result<Attr> {
        let mut txn = self.writer.begin();
        let attr = self.make_node_in(&mut txn, req, now)?;
        txn.commit()?;
        Ok(attr)
    }

    /// [`make_node`](Namespace::make_node) as part of the transaction `txn`, which the caller
    /// commits; a new node lets it [defer](Txn::defer_sync) the sync.
    pub fn make_node_in(
        &self,
        txn: &mut Txn<'_>,
        req: &pb::MakeNodeRequest,
        now: Timestamp,
    ) -> Result<Attr> {
        check_name(&req.name)?;
        let kind = match FileKind::try_from(req.kind) {
            Ok(FileKind::Unspecified) | Err(_) => return Err(invalid("unknown file kind")),
            Ok(kind) => kind,
        };
        if kind == FileKind::Symlink {
            if req.symlink_target.is_empty() {
                return Err(invalid("empty symlink target"));
            }
            if req.symlink_target.len() > MAX_SYMLINK_LEN {
                return Err(FsError::NameTooLong.into());
            }
        }

        let parent = require_dir(txn.inode(req.parent)?)?;
        if let Some(existing) = txn.store().dentry(req.parent, &req.name)? {
            return match existing.kind {
                FileKind::Regular if kind == FileKind::Regular && !req.exclusive => {
                    Ok(require(txn.inode(existing.ino)?)?.attr)
                }
                FileKind::Directory if kind == FileKind::Regular && !req.exclusive => {
                    Err(FsError::IsDir.into())
                }
                _ => Err(FsError::Exists.into()),
            };
        }

        let ino = txn.next_id(meta::NEXT_INO, ROOT_INO + 1)?;
        let (perm, gid) = permissions::new_inode_owner(&parent.attr, kind, req.perm, req.gid);
        let mut attr = new_attr(ino, kind, perm, req.uid, gid, now);
        match kind {
            FileKind::Symlink => {
                attr.size = req.symlink_target.len() as u64;
                txn.put_symlink(ino, &req.symlink_target);
            }
            FileKind::CharDevice | FileKind::BlockDevice => attr.rdev = req.rdev,
            _ => {}
        }
        let is_dir = kind == FileKind::Directory;
        txn.create_inode(Inode {
            attr,
            parent: if is_dir { req.parent } else { 0 },
        })?;
        txn.put_dentry(req.parent, &req.name, Dentry { ino, kind });
        update_dir(txn, req.parent, if is_dir { 1 } else { 0 }, now)?;
        txn.defer_sync();
        Ok(attr)
    }

    /// Removes the entry `name` (not a directory) from `parent`; the inode goes with its last
    /// link.
    pub fn unlink(&self, parent: u64, name: &[u8], now: Timestamp) -> Result<()> {
        check_name(name)?;
        let mut txn = self.writer.begin();
        let dentry = entry(&mut txn, parent, name)?;
        if dentry.is_dir() {
            return Err(FsError::IsDir.into());
        }
        txn.delete_dentry(parent, name);
        update_dir(&mut txn, parent, 0, now)?;
        drop_link(&mut txn, dentry.ino, now)?;
        // Replicas of a dropped inode are deleted only after a synced write (the heartbeat
        // that hands them out), so a lost unlink never leaves a name without its data.
        txn.defer_sync();
        txn.commit()
    }

    /// Removes the empty directory `name` from `parent`.
    pub fn rmdir(&self, parent: u64, name: &[u8], now: Timestamp) -> Result<()> {
        check_name(name)?;
        let mut txn = self.writer.begin();
        let dentry = entry(&mut txn, parent, name)?;
        if !dentry.is_dir() {
            return Err(FsError::NotDir.into());
        }
        if !txn.store().dir_is_empty(dentry.ino)? {
            return Err(FsError::NotEmpty.into());
        }
        txn.delete_dentry(parent, name);
        txn.remove_inode(dentry.ino)?;
        update_dir(&mut txn, parent, -1, now)?;
        txn.defer_sync();
        txn.commit()
    }

    /// Adds the hard link `new_name` in `new_parent` to inode `ino` (not a directory).
    pub fn link(&self, ino: u64, new_parent: u64, new_name: &[u8], now: Timestamp) -> Result<Attr> {
        check_name(new_name)?;
        let mut txn = self.writer.begin();
        let mut inode = require(txn.inode(ino)?)?;
        if inode.is_dir() {
            return Err(FsError::NotPermitted.into());
        }
        require_dir(txn.inode(new_parent)?)?;
        if txn.store().dentry(new_parent, new_name)?.is_some() {
            return Err(FsError::Exists.into());
        }
        inode.attr.nlink = inode
            .attr
            .nlink
            .checked_add(1)
            .ok_or(FsError::TooManyLinks)?;
        inode.attr.ctime = Some(now);
        let attr = inode.attr;
        txn.put_dentry(
            new_parent,
            new_name,
            Dentry {
                ino,
                kind: inode.kind(),
            },
        );
        txn.put_inode(inode);
        update_dir(&mut txn, new_parent, 0, now)?;
        txn.defer_sync();
        txn.commit()?;
        Ok(attr)
    }

    /// The target of a symlink.
    pub fn readlink(&self, ino: u64) -> Result<Vec<u8>> {
        let store = self.writer.store();
        if require(store.inode(ino)?)?.kind() != FileKind::Symlink {
            return Err(invalid("not a symlink"));
        }
        store.symlink(ino)?.ok_or_else(|| FsError::NotFound.into())
    }

    /// One page of directory `ino`: up to `limit` entries (0 = a default page) whose names
    /// sort strictly after `after`, with their attributes, in name order.
    pub fn readdir(&self, ino: u64, after: &[u8], limit: u32) -> Result<pb::ReadDirReply> {
        let store = self.writer.store();
        require_dir(store.inode(ino)?)?;
        let limit = match limit {
            0 => DEFAULT_READDIR_LIMIT,
            n => n.min(MAX_READDIR_LIMIT),
        } as usize;
        // One entry past the page tells whether another page follows.
        let mut page = store.dentries_after(ino, after, limit + 1)?;
        let more = page.len() > limit;
        page.truncate(limit);
        let mut entries = Vec::with_capacity(page.len());
        for (name, dentry) in page {
            // An entry unlinked since the scan is simply not listed.
            if let Some(inode) = store.inode(dentry.ino)? {
                entries.push((name, inode.attr));
            }
        }
        Ok(convert::dir_page(entries, more))
    }

    /// Number of inodes in the namespace.
    pub fn inode_count(&self) -> Result<u64> {
        Ok(self.writer.store().meta(meta::INODE_COUNT)?.unwrap_or(0))
    }
}

/// Attributes of a new inode: one link (two for a directory), every time set to `now`.
fn new_attr(ino: u64, kind: FileKind, perm: u32, uid: u32, gid: u32, now: Timestamp) -> Attr {
    Attr {
        ino,
        kind: kind as i32,
        perm: perm & 0o7777,
        uid,
        gid,
        size: 0,
        nlink: if kind == FileKind::Directory { 2 } else { 1 },
        atime: Some(now),
        mtime: Some(now),
        ctime: Some(now),
        crtime: Some(now),
        rdev: 0,
    }
}

/// An `EINVAL` with a reason.
pub(crate) fn invalid(reason: &str) -> Error {
    FsError::Invalid(reason.into()).into()
}

/// Checks one path component: not empty, no `/` or NUL, at most 255 bytes.
pub(crate) fn check_name(name: &[u8]) -> Result<()> {
    if name.is_empty() || name.contains(&b'/') || name.contains(&0) {
        return Err(invalid("a name must be non-empty without '/' or NUL"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(FsError::NameTooLong.into());
    }
    Ok(())
}

/// The inode, or `ENOENT`.
pub(crate) fn require(inode: Option<Inode>) -> Result<Inode> {
    inode.ok_or_else(|| FsError::NotFound.into())
}

/// The inode if it is a directory; `ENOENT` or `ENOTDIR` otherwise.
pub(crate) fn require_dir(inode: Option<Inode>) -> Result<Inode> {
    let inode = require(inode)?;
    if !inode.is_dir() {
        return Err(FsError::NotDir.into());
    }
    Ok(inode)
}

/// The entry `name` of directory `parent`; `ENOENT`/`ENOTDIR` for a bad parent, `ENOENT` for
/// a missing name.
pub(crate) fn entry(txn: &mut Txn<'_>, parent: u64, name: &[u8]) -> Result<Dentry> {
    require_dir(txn.inode(parent)?)?;
    txn.store()
        .dentry(parent, name)?
        .ok_or_else(|| FsError::NotFound.into())
}

/// Records a change to the entries of directory `dir`: its link count moves by
/// `subdir_delta` (subdirectories added or removed) and its mtime and ctime become `now`.
pub(crate) fn update_dir(
    txn: &mut Txn<'_>,
    dir: u64,
    subdir_delta: i32,
    now: Timestamp,
) -> Result<()> {
    let mut inode = require(txn.inode(dir)?)?;
    inode.attr.nlink = inode.attr.nlink.saturating_add_signed(subdir_delta);
    inode.attr.mtime = Some(now);
    inode.attr.ctime = Some(now);
    txn.put_inode(inode);
    Ok(())
}

/// Removes one link of a non-directory inode; the last link deletes the inode, its chunks
/// and (through the deletion queue) their replicas.
pub(crate) fn drop_link(txn: &mut Txn<'_>, ino: u64, now: Timestamp) -> Result<()> {
    let mut inode = require(txn.inode(ino)?)?;
    inode.attr.nlink = inode.attr.nlink.saturating_sub(1);
    if inode.attr.nlink == 0 {
        return txn.remove_inode(ino);
    }
    inode.attr.ctime = Some(now);
    txn.put_inode(inode);
    Ok(())
}
