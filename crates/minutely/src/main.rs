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
use std::io::IsTerminal;

/// A push allocates and frees megabytes of short-lived buffers (the body,
/// its points, the log record): mimalloc reuses them with fewer page faults
/// and less locking than glibc's allocator (about 10% less server CPU per
/// pushed point; docs/BENCHMARKS.md has what it costs elsewhere). Its
/// default purge delay stays: purging freed memory at once halved the
/// speed of wide distribution queries, which free large buffers per chunk
/// of series.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Transparent huge pages, where the kernel gives them to every process,
/// make the allocator's reserved regions resident 2 MiB at a time: two to
/// three times the memory per series at steady state, for wide
/// distribution queries some 15% faster.
#[cfg(target_os = "linux")]
fn no_transparent_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE only sets a flag of this process.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

#[cfg(not(target_os = "linux"))]
fn no_transparent_huge_pages() {}

fn main() {
    no_transparent_huge_pages();
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("MINUTELY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: a log file or the journal gets plain text.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
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
