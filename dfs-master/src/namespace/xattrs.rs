//! Extended attributes: named byte strings attached to an inode, kept in the `xattrs` column
//! family as `ino ‖ name` → value and removed together with the inode.
//!
//! The kernel checks names and sizes before a request reaches dfs (a name of at most 255
//! bytes with a namespace prefix, a value of at most 64 KiB) and decides which namespaces a
//! caller may touch; the master keeps the semantics of `setxattr(2)`'s flags and a bound on
//! the names of one inode, so `listxattr` always fits the kernel's 64 KiB list buffer.
//! Setting or removing an attribute changes the inode's ctime, as on Linux.

use dfs_proto::FsError;
use dfs_proto::pb::Timestamp;

use crate::error::Result;
use crate::namespace::{Namespace, require};

/// How a set treats an attribute that exists or not (`setxattr(2)`'s flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XattrMode {
    /// Create or replace (no flag).
    Upsert,
    /// Fail with `EEXIST` if the attribute exists (`XATTR_CREATE`).
    Create,
    /// Fail with `ENODATA` if the attribute does not exist (`XATTR_REPLACE`).
    Replace,
}

/// Longest attribute name (Linux `XATTR_NAME_MAX`).
pub const MAX_XATTR_NAME_LEN: usize = 255;

/// Largest attribute value (Linux `XATTR_SIZE_MAX`).
pub const MAX_XATTR_VALUE_LEN: usize = 64 << 10;

/// Most bytes the names of one inode take in a `listxattr` reply, NULs included (Linux
/// `XATTR_LIST_MAX`): setting one more name fails with `ENOSPC`.
pub const MAX_XATTR_LIST_LEN: usize = 64 << 10;

impl Namespace {
    /// The value of attribute `name` of `ino`; `ENODATA` when it has none of that name.
    pub fn get_xattr(&self, ino: u64, name: &[u8]) -> Result<Vec<u8>> {
        let store = self.writer.store();
        require(store.inode(ino)?)?;
        store
            .xattr(ino, name)?
            .ok_or_else(|| FsError::NoData.into())
    }

    /// The names of the attributes of `ino`, in byte order.
    pub fn list_xattrs(&self, ino: u64) -> Result<Vec<Vec<u8>>> {
        let store = self.writer.store();
        require(store.inode(ino)?)?;
        store.xattr_names(ino)
    }

    /// Sets attribute `name` of `ino` to `value`, subject to `mode` (`EEXIST` for a create of
    /// an existing attribute, `ENODATA` for a replace of a missing one).
    pub fn set_xattr(
        &self,
        ino: u64,
        name: &[u8],
        value: &[u8],
        mode: XattrMode,
        now: Timestamp,
    ) -> Result<()> {
        if name.is_empty() {
            return Err(FsError::Invalid("empty attribute name".into()).into());
        }
        if name.len() > MAX_XATTR_NAME_LEN || value.len() > MAX_XATTR_VALUE_LEN {
            return Err(FsError::NoSpace.into());
        }
        let mut txn = self.writer.begin();
        let mut inode = require(txn.inode(ino)?)?;
        let store = self.writer.store();
        let exists = store.xattr(ino, name)?.is_some();
        match mode {
            XattrMode::Create if exists => return Err(FsError::Exists.into()),
            XattrMode::Replace if !exists => return Err(FsError::NoData.into()),
            _ => {}
        }
        if !exists {
            let listed: usize = store.xattr_names(ino)?.iter().map(|n| n.len() + 1).sum();
            if listed + name.len() + 1 > MAX_XATTR_LIST_LEN {
                return Err(FsError::NoSpace.into());
            }
        }
        txn.put_xattr(ino, name, value);
        inode.attr.ctime = Some(now);
        txn.put_inode(inode);
        txn.commit()
    }

    /// Removes attribute `name` of `ino`; `ENODATA` when it has none of that name.
    pub fn remove_xattr(&self, ino: u64, name: &[u8], now: Timestamp) -> Result<()> {
        let mut txn = self.writer.begin();
        let mut inode = require(txn.inode(ino)?)?;
        if self.writer.store().xattr(ino, name)?.is_none() {
            return Err(FsError::NoData.into());
        }
        txn.delete_xattr(ino, name);
        inode.attr.ctime = Some(now);
        txn.put_inode(inode);
        txn.commit()
    }
}
