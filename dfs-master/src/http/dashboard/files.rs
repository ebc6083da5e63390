//! `/files?path=/dir`: one directory of the namespace. Breadcrumbs up to the root,
//! subdirectories that link deeper, files that link to their detail page, a name filter,
//! pages of entries, and per entry a download link and a delete button (with a
//! confirmation). An upload form sends a file into the directory with a progress bar.
//!
//! Uploads and deletes are the script's calls of the JSON API (`PUT`/`DELETE
//! /api/v1/files/…`, `DELETE /api/v1/dirs/…`); this page only reads.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use dfs_client::{DirEntry, FileKind};
use maud::{Markup, html};
use serde::Deserialize;

use crate::http::HttpState;
use crate::http::dashboard::PageError;
use crate::http::dashboard::format;
use crate::http::dashboard::layout::{self, Origin, Section};

/// Entries per page unless the query asks for another number.
pub const DEFAULT_PAGE_ENTRIES: usize = 100;
/// Most entries one page shows.
pub const MAX_PAGE_ENTRIES: usize = 1000;

/// The query of `/files`.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// The directory, from the root (default `/`).
    pub path: Option<String>,
    /// Only names containing this text (case-insensitive).
    pub name: Option<String>,
    /// Only names after this one: where the previous page ended.
    pub after: Option<String>,
    /// Entries per page.
    pub limit: Option<usize>,
}

/// One page of a directory: the entries to show and whether more follow.
#[derive(Debug)]
pub struct Listing<'a> {
    /// Entries in name order.
    pub entries: Vec<&'a DirEntry>,
    /// Whether entries after the last shown one match too.
    pub more: bool,
}

/// The entries of `all` that match `filter` (case-insensitive substring of the name) and
/// come after `after`, at most `limit` of them.
pub fn select<'a>(
    all: &'a [DirEntry],
    filter: &str,
    after: Option<&str>,
    limit: usize,
) -> Listing<'a> {
    let filter = filter.to_lowercase();
    let mut matching = all
        .iter()
        .filter(|e| after.is_none_or(|after| e.name.as_slice() > after.as_bytes()))
        .filter(|e| filter.is_empty() || name_of(e).to_lowercase().contains(&filter));
    let entries: Vec<&DirEntry> = matching.by_ref().take(limit).collect();
    let more = matching.next().is_some();
    Listing { entries, more }
}

/// An entry's name as text (names that are not UTF-8 show replacement characters).
fn name_of(entry: &DirEntry) -> String {
    String::from_utf8_lossy(&entry.name).into_owned()
}

/// `GET /files`: the listing, or a redirect to the detail page when the path is a file.
pub async fn page(
    State(state): State<HttpState>,
    Query(query): Query<ListQuery>,
) -> Result<Response, PageError> {
    let origin = Origin::of(&state);
    let path = format::clean_path(query.path.as_deref().unwrap_or("/"));
    let client = state.client().await?;
    let attr = client
        .stat_path(&path)
        .await
        .map_err(|e| PageError::at(&path, e))?;
    if attr.kind != FileKind::Directory {
        return Ok(Redirect::to(&format::detail_href(&path)).into_response());
    }
    let all = client
        .list_path(&path)
        .await
        .map_err(|e| PageError::at(&path, e))?;
    let filter = query.name.clone().unwrap_or_default();
    let limit = query
        .limit
        .unwrap_or(DEFAULT_PAGE_ENTRIES)
        .clamp(1, MAX_PAGE_ENTRIES);
    let listing = select(&all, &filter, query.after.as_deref(), limit);
    let body = html! {
        nav.breadcrumbs #breadcrumbs {
            @for (i, (name, href)) in format::breadcrumbs(&path).into_iter().enumerate() {
                @if i > 1 { span.sep { "/" } }
                a href=(format::files_href(&href)) { (name) }
            }
        }
        div.toolbar {
            form #filter method="get" action="/files" {
                input type="hidden" name="path" value=(path);
                input #name-filter type="search" name="name" value=(filter) placeholder="Filter by name";
                button type="submit" { "Filter" }
                @if !filter.is_empty() { a href=(format::files_href(&path)) { "clear" } }
            }
            form #upload onsubmit="return false" {
                input #upload-file type="file" name="file";
                button #upload-button type="button" data-dir=(path) { "Upload" }
                progress #upload-progress max="100" value="0" {}
                span #upload-status role="status" {}
            }
        }
        (table(&path, &listing))
        p.pager {
            @if query.after.is_some() {
                a #first-page href=(page_href(&path, &filter, None, limit)) { "« first page" }
                " "
            }
            @if let (true, Some(last)) = (listing.more, listing.entries.last()) {
                a #next-page href=(page_href(&path, &filter, Some(&name_of(last)), limit)) { "next page »" }
            }
        }
        p #action-status.note role="status" {}
    };
    Ok(layout::page(&origin, Section::Files, &format!("Files in {path}"), body).into_response())
}

