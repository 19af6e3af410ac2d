//! Checkpoints that append minutes as chunks (and fold rollups forward)
//! store, bit for bit, what one checkpoint of all the same points stores:
//! at every resolution, across midnight, past the chunk limit, with late
//! points among them, and after a restart.

use super::blocks::MAX_CHUNKS;
use super::tables::CHUNKS;
use super::*;
use minutely_core::{Point, PointValue, Tags};
use proptest::prelude::*;
use redb::ReadableTableMetadata;

/// 22:30 UTC the day before yesterday: recent enough for any retention,
/// with a midnight 90 minutes in.
fn start() -> i64 {
    minutely_core::time::floor_to(now_secs() as i64, 86_400) - 86_400 - 90 * 60
}

fn push(store: &EmbeddedStore, kind: Kind, points: &[(i64, f64)]) {
    let points = points
        .iter()
        .map(|&(ts, v)| Point {
            kind,
            name: "m".into(),
            tags: Tags::from_pairs([("host", "a")]),
            ts: ts as f64,
            value: PointValue::Single(v),
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

/// Every stored bucket of the series at each resolution, as text: `Debug`
/// prints each float's shortest exact form, so equal text is equal bits.
fn dump(store: &EmbeddedStore, from: i64, to: i64) -> Vec<String> {
    let ids: Vec<_> = store
        .series_of("shop", Some("prod"), "m")
        .iter()
        .map(|s| s.id)
        .collect();
    Resolution::ALL
        .iter()
        .map(|&res| {
            let from = minutely_core::time::floor_to(from, res.secs());
            format!("{res:?} {:?}", store.read(&ids, res, from, to).unwrap())
        })
        .collect()
}

fn chunk_count(store: &EmbeddedStore) -> u64 {
    store
        .inner
        .db
        .with(|db| {
            let txn = db.begin_read().map_err(engine)?;
            let t = txn.open_table(CHUNKS).map_err(engine)?;
            t.len().map_err(engine)
        })
        .unwrap()
}

/// One checkpoint's points: (minute offset from [`start`], value). Each
/// minute at most once per checkpoint, so the head's merge order is the
/// same whether checkpoints come between them or not.
type Generation = Vec<(i64, f64)>;

/// Generations that mostly move forward (a few minutes, with gaps) and
/// sometimes go back to minutes already written (late points).
fn generations() -> impl Strategy<Value = Vec<Generation>> {
    let step = (
        prop::bool::weighted(0.2),
        prop::collection::vec((1i64..4, -1e6f64..1e6), 1..6),
    );
    prop::collection::vec(step, 1..40).prop_map(|steps| {
        let mut cursor = 0;
        steps
            .into_iter()
            .map(|(late, points)| {
                let mut gen: Generation = Vec::new();
                for (gap, v) in points {
                    let minute = if late && cursor > 0 {
                        (cursor * gap / 5).min(cursor - 1)
                    } else {
                        cursor += gap;
                        cursor
                    };
                    if gen.iter().all(|(m, _)| *m != minute) {
                        gen.push((minute, v));
                    }
                }
                gen
            })
            .collect()
    })
}

fn at(gen: &Generation, t0: i64) -> Vec<(i64, f64)> {
    gen.iter().map(|&(m, v)| (t0 + m * 60 + 7, v)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn appending_checkpoints_store_what_one_checkpoint_stores(
        kind in prop::sample::select(vec![Kind::Counter, Kind::Gauge, Kind::Distribution]),
        gens in generations(),
    ) {
        let t0 = start();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let stepped = open_store(a.path());
        let once = open_store(b.path());
        for gen in &gens {
            push(&stepped, kind, &at(gen, t0));
            stepped.checkpoint().unwrap();
            push(&once, kind, &at(gen, t0));
        }
        once.checkpoint().unwrap();
        let to = t0 + 2 * 86_400;
        let want = dump(&once, t0, to);
        prop_assert_eq!(dump(&stepped, t0, to), want.clone());
        drop(stepped);
        let reopened = open_store(a.path());
        prop_assert_eq!(dump(&reopened, t0, to), want);
        prop_assert!(reopened.verify().unwrap().is_clean());
    }
}

fn open_store(dir: &Path) -> EmbeddedStore {
    EmbeddedStore::open(EmbeddedConfig::new(dir)).unwrap()
}

#[test]
fn chunks_fold_at_the_limit_and_when_the_next_day_starts() {
    let t0 = start();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    // The first checkpoint writes the day's block, the next ones chunks.
    for m in 0..=u64::from(MAX_CHUNKS) {
        push(&store, Kind::Counter, &[(t0 + m as i64 * 60, 0.1)]);
        store.checkpoint().unwrap();
        assert_eq!(chunk_count(&store), m);
    }
    // One past the limit folds them all into the block.
    push(&store, Kind::Counter, &[(t0 + 30 * 60, 0.1)]);
    store.checkpoint().unwrap();
    assert_eq!(chunk_count(&store), 0);
    push(&store, Kind::Counter, &[(t0 + 31 * 60, 0.1)]);
    store.checkpoint().unwrap();
    assert_eq!(chunk_count(&store), 1);
    // The first minutes of the next day fold the day before's chunk.
    push(&store, Kind::Counter, &[(t0 + 90 * 60, 0.1)]);
    store.checkpoint().unwrap();
    assert_eq!(chunk_count(&store), 0);
    let sums: Vec<(i64, f64)> = dump_counter_day(&store, t0);
    // 19 minutes of 0.1 on the first day, one on the second, summed in
    // minute order as a rewrite of the day would.
    let first_day = (0..19).fold(None, |acc: Option<f64>, _| {
        Some(acc.map_or(0.1, |a| a + 0.1))
    });
    let day = minutely_core::time::floor_to(t0, 86_400);
    assert_eq!(sums, vec![(day, first_day.unwrap()), (day + 86_400, 0.1)]);
}

fn dump_counter_day(store: &EmbeddedStore, t0: i64) -> Vec<(i64, f64)> {
    let ids: Vec<_> = store
        .series_of("shop", Some("prod"), "m")
        .iter()
        .map(|s| s.id)
        .collect();
    let from = minutely_core::time::floor_to(t0, 86_400);
    store
        .read(&ids, Resolution::Day, from, from + 2 * 86_400)
        .unwrap()[0]
        .iter()
        .map(|(ts, agg)| match agg {
            Agg::Counter(s) => (*ts, *s),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn retention_folds_the_chunks_of_a_quiet_series_once_its_day_is_over() {
    let t0 = start();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    for m in 0..3 {
        push(&store, Kind::Gauge, &[(t0 + m * 60, m as f64 + 0.3)]);
        store.checkpoint().unwrap();
    }
    let before = dump(&store, t0, t0 + 86_400);
    assert_eq!(chunk_count(&store), 2);
    // Still its day (22:32 of it): the chunks stay.
    store.inner.apply_retention(t0 + 120).unwrap();
    assert_eq!(chunk_count(&store), 2);
    store.inner.apply_retention(t0 + 2 * 3_600).unwrap();
    assert_eq!(chunk_count(&store), 0);
    assert_eq!(dump(&store, t0, t0 + 86_400), before);
}
