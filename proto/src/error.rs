//! The error vocabulary shared by master, chunkservers and clients.
//!
//! Every failure a user can see is one [`FsError`], which names the errno it becomes. On the
//! wire an `FsError` is a `tonic::Status` whose code is the closest gRPC code and whose
//! `dfs-errno` metadata carries the exact error, so the FUSE daemon recovers the same variant
//! the server produced ([`FsError::from_status`]). A status without that metadata (a transport
//! failure, a timeout, a server that is down) becomes [`FsError::Unavailable`] or
//! [`FsError::Io`].

use tonic::{Code, Status};

/// Metadata key carrying the errno name of an [`FsError`] inside a `tonic::Status`.
const ERRNO_KEY: &str = "dfs-errno";

/// A filesystem error, named after the POSIX errno it maps to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FsError {
    #[error("no such file or directory")]
    NotFound,
    #[error("file exists")]
    Exists,
    #[error("directory not empty")]
    NotEmpty,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("file name too long")]
    NameTooLong,
    #[error("no space left on the cluster")]
    NoSpace,
    #[error("invalid argument: {0}")]
    Invalid(String),
    #[error("operation not permitted")]
    NotPermitted,
    #[error("permission denied")]
    AccessDenied,
    #[error("resource busy")]
    Busy,
    #[error("cross-device link")]
    CrossDevice,
    #[error("too many links")]
    TooManyLinks,
    #[error("stale chunk replica: {0}")]
    Stale(String),
    #[error("checksum mismatch: {0}")]
    Corrupt(String),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("I/O error: {0}")]
    Io(String),
    /// A missing extended attribute.
    #[error("no such attribute")]
    NoData,
    // Advisory locks and fallocate (posix).
    /// A lock another owner holds is in the way (`F_SETLK`, `LOCK_NB`).
    #[error("resource temporarily unavailable")]
    WouldBlock,
    /// A blocking call was interrupted by a signal to its caller.
    #[error("interrupted")]
    Interrupted,
    /// An operation mode dfs does not implement (e.g. punching holes).
    #[error("operation not supported")]
    NotSupported,
    /// A change asked by a client that may only read (a read-only export).
    #[error("read-only file system")]
    ReadOnly,
    /// A chunkserver refused the request's chunk token (missing, expired, forged, or for
    /// another chunk, see [`crate::token`]): the client asks the master for a fresh one.
    #[error("{0}")]
    TokenRefused(String),
}

impl FsError {
    /// The errno a FUSE reply carries for this error.
    pub fn errno(&self) -> i32 {
        match self {
            FsError::NotFound => libc::ENOENT,
            FsError::Exists => libc::EEXIST,
            FsError::NotEmpty => libc::ENOTEMPTY,
            FsError::NotDir => libc::ENOTDIR,
            FsError::IsDir => libc::EISDIR,
            FsError::NameTooLong => libc::ENAMETOOLONG,
            FsError::NoSpace => libc::ENOSPC,
            FsError::Invalid(_) => libc::EINVAL,
            FsError::NotPermitted => libc::EPERM,
            FsError::AccessDenied | FsError::TokenRefused(_) => libc::EACCES,
            FsError::ReadOnly => libc::EROFS,
            FsError::Busy => libc::EBUSY,
            FsError::CrossDevice => libc::EXDEV,
            FsError::TooManyLinks => libc::EMLINK,
            FsError::Stale(_) | FsError::Corrupt(_) | FsError::Io(_) => libc::EIO,
            // A server that cannot be reached within the configured timeout: the call fails
            // rather than hangs, and the next call tries again.
            FsError::Unavailable(_) => libc::EIO,
            FsError::NoData => libc::ENODATA,
            FsError::WouldBlock => libc::EAGAIN,
            FsError::Interrupted => libc::EINTR,
            FsError::NotSupported => libc::EOPNOTSUPP,
        }
    }

    /// Whether a chunkserver refused the chunk token: a fresh chunk map from the master
    /// brings a fresh token; another replica would refuse it alike.
    pub fn is_token_refusal(&self) -> bool {
        matches!(self, FsError::TokenRefused(_))
    }

    /// Whether another replica (or a retry) might succeed where this attempt failed.
    pub fn is_replica_fault(&self) -> bool {
        matches!(
            self,
            FsError::Stale(_) | FsError::Corrupt(_) | FsError::Unavailable(_) | FsError::Io(_)
        )
    }