/// The listing's table.
fn table(path: &str, listing: &Listing<'_>) -> Markup {
    html! {
        table #listing {
            thead { tr { th { "name" } th { "size" } th { "modified" } th {} } }
            tbody {
                @if path != "/" {
                    tr.parent { td { a href=(format::files_href(format::parent_path(path))) { ".." } } td {} td {} td {} }
                }
                @for entry in &listing.entries {
                    @let name = name_of(entry);
                    @let child = format::child_path(path, &name);
                    @let dir = entry.attr.kind == FileKind::Directory;
                    tr.entry data-name=(name) {
                        td {
                            @if dir {
                                a.dir href=(format::files_href(&child)) { (name) "/" }
                            } @else {
                                a.file href=(format::detail_href(&child)) { (name) }
                            }
                        }
                        td { @if !dir { (format::bytes(entry.attr.size)) } }
                        td { (format::system_time(entry.attr.mtime)) }
                        td.actions {
                            @if entry.attr.kind == FileKind::Regular {
                                a.download href=(format::download_href(&child)) download=(name) { "download" }
                                " "
                            }
                            @if dir || entry.attr.kind == FileKind::Regular {
                                button.delete.danger type="button" data-path=(child)
                                    data-kind=(if dir { "dir" } else { "file" }) { "Delete" }
                            }
                        }
                    }
                }
                @if listing.entries.is_empty() {
                    tr { td colspan="4" { "Nothing here." } }
                }
            }
        }
    }
}

/// The link to a page of directory `path`.
fn page_href(path: &str, filter: &str, after: Option<&str>, limit: usize) -> String {
    let mut href = format::files_href(path);
    if !filter.is_empty() {
        href.push_str(&format!("&name={}", format::url_encode(filter, false)));
    }
    if let Some(after) = after {
        href.push_str(&format!("&after={}", format::url_encode(after, false)));
    }
    if limit != DEFAULT_PAGE_ENTRIES {
        href.push_str(&format!("&limit={limit}"));
    }
    href
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn entry(name: &str) -> DirEntry {
        DirEntry {
            name: name.as_bytes().to_vec(),
            attr: dfs_client::Attr {
                ino: 2,
                kind: FileKind::Regular,
                perm: 0o644,
                size: 0,
                nlink: 1,
                uid: 0,
                gid: 0,
                rdev: 0,
                atime: SystemTime::UNIX_EPOCH,
                mtime: SystemTime::UNIX_EPOCH,
                ctime: SystemTime::UNIX_EPOCH,
                crtime: SystemTime::UNIX_EPOCH,
            },
        }
    }

    fn names(listing: &Listing<'_>) -> Vec<String> {
        listing.entries.iter().map(|e| name_of(e)).collect()
    }

    #[test]
    fn pages_follow_each_other_and_the_filter_ignores_case() {
        // Listings come in byte order of the names, upper case first.
        let all: Vec<DirEntry> = ["C.LOG", "a.log", "b.txt", "d.log"].map(entry).into();
        let first = select(&all, "", None, 2);
        assert_eq!(names(&first), ["C.LOG", "a.log"]);
        assert!(first.more);
        let second = select(&all, "", Some("a.log"), 2);
        assert_eq!(names(&second), ["b.txt", "d.log"]);
        assert!(!second.more);
        let logs = select(&all, "log", None, 10);
        assert_eq!(names(&logs), ["C.LOG", "a.log", "d.log"]);
        let after = select(&all, "log", Some("C.LOG"), 1);
        assert_eq!(names(&after), ["a.log"]);
        assert!(after.more);
    }

    #[test]
    fn page_links_carry_the_filter_and_the_position() {
        assert_eq!(page_href("/d", "", None, 100), "/files?path=/d");
        assert_eq!(
            page_href("/d", "a b", Some("x&y"), 10),
            "/files?path=/d&name=a%20b&after=x%26y&limit=10"
        );
    }
}
