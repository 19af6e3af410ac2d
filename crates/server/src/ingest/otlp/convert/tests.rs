//! Conversion tests for every OTLP metric type and temporality, the JSON
//! decoder against the protobuf one, and a property test: the decoders
//! never panic, and whatever converts is a valid point.

use super::*;
use crate::ingest::otlp::{json, proto};
use minutely_core::validate::{validate_point, RawPoint};
use proptest::prelude::*;
use prost::Message;

const NOW: f64 = 1_764_100_000.0;
const NS: u64 = 1_000_000_000;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(Any::String(v.into())),
        }),
    }
}

fn request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "shop"), kv("host.name", "h1")],
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "s".into(),
                    version: "1".into(),
                }),
                metrics,
            }],
        }],
    }
}

fn route() -> Vec<Route> {
    vec![Ok(("default".into(), "production".into()))]
}

fn num(t: u64, start: u64, v: f64, attrs: Vec<KeyValue>) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs,
        start_time_unix_nano: start,
        time_unix_nano: t,
        value: Some(NumberValue::AsDouble(v)),
        flags: 0,
    }
}

fn sum(name: &str, temporality: i32, monotonic: bool, points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        description: String::new(),
        unit: String::new(),
        data: Some(Data::Sum(Sum {
            data_points: points,
            aggregation_temporality: temporality,
            is_monotonic: monotonic,
        })),
    }
}

fn run(streams: &Streams, metrics: Vec<Metric>) -> Converted {
    convert(&request(metrics), &route(), streams, NOW, 86_400.0).0
}

fn values(c: &Converted) -> Vec<(Kind, f64)> {
    c.points
        .values()
        .flatten()
        .map(|p| match &p.value {
            PointValue::Single(v) => (p.kind, *v),
            PointValue::DistSummary(d) => (p.kind, d.count),
            PointValue::GaugeSummary(g) => (p.kind, g.last),
        })
        .collect()
}

#[test]
fn sums_and_gauges() {
    let streams = Streams::new(NOW - 600.0);
    let t = (NOW as u64 - 30) * NS;
    let start = (NOW as u64 - 300) * NS;
    let c = run(
        &streams,
        vec![
            sum(
                "orders",
                DELTA,
                true,
                vec![num(t, 0, 3.0, vec![kv("region", "eu")])],
            ),
            sum("stock", DELTA, false, vec![num(t, 0, -2.0, vec![])]),
            sum(
                "queue",
                CUMULATIVE,
                false,
                vec![num(t, start, 17.0, vec![])],
            ),
            Metric {
                name: "temp".into(),
                description: String::new(),
                unit: String::new(),
                data: Some(Data::Gauge(Gauge {
                    data_points: vec![num(t, 0, 21.5, vec![])],
                })),
            },
        ],
    );
    assert_eq!(c.rejected, vec![]);
    assert_eq!(
        values(&c),
        vec![
            (Kind::Counter, 3.0),
            (Kind::Counter, -2.0),
            (Kind::Gauge, 17.0),
            (Kind::Gauge, 21.5)
        ]
    );
    let p = &c.points[&("default".to_string(), "production".to_string())][0];
    assert_eq!(
        p.tags,
        Tags::from_pairs([("region", "eu"), ("service", "shop")])
    );
    assert_eq!(p.ts, NOW - 30.0);
}

