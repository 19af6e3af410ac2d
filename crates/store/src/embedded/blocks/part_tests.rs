//! Parts read through the block cache (payload kept, part kept) are the
//! parts of the whole slots, bit for bit, and a rewritten block is never
//! answered from what was kept of its old bytes.

use super::*;
use crate::embedded::block_files::BlockFiles;
use minutely_core::GaugeAgg;
use proptest::prelude::*;
use redb::backends::InMemoryBackend;
use redb::Database;
use std::sync::atomic::{AtomicU64, Ordering};

const PARTS: [Part; 5] = [Part::Sum, Part::Last, Part::Mean, Part::Min, Part::Max];

/// A series id no other test of the process uses: the cache is global.
fn fresh_sid() -> SeriesId {
    static NEXT: AtomicU64 = AtomicU64::new(0xB10C_0000_0000);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A database in memory with its block files in a temporary directory.
struct Db {
    db: Database,
    files: BlockFiles,
    _dir: tempfile::TempDir,
}

fn db() -> Db {
    let db = Database::builder()
        .create_with_backend(InMemoryBackend::new())
        .unwrap();
    crate::embedded::meta::init_tables(&db).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = BlockFiles::open(dir.path(), &db).unwrap();
    Db {
        db,
        files,
        _dir: dir,
    }
}

impl std::ops::Deref for Db {
    type Target = Database;
    fn deref(&self) -> &Database {
        &self.db
    }
}

fn write(db: &Db, sid: SeriesId, block: u32, slots: Vec<(u16, Agg)>) {
    let tx = db.begin_write().unwrap();
    let mut writes = db.files.writes();
    upsert(&mut writes, sid, Resolution::Minute, block, slots, true).unwrap();
    let prepared = writes.prepare(&tx).unwrap();
    tx.commit().unwrap();
    db.files.committed(prepared).delete_files();
}

/// The blocks as a read sees them.
fn source(db: &Db) -> Arc<crate::embedded::block_files::FileSet> {
    db.files.snapshot()
}

fn bits(v: &[(i64, Slim)]) -> Vec<(i64, u64, i64)> {
    v.iter().map(|(t, s)| (*t, s.v.to_bits(), s.w)).collect()
}

/// Every part of the series' first two blocks read as parts, three times
/// over (inflated, then from the kept payload, then from the kept part),
/// against the parts of whole slots.
fn check_parts(db: &Db, sid: SeriesId) -> Result<(), TestCaseError> {
    let t = source(db);
    let mut reader = PartReader::default();
    // Whole blocks, and a range that cuts both within a slot.
    for (from, to) in [(0, 2 * 86_400), (29_990, 130_017), (29_990, 43_217)] {
        let whole = read_range(&t, sid, Resolution::Minute, from, to).unwrap();
        for part in PARTS {
            let want: Vec<(i64, Slim)> = whole
                .iter()
                .filter_map(|(ts, a)| part.of(a).map(|s| (*ts, s)))
                .collect();
            for _ in 0..3 {
                let m = Resolution::Minute;
                let got = read_range_part(&t, sid, m, from, to, part, &mut reader);
                prop_assert_eq!(bits(&got.unwrap()), bits(&want));
            }
        }
    }
    Ok(())
}

fn gauge(v: f64, ms: i64, n: u64) -> Agg {
    let mut g = GaugeAgg::single(v, ms);
    if n > 1 {
        g.count = n;
        g.sum = v * n as f64;
        g.min = v - 1.0;
    }
    Agg::Gauge(g)
}

proptest! {
    #[test]
    fn cached_parts_read_like_whole_slots(
        rows in prop::collection::btree_map(
            0u16..1_440,
            (prop_oneof![-1e6f64..1e6, Just(0.1 + 0.2), Just(-0.0)], any::<i64>(), 1u64..3),
            1..60,
        ),
        counter in any::<bool>(),
        small_ms in any::<bool>(),
    ) {
        let sid = fresh_sid();
        let db = db();
        let slots: Vec<(u16, Agg)> = rows
            .iter()
            .map(|(&s, &(v, ms, n))| {
                let ms = if small_ms { ms % 100_000_000 } else { ms };
                (s, if counter { Agg::Counter(v) } else { gauge(v, ms, n) })
            })
            .collect();
        write(&db, sid, 0, slots.clone());
        write(&db, sid, 1, slots);
        check_parts(&db, sid)?;
    }
}

#[test]
fn a_rewritten_block_is_not_answered_from_the_cache() {
    let sid = fresh_sid();
    let db = db();
    let run =
        |v: f64| (0..1_440u16).map(move |s| (s, gauge(v + f64::from(s), 60_000 * i64::from(s), 1)));
    write(&db, sid, 0, run(1.0).collect());
    check_parts(&db, sid).unwrap();
    // The last read kept the block's decoded maxes; a checkpoint rewrites
    // the block, and a read of maxes must see the new numbers.
    write(&db, sid, 0, run(7.5).collect());
    let t = source(&db);
    let mut reader = PartReader::default();
    let m = Resolution::Minute;
    let got = read_range_part(&t, sid, m, 0, 86_400, Part::Max, &mut reader).unwrap();
    assert_eq!(got.len(), 1_440);
    assert_eq!(got[3].1, Slim { v: 10.5, w: 0 });
    check_parts(&db, sid).unwrap();
}
