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

/// A push allocates and frees megabytes of short-lived buffers (the body,
/// its points, the log record): mimalloc reuses them with fewer page faults
/// and less locking than glibc's allocator (10-15% less server CPU per
/// pushed point, docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

extern "C" {
    /// From libmimalloc-sys's static library (its Rust bindings do not
    /// name the option set below).
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_purge_delay` in the `mi_option_e` of the mimalloc 3 that
/// libmimalloc-sys 0.1.49 builds (pinned in the workspace).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// Memory freed goes back to the kernel at once, not one to ten seconds
/// later: resident memory per series at steady state as low as with
/// glibc, at no push speed we could measure.
fn allocator_purges_at_once() {
    // SAFETY: sets a plain integer option; the allocator reads it at each purge.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

/// Transparent huge pages, where the kernel gives them to every process,
/// make the allocator's reserved regions resident 2 MiB at a time: twice
/// the memory at steady state for no speed we could measure.
#[cfg(target_os = "linux")]
fn no_transparent_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE only sets a flag of this process.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

#[cfg(not(target_os = "linux"))]
fn no_transparent_huge_pages() {}

fn main() {
    no_transparent_huge_pages();
    allocator_purges_at_once();
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