#[test]
fn cumulative_counters_become_deltas_with_resets() {
    let streams = Streams::new(NOW - 600.0);
    let start = (NOW as u64 - 300) * NS;
    let at = |s: u64| (NOW as u64 - 200 + s) * NS;
    let step = |t, st, v| {
        values(&run(
            &streams,
            vec![sum("c", CUMULATIVE, true, vec![num(t, st, v, vec![])])],
        ))
    };
    // Started after the server: the first point counts whole.
    assert_eq!(step(at(0), start, 5.0), vec![(Kind::Counter, 5.0)]);
    assert_eq!(step(at(10), start, 12.0), vec![(Kind::Counter, 7.0)]);
    // A retry of the same point adds nothing.
    assert_eq!(step(at(10), start, 12.0), vec![]);
    // Went down: a reset, counts whole.
    assert_eq!(step(at(20), start, 4.0), vec![(Kind::Counter, 4.0)]);
    // A later start time: a new stream, counts whole.
    assert_eq!(step(at(30), at(25), 2.0), vec![(Kind::Counter, 2.0)]);
    assert_eq!(step(at(40), at(25), 2.0), vec![(Kind::Counter, 0.0)]);
    // A stream older than the server only sets its baseline.
    let old = (NOW as u64 - 100_000) * NS;
    let c = run(
        &streams,
        vec![sum(
            "old",
            CUMULATIVE,
            true,
            vec![num(at(0), old, 1000.0, vec![])],
        )],
    );
    assert_eq!(
        (values(&c), c.skipped.clone()),
        (vec![], vec![("baseline", 1)])
    );
    assert_eq!(step(at(0), 0, 1.0).len(), 0, "no start time: baseline");
    // Undo restores the state, so a retried request counts again.
    let (c, undo) = convert(
        &request(vec![sum(
            "c",
            CUMULATIVE,
            true,
            vec![num(at(50), at(25), 9.0, vec![])],
        )]),
        &route(),
        &streams,
        NOW,
        86_400.0,
    );
    assert_eq!(values(&c), vec![(Kind::Counter, 7.0)]);
    streams.undo(undo);
    assert_eq!(step(at(50), at(25), 9.0), vec![(Kind::Counter, 7.0)]);
}

fn hist(temporality: i32, p: HistogramDataPoint) -> Metric {
    Metric {
        name: "lat".into(),
        description: String::new(),
        unit: String::new(),
        data: Some(Data::Histogram(Histogram {
            data_points: vec![p],
            aggregation_temporality: temporality,
        })),
    }
}

fn hp(t: u64, start: u64, counts: Vec<u64>, sum: f64, min: f64, max: f64) -> HistogramDataPoint {
    HistogramDataPoint {
        attributes: vec![],
        start_time_unix_nano: start,
        time_unix_nano: t,
        count: counts.iter().sum(),
        sum: Some(sum),
        bucket_counts: counts,
        explicit_bounds: vec![10.0, 100.0],
        flags: 0,
        min: Some(min),
        max: Some(max),
    }
}

fn dist_of(c: &Converted) -> DistAgg {
    match &c.points.values().next().unwrap()[0].value {
        PointValue::DistSummary(d) => (**d).clone(),
        v => panic!("{v:?}"),
    }
}

#[test]
fn histograms_delta_and_cumulative() {
    let streams = Streams::new(NOW - 600.0);
    let start = (NOW as u64 - 300) * NS;
    let t = (NOW as u64 - 100) * NS;
    let d = dist_of(&run(
        &streams,
        vec![hist(DELTA, hp(t, start, vec![1, 2, 1], 250.0, 5.0, 150.0))],
    ));
    assert_eq!((d.count, d.sum, d.min, d.max), (4.0, 250.0, 5.0, 150.0));
    let d = dist_of(&run(
        &streams,
        vec![hist(
            CUMULATIVE,
            hp(t, start, vec![1, 2, 1], 250.0, 5.0, 150.0),
        )],
    ));
    assert_eq!((d.count, d.sum), (4.0, 250.0));
    let d = dist_of(&run(
        &streams,
        vec![hist(
            CUMULATIVE,
            hp(t + NS, start, vec![1, 5, 1], 400.0, 5.0, 150.0),
        )],
    ));
    assert_eq!((d.count, d.sum), (3.0, 150.0));
    // Only the middle bucket grew: the interval's values lie in (10, 100].
    assert_eq!((d.min, d.max), (10.0, 100.0));
}

