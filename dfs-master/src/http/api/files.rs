//! Files: their attributes (`GET /stat/…`), their chunks and replicas (`GET /chunks/…`),
//! download with byte ranges (`GET`/`HEAD /files/…`), streaming upload (`PUT /files/…`) and
//! removal (`DELETE /files/…`).
//!
//! Content streams through in pieces of [`PIECE`] bytes in both directions, so a file of any
//! size passes through the master with a few pieces in memory, never the whole file.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dfs_client::{Client, File, OpenFlags};
use dfs_proto::FsError;
use futures::StreamExt;

use super::errors::{ApiResult, ErrorBody};
use super::model::{Chunks, Stat, UploadQuery};
use super::range::Requested;
use super::{ApiError, FsPath};
use crate::http::HttpState;

/// Bytes read from or written to the cluster per call: large enough that a stream runs at
/// the client's speed, small enough that many transfers fit in memory.
pub const PIECE: usize = 4 << 20;

/// Permission bits of a file an upload creates.
const NEW_FILE_MODE: u32 = 0o644;

/// The attributes of what `path` names (a symlink itself, not its target).
#[utoipa::path(get, path = "/api/v1/stat/{path}", tag = "files",
    params(("path" = String, Path, description = "absolute path, percent-encoded")),
    responses((status = 200, body = Stat), (status = 404, body = ErrorBody)))]
pub async fn stat(State(state): State<HttpState>, FsPath(path): FsPath) -> ApiResult<Json<Stat>> {
    let attr = state.client().await?.stat_path(&path).await?;
    Ok(Json(Stat::new(&path, &attr)))
}

/// A file's chunks, their versions and where their replicas are.
#[utoipa::path(get, path = "/api/v1/chunks/{path}", tag = "files",
    params(("path" = String, Path, description = "absolute path, percent-encoded")),
    responses((status = 200, body = Chunks), (status = 404, body = ErrorBody)))]
pub async fn chunks(
    State(state): State<HttpState>,
    FsPath(path): FsPath,
) -> ApiResult<Json<Chunks>> {
    let info = state.client().await?.master().file_info(&path).await?;
    Ok(Json(Chunks::new(&path, info)))
}

/// A file's content, whole or one byte range (`Range: bytes=a-b`, `a-`, `-n`), streamed.
#[utoipa::path(get, path = "/api/v1/files/{path}", tag = "files",
    params(("path" = String, Path, description = "absolute path, percent-encoded"),
        ("Range" = Option<String>, Header, description = "one byte range")),
    responses((status = 200, description = "the whole file", content_type = "application/octet-stream"),
        (status = 206, description = "the range asked for", content_type = "application/octet-stream"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "a directory"),
        (status = 416, body = ErrorBody)))]
pub async fn download(
    State(state): State<HttpState>,
    FsPath(path): FsPath,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let client = state.client().await?;
    let (file, size, requested) = open_for_download(client, &path, &headers).await?;
    let (start, end) = match requested {
        Requested::Part { start, end } => (start, end + 1),
        // An unsatisfiable range was refused by `open_for_download`.
        Requested::Whole | Requested::Unsatisfiable => (0, size),
    };
    let body = Body::from_stream(read_stream(file, start, end));
    Ok(content_response(requested, size, body))
}

/// The headers of a download, without its content.
#[utoipa::path(head, path = "/api/v1/files/{path}", tag = "files",
    params(("path" = String, Path, description = "absolute path, percent-encoded")),
    responses((status = 200, description = "the file's size and ranges"), (status = 404)))]
pub async fn head(
    State(state): State<HttpState>,
    FsPath(path): FsPath,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let client = state.client().await?;
    let (file, size, requested) = open_for_download(client, &path, &headers).await?;
    file.close().await?;
    Ok(content_response(requested, size, Body::empty()))
}

/// Opens `path` for reading: the file, its size and the part `headers` ask for (a 416 for
/// an unsatisfiable range, after closing the file).
async fn open_for_download(
    client: &Client,
    path: &str,
    headers: &HeaderMap,
) -> ApiResult<(File, u64, Requested)> {
    let file = client.open_path(path, OpenFlags::READ).await?;
    let size = match file.attr().await {
        Ok(attr) => attr.size,
        Err(err) => {
            let _ = file.close().await;
            return Err(err.into());
        }
    };
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let requested = Requested::parse(range, size);
    if requested == Requested::Unsatisfiable {
        file.close().await?;
        return Err(ApiError::RangeNotSatisfiable { size });
    }
    Ok((file, size, requested))
}

