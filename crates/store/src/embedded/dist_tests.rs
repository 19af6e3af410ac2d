//! `read_dists` gives, bit for bit, the distribution buckets `read` gives,
//! from blocks, from head minutes not yet checkpointed and from minutes in
//! both (which `overlay` merges).

use super::*;
use proptest::prelude::*;

type Bits = (i64, [u64; 5], Vec<(i32, u64)>, Vec<(i32, u64)>);

fn bits(rows: &DistRows) -> Vec<Bits> {
    let store = |b: &[(i32, f64)]| b.iter().map(|(k, c)| (*k, c.to_bits())).collect();
    rows.iter()
        .map(|(ts, s, pos, neg)| (ts, s.map(f64::to_bits), store(pos), store(neg)))
        .collect()
}

/// Points of `(series, minute, second, value)`; series 3 is a counter.
fn push(store: &EmbeddedStore, t0: i64, points: &[(u8, i64, i64, f64)]) {
    super::test_points::push(store, t0, (Kind::Distribution, "latency"), points);
}

fn check(store: &EmbeddedStore, t0: i64) -> Result<(), TestCaseError> {
    let mut ids: Vec<SeriesId> = ["latency", "orders"]
        .iter()
        .flat_map(|name| store.series_of("shop", Some("prod"), name))
        .map(|s| s.id)
        .collect();
    // An unknown series has no buckets.
    ids.push(u64::MAX);
    let ranges = [(t0 - 86_400, t0 + 86_400), (t0 + 630, t0 + 4_000)];
    for res in Resolution::ALL {
        for ((from, to), sketches) in ranges.into_iter().flat_map(|r| [(r, true), (r, false)]) {
            let whole: Vec<Vec<Bits>> = store
                .read(&ids, res, from, to)
                .unwrap()
                .iter()
                .map(|b| bits(&DistRows::from_buckets(b, sketches)))
                .collect();
            let rows: Vec<Vec<Bits>> = store
                .read_dists(&ids, res, from, to, sketches)
                .unwrap()
                .iter()
                .map(bits)
                .collect();
            prop_assert_eq!(rows, whole, "{:?} {}..{} {}", res, from, to, sketches);
        }
    }
    Ok(())
}

fn points() -> impl Strategy<Value = Vec<(u8, i64, i64, f64)>> {
    let value = prop_oneof![
        0.001f64..1e4,
        -1e3f64..-0.001,
        Just(0.0),
        (-300i32..300).prop_map(|i| 1.05f64.powi(i)),
    ];
    prop::collection::vec((0u8..4, 0i64..90, 0i64..60, value), 0..120)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn dist_rows_read_like_whole_aggregates(first in points(), second in points()) {
        let dir = tempfile::tempdir().unwrap();
        let t0 = minutely_core::time::floor_to(now_secs() as i64 - 7_200, 3_600);
        let store = EmbeddedStore::open(EmbeddedConfig::new(dir.path())).unwrap();
        push(&store, t0, &first);
        // Head minutes only.
        check(&store, t0)?;
        store.checkpoint().unwrap();
        // Blocks, and blocks with head minutes merged in.
        push(&store, t0, &second);
        check(&store, t0)?;
        store.close().unwrap();
        drop(store);
        let store = EmbeddedStore::open(EmbeddedConfig::new(dir.path())).unwrap();
        check(&store, t0)?;
    }
}