#[test]
fn exponential_histograms_delta_and_cumulative() {
    let streams = Streams::new(NOW - 600.0);
    let start = (NOW as u64 - 300) * NS;
    let t = (NOW as u64 - 100) * NS;
    let ep = |t, scale, offset, counts: Vec<u64>, sum| ExponentialHistogramDataPoint {
        attributes: vec![],
        start_time_unix_nano: start,
        time_unix_nano: t,
        count: counts.iter().sum(),
        sum: Some(sum),
        scale,
        zero_count: 0,
        positive: Some(Buckets {
            offset,
            bucket_counts: counts,
        }),
        negative: None,
        flags: 0,
        min: None,
        max: None,
        zero_threshold: 0.0,
    };
    let m = |temporality, p| Metric {
        name: "e".into(),
        description: String::new(),
        unit: String::new(),
        data: Some(Data::ExponentialHistogram(ExponentialHistogram {
            data_points: vec![p],
            aggregation_temporality: temporality,
        })),
    };
    let d = dist_of(&run(
        &streams,
        vec![m(CUMULATIVE, ep(t, 2, 4, vec![1, 1, 1, 1], 10.0))],
    ));
    assert_eq!((d.count, d.sum, d.min, d.max), (4.0, 10.0, 2.0, 4.0));
    // Downscaled from 2 to 1 between exports: buckets 4,5 -> 2 and 6,7 -> 3.
    let d = dist_of(&run(
        &streams,
        vec![m(CUMULATIVE, ep(t + NS, 1, 2, vec![2, 5], 20.0))],
    ));
    assert_eq!(
        (d.count, d.sum, d.min, d.max),
        (3.0, 10.0, 2.0f64.powf(1.5), 4.0)
    );
}

#[test]
fn refusals_name_their_reason() {
    let streams = Streams::new(NOW - 600.0);
    let t = (NOW as u64 - 30) * NS;
    let summary = Metric {
        name: "s".into(),
        description: String::new(),
        unit: String::new(),
        data: Some(Data::Summary(Summary {
            data_points: vec![SummaryDataPoint { time_unix_nano: t }; 2],
        })),
    };
    let many: Vec<KeyValue> = (0..17).map(|i| kv(&format!("k{i}"), "v")).collect();
    let c = run(
        &streams,
        vec![
            summary,
            sum("bad/name", DELTA, true, vec![num(t, 0, 1.0, vec![])]),
            sum(
                "ok",
                DELTA,
                true,
                vec![
                    num(t, 0, f64::NAN, vec![]),
                    num(t, 0, 1.0, many),
                    num(t + 10_000 * NS, 0, 1.0, vec![]),
                    num(t, 0, 2.0, vec![]),
                ],
            ),
            sum("nt", 0, true, vec![num(t, 0, 1.0, vec![])]),
        ],
    );
    let reasons: Vec<(&str, u64)> = c.rejected.iter().map(|r| (r.0, r.2)).collect();
    assert_eq!(
        reasons,
        vec![
            ("summary", 2),
            ("bad_name", 1),
            ("bad_value", 1),
            ("bad_tags", 1),
            ("future", 1),
            ("bad_temporality", 1)
        ]
    );
    assert!(c.rejected[0].1.contains("not supported"));
    assert_eq!(values(&c), vec![(Kind::Counter, 2.0)]);
    // An unroutable resource rejects all its points.
    let (c, _) = convert(
        &request(vec![sum(
            "ok",
            DELTA,
            true,
            vec![num(t, 0, 1.0, vec![]); 3],
        )]),
        &[Err(("unauthorized", "no key".into()))],
        &streams,
        NOW,
        86_400.0,
    );
    assert_eq!(c.rejected_points(), 3);
}

