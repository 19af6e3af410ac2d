//! StatsD/DogStatsD end to end: datagrams to the real binary's UDP and Unix
//! sockets, then queries, against values computed here.

mod common;
use common::*;
use serde_json::Value;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

fn statsd_addr(s: &Server) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = s.stdout.recv_timeout(left).expect("no statsd line");
        if let Some(a) = line.strip_prefix("minutely statsd listening on udp://") {
            return a.trim().to_string();
        }
    }
}

/// One bucket covering the last minutes and the next one.
fn window() -> (String, String, String) {
    let from = (now() as i64 / 60) * 60 - 240;
    (from.to_string(), (from + 420).to_string(), "420".into())
}

fn query_one(s: &Server, extra: &[(&str, &str)]) -> Option<f64> {
    let (from, to, step) = window();
    let mut params = vec![
        ("from", from.as_str()),
        ("to", to.as_str()),
        ("step", step.as_str()),
    ];
    params.extend_from_slice(extra);
    let (code, ans) = s.query(&params);
    if code != 200 {
        return None;
    }
    ans["series"][0]["points"][0][1].as_f64()
}

/// Polls until the query answers `want` (flushes happen every second).
fn expect(s: &Server, extra: &[(&str, &str)], want: f64, tolerance: f64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = query_one(s, extra);
        if let Some(g) = got {
            if (g - want).abs() <= tolerance {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{extra:?}: got {got:?}, want {want} ± {tolerance}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn metric_value(s: &Server, line_start: &str) -> f64 {
    s.get_text("/metrics")
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn every_type_lands_with_exact_sums() {
    let s = Server::start_with(&["--statsd", "127.0.0.1:0", "--statsd-env", "production"]);
    let addr = statsd_addr(&s);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    // Distribution values, some sampled; a malformed line in the middle of a
    // packet leaves the others alone.
    let values: Vec<f64> = (1..=200)
        .map(|i| (i * 37 % 1000) as f64 / 10.0 + 0.5)
        .collect();
    let mut weighted: Vec<(f64, f64)> = Vec::new();
    for chunk in values.chunks(20) {
        let mut packet = String::new();
        for (i, v) in chunk.iter().enumerate() {
            if i % 2 == 0 {
                packet.push_str(&format!("order_items:{v}|d|#region:eu\n"));
                weighted.push((*v, 1.0));
            } else {
                packet.push_str(&format!("order_items:{v}|d|@0.5|#region:eu\n"));
                weighted.push((*v, 2.0));
            }
        }
        packet.push_str("this is not statsd\ninvoices:1|c\ninvoices:3|c|@0.25\n");
        sock.send_to(packet.as_bytes(), &addr).unwrap();
    }
    sock.send_to(
        b"shoppers:10|g\nshoppers:+5|g\nshoppers:-3|g\nlatency:250|ms\nlatency:150|h",
        &addr,
    )
    .unwrap();
    sock.send_to(
        b"visitors:ann|s\nvisitors:bob|s\nvisitors:ann|s\nvisitors:cy|s|#x:y",
        &addr,
    )
    .unwrap();
    let env = ("env", "production");
    expect(
        &s,
        &[("metric", "invoices"), ("field", "sum"), env],
        10.0 * (1.0 + 12.0),
        0.0,
    );
    expect(
        &s,
        &[("metric", "shoppers"), ("field", "last"), env],
        12.0,
        0.0,
    );
    expect(
        &s,
        &[("metric", "shoppers"), ("field", "max"), env],
        15.0,
        0.0,
    );
    expect(
        &s,
        &[("metric", "latency"), ("field", "count"), env],
        2.0,
        0.0,
    );
    expect(
        &s,
        &[("metric", "latency"), ("field", "mean"), env],
        200.0,
        0.0,
    );
    expect(
        &s,
        &[
            ("metric", "visitors"),
            ("field", "sum"),
            ("tag", "x:*"),
            env,
        ],
        3.0,
        0.0,
    );

    // Distributions: count and sum weigh sampled values by 1/rate; the
    // percentiles are within 1% of the weighted values' own.
    let count: f64 = weighted.iter().map(|w| w.1).sum();
    let sum: f64 = weighted.iter().map(|w| w.0 * w.1).sum();
    let d = [("metric", "order_items"), ("tag", "region:eu"), env];
    expect(&s, &[&d[..], &[("field", "count")]].concat(), count, 0.0);
    expect(&s, &[&d[..], &[("field", "sum")]].concat(), sum, 1e-6 * sum);
    let mut expanded: Vec<f64> = Vec::new();
    for (v, w) in &weighted {
        for _ in 0..(*w as usize) {
            expanded.push(*v);
        }
    }
    for (field, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)] {
        let exact = exact_quantile(&expanded, q);
        expect(
            &s,
            &[&d[..], &[("field", field)]].concat(),
            exact,
            0.01 * exact + 1e-9,
        );
    }
    assert_eq!(
        metric_value(&s, "minutely_statsd_dropped_total{reason=\"malformed\"}"),
        10.0
    );
    assert_eq!(metric_value(&s, "minutely_statsd_packets_total"), 12.0);
}

#[test]
fn unix_socket_tag_routing_and_refusals() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("statsd.sock");
    let s = Server::start_with(&[
        "--statsd",
        "off",
        "--statsd-socket",
        path.to_str().unwrap(),
        "--statsd-app",
        "jobs",
        "--statsd-tag-routing",
    ]);
    let (code, ans) = s.request(
        "POST",
        "/api/v1/apps",
        ADMIN_KEY,
        Some(&serde_json::json!({"name": "shop"})),
    );
    assert!(code == 200 || code == 201, "{code} {ans}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(Instant::now() < deadline, "no socket file");
        std::thread::sleep(Duration::from_millis(50));
    }
    let sock = std::os::unix::net::UnixDatagram::unbound().unwrap();
    sock.send_to(
        b"runs:2|c\nruns:5|c|#app:shop,env:staging,queue:mail\nruns:7|c|#app:nosuchapp",
        &path,
    )
    .unwrap();
    let tags: Vec<String> = (0..17).map(|i| format!("k{i}:v")).collect();
    sock.send_to(
        format!("wide:1|c|#{}\nruns:oops|c\nruns:1|c|@2", tags.join(",")).as_bytes(),
        &path,
    )
    .unwrap();
    expect(
        &s,
        &[("metric", "runs"), ("field", "sum"), ("app", "jobs")],
        2.0,
        0.0,
    );
    expect(
        &s,
        &[
            ("metric", "runs"),
            ("field", "sum"),
            ("app", "shop"),
            ("env", "staging"),
            ("tag", "queue:mail"),
        ],
        5.0,
        0.0,
    );
    // A gauge under a counter's name is refused by the store, and counted.
    sock.send_to(b"runs:1|g", &path).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let reasons = [
        "unknown_app",
        "kind_conflict",
        "bad_tags",
        "bad_value",
        "bad_rate",
    ];
    loop {
        let counts: Vec<f64> = reasons
            .iter()
            .map(|r| {
                metric_value(
                    &s,
                    &format!("minutely_statsd_dropped_total{{reason=\"{r}\"}}"),
                )
            })
            .collect();
        if counts.iter().all(|c| *c == 1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "{reasons:?}: {counts:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, ans): (u16, Value) = s.query(&[("metric", "wide"), ("app", "jobs"), ("from", "-1h")]);
    assert!(
        ans["series"]
            .as_array()
            .into_iter()
            .flatten()
            .next()
            .is_none(),
        "{ans}"
    );
}

#[test]
fn a_burst_is_received_whole_and_a_stop_flushes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut s = Server::start_in(&dir, &["--statsd", "127.0.0.1:0"]);
    let addr = statsd_addr(&s);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    // 50,000 values in 2,500 datagrams sent as fast as the socket takes them.
    let line = "burst:1|c|#host:a\nburst:2|c|#host:b\n".repeat(10);
    for _ in 0..2_500 {
        sock.send_to(line.as_bytes(), &addr).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric_value(&s, "minutely_statsd_values_total") < 50_000.0 {
        assert!(
            Instant::now() < deadline,
            "received {}",
            metric_value(&s, "minutely_statsd_values_total")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A clean stop right away still writes the last second.
    s.stop();
    let s = Server::start_in(&dir, &["--statsd", "off"]);
    assert_eq!(
        query_one(&s, &[("metric", "burst"), ("field", "sum")]),
        Some(75_000.0)
    );
    assert_eq!(
        query_one(
            &s,
            &[("metric", "burst"), ("field", "sum"), ("tag", "host:a")]
        ),
        Some(25_000.0)
    );
}

#[test]
fn a_flush_larger_than_the_batch_limit_is_stored_in_parts() {
    let s = Server::start_with(&["--statsd", "127.0.0.1:0", "--max-points-per-batch", "2"]);
    let addr = statsd_addr(&s);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let packet: String = (0..7).map(|i| format!("parts:{i}|c|#n:{i}\n")).collect();
    sock.send_to(packet.as_bytes(), &addr).unwrap();
    expect(&s, &[("metric", "parts"), ("field", "sum")], 21.0, 0.0);
    assert_eq!(metric_value(&s, "minutely_statsd_points_stored_total"), 7.0);
}
