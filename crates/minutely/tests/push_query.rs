//! Push then query every field of every kind against values computed here,
//! independently of the server.

mod common;
use common::*;
use serde_json::{json, Value};

/// Deterministic values without a random crate: a fixed LCG.
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((s >> 33) % 100_000) as f64 / 100.0 + 0.01
        })
        .collect()
}

fn one(answer: &Value) -> Vec<(i64, Option<f64>)> {
    assert_eq!(answer["series"].as_array().unwrap().len(), 1, "{answer}");
    points(&answer["series"][0])
}

#[test]
fn every_field_of_every_kind_per_minute() {
    let s = Server::start();
    let t0 = past_hour();
    // Three minutes of data; per minute 50 values of each kind at spread seconds.
    let mut pts = Vec::new();
    /// Per minute: the values, and the gauge's (ts, value) samples.
    type Minute = (Vec<f64>, Vec<(f64, f64)>);
    let mut expect: Vec<Minute> = Vec::new();
    for m in 0..3 {
        let vals = values(50, 7 + m as u64);
        let mut gauge = Vec::new();
        for (i, v) in vals.iter().enumerate() {
            let ts = (t0 + m * 60) as f64 + i as f64 * 1.1;
            pts.push(json!({"kind": "counter", "name": "invoice_count", "value": v, "ts": ts}));
            pts.push(
                json!({"kind": "distribution", "name": "order_item_count", "value": v, "ts": ts}),
            );
            // Gauge values pushed out of time order: last is by timestamp.
            let gts = (t0 + m * 60) as f64 + 59.0 - i as f64;
            pts.push(json!({"kind": "gauge", "name": "active_shoppers", "value": v, "ts": gts}));
            gauge.push((gts, *v));
        }
        expect.push((vals, gauge));
    }
    let (code, ans) = s.push(&json!({"env": "production", "points": pts}));
    assert_eq!(code, 200, "{ans}");
    assert_eq!(ans["accepted"], 450);
    assert_eq!(ans["rejected"], json!([]));

    let from = t0.to_string();
    let to = (t0 + 180).to_string();
    let q = |metric: &str, field: &str| {
        let (code, ans) = s.query(&[
            ("metric", metric),
            ("field", field),
            ("from", &from),
            ("to", &to),
            ("step", "60"),
            ("env", "production"),
        ]);
        assert_eq!(code, 200, "{metric} {field}: {ans}");
        assert_eq!(ans["step"], 60);
        one(&ans)
    };
    let check =
        |got: Vec<(i64, Option<f64>)>, want: &dyn Fn(usize) -> f64, rel: f64, what: &str| {
            assert_eq!(got.len(), 3, "{what}");
            for (m, (ts, v)) in got.into_iter().enumerate() {
                assert_eq!(ts, t0 + m as i64 * 60, "{what}");
                let (v, w) = (v.unwrap(), want(m));
                assert!(
                    (v - w).abs() <= rel * w.abs() + 1e-9,
                    "{what} minute {m}: got {v}, want {w}"
                );
            }
        };
    let sum = |m: usize| expect[m].0.iter().sum::<f64>();
    check(q("invoice_count", "sum"), &sum, 1e-12, "counter sum");
    check(
        q("invoice_count", "rate"),
        &|m| sum(m) / 60.0,
        1e-12,
        "counter rate",
    );
    check(q("order_item_count", "count"), &|_| 50.0, 0.0, "dist count");
    check(q("order_item_count", "sum"), &sum, 1e-12, "dist sum");
    check(
        q("order_item_count", "mean"),
        &|m| sum(m) / 50.0,
        1e-12,
        "dist mean",
    );
    check(
        q("order_item_count", "min"),
        &|m| expect[m].0.iter().copied().fold(f64::MAX, f64::min),
        0.0,
        "dist min",
    );
    check(
        q("order_item_count", "max"),
        &|m| expect[m].0.iter().copied().fold(f64::MIN, f64::max),
        0.0,
        "dist max",
    );
    for (field, qv) in [
        ("p50", 0.5),
        ("p75", 0.75),
        ("p90", 0.9),
        ("p95", 0.95),
        ("p99", 0.99),
        ("p999", 0.999),
        ("p10", 0.1),
    ] {
        check(
            q("order_item_count", field),
            &|m| exact_quantile(&expect[m].0, qv),
            0.01,
            field,
        );
    }
    let last = |m: usize| {
        expect[m]
            .1
            .iter()
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap()
            .1
    };
    check(q("active_shoppers", "last"), &last, 0.0, "gauge last");
    check(
        q("active_shoppers", "mean"),
        &|m| sum(m) / 50.0,
        1e-12,
        "gauge mean",
    );
    check(
        q("active_shoppers", "min"),
        &|m| expect[m].0.iter().copied().fold(f64::MAX, f64::min),
        0.0,
        "gauge min",
    );
    check(
        q("active_shoppers", "max"),
        &|m| expect[m].0.iter().copied().fold(f64::MIN, f64::max),
        0.0,
        "gauge max",
    );

    // One value over the whole range: step = to - from.
    let (_, ans) = s.query(&[
        ("metric", "order_item_count"),
        ("field", "p95"),
        ("from", &from),
        ("to", &to),
        ("step", "180"),
    ]);
    let all: Vec<f64> = expect.iter().flat_map(|e| e.0.clone()).collect();
    let got = one(&ans);
    assert_eq!(got.len(), 1);
    let want = exact_quantile(&all, 0.95);
    assert!(
        (got[0].1.unwrap() - want).abs() <= 0.01 * want,
        "{got:?} vs {want}"
    );

    // A field that does not suit the kind names the fields that do.
    let (code, ans) = s.query(&[("metric", "invoice_count"), ("field", "p95")]);
    assert_eq!(code, 400);
    assert!(
        ans["error"].as_str().unwrap().contains("use sum, rate"),
        "{ans}"
    );
}

