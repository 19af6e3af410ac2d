//! Scale-out end to end: two ClickHouse servers as two shards under a
//! Distributed table, two minutely servers over them, and an embedded
//! minutely fed the same pushes as the reference.
//!
//! Needs a ClickHouse server binary (Debian's `clickhouse-server`); without
//! one the tests fail unless `MINUTELY_SKIP_CLICKHOUSE=1`.

mod common;
#[path = "../../store-clickhouse/tests/support/launcher.rs"]
mod launcher;

use common::*;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const HOSTILE: &str = r#"it's "quoted" \ back\\slash'); DROP TABLE minutely.points; -- SELECT"#;

fn url(hosts: &[&launcher::ClickHouse]) -> String {
    let hosts: Vec<String> = hosts.iter().map(|c| c.host()).collect();
    format!(
        "clickhouse://{}/minutely?cluster={}",
        hosts.join(","),
        launcher::CLUSTER
    )
}

fn serve_on(store: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--store", store, "--statsd", "off"];
    args.extend_from_slice(extra);
    Server::start_with(&args)
}

/// One batch: an hour of minutes, every writer touching the same series
/// and minutes with values of its own.
fn batch(k: usize, t0: i64) -> Vec<Value> {
    let mut pts = Vec::new();
    for m in 0..60i64 {
        let ts = (t0 + m * 60) as f64 + k as f64 * 3.0 + 1.0;
        let region = ["eu", "us", HOSTILE][(m as usize + k) % 3];
        pts.push(
            json!({"kind": "counter", "name": "orders", "value": (m % 4 + 1 + k as i64),
                        "tags": {"region": region}, "ts": ts}),
        );
        pts.push(json!({"kind": "gauge", "name": "queue", "value": ((m * 7 + k as i64) % 13) as f64 * 0.5,
                        "tags": {"host": "web-1"}, "ts": ts}));
        for j in 0..5i64 {
            let v = 1.0 + ((m * 31 + j * 17 + k as i64 * 5) % 500) as f64 * 0.25;
            pts.push(json!({"kind": "distribution", "name": "latency", "value": v, "ts": ts + j as f64 * 0.1}));
        }
    }
    pts
}

fn query(
    s: &Server,
    metric: &str,
    field: &str,
    from: i64,
    to: i64,
    step: i64,
    extra: &[(&str, &str)],
) -> Value {
    let (from, to, step) = (from.to_string(), to.to_string(), step.to_string());
    let mut params = vec![
        ("metric", metric),
        ("field", field),
        ("from", &from),
        ("to", &to),
        ("step", &step),
        ("env", "prod"),
    ];
    params.extend_from_slice(extra);
    let (code, ans) = s.query(&params);
    assert_eq!(code, 200, "{metric} {field}: {ans}");
    ans
}

/// Metric, field and extra query parameters.
type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

