//! [`ApiError`]: everything an API request can fail with, and its one mapping to the outside,
//! an HTTP status with a JSON body:
//!
//! ```json
//! {"error": {"status": 404, "code": "ENOENT", "message": "no such file or directory"}}
//! ```
//!
//! Filesystem errors keep their errno's name as `code`, so a program that knows POSIX knows
//! them; errors of the HTTP request itself (no such route, wrong method, an unsatisfiable
//! range) have codes of their own.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use dfs_proto::FsError;
use serde::Serialize;
use utoipa::ToSchema;

/// A failed API request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The filesystem refused or failed the operation.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// The request cannot be understood: a bad path, query or JSON body.
    #[error("{0}")]
    BadRequest(String),
    /// No route has this path.
    #[error("no route {0}")]
    NoRoute(String),
    /// The route exists but not with this method.
    #[error("method {0} not allowed here")]
    MethodNotAllowed(String),
    /// The `Range` of a download is malformed or lies past the end of the file of `size`
    /// bytes.
    #[error("range not satisfiable for {size} bytes")]
    RangeNotSatisfiable {
        /// Size of the file.
        size: u64,
    },
    /// The cluster cannot be reached (no master answered).
    #[error("cluster unavailable: {0}")]
    Unavailable(String),
}

/// The JSON body of every error reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The fields of [`ErrorBody`].
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// The HTTP status, repeated for clients that only keep the body.
    pub status: u16,
    /// The errno name of a filesystem error (`ENOENT`, `EEXIST`, `ENOTEMPTY`, …), or
    /// `NO_ROUTE`, `METHOD_NOT_ALLOWED`, `RANGE_NOT_SATISFIABLE`, `EUNAVAIL`.
    pub code: String,
    /// A human-readable explanation.
    pub message: String,
}

impl ApiError {
    /// The HTTP status and the `code` of this error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Fs(err) => fs_status_and_code(err),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "EINVAL"),
            ApiError::NoRoute(_) => (StatusCode::NOT_FOUND, "NO_ROUTE"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED"),
            ApiError::RangeNotSatisfiable { .. } => {
                (StatusCode::RANGE_NOT_SATISFIABLE, "RANGE_NOT_SATISFIABLE")
            }
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "EUNAVAIL"),
        }
    }
}

/// The status and errno name of a filesystem error. Conflicts with the state of the tree
/// (exists, not empty, wrong kind of node, busy) are 409; faults of the cluster are 503, as
/// a retry may succeed.
fn fs_status_and_code(err: &FsError) -> (StatusCode, &'static str) {
    match err {
        FsError::NotFound => (StatusCode::NOT_FOUND, "ENOENT"),
        FsError::NoData => (StatusCode::NOT_FOUND, "ENODATA"),
        FsError::Exists => (StatusCode::CONFLICT, "EEXIST"),
        FsError::NotEmpty => (StatusCode::CONFLICT, "ENOTEMPTY"),
        FsError::NotDir => (StatusCode::CONFLICT, "ENOTDIR"),
        FsError::IsDir => (StatusCode::CONFLICT, "EISDIR"),
        FsError::Busy => (StatusCode::CONFLICT, "EBUSY"),
        FsError::CrossDevice => (StatusCode::CONFLICT, "EXDEV"),
        FsError::TooManyLinks => (StatusCode::CONFLICT, "EMLINK"),
        FsError::NameTooLong => (StatusCode::BAD_REQUEST, "ENAMETOOLONG"),
        FsError::Invalid(_) => (StatusCode::BAD_REQUEST, "EINVAL"),
        FsError::NotPermitted => (StatusCode::FORBIDDEN, "EPERM"),
        FsError::AccessDenied => (StatusCode::FORBIDDEN, "EACCES"),
        FsError::ReadOnly => (StatusCode::FORBIDDEN, "EROFS"),
        FsError::NoSpace => (StatusCode::INSUFFICIENT_STORAGE, "ENOSPC"),
        FsError::NotSupported => (StatusCode::NOT_IMPLEMENTED, "EOPNOTSUPP"),
        FsError::WouldBlock => (StatusCode::SERVICE_UNAVAILABLE, "EAGAIN"),
        FsError::Interrupted => (StatusCode::SERVICE_UNAVAILABLE, "EINTR"),
        FsError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "EUNAVAIL"),
        // The API's own chunk token was refused and could not be renewed: retry.
        FsError::TokenRefused(_) => (StatusCode::SERVICE_UNAVAILABLE, "ETOKEN"),
        FsError::Stale(_) | FsError::Corrupt(_) | FsError::Io(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, "EIO")
        }
    }
}

impl From<dfs_client::Error> for ApiError {
    fn from(err: dfs_client::Error) -> ApiError {
        match err {
            dfs_client::Error::Fs(err) => ApiError::Fs(err),
            other => ApiError::Unavailable(other.to_string()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> ApiError {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let body = ErrorBody {
            error: ErrorDetail {
                status: status.as_u16(),
                code: code.to_string(),
                message: self.to_string(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let ApiError::RangeNotSatisfiable { size } = self {
            let value = format!("bytes */{size}");
            if let Ok(value) = value.parse() {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
        }
        response
    }
}

/// The result of an API handler.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filesystem_errors_map_to_their_status_and_errno() {
        let cases = [
            (FsError::NotFound, 404, "ENOENT"),
            (FsError::Exists, 409, "EEXIST"),
            (FsError::NotEmpty, 409, "ENOTEMPTY"),
            (FsError::IsDir, 409, "EISDIR"),
            (FsError::NotDir, 409, "ENOTDIR"),
            (FsError::AccessDenied, 403, "EACCES"),
            (FsError::NotPermitted, 403, "EPERM"),
            (FsError::NoSpace, 507, "ENOSPC"),
            (FsError::NameTooLong, 400, "ENAMETOOLONG"),
            (FsError::Invalid("x".into()), 400, "EINVAL"),
            (FsError::Io("x".into()), 503, "EIO"),
            (FsError::Unavailable("x".into()), 503, "EUNAVAIL"),
        ];
        for (err, status, code) in cases {
            let (got_status, got_code) = ApiError::from(err.clone()).status_and_code();
            assert_eq!((got_status.as_u16(), got_code), (status, code), "{err:?}");
        }
    }

    #[test]
    fn an_unsatisfiable_range_names_the_size() {
        let response = ApiError::RangeNotSatisfiable { size: 10 }.into_response();
        assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(response.headers()[header::CONTENT_RANGE], "bytes */10");
    }
}
