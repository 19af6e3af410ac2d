//! Wide part queries (series read as values per output bucket, on the
//! store's threads) against the whole-aggregate evaluation of the same
//! buckets, bit for bit: gauges at every step, counters on their own grid
//! (added as values) and on coarser ones (merged as parts), with series
//! in blocks, in the head and in both.

use super::*;
use minutely_core::{Agg, Point, PointValue};
use minutely_store::embedded::{EmbeddedConfig, EmbeddedStore};
use minutely_store::{PushRequest, Scope};

const HOSTS: usize = 12;

fn push(store: &EmbeddedStore, t0: i64, minutes: std::ops::Range<i64>, seed: u64) {
    let mut points = Vec::new();
    let mut x = seed;
    let mut next = || {
        // A small LCG: fractional values whose sums round differently
        // in different orders.
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (x >> 11) as f64 / (1u64 << 53) as f64 * 100.0 - 20.0
    };
    for m in minutes {
        for h in 0..HOSTS {
            // Some hosts skip some minutes: blocks with gaps.
            if (m as usize + h) % 7 == 3 {
                continue;
            }
            let tags = Tags::from_pairs([
                ("host", format!("h{h}").as_str()),
                ("region", ["eu", "us", "ap"][h % 3]),
            ]);
            for (kind, name) in [(Kind::Gauge, "shoppers"), (Kind::Counter, "revenue")] {
                for k in 0..2 {
                    points.push(Point {
                        kind,
                        name: name.into(),
                        tags: tags.clone(),
                        ts: (t0 + m * 60 + 7 + 20 * k) as f64,
                        value: PointValue::Single(next()),
                    });
                }
            }
        }
    }
    let req = PushRequest {
        app: "shop".into(),
        env: "prod".into(),
        batch: None,
        points: points.into_iter().enumerate().collect(),
    };
    store.push(req).unwrap();
}

fn bits(v: &[Option<f64>]) -> Vec<Option<u64>> {
    v.iter().map(|x| x.map(f64::to_bits)).collect()
}

fn check(store: &EmbeddedStore, t0: i64, now: f64) {
    let caller = Caller {
        app: "shop".into(),
        scope: Scope::Admin,
    };
    let cases = [
        ("shoppers", Kind::Gauge, "last"),
        ("shoppers", Kind::Gauge, "mean"),
        ("shoppers", Kind::Gauge, "min"),
        ("revenue", Kind::Counter, "sum"),
        ("revenue", Kind::Counter, "rate"),
    ];
    for (metric, kind, field) in cases {
        for (from, step) in [
            (t0, 60),
            (t0 - 600, 60),
            (t0, 120),
            (t0 + 30, 60),
            (t0, 3_600),
        ] {
            let to = t0 + 90 * 60;
            let pairs = [
                ("app", "shop".to_string()),
                ("env", "prod".to_string()),
                ("metric", metric.to_string()),
                ("field", field.to_string()),
                ("from", from.to_string()),
                ("to", to.to_string()),
                ("step", step.to_string()),
                ("group_by", "region".to_string()),
                ("across", "sum".to_string()),
            ];
            let input =
                QueryInput::from_pairs(pairs.iter().map(|(k, v)| ((*k).into(), v.as_str().into())))
                    .unwrap();
            let answer = run(store, &caller, input, now).unwrap();
            assert_eq!(answer.series.len(), 3, "{metric} {field} {from} {step}");
            // The answer's grid (a `from` off the step is floored to it).
            let points = &answer.series[0].points;
            let grid = Grid {
                from: points[0].0,
                step,
                n: points.len(),
            };
            let res = if step % 3_600 == 0 {
                Resolution::Hour
            } else {
                Resolution::Minute
            };
            let f = Field::parse(field).unwrap();
            for s in &answer.series {
                let ids: Vec<_> = store
                    .series_of("shop", Some("prod"), metric)
                    .into_iter()
                    .filter(|info| info.tags.project(&["region".to_string()]) == s.tags)
                    .map(|info| info.id)
                    .collect();
                let buckets: Vec<Vec<(i64, Agg)>> = store.read(&ids, res, grid.from, to).unwrap();
                let buckets: Vec<&[(i64, Agg)]> = buckets.iter().map(Vec::as_slice).collect();
                let want = evaluate(kind, f, Across::Sum, &grid, &buckets);
                let got: Vec<Option<f64>> = s.points.iter().map(|(_, v)| *v).collect();
                assert_eq!(
                    bits(&got),
                    bits(&want),
                    "{metric} {field} {from} {step} {:?}",
                    s.tags
                );
                assert!(got.iter().any(Option::is_some));
            }
        }
    }
}

#[test]
fn wide_part_queries_read_like_whole_aggregates() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(EmbeddedConfig::new(dir.path())).unwrap();
    let now = minutely_core::time::floor_to(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64,
        3_600,
    );
    let t0 = now - 3 * 3_600;
    push(&store, t0, 0..60, 1);
    // Head minutes only.
    check(&store, t0, now as f64);
    store.checkpoint().unwrap();
    // Blocks only, then blocks with head minutes merged in (the second
    // push adds to minutes already stored).
    check(&store, t0, now as f64);
    push(&store, t0, 40..90, 2);
    check(&store, t0, now as f64);
}