#[test]
fn two_servers_over_two_shards_answer_like_the_embedded_store() {
    let Some((c1, c2)) = launcher::pair() else {
        return;
    };
    // Each server lists both nodes, in a different order.
    let a = serve_on(&url(&[&c1, &c2]), &[]);
    let b = serve_on(&url(&[&c2, &c1]), &["--alerts", "off"]);
    let e = Server::start_with(&["--statsd", "off"]);
    let t0 = past_hour();
    for k in 0..6 {
        let body = json!({"env": "prod", "batch": format!("b{k}"), "points": batch(k, t0)});
        let (first, other) = if k % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let (code, ans) = first.push(&body);
        assert_eq!((code, ans.get("duplicate")), (200, None), "{ans}");
        assert_eq!(e.push(&body).0, 200);
        if k == 0 {
            // The client missed the answer and retries through the other server.
            let (code, again) = other.push(&body);
            assert_eq!((code, &again["duplicate"]), (200, &json!(true)), "{again}");
            assert_eq!(again["accepted"], ans["accepted"]);
        }
    }
    // Both shards hold part of the points.
    for c in [&c1, &c2] {
        let rows: u64 = c
            .sql("SELECT count() FROM minutely.points_local")
            .trim()
            .parse()
            .unwrap();
        assert!(rows > 0, "a shard has no rows");
    }
    let (from, to) = (t0, t0 + 3_600);
    let cases: &[Case] = &[
        ("orders", "sum", &[("group_by", "region")]),
        ("orders", "rate", &[]),
        ("queue", "last", &[]),
        ("queue", "mean", &[]),
        ("queue", "min", &[]),
        ("queue", "max", &[]),
        ("latency", "count", &[]),
        ("latency", "sum", &[]),
        ("latency", "p50", &[]),
        ("latency", "p99", &[]),
        ("latency", "max", &[]),
    ];
    for (metric, field, extra) in cases {
        for step in [60, 600, 3_600] {
            let want = query(&e, metric, field, from, to, step, extra);
            assert!(want["series"][0]["points"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| !p[1].is_null()));
            for s in [&a, &b] {
                assert_eq!(
                    query(s, metric, field, from, to, step, extra),
                    want,
                    "{metric} {field} step {step}"
                );
            }
        }
    }
    // Exact counters and percentiles within 1% of the exact values.
    let all: Vec<Value> = (0..6).flat_map(|k| batch(k, t0)).collect();
    let orders: f64 = all
        .iter()
        .filter(|p| p["name"] == "orders")
        .map(|p| p["value"].as_f64().unwrap())
        .sum();
    let total = query(&b, "orders", "sum", from, to, 3_600, &[]);
    assert_eq!(points(&total["series"][0]), vec![(t0, Some(orders))]);
    let lat: Vec<f64> = all
        .iter()
        .filter(|p| p["name"] == "latency")
        .map(|p| p["value"].as_f64().unwrap())
        .collect();
    for (field, q) in [("p50", 0.5), ("p99", 0.99)] {
        let got = points(&query(&a, "latency", field, from, to, 3_600, &[])["series"][0])[0]
            .1
            .unwrap();
        let want = exact_quantile(&lat, q);
        assert!(
            (got - want).abs() <= 0.01 * want,
            "{field}: {got} vs {want}"
        );
    }
    // The hostile tag value round-trips unchanged, as a filter too.
    let filtered = query(
        &b,
        "orders",
        "sum",
        from,
        to,
        3_600,
        &[
            ("tag", &format!("region:{HOSTILE}")),
            ("group_by", "region"),
        ],
    );
    assert_eq!(
        filtered["series"].as_array().unwrap().len(),
        1,
        "{filtered}"
    );
    assert_eq!(filtered["series"][0]["tags"]["region"], HOSTILE);
    assert_eq!(
        filtered,
        query(
            &e,
            "orders",
            "sum",
            from,
            to,
            3_600,
            &[
                ("tag", &format!("region:{HOSTILE}")),
                ("group_by", "region")
            ]
        )
    );
    let catalogue = |s: &Server| s.request("GET", "/api/v1/metrics?env=prod", ADMIN_KEY, None);
    let (code, cat) = catalogue(&a);
    assert_eq!(code, 200);
    assert_eq!(cat, catalogue(&e).1);
    assert!(cat
        .to_string()
        .contains(&serde_json::to_string(HOSTILE).unwrap()[1..20]));

    // A key made on one server works on the other; revoked, it stops.
    let (code, made) = a.request(
        "POST",
        "/api/v1/apps/default/keys",
        ADMIN_KEY,
        Some(&json!({"scope": "read", "name": "ops"})),
    );
    assert_eq!(code, 201, "{made}");
    let secret = made["key"].as_str().unwrap().to_string();
    let read_on_b = || {
        b.query_with(
            &secret,
            &[
                ("metric", "orders"),
                ("field", "sum"),
                ("from", "-1h"),
                ("env", "prod"),
            ],
        )
        .0
    };
    wait_for(
        || read_on_b() == 200,
        "the new key to work on the other server",
    );
    let path = format!("/api/v1/apps/default/keys/{}", made["id"].as_str().unwrap());
    assert_eq!(a.request("DELETE", &path, ADMIN_KEY, None).0, 204);
    wait_for(
        || read_on_b() == 401,
        "the revoked key to stop on the other server",
    );

    // Definitions written through one server are read through the other.
    let yaml = "name: orders stopped\nmetric: orders\ncondition: {op: '<', threshold: 1}\nwarmup_minutes: 15\nno_data: alert\n";
    let put = ureq::put(&format!("{}/api/v1/alerts/orders", a.url))
        .set("Authorization", &format!("Bearer {ADMIN_KEY}"))
        .set("Content-Type", "application/yaml")
        .send_string(yaml)
        .unwrap();
    assert_eq!(put.status(), 201);
    let (code, alert) = b.request("GET", "/api/v1/alerts/orders", ADMIN_KEY, None);
    assert_eq!(
        (code, &alert["name"]),
        (200, &json!("orders stopped")),
        "{alert}"
    );
    assert_eq!(
        b.request("DELETE", "/api/v1/alerts/orders", ADMIN_KEY, None)
            .0,
        204
    );
    assert_eq!(
        a.request("GET", "/api/v1/alerts/orders", ADMIN_KEY, None).0,
        404
    );
}

