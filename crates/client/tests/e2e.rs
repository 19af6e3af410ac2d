//! The client against the real server binary: what is recorded lands with
//! exact sums and percentiles within 1%, from many threads, from probes,
//! through the `metrics` recorder, and after the server was away.

mod common;

use common::{assert_within_1pct, exact_quantile, values, Server};
use minutely_client::Client;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

const FLUSH: Duration = Duration::from_secs(20);
const QS: [(&str, f64); 5] = [
    ("p50", 0.5),
    ("p75", 0.75),
    ("p90", 0.9),
    ("p99", 0.99),
    ("p999", 0.999),
];

fn started(server: &Server) -> Client {
    let client = Client::new();
    client.start(server.config().build().unwrap()).unwrap();
    client
}

fn check_distribution(server: &Server, metric: &str, tags: &[(&str, &str)], vals: &[f64]) {
    assert_eq!(
        server.value(metric, "count", tags),
        Some(vals.len() as f64),
        "{metric} count"
    );
    let sum: f64 = vals.iter().sum();
    let got = server.value(metric, "sum", tags).unwrap();
    assert!(
        (got - sum).abs() <= 1e-9 * sum.abs(),
        "{metric} sum {got} vs {sum}"
    );
    let min = vals.iter().copied().fold(f64::INFINITY, f64::min);
    let max = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(server.value(metric, "min", tags), Some(min));
    assert_eq!(server.value(metric, "max", tags), Some(max));
    for (field, q) in QS {
        assert_within_1pct(
            metric,
            field,
            server.value(metric, field, tags),
            exact_quantile(vals, q),
        );
    }
}

#[test]
fn helpers_land_with_exact_sums_and_percentiles() {
    let server = Server::start();
    let client = started(&server);
    let eu = [("region", "eu")];
    for _ in 0..1000 {
        client.increment_counter("invoice_count", 1.0, &eu);
    }
    for _ in 0..4 {
        client.increment_counter("invoice_count", 0.25, &eu);
    }
    client.increment_counter("invoice_count", -3.0, &eu);
    client.increment_counter("invoice_count", 7.0, &[("region", "us")]);
    for v in [5.0, 1.0, 9.0, 4.0] {
        client.set_gauge("active_shoppers", v, &[("region", "eu"), ("shop", "main")]);
        std::thread::sleep(Duration::from_millis(10));
    }
    let vals = values(5_000, 7);
    for (i, v) in vals.iter().enumerate() {
        client.add_distribution_value("order_value", *v, &eu);
        if i % 1000 == 0 {
            // Spread the values over several pushes.
            std::thread::sleep(Duration::from_millis(60));
        }
    }
    // Dropped, not a panic: a NaN, a bad name, a bad tag.
    client.increment_counter("invoice_count", f64::NAN, &eu);
    client.set_gauge("bad name", 1.0, &[]);
    client.set_gauge("fine", 1.0, &[("bad key", "x")]);

    assert!(
        client.flush(FLUSH),
        "flush did not deliver: {:?}",
        client.stats()
    );
    let stats = client.stats();
    assert_eq!(
        (
            stats.values_dropped,
            stats.points_rejected,
            stats.points_dropped
        ),
        (3, 0, 0),
        "{stats:?}"
    );

    assert_eq!(server.value("invoice_count", "sum", &eu), Some(998.0));
    assert_eq!(
        server.value("invoice_count", "sum", &[("region", "us")]),
        Some(7.0)
    );
    let shop = [("shop", "main")];
    assert_eq!(server.value("active_shoppers", "last", &shop), Some(4.0));
    assert_eq!(server.value("active_shoppers", "min", &shop), Some(1.0));
    assert_eq!(server.value("active_shoppers", "max", &shop), Some(9.0));
    assert_eq!(server.value("active_shoppers", "mean", &shop), Some(4.75));
    check_distribution(&server, "order_value", &eu, &vals);
    assert!(client.shutdown(Duration::from_secs(5)));
}

