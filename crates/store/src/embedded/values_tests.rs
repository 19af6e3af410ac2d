//! `read_values` gives, bit for bit, what folding `read_part`'s buckets
//! gives ([`SeriesValues::of_parts`]): from blocks (copied whole when the
//! grid is the blocks' own, folded otherwise), from head minutes not yet
//! checkpointed, and from both.

use super::*;
use proptest::prelude::*;

/// Points of `(series, minute, second, value)`; series 3 is a counter.
fn push(store: &EmbeddedStore, t0: i64, points: &[(u8, i64, i64, f64)]) {
    super::test_points::push(store, t0, (Kind::Gauge, "shoppers"), points);
}

fn bits(v: &SeriesValues) -> Vec<Option<u64>> {
    (0..v.len()).map(|i| v.get(i).map(f64::to_bits)).collect()
}

fn check(store: &EmbeddedStore, t0: i64) -> Result<(), TestCaseError> {
    let ids = |name| -> Vec<SeriesId> {
        let mut ids: Vec<_> = store
            .series_of("shop", Some("prod"), name)
            .iter()
            .map(|s| s.id)
            .collect();
        // An unknown series has no values.
        ids.push(u64::MAX);
        ids
    };
    let cases = [
        ("shoppers", Kind::Gauge, Field::Last),
        ("shoppers", Kind::Gauge, Field::Mean),
        ("shoppers", Kind::Gauge, Field::Min),
        ("shoppers", Kind::Gauge, Field::Max),
        ("orders", Kind::Counter, Field::Sum),
        ("orders", Kind::Counter, Field::Rate),
    ];
    for res in Resolution::ALL {
        let secs = res.secs();
        // The blocks' own grid (cutting them, or wider than the data), a
        // coarser one, and one not aligned to the buckets.
        let grids = [
            Grid::new(t0 - 86_400, t0 + 86_400, secs),
            Grid::new(t0 + 600, t0 + 4_020, secs),
            Grid::new(t0, t0 + 5_400, 5 * secs),
            Grid::new(t0 + 30, t0 + 5_430, secs),
        ];
        for grid in grids {
            let to = grid.from + grid.n as i64 * grid.step;
            for (name, kind, field) in cases {
                let part = Part::for_field(kind, field).unwrap();
                let ids = ids(name);
                let want: Vec<_> = store
                    .read_part(&ids, res, grid.from, to, part)
                    .unwrap()
                    .iter()
                    .map(|b| bits(&SeriesValues::of_parts(&grid, part, field, b)))
                    .collect();
                let got: Vec<_> = store
                    .read_values(&ids, res, &grid, to, part, field)
                    .unwrap()
                    .iter()
                    .map(bits)
                    .collect();
                prop_assert_eq!(got, want, "{:?} {:?} {:?}", res, grid, field);
            }
        }
    }
    Ok(())
}

fn points() -> impl Strategy<Value = Vec<(u8, i64, i64, f64)>> {
    let value = prop_oneof![
        -1e4f64..1e4,
        Just(0.0),
        Just(-0.0),
        (0u32..100).prop_map(f64::from)
    ];
    prop::collection::vec((0u8..4, 0i64..90, 0i64..60, value), 0..200)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn values_read_like_folded_parts(first in points(), second in points()) {
        let dir = tempfile::tempdir().unwrap();
        let t0 = minutely_core::time::floor_to(now_secs() as i64 - 7_200, 3_600);
        let store = EmbeddedStore::open(EmbeddedConfig::new(dir.path())).unwrap();
        push(&store, t0, &first);
        // Head minutes only.
        check(&store, t0)?;
        store.checkpoint().unwrap();
        // Blocks only (with gaps where no point came), then blocks with
        // head minutes merged in.
        check(&store, t0)?;
        push(&store, t0, &second);
        check(&store, t0)?;
    }
}
