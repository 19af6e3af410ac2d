//! The server's own metrics, in Prometheus text format at `GET /metrics`:
//! points accepted and rejected by reason, push and query latency, series,
//! store size. Nothing is dropped without a count here.

use crate::Shared;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use minutely_store::Rejected;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Latency bucket bounds in seconds: from a cached query to a slow fsync.
const BOUNDS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; BOUNDS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, b) in BOUNDS.iter().enumerate() {
            if secs <= *b {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, b) in BOUNDS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{b}\"}} {}",
                self.buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

#[derive(Default)]
pub struct SelfMetrics {
    pub points_accepted: AtomicU64,
    pub duplicate_batches: AtomicU64,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    push_requests: Mutex<BTreeMap<u16, u64>>,
    pub push_latency: Histogram,
    pub query_latency: Histogram,
    /// StatsD and OTLP counters.
    pub ingest: crate::ingest::IngestMetrics,
}

impl SelfMetrics {
    pub fn count_points(&self, accepted: usize, rejected: &[Rejected]) {
        self.points_accepted
            .fetch_add(accepted as u64, Ordering::Relaxed);
        if !rejected.is_empty() {
            let mut map = self.rejected.lock().unwrap_or_else(|p| p.into_inner());
            for r in rejected {
                *map.entry(r.reason).or_default() += 1;
            }
        }
    }

    pub fn count_duplicate(&self) {
        self.duplicate_batches.fetch_add(1, Ordering::Relaxed);
    }

    pub fn observe_push(&self, d: Duration, status: u16) {
        self.push_latency.observe(d);
        *self
            .push_requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(status)
            .or_default() += 1;
    }

    pub fn observe_query(&self, d: Duration) {
        self.query_latency.observe(d);
    }
}

fn gauge(out: &mut String, name: &str, help: &str, kind: &str, value: impl std::fmt::Display) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

pub async fn render(State(st): State<Shared>) -> impl IntoResponse {
    let m = &st.metrics;
    let stats = st.store.stats();
    let mut out = String::new();
    gauge(
        &mut out,
        "minutely_points_accepted_total",
        "Points stored.",
        "counter",
        m.points_accepted.load(Ordering::Relaxed),
    );
    let _ = writeln!(out, "# HELP minutely_points_rejected_total Points refused, by reason.\n# TYPE minutely_points_rejected_total counter");
    for (reason, n) in m.rejected.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        let _ = writeln!(
            out,
            "minutely_points_rejected_total{{reason=\"{reason}\"}} {n}"
        );
    }
    gauge(
        &mut out,
        "minutely_duplicate_batches_total",
        "Pushes whose batch key was already stored.",
        "counter",
        m.duplicate_batches.load(Ordering::Relaxed),
    );
    let _ = writeln!(out, "# HELP minutely_push_requests_total Push requests, by HTTP status.\n# TYPE minutely_push_requests_total counter");
    for (status, n) in m
        .push_requests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
    {
        let _ = writeln!(
            out,
            "minutely_push_requests_total{{status=\"{status}\"}} {n}"
        );
    }
    m.push_latency.render(
        "minutely_push_duration_seconds",
        "Push latency, including the fsync.",
        &mut out,
    );
    m.query_latency.render(
        "minutely_query_duration_seconds",
        "Query request latency.",
        &mut out,
    );
    gauge(
        &mut out,
        "minutely_series",
        "Series known.",
        "gauge",
        stats.series,
    );
    gauge(
        &mut out,
        "minutely_apps",
        "Apps with series.",
        "gauge",
        stats.apps,
    );
    gauge(
        &mut out,
        "minutely_store_bytes",
        "Bytes on disk (database and log).",
        "gauge",
        stats.disk_bytes,
    );
    gauge(
        &mut out,
        "minutely_wal_bytes",
        "Bytes in the write-ahead log.",
        "gauge",
        stats.wal_bytes,
    );
    gauge(
        &mut out,
        "minutely_open_minutes",
        "Series-minutes in memory awaiting a checkpoint.",
        "gauge",
        stats.open_minutes,
    );
    gauge(
        &mut out,
        "minutely_checkpoints_total",
        "Checkpoints completed.",
        "counter",
        stats.checkpoints,
    );
    gauge(
        &mut out,
        "minutely_checkpoint_failures_total",
        "Checkpoints that failed (retried with backoff; see the log).",
        "counter",
        stats.checkpoint_failures,
    );
    gauge(
        &mut out,
        "minutely_wal_sync_failures_total",
        "Background syncs of the write-ahead log that failed (see the log).",
        "counter",
        stats.wal_sync_failures,
    );
    gauge(
        &mut out,
        "minutely_last_checkpoint_seconds",
        "Duration of the last checkpoint.",
        "gauge",
        stats.last_checkpoint_secs,
    );
    m.ingest.render(&mut out);
    st.alerts.render(&mut out);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