#[test]
fn recorder_lands_counters_gauges_and_histograms() {
    let server = Server::start();
    let client = started(&server);
    let recorder = client.recorder();
    let vals = values(3_000, 11);
    metrics::with_local_recorder(&recorder, || {
        metrics::counter!("rec_hits", "route" => "/a").increment(3);
        let kept = metrics::counter!("rec_hits", "route" => "/a");
        kept.increment(4);
        metrics::counter!("rec_hits", "route" => "/b").increment(1);
        let conns = metrics::gauge!("rec_conns", "pool" => "db");
        conns.set(10.0);
        std::thread::sleep(Duration::from_millis(10));
        conns.increment(5.0);
        std::thread::sleep(Duration::from_millis(10));
        conns.decrement(2.0);
        let latency = metrics::histogram!("rec_latency", "route" => "/a");
        for v in &vals {
            latency.record(*v);
        }
        metrics::histogram!("rec_latency", "route" => "/a").record_many(0.5, 10);
    });
    // The helpers reach the same series as the recorder.
    client.increment_counter("rec_hits", 2.0, &[("route", "/a")]);
    assert!(client.flush(FLUSH), "{:?}", client.stats());

    assert_eq!(
        server.value("rec_hits", "sum", &[("route", "/a")]),
        Some(9.0)
    );
    assert_eq!(
        server.value("rec_hits", "sum", &[("route", "/b")]),
        Some(1.0)
    );
    let db = [("pool", "db")];
    assert_eq!(server.value("rec_conns", "last", &db), Some(13.0));
    assert_eq!(server.value("rec_conns", "min", &db), Some(10.0));
    assert_eq!(server.value("rec_conns", "max", &db), Some(15.0));
    let mut all = vals.clone();
    all.extend([0.5; 10]);
    check_distribution(&server, "rec_latency", &[("route", "/a")], &all);

    // Shutdown pushes what was recorded since the last push.
    client.increment_counter("rec_hits", 5.0, &[("route", "/a")]);
    assert!(client.shutdown(Duration::from_secs(10)));
    assert_eq!(
        server.value("rec_hits", "sum", &[("route", "/a")]),
        Some(14.0)
    );
}

#[test]
fn many_threads_record_at_once() {
    const THREADS: usize = 8;
    const CALLS: usize = 20_000;
    let server = Server::start();
    let client = started(&server);
    let recorder = client.recorder();
    let handle = metrics::with_local_recorder(&recorder, || metrics::counter!("mt_handle"));
    let histogram = metrics::with_local_recorder(&recorder, || metrics::histogram!("mt_hist"));
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (client, handle, histogram) = (&client, &handle, &histogram);
            s.spawn(move || {
                let tag = format!("{}", t % 2);
                for i in 0..CALLS {
                    client.increment_counter("mt_count", 1.0, &[("kind", "all")]);
                    client.increment_counter("mt_by_parity", 0.5, &[("parity", &tag)]);
                    client.add_distribution_value("mt_dist", (i % 100 + 1) as f64, &[]);
                    client.set_gauge("mt_gauge", t as f64, &[]);
                    handle.increment(1);
                    histogram.record((i % 1000 + 1) as f64);
                }
            });
        }
    });
    assert!(client.flush(FLUSH), "{:?}", client.stats());
    let n = (THREADS * CALLS) as f64;
    assert_eq!(server.value("mt_count", "sum", &[("kind", "all")]), Some(n));
    assert_eq!(
        server.value("mt_by_parity", "sum", &[("parity", "0")]),
        Some(n / 4.0)
    );
    assert_eq!(
        server.value("mt_by_parity", "sum", &[("parity", "1")]),
        Some(n / 4.0)
    );
    assert_eq!(server.value("mt_handle", "sum", &[]), Some(n));
    assert_eq!(server.value("mt_gauge", "min", &[]), Some(0.0));
    assert_eq!(
        server.value("mt_gauge", "max", &[]),
        Some((THREADS - 1) as f64)
    );
    let dist: Vec<f64> = (0..THREADS * CALLS)
        .map(|i| ((i % CALLS) % 100 + 1) as f64)
        .collect();
    check_distribution(&server, "mt_dist", &[], &dist);
    let hist: Vec<f64> = (0..THREADS * CALLS)
        .map(|i| ((i % CALLS) % 1000 + 1) as f64)
        .collect();
    check_distribution(&server, "mt_hist", &[], &hist);
    client.shutdown(Duration::from_secs(5));
}

