//! Points for the read-path property tests: a few series of one metric
//! beside a counter, pushed to app "shop", env "prod".

use super::*;
use minutely_core::{Point, PointValue, Tags};

/// Pushes points of `(series, minute, second, value)` from `t0`: series
/// 0-2 (hosts a, b, c) are `metric` of `kind`, series 3 (host d) the
/// counter "orders".
pub fn push(
    store: &EmbeddedStore,
    t0: i64,
    (kind, metric): (Kind, &str),
    points: &[(u8, i64, i64, f64)],
) {
    let points: Vec<(usize, Point)> = points
        .iter()
        .map(|&(s, m, sec, v)| {
            let (kind, name) = match s {
                3 => (Kind::Counter, "orders"),
                _ => (kind, metric),
            };
            Point {
                kind,
                name: name.into(),
                tags: Tags::from_pairs([("host", ["a", "b", "c", "d"][usize::from(s)])]),
                ts: (t0 + m * 60 + sec) as f64,
                value: PointValue::Single(v),
            }
        })
        .enumerate()
        .collect();
    let req = PushRequest {
        app: "shop".into(),
        env: "prod".into(),
        batch: None,
        points,
    };
    store.push(req).unwrap();
}
