//! The `minutely` command: `serve`, `push`, `query`, `keys`, `backup`, `check`, `dashboards`, `alerts`.

mod alerts;
mod cli;
mod client;
mod config;
mod dashboards;
mod keys;
mod memory;
mod serve;

use clap::Parser;
use cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("MINUTELY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Push(args) => client::push(args),
        Command::Query(args) => client::query(args),
        Command::Keys(args) => keys::run(args),
        Command::Backup(args) => keys::backup(args),
        Command::Check(args) => keys::check(args),
        Command::Dashboards(args) => dashboards::run(args),
        Command::Alerts(args) => alerts::run(args),
    };
    if let Err(e) = result {
        eprintln!("minutely: {e:#}");
        std::process::exit(1);
    }
}
