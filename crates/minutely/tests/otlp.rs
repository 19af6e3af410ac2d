//! OTLP/HTTP end to end: protobuf, JSON and gzip exports to the real
//! binary, their OTLP answers, and the points queried back.

mod common;
use common::*;
use minutely_server::ingest::otlp::proto::*;
use minutely_server::ingest::otlp::ProstMessage;
use serde_json::json;
use std::io::Write;

const NS: u64 = 1_000_000_000;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(Any::String(v.into())),
        }),
    }
}

fn export(resource: Vec<KeyValue>, metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource,
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: None,
                metrics,
            }],
        }],
    }
}

fn metric(name: &str, data: Data) -> Metric {
    Metric {
        name: name.into(),
        description: String::new(),
        unit: String::new(),
        data: Some(data),
    }
}

fn number(t: u64, start: u64, v: f64, attrs: Vec<KeyValue>) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs,
        start_time_unix_nano: start,
        time_unix_nano: t,
        value: Some(NumberValue::AsDouble(v)),
        flags: 0,
    }
}

/// POSTs bytes to /v1/metrics: (status, content type, body).
fn post(s: &Server, body: &[u8], headers: &[(&str, &str)]) -> (u16, String, Vec<u8>) {
    let mut req = ureq::post(&format!("{}/v1/metrics", s.url));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let resp = match req.send_bytes(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{e}"),
    };
    let (code, ct) = (resp.status(), resp.content_type().to_string());
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut out).unwrap();
    (code, ct, out)
}

const PB: (&str, &str) = ("Content-Type", "application/x-protobuf");
fn bearer() -> (&'static str, String) {
    ("Authorization", format!("Bearer {PUSH_KEY}"))
}

fn range(t0: i64) -> (String, String) {
    (t0.to_string(), (t0 + 3_600).to_string())
}

fn one_value(s: &Server, t0: i64, params: &[(&str, &str)]) -> Option<f64> {
    let (from, to) = range(t0);
    let mut p = vec![
        ("from", from.as_str()),
        ("to", to.as_str()),
        ("step", "3600"),
    ];
    p.extend_from_slice(params);
    let (code, ans) = s.query(&p);
    assert_eq!(code, 200, "{ans}");
    ans["series"][0]["points"][0][1].as_f64()
}

#[test]
fn protobuf_export_of_every_type() {
    let s = Server::start_with(&["--statsd", "off"]);
    let t0 = past_hour();
    let t = |sec: i64| (t0 + sec) as u64 * NS;
    let start = (now() as u64 - 10) * NS; // after the server started
    let values: Vec<f64> = (0..100).map(|i| 1.0 + i as f64 * 0.7).collect();
    let bounds = vec![5.0, 10.0, 25.0, 50.0];
    let mut counts = vec![0u64; bounds.len() + 1];
    for v in &values {
        counts[bounds.iter().position(|b| v <= b).unwrap_or(bounds.len())] += 1;
    }
    let hist = HistogramDataPoint {
        attributes: vec![],
        start_time_unix_nano: 0,
        time_unix_nano: t(30),
        count: values.len() as u64,
        sum: Some(values.iter().sum()),
        bucket_counts: counts.clone(),
        explicit_bounds: bounds.clone(),
        flags: 0,
        min: Some(1.0),
        max: Some(values[99]),
    };
    let req = export(
        vec![
            kv("service.name", "checkout"),
            kv("deployment.environment.name", "production"),
        ],
        vec![
            metric(
                "orders",
                Data::Sum(Sum {
                    data_points: vec![
                        number(t(10), 0, 3.0, vec![kv("region", "eu")]),
                        number(t(20), 0, 4.0, vec![kv("region", "eu")]),
                    ],
                    aggregation_temporality: DELTA,
                    is_monotonic: true,
                }),
            ),
            metric(
                "requests",
                Data::Sum(Sum {
                    data_points: vec![number(t(10), start, 10.0, vec![])],
                    aggregation_temporality: CUMULATIVE,
                    is_monotonic: true,
                }),
            ),
            metric(
                "queue_depth",
                Data::Sum(Sum {
                    data_points: vec![number(t(10), start, 7.0, vec![])],
                    aggregation_temporality: CUMULATIVE,
                    is_monotonic: false,
                }),
            ),
            metric(
                "temperature",
                Data::Gauge(Gauge {
                    data_points: vec![number(t(15), 0, 21.5, vec![])],
                }),
            ),
            metric(
                "latency",
                Data::Histogram(Histogram {
                    data_points: vec![hist],
                    aggregation_temporality: DELTA,
                }),
            ),
            metric(
                "legacy",
                Data::Summary(Summary {
                    data_points: vec![SummaryDataPoint {
                        time_unix_nano: t(10),
                    }],
                }),
            ),
        ],
    );
    let (code, ct, body) = post(&s, &req.encode_to_vec(), &[PB, (bearer().0, &bearer().1)]);
    assert_eq!((code, ct.as_str()), (200, "application/x-protobuf"));
    let answer = ExportMetricsServiceResponse::decode(&body[..]).unwrap();
    let partial = answer.partial_success.unwrap();
    assert_eq!(partial.rejected_data_points, 1);
    assert!(
        partial.error_message.contains("Summary"),
        "{}",
        partial.error_message
    );

    // A later cumulative export: the counter's change is what counts.
    let later = export(
        vec![
            kv("service.name", "checkout"),
            kv("deployment.environment.name", "production"),
        ],
        vec![metric(
            "requests",
            Data::Sum(Sum {
                data_points: vec![number(t(70), start, 25.0, vec![])],
                aggregation_temporality: CUMULATIVE,
                is_monotonic: true,
            }),
        )],
    );
    let (code, _, body) = post(&s, &later.encode_to_vec(), &[PB, (bearer().0, &bearer().1)]);
    assert_eq!(code, 200);
    assert_eq!(
        ExportMetricsServiceResponse::decode(&body[..])
            .unwrap()
            .partial_success,
        None
    );

    let env = ("env", "production");
    assert_eq!(
        one_value(
            &s,
            t0,
            &[
                ("metric", "orders"),
                ("field", "sum"),
                ("tag", "service:checkout"),
                env
            ]
        ),
        Some(7.0)
    );
    assert_eq!(
        one_value(&s, t0, &[("metric", "requests"), ("field", "sum"), env]),
        Some(25.0)
    );
    assert_eq!(
        one_value(&s, t0, &[("metric", "queue_depth"), ("field", "last"), env]),
        Some(7.0)
    );
    assert_eq!(
        one_value(&s, t0, &[("metric", "temperature"), ("field", "last"), env]),
        Some(21.5)
    );
    let q =
        |field: &str| one_value(&s, t0, &[("metric", "latency"), ("field", field), env]).unwrap();
    assert_eq!(q("count"), 100.0);
    assert!((q("sum") - values.iter().sum::<f64>()).abs() < 1e-9);
    assert_eq!((q("min"), q("max")), (1.0, values[99]));
    // Percentiles lie in the bucket holding the true value (within 1%).
    for (field, p) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)] {
        let exact = exact_quantile(&values, p);
        let i = bounds
            .iter()
            .position(|b| exact <= *b)
            .unwrap_or(bounds.len());
        let lo = if i == 0 { 1.0 } else { bounds[i - 1] };
        let hi = bounds.get(i).copied().unwrap_or(values[99]);
        let got = q(field);
        assert!(
            got >= lo * 0.99 && got <= hi * 1.01,
            "{field}: {got} outside [{lo}, {hi}] (exact {exact})"
        );
    }
    let m = s.get_text("/metrics");
    assert!(
        m.contains("minutely_otlp_points_rejected_total{reason=\"summary\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("minutely_otlp_requests_total{status=\"200\"} 2"),
        "{m}"
    );
}

