//! The crate's one error type, and the one place where an error becomes the kernel's errno.
//!
//! Filesystem operations fail with [`FsError`] (from the client); starting a mount can also
//! fail for reasons that never reach the kernel (the client cannot connect, mount(2) refused).

use dfs_proto::FsError;

/// Everything that can go wrong in the FUSE daemon.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The client failed: a filesystem operation, or connecting to the master.
    #[error(transparent)]
    Client(#[from] dfs_client::Error),
    /// Mounting or serving the FUSE session failed.
    #[error("FUSE session on {mountpoint}: {source}")]
    Mount {
        /// Where the filesystem was (to be) mounted.
        mountpoint: String,
        /// The underlying error from fuser / the kernel.
        source: std::io::Error,
    },
    /// The HTTP address (`--http-listen`) could not be served.
    #[error("{0}")]
    Http(std::io::Error),
}

/// The errno a FUSE reply carries for a failed filesystem operation; noted on the request
/// being served, for `dfs_fuse_errors_total` (see [`crate::metrics`]).
pub fn errno(err: &FsError) -> fuser::Errno {
    let errno = err.errno();
    crate::metrics::note_error(errno);
    fuser::Errno::from_i32(errno)
}

/// Result of a mount operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_comes_from_the_shared_vocabulary() {
        assert_eq!(errno(&FsError::NotFound), fuser::Errno::ENOENT);
        assert_eq!(errno(&FsError::NameTooLong), fuser::Errno::ENAMETOOLONG);
        assert_eq!(
            errno(&FsError::Unavailable("down".into())),
            fuser::Errno::EIO
        );
    }
}