#[test]
fn summaries_from_clients_merge_with_single_values() {
    let s = Server::start();
    let t0 = past_hour() as f64;
    let (code, ans) = s.push(&json!({"points": [
        {"kind": "distribution", "name": "items", "ts": t0 + 1.0,
         "summary": {"count": 3, "sum": 6, "min": 1, "max": 3,
                     "sketch": {"alpha": 0.01, "pos": [[0, 1], [35, 1], [56, 1]], "neg": [], "zero": 0}}},
        {"kind": "distribution", "name": "items", "ts": t0 + 2.0, "value": 4},
        {"kind": "gauge", "name": "g", "ts": t0 + 30.0, "summary": {"last": 12, "min": 3, "max": 15, "sum": 60, "count": 6}},
        {"kind": "gauge", "name": "g", "ts": t0 + 10.0, "value": 100},
        {"kind": "counter", "name": "c", "ts": t0, "value": 41},
        {"kind": "counter", "name": "c", "ts": t0 + 59.9, "value": -1}
    ]}));
    assert_eq!((code, ans["accepted"].clone()), (200, json!(6)), "{ans}");
    let from = t0.to_string();
    let get = |metric: &str, field: &str| {
        let (_, ans) = s.query(&[
            ("metric", metric),
            ("field", field),
            ("from", &from),
            ("to", &(t0 + 60.0).to_string()),
            ("step", "60"),
        ]);
        one(&ans)[0].1.unwrap()
    };
    assert_eq!(get("items", "count"), 4.0);
    assert_eq!(get("items", "sum"), 10.0);
    assert_eq!(get("items", "max"), 4.0);
    assert_eq!(get("g", "last"), 12.0);
    assert_eq!(get("g", "max"), 100.0);
    assert_eq!(get("g", "mean"), 160.0 / 7.0);
    assert_eq!(get("c", "sum"), 40.0);
}

