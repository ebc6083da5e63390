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
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let extra: &[&str] = if cli.config.debug_fuse {
        &["fuser=debug"]
    } else {
        &[]
    };
    process::init_logging(extra);

    match dfs_fuse::run(cli.config, process::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            ExitCode::FAILURE
        }
    }
}
