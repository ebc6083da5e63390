//! The `dfs-fuse` binary: parses options, sets up logging, and mounts in the foreground until
//! SIGINT or SIGTERM (then unmounts and exits 0). Scripts run it in the background.

use std::process::ExitCode;

use clap::Parser;
use dfs_fuse::Config;
use dfs_proto::process;

/// Mount a dfs cluster as a POSIX directory.
#[derive(Debug, Parser)]
#[command(name = "dfs-fuse", version, about)]
struct Cli {
    #[command(flatten)]
    config: Config,

    /// Threads running the mount's requests (the FUSE threads only hand them over). A
    /// metadata request is one round trip to the master and microseconds of CPU: one thread
    /// runs it without handing it between threads (see `dfs_proto::process::runtime`).
    #[arg(long, env = "DFS_WORKER_THREADS", default_value_t = 1)]
    worker_threads: usize,

    /// Log lines as `text` or as `json` objects (one per line, for log collectors).
    #[arg(long, env = "DFS_LOG_FORMAT", default_value = "text")]
    log_format: process::LogFormat,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let extra: &[&str] = if cli.config.debug_fuse {
        &["fuser=debug"]
    } else {
        &[]
    };
    process::init_logging(cli.log_format, extra);
    match process::runtime(cli.worker_threads) {
        Ok(runtime) => runtime.block_on(mount(cli)),
        Err(err) => {
            tracing::error!(error = %err, "cannot start the runtime");
            ExitCode::FAILURE
        }
    }
}

async fn mount(cli: Cli) -> ExitCode {
    match dfs_fuse::run(cli.config, process::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            ExitCode::FAILURE
        }
    }
}
