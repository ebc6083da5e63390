//! The `dfs-chunkserver` binary: parses options, sets up logging, binds, and runs the
//! chunkserver until SIGINT or SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use dfs_chunkserver::Config;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

/// dfs chunkserver: stores chunk replicas on local disk with per-block SHA-256 checksums and
/// serves them to clients and to other chunkservers.
#[derive(Debug, Parser)]
#[command(name = "dfs-chunkserver", version)]
struct Options {
    #[command(flatten)]
    config: Config,
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = Options::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    let listener = match TcpListener::bind(&options.config.listen).await {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!(listen = %options.config.listen, error = %err, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    match dfs_chunkserver::run(options.config, listener, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "chunkserver failed");
            ExitCode::FAILURE
        }
    }
}

/// Completes on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(terminate) => terminate,
        Err(err) => {
            tracing::error!(error = %err, "cannot listen for SIGTERM; stopping on SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutdown requested");
}
