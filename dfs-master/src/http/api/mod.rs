//! The master's JSON API under `/api/v1`: the cluster (`cluster`), files (`files`) and
//! directories (`dirs`) of the filesystem, its OpenAPI document (`openapi`), the JSON shapes
//! (`model`), download ranges (`range`) and the one error type (`errors`).
//!
//! A filesystem path follows the route's prefix, percent-encoded: `/api/v1/files/dir/a.txt`
//! names `/dir/a.txt`. Handlers only unpack the request, call the client library (as root:
//! the API has no authentication yet, so it belongs on a trusted network only), and pack the
//! answer; every failure is an [`ApiError`], which becomes a status and a JSON body.

use axum::Router;
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use axum::http::{Method, Uri};
use axum::routing::{get, post, put};

use super::HttpState;

pub mod cluster;
pub mod dirs;
pub mod errors;
pub mod files;
pub mod model;
pub mod openapi;
pub mod range;

pub use self::errors::{ApiError, ApiResult};

/// The routes of the API, relative to `/api/v1`, with JSON answers for unknown routes and
/// wrong methods.
pub fn router() -> Router<HttpState> {
    Router::new()
        .route("/health", get(cluster::health))
        .route("/status", get(cluster::status))
        .route("/servers", get(cluster::servers))
        .route(
            "/servers/{address}/decommission",
            post(cluster::decommission),
        )
        .route("/masters", get(cluster::masters))
        .route("/fsck", get(cluster::fsck))
        .route("/list", get(dirs::list))
        .route("/list/", get(dirs::list))
        .route("/list/{*path}", get(dirs::list))
        .route("/stat", get(files::stat))
        .route("/stat/", get(files::stat))
        .route("/stat/{*path}", get(files::stat))
        .route("/chunks/{*path}", get(files::chunks))
        .route(
            "/files/{*path}",
            get(files::download)
                .head(files::head)
                .put(files::upload)
                .delete(files::delete),
        )
        .route("/dirs/{*path}", put(dirs::mkdir).delete(dirs::rmdir))
        .route("/rename", post(dirs::rename))
        .route("/openapi.json", get(openapi::document))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NoRoute(format!("{method} {}", uri.path()))
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method.to_string())
}

/// The filesystem path a request names after its route's prefix: absolute, normalised
/// (`/a/b`, the root is `/`), or a 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for FsPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<FsPath, ApiError> {
        let raw = match RawPathParams::from_request_parts(parts, state).await {
            Ok(params) => params
                .iter()
                .find(|(key, _)| *key == "path")
                .map(|(_, value)| value.to_string())
                .unwrap_or_default(),
            // A route without a path parameter names the root.
            Err(RawPathParamsRejection::MissingPathParams(_)) => String::new(),
            Err(other) => return Err(ApiError::BadRequest(other.body_text())),
        };
        normalise(&raw).map(FsPath)
    }
}

/// `raw` (a route's path parameter, decoded) as an absolute path without empty components.
/// `.` and `..` are refused rather than resolved: a caller that sends them has built a path
/// wrongly, and resolving `..` would let `/a/../b` silently name `/b`.
pub fn normalise(raw: &str) -> ApiResult<String> {
    if raw.contains('\0') {
        return Err(ApiError::BadRequest("a path cannot hold a NUL byte".into()));
    }
    let mut path = String::with_capacity(raw.len() + 1);
    for component in raw.split('/').filter(|c| !c.is_empty()) {
        if component == "." || component == ".." {
            return Err(ApiError::BadRequest(format!(
                "{raw:?}: a path cannot hold . or .. components"
            )));
        }
        path.push('/');
        path.push_str(component);
    }
    if path.is_empty() {
        path.push('/');
    }
    Ok(path)
}

/// `path`, given in a body or query, if it is absolute: normalised, or a 400.
pub fn absolute(path: &str) -> ApiResult<String> {
    if !path.starts_with('/') {
        return Err(ApiError::BadRequest(format!(
            "{path:?}: paths must be absolute (start with /)"
        )));
    }
    normalise(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised_and_dots_refused() {
        assert_eq!(normalise("").unwrap(), "/");
        assert_eq!(normalise("dir/a.txt").unwrap(), "/dir/a.txt");
        assert_eq!(normalise("/dir//a/").unwrap(), "/dir/a");
        assert!(normalise("a/../b").is_err());
        assert!(normalise("./a").is_err());
        assert!(normalise("a\0b").is_err());
        assert_eq!(absolute("/x").unwrap(), "/x");
        assert!(absolute("x").is_err());
    }
}
