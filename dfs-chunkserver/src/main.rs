//! The `dfs-chunkserver` binary: parses options, sets up logging, binds, and runs the
//! chunkserver until SIGINT or SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use dfs_chunkserver::Config;
use dfs_proto::process;
use tokio::net::TcpListener;

/// dfs chunkserver: stores chunk replicas on local disk with per-block CRC32C checksums and
/// serves them to clients and to other chunkservers.
#[derive(Debug, Parser)]
#[command(name = "dfs-chunkserver", version)]
struct Options {
    #[command(flatten)]
    config: Config,

    /// Threads running the chunkserver's requests (reading and verifying large pieces and
    /// writing replicas run on blocking threads besides). One keeps a small request on one
    /// thread (see `dfs_proto::process::runtime`).
    #[arg(long, env = "DFS_WORKER_THREADS", default_value_t = 1)]
    worker_threads: usize,

    /// Log lines as `text` or as `json` objects (one per line, for log collectors).
    #[arg(long, env = "DFS_LOG_FORMAT", default_value = "text")]
    log_format: process::LogFormat,
}

fn main() -> ExitCode {
    let options = Options::parse();
    process::init_logging(options.log_format, &[]);
    match process::runtime(options.worker_threads) {
        Ok(runtime) => runtime.block_on(serve(options)),
        Err(err) => {
            tracing::error!(error = %err, "cannot start the runtime");
            ExitCode::FAILURE
        }
    }
}

async fn serve(options: Options) -> ExitCode {
    let listener = match TcpListener::bind(&options.config.listen).await {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!(listen = %options.config.listen, error = %err, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    match dfs_chunkserver::run(options.config, listener, process::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "chunkserver failed");
            ExitCode::FAILURE
        }
    }
}
