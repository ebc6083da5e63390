//! The crate's one error type, and the one place where an error becomes an errno.
//!
//! Filesystem operations fail with [`FsError`] (what the master or a chunkserver said, or what
//! the client decided, e.g. a name that is too long); starting a mount can also fail for
//! reasons that never reach the kernel (bad configuration, mount(2) refused, master down).

use dfs_proto::FsError;

/// Everything that can go wrong in the FUSE daemon.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A POSIX-level failure of a filesystem operation.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// The configuration cannot work (e.g. an unparsable master address).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The master did not answer at mount time; mounting a filesystem that cannot serve
    /// anything would only produce EIO later, so the daemon refuses to start.
    #[error("master {addr} unreachable: {source}")]
    MasterUnreachable {
        /// The configured master address.
        addr: String,
        /// The last error of the connection attempts.
        source: FsError,
    },
    /// Mounting or serving the FUSE session failed.
    #[error("FUSE session on {mountpoint}: {source}")]
    Mount {
        /// Where the filesystem was (to be) mounted.
        mountpoint: String,
        /// The underlying error from fuser / the kernel.
        source: std::io::Error,
    },
}

impl Error {
    /// The errno a FUSE reply carries for this error. Errors that are not POSIX errors never
    /// reach the kernel in practice, and are EIO if they do.
    pub fn errno(&self) -> fuser::Errno {
        match self {
            Error::Fs(err) => fuser::Errno::from_i32(err.errno()),
            Error::Config(_) | Error::MasterUnreachable { .. } | Error::Mount { .. } => {
                fuser::Errno::EIO
            }
        }
    }
}

/// Result of a filesystem operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_comes_from_the_shared_vocabulary() {
        assert_eq!(Error::from(FsError::NotFound).errno(), fuser::Errno::ENOENT);
        assert_eq!(
            Error::from(FsError::NameTooLong).errno(),
            fuser::Errno::ENAMETOOLONG
        );
        assert_eq!(
            Error::from(FsError::Unavailable("down".into())).errno(),
            fuser::Errno::EIO
        );
        assert_eq!(Error::Config("x".into()).errno(), fuser::Errno::EIO);
    }
}
