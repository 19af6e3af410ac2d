//! Bad input gets a clear error naming the problem; the good points that
//! came with it are kept.

mod common;
use common::*;
use serde_json::json;
use std::io::Write;

#[test]
fn each_bad_point_is_rejected_with_its_reason_and_good_points_stay() {
    let s = Server::start_with(&["--max-series-per-app", "6"]);
    let now = now();
    let many_tags: serde_json::Map<String, serde_json::Value> =
        (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
    let bad = vec![
        (
            json!({"kind": "counter", "name": "1starts_with_digit", "value": 1}),
            "metric name",
        ),
        (
            json!({"kind": "counter", "name": "has space", "value": 1}),
            "metric name",
        ),
        (
            json!({"kind": "counter", "name": "x".repeat(201), "value": 1}),
            "metric name",
        ),
        (
            json!({"kind": "meter", "name": "ok_name", "value": 1}),
            "unknown kind",
        ),
        (
            json!({"kind": "counter", "name": "ok_name", "value": 1, "tags": many_tags}),
            "at most 16",
        ),
        (
            json!({"kind": "counter", "name": "ok_name", "value": 1, "tags": {"bad key": "v"}}),
            "tag key",
        ),
        (
            json!({"kind": "counter", "name": "ok_name", "value": 1, "tags": {"k": "v".repeat(257)}}),
            "invalid value",
        ),
        (
            json!({"kind": "counter", "name": "ok_name", "value": 1, "tags": {"k": "line\nbreak"}}),
            "invalid value",
        ),
        (
            json!({"kind": "counter", "name": "ok_name", "value": 1, "tags": {"k": ""}}),
            "invalid value",
        ),
        (
            json!({"kind": "counter", "name": "ok_name", "value": 1, "ts": now + 3_600.0}),
            "in the future",
        ),
        (
            json!({"kind": "counter", "name": "ok_name", "value": 1, "ts": now - 2.0 * 86_400.0}),
            "late-point window",
        ),
        (
            json!({"kind": "counter", "name": "ok_name"}),
            "neither value nor summary",
        ),
        (
            json!({"kind": "counter", "name": "ok_name", "value": "12"}),
            "malformed point",
        ),
        (
            json!({"kind": "counter", "name": "ok_name", "value": 1, "colour": "red"}),
            "unknown field",
        ),
        (
            json!({"kind": "gauge", "name": "invoice_count", "value": 1}),
            "is a counter",
        ),
        (
            json!({"kind": "counter", "name": "ok_name", "summary": {"count": 1}}),
            "counters take no summary",
        ),
        (
            json!({"kind": "distribution", "name": "d", "summary": {"count": 2, "sum": 3, "min": 1, "max": 2, "sketch": {"alpha": 0.02, "pos": [[0, 2]]}}}),
            "alpha",
        ),
        (
            json!({"kind": "distribution", "name": "d", "summary": {"count": 5, "sum": 3, "min": 1, "max": 2, "sketch": {"alpha": 0.01, "pos": [[0, 2]]}}}),
            "add up to count",
        ),
        (
            json!({"kind": "gauge", "name": "g", "summary": {"last": 1, "min": 2, "max": 3, "sum": 1, "count": 1}}),
            "min <= last",
        ),
        (json!("not an object"), "malformed point"),
    ];
    let mut pts = vec![json!({"kind": "counter", "name": "invoice_count", "value": 3})];
    pts.extend(bad.iter().map(|(p, _)| p.clone()));
    pts.push(
        json!({"kind": "counter", "name": "invoice_count", "value": 4, "tags": {"region": "eu"}}),
    );
    let (code, ans) = s.push(&json!({"points": pts}));
    assert_eq!(code, 200, "{ans}");
    assert_eq!(ans["accepted"], 2, "{ans}");
    let rejected = ans["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), bad.len(), "{ans}");
    for (i, (r, (_, want))) in rejected.iter().zip(&bad).enumerate() {
        assert_eq!(r["index"], i + 1);
        let err = r["error"].as_str().unwrap();
        assert!(
            err.contains(want),
            "point {}: {err:?} should mention {want:?}",
            i + 1
        );
    }
    let (_, q) = s.query(&[
        ("metric", "invoice_count"),
        ("from", "-5m"),
        ("step", "600"),
    ]);
    let total: f64 = points(&q["series"][0]).iter().filter_map(|p| p.1).sum();
    assert_eq!(total, 7.0);

    // The series limit: 2 exist (invoice_count x2); 4 more fit, the rest are refused.
    let flood: Vec<_> = (0..10).map(|i| json!({"kind": "counter", "name": "flood", "value": 1, "tags": {"id": i.to_string()}})).collect();
    let (_, ans) = s.push(&json!({"points": flood}));
    assert_eq!(ans["accepted"], 4, "{ans}");
    assert!(ans["rejected"][0]["error"]
        .as_str()
        .unwrap()
        .contains("limit of 6 series"));
    // Existing series keep working.
    assert_eq!(
        s.push(&json!({"points": [{"kind": "counter", "name": "invoice_count", "value": 1}]}))
            .1["accepted"],
        1
    );
    let metrics = s.get_text("/metrics");
    assert!(
        metrics.contains("minutely_points_rejected_total{reason=\"series_limit\"} 6"),
        "{metrics}"
    );
    assert!(
        metrics.contains("minutely_points_rejected_total{reason=\"bad_name\"} 3"),
        "{metrics}"
    );
}

#[test]
fn whole_request_errors_are_4xx_with_json_error() {
    let s = Server::start_with(&[
        "--max-body-bytes",
        "100000",
        "--max-points-per-batch",
        "100",
    ]);
    /// Body, headers, expected status, words the error must contain.
    type Case<'a> = (Vec<u8>, Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (b"{not json".to_vec(), vec![], 400, "not a valid push"),
        (b"[]".to_vec(), vec![], 400, "not a valid push"),
        (
            br#"{"points": [], "extra": 1}"#.to_vec(),
            vec![],
            400,
            "unknown field",
        ),
        (vec![b' '; 100_001], vec![], 413, "larger than the limit"),
        (
            br#"{"env": "bad env!", "points": []}"#.to_vec(),
            vec![],
            400,
            "env",
        ),
        (
            br#"{"batch": "", "points": []}"#.to_vec(),
            vec![],
            400,
            "batch",
        ),
        (
            b"{}".to_vec(),
            vec![("Content-Encoding", "br")],
            415,
            "not supported",
        ),
        (b"\x1f\x8b\x08garbage".to_vec(), vec![], 400, "gzip"),
        (
            "[".repeat(5_000).into_bytes(),
            vec![],
            400,
            "not a valid push",
        ),
    ];
    for (body, headers, status, want) in cases {
        let (code, ans) = s.push_bytes(&body, &headers);
        assert_eq!(code, status, "{want}: {ans}");
        assert!(
            ans["error"].as_str().unwrap().contains(want),
            "{ans} should mention {want}"
        );
    }
    let too_many: Vec<_> = (0..101)
        .map(|_| json!({"kind": "counter", "name": "c", "value": 1}))
        .collect();
    let (code, ans) = s.push(&json!({"points": too_many}));
    assert_eq!(code, 413);
    assert!(ans["error"].as_str().unwrap().contains("at most 100"));
    // A gzip bomb: small compressed, far over the limit decompressed.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&vec![b' '; 5_000_000]).unwrap();
    let bomb = enc.finish().unwrap();
    assert!(bomb.len() < 100_000);
    let (code, ans) = s.push_bytes(&bomb, &[("Content-Encoding", "gzip")]);
    assert_eq!(code, 413, "{ans}");
    assert!(ans["error"].as_str().unwrap().contains("decompressed"));
    // The server is still up.
    assert!(s.get_text("/healthz").contains("ok"));
}

#[test]
fn gzip_bodies_are_accepted() {
    let s = Server::start();
    let body = json!({"points": [{"kind": "counter", "name": "c", "value": 2}]}).to_string();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(body.as_bytes()).unwrap();
    let gz = enc.finish().unwrap();
    let (code, ans) = s.push_bytes(
        &gz,
        &[
            ("Content-Encoding", "gzip"),
            ("Content-Type", "application/json"),
        ],
    );
    assert_eq!((code, ans["accepted"].clone()), (200, json!(1)), "{ans}");
    // Also recognised without the header.
    assert_eq!(s.push_bytes(&gz, &[]).1["accepted"], 1);
}
