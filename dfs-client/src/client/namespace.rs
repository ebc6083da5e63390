//! Namespace operations of [`Client`]: lookups, attributes, creating, linking, renaming and
//! removing names, and `statfs`.

use std::time::Instant;

use dfs_proto::FsError;
use dfs_proto::pb;

use super::{Caller, Client, NewNode, STATFS_BLOCK_SIZE, StatFs, check_name};
use crate::attr::{Attr, FileKind, SetAttr, creation_perm};
use crate::inode::AttrChanges;

/// Free inodes reported by `statfs`: the master allocates inode numbers without a fixed table.
const STATFS_FREE_INODES: u64 = 1 << 32;

impl Client {
    /// Looks up `name` in directory `parent` for process `pid`; a small file's chunk map
    /// comes along for the open by the same process that usually follows (see
    /// `FreshAttrs`). Answers the attributes and whether such a
    /// map was kept: the kernel must then not keep the name (see `fs::namespace`).
    pub async fn lookup(
        &self,
        parent: u64,
        name: &[u8],
        pid: u32,
    ) -> Result<(Attr, bool), FsError> {
        check_name(name)?;
        if !self.shared.open_ahead {
            return Ok((
                self.present(&self.master().lookup(parent, name).await?),
                false,
            ));
        }
        let (attr, chunk_map) = self.master().lookup_ahead(parent, name).await?;
        let ahead = chunk_map.is_some();
        if let Some(chunk_map) = chunk_map {
            self.shared
                .fresh
                .put_ahead(attr, chunk_map, pid, Instant::now());
        }
        Ok((self.present(&attr), ahead))
    }

    /// Attributes of an inode.
    pub async fn getattr(&self, ino: u64) -> Result<Attr, FsError> {
        Ok(self.present(&self.master().get_attr(ino).await?))
    }

    /// Changes the attributes of `ino`; a size change commits this client's writes first and
    /// cuts the replicas of the new last chunk when shrinking.
    /// A size change needs the file's writer lease: held already if this client has the file
    /// open for writing, otherwise taken for the duration of the change.
    pub async fn setattr(&self, ino: u64, change: &SetAttr) -> Result<Attr, FsError> {
        let req = change.request(ino);
        self.shared.fresh.forget(ino);
        if req.atime.is_some() {
            // A late batch must not overwrite the atime set here.
            self.shared.marks.settle(ino).await;
        }
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
            self.release_lease(ino);
        }
        Ok(self.present(&result?))
    }

    /// [`setattr`](Client::setattr) without waiting, for the thread that received the
    /// request: a change of mode, owner or times while this mount writes the file is kept for
    /// its commit (see `inode::deferred`) and answered at once; `None` means: take
    /// `setattr`. Must run inside the runtime's context (it may start the file's sender).
    pub fn setattr_now(&self, ino: u64, change: &SetAttr) -> Option<Attr> {
        let req = &change.request(ino);
        let changes = AttrChanges::of(req)?;
        if req.atime.is_some() && self.shared.marks.is_pending(req.ino) {
            // `setattr` sends the mark first, which needs waiting.
            return None;
        }
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
    ) -> Result<Attr, FsError> {
        let node = NewNode {
            parent,
            name,
            kind: kind.into(),
            perm: creation_perm(mode, umask),
            rdev,
            symlink_target,
            exclusive: true,
        };
        Ok(self.present(&self.create_node(caller, node).await?))
    }

    async fn create_node(&self, caller: Caller, node: NewNode<'_>) -> Result<pb::Attr, FsError> {
        check_name(node.name)?;
        let (attr, dirs) = self.master().make_node(node_request(caller, node)).await?;
        self.note_changed_dirs(dirs);
        Ok(attr)
    }

    /// Keeps the attributes of directories a call just changed, for the `getattr` the
    /// kernel sends before its next permission check in them (see
    /// [`FreshAttrs`](crate::fresh::FreshAttrs)).
    pub(super) fn note_changed_dirs(&self, dirs: Vec<pb::Attr>) {
        let now = Instant::now();
        for dir in dirs {
            self.shared.fresh.put(dir, now);
        }
    }

    /// Removes a non-directory entry. The last name of a file open on this mount becomes a
    /// hidden name instead, removed at its last close (see `Shared::hidden`).
    pub async fn unlink(&self, parent: u64, name: &[u8]) -> Result<(), FsError> {
        check_name(name)?;
        // The file's link count and ctime change.
        self.shared.fresh.clear();
        if self.shared.inodes.is_empty() {
            let dirs = self.master().unlink(parent, name).await?;
            self.note_changed_dirs(dirs);
            return Ok(());
        }
        let attr = self.master().lookup(parent, name).await?;
        let open_here = self.shared.inodes.get(attr.ino).is_some();
        if attr.kind() == pb::FileKind::Regular && attr.nlink == 1 && open_here {
            // The master would delete the inode with its last name, under the open handles.
            let hidden = format!(".dfs-hidden-{:016x}", attr.ino).into_bytes();
            self.rename(parent, name, parent, &hidden, 0).await?;
            let mut hidden_files = self.shared.hidden.lock().expect("hidden lock poisoned");
            hidden_files.insert(attr.ino, (parent, hidden));
            return Ok(());
        }
        let dirs = self.master().unlink(parent, name).await?;
        self.note_changed_dirs(dirs);
        if let Some(inode) = self.shared.inodes.get(attr.ino) {
            // One of its links went: its link count and ctime moved on.
            inode.forget_attr().await;
        }
        Ok(())
    }

    /// Removes an empty directory.
    pub async fn rmdir(&self, parent: u64, name: &[u8]) -> Result<(), FsError> {
        check_name(name)?;
        let dirs = self.master().rmdir(parent, name).await?;
        self.note_changed_dirs(dirs);
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
        let dirs = self.master().rename(req).await?;
        self.note_changed_dirs(dirs);
        Ok(())
    }

    /// Adds a hard link to `ino` as `new_name` in `new_parent`.
    pub async fn link(&self, ino: u64, new_parent: u64, new_name: &[u8]) -> Result<Attr, FsError> {
        check_name(new_name)?;
        self.shared.fresh.forget(ino);
        let (attr, dirs) = self.master().link(ino, new_parent, new_name).await?;
        self.note_changed_dirs(dirs);
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
