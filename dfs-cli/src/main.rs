//! `dfs`: the command line of a dfs cluster. Parses options and hands over to
//! [`dfs_cli::run`].

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let cli = dfs_cli::Cli::parse();
    match dfs_cli::run(cli).await {
        Ok(code) => std::process::ExitCode::from(code),
        Err(err) => {
            eprintln!("dfs: {err}");
            std::process::ExitCode::from(2)
        }
    }
}
