//! The master's HTTP service, on `--http-listen`: `/metrics` for Prometheus, the JSON API
//! under `/api/v1`, and the web dashboard at `/`.
//!
//! Every member of the group serves it, leader or not: what it shows of the cluster it asks
//! the group through the same calls the `dfs` command makes, so a follower's page is as
//! current as the leader's.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::raft::node::Node;

/// What every HTTP handler shares: a cheap clone.
#[derive(Clone)]
pub struct HttpState {
    /// This member of the group.
    pub node: Arc<Node>,
}

/// The whole HTTP service of a master: metrics from `registry`, the API, the dashboard.
pub fn router(state: HttpState, registry: Arc<Registry>) -> Router {
    let api = Router::new().route("/health", get(health));
    Router::new()
        .nest("/api/v1", api)
        .with_state(state)
        .merge(dfs_proto::http::metrics_router(registry))
}

/// The answer of `GET /api/v1/health`: this master is up and knows its place in the group.
#[derive(Debug, Serialize)]
pub struct Health {
    /// Always `"ok"`: an answer at all means the process serves.
    pub status: &'static str,
    /// This member's node id.
    pub node_id: u64,
    /// Whether this member leads its group and serves metadata calls.
    pub leader: bool,
}

async fn health(State(state): State<HttpState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        node_id: state.node.id(),
        leader: state.node.leader().is_ok(),
    })
}
