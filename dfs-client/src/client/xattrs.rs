//! Extended attributes of [`Client`], stored by the master (see `dfs_master::xattr`).
//!
//! Which namespaces a kernel adapter stores, and what it answers for the others, is its own
//! policy; the client passes every name through.

use dfs_proto::FsError;
use dfs_proto::pb;

use super::Client;

/// How setting an attribute treats an existing one (`setxattr(2)`'s flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XattrMode {
    /// Create it or replace it.
    Upsert,
    /// Fail with `EEXIST` if it exists (`XATTR_CREATE`).
    Create,
    /// Fail with `ENODATA` if it does not exist (`XATTR_REPLACE`).
    Replace,
}

impl Client {
    /// The value of attribute `name` of `ino`.
    pub async fn get_xattr(&self, ino: u64, name: &[u8]) -> Result<Vec<u8>, FsError> {
        self.master().get_xattr(ino, name).await
    }

    /// Sets attribute `name` of `ino` to `value`, as `mode` allows.
    pub async fn set_xattr(
        &self,
        ino: u64,
        name: &[u8],
        value: &[u8],
        mode: XattrMode,
    ) -> Result<(), FsError> {
        let mode = match mode {
            XattrMode::Upsert => pb::XattrMode::Upsert,
            XattrMode::Create => pb::XattrMode::Create,
            XattrMode::Replace => pb::XattrMode::Replace,
        };
        self.master().set_xattr(ino, name, value, mode).await
    }

    /// The names of the attributes of `ino`.
    pub async fn list_xattrs(&self, ino: u64) -> Result<Vec<Vec<u8>>, FsError> {
        self.master().list_xattrs(ino).await
    }

    /// Removes attribute `name` of `ino`.
    pub async fn remove_xattr(&self, ino: u64, name: &[u8]) -> Result<(), FsError> {
        self.master().remove_xattr(ino, name).await
    }
}
