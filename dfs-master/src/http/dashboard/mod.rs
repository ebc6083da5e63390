//! The web dashboard: server-rendered HTML pages for people, at `/` on every master.
//!
//! * `/` ([`overview`]) — servers by state, capacity, files and chunks, replication health,
//!   the group of masters, and charts of this master's activity drawn from
//!   `/api/v1/history`.
//! * `/servers` ([`servers`]) — every chunkserver, with a decommission button.
//! * `/files?path=` ([`files`]) — a directory: breadcrumbs, a name filter, pages of entries,
//!   upload and delete.
//! * `/files/detail?path=` ([`file_detail`]) — one file: size, times, chunks and replicas.
//!
//! Pages read the cluster through the HTTP service's client, as `dfs status` and `dfs info`
//! do; what they change (upload, delete, decommission) their script asks of the JSON API, so
//! the dashboard holds no write path of its own. The script and style sheet are in this
//! directory ([`assets`]) and compiled into the binary: the pages load nothing from
//! elsewhere. Failures render as a page with the matching HTTP status ([`PageError`]).

pub mod assets;
pub mod file_detail;
pub mod files;
pub mod format;
pub mod layout;
pub mod overview;
pub mod servers;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use dfs_proto::FsError;

use crate::http::HttpState;

/// The dashboard's routes, beside the API.
pub fn router() -> Router<HttpState> {
    Router::new()
        .route("/", get(overview::page))
        .route("/servers", get(servers::page))
        .route("/files", get(files::page))
        .route("/files/detail", get(file_detail::page))
        .route("/static/{name}", get(assets::serve))
}

/// Why a page could not be shown; rendered as a readable page with its HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// The path names nothing (404).
    #[error("{0}: no such file or directory")]
    NotFound(String),
    /// The request makes no sense, e.g. a directory listing of a file (400).
    #[error("{0}")]
    BadRequest(String),
    /// No master leads or none can be reached (503): the page may work in a moment.
    #[error("the cluster cannot be reached: {0}")]
    Unavailable(String),
    /// Anything else the cluster answered with (502).
    #[error("the cluster answered with an error: {0}")]
    Failed(String),
}

impl PageError {
    /// `err`, met while showing `path`, as a page error.
    pub fn at(path: &str, err: FsError) -> PageError {
        match err {
            FsError::NotFound => PageError::NotFound(path.to_owned()),
            FsError::NotDir => PageError::BadRequest(format!("{path} is not a directory")),
            FsError::IsDir => PageError::BadRequest(format!("{path} is a directory")),
            FsError::Invalid(msg) => PageError::BadRequest(format!("{path}: {msg}")),
            FsError::Unavailable(msg) => PageError::Unavailable(msg),
            other => PageError::Failed(other.to_string()),
        }
    }

    /// The HTTP status this error is served with.
    pub fn status(&self) -> StatusCode {
        match self {
            PageError::NotFound(_) => StatusCode::NOT_FOUND,
            PageError::BadRequest(_) => StatusCode::BAD_REQUEST,
            PageError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            PageError::Failed(_) => StatusCode::BAD_GATEWAY,
        }
    }
}

impl From<dfs_client::Error> for PageError {
    fn from(err: dfs_client::Error) -> PageError {
        match err {
            dfs_client::Error::Fs(err) => PageError::at("/", err),
            other => PageError::Unavailable(other.to_string()),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.status();
        let title = status.canonical_reason().unwrap_or("Error");
        let body = layout::error_page(status.as_u16(), title, &self.to_string());
        (status, body).into_response()
    }
}