#[test]
fn tag_filters_wildcards_group_by_and_across() {
    let s = Server::start();
    let t0 = past_hour() as f64;
    let mut pts = Vec::new();
    for (region, host, orders, shoppers) in [
        ("eu-west", "a", 1.0, 10.0),
        ("eu-north", "b", 2.0, 20.0),
        ("us-east", "c", 4.0, 40.0),
        ("us-east", "d", 8.0, 80.0),
    ] {
        pts.push(json!({"kind": "counter", "name": "order_count", "value": orders, "ts": t0, "tags": {"region": region, "host": host}}));
        pts.push(json!({"kind": "gauge", "name": "shoppers", "value": shoppers, "ts": t0, "tags": {"region": region, "host": host}}));
    }
    // A series without the host tag: "host:*" still matches it.
    pts.push(json!({"kind": "counter", "name": "order_count", "value": 16, "ts": t0, "tags": {"region": "eu-west"}}));
    assert_eq!(s.push(&json!({"points": pts})).1["accepted"], 9);
    let from = t0.to_string();
    let to = (t0 + 60.0).to_string();
    let run = |extra: &[(&str, &str)]| {
        let mut p = vec![("from", from.as_str()), ("to", to.as_str()), ("step", "60")];
        p.extend_from_slice(extra);
        let (code, ans) = s.query(&p);
        assert_eq!(code, 200, "{ans}");
        ans["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|se| (se["tags"].clone(), points(se)[0].1))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        run(&[("metric", "order_count")]),
        vec![(json!({}), Some(31.0))]
    );
    assert_eq!(
        run(&[("metric", "order_count"), ("tag", "region:eu-*")]),
        vec![(json!({}), Some(19.0))]
    );
    assert_eq!(
        run(&[("metric", "order_count"), ("tag", "host:*")]),
        vec![(json!({}), Some(31.0))]
    );
    assert_eq!(
        run(&[("metric", "order_count"), ("tag", "host:a")]),
        vec![(json!({}), Some(1.0))]
    );
    // Exact values are looked up in the index of tag values: one value,
    // two at once (each series must have both), and one no series has.
    assert_eq!(
        run(&[("metric", "order_count"), ("tag", "region:eu-west")]),
        vec![(json!({}), Some(17.0))]
    );
    assert_eq!(
        run(&[
            ("metric", "order_count"),
            ("tag", "region:us-east"),
            ("tag", "host:c")
        ]),
        vec![(json!({}), Some(4.0))]
    );
    assert_eq!(
        run(&[
            ("metric", "order_count"),
            ("tag", "region:eu-west"),
            ("tag", "host:c")
        ]),
        vec![]
    );
    assert_eq!(
        run(&[("metric", "order_count"), ("group_by", "region")]),
        vec![
            (json!({"region": "eu-north"}), Some(2.0)),
            (json!({"region": "eu-west"}), Some(17.0)),
            (json!({"region": "us-east"}), Some(12.0)),
        ]
    );
    assert_eq!(
        run(&[
            ("metric", "order_count"),
            ("group_by", "region"),
            ("tag", "region:us*"),
            ("tag", "host:d")
        ]),
        vec![(json!({"region": "us-east"}), Some(8.0))]
    );
    assert_eq!(
        run(&[("metric", "shoppers"), ("field", "last")]),
        vec![(json!({}), Some(150.0))]
    );
    assert_eq!(
        run(&[
            ("metric", "shoppers"),
            ("field", "last"),
            ("across", "mean")
        ]),
        vec![(json!({}), Some(37.5))]
    );
    assert_eq!(
        run(&[("metric", "shoppers"), ("field", "last"), ("across", "max")]),
        vec![(json!({}), Some(80.0))]
    );
    assert_eq!(
        run(&[
            ("metric", "shoppers"),
            ("across", "min"),
            ("group_by", "region")
        ])[2],
        (json!({"region": "us-east"}), Some(40.0))
    );

    // POST: several queries at once; a bad one answers with its own error.
    let (code, ans) = s.request("POST", "/api/v1/query", ADMIN_KEY, Some(&json!({"queries": [
        {"metric": "order_count", "from": t0, "to": t0 + 60.0, "step": 60, "tag": ["region:eu-*"]},
        {"metric": "shoppers", "field": "nope"},
        {"metric": "shoppers", "from": t0, "to": t0 + 60.0, "step": "60", "group_by": ["region"], "across": "max"}
    ]})));
    assert_eq!(code, 200, "{ans}");
    assert_eq!(ans["results"][0]["series"][0]["points"][0][1], 19.0);
    assert!(ans["results"][1]["error"]
        .as_str()
        .unwrap()
        .contains("unknown field"));
    assert_eq!(ans["results"][2]["series"].as_array().unwrap().len(), 3);
}

#[test]
fn time_forms_empty_minutes_and_auto_step() {
    let s = Server::start();
    let t0 = past_hour();
    s.push(&json!({"points": [
        {"kind": "counter", "name": "c", "value": 1, "ts": t0},
        {"kind": "counter", "name": "c", "value": 2, "ts": t0 + 120}
    ]}));
    // RFC 3339 and a minute with no data: null, never 0.
    let from = minutely_core::timeparse::format_rfc3339(t0);
    let (_, ans) = s.query(&[
        ("metric", "c"),
        ("from", &from),
        ("to", &(t0 + 180).to_string()),
        ("step", "60"),
    ]);
    assert_eq!(
        one(&ans),
        vec![(t0, Some(1.0)), (t0 + 60, None), (t0 + 120, Some(2.0))]
    );
    // Data is read up to `to` (exclusive), also in a last bucket that `to` cuts.
    let (_, ans) = s.query(&[
        ("metric", "c"),
        ("from", &t0.to_string()),
        ("to", &(t0 + 119).to_string()),
        ("step", "60"),
    ]);
    assert_eq!(one(&ans), vec![(t0, Some(1.0)), (t0 + 60, None)]);
    let (_, ans) = s.query(&[
        ("metric", "c"),
        ("from", &t0.to_string()),
        ("to", &(t0 + 121).to_string()),
        ("step", "120"),
    ]);
    assert_eq!(one(&ans), vec![(t0, Some(1.0)), (t0 + 120, Some(2.0))]);
    // from is rounded down to its minute.
    let (_, ans) = s.query(&[
        ("metric", "c"),
        ("from", &(t0 + 59).to_string()),
        ("to", &(t0 + 180).to_string()),
        ("step", "60"),
    ]);
    assert_eq!(one(&ans)[0].0, t0);
    // Relative times and auto step: 24 h at 1 minute = 1,440 points.
    let (code, ans) = s.query(&[("metric", "c"), ("from", "-24h"), ("to", "now")]);
    assert_eq!(code, 200, "{ans}");
    assert_eq!(ans["step"], 60);
    let pts = one(&ans);
    assert!((1_440..=1_441).contains(&pts.len()), "{}", pts.len());
    assert_eq!(pts.iter().filter_map(|p| p.1).sum::<f64>(), 3.0);
    let (_, ans) = s.query(&[("metric", "c"), ("from", "-30d"), ("step", "auto")]);
    assert_eq!(ans["step"], 1_800);
    // Hour buckets come from the hourly rollup and equal the minutes' sum.
    let (_, ans) = s.query(&[
        ("metric", "c"),
        ("from", &t0.to_string()),
        ("to", &(t0 + 3_600).to_string()),
        ("step", "3600"),
    ]);
    assert_eq!(one(&ans), vec![(t0, Some(3.0))]);
    for (k, v) in [
        ("step", "90"),
        ("step", "0"),
        ("from", "yesterday"),
        ("across", "median"),
        ("nonsense", "1"),
    ] {
        let (code, ans) = s.query(&[("metric", "c"), (k, v)]);
        assert_eq!(code, 400, "{k}={v}: {ans}");
        assert!(ans["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    // A metric nobody sent yet is an empty answer, not an error.
    let (code, ans) = s.query(&[("metric", "not_yet")]);
    assert_eq!((code, ans["series"].clone()), (200, json!([])));
}