    /// Stable name used on the wire.
    fn wire_name(&self) -> &'static str {
        match self {
            FsError::NotFound => "ENOENT",
            FsError::Exists => "EEXIST",
            FsError::NotEmpty => "ENOTEMPTY",
            FsError::NotDir => "ENOTDIR",
            FsError::IsDir => "EISDIR",
            FsError::NameTooLong => "ENAMETOOLONG",
            FsError::NoSpace => "ENOSPC",
            FsError::Invalid(_) => "EINVAL",
            FsError::NotPermitted => "EPERM",
            FsError::AccessDenied => "EACCES",
            FsError::Busy => "EBUSY",
            FsError::CrossDevice => "EXDEV",
            FsError::TooManyLinks => "EMLINK",
            FsError::Stale(_) => "ESTALE",
            FsError::Corrupt(_) => "EBADMSG",
            FsError::Unavailable(_) => "EUNAVAIL",
            FsError::Io(_) => "EIO",
            FsError::NoData => "ENODATA",
            FsError::WouldBlock => "EAGAIN",
            FsError::Interrupted => "EINTR",
            FsError::NotSupported => "EOPNOTSUPP",
            FsError::TokenRefused(_) => "ETOKEN",
            FsError::ReadOnly => "EROFS",
        }
    }

    fn code(&self) -> Code {
        match self {
            FsError::NotFound | FsError::NoData => Code::NotFound,
            FsError::Exists => Code::AlreadyExists,
            FsError::NoSpace => Code::ResourceExhausted,
            FsError::Invalid(_) | FsError::NameTooLong => Code::InvalidArgument,
            FsError::NotPermitted
            | FsError::AccessDenied
            | FsError::TokenRefused(_)
            | FsError::ReadOnly => Code::PermissionDenied,
            FsError::Busy => Code::Aborted,
            FsError::Stale(_) => Code::FailedPrecondition,
            FsError::Corrupt(_) => Code::DataLoss,
            FsError::Unavailable(_) => Code::Unavailable,
            FsError::Io(_) => Code::Internal,
            FsError::WouldBlock => Code::Unavailable,
            FsError::Interrupted => Code::Cancelled,
            FsError::NotSupported => Code::Unimplemented,
            FsError::NotEmpty
            | FsError::NotDir
            | FsError::IsDir
            | FsError::CrossDevice
            | FsError::TooManyLinks => Code::FailedPrecondition,
        }
    }

    /// Whether `status` is an answer of a dfs server (it names its errno), as opposed to a
    /// status the transport made up on the caller's side.
    pub fn carries_errno(status: &Status) -> bool {
        status.metadata().contains_key(ERRNO_KEY)
    }

    /// Recovers the error a server sent. Statuses that carry no `dfs-errno` come from the
    /// transport (connection refused, deadline exceeded) and mean the peer is unavailable.
    pub fn from_status(status: &Status) -> FsError {
        let detail = status.message().to_string();
        let name = status
            .metadata()
            .get(ERRNO_KEY)
            .and_then(|v| v.to_str().ok());
        match name {
            Some("ENOENT") => FsError::NotFound,
            Some("EEXIST") => FsError::Exists,
            Some("ENOTEMPTY") => FsError::NotEmpty,
            Some("ENOTDIR") => FsError::NotDir,
            Some("EISDIR") => FsError::IsDir,
            Some("ENAMETOOLONG") => FsError::NameTooLong,
            Some("ENOSPC") => FsError::NoSpace,
            Some("EINVAL") => FsError::Invalid(detail),
            Some("EPERM") => FsError::NotPermitted,
            Some("EACCES") => FsError::AccessDenied,
            Some("ETOKEN") => FsError::TokenRefused(detail),
            Some("EROFS") => FsError::ReadOnly,
            Some("EBUSY") => FsError::Busy,
            Some("EXDEV") => FsError::CrossDevice,
            Some("EMLINK") => FsError::TooManyLinks,
            Some("ESTALE") => FsError::Stale(detail),
            Some("EBADMSG") => FsError::Corrupt(detail),
            Some("EUNAVAIL") => FsError::Unavailable(detail),
            Some("ENODATA") => FsError::NoData,
            Some("EAGAIN") => FsError::WouldBlock,
            Some("EINTR") => FsError::Interrupted,
            Some("EOPNOTSUPP") => FsError::NotSupported,
            Some(_) => FsError::Io(detail),
            None => match status.code() {
                Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
                    FsError::Unavailable(detail)
                }
                _ => FsError::Io(format!("{:?}: {detail}", status.code())),
            },
        }
    }
}

impl From<FsError> for Status {
    fn from(err: FsError) -> Status {
        let mut status = Status::new(err.code(), err.to_string());
        status.metadata_mut().insert(
            ERRNO_KEY,
            tonic::metadata::MetadataValue::from_static(err.wire_name()),
        );
        status
    }
}

impl From<Status> for FsError {
    fn from(status: Status) -> FsError {
        FsError::from_status(&status)
    }
}

// --- Replicated data path: which replica broke a chain write ---

/// Metadata key naming (as `host:port`) the chunkserver at which a chain write failed, so the
/// writer can ask the master for a chain without it.
const FAILED_REPLICA_KEY: &str = "dfs-failed-replica";

/// Marks `status` as the failure of the replica at `addr` (a no-op for an address that is not
/// valid metadata).
pub fn mark_failed_replica(status: &mut Status, addr: &str) {
    if let Ok(value) = addr.parse() {
        status.metadata_mut().insert(FAILED_REPLICA_KEY, value);
    }
}

/// The replica a failed chain write named as the one that broke, if any.
pub fn failed_replica(status: &Status) -> Option<String> {
    let value = status.metadata().get(FAILED_REPLICA_KEY)?;
    value.to_str().ok().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_survives_the_wire() {
        let all = [
            FsError::NotFound,
            FsError::Exists,
            FsError::NotEmpty,
            FsError::NotDir,
            FsError::IsDir,
            FsError::NameTooLong,
            FsError::NoSpace,
            FsError::Invalid("bad".into()),
            FsError::NotPermitted,
            FsError::AccessDenied,
            FsError::Busy,
            FsError::CrossDevice,
            FsError::TooManyLinks,
            FsError::Stale("old".into()),
            FsError::Corrupt("flip".into()),
            FsError::Unavailable("down".into()),
            FsError::NoData,
            FsError::WouldBlock,
            FsError::Interrupted,
            FsError::NotSupported,
        ];
        for err in all {
            let back = FsError::from_status(&Status::from(err.clone()));
            assert_eq!(back.errno(), err.errno(), "{err:?} became {back:?}");
            assert_eq!(back.wire_name(), err.wire_name());
        }
    }

    #[test]
    fn transport_failures_are_unavailable() {
        let err = FsError::from_status(&Status::unavailable("connection refused"));
        assert!(matches!(err, FsError::Unavailable(_)));
        assert_eq!(err.errno(), libc::EIO);
        let err = FsError::from_status(&Status::deadline_exceeded("timeout"));
        assert!(err.is_replica_fault());
    }
}
