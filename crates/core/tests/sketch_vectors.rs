//! The shared sketch vectors in `testdata/sketch_vectors.json`: clients in
//! other languages must compute the same keys and sketches. This test proves
//! the server does; `MINUTELY_WRITE_VECTORS=1` rewrites the file (only when
//! the mapping changes on purpose, which breaks every client).

use minutely_core::sketch::{key_of, value_of, Sketch, ALPHA};
use serde_json::{json, Value};
use std::path::PathBuf;

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/sketch_vectors.json")
}

fn sample_values() -> Vec<f64> {
    let mut v = vec![
        0.0,
        1e-301,
        1e-300,
        1e-9,
        0.001,
        0.01,
        0.1,
        0.5,
        0.99,
        1.0,
        1.01,
        1.0202,
        1.5,
        2.0,
        3.0,
        10.0,
        42.0,
        99.5,
        100.0,
        1_000.0,
        12_345.678,
        1e6,
        1e9,
        1e15,
        1e300,
        f64::MAX,
    ];
    // Bucket boundaries, where floating-point differences would show first.
    let gamma: f64 = (1.0 + ALPHA) / (1.0 - ALPHA);
    for k in [-100, -1, 1, 2, 50, 100, 500] {
        let b = gamma.powi(k);
        v.extend([b, b * (1.0 - 1e-12), b * (1.0 + 1e-12)]);
    }
    let negs: Vec<f64> = v
        .iter()
        .filter(|x| **x > 0.0)
        .take(12)
        .map(|x| -x)
        .collect();
    v.extend(negs);
    v
}

fn key_entry(v: f64) -> Value {
    let (store, key) = if v >= 1e-300 {
        ("pos", Some(key_of(v)))
    } else if v <= -1e-300 {
        ("neg", Some(key_of(-v)))
    } else {
        ("zero", None)
    };
    json!({"value": v, "store": store, "key": key})
}

fn sketches() -> Vec<(Vec<Vec<f64>>, Value)> {
    let parts = vec![
        vec![
            vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0],
            vec![100.0, 200.0, 0.0, -5.0],
        ],
        vec![
            (1..=1000).map(|i| i as f64 * 0.37).collect(),
            (1..=500).map(|i| 1000.0 / i as f64).collect(),
        ],
    ];
    parts
        .into_iter()
        .map(|groups| {
            let mut merged = Sketch::new();
            for g in &groups {
                let mut s = Sketch::new();
                for &v in g {
                    s.add(v);
                }
                merged.merge(&s);
            }
            let qs: Vec<Value> = [0.5, 0.75, 0.9, 0.95, 0.99]
                .iter()
                .map(|&q| json!({"q": q, "value": merged.quantile(q)}))
                .collect();
            (groups, json!({"merged": merged.to_json(), "quantiles": qs}))
        })
        .collect()
}

fn build() -> Value {
    json!({
        "about": "DDSketch mapping, alpha 0.01: key = ceil(ln(|v|) * m), m = 1 / ln1p(2a / (1 - a)); |v| < 1e-300 counts as zero. value_of(key) = exp(key / m) * 2 / (1 + gamma). Quantile rank = floor(q * (count - 1)).",
        "alpha": ALPHA,
        "keys": sample_values().into_iter().map(key_entry).collect::<Vec<_>>(),
        "values_of_keys": ([-1000i32, -1, 0, 1, 2, 100, 1000].into_iter().map(|k| json!({"key": k, "value": value_of(k)})).collect::<Vec<_>>()),
        "sketches": sketches().into_iter().map(|(groups, out)| json!({"groups": groups, "expect": out})).collect::<Vec<_>>(),
    })
}

#[test]
fn server_matches_shared_vectors() {
    let path = vectors_path();
    let fresh = build();
    if std::env::var_os("MINUTELY_WRITE_VECTORS").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&fresh).unwrap() + "\n").unwrap();
    }
    let stored: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).expect("testdata/sketch_vectors.json"),
    )
    .unwrap();
    assert_eq!(
        stored, fresh,
        "the sketch no longer computes the shared vectors"
    );
}
