//! Hostile input end to end: oversized, odd or malformed pushes and queries
//! each get a clear 4xx with a JSON `{"error"}` (or a per-point rejection
//! while the good points of the batch are kept), and the server stays up.

mod common;
use common::*;
use serde_json::{json, Value};

/// A whole-request refusal: a 4xx whose JSON error mentions `want`.
fn assert_refused(code: u16, ans: &Value, want: &str) {
    assert!((400..500).contains(&code), "want a 4xx, got {code}: {ans}");
    let err = ans["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no JSON error: {ans}"));
    assert!(
        err.to_lowercase().contains(&want.to_lowercase()),
        "{err:?} should mention {want:?}"
    );
}

/// The sum of a counter over the last hour (None: no series).
fn counter_total(s: &Server, metric: &str) -> Option<f64> {
    let (code, q) = s.query(&[("metric", metric), ("from", "-1h"), ("step", "3600")]);
    assert_eq!(code, 200, "{q}");
    let series = q["series"].as_array().unwrap();
    if series.is_empty() {
        return None;
    }
    Some(series.iter().flat_map(points).filter_map(|p| p.1).sum())
}

fn good(value: i64) -> Value {
    json!({"kind": "counter", "name": "good_count", "value": value})
}

fn assert_up(s: &Server) {
    assert!(s.get_text("/healthz").contains("ok"));
}

#[test]
fn ten_thousand_tags_on_one_point_are_refused_and_the_batch_kept() {
    let s = Server::start();
    let tags: serde_json::Map<String, Value> = (0..10_000)
        .map(|i| (format!("tag_{i}"), json!(format!("value {i}"))))
        .collect();
    let (code, ans) = s.push(&json!({"points": [
        good(1),
        {"kind": "counter", "name": "tagged", "value": 1, "tags": tags},
        good(2),
    ]}));
    assert_eq!(code, 200, "{ans}");
    assert_eq!(ans["accepted"], 2, "{ans}");
    assert_eq!(ans["rejected"][0]["index"], 1);
    let err = ans["rejected"][0]["error"].as_str().unwrap();
    assert!(err.contains("at most 16"), "{err}");
    // The message names the count, not 10,000 tags back.
    assert!(err.len() < 300, "{err}");
    assert_eq!(counter_total(&s, "good_count"), Some(3.0));
    assert_eq!(counter_total(&s, "tagged"), None);
    assert_up(&s);
}

