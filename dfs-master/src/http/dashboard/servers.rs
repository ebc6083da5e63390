//! `/servers`: every chunkserver the master knows, as `dfs status` lists them — state,
//! address, rack, disk use, replicas, load and last heartbeat — with a button that asks to
//! decommission it (after a confirmation, through the API).
//!
//! The table refreshes itself every two seconds, so a server that stops heartbeating turns
//! stale and then dead before the reader's eyes.

use axum::extract::State;
use maud::{Markup, html};

use dfs_proto::pb::{self, ServerState};

use crate::http::HttpState;
use crate::http::dashboard::PageError;
use crate::http::dashboard::format;
use crate::http::dashboard::layout::{self, Origin, Section};

/// Milliseconds between two refreshes of the table.
const REFRESH_MS: u64 = 2000;

/// `GET /servers`.
pub async fn page(State(state): State<HttpState>) -> Result<Markup, PageError> {
    let origin = Origin::of(&state);
    let status = state
        .client()
        .await?
        .master()
        .cluster_status()
        .await
        .map_err(|e| PageError::at("/", e))?;
    let body = html! {
        section #servers data-refresh=(REFRESH_MS) {
            p.note {
                (status.servers.len()) " chunkservers; replication " (status.replication) "."
            }
            (table(&status.servers))
        }
        p #action-status.note role="status" {}
    };
    Ok(layout::page(
        &origin,
        Section::Servers,
        "Chunkservers",
        body,
    ))
}

/// The table of servers, one row each, identified by address.
fn table(servers: &[pb::ServerStatus]) -> Markup {
    html! {
        table #server-table {
            thead {
                tr {
                    th { "state" } th { "address" } th { "rack" } th { "used / total" }
                    th { "replicas" } th { "load" } th { "last heartbeat" } th {}
                }
            }
            tbody {
                @for s in servers {
                    @let state = format::server_state(s.state);
                    @let used = s.capacity_bytes.saturating_sub(s.free_bytes);
                    tr.server data-addr=(s.addr) {
                        td { span class={ "state " (state) } { (state) } }
                        td.addr { (s.addr) }
                        td { @if s.rack.is_empty() { "—" } @else { (s.rack) } }
                        td {
                            (layout::bar(format::percent(used, s.capacity_bytes),
                                &format!("{} / {}", format::bytes(used), format::bytes(s.capacity_bytes))))
                        }
                        td { (s.replicas) }
                        td { (s.active_transfers) " transfers" }
                        td { (format::heartbeat_age(s.last_heartbeat_ms)) }
                        td {
                            @if s.state == ServerState::Active as i32 || s.state == ServerState::Stale as i32 {
                                button.decommission.danger type="button" data-addr=(s.addr) {
                                    "Decommission"
                                }
                            }
                        }
                    }
                }
                @if servers.is_empty() {
                    tr { td colspan="8" { "No chunkserver has registered yet." } }
                }
            }
        }
    }
}
