//! The cluster: this master's health, the cluster's status, its chunkservers (and
//! decommissioning one), the group of masters, and the replication health of a subtree.
//!
//! All but `health` ask the leader through the client, so any member answers the same.

use std::collections::VecDeque;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use dfs_client::MasterClient;
use dfs_proto::FsError;

use super::errors::{ApiResult, ErrorBody};
use super::model::{ClusterStatus, FsckQuery, FsckReport, Health, Masters, Server};
use super::{ApiError, absolute};
use crate::http::HttpState;

/// This master is up; whether it leads its group. Answered by this member alone.
#[utoipa::path(get, path = "/api/v1/health", tag = "cluster",
    responses((status = 200, body = Health)))]
pub async fn health(State(state): State<HttpState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        node_id: state.node.id(),
        leader: state.node.leader().is_ok(),
    })
}

/// The cluster at a glance: servers by state, capacity, files, chunks, replication health,
/// the masters and their leader.
#[utoipa::path(get, path = "/api/v1/status", tag = "cluster",
    responses((status = 200, body = ClusterStatus), (status = 503, body = ErrorBody)))]
pub async fn status(State(state): State<HttpState>) -> ApiResult<Json<ClusterStatus>> {
    let master = state.client().await?.master();
    let (status, masters) = tokio::try_join!(master.cluster_status(), master.masters())?;
    Ok(Json(ClusterStatus::new(status, masters.into())))
}

/// Every chunkserver with its state, capacity, replicas, load and last heartbeat.
#[utoipa::path(get, path = "/api/v1/servers", tag = "cluster",
    responses((status = 200, body = Vec<Server>), (status = 503, body = ErrorBody)))]
pub async fn servers(State(state): State<HttpState>) -> ApiResult<Json<Vec<Server>>> {
    let status = state.client().await?.master().cluster_status().await?;
    Ok(Json(status.servers.into_iter().map(Server::from).collect()))
}

/// Starts draining a chunkserver (named by address `host:port` or id): its replicas are
/// copied elsewhere, then dropped from it.
#[utoipa::path(post, path = "/api/v1/servers/{address}/decommission", tag = "cluster",
    params(("address" = String, Path, description = "the server's host:port or id")),
    responses((status = 200, body = Server), (status = 404, body = ErrorBody)))]
pub async fn decommission(
    State(state): State<HttpState>,
    address: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Server>> {
    let Path(address) = address?;
    let server = state
        .client()
        .await?
        .master()
        .decommission(&address)
        .await?;
    Ok(Json(server.into()))
}

/// The group of masters: each member's role, term and how far its log is.
#[utoipa::path(get, path = "/api/v1/masters", tag = "cluster",
    responses((status = 200, body = Masters), (status = 503, body = ErrorBody)))]
pub async fn masters(State(state): State<HttpState>) -> ApiResult<Json<Masters>> {
    let reply = state.client().await?.master().masters().await?;
    Ok(Json(reply.into()))
}

/// The replication health of every file under `path` (default `/`).
#[utoipa::path(get, path = "/api/v1/fsck", tag = "cluster",
    params(FsckQuery),
    responses((status = 200, body = FsckReport), (status = 404, body = ErrorBody)))]
pub async fn fsck(
    State(state): State<HttpState>,
    query: Result<Query<FsckQuery>, QueryRejection>,
) -> ApiResult<Json<FsckReport>> {
    let Query(query) = query?;
    let path = absolute(query.path.as_deref().unwrap_or("/"))?;
    let master = state.client().await?.master();
    Ok(Json(walk(master, &path).await?))
}

/// The health of the subtree at `path`, one master call per directory (so no single call
/// grows with the tree).
pub async fn walk(master: &MasterClient, path: &str) -> ApiResult<FsckReport> {
    let mut report = FsckReport {
        path: path.to_string(),
        ..FsckReport::default()
    };
    let mut pending = VecDeque::from([path.to_string()]);
    let mut first = true;
    while let Some(dir) = pending.pop_front() {
        let reply = match master.fsck(&dir).await {
            Ok(reply) => reply,
            // Removed since its parent was listed: nothing left to check there.
            Err(FsError::NotFound) if !first => continue,
            Err(err) => return Err(ApiError::Fs(err)),
        };
        first = false;
        pending.extend(report.add(reply));
    }
    report.damaged_files.sort();
    Ok(report)
}