#[test]
fn unicode_and_control_characters_in_names_tags_env_app_and_batch() {
    let s = Server::start();
    // Names are ASCII identifiers: anything else is a per-point rejection.
    let bad_names = [
        "café_count",
        "count\u{0}",
        "count\u{1b}[31m",
        "count\u{202e}",
        "\u{1F600}",
        "count\nx",
        "<script>",
    ];
    let mut pts: Vec<Value> = vec![good(1)];
    pts.extend(
        bad_names
            .iter()
            .map(|n| json!({"kind": "counter", "name": n, "value": 1})),
    );
    // Tag keys likewise; tag values may be any text without control characters.
    let bad_tags = [
        json!({"région": "eu"}),
        json!({"k\u{0}": "v"}),
        json!({"k": "v\u{0}"}),
        json!({"k": "v\u{7f}"}),
        json!({"k": "v\u{1b}[2J"}),
        json!({"k": "a\rb"}),
        json!({"k": "\u{85}"}),
    ];
    pts.extend(
        bad_tags
            .iter()
            .map(|t| json!({"kind": "counter", "name": "tagged_count", "value": 1, "tags": t})),
    );
    let odd_value = "Zürich 東京 \u{1F600} \u{202e}evil <b>&amp;";
    pts.push(
        json!({"kind": "counter", "name": "tagged_count", "value": 5, "tags": {"city": odd_value}}),
    );
    let (code, ans) = s.push(&json!({"points": pts}));
    assert_eq!(code, 200, "{ans}");
    assert_eq!(ans["accepted"], 2, "{ans}");
    let rejected = ans["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), bad_names.len() + bad_tags.len(), "{ans}");
    for r in &rejected[..bad_names.len()] {
        assert!(r["error"].as_str().unwrap().contains("metric name"), "{r}");
    }
    for r in &rejected[bad_names.len()..] {
        assert!(r["error"].as_str().unwrap().contains("tag"), "{r}");
    }
    // The odd but valid value comes back exactly as sent.
    let (_, q) = s.query(&[
        ("metric", "tagged_count"),
        ("from", "-1h"),
        ("step", "3600"),
        ("group_by", "city"),
    ]);
    assert_eq!(q["series"][0]["tags"]["city"], odd_value, "{q}");
    assert_eq!(counter_total(&s, "good_count"), Some(1.0));

    // Envs, apps and batch keys: the whole request is refused.
    for env in ["prod\u{0}", "prödüction", "prod\n", "\u{202e}", "a b"] {
        let (code, ans) = s.push(&json!({"env": env, "points": [good(100)]}));
        assert_refused(code, &ans, "env");
    }
    for app in ["shop\u{0}", "shöp", "../etc", "a/b", ""] {
        let (code, ans) = s.push(&json!({"app": app, "points": [good(100)]}));
        assert_refused(code, &ans, "app");
    }
    for batch in ["", &"b".repeat(257)] {
        let (code, ans) = s.push(&json!({"batch": batch, "points": [good(100)]}));
        assert_refused(code, &ans, "batch");
    }
    // A batch key is only compared, never shown: any text works and still
    // makes a retry count once.
    for batch in ["b\u{0}\u{1b}\n", "東京\u{202e}"] {
        for _ in 0..2 {
            let (code, ans) = s.push(&json!({"batch": batch, "points": [good(10)]}));
            assert_eq!(code, 200, "{ans}");
        }
    }
    assert_eq!(counter_total(&s, "good_count"), Some(21.0));
    // Queries with control characters get a 4xx or an empty answer.
    for (k, v) in [
        ("metric", "good\u{0}count"),
        ("env", "\u{1b}"),
        ("tag", "k\u{0}=v"),
    ] {
        let (code, ans) = s.query(&[(k, v), ("metric", "good_count")]);
        assert!(code == 200 || (400..500).contains(&code), "{code} {ans}");
        if code != 200 {
            assert!(ans["error"].is_string(), "{ans}");
        }
    }
    assert_up(&s);
}

#[test]
fn a_cardinality_flood_stops_at_the_series_limit_and_old_series_keep_working() {
    let s = Server::start_with(&["--max-series-per-app", "500"]);
    // Ten existing series.
    let existing: Vec<Value> = (0..10)
        .map(|i| json!({"kind": "counter", "name": "orders_count", "value": 1, "tags": {"shop": i.to_string()}}))
        .collect();
    assert_eq!(s.push(&json!({"points": existing})).1["accepted"], 10);
    // A flood: a new tag value on every point, 20 batches of 1,000.
    let mut accepted = 0;
    let mut refused = 0;
    for b in 0..20 {
        let flood: Vec<Value> = (0..1_000)
            .map(|i| json!({"kind": "counter", "name": "request_count", "value": 1, "tags": {"request_id": format!("{b}-{i}")}}))
            .collect();
        let (code, ans) = s.push(&json!({"points": flood}));
        assert_eq!(code, 200, "{}", &ans.to_string()[..300]);
        accepted += ans["accepted"].as_u64().unwrap();
        for r in ans["rejected"].as_array().unwrap() {
            refused += 1;
            assert!(
                r["error"].as_str().unwrap().contains("limit of 500 series"),
                "{r}"
            );
        }
        // Existing series keep taking points all along.
        let again: Vec<Value> = (0..10)
            .map(|i| json!({"kind": "counter", "name": "orders_count", "value": 1, "tags": {"shop": i.to_string()}}))
            .collect();
        let (code, ans) = s.push(&json!({"points": again}));
        assert_eq!((code, ans["accepted"].clone()), (200, json!(10)), "{ans}");
    }
    assert_eq!(accepted, 490);
    assert_eq!(refused, 20_000 - 490);
    assert_eq!(counter_total(&s, "orders_count"), Some(210.0));
    assert_eq!(counter_total(&s, "request_count"), Some(490.0));
    let metrics = s.get_text("/metrics");
    assert!(
        metrics.contains(&format!(
            "minutely_points_rejected_total{{reason=\"series_limit\"}} {refused}"
        )),
        "{metrics}"
    );
    assert_up(&s);
}

#[test]
fn very_long_strings_are_refused_clearly() {
    let s = Server::start();
    let long = "a".repeat(1_000_000);
    let (code, ans) = s.push(&json!({"points": [
        good(1),
        {"kind": "counter", "name": long, "value": 1},
        {"kind": "counter", "name": "x_count", "value": 1, "tags": {"k": long}},
        {"kind": "counter", "name": "x_count", "value": 1, "tags": {long.clone(): "v"}},
        {"kind": "counter", "name": "x_count", "value": 1, "colour": long},
        {"kind": long, "name": "x_count", "value": 1},
    ]}));
    assert_eq!(code, 200);
    assert_eq!(ans["accepted"], 1);
    let rejected = ans["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 5);
    for r in rejected {
        // Errors quote what was wrong, but never a megabyte of it.
        assert!(
            r["error"].as_str().unwrap().len() < 2_000,
            "{}",
            r["error"].as_str().unwrap().len()
        );
    }
    let whole = [("env", &long), ("app", &long), ("batch", &long)];
    for (k, v) in whole {
        let (code, ans) = s.push(&json!({k: v, "points": [good(1)]}));
        assert!((400..500).contains(&code), "{k}: {code}");
        assert!(ans["error"].as_str().unwrap().len() < 2_000, "{k}");
    }
    // A long query parameter: a clear answer, not a crash.
    let (code, ans) = s.query(&[("metric", &long[..10_000]), ("from", "-1h")]);
    assert!(code == 200 || (400..500).contains(&code), "{code} {ans}");
    let (code, ans) = s.query(&[("metric", "good_count"), ("from", &long[..10_000])]);
    assert_refused(code, &ans, "");
    assert!(ans["error"].as_str().unwrap().len() < 2_000);
    // A URL past the HTTP layer's limit gets 414 from it, before any handler
    // (so without a JSON body).
    let (code, _) = s.query(&[("metric", "good_count"), ("from", &long[..100_000])]);
    assert_eq!(code, 414);
    assert_eq!(counter_total(&s, "good_count"), Some(1.0));
    assert_up(&s);
}

#[test]
fn nan_and_infinity_in_every_json_form_are_refused() {
    let s = Server::start();
    // Not JSON at all: the whole push is refused.
    for bad in ["NaN", "Infinity", "-Infinity", "nan", "inf"] {
        let body = format!(
            r#"{{"points": [{{"kind": "counter", "name": "good_count", "value": 1}}, {{"kind": "gauge", "name": "g", "value": {bad}}}]}}"#
        );
        let (code, ans) = s.push_bytes(body.as_bytes(), &[]);
        assert_refused(code, &ans, "not a valid push");
    }
    // JSON, but not a finite number: the point is refused, the rest kept.
    let pts = [
        r#"{"kind": "gauge", "name": "g", "value": 1e999}"#,
        r#"{"kind": "gauge", "name": "g", "value": -1e999}"#,
        r#"{"kind": "gauge", "name": "g", "value": "NaN"}"#,
        r#"{"kind": "gauge", "name": "g", "value": "Infinity"}"#,
        r#"{"kind": "gauge", "name": "g", "value": 1, "ts": 1e999}"#,
        r#"{"kind": "gauge", "name": "g", "value": 1, "ts": "NaN"}"#,
        r#"{"kind": "gauge", "name": "g", "summary": {"last": 1e999, "min": 1, "max": 2, "sum": 1, "count": 1}}"#,
        r#"{"kind": "distribution", "name": "d", "summary": {"count": 1, "sum": 1e999, "min": 1, "max": 1, "sketch": {"alpha": 0.01, "pos": [[0, 1]]}}}"#,
        r#"{"kind": "counter", "name": "c", "summary": {"sum": -1e999}}"#,
    ];
    let body = format!(
        r#"{{"points": [{{"kind": "counter", "name": "good_count", "value": 1}}, {}, {{"kind": "counter", "name": "good_count", "value": 2}}]}}"#,
        pts.join(", ")
    );
    let (code, ans) = s.push_bytes(body.as_bytes(), &[]);
    if code == 200 {
        assert_eq!(ans["accepted"], 2, "{ans}");
        assert_eq!(
            ans["rejected"].as_array().unwrap().len(),
            pts.len(),
            "{ans}"
        );
        assert_eq!(counter_total(&s, "good_count"), Some(3.0));
    } else {
        // serde_json refuses an out-of-range number while reading the body.
        assert_refused(code, &ans, "not a valid push");
    }
    // Each form alone, beside a good point.
    for p in pts {
        let body = format!(
            r#"{{"points": [{{"kind": "counter", "name": "one_count", "value": 1}}, {p}]}}"#
        );
        let (code, ans) = s.push_bytes(body.as_bytes(), &[]);
        if code == 200 {
            assert_eq!(ans["accepted"], 1, "{p}: {ans}");
            assert!(ans["rejected"][0]["error"].is_string(), "{p}: {ans}");
        } else {
            assert_refused(code, &ans, "");
        }
    }
    // Whatever was accepted reads back finite.
    let (_, q) = s.query(&[("metric", "g"), ("from", "-1h"), ("step", "3600")]);
    assert!(q["series"].as_array().unwrap().is_empty(), "{q}");
    assert_up(&s);
}

#[test]
fn duplicate_json_keys_are_refused() {
    let s = Server::start();
    // In a point: that point is refused, its neighbours kept.
    let body = br#"{"points": [
        {"kind": "counter", "name": "good_count", "value": 1},
        {"kind": "counter", "kind": "gauge", "name": "dup", "value": 1},
        {"kind": "counter", "name": "dup", "value": 1, "value": 1000},
        {"kind": "counter", "name": "good_count", "value": 2}
    ]}"#;
    let (code, ans) = s.push_bytes(body, &[]);
    assert_eq!(code, 200, "{ans}");
    assert_eq!(ans["accepted"], 2, "{ans}");
    let rejected = ans["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2, "{ans}");
    for r in rejected {
        assert!(r["error"].as_str().unwrap().contains("duplicate"), "{r}");
    }
    assert_eq!(counter_total(&s, "good_count"), Some(3.0));
    // A tag map is a JSON object read as a map: a repeated tag key keeps
    // its last value, as JSON parsers commonly do.
    let body = br#"{"points": [{"kind": "counter", "name": "dup_tag_count", "value": 1, "tags": {"a": "1", "a": "2"}}]}"#;
    assert_eq!(s.push_bytes(body, &[]).1["accepted"], 1);
    let (_, q) = s.query(&[
        ("metric", "dup_tag_count"),
        ("from", "-1h"),
        ("group_by", "a"),
    ]);
    assert_eq!(q["series"][0]["tags"], json!({"a": "2"}), "{q}");
    // In the envelope: the whole push is refused.
    for body in [
        r#"{"points": [], "points": [{"kind": "counter", "name": "good_count", "value": 1}]}"#,
        r#"{"env": "a", "env": "b", "points": []}"#,
        r#"{"batch": "a", "batch": "b", "points": []}"#,
    ] {
        let (code, ans) = s.push_bytes(body.as_bytes(), &[]);
        assert_refused(code, &ans, "duplicate");
    }
    assert_eq!(counter_total(&s, "good_count"), Some(3.0));
    assert_up(&s);
}

#[test]
fn invalid_utf8_is_refused_whole() {
    let s = Server::start();
    let cases: Vec<Vec<u8>> = vec![
        b"{\"points\": [{\"kind\": \"counter\", \"name\": \"good_count\", \"value\": 1}, {\"kind\": \"counter\", \"name\": \"x\xff\", \"value\": 1}]}".to_vec(),
        b"{\"points\": [{\"kind\": \"counter\", \"name\": \"good_count\", \"value\": 1, \"tags\": {\"k\": \"\xc3\x28\"}}]}".to_vec(),
        b"{\"env\": \"\xed\xa0\x80\", \"points\": []}".to_vec(),
        b"\xef\xbb\xbf{\"points\": []}".to_vec(),
        b"\xff\xfe{\0\"\0p\0".to_vec(),
    ];
    for body in cases {
        let (code, ans) = s.push_bytes(&body, &[]);
        assert_refused(code, &ans, "");
    }
    assert_eq!(counter_total(&s, "good_count"), None);
    // A lone surrogate escape is valid JSON syntax but no text: that point
    // is refused, its neighbours kept.
    let body = br#"{"points": [{"kind": "counter", "name": "good_count", "value": 1, "tags": {"k": "\ud800"}}, {"kind": "counter", "name": "good_count", "value": 2}]}"#;
    let (code, ans) = s.push_bytes(body, &[]);
    assert_eq!((code, ans["accepted"].clone()), (200, json!(1)), "{ans}");
    assert!(ans["rejected"][0]["error"]
        .as_str()
        .unwrap()
        .contains("malformed point"));
    assert_eq!(counter_total(&s, "good_count"), Some(2.0));
    // Invalid UTF-8 in a query string (percent-encoded) and in a dashboard.
    let url = format!("{}/api/v1/query?metric=%FF%FE&from=-1h", s.url);
    let r = ureq::get(&url)
        .set("Authorization", &format!("Bearer {ADMIN_KEY}"))
        .call();
    match r {
        Ok(r) => assert_eq!(r.status(), 200),
        Err(ureq::Error::Status(code, r)) => {
            assert!((400..500).contains(&code));
            assert!(r.into_json::<Value>().unwrap()["error"].is_string());
        }
        Err(e) => panic!("{e}"),
    }
    let r = ureq::post(&format!("{}/api/v1/dashboards", s.url))
        .set("Authorization", &format!("Bearer {ADMIN_KEY}"))
        .set("Content-Type", "application/yaml")
        .send_bytes(b"title: \xff\xfe\ngraphs: []\n");
    match r {
        Err(ureq::Error::Status(code, r)) => {
            assert!((400..500).contains(&code), "{code}");
            assert!(r.into_json::<Value>().unwrap()["error"].is_string());
        }
        other => panic!("want a 4xx, got {other:?}"),
    }
    assert_up(&s);
}
