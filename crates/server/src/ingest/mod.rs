//! Ingestion from other protocols: StatsD/DogStatsD over UDP and Unix
//! datagram sockets ([`statsd`]) and OpenTelemetry OTLP/HTTP ([`otlp`]).
//!
//! Each path is a chain: socket or HTTP body -> pure parser -> points (for
//! StatsD through a per-minute aggregator) -> `Store::push`. Every line,
//! data point or datagram that does not make it is counted by reason in
//! [`IngestMetrics`], shown on `/metrics`.

pub mod otlp;
pub mod statsd;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Counters of the ingestion paths.
#[derive(Default)]
pub struct IngestMetrics {
    statsd_packets: AtomicU64,
    statsd_bytes: AtomicU64,
    statsd_values: AtomicU64,
    statsd_stored: AtomicU64,
    statsd_dropped: Mutex<BTreeMap<&'static str, u64>>,
    udp_port: AtomicU64,
    otlp_requests: Mutex<BTreeMap<u16, u64>>,
    otlp_accepted: AtomicU64,
    otlp_rejected: Mutex<BTreeMap<&'static str, u64>>,
    otlp_skipped: Mutex<BTreeMap<&'static str, u64>>,
}

fn add(map: &Mutex<BTreeMap<&'static str, u64>>, reason: &'static str, n: u64) {
    *map.lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(reason)
        .or_default() += n;
}

impl IngestMetrics {
    pub fn statsd_drop(&self, reason: &'static str, n: u64) {
        add(&self.statsd_dropped, reason, n);
    }

    pub fn statsd_stored(&self, n: u64) {
        self.statsd_stored.fetch_add(n, Ordering::Relaxed);
    }

    pub fn set_udp_port(&self, port: u16) {
        self.udp_port.store(port as u64, Ordering::Relaxed);
    }

    pub fn otlp_request(&self, status: u16) {
        *self
            .otlp_requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(status)
            .or_default() += 1;
    }

    pub fn otlp_points(&self, accepted: u64, rejected: &[(&'static str, u64)]) {
        self.otlp_accepted.fetch_add(accepted, Ordering::Relaxed);
        for (reason, n) in rejected {
            add(&self.otlp_rejected, reason, *n);
        }
    }

    pub fn otlp_skipped(&self, reason: &'static str, n: u64) {
        add(&self.otlp_skipped, reason, n);
    }

    /// Appends the ingestion metrics in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        let labelled =
            |out: &mut String, name: &str, help: &str, label: &str, rows: Vec<(String, u64)>| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
                for (l, v) in rows {
                    let _ = writeln!(out, "{name}{{{label}=\"{l}\"}} {v}");
                }
            };
        let rows = |m: &Mutex<BTreeMap<&'static str, u64>>| {
            m.lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect::<Vec<_>>()
        };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        counter(
            out,
            "minutely_statsd_packets_total",
            "StatsD datagrams received.",
            load(&self.statsd_packets),
        );
        counter(
            out,
            "minutely_statsd_bytes_total",
            "Bytes of StatsD datagrams received.",
            load(&self.statsd_bytes),
        );
        counter(
            out,
            "minutely_statsd_values_total",
            "StatsD values taken into minute aggregates.",
            load(&self.statsd_values),
        );
        counter(
            out,
            "minutely_statsd_points_stored_total",
            "Minute aggregates from StatsD written to the store.",
            load(&self.statsd_stored),
        );
        labelled(
            out,
            "minutely_statsd_dropped_total",
            "StatsD lines, datagrams or aggregates dropped, by reason.",
            "reason",
            rows(&self.statsd_dropped),
        );
        let port = load(&self.udp_port);
        if port != 0 {
            if let Some(drops) = kernel_udp_drops(port as u16) {
                counter(out, "minutely_statsd_kernel_drops_total", "Datagrams the kernel dropped on the StatsD UDP socket (receive buffer full), from /proc/net/udp.", drops);
            }
        }
        let requests = self
            .otlp_requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        labelled(
            out,
            "minutely_otlp_requests_total",
            "OTLP/HTTP export requests, by HTTP status.",
            "status",
            requests,
        );
        counter(
            out,
            "minutely_otlp_points_accepted_total",
            "OTLP data points stored.",
            load(&self.otlp_accepted),
        );
        labelled(
            out,
            "minutely_otlp_points_rejected_total",
            "OTLP data points refused, by reason.",
            "reason",
            rows(&self.otlp_rejected),
        );
        labelled(out, "minutely_otlp_points_skipped_total", "OTLP data points that stored nothing by design: a cumulative stream's baseline, a repeated point, a point without a recorded value.", "reason", rows(&self.otlp_skipped));
    }
}

/// Sums the `drops` column of /proc/net/udp and udp6 for sockets bound to `port`.
fn kernel_udp_drops(port: u16) -> Option<u64> {
    let want = format!(":{port:04X}");
    let mut total = None;
    for file in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() >= 13 && cols[1].ends_with(&want) {
                if let Ok(d) = cols[cols.len() - 1].parse::<u64>() {
                    *total.get_or_insert(0) += d;
                }
            }
        }
    }
    total
}

/// Per-packet tallies, published to [`IngestMetrics`] in one go.
#[derive(Default)]
pub(crate) struct LineCounts {
    pub packets: u64,
    pub bytes: u64,
    values: u64,
    drops: Vec<(&'static str, u64)>,
}

impl LineCounts {
    pub fn add(&mut self, outcome: statsd::aggregate::Outcome) {
        match outcome {
            Ok(n) => self.values += n as u64,
            Err(reason) => self.drop(reason),
        }
    }

    pub fn drop(&mut self, reason: &'static str) {
        match self.drops.iter_mut().find(|d| d.0 == reason) {
            Some(d) => d.1 += 1,
            None => self.drops.push((reason, 1)),
        }
    }

    pub fn publish_statsd(&mut self, m: &IngestMetrics) {
        m.statsd_packets.fetch_add(self.packets, Ordering::Relaxed);
        m.statsd_bytes.fetch_add(self.bytes, Ordering::Relaxed);
        m.statsd_values.fetch_add(self.values, Ordering::Relaxed);
        for (reason, n) in self.drops.drain(..) {
            m.statsd_drop(reason, n);
        }
        self.packets = 0;
        self.bytes = 0;
        self.values = 0;
    }
}
