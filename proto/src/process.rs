//! Process plumbing every dfs binary shares: logging to stderr filtered by `RUST_LOG`, as text
//! or JSON lines, and the signal that asks a server or mount to shut down cleanly.

use std::str::FromStr;

use tracing_subscriber::EnvFilter;

/// How a daemon writes its log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `fields` with `message`,
    /// `span`), for log collectors.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<LogFormat, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?} (text or json)")),
        }
    }
}

/// Sends `tracing` output to stderr in `format`, at the level `RUST_LOG` names (`info` when
/// unset), plus any `extra` directives (e.g. `fuser=debug`).
pub fn init_logging(format: LogFormat, extra: &[&str]) {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    for directive in extra {
        match directive.parse() {
            Ok(directive) => filter = filter.add_directive(directive),
            Err(err) => eprintln!("ignoring log directive {directive:?}: {err}"),
        }
    }
    let logger = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logger.init(),
        LogFormat::Json => logger.json().init(),
    }
}

/// Completes at the first SIGINT or SIGTERM: the clean way to stop a dfs process (`kill`,
/// Ctrl-C, systemd). If SIGTERM cannot be watched, SIGINT alone still works.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        }
        Err(err) => {
            tracing::error!(error = %err, "cannot watch SIGTERM; stopping on SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("shutdown requested");
}

/// The tokio runtime of a dfs daemon: multi-threaded (blocking work can move off a worker with
/// `block_in_place`, and the blocking pool is there for long jobs), with `worker_threads`
/// workers.
///
/// Every request of a daemon is a short exchange of small messages: with several workers, a
/// task woken by one of them is often picked up by another, which is parked and must be woken
/// first — one more thread hand-off (two context switches) per hop, while the CPU work of the
/// hop is a few microseconds. One worker keeps a request's hops on one thread; the extra
/// workers pay off only for CPU-heavy daemons on many cores.
pub fn runtime(worker_threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads.max(1))
        .enable_all()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_formats_parse_by_name() {
        assert_eq!("text".parse(), Ok(LogFormat::Text));
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert!(
            "xml"
                .parse::<LogFormat>()
                .unwrap_err()
                .contains("text or json")
        );
    }
}
