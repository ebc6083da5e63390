//! The crate's one error type.
//!
//! Filesystem operations fail with [`FsError`] (what the master or a chunkserver said, or what
//! the client decided, e.g. a name that is too long), which carries its errno; connecting can
//! also fail for reasons that are not POSIX errors (bad configuration, master down).

use dfs_proto::FsError;

/// Everything that can go wrong in a client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A POSIX-level failure of a filesystem operation.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// The configuration cannot work (e.g. an unparsable master address).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The TLS certificates given cannot be used.
    #[error(transparent)]
    Tls(#[from] dfs_proto::tls::TlsError),
    /// No master answered when connecting; a client that cannot reach them would only
    /// produce EIO later, so it refuses to start.
    #[error("master {addr} unreachable: {source}")]
    MasterUnreachable {
        /// The configured master addresses.
        addr: String,
        /// The last error of the connection attempts.
        source: FsError,
    },
}

impl Error {
    /// The errno of this error: a POSIX error's own, EIO for the others (which never reach an
    /// application in practice).
    pub fn errno(&self) -> i32 {
        match self {
            Error::Fs(err) => err.errno(),
            Error::Config(_) | Error::Tls(_) | Error::MasterUnreachable { .. } => libc::EIO,
        }
    }
}

/// Result of a client operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_comes_from_the_shared_vocabulary() {
        assert_eq!(Error::from(FsError::NotFound).errno(), libc::ENOENT);
        assert_eq!(
            Error::from(FsError::NameTooLong).errno(),
            libc::ENAMETOOLONG
        );
        assert_eq!(
            Error::from(FsError::Unavailable("down".into())).errno(),
            libc::EIO
        );
        assert_eq!(Error::Config("x".into()).errno(), libc::EIO);
    }
}
