//! Extended attributes, stored by the master (see `dfs_master::xattr`).
//!
//! The `user.` and `trusted.` namespaces are stored; the kernel has already decided whether
//! the caller may touch them (`user.` only on regular files and directories, `trusted.` only
//! with `CAP_SYS_ADMIN`) and checked name and value lengths. `security.` and `system.` are
//! not stored: setting or reading one fails with `EOPNOTSUPP` without a round trip, because
//! the kernel asks for `security.capability` before every write to a file. (Not supported
//! rather than absent: `ls -l`, which asks for `security.selinux` of every file it lists,
//! stops asking on a filesystem that answers so; POSIX ACLs, `system.posix_acl_*`, the kernel
//! refuses itself, since the mount does not ask for them.)

use dfs_proto::FsError;
use dfs_proto::pb::XattrMode;

use crate::client::Client;

/// Namespaces whose attributes the master stores.
const STORED_NAMESPACES: [&[u8]; 2] = [b"user.", b"trusted."];

/// Linux `setxattr(2)` flags.
const XATTR_CREATE: i32 = 1;
const XATTR_REPLACE: i32 = 2;

/// What a `getxattr`/`listxattr` reply carries for a caller's buffer of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Sized {
    /// The caller asked only for the length (`size` 0).
    Len(u32),
    /// The bytes, which fit.
    Data(Vec<u8>),
}

/// Answers a request with buffer `size` for `bytes`: the length, the bytes, or `ERANGE`.
pub fn fit(bytes: Vec<u8>, size: u32) -> Result<Sized, i32> {
    let len = u32::try_from(bytes.len()).map_err(|_| libc::E2BIG)?;
    match size {
        0 => Ok(Sized::Len(len)),
        _ if len > size => Err(libc::ERANGE),
        _ => Ok(Sized::Data(bytes)),
    }
}

/// Whether attributes named `name` are stored by the master (others are answered locally).
pub fn stored(name: &[u8]) -> bool {
    STORED_NAMESPACES.iter().any(|ns| name.starts_with(ns))
}

/// Errors of the xattr calls: a filesystem error or an errno decided here.
#[derive(Debug)]
pub enum XattrError {
    Fs(FsError),
    Errno(i32),
}

impl From<FsError> for XattrError {
    fn from(err: FsError) -> XattrError {
        XattrError::Fs(err)
    }
}

impl Client {
    /// The value of attribute `name` of `ino`.
    pub async fn get_xattr(&self, ino: u64, name: &[u8]) -> Result<Vec<u8>, FsError> {
        if !stored(name) {
            return Err(FsError::NotSupported);
        }
        self.master().get_xattr(ino, name).await
    }

    /// Sets attribute `name` of `ino`, honouring `XATTR_CREATE`/`XATTR_REPLACE` in `flags`.
    pub async fn set_xattr(
        &self,
        ino: u64,
        name: &[u8],
        value: &[u8],
        flags: i32,
    ) -> Result<(), XattrError> {
        if !stored(name) {
            return Err(XattrError::Errno(libc::EOPNOTSUPP));
        }
        let mode = match flags {
            0 => XattrMode::Upsert,
            XATTR_CREATE => XattrMode::Create,
            XATTR_REPLACE => XattrMode::Replace,
            _ => return Err(XattrError::Errno(libc::EINVAL)),
        };
        Ok(self.master().set_xattr(ino, name, value, mode).await?)
    }

    /// The names of the attributes of `ino`, each followed by a NUL, as `listxattr` returns.
    pub async fn list_xattrs(&self, ino: u64) -> Result<Vec<u8>, FsError> {
        let mut list = Vec::new();
        for name in self.master().list_xattrs(ino).await? {
            list.extend_from_slice(&name);
            list.push(0);
        }
        Ok(list)
    }

    /// Removes attribute `name` of `ino`.
    pub async fn remove_xattr(&self, ino: u64, name: &[u8]) -> Result<(), XattrError> {
        if !stored(name) {
            return Err(XattrError::Errno(libc::EOPNOTSUPP));
        }
        Ok(self.master().remove_xattr(ino, name).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_gets_the_length_the_bytes_or_erange() {
        assert_eq!(fit(b"abc".to_vec(), 0), Ok(Sized::Len(3)));
        assert_eq!(fit(b"abc".to_vec(), 3), Ok(Sized::Data(b"abc".to_vec())));
        assert_eq!(fit(b"abc".to_vec(), 2), Err(libc::ERANGE));
    }

    #[test]
    fn only_user_and_trusted_attributes_are_stored() {
        assert!(stored(b"user.x"));
        assert!(stored(b"trusted.x"));
        assert!(!stored(b"security.capability"));
        assert!(!stored(b"system.posix_acl_access"));
        assert!(!stored(b"userx"));
    }
}
