//! Namespace operations of [`Client`]: lookups, attributes, creating, linking, renaming and
//! removing names, and `statfs`.

use std::time::{Duration, Instant};

use dfs_proto::FsError;
use dfs_proto::pb::{self, FileKind};
use fuser::FileAttr;

use super::{Caller, Client, NewNode, STATFS_BLOCK_SIZE, StatFs, check_name};
use crate::attr::creation_perm;
use crate::inode::AttrChanges;
use crate::known_names::NameChange;

/// Free inodes reported by `statfs`: the master allocates inode numbers without a fixed table.
const STATFS_FREE_INODES: u64 = 1 << 32;

impl Client {
    /// Looks up `name` in directory `parent` for process `pid`; a small file's chunk map
    /// comes along for the open by the same process that usually follows (see
    /// [`FreshAttrs`](crate::fresh::FreshAttrs)).
    pub async fn lookup(&self, parent: u64, name: &[u8], pid: u32) -> Result<FileAttr, FsError> {
        check_name(name)?;
        let (attr, chunk_map) = self.master().lookup_ahead(parent, name).await?;
        if let Some(chunk_map) = chunk_map {
            self.shared
                .fresh
                .put_ahead(attr, chunk_map, pid, Instant::now());
        }
        Ok(self.present(&attr))
    }

    /// Attributes of an inode.
    pub async fn getattr(&self, ino: u64) -> Result<FileAttr, FsError> {
        Ok(self.present(&self.master().get_attr(ino).await?))
    }

    /// Changes attributes; a size change commits this client's writes first and cuts the
    /// replicas of the new last chunk when shrinking.
    /// A size change needs the file's writer lease: held already if this mount has the file
    /// open for writing, otherwise taken for the duration of the change.
    pub async fn setattr(&self, req: pb::SetAttrRequest) -> Result<FileAttr, FsError> {
        let ino = req.ino;
        self.shared.fresh.forget(ino);
        let Some(size) = req.size else {
            let Some(inode) = self.shared.inodes.get(ino) else {
                return Ok(self.present(&self.master().set_attr(req).await?));
            };
            // A change of mode, owner or times with writes buffered (tar, cp -p and rsync
            // set them through the open file before closing it) rides on the commit of those
            // writes (see `inode::deferred`).
            if let Some(changes) = AttrChanges::of(&req) {
                if let Some(attr) = inode
                    .defer(self.io(), changes, dfs_proto::time::now())
                    .await
                {
                    return Ok(self.present(&attr));
                }
            }
            // Otherwise writes still buffered come first: committed later, they would
            // overwrite the mtime this call sets. A write that failed earlier is owed to
            // close and fsync, not to this change.
            if let Some(attr) = inode.send_and_commit(self.io()).await? {
                self.shared.fresh.forget(ino);
                self.note_version(&attr);
            }
            let attr = self.master().set_attr(req).await?;
            inode.note_attr(attr).await;
            return Ok(self.present(&attr));
        };
        let borrowed = !self.shared.leases.holds(ino);
        if borrowed {
            self.acquire_lease(ino).await?;
        }
        let result = match self.shared.inodes.get(ino) {
            Some(inode) => inode.resize(self.io(), req, size).await,
            None => {
                async {
                    self.io().truncate_replicas(ino, size, 0).await?;
                    self.master().set_attr(req).await
                }
                .await
            }
        };
        if borrowed {
            self.release_lease(ino).await;
        }
        Ok(self.present(&result?))
    }

    /// [`setattr`](Client::setattr) without waiting, for the thread that received the
    /// request: a change of mode, owner or times while this mount writes the file is kept for
    /// its commit (see `inode::deferred`) and answered at once; `None` means: take
    /// `setattr`. Must run inside the runtime's context (it may start the file's sender).
    pub fn setattr_now(&self, req: &pb::SetAttrRequest) -> Option<FileAttr> {
        let changes = AttrChanges::of(req)?;
        let inode = self.shared.inodes.get(req.ino)?;
        let attr = inode.try_defer(self.io(), changes, dfs_proto::time::now())?;
        self.shared.fresh.forget(req.ino);
        Some(self.present(&attr))
    }

