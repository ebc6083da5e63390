//! The HTTP side every dfs process shares: where it listens (`--http-listen`, also spelled
//! `--metrics-listen`), the `/metrics` route in the Prometheus/OpenMetrics text format, and
//! serving a router until shutdown.
//!
//! Every process has one HTTP address. Chunkservers and mounts serve only `/metrics` on it;
//! the master adds its JSON API and web dashboard. Each process keeps its own
//! [`Registry`] (no global one), so tests run many servers in one process and read each one's
//! metrics apart.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

/// The content type of the OpenMetrics text format, which Prometheus asks for first.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds, in seconds, of the duration histograms of the data path and of calls between
/// processes: 100 µs (a cached metadata call) to 20 s (a chain write of a whole chunk, or a
/// call that follows a new leader for up to the RPC timeout).
pub const DURATION_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 20.0,
];

/// Where a process serves HTTP. Absent, it serves none: HTTP is opt-in, like any open port.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct HttpConfig {
    /// Address of the HTTP service (`host:port`; port 0 picks a free port, see
    /// --http-addr-file): `/metrics` on every process, plus the API under `/api/v1` and the
    /// web dashboard at `/` on a master.
    #[arg(
        id = "http_listen",
        long = "http-listen",
        visible_alias = "metrics-listen",
        env = "DFS_HTTP_LISTEN"
    )]
    pub listen: Option<String>,

    /// File to write the bound HTTP address to once it serves (for port 0 and scripts).
    #[arg(long, env = "DFS_HTTP_ADDR_FILE")]
    pub http_addr_file: Option<PathBuf>,
}

impl HttpConfig {
    /// Serves HTTP on `addr`, writing nothing: the form tests use with `127.0.0.1:0`.
    pub fn on(addr: impl Into<String>) -> HttpConfig {
        HttpConfig {
            listen: Some(addr.into()),
            http_addr_file: None,
        }
    }

    /// Binds the configured address, if any, and writes the address file. A bind failure is
    /// fatal to the process: an operator asked for this port.
    pub async fn bind(&self) -> std::io::Result<Option<TcpListener>> {
        let Some(listen) = &self.listen else {
            return Ok(None);
        };
        let listener = TcpListener::bind(listen).await.map_err(|err| {
            std::io::Error::new(err.kind(), format!("cannot bind HTTP on {listen}: {err}"))
        })?;
        if let Some(path) = &self.http_addr_file {
            write_addr_file(path, listener.local_addr()?)?;
        }
        Ok(Some(listener))
    }
}

/// The content type of the Prometheus text format 0.0.4, for scrapers and tools (such as
/// `promtool check metrics`) that ask for it rather than for OpenMetrics.
pub const PROMETHEUS_TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `/metrics` route: `registry` encoded on every scrape in the OpenMetrics text format,
/// or in the Prometheus text format 0.0.4 when the `Accept` header asks for `text/plain`
/// and not for OpenMetrics.
pub fn metrics_router(registry: Arc<Registry>) -> Router {
    Router::new().route(
        "/metrics",
        get(move |headers: HeaderMap| {
            let registry = registry.clone();
            async move { encode_metrics(&registry, wants_prometheus_text(&headers)) }
        }),
    )
}

/// Whether a scraper's `Accept` asks for the Prometheus text format rather than OpenMetrics.
fn wants_prometheus_text(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    accept.contains("text/plain") && !accept.contains("application/openmetrics-text")
}

/// One scrape of `registry`.
fn encode_metrics(registry: &Registry, prometheus_text: bool) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, registry) {
        Ok(()) if prometheus_text => (
            [(header::CONTENT_TYPE, PROMETHEUS_TEXT_CONTENT_TYPE)],
            to_prometheus_text(&text),
        )
            .into_response(),
        Ok(()) => ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], text).into_response(),
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode metrics: {err}"),
        )
            .into_response(),
    }
}

/// Rewrites an OpenMetrics exposition (as prometheus-client writes it) in the Prometheus
/// text format 0.0.4. The samples are the same; what differs is the metadata: a counter
/// family is named after its `_total` samples, `unknown` is `untyped`, and there are no
/// `# UNIT` or `# EOF` lines.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // A family's HELP line waits for its TYPE line, which says whether it is a counter.
    let mut help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some((name, text)) = help.take() {
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            help = Some((name, text));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "unknown" => (name.to_owned(), "untyped"),
                kind => (name.to_owned(), kind),
            };
            if let Some((_, text)) = help.take() {
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Serves `router` on `listener` until `shutdown` completes, then lets in-flight requests end.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "serving HTTP");
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Writes `addr` to `path` through a temporary file and a rename, so a reader never sees a
/// partial line: a script that waits for the file finds the whole address.
pub fn write_addr_file(path: &Path, addr: SocketAddr) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, addr.to_string())?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    #[tokio::test]
    async fn metrics_are_served_in_the_openmetrics_format_until_shutdown() {
        let mut registry = Registry::default();
        let requests = Counter::<u64>::default();
        registry.register("dfs_test_requests", "Requests seen", requests.clone());
        requests.inc_by(3);
        let dir = tempfile::tempdir().unwrap();
        let addr_file = dir.path().join("http.addr");
        let config = HttpConfig {
            listen: Some("127.0.0.1:0".into()),
            http_addr_file: Some(addr_file.clone()),
        };
        let listener = config.bind().await.unwrap().unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(
            std::fs::read_to_string(&addr_file).unwrap(),
            addr.to_string()
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            metrics_router(Arc::new(registry)),
            async move {
                let _ = stopped.await;
            },
        ));

        let reply = http_get(addr, "/metrics").await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(reply.contains("application/openmetrics-text"), "{reply}");
        assert!(reply.contains("dfs_test_requests_total 3"), "{reply}");
        assert!(reply.trim_end().ends_with("# EOF"), "{reply}");
        assert!(http_get(addr, "/nothing").await.starts_with("HTTP/1.1 404"));

        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn no_listen_address_serves_nothing_and_a_taken_port_is_an_error() {
        assert!(HttpConfig::default().bind().await.unwrap().is_none());
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = HttpConfig::on(taken.local_addr().unwrap().to_string());
        let err = config.bind().await.unwrap_err();
        assert!(err.to_string().contains("cannot bind HTTP"), "{err}");
    }

    #[test]
    fn the_prometheus_text_format_names_counters_after_their_samples() {
        let openmetrics = "# HELP dfs_requests Requests seen.\n# TYPE dfs_requests counter\n\
            dfs_requests_total 3\n# HELP dfs_size_bytes Size.\n# TYPE dfs_size_bytes gauge\n\
            # UNIT dfs_size_bytes bytes\ndfs_size_bytes 7\n# EOF\n";
        assert_eq!(
            to_prometheus_text(openmetrics),
            "# HELP dfs_requests_total Requests seen.\n# TYPE dfs_requests_total counter\n\
             dfs_requests_total 3\n# HELP dfs_size_bytes Size.\n# TYPE dfs_size_bytes gauge\n\
             dfs_size_bytes 7\n"
        );
    }

    /// A plain HTTP/1.1 GET over a socket: the whole reply, headers and body.
    async fn http_get(addr: SocketAddr, path: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.unwrap();
        reply
    }
}
