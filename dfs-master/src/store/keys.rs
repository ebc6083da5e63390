//! Keys of the column families, and the values that are not records: fixed-width big-endian
//! integers, so that RocksDB's byte order is numeric order and a directory listing, a file's
//! chunk list or a server's deletion queue is one prefix scan.

use crate::error::{Error, Result};
use crate::namespace::Dentry;
use crate::store::CF_DENTRIES;
use crate::store::records::{kind_byte, kind_of_byte};

/// Key of an inode, symlink, server or chunk-id entry: the id as u64 BE.
pub fn id_key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

/// Key of the directory entry `name` in directory `parent` (and of extended attribute `name`
/// of inode `parent`).
pub fn dentry_key(parent: u64, name: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + name.len());
    key.extend_from_slice(&parent.to_be_bytes());
    key.extend_from_slice(name);
    key
}

/// Key of a pair of ids (`chunks`: ino ‖ index, `deletions`: server ‖ chunk id).
pub fn pair_key(a: u64, b: u64) -> [u8; 16] {
    let mut key = [0; 16];
    key[..8].copy_from_slice(&a.to_be_bytes());
    key[8..].copy_from_slice(&b.to_be_bytes());
    key
}

/// Encodes a directory entry value: the child's ino u64 BE ‖ its kind byte.
pub fn encode_dentry(dentry: Dentry) -> [u8; 9] {
    let mut value = [0; 9];
    value[..8].copy_from_slice(&dentry.ino.to_be_bytes());
    value[8] = kind_byte(dentry.kind);
    value
}

/// Decodes a u64 BE key or value of column family `cf`.
pub(crate) fn decode_u64(cf: &'static str, bytes: &[u8]) -> Result<u64> {
    let array: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::Corrupt {
            cf,
            detail: format!("{} bytes, want 8", bytes.len()),
        })?;
    Ok(u64::from_be_bytes(array))
}

/// Decodes a pair key (or the `chunk_ids` value) of column family `cf`.
pub(crate) fn decode_pair(cf: &'static str, bytes: &[u8]) -> Result<(u64, u64)> {
    if bytes.len() != 16 {
        let detail = format!("{} bytes, want 16", bytes.len());
        return Err(Error::Corrupt { cf, detail });
    }
    Ok((decode_u64(cf, &bytes[..8])?, decode_u64(cf, &bytes[8..])?))
}

/// Decodes a directory entry value.
pub(crate) fn decode_dentry(bytes: &[u8]) -> Result<Dentry> {
    let ino = decode_u64(CF_DENTRIES, bytes)?;
    let kind = bytes
        .get(8)
        .and_then(|&k| kind_of_byte(k))
        .ok_or_else(|| Error::Corrupt {
            cf: CF_DENTRIES,
            detail: "bad kind byte".into(),
        })?;
    Ok(Dentry { ino, kind })
}
