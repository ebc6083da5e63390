//! `rename(2)` and `renameat2(2)`: the one namespace operation that touches two directories,
//! may replace (and so unlink) a target, and must keep the directory tree a tree.
//!
//! Rules, as in POSIX and Linux:
//! * a file may replace a file, an empty directory may be replaced by a directory; a directory
//!   over a non-directory is `ENOTDIR`, a non-directory over a directory is `EISDIR`, a
//!   non-empty directory target is `ENOTEMPTY`;
//! * moving a directory into its own subtree is `EINVAL` (found by walking `parent` links up
//!   from the destination directory);
//! * renaming onto the same inode (the same entry, or another hard link of it) does nothing;
//! * `RENAME_NOREPLACE` fails with `EEXIST` if the target exists; `RENAME_EXCHANGE` swaps two
//!   existing entries atomically (`ENOENT` if either is missing).

use dfs_proto::pb::Timestamp;
use dfs_proto::{FsError, ROOT_INO};

use crate::error::{Error, Result};
use crate::namespace::{
    Dentry, Namespace, check_name, drop_link, entry, invalid, require, require_dir, update_dir,
};
use crate::store::CF_INODES;
use crate::store::txn::Txn;

/// `renameat2` flag: fail if the target exists.
pub const RENAME_NOREPLACE: u32 = 1;
/// `renameat2` flag: atomically swap source and target.
pub const RENAME_EXCHANGE: u32 = 2;

/// Deepest directory tree a walk to the root accepts before declaring the `parent` links
/// corrupt (a cycle would otherwise loop forever).
const MAX_DEPTH: usize = 1 << 16;

/// Where an entry is, and what it names.
#[derive(Clone, Copy)]
struct Slot<'a> {
    parent: u64,
    name: &'a [u8],
    dentry: Dentry,
}

impl Namespace {
    /// Moves entry `name` of `parent` to `new_name` in `new_parent`, following the rules in
    /// the module documentation. `flags` are `renameat2` flags.
    pub fn rename(
        &self,
        parent: u64,
        name: &[u8],
        new_parent: u64,
        new_name: &[u8],
        flags: u32,
        now: Timestamp,
    ) -> Result<()> {
        if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE) != 0
            || flags == RENAME_NOREPLACE | RENAME_EXCHANGE
        {
            return Err(invalid("unsupported rename flags"));
        }
        check_name(name)?;
        check_name(new_name)?;

        let mut txn = self.writer.begin();
        let src = Slot {
            parent,
            name,
            dentry: entry(&mut txn, parent, name)?,
        };
        require_dir(txn.inode(new_parent)?)?;
        let target = txn.store().dentry(new_parent, new_name)?;

        if flags & RENAME_EXCHANGE != 0 {
            let dentry = target.ok_or(FsError::NotFound)?;
            let dst = Slot {
                parent: new_parent,
                name: new_name,
                dentry,
            };
            return exchange(txn, src, dst, now);
        }
        if let Some(target) = target {
            if flags & RENAME_NOREPLACE != 0 {
                return Err(FsError::Exists.into());
            }
            if target.ino == src.dentry.ino {
                return Ok(());
            }
        }
        if src.dentry.is_dir()
            && moves_into_own_subtree(&mut txn, src.dentry.ino, parent, new_parent)?
        {
            return Err(invalid("cannot move a directory into its own subtree"));
        }
        let mut subdir_delta_new = 0;
        if let Some(target) = target {
            match (src.dentry.is_dir(), target.is_dir()) {
                (true, false) => return Err(FsError::NotDir.into()),
                (false, true) => return Err(FsError::IsDir.into()),
                (true, true) => {
                    if !txn.store().dir_is_empty(target.ino)? {
                        return Err(FsError::NotEmpty.into());
                    }
                    txn.remove_inode(target.ino)?;
                    subdir_delta_new -= 1;
                }
                (false, false) => drop_link(&mut txn, target.ino, now)?,
            }
        }

        txn.delete_dentry(parent, name);
        txn.put_dentry(new_parent, new_name, src.dentry);
        moved(&mut txn, src.dentry, new_parent, now)?;
        if src.dentry.is_dir() {
            update_dir(&mut txn, parent, -1, now)?;
            subdir_delta_new += 1;
        } else {
            update_dir(&mut txn, parent, 0, now)?;
        }
        update_dir(&mut txn, new_parent, subdir_delta_new, now)?;
        txn.defer_sync();
        txn.commit()
    }
}

/// `RENAME_EXCHANGE`: each entry takes the other's inode.
fn exchange(mut txn: Txn<'_>, a: Slot<'_>, b: Slot<'_>, now: Timestamp) -> Result<()> {
    if a.dentry.ino == b.dentry.ino {
        return Ok(());
    }
    for (moving, from, to) in [
        (a.dentry, a.parent, b.parent),
        (b.dentry, b.parent, a.parent),
    ] {
        if moving.is_dir() && moves_into_own_subtree(&mut txn, moving.ino, from, to)? {
            return Err(invalid("cannot move a directory into its own subtree"));
        }
    }
    txn.put_dentry(a.parent, a.name, b.dentry);
    txn.put_dentry(b.parent, b.name, a.dentry);
    moved(&mut txn, a.dentry, b.parent, now)?;
    moved(&mut txn, b.dentry, a.parent, now)?;
    // A directory swapped for a non-directory moves one subdirectory between the parents.
    let subdirs = |d: Dentry| i32::from(d.is_dir());
    let delta = subdirs(b.dentry) - subdirs(a.dentry);
    if a.parent == b.parent {
        update_dir(&mut txn, a.parent, 0, now)?;
    } else {
        update_dir(&mut txn, a.parent, delta, now)?;
        update_dir(&mut txn, b.parent, -delta, now)?;
    }
    txn.defer_sync();
    txn.commit()
}

/// Records that the inode of `dentry` now lives in `new_parent`: its ctime changes, and a
/// directory remembers its new parent.
fn moved(txn: &mut Txn<'_>, dentry: Dentry, new_parent: u64, now: Timestamp) -> Result<()> {
    let mut inode = require(txn.inode(dentry.ino)?)?;
    if inode.is_dir() {
        inode.parent = new_parent;
    }
    inode.attr.ctime = Some(now);
    txn.put_inode(inode);
    Ok(())
}

/// Whether moving directory `dir` from `from` into `to` would put it inside itself, i.e.
/// `to` is `dir` or one of its descendants.
fn moves_into_own_subtree(txn: &mut Txn<'_>, dir: u64, from: u64, to: u64) -> Result<bool> {
    if from == to {
        // Staying in the same directory: `to` is `dir`'s parent, never its descendant.
        return Ok(false);
    }
    let mut current = to;
    for _ in 0..MAX_DEPTH {
        if current == dir {
            return Ok(true);
        }
        if current == ROOT_INO {
            return Ok(false);
        }
        current = require(txn.inode(current)?)?.parent;
    }
    Err(Error::Corrupt {
        cf: CF_INODES,
        detail: format!("parent links of inode {to} loop"),
    })
}
