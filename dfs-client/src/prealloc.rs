//! `fallocate(2)` (and so `posix_fallocate(3)`) on dfs files.
//!
//! dfs has nothing to reserve: chunks are allocated when first written, and a range never
//! written reads as zeros. So preallocating means: check that the cluster has room for the
//! bytes the call adds past the end of the file (`ENOSPC` if not; checked, not reserved:
//! another writer may take the space meanwhile), then, for mode 0, extend the file's size to
//! the end of the range. `FALLOC_FL_KEEP_SIZE` only checks the space. Every other mode
//! (punching holes, zeroing, collapsing or inserting ranges) is `EOPNOTSUPP`, as on
//! filesystems without them; the kernel refuses the latter two before asking.
//!
//! Without this, the kernel reports `EOPNOTSUPP` for any `fallocate` and glibc's
//! `posix_fallocate` falls back to writing a zero into every block of the range.

use dfs_proto::FsError;

use crate::attr::SetAttr;
use crate::client::{Client, STATFS_BLOCK_SIZE};

impl Client {
    /// Preallocates `[offset, offset + length)` of open file `ino` as `fallocate(2)` mode
    /// `mode` asks (see the module documentation).
    pub async fn fallocate(
        &self,
        ino: u64,
        offset: u64,
        length: u64,
        mode: i32,
    ) -> Result<(), FsError> {
        let client = self;
        if mode & !libc::FALLOC_FL_KEEP_SIZE != 0 {
            return Err(FsError::NotSupported);
        }
        let end = offset
            .checked_add(length)
            .filter(|&end| end <= i64::MAX as u64)
            .ok_or_else(|| FsError::Invalid(format!("range {offset}+{length}")))?;
        // The size as this mount sees it, buffered writes included.
        let size = client.getattr(ino).await?.size;
        if end <= size {
            return Ok(());
        }
        let free = client.statfs().await?.bfree * u64::from(STATFS_BLOCK_SIZE);
        if end - size > free {
            return Err(FsError::NoSpace);
        }
        if mode & libc::FALLOC_FL_KEEP_SIZE != 0 {
            return Ok(());
        }
        let change = SetAttr {
            size: Some(end),
            ..SetAttr::default()
        };
        client.setattr(ino, &change).await.map(drop)
    }
}
