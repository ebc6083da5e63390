//! `/files/detail?path=`: one regular file as `dfs info` shows it — size, owner, times — and
//! its chunks, each with its version, length and replicas (server address and state), the
//! chunks short of replicas marked. With a download link and a delete button.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use dfs_client::FileKind;
use maud::{Markup, html};
use serde::Deserialize;

use dfs_proto::pb;

use crate::http::HttpState;
use crate::http::dashboard::PageError;
use crate::http::dashboard::format;
use crate::http::dashboard::layout::{self, Origin, Section};

/// The query of `/files/detail`.
#[derive(Debug, Default, Deserialize)]
pub struct DetailQuery {
    /// The file, from the root.
    pub path: Option<String>,
}

/// `GET /files/detail`: the file's page, or a redirect to the listing of a directory.
pub async fn page(
    State(state): State<HttpState>,
    Query(query): Query<DetailQuery>,
) -> Result<Response, PageError> {
    let origin = Origin::of(&state);
    let Some(path) = query.path.as_deref().map(format::clean_path) else {
        return Err(PageError::BadRequest(
            "which file? (?path= is missing)".into(),
        ));
    };
    let client = state.client().await?;
    let attr = client
        .stat_path(&path)
        .await
        .map_err(|e| PageError::at(&path, e))?;
    if attr.kind == FileKind::Directory {
        return Ok(Redirect::to(&format::files_href(&path)).into_response());
    }
    if attr.kind != FileKind::Regular {
        return Err(PageError::BadRequest(format!(
            "{path} is not a regular file"
        )));
    }
    let info = client
        .master()
        .file_info(&path)
        .await
        .map_err(|e| PageError::at(&path, e))?;
    let attr = info.attr.unwrap_or_default();
    let parent = format::parent_path(&path);
    let body = html! {
        nav.breadcrumbs {
            @for (i, (name, href)) in format::breadcrumbs(parent).into_iter().enumerate() {
                @if i > 1 { span.sep { "/" } }
                a href=(format::files_href(&href)) { (name) }
            }
        }
        dl #attributes.attributes {
            dt { "size" } dd #file-size { (attr.size) " bytes (" (format::bytes(attr.size)) ")" }
            dt { "owner" } dd { "uid " (attr.uid) ", gid " (attr.gid) ", mode " (format!("{:04o}", attr.perm)) }
            dt { "modified" } dd { (format::timestamp(attr.mtime.as_ref())) }
            dt { "changed" } dd { (format::timestamp(attr.ctime.as_ref())) }
            dt { "created" } dd { (format::timestamp(attr.crtime.as_ref())) }
            dt { "accessed" } dd { (format::timestamp(attr.atime.as_ref())) }
            dt { "inode" } dd { (attr.ino) }
        }
        p.toolbar {
            a.download.button href=(format::download_href(&path)) download=(format::last_name(&path)) { "Download" }
            " "
            button.delete.danger type="button" data-path=(path) data-kind="file" data-then=(format::files_href(parent)) { "Delete" }
        }
        p #action-status.note role="status" {}
        h2 { (info.chunks.len()) " chunks, replication " (info.replication) }
        (chunks(&info.chunks, info.replication))
    };
    Ok(layout::page(&origin, Section::Files, &path, body).into_response())
}

/// The table of chunks, one row per replica.
fn chunks(chunks: &[pb::ChunkHealth], replication: u32) -> Markup {
    html! {
        table #chunks {
            thead {
                tr { th { "index" } th { "chunk" } th { "version" } th { "length" } th { "healthy" } th { "replicas" } }
            }
            tbody {
                @for chunk in chunks {
                    tr.chunk.short[chunk.healthy < replication] data-index=(chunk.index) {
                        td { (chunk.index) }
                        td { (chunk.chunk_id) }
                        td { (chunk.version) }
                        td { (format::bytes(chunk.length)) }
                        td { (chunk.healthy) " / " (replication) }
                        td {
                            ul.replicas {
                                @for replica in &chunk.replicas {
                                    @let state = format::server_state(replica.state);
                                    li.replica data-addr=(replica.addr) {
                                        span.addr { (replica.addr) } " "
                                        span class={ "state " (state) } { (state) }
                                        @if !replica.rack.is_empty() { " rack " (replica.rack) }
                                    }
                                }
                                @if chunk.replicas.is_empty() { li { "no replica" } }
                            }
                        }
                    }
                }
                @if chunks.is_empty() {
                    tr { td colspan="6" { "The file is empty: it has no chunk." } }
                }
            }
        }
    }
}