/// The status and headers of a download of `requested` of a file of `size` bytes.
fn content_response(requested: Requested, size: u64, body: Body) -> Response {
    let (status, length, content_range) = match requested {
        Requested::Part { start, end } => (
            StatusCode::PARTIAL_CONTENT,
            end - start + 1,
            Some(format!("bytes {start}-{end}/{size}")),
        ),
        _ => (StatusCode::OK, size, None),
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if let Some(value) = content_range.and_then(|v| HeaderValue::from_str(&v).ok()) {
        headers.insert(header::CONTENT_RANGE, value);
    }
    response
}

/// Bytes `start..end` of `file` in pieces, closing the file after the last one. A reader
/// that goes away drops the stream, and with it the file, which releases itself.
fn read_stream(
    file: File,
    start: u64,
    end: u64,
) -> impl futures::Stream<Item = Result<bytes::Bytes, FsError>> + Send {
    futures::stream::try_unfold(Some((file, start)), move |state| async move {
        let Some((file, offset)) = state else {
            return Ok(None);
        };
        if offset >= end {
            file.close().await?;
            return Ok(None);
        }
        let want = u32::try_from((end - offset).min(PIECE as u64)).unwrap_or(u32::MAX);
        let piece = file.read(offset, want).await?;
        if piece.is_empty() {
            // The file shrank under the download: end it short, as the length said more.
            file.close().await?;
            return Err(FsError::Io(format!("file ended at {offset} of {end}")));
        }
        let next = offset + piece.len() as u64;
        Ok(Some((piece, Some((file, next)))))
    })
}

/// Writes the request body to `path`, creating the file or replacing its content:
/// 201 with its attributes if it is new, 200 if it replaced one (`?exclusive=true`: 409).
#[utoipa::path(put, path = "/api/v1/files/{path}", tag = "files",
    params(("path" = String, Path, description = "absolute path, percent-encoded"), UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = Stat, description = "created"),
        (status = 200, body = Stat, description = "replaced"),
        (status = 409, body = ErrorBody, description = "exists (exclusive) or a directory"),
        (status = 507, body = ErrorBody, description = "no space left")))]
pub async fn upload(
    State(state): State<HttpState>,
    FsPath(path): FsPath,
    query: Result<Query<UploadQuery>, QueryRejection>,
    body: Body,
) -> ApiResult<(StatusCode, Json<Stat>)> {
    let Query(query) = query?;
    let client = state.client().await?;
    let (file, status) = match client.create_new_path(&path, NEW_FILE_MODE).await {
        Ok(file) => (file, StatusCode::CREATED),
        Err(FsError::Exists) if !query.exclusive => (
            client.create_path(&path, NEW_FILE_MODE).await?,
            StatusCode::OK,
        ),
        Err(err) => return Err(err.into()),
    };
    // If the client goes away mid-upload, either the body ends in an error here and the file
    // is closed below, or the server drops this future and with it `file`, whose drop
    // releases it in the background: the writer lease is never held past the upload. What
    // remains is the file as far as it was received (it was truncated at the start).
    let written = write_body(&file, body).await;
    let closed = file.close().await;
    written?;
    closed?;
    let attr = client.stat_path(&path).await?;
    Ok((status, Json(Stat::new(&path, &attr))))
}

/// Writes `body` to `file` from offset 0 in pieces of about [`PIECE`] bytes as they arrive.
async fn write_body(file: &File, body: Body) -> ApiResult<()> {
    let mut stream = body.into_data_stream();
    let mut piece: Vec<u8> = Vec::with_capacity(PIECE);
    let mut offset = 0u64;
    while let Some(data) = stream.next().await {
        let data = data.map_err(|err| ApiError::BadRequest(format!("reading the body: {err}")))?;
        piece.extend_from_slice(&data);
        if piece.len() >= PIECE {
            file.write(offset, &piece).await?;
            offset += piece.len() as u64;
            piece.clear();
        }
    }
    if !piece.is_empty() {
        file.write(offset, &piece).await?;
    }
    Ok(())
}

/// Removes a file, symlink or other non-directory (a directory: 409 `EISDIR`).
#[utoipa::path(delete, path = "/api/v1/files/{path}", tag = "files",
    params(("path" = String, Path, description = "absolute path, percent-encoded")),
    responses((status = 204, description = "removed"), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "a directory")))]
pub async fn delete(State(state): State<HttpState>, FsPath(path): FsPath) -> ApiResult<StatusCode> {
    let client = state.client().await?;
    let attr = client.stat_path(&path).await?;
    if attr.kind == dfs_client::FileKind::Directory {
        return Err(FsError::IsDir.into());
    }
    client.unlink_path(&path).await?;
    Ok(StatusCode::NO_CONTENT)
}
