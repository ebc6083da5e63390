//! The `dfs-master` binary: parses options, sets up logging, binds the listen address and
//! serves until SIGINT or SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

/// dfs metadata server: namespace and chunk map in RocksDB, chunkserver registry, placement.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    config: dfs_master::Config,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    let listener = match TcpListener::bind(&cli.config.listen).await {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!(listen = %cli.config.listen, error = %err, "cannot bind");
            return ExitCode::FAILURE;
        }
    };
    match dfs_master::run(cli.config, listener, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "master failed");
            ExitCode::FAILURE
        }
    }
}

/// Completes on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(stream) => stream,
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
    tracing::info!("shutdown signal received");
}
