//! Rust client of minutely: record gauges, counters and distributions in
//! your process, and a background thread pushes them to a minutely server.
//!
//! # What is recorded
//!
//! minutely keeps every metric per UTC minute. The client aggregates in the
//! process and sends what each minute keeps, not every call:
//!
//! - [`set_gauge`]: a current value (active shoppers). A minute keeps the
//!   last value (by time), min, max, sum and count.
//! - [`increment_counter`]: an amount to add (invoices created; may be
//!   negative or fractional). A minute keeps the exact sum.
//! - [`add_distribution_value`]: one observation (items per order). A
//!   minute keeps count, sum, min, max and a DDSketch, so percentiles are
//!   within 1% and merge exactly across processes, tags and time.
//!
//! Tags are `(key, value)` pairs; their order does not matter. Names are
//! 1-200 characters of `A-Za-z0-9_.:-` starting with a letter or `_`; a call
//! with a bad name or tags, or a NaN, is dropped and counted
//! ([`Client::stats`]), never a panic.
//!
//! # Pushing
//!
//! [`start`] starts two threads: one drains the series every 10 s (at
//! multiples of the interval and at every minute's start, so a push never
//! mixes two minutes) and runs [`probes`] once a minute; the other pushes
//! gzipped batches, each with its own batch key so a retried push counts
//! once, retrying with exponential backoff and jitter. While the server is
//! away pushes wait in a bounded buffer (oldest dropped first, counted) and
//! the client drains once a minute instead of every 10 s. A call never waits
//! for the network and needs no async runtime. Call [`shutdown`] before the
//! process exits to push the last seconds.
//!
//! ```no_run
//! use minutely_client::{add_distribution_value, increment_counter, set_gauge};
//!
//! // MINUTELY_ENDPOINT, MINUTELY_PUSH_KEY and MINUTELY_ENV, as in Python:
//! minutely_client::start(minutely_client::Config::from_env()?)?;
//!
//! set_gauge("active_shoppers", 12.0, &[("region", "eu")]);
//! increment_counter("invoice_count", 1.0, &[]);
//! add_distribution_value("order_item_count", 3.0, &[]);
//!
//! minutely_client::shutdown(std::time::Duration::from_secs(5));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Warnings (a failed push, a panicking probe, a dropped series) go to
//! [`tracing`](https://docs.rs/tracing), at most one line per 10 s per kind.
//! An `https://` endpoint needs the crate's `tls` feature.
//!
//! # The `metrics` facade
//!
//! Code already instrumented with the `metrics` crate lands in minutely by
//! installing one recorder ([`Builder::install`], or
//! `metrics::set_global_recorder(client.recorder())`): counters become
//! counters, gauges gauges, histograms distributions, labels tags. A handle
//! kept from `counter!(...)` records with a few atomic operations.
//!
//! ```no_run
//! minutely_client::Config::builder()
//!     .endpoint("http://127.0.0.1:8080")
//!     .push_key("my-push-key")
//!     .install()?;
//! let orders = metrics::counter!("orders", "region" => "eu");
//! orders.increment(1);
//! metrics::histogram!("order_item_count").record(3.0);
//! # Ok::<(), minutely_client::StartError>(())
//! ```

mod buffer;
mod client;
mod config;
pub mod probes;
mod recorder;
mod registry;
mod runtime;
mod series;

pub use client::Client;
pub use config::{Builder, Config, ConfigError};
pub use recorder::Recorder;

use std::sync::OnceLock;
use std::time::Duration;

/// Why a client did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the client is already started")]
    AlreadyStarted,
    #[error("could not start the client's thread: {0}")]
    Thread(std::io::Error),
    #[error("another `metrics` recorder is already installed")]
    RecorderAlreadySet,
}

/// What happened to recorded values so far (see [`Client::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Calls dropped: NaN or infinite values, bad names or tags, series
    /// over the limit.
    pub values_dropped: u64,
    /// Points the server accepted.
    pub points_sent: u64,
    /// Points the server rejected one by one (the answer says why; logged).
    pub points_rejected: u64,
    /// Points dropped unsent: buffer full, too old, or a push refused.
    pub points_dropped: u64,
    pub pushes_ok: u64,
    /// Failed push attempts (each retry counts).
    pub pushes_failed: u64,
    /// Pushes the server found too large (`413`, its limit set lower than
    /// the client's 5,000 points or 4 MiB), split in two and sent again.
    pub pushes_split: u64,
    /// Points waiting in the buffer.
    pub buffered_points: u64,
    /// Bytes (gzipped) waiting in the buffer, bounded by `max_buffer_bytes`.
    pub buffered_bytes: u64,
    /// Series this process has.
    pub series: u64,
}

static GLOBAL: OnceLock<Client> = OnceLock::new();

/// The process-wide client behind the free functions.
pub fn global() -> &'static Client {
    GLOBAL.get_or_init(Client::new)
}

/// Starts the global client: values recorded before are kept and pushed.
pub fn start(config: Config) -> Result<(), StartError> {
    global().start(config)
}

/// Sets a gauge of the global client (see [`Client::set_gauge`]).
#[inline]
pub fn set_gauge(name: &str, value: f64, tags: &[(&str, &str)]) {
    global().set_gauge(name, value, tags)
}

/// Adds to a counter of the global client (see [`Client::increment_counter`]).
#[inline]
pub fn increment_counter(name: &str, value: f64, tags: &[(&str, &str)]) {
    global().increment_counter(name, value, tags)
}

/// Adds an observation to a distribution of the global client (see
/// [`Client::add_distribution_value`]).
#[inline]
pub fn add_distribution_value(name: &str, value: f64, tags: &[(&str, &str)]) {
    global().add_distribution_value(name, value, tags)
}

/// Pushes everything recorded so far; `true` when it was all delivered
/// within `timeout`.
pub fn flush(timeout: Duration) -> bool {
    global().flush(timeout)
}

/// Pushes what is left (up to `timeout`) and stops the global client.
pub fn shutdown(timeout: Duration) -> bool {
    global().shutdown(timeout)
}

/// Logs a warning at most once per 10 s per call site, so a fault that
/// repeats on every call cannot flood the log (or recurse through a logger
/// that records metrics).
#[macro_export]
#[doc(hidden)]
macro_rules! warn_limited {
    ($($arg:tt)*) => {{
        static LAST: ::std::sync::atomic::AtomicI64 = ::std::sync::atomic::AtomicI64::new(i64::MIN);
        if $crate::__allow_log(&LAST) {
            ::tracing::warn!($($arg)*);
        }
    }};
}

#[doc(hidden)]
pub fn __allow_log(last: &std::sync::atomic::AtomicI64) -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    let now = series::now_ms();
    let prev = last.load(Relaxed);
    now.saturating_sub(prev) >= 10_000 && last.compare_exchange(prev, now, Relaxed, Relaxed).is_ok()
}
