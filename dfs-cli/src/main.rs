//! `dfs`: the command line of a dfs cluster. Parses options and hands over to
//! [`dfs_cli::run`].

use clap::{CommandFactory, FromArgMatches};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let matches = dfs_cli::Cli::command().get_matches();
    let cli = dfs_cli::Cli::from_arg_matches(&matches).unwrap_or_else(|err| err.exit());
    // Failures name the command, as coreutils' do: `dfs masters: ...`.
    let command = matches.subcommand_name().unwrap_or_default().to_owned();
    match dfs_cli::run(cli).await {
        Ok(code) => std::process::ExitCode::from(code),
        Err(err) => {
            eprintln!("dfs {command}: {err}");
            std::process::ExitCode::from(2)
        }
    }
}
