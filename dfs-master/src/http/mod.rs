//! The master's HTTP service, on `--http-listen`: `/metrics` for Prometheus, the JSON API
//! under `/api/v1`, and the web dashboard at `/`.
//!
//! Every member of the group serves it, leader or not: what it shows of the cluster and what
//! it reads and writes of files goes through the client library ([`dfs_client::Client`]),
//! to whichever master leads, with the same leases and consistency as a mount. So a
//! follower's page is as current as the leader's, and a failover is retried as a mount
//! retries it.
//!
//! * [`api`] — the JSON API under `/api/v1`, and its OpenAPI document.
//! * [`history`] — this master's activity over the last hour, for the dashboard's charts.
//! * [`dashboard`] — the server-rendered pages and their static script and style sheet.

pub mod api;
pub mod dashboard;
pub mod history;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use dfs_client::Client;
use prometheus_client::registry::Registry;
use tokio::sync::OnceCell;

use crate::http::history::History;
use crate::metrics::MasterMetrics;
use crate::raft::node::Node;

/// How long a call of the HTTP service's client may take, failovers included (a mount's
/// default).
pub const API_RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// What every HTTP handler shares: a cheap clone.
#[derive(Clone)]
pub struct HttpState {
    /// This member of the group.
    pub node: Arc<Node>,
    /// This master's metrics.
    pub metrics: Arc<MasterMetrics>,
    /// This master's sampled activity (see [`history`]).
    pub history: Arc<History>,
    /// The client of the cluster, connected on first use (see [`HttpState::client`]).
    client: Arc<OnceCell<Client>>,
    /// Options of that client; its master list is the group's, read when it connects.
    client_config: Arc<dfs_client::Config>,
}

impl HttpState {
    /// The state of `node`'s HTTP service; `rpc_timeout` bounds each call its client makes,
    /// which presents `tls`'s certificate if the group speaks TLS.
    pub fn new(
        node: Arc<Node>,
        metrics: Arc<MasterMetrics>,
        history: Arc<History>,
        rpc_timeout: Duration,
        tls: dfs_proto::tls::TlsOptions,
    ) -> HttpState {
        let mut client_config = dfs_client::Config::new(String::new());
        client_config.rpc_timeout_ms = u64::try_from(rpc_timeout.as_millis()).unwrap_or(u64::MAX);
        // The API reaches the group as the master itself, with its own certificate.
        client_config.tls = tls;
        HttpState {
            node,
            metrics,
            history,
            client: Arc::new(OnceCell::new()),
            client_config: Arc::new(client_config),
        }
    }

    /// The client of the cluster, connected to every member of the group on first use.
    ///
    /// Lazily, because the master serves HTTP before its group has a leader; a failed
    /// connection is tried again by the next request.
    pub async fn client(&self) -> Result<&Client, dfs_client::Error> {
        self.client
            .get_or_try_init(|| async {
                let mut config = (*self.client_config).clone();
                config.master = self.group_addrs();
                Client::connect(&config).await
            })
            .await
    }

    /// Every member's address, comma-separated as clients take them.
    fn group_addrs(&self) -> String {
        let status = self.node.status();
        let addrs: Vec<String> = status.members.into_iter().map(|m| m.addr).collect();
        addrs.join(",")
    }
}

/// The whole HTTP service of a master: metrics from `registry`, the API, the dashboard.
pub fn router(state: HttpState, registry: Arc<Registry>) -> Router {
    let api = api::router().route("/history", axum::routing::get(history::get_history));
    Router::new()
        .nest("/api/v1", api)
        .merge(dashboard::router())
        .with_state(state)
        .merge(dfs_proto::http::metrics_router(registry))
}