#[test]
fn probes_run_repeatedly_and_a_panicking_probe_does_not_stop_the_others() {
    let server = Server::start();
    let client = Client::new();
    let config = server
        .config()
        .probe_interval(Duration::from_millis(200))
        .build()
        .unwrap();
    client.start(config).unwrap();

    let runs = Arc::new(AtomicU64::new(0));
    let (c, r) = (client.clone(), runs.clone());
    client.probes().register("counting", move || {
        r.fetch_add(1, SeqCst);
        c.increment_counter("probe_runs", 1.0, &[]);
    });
    let panics = Arc::new(AtomicU64::new(0));
    let p = panics.clone();
    client.probes().register("panicking", move || {
        p.fetch_add(1, SeqCst);
        panic!("this probe always fails");
    });
    let (in_flight, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (f, m) = (in_flight.clone(), most.clone());
    client.probes().register("slow", move || {
        let now = f.fetch_add(1, SeqCst) + 1;
        m.fetch_max(now, SeqCst);
        std::thread::sleep(Duration::from_millis(500));
        f.fetch_sub(1, SeqCst);
    });

    std::thread::sleep(Duration::from_millis(1_700));
    client.probes().clear();
    std::thread::sleep(Duration::from_millis(600));

    let (runs, panics) = (runs.load(SeqCst), panics.load(SeqCst));
    assert!(runs >= 3, "the counting probe ran {runs} times");
    assert!(panics >= 3, "the panicking probe ran {panics} times");
    assert_eq!(most.load(SeqCst), 1, "a running probe was started again");
    assert!(client.flush(FLUSH), "{:?}", client.stats());
    assert_eq!(server.value("probe_runs", "sum", &[]), Some(runs as f64));
    client.shutdown(Duration::from_secs(5));
}

#[test]
fn buffered_data_arrives_after_the_server_comes_back() {
    let mut server = Server::start();
    let client = started(&server);
    for _ in 0..10 {
        client.increment_counter("outage_count", 1.0, &[]);
    }
    assert!(client.flush(FLUSH), "{:?}", client.stats());
    assert_eq!(server.value("outage_count", "sum", &[]), Some(10.0));

    server.stop();
    let vals = values(2_000, 3);
    for (i, v) in vals.iter().enumerate() {
        client.increment_counter("outage_count", 1.0, &[]);
        client.add_distribution_value("outage_dist", *v, &[]);
        if i % 500 == 0 {
            std::thread::sleep(Duration::from_millis(150));
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let away = client.stats();
    assert!(
        away.pushes_failed > 0,
        "no push failed while the server was away: {away:?}"
    );
    assert!(
        !client.flush(Duration::from_millis(300)),
        "flush cannot deliver without a server"
    );

    server.restart();
    assert!(client.flush(FLUSH), "{:?}", client.stats());
    let stats = client.stats();
    assert_eq!(
        (
            stats.buffered_points,
            stats.points_dropped,
            stats.points_rejected
        ),
        (0, 0, 0),
        "{stats:?}"
    );
    assert_eq!(server.value("outage_count", "sum", &[]), Some(2_010.0));
    check_distribution(&server, "outage_dist", &[], &vals);
    client.shutdown(Duration::from_secs(5));
}

#[test]
fn a_full_buffer_drops_the_oldest_pushes_and_counts_them() {
    let mut server = Server::start();
    let client = Client::new();
    client.start(server.config().build().unwrap()).unwrap();
    client.increment_counter("warmup", 1.0, &[]);
    assert!(client.flush(FLUSH));
    server.stop();

    // The size of a push of one counter point with a name of this length.
    client.increment_counter("calib_00", 1.0, &[]);
    assert!(!client.flush(Duration::from_millis(200)));
    let one = client.stats().buffered_bytes;
    assert!(one > 0);
    client.shutdown(Duration::from_millis(100));

    // Room for one such push, not two.
    let config = server.config().max_buffer_bytes(one as usize * 3 / 2);
    client.start(config.build().unwrap()).unwrap();
    client.increment_counter("drop_old", 1.0, &[]);
    assert!(!client.flush(Duration::from_millis(200)));
    client.increment_counter("drop_new", 1.0, &[]);
    assert!(!client.flush(Duration::from_millis(200)));
    let stats = client.stats();
    assert!(stats.points_dropped >= 1, "{stats:?}");
    assert_eq!(stats.buffered_points, 1, "{stats:?}");

    server.restart();
    assert!(client.flush(FLUSH), "{:?}", client.stats());
    assert_eq!(server.value("drop_new", "sum", &[]), Some(1.0));
    assert_eq!(
        server.value("drop_old", "sum", &[]),
        None,
        "the oldest push was dropped"
    );
    client.shutdown(Duration::from_secs(5));
}

/// A server that takes fewer points per push than the client sends: the
/// client splits each refused push until it fits, and every point lands
/// once.
#[test]
fn pushes_too_large_for_the_server_are_split_until_they_fit() {
    let server = Server::start_with(&["--max-points-per-batch", "7"]);
    let client = Client::new();
    // A long interval: all 50 series go out in one push of 50 points.
    client
        .start(
            server
                .config()
                .push_interval(Duration::from_secs(60))
                .build()
                .unwrap(),
        )
        .unwrap();
    for i in 0..50 {
        let shop = format!("shop{i}");
        client.increment_counter("split_count", (i + 1) as f64, &[("shop", &shop)]);
    }
    assert!(client.flush(FLUSH));
    let stats = client.stats();
    assert_eq!(stats.points_sent, 50, "{stats:?}");
    assert_eq!(stats.points_dropped, 0, "{stats:?}");
    // 50 -> 25+25 -> 12+13 ... -> pieces of at most 7: 7 splits of 2^k.
    assert!(stats.pushes_split >= 7, "{stats:?}");
    for i in [0, 24, 49] {
        let shop = format!("shop{i}");
        assert_eq!(
            server.value("split_count", "sum", &[("shop", &shop)]),
            Some((i + 1) as f64)
        );
    }
}

/// Dropping the last clone of a started client pushes what it recorded and
/// stops its threads.
#[test]
fn a_dropped_client_pushes_what_it_recorded_and_stops_its_threads() {
    fn threads() -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter(|t| {
                let comm = t.as_ref().unwrap().path().join("comm");
                std::fs::read_to_string(comm).is_ok_and(|c| c.starts_with("minutely-"))
            })
            .count()
    }
    // A new thread names itself once it runs: wait a little for it.
    fn threads_become(n: usize) -> usize {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while threads() != n && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        threads()
    }
    let server = Server::start();
    let before = threads();
    let client = Client::new();
    client
        .start(
            server
                .config()
                .push_interval(Duration::from_secs(60))
                .build()
                .unwrap(),
        )
        .unwrap();
    let clone = client.clone();
    assert_eq!(threads_become(before + 2), before + 2, "ticker and sender");
    client.increment_counter("dropped_count", 3.0, &[]);
    drop(client);
    assert_eq!(threads(), before + 2, "a clone still runs it");
    clone.increment_counter("dropped_count", 4.0, &[]);
    drop(clone);
    assert_eq!(threads(), before, "threads left after the last drop");
    assert_eq!(server.value("dropped_count", "sum", &[]), Some(7.0));
}

/// Resident memory of this process in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// The server away for a long time (`MINUTELY_OUTAGE_SECS`, 20 s by default
/// in CI; 600 s is the documented full run) while four application threads
/// record without pause: calls never wait on the network, the buffer and
/// the process stay within their bounds (the oldest pushes are dropped and
/// counted), and once the server is back what is buffered arrives.
#[test]
fn a_long_outage_keeps_threads_running_and_memory_bounded() {
    let secs: u64 = std::env::var("MINUTELY_OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    const BUFFER: usize = 64 << 10;
    const PUSH_TIMEOUT: Duration = Duration::from_secs(10);
    let mut server = Server::start();
    let client = Client::new();
    client
        .start(
            server
                .config()
                .max_buffer_bytes(BUFFER)
                .timeout(PUSH_TIMEOUT)
                .build()
                .unwrap(),
        )
        .unwrap();
    client.increment_counter("long_outage_warmup", 1.0, &[]);
    assert!(client.flush(FLUSH));
    server.stop();

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let (client, stop) = (client.clone(), stop.clone());
            std::thread::spawn(move || {
                let (mut calls, mut slowest) = (0u64, Duration::ZERO);
                let host = format!("h{t}");
                while !stop.load(SeqCst) {
                    let started = std::time::Instant::now();
                    // A thousand gauge series per thread, all kept busy.
                    let order = format!("o{}", calls % 1_000);
                    client.increment_counter("long_outage_count", 1.0, &[("host", &host)]);
                    client.add_distribution_value("long_outage_ms", (calls % 997) as f64, &[]);
                    client.set_gauge("long_outage_gauge", calls as f64, &[("order", &order)]);
                    slowest = slowest.max(started.elapsed());
                    calls += 1;
                    if calls % 1_000 == 0 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                (calls, slowest)
            })
        })
        .collect();
    // Memory after the first seconds (series made, buffer filling) and at
    // the end: the growth is bounded by the buffer, not by time.
    std::thread::sleep(Duration::from_secs(secs.min(5)));
    let early = rss();
    let mut peak_buffer = 0;
    let end = std::time::Instant::now() + Duration::from_secs(secs.saturating_sub(5));
    while std::time::Instant::now() < end {
        // While the server is away the client makes a push once a minute;
        // asking for one (as an application's flush does) fills the buffer
        // within the short CI run too.
        let _ = client.flush(Duration::ZERO);
        peak_buffer = peak_buffer.max(client.stats().buffered_bytes);
        std::thread::sleep(Duration::from_millis(200));
    }
    let late = rss();
    stop.store(true, SeqCst);
    let results: Vec<(u64, Duration)> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let stats = client.stats();
    assert!(peak_buffer <= BUFFER as u64, "{peak_buffer} {stats:?}");
    assert!(
        stats.points_dropped > 0,
        "the bound was never reached: {stats:?}"
    );
    assert!(
        late <= early + 3 * BUFFER as u64 + (16 << 20),
        "memory grew from {early} to {late} bytes during the outage"
    );
    for (calls, slowest) in &results {
        assert!(*calls > 0);
        // A call that waited on a push would take up to the push timeout.
        // Half of it catches that blocking, not slowness on a loaded
        // machine (a call once took 0.59 s there).
        assert!(*slowest < PUSH_TIMEOUT / 2, "{slowest:?}");
    }

    // Back: what is still buffered arrives, and new values too.
    server.restart();
    client.increment_counter("long_outage_after", 1.0, &[]);
    assert!(client.flush(FLUSH), "{:?}", client.stats());
    let stats = client.stats();
    assert_eq!(
        (stats.buffered_points, stats.values_dropped),
        (0, 0),
        "{stats:?}"
    );
    assert_eq!(server.value("long_outage_after", "sum", &[]), Some(1.0));
    let got = server.value("long_outage_count", "sum", &[("host", "h0")]);
    assert!(got.is_some_and(|v| v > 0.0), "{got:?}");
    client.shutdown(Duration::from_secs(5));
}
