//! The `dfs-master` binary: parses options, sets up logging, binds the listen address and
//! serves until SIGINT or SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use dfs_proto::process;
use tokio::net::TcpListener;

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
    process::init_logging(&[]);

    let listener = match TcpListener::bind(&cli.config.listen).await {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!(listen = %cli.config.listen, error = %err, "cannot bind");
            return ExitCode::FAILURE;
        }
    };
    match dfs_master::run(cli.config, listener, process::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "master failed");
            ExitCode::FAILURE
        }
    }
}