#[test]
fn json_gzip_and_the_appsignal_key_attribute() {
    let s = Server::start_with(&["--statsd", "off"]);
    let t0 = past_hour();
    let ts = ((t0 + 5) as u64 * NS).to_string();
    let body = json!({"resourceMetrics": [{
        "resource": {"attributes": [
            {"key": "appsignal.config.push_api_key", "value": {"stringValue": PUSH_KEY}},
            {"key": "appsignal.config.environment", "value": {"stringValue": "staging"}}]},
        "scopeMetrics": [{"metrics": [
            {"name": "signups", "sum": {"aggregationTemporality": 1, "isMonotonic": false,
              "dataPoints": [{"timeUnixNano": ts, "asInt": "2"}, {"timeUnixNano": ts, "asDouble": -0.5}]}},
            {"name": "bad name", "gauge": {"dataPoints": [{"timeUnixNano": ts, "asDouble": 1}]}}]}]}]});
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(body.to_string().as_bytes()).unwrap();
    let (code, ct, answer) = post(
        &s,
        &gz.finish().unwrap(),
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
        ],
    );
    assert_eq!((code, ct.as_str()), (200, "application/json"));
    let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(
        answer["partialSuccess"]["rejectedDataPoints"], "1",
        "{answer}"
    );
    assert_eq!(
        one_value(
            &s,
            t0,
            &[("metric", "signups"), ("field", "sum"), ("env", "staging")]
        ),
        Some(1.5)
    );

    // No key anywhere, a wrong key, a body that is not OTLP.
    let no_key = json!({"resourceMetrics": [{"scopeMetrics": []}]}).to_string();
    let (code, _, answer) = post(
        &s,
        no_key.as_bytes(),
        &[("Content-Type", "application/json")],
    );
    assert_eq!(code, 401);
    let status: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert!(
        status["message"].as_str().unwrap().contains("push key"),
        "{status}"
    );
    let (code, _, _) = post(&s, b"", &[PB, ("Authorization", "Bearer nope")]);
    assert_eq!(code, 401);
    let (code, _, body) = post(&s, b"\xff\xff\xff", &[PB, (bearer().0, &bearer().1)]);
    assert_eq!(code, 400);
    assert_eq!(Status::decode(&body[..]).unwrap().code, 3);
    let (code, _, _) = post(
        &s,
        b"{}",
        &[PB, (bearer().0, &bearer().1), ("Content-Encoding", "br")],
    );
    assert_eq!(code, 415);
    // An empty export is a success.
    let (code, _, _) = post(&s, b"", &[PB, (bearer().0, &bearer().1)]);
    assert_eq!(code, 200);
}

#[test]
fn an_export_over_the_point_limit_is_refused_whole() {
    let s = Server::start_with(&["--statsd", "off", "--max-points-per-batch", "2"]);
    let t = (past_hour() as u64 + 5) * NS;
    let points = (0..3).map(|i| number(t, 0, i as f64, vec![])).collect();
    let req = export(
        vec![],
        vec![metric(
            "g",
            Data::Gauge(Gauge {
                data_points: points,
            }),
        )],
    );
    let (code, _, body) = post(&s, &req.encode_to_vec(), &[PB, (bearer().0, &bearer().1)]);
    assert_eq!(code, 413);
    assert!(Status::decode(&body[..])
        .unwrap()
        .message
        .contains("at most 2"));
}
