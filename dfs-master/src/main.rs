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

    /// Threads running the master's requests. Metadata requests are a few microseconds of
    /// CPU each: one thread answers them without handing them between threads (see
    /// `dfs_proto::process::runtime`); more only pay off with many cores and clients.
    #[arg(long, env = "DFS_WORKER_THREADS", default_value_t = 1)]
    worker_threads: usize,

    /// Log lines as `text` or as `json` objects (one per line, for log collectors).
    #[arg(long, env = "DFS_LOG_FORMAT", default_value = "text")]
    log_format: process::LogFormat,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // openraft narrates every vote and append at info; dfs logs what an operator needs to know
    // of the group (elections won, leadership lost) itself. RUST_LOG=openraft=info brings it
    // back.
    let quiet_raft = std::env::var("RUST_LOG").map_or(true, |filter| !filter.contains("openraft"));
    let extra: &[&str] = if quiet_raft { &["openraft=warn"] } else { &[] };
    process::init_logging(cli.log_format, extra);
    match process::runtime(cli.worker_threads) {
        Ok(runtime) => runtime.block_on(serve(cli)),
        Err(err) => {
            tracing::error!(error = %err, "cannot start the runtime");
            ExitCode::FAILURE
        }
    }
}

async fn serve(cli: Cli) -> ExitCode {
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