    /// The target of a symlink.
    pub async fn readlink(&self, ino: u64) -> Result<Vec<u8>, FsError> {
        self.master().read_link(ino).await
    }

    /// Creates a node of `kind` owned by the caller. `mode` carries the requested permission
    /// bits; `umask` is applied here.
    #[allow(clippy::too_many_arguments)]
    pub async fn make_node(
        &self,
        caller: Caller,
        parent: u64,
        name: &[u8],
        kind: FileKind,
        mode: u32,
        umask: u32,
        rdev: u32,
        symlink_target: &[u8],
    ) -> Result<FileAttr, FsError> {
        let node = NewNode {
            parent,
            name,
            kind,
            perm: creation_perm(mode, umask),
            rdev,
            symlink_target,
            exclusive: true,
        };
        Ok(self.present(&self.create_node(caller, node).await?))
    }

    async fn create_node(&self, caller: Caller, node: NewNode<'_>) -> Result<pb::Attr, FsError> {
        check_name(node.name)?;
        let (parent, name, kind) = (node.parent, node.name, node.kind);
        let made = self.master().make_node(node_request(caller, node)).await;
        let (attr, dirs) = self.names_in_doubt_on_error(made, &[parent])?;
        if kind == FileKind::Directory {
            self.shared.known.created(&attr, Instant::now());
        }
        self.note_changed_dirs(dirs, NameChange::Added { dir: parent, name });
        Ok(attr)
    }

    /// Keeps the attributes of directories a call just changed, for the `getattr` the
    /// kernel sends before its next permission check in them (see
    /// [`FreshAttrs`](crate::fresh::FreshAttrs)), and what `change` did to their names (see
    /// [`KnownNames`](crate::known_names::KnownNames)).
    pub(super) fn note_changed_dirs(&self, dirs: Vec<pb::Attr>, change: NameChange<'_>) {
        let now = Instant::now();
        self.shared.known.changed(change, &dirs, now);
        for dir in dirs {
            self.shared.fresh.put(dir, now);
        }
    }

    /// Passes `result` on; a failed change of names in `dirs` (say `EEXIST` for a name this
    /// mount believed absent) makes this mount forget what it knew of their names.
    pub(super) fn names_in_doubt_on_error<T>(
        &self,
        result: Result<T, FsError>,
        dirs: &[u64],
    ) -> Result<T, FsError> {
        if result.is_err() {
            for &dir in dirs {
                self.shared.known.forget(dir);
            }
        }
        result
    }

    /// Whether `name` is known to be absent from directory `parent` (see
    /// [`KnownNames`](crate::known_names::KnownNames)), so its lookup needs no master call.
    pub fn known_absent(&self, parent: u64, name: &[u8], ttl: Duration) -> bool {
        // A name no directory can hold gets its error from `lookup`.
        check_name(name).is_ok() && self.shared.known.absent(parent, name, ttl, Instant::now())
    }

    /// Removes a non-directory entry. The last name of a file open on this mount becomes a
    /// hidden name instead, removed at its last close (see `Shared::hidden`).
    pub async fn unlink(&self, parent: u64, name: &[u8]) -> Result<(), FsError> {
        check_name(name)?;
        // The file's link count and ctime change.
        self.shared.fresh.clear();
        let removed = NameChange::Removed { dir: parent, name };
        if self.shared.inodes.is_empty() {
            let unlinked = self.master().unlink(parent, name).await;
            let dirs = self.names_in_doubt_on_error(unlinked, &[parent])?;
            self.note_changed_dirs(dirs, removed);
            return Ok(());
        }
        let attr = self.master().lookup(parent, name).await?;
        let open_here = self.shared.inodes.get(attr.ino).is_some();
        if attr.kind() == FileKind::Regular && attr.nlink == 1 && open_here {
            // The master would delete the inode with its last name, under the open handles.
            let hidden = format!(".dfs-hidden-{:016x}", attr.ino).into_bytes();
            self.rename(parent, name, parent, &hidden, 0).await?;
            let mut hidden_files = self.shared.hidden.lock().expect("hidden lock poisoned");
            hidden_files.insert(attr.ino, (parent, hidden));
            return Ok(());
        }
        let unlinked = self.master().unlink(parent, name).await;
        let dirs = self.names_in_doubt_on_error(unlinked, &[parent])?;
        self.note_changed_dirs(dirs, removed);
        if let Some(inode) = self.shared.inodes.get(attr.ino) {
            // One of its links went: its link count and ctime moved on.
            inode.forget_attr().await;
        }
        Ok(())
    }

