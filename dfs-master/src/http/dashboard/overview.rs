//! `/`: the cluster at a glance. Servers by state, capacity used, files and chunks,
//! replication health, the group of masters with its leader, and charts of this master's
//! activity (calls, data moved, latency) that the script draws from `/api/v1/history`.
//!
//! The summary refreshes itself every few seconds, the charts at the history's interval.

use axum::extract::State;
use maud::{Markup, html};

use dfs_proto::pb::{self, MasterRole, ServerState};

use crate::http::HttpState;
use crate::http::dashboard::PageError;
use crate::http::dashboard::format;
use crate::http::dashboard::layout::{self, Origin, Section};

/// Milliseconds between two refreshes of the summary.
const REFRESH_MS: u64 = 5000;

/// `GET /`.
pub async fn page(State(state): State<HttpState>) -> Result<Markup, PageError> {
    let origin = Origin::of(&state);
    let status = state
        .client()
        .await?
        .master()
        .cluster_status()
        .await
        .map_err(|e| PageError::at("/", e))?;
    let group = state.node.status();
    let interval_ms = state.history.interval().as_millis();
    let body = html! {
        section #summary data-refresh=(REFRESH_MS) {
            (cards(&status))
            h2 { "Masters" }
            (masters(&group, origin.node_id))
        }
        h2 { "Activity of master " (origin.node_id) }
        p.note {
            "Calls this master answered and data the chunkservers reported to it, sampled every "
            (format!("{:.1}", interval_ms as f64 / 1000.0)) " s over the last hour."
        }
        section #charts.charts data-history="/api/v1/history" data-interval=(interval_ms) {
            (chart("ops", "Operations per second", &[("ops_per_sec", "calls"), ("errors_per_sec", "errors")]))
            (chart("throughput", "Throughput (bytes per second)",
                &[("read_bytes_per_sec", "read"), ("write_bytes_per_sec", "write")]))
            (chart("latency", "Call latency (ms)",
                &[("latency_p50_ms", "p50"), ("latency_p95_ms", "p95"), ("latency_p99_ms", "p99")]))
        }
    };
    Ok(layout::page(&origin, Section::Overview, "Overview", body))
}

/// The summary cards: servers, capacity, files and chunks, replication health.
fn cards(status: &pb::ClusterStatusReply) -> Markup {
    let count = |state: ServerState| {
        status
            .servers
            .iter()
            .filter(|s| s.state == state as i32)
            .count()
    };
    let live = status.servers.iter().filter(|s| {
        s.state == ServerState::Active as i32 || s.state == ServerState::Draining as i32
    });
    let (capacity, free) = live.fold((0u64, 0u64), |(c, f), s| {
        (c + s.capacity_bytes, f + s.free_bytes)
    });
    let used = capacity.saturating_sub(free);
    let health = if !status.health_checked {
        "warn"
    } else if status.missing > 0 {
        "bad"
    } else if status.under_replicated > 0 {
        "warn"
    } else {
        "good"
    };
    html! {
        div.cards {
            div.card #servers-card {
                h3 { "Chunkservers" }
                p.big { span #servers-active { (count(ServerState::Active)) } " active" }
                p {
                    @for (i, (state, word)) in [
                        (ServerState::Stale, "stale"),
                        (ServerState::Dead, "dead"),
                        (ServerState::Draining, "draining"),
                    ].into_iter().enumerate() {
                        @if i > 0 { " · " }
                        @let n = count(state);
                        // Only a state some server is in stands out.
                        span.state.(word)[n > 0] #{ "servers-" (word) } { (n) " " (word) }
                    }
                }
            }
            div.card #capacity-card {
                h3 { "Capacity" }
                p.big { (format::bytes(used)) " of " (format::bytes(capacity)) }
                (layout::bar(format::percent(used, capacity),
                    &format!("{:.1} % used", format::percent(used, capacity))))
            }
            div.card #namespace-card {
                h3 { "Namespace" }
                p.big { span #files-count { (status.files) } " files" }
                p { (status.chunks) " chunks, replication " (status.replication) }
            }
            div class={ "card health " (health) } #replication-card {
                h3 { "Replication" }
                @if status.health_checked {
                    p.big { span #under-replicated { (status.under_replicated) } " under-replicated" }
                } @else {
                    // A new leader has not checked every chunk yet.
                    p.big #health-checking { "checking…" }
                }
                p {
                    span #missing { (status.missing) } " missing · "
                    (status.over_replicated) " over-replicated · "
                    (status.replications_in_flight) " copies in flight"
                }
            }
        }
    }
}

/// The group of masters as this one sees it, the leader marked.
fn masters(group: &pb::MastersReply, this: u64) -> Markup {
    html! {
        table #masters {
            thead { tr { th { "id" } th { "address" } th { "role" } th { "lag" } th { "last contact" } th {} } }
            tbody {
                @for m in &group.members {
                    @let role = if m.id == group.leader_id {
                        "leader"
                    } else if !m.voter {
                        "learner"
                    } else if m.id == this && m.role == MasterRole::Candidate as i32 {
                        "candidate"
                    } else {
                        "follower"
                    };
                    tr class=(role) {
                        td { (m.id) }
                        td { (m.addr) }
                        td { @if role == "leader" { "★ " } (role) }
                        td { (m.lag) }
                        td {
                            @match m.last_contact_ms {
                                Some(ms) if m.id != group.leader_id => (format::heartbeat_age(ms)),
                                _ => "—",
                            }
                        }
                        td { @if m.id == this { "this page" } }
                    }
                }
            }
        }
        @if group.leader_id == 0 {
            p.warn { "No leader is known: the group is electing one." }
        }
    }
}

/// One chart: a canvas the script draws `series` (`(field, label)`) of the history into.
fn chart(id: &str, title: &str, series: &[(&str, &str)]) -> Markup {
    let fields: Vec<&str> = series.iter().map(|s| s.0).collect();
    let labels: Vec<&str> = series.iter().map(|s| s.1).collect();
    html! {
        figure.chart #{ "chart-" (id) } data-fields=(fields.join(",")) data-labels=(labels.join(",")) {
            figcaption { (title) }
            canvas width="460" height="180" {}
        }
    }
}
