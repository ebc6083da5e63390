//! The `Xattrs` service: extended attributes, stored by the master.

use dfs_proto::FsError;
use dfs_proto::pb;

use super::{MasterClient, Xattrs};

impl MasterClient {
    /// The value of extended attribute `name` of `ino`.
    pub async fn get_xattr(&self, ino: u64, name: &[u8]) -> Result<Vec<u8>, FsError> {
        let req = pb::XattrRequest {
            ino,
            name: name.to_vec(),
        };
        Ok(self
            .call("Xattrs/GetXattr", req, |mut s: Xattrs, r| async move {
                s.get_xattr(r).await
            })
            .await?
            .value)
    }

    /// Sets extended attribute `name` of `ino`.
    pub async fn set_xattr(
        &self,
        ino: u64,
        name: &[u8],
        value: &[u8],
        mode: pb::XattrMode,
    ) -> Result<(), FsError> {
        let req = pb::SetXattrRequest {
            ino,
            name: name.to_vec(),
            value: value.to_vec(),
            mode: mode.into(),
        };
        self.call("Xattrs/SetXattr", req, |mut s: Xattrs, r| async move {
            s.set_xattr(r).await
        })
        .await
        .map(drop)
    }

    /// The names of the extended attributes of `ino`.
    pub async fn list_xattrs(&self, ino: u64) -> Result<Vec<Vec<u8>>, FsError> {
        let req = pb::GetAttrRequest { ino };
        Ok(self
            .call("Xattrs/ListXattrs", req, |mut s: Xattrs, r| async move {
                s.list_xattrs(r).await
            })
            .await?
            .names)
    }

    /// Removes extended attribute `name` of `ino`.
    pub async fn remove_xattr(&self, ino: u64, name: &[u8]) -> Result<(), FsError> {
        let req = pb::XattrRequest {
            ino,
            name: name.to_vec(),
        };
        self.call("Xattrs/RemoveXattr", req, |mut s: Xattrs, r| async move {
            s.remove_xattr(r).await
        })
        .await
        .map(drop)
    }
}
