//! The chunkserver's one error type and its one mapping to `tonic::Status`.
//!
//! Errors a client acts on (a missing or stale replica, a checksum mismatch, a full disk) are
//! [`FsError`]s and keep their exact meaning across the wire. Disk failures keep their
//! `io::Error` until they leave the process, where ENOSPC becomes [`FsError::NoSpace`] and
//! everything else [`FsError::Io`]. A failed downstream replica keeps the error it reported,
//! with its address in the message, so the client learns which server broke the chain.

use std::io;

use dfs_proto::FsError;
use tonic::Status;

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong inside a chunkserver.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A POSIX-level error the client sees as its errno (NotFound, Stale, Corrupt, ...).
    #[error(transparent)]
    Fs(#[from] FsError),
    /// A local file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the chunkserver was doing, e.g. "write chunk 00000000000000a1".
        context: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// A chunkserver further down a write chain failed or could not be reached in time: the
    /// next one, or the one the next one named as failed.
    #[error("downstream chunkserver {addr}: {cause}")]
    Downstream {
        /// Address of the failed server, as the write header named it.
        addr: String,
        /// What it reported (or `Unavailable` when it could not be reached).
        cause: FsError,
    },
    /// No master could be reached, or the leader refused a request.
    #[error("master {addr}: {cause}")]
    Master {
        /// Addresses of the masters, as configured.
        addr: String,
        /// What went wrong.
        cause: FsError,
    },
    /// The configuration (or the cluster configuration the master sent) is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The gRPC server failed.
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A blocking disk task panicked or was cancelled.
    #[error("disk task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl Error {
    /// A local I/O failure with a description of what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The [`FsError`] this error becomes for a client.
    pub fn to_fs_error(&self) -> FsError {
        match self {
            Error::Fs(fs) => fs.clone(),
            Error::Io { source, .. } if is_out_of_space(source) => FsError::NoSpace,
            Error::Downstream { cause, .. } | Error::Master { cause, .. } => cause.clone(),
            other => FsError::Io(other.to_string()),
        }
    }
}

/// Whether a disk error means the disk (or the quota) is full.
fn is_out_of_space(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

impl From<Error> for Status {
    fn from(err: Error) -> Status {
        let fs = err.to_fs_error();
        match &err {
            Error::Fs(_) => fs.into(),
            Error::Downstream { .. } => {
                // Keep the downstream's errno metadata, but say which server it came from:
                // a bare "no space left" would not tell the client whom to avoid.
                let status = Status::from(fs);
                let mut status = Status::with_metadata(
                    status.code(),
                    err.to_string(),
                    status.metadata().clone(),
                );
                if let Error::Downstream { addr, .. } = &err {
                    dfs_proto::error::mark_failed_replica(&mut status, addr);
                }
                status
            }
            _ => {
                tracing::error!(error = %err, "request failed");
                fs.into()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_disk_becomes_enospc() {
        let err = Error::io("write chunk 1", io::Error::from_raw_os_error(libc::ENOSPC));
        let back = FsError::from_status(&Status::from(err));
        assert_eq!(back, FsError::NoSpace);
        let err = Error::io("write chunk 1", io::Error::from_raw_os_error(libc::EIO));
        assert!(matches!(
            FsError::from_status(&Status::from(err)),
            FsError::Io(_)
        ));
    }

    #[test]
    fn downstream_errors_keep_their_errno_and_name_the_server() {
        let err = Error::Downstream {
            addr: "10.0.0.7:9500".into(),
            cause: FsError::NoSpace,
        };
        let status = Status::from(err);
        assert!(
            status.message().contains("10.0.0.7:9500"),
            "{}",
            status.message()
        );
        assert_eq!(FsError::from_status(&status), FsError::NoSpace);
        assert_eq!(
            dfs_proto::error::failed_replica(&status).as_deref(),
            Some("10.0.0.7:9500")
        );
    }
}
