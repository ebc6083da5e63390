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

use dfs_client::XattrMode;

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

/// The client's mode for `setxattr(2)` flags, or the errno for flags it does not know.
pub fn mode(flags: i32) -> Result<XattrMode, i32> {
    match flags {
        0 => Ok(XattrMode::Upsert),
        XATTR_CREATE => Ok(XattrMode::Create),
        XATTR_REPLACE => Ok(XattrMode::Replace),
        _ => Err(libc::EINVAL),
    }
}

/// The names of a `listxattr` reply: each followed by a NUL.
pub fn name_list(names: Vec<Vec<u8>>) -> Vec<u8> {
    let mut list = Vec::new();
    for name in names {
        list.extend_from_slice(&name);
        list.push(0);
    }
    list
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

    #[test]
    fn flags_become_modes_and_names_are_nul_terminated() {
        assert_eq!(mode(0), Ok(XattrMode::Upsert));
        assert_eq!(mode(XATTR_CREATE), Ok(XattrMode::Create));
        assert_eq!(mode(XATTR_REPLACE), Ok(XattrMode::Replace));
        assert_eq!(mode(3), Err(libc::EINVAL));
        assert_eq!(
            name_list(vec![b"user.a".to_vec(), b"user.b".to_vec()]),
            b"user.a\0user.b\0"
        );
    }
}