#[test]
fn json_decodes_like_protobuf() {
    let body = r#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"shop"}},{"key":"n","value":{"intValue":"7"}},{"key":"arr","value":{"arrayValue":{"values":[{"boolValue":true},{"doubleValue":1.5}]}}}]},
      "scopeMetrics":[{"scope":{"name":"s"},"metrics":[
        {"name":"orders","sum":{"aggregationTemporality":1,"isMonotonic":true,"dataPoints":[{"timeUnixNano":"1764099970000000000","asInt":"3","attributes":[{"key":"region","value":{"stringValue":"eu"}}]}]}},
        {"name":"lat","histogram":{"aggregationTemporality":"AGGREGATION_TEMPORALITY_DELTA","dataPoints":[{"timeUnixNano":1764099970000000000,"count":"3","sum":30,"bucketCounts":["1","2"],"explicitBounds":[10],"min":5,"max":15}]}},
        {"name":"e","exponential_histogram":{"aggregation_temporality":1,"data_points":[{"time_unix_nano":"1764099970000000000","count":2,"scale":3,"zero_count":"1","positive":{"offset":-2,"bucket_counts":[1]}}]}}]}]}]}"#;
    let req = json::decode(body.as_bytes()).unwrap();
    let again = ExportMetricsServiceRequest::decode(&req.encode_to_vec()[..]).unwrap();
    assert_eq!(req, again);
    let rm = &req.resource_metrics[0];
    let attrs = &rm.resource.as_ref().unwrap().attributes;
    assert_eq!(any_text(attrs[1].value.as_ref().unwrap()), "7");
    assert_eq!(
        any_text(attrs[2].value.as_ref().unwrap()),
        r#"["true","1.5"]"#
    );
    let c = convert(&req, &route(), &Streams::new(NOW), NOW, 86_400.0).0;
    assert_eq!(c.rejected, vec![]);
    assert_eq!(
        values(&c),
        vec![
            (Kind::Counter, 3.0),
            (Kind::Distribution, 3.0),
            (Kind::Distribution, 2.0)
        ]
    );
    for bad in [&b"{"[..], b"[]", br#"{"resourceMetrics":{}}"#, br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"x","sum":{"dataPoints":[{"asInt":"x"}]}}]}]}]}"#] {
        assert!(json::decode(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
}

fn arb_any() -> impl Strategy<Value = AnyValue> {
    let leaf = prop_oneof![
        ".{0,8}".prop_map(Any::String),
        any::<bool>().prop_map(Any::Bool),
        any::<i64>().prop_map(Any::Int),
        any::<f64>().prop_map(Any::Double),
    ];
    leaf.prop_map(|v| AnyValue { value: Some(v) })
}

fn arb_kv() -> impl Strategy<Value = KeyValue> {
    (
        prop_oneof![Just("region".to_string()), "[a-z.]{0,6}", ".{0,4}"],
        arb_any(),
    )
        .prop_map(|(key, v)| KeyValue {
            key,
            value: Some(v),
        })
}

fn arb_number() -> impl Strategy<Value = NumberDataPoint> {
    (
        prop::collection::vec(arb_kv(), 0..3),
        prop_oneof![Just(0u64), any::<u64>(), Just((NOW as u64 - 100) * NS)],
        prop_oneof![
            Just(0u64),
            any::<u64>(),
            (0u64..200).prop_map(|s| (NOW as u64 - 150 + s) * NS)
        ],
        prop_oneof![
            any::<f64>().prop_map(NumberValue::AsDouble),
            any::<i64>().prop_map(NumberValue::AsInt)
        ],
        0u32..3,
    )
        .prop_map(|(attributes, start, time, v, flags)| NumberDataPoint {
            attributes,
            start_time_unix_nano: start,
            time_unix_nano: time,
            value: Some(v),
            flags,
        })
}

fn arb_hist() -> impl Strategy<Value = HistogramDataPoint> {
    (
        prop::collection::vec(0u64..50, 0..6),
        prop::collection::vec(-1e6f64..1e6, 0..6),
        any::<Option<f64>>(),
        any::<Option<f64>>(),
        any::<bool>(),
    )
        .prop_map(|(counts, mut bounds, min, max, honest)| {
            bounds.sort_by(f64::total_cmp);
            HistogramDataPoint {
                attributes: vec![],
                start_time_unix_nano: 0,
                time_unix_nano: (NOW as u64 - 10) * NS,
                count: if honest { counts.iter().sum() } else { 7 },
                sum: Some(1.0),
                bucket_counts: counts,
                explicit_bounds: bounds,
                flags: 0,
                min,
                max,
            }
        })
}

fn arb_exp() -> impl Strategy<Value = ExponentialHistogramDataPoint> {
    (
        -12i32..22,
        -2_000i32..2_000,
        prop::collection::vec(0u64..40, 0..8),
        0u64..3,
        any::<Option<f64>>(),
    )
        .prop_map(
            |(scale, offset, counts, zero, min)| ExponentialHistogramDataPoint {
                attributes: vec![],
                start_time_unix_nano: 0,
                time_unix_nano: (NOW as u64 - 10) * NS,
                count: counts.iter().sum::<u64>() + zero,
                sum: None,
                scale,
                zero_count: zero,
                positive: Some(Buckets {
                    offset,
                    bucket_counts: counts.clone(),
                }),
                negative: Some(Buckets {
                    offset: -offset,
                    bucket_counts: counts.into_iter().rev().collect(),
                }),
                flags: 0,
                min,
                max: None,
                zero_threshold: 0.0,
            },
        )
}

fn arb_metric() -> impl Strategy<Value = Metric> {
    let data = prop_oneof![
        prop::collection::vec(arb_number(), 0..3)
            .prop_map(|d| Data::Gauge(Gauge { data_points: d })),
        (
            prop::collection::vec(arb_number(), 0..3),
            0i32..4,
            any::<bool>()
        )
            .prop_map(|(d, t, m)| Data::Sum(Sum {
                data_points: d,
                aggregation_temporality: t,
                is_monotonic: m
            })),
        (prop::collection::vec(arb_hist(), 0..3), 0i32..4).prop_map(|(d, t)| Data::Histogram(
            Histogram {
                data_points: d,
                aggregation_temporality: t
            }
        )),
        (prop::collection::vec(arb_exp(), 0..3), 0i32..4).prop_map(|(d, t)| {
            Data::ExponentialHistogram(ExponentialHistogram {
                data_points: d,
                aggregation_temporality: t,
            })
        }),
    ];
    (
        prop_oneof![Just("m".to_string()), "[a-z_.]{0,8}", ".{0,6}"],
        data,
    )
        .prop_map(|(name, d)| Metric {
            name,
            description: String::new(),
            unit: String::new(),
            data: Some(d),
        })
}

/// What the push API would say of a converted point.
fn revalidate(p: &Point) -> Result<(), String> {
    let tags: std::collections::BTreeMap<String, String> = p.tags.clone().into();
    let mut raw = RawPoint {
        kind: p.kind.to_string(),
        name: p.name.to_string(),
        value: None,
        tags,
        ts: Some(p.ts),
        summary: None,
    };
    match &p.value {
        PointValue::Single(v) => raw.value = Some(*v),
        PointValue::GaugeSummary(_) => return Err("gauge summary".into()),
        PointValue::DistSummary(d) => {
            prop_assert_ok(
                d.count > 0.0
                    && d.min <= d.max
                    && d.min.is_finite()
                    && d.max.is_finite()
                    && d.sum.is_finite(),
            )?;
            prop_assert_ok((d.sketch.count() - d.count).abs() <= 1e-9 * d.count)?;
            raw.value = Some(d.min);
            raw.kind = "gauge".into();
        }
    }
    validate_point(raw, NOW, 86_400.0)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn prop_assert_ok(b: bool) -> Result<(), String> {
    if b {
        Ok(())
    } else {
        Err("distribution summary is inconsistent".into())
    }
}

proptest! {
    /// Arbitrary bytes never panic either decoder.
    #[test]
    fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = proto::decode(&bytes);
        let _ = json::decode(&bytes);
    }

    /// Structured requests: encode, decode, convert never panics; every data
    /// point is a valid point or counted as refused or skipped; decoding the
    /// encoded request gives it back.
    #[test]
    fn what_converts_validates(metrics in prop::collection::vec(arb_metric(), 0..4)) {
        let req = request(metrics);
        let bytes = req.encode_to_vec();
        let back = proto::decode(&bytes).unwrap();
        prop_assert_eq!(&back, &req);
        let (c, _) = convert(&back, &route(), &Streams::new(NOW - 600.0), NOW, 86_400.0);
        for p in c.points.values().flatten() {
            prop_assert!(revalidate(p).is_ok(), "{:?}: {:?}", p, revalidate(p));
        }
        let total: u64 = req.resource_metrics[0].scope_metrics[0].metrics.iter().map(point_count).sum();
        let seen = c.points.values().map(|v| v.len() as u64).sum::<u64>() + c.rejected_points() + c.skipped.iter().map(|s| s.1).sum::<u64>();
        // Empty histograms store nothing and refuse nothing.
        prop_assert!(seen <= total);
    }
}
