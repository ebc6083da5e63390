//! Directories: paged listings with a name filter (`GET /list/…`), creation and removal
//! (`PUT`/`DELETE /dirs/…`), and renaming anything (`POST /rename`).

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use dfs_client::Client;

use super::errors::{ApiResult, ErrorBody};
use super::model::{Entry, ListQuery, Listing, RenameRequest, Stat};
use super::{ApiError, FsPath, absolute};
use crate::http::HttpState;

/// Entries of a page when the query names no limit.
pub const DEFAULT_LIMIT: u32 = 1000;

/// Most entries of one page: a page is built in memory.
pub const MAX_LIMIT: u32 = 10_000;

/// Permission bits of a directory `PUT /dirs/…` creates.
const NEW_DIR_MODE: u32 = 0o755;

/// One page of a directory's entries in name order, optionally only those whose name
/// contains `name`; `next` is the `after` of the following page.
#[utoipa::path(get, path = "/api/v1/list/{path}", tag = "dirs",
    params(("path" = String, Path, description = "absolute path, percent-encoded (empty: the root)"), ListQuery),
    responses((status = 200, body = Listing), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "not a directory")))]
pub async fn list(
    State(state): State<HttpState>,
    FsPath(path): FsPath,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<Listing>> {
    let Query(query) = query?;
    let client = state.client().await?;
    Ok(Json(list_page(client, &path, &query).await?))
}

/// The page of `path` that `query` asks for: master pages are read until `limit` entries
/// match the filter or the directory ends.
pub async fn list_page(client: &Client, path: &str, query: &ListQuery) -> ApiResult<Listing> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let filter = query.name.as_deref().filter(|n| !n.is_empty());
    let mut cursor: Vec<u8> = query.after.clone().unwrap_or_default().into_bytes();
    let mut entries = Vec::new();
    loop {
        let page = client.list_page_path(path, &cursor, limit).await?;
        let mut rest = page.entries.iter();
        for entry in rest.by_ref() {
            cursor.clone_from(&entry.name);
            let name = String::from_utf8_lossy(&entry.name);
            if filter.is_none_or(|f| name.contains(f)) {
                entries.push(Entry::from(entry));
                if entries.len() == limit as usize {
                    break;
                }
            }
        }
        let more = page.more || rest.next().is_some();
        // A page that adds nothing while claiming more would loop forever.
        if entries.len() == limit as usize || !more || page.entries.is_empty() {
            let next = more.then(|| String::from_utf8_lossy(&cursor).into_owned());
            return Ok(Listing {
                path: path.to_string(),
                entries,
                next,
            });
        }
    }
}

/// Creates a directory (its parent must exist): 201 with its attributes, 409 if the name
/// exists.
#[utoipa::path(put, path = "/api/v1/dirs/{path}", tag = "dirs",
    params(("path" = String, Path, description = "absolute path, percent-encoded")),
    responses((status = 201, body = Stat), (status = 404, body = ErrorBody, description = "no parent"),
        (status = 409, body = ErrorBody, description = "exists")))]
pub async fn mkdir(
    State(state): State<HttpState>,
    FsPath(path): FsPath,
) -> ApiResult<(StatusCode, Json<Stat>)> {
    let attr = state
        .client()
        .await?
        .mkdir_path(&path, NEW_DIR_MODE)
        .await?;
    Ok((StatusCode::CREATED, Json(Stat::new(&path, &attr))))
}

/// Removes an empty directory (409 `ENOTEMPTY` if it is not).
#[utoipa::path(delete, path = "/api/v1/dirs/{path}", tag = "dirs",
    params(("path" = String, Path, description = "absolute path, percent-encoded")),
    responses((status = 204, description = "removed"), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "not empty, or not a directory")))]
pub async fn rmdir(State(state): State<HttpState>, FsPath(path): FsPath) -> ApiResult<StatusCode> {
    state.client().await?.rmdir_path(&path).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Renames `from` to `to` as `rename(2)` does; answers with the attributes at `to`.
#[utoipa::path(post, path = "/api/v1/rename", tag = "dirs",
    request_body = RenameRequest,
    responses((status = 200, body = Stat), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn rename(
    State(state): State<HttpState>,
    request: Result<Json<RenameRequest>, JsonRejection>,
) -> ApiResult<Json<Stat>> {
    let Json(request) = request?;
    let (from, to) = (absolute(&request.from)?, absolute(&request.to)?);
    let client = state.client().await?;
    client.rename_path(&from, &to).await?;
    let attr = client.stat_path(&to).await?;
    Ok(Json(Stat::new(&to, &attr)))
}