    /// Removes an empty directory.
    pub async fn rmdir(&self, parent: u64, name: &[u8]) -> Result<(), FsError> {
        check_name(name)?;
        let removed = self.master().rmdir(parent, name).await;
        let dirs = self.names_in_doubt_on_error(removed, &[parent])?;
        self.note_changed_dirs(dirs, NameChange::Removed { dir: parent, name });
        Ok(())
    }

    /// Renames an entry; `flags` are `renameat2` flags, passed through.
    pub async fn rename(
        &self,
        parent: u64,
        name: &[u8],
        new_parent: u64,
        new_name: &[u8],
        flags: u32,
    ) -> Result<(), FsError> {
        check_name(name)?;
        check_name(new_name)?;
        // The moved file's ctime changes, and a replaced one's link count.
        self.shared.fresh.clear();
        let req = pb::RenameRequest {
            parent,
            name: name.to_vec(),
            new_parent,
            new_name: new_name.to_vec(),
            flags,
        };
        let renamed = self.master().rename(req).await;
        let dirs = self.names_in_doubt_on_error(renamed, &[parent, new_parent])?;
        self.note_changed_dirs(dirs, NameChange::Other);
        Ok(())
    }

    /// Adds a hard link to `ino` as `new_name` in `new_parent`.
    pub async fn link(
        &self,
        ino: u64,
        new_parent: u64,
        new_name: &[u8],
    ) -> Result<FileAttr, FsError> {
        check_name(new_name)?;
        self.shared.fresh.forget(ino);
        let linked = self.master().link(ino, new_parent, new_name).await;
        let (attr, dirs) = self.names_in_doubt_on_error(linked, &[new_parent])?;
        let added = NameChange::Added {
            dir: new_parent,
            name: new_name,
        };
        self.note_changed_dirs(dirs, added);
        if let Some(inode) = self.shared.inodes.get(ino) {
            inode.note_attr(attr).await;
        }
        Ok(self.present(&attr))
    }

    /// Whether the inode exists (permission bits are checked by the kernel, which mounts with
    /// `default_permissions`).
    pub async fn access(&self, ino: u64) -> Result<(), FsError> {
        self.master().get_attr(ino).await.map(drop)
    }

    /// Capacity and usage, in [`STATFS_BLOCK_SIZE`] blocks of usable (post-replication) space.
    pub async fn statfs(&self) -> Result<StatFs, FsError> {
        let st = self.master().stat_fs().await?;
        let unit = u64::from(STATFS_BLOCK_SIZE) * u64::from(self.shared.replication.max(1));
        Ok(StatFs {
            blocks: st.total_bytes / unit,
            bfree: st.free_bytes / unit,
            files: st.files + STATFS_FREE_INODES,
            ffree: STATFS_FREE_INODES,
        })
    }
}

/// The master's request for creating `node` on behalf of `caller`.
pub(super) fn node_request(caller: Caller, node: NewNode<'_>) -> pb::MakeNodeRequest {
    pb::MakeNodeRequest {
        parent: node.parent,
        name: node.name.to_vec(),
        kind: node.kind as i32,
        perm: node.perm,
        uid: caller.uid,
        gid: caller.gid,
        rdev: node.rdev,
        symlink_target: node.symlink_target.to_vec(),
        exclusive: node.exclusive,
    }
}