fn wait_for(mut ok: impl FnMut() -> bool, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// Pushes without panicking on a dead server: `None` is no answer.
fn try_push(url: &str, body: &Value) -> Option<u16> {
    match ureq::post(&format!("{url}/api/v1/push"))
        .set("Authorization", &format!("Bearer {PUSH_KEY}"))
        .send_json(body.clone())
    {
        Ok(r) => Some(r.status()),
        Err(ureq::Error::Status(code, _)) => Some(code),
        Err(_) => None,
    }
}

#[test]
fn killing_a_server_mid_load_loses_nothing_acknowledged() {
    let Some((c1, c2)) = launcher::pair() else {
        return;
    };
    let a = serve_on(&url(&[&c1, &c2]), &[]);
    let mut b = serve_on(&url(&[&c2, &c1]), &["--alerts", "off"]);
    let t0 = past_hour();
    let body = move |i: usize| {
        let pts: Vec<Value> = (0..50)
            .map(|j| json!({"kind": "counter", "name": "load", "value": 1, "tags": {"n": (j % 5).to_string()},
                            "ts": (t0 + ((i * 50 + j) % 3_600) as i64) as f64}))
            .collect();
        json!({"env": "prod", "batch": format!("load-{i}"), "points": pts})
    };
    let acked = Arc::new(AtomicUsize::new(0));
    let pusher = {
        let (url, acked) = (b.url.clone(), acked.clone());
        std::thread::spawn(move || {
            for i in 0.. {
                match try_push(&url, &body(i)) {
                    Some(200) => acked.store(i + 1, Ordering::SeqCst),
                    Some(code) => panic!("push {i} answered {code}"),
                    // The server died: this batch is unanswered.
                    None => return i,
                }
            }
            unreachable!()
        })
    };
    wait_for(
        || acked.load(Ordering::SeqCst) >= 20,
        "pushes to be acknowledged",
    );
    b.kill9();
    let unanswered = pusher.join().unwrap();
    let acked = acked.load(Ordering::SeqCst);
    assert_eq!(unanswered, acked);
    let sum = |s: &Server| {
        let ans = query(s, "load", "sum", t0, t0 + 3_600, 3_600, &[]);
        points(&ans["series"][0])[0].1.unwrap_or(0.0)
    };
    let seen = sum(&a);
    assert!(
        seen >= (acked * 50) as f64 && seen <= ((acked + 1) * 50) as f64,
        "{seen} for {acked} acknowledged batches"
    );
    // The client retries the unanswered batch through the live server: every
    // batch then counts exactly once, whether or not the dead server stored it.
    assert_eq!(try_push(&a.url, &body(unanswered)), Some(200));
    assert_eq!(sum(&a), ((acked + 1) * 50) as f64);
}
