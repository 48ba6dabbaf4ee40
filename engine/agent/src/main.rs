//! The `huatuo` command: run the agent, check rules, replay recordings, show status.

use clap::{Parser, Subcommand};
use huatuo::cli;
use std::process::ExitCode;

/// huatuo: a Linux kernel observability agent whose detectors are rule files.
#[derive(Debug, Parser)]
#[command(
    name = "huatuo",
    version,
    about = "huatuo: a Linux kernel observability agent whose detectors are rule files",
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent: load rules, attach kernel templates, serve /metrics and store events.
    Run(Box<cli::run::RunArgs>),
    /// Validate rule files and the config; exit 1 when anything is wrong.
    Check(cli::check::CheckArgs),
    /// Run rules offline over recorded samples (JSON lines) and print what they emit.
    Replay(cli::replay::ReplayArgs),
    /// Show what is loaded and attached, from a running agent or by probing this kernel.
    Status(cli::status::StatusArgs),
    /// Start, read or stop on-demand operations (profiles, traces) of a running agent.
    Op(cli::op::OpArgs),
    /// Make a running agent re-read rules, stdlib and config (what SIGHUP does).
    Reload(cli::reload::ReloadArgs),
    /// Stream a running agent's events as a table or JSON lines, resuming after a disconnect.
    Watch(cli::watch::WatchArgs),
    /// Print the catalog of sources, captures, functions and config keys (Markdown).
    Catalog(cli::catalog::CatalogArgs),
    /// Print the version.
    Version,
}

fn main() -> ExitCode {
    let args = Cli::parse();
    match args.command {
        Command::Run(run) => cli::run::run(*run),
        Command::Check(check) => cli::check::run(check),
        Command::Replay(replay) => cli::replay::run(replay),
        Command::Status(status) => cli::status::run(status),
        Command::Catalog(catalog) => cli::catalog::run(catalog),
        Command::Op(op) => cli::op::run(op),
        Command::Reload(reload) => cli::reload::run(reload),
        Command::Watch(watch) => cli::watch::run(watch),
        Command::Version => {
            println!("huatuo {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
    }
}
