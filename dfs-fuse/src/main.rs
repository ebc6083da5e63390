//! The `dfs-fuse` binary: parses options, sets up logging, and mounts in the foreground until
//! SIGINT or SIGTERM (then unmounts and exits 0). Scripts run it in the background.

use std::process::ExitCode;

use clap::Parser;
use dfs_fuse::Config;
use tracing_subscriber::EnvFilter;

/// Mount a dfs cluster as a POSIX directory.
#[derive(Debug, Parser)]
#[command(name = "dfs-fuse", version, about)]
struct Cli {
    #[command(flatten)]
    config: Config,
}

/// Completes at the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("cannot listen for SIGTERM");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if cli.config.debug_fuse {
        filter = filter.add_directive("fuser=debug".parse().expect("valid directive"));
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    match dfs_fuse::run(cli.config, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            ExitCode::FAILURE
        }
    }
}
