//! Block files through the store: every block is where the places say,
//! the live bytes counted per file are the bytes the places name, dead
//! files go, and a reader's snapshot keeps reading files deleted after it
//! began.

use super::block_files::{file_name, parse_name};
use super::tables::BLOCK_FILES;
use super::tests::{base, counter_sums, point, req};
use super::*;
use minutely_core::Point;
use redb::ReadableTable;
use std::collections::{BTreeMap, BTreeSet};

/// A point of counter `orders`, one series per `series` number.
fn counter(ts: i64, v: f64, series: usize) -> Point {
    point(
        Kind::Counter,
        "orders",
        ts as f64,
        v,
        &[("n", &series.to_string())],
    )
}

fn push(store: &EmbeddedStore, points: Vec<Point>) {
    store.push(req(None, points)).unwrap();
}

/// Minute sums of every series, summed per minute.
fn sums(store: &EmbeddedStore, from: i64, to: i64) -> Vec<(i64, f64)> {
    counter_sums(store, Resolution::Minute, from, to)
}

/// What the directory and redb say about the block files.
struct Audit {
    /// Files in `blocks/`, by id, with their lengths.
    on_disk: BTreeMap<u64, u64>,
    /// `block_files` rows: id -> (live, length).
    rows: BTreeMap<u64, (u64, u64)>,
    /// Bytes of blocks the committed places name, per file.
    named: BTreeMap<u64, u64>,
    /// Files open for readers.
    in_set: BTreeSet<u64>,
}

fn audit(store: &EmbeddedStore) -> Audit {
    let inner = &store.inner;
    let mut on_disk = BTreeMap::new();
    for e in std::fs::read_dir(inner.block_files.dir()).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_str().unwrap().to_string();
        if name.ends_with(".places") {
            continue;
        }
        let id = parse_name(&name).expect("only block and places files");
        on_disk.insert(id, e.metadata().unwrap().len());
    }
    let db = inner.db.get().unwrap();
    let txn = db.begin_read().unwrap();
    let mut rows = BTreeMap::new();
    for e in txn.open_table(BLOCK_FILES).unwrap().iter().unwrap() {
        let (k, v) = e.unwrap();
        rows.insert(k.value(), v.value());
    }
    let mut named = BTreeMap::new();
    let set = inner.block_files.snapshot();
    for (_, place) in set.places().blocks() {
        *named.entry(place.file).or_default() += u64::from(place.len);
    }
    Audit {
        on_disk,
        rows,
        named,
        in_set: inner.block_files.snapshot().ids(),
    }
}

/// The bookkeeping is exact: the directory holds the files redb lists,
/// with the lengths it records, each file's live bytes are the bytes redb
/// names in it, and no block names a file that is not listed.
fn assert_consistent(a: &Audit) {
    let listed: BTreeSet<u64> = a.rows.keys().copied().collect();
    let present: BTreeSet<u64> = a.on_disk.keys().copied().collect();
    assert_eq!(listed, present, "files on disk vs listed");
    assert_eq!(listed, a.in_set, "files open for readers vs listed");
    for (id, (live, len)) in &a.rows {
        assert_eq!(a.on_disk[id], *len, "length of file {id}");
        assert_eq!(
            a.named.get(id).copied().unwrap_or(0),
            *live,
            "live bytes of file {id}"
        );
    }
    for id in a.named.keys() {
        assert!(a.rows.contains_key(id), "a block names unlisted file {id}");
    }
}

/// Checkpoints of `rounds` rounds: each adds a minute to 40 series (so
/// rewriting their day and rollup blocks), a late point to one of them,
/// and one minute to a series written only that once, whose blocks stay
/// behind in that round's file. Checks the bookkeeping after each, with
/// `check`, and returns the expected minute sums.
fn rounds(
    store: &EmbeddedStore,
    t0: i64,
    rounds: i64,
    collect: block_files::Collect,
    check: impl Fn(i64, &Audit),
) -> Vec<(i64, f64)> {
    let mut want: BTreeMap<i64, f64> = BTreeMap::new();
    for round in 0..rounds {
        let ts = t0 + round * 60;
        let mut points: Vec<Point> = (0..40).map(|s| counter(ts, (s + 1) as f64, s)).collect();
        points.push(counter(t0, 0.5, round as usize % 5));
        points.push(counter(ts, 1_000.0, 100 + round as usize));
        *want.entry(ts).or_default() += (1..=40).sum::<i64>() as f64 + 1_000.0;
        *want.entry(t0).or_default() += 0.5;
        push(store, points);
        store.inner.checkpoint_collecting(collect).unwrap();
        let a = audit(store);
        assert_consistent(&a);
        check(round, &a);
    }
    want.into_iter().collect()
}

#[test]
fn files_mostly_dead_are_collected_and_counts_stay_exact() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = base();
    let store = EmbeddedStore::open(EmbeddedConfig::new(dir.path())).unwrap();
    // Only the rule of dead halves: every file but the newest keeps at
    // least half its bytes live, so their number stays small.
    let halves = block_files::Collect {
        live_below: 0.5,
        smaller_than: 0,
        budget: u64::MAX,
        compact_places: false,
    };
    let newest = |a: &Audit| *a.rows.keys().last().unwrap();
    let want = rounds(&store, t0, 30, halves, |round, a| {
        for (id, (live, len)) in &a.rows {
            if *id != newest(a) {
                assert!(
                    2 * live >= *len - 8,
                    "round {round}: file {id} {live}/{len}"
                );
            }
        }
        assert!(a.rows.len() <= 4, "round {round}: {:?}", a.rows);
    });
    assert_eq!(sums(&store, t0, t0 + 3_600), want);

    // Without any rule, the files of the series written once stay.
    let never = block_files::Collect {
        live_below: 0.0,
        smaller_than: 0,
        budget: 0,
        compact_places: false,
    };
    let t1 = t0 + 3_600;
    let kept = rounds(&store, t1, 10, never, |_, _| {});
    assert!(audit(&store).rows.len() >= 10);
    assert_eq!(sums(&store, t1, t1 + 3_600), kept);
    drop(store);

    let store = EmbeddedStore::open(EmbeddedConfig::new(dir.path())).unwrap();
    assert_eq!(sums(&store, t0, t0 + 3_600), want);
    assert_eq!(sums(&store, t1, t1 + 3_600), kept);
    let a = audit(&store);
    assert_consistent(&a);
    // The clean stop's collection left almost every byte live, in few files.
    let live: u64 = a.rows.values().map(|(l, _)| l).sum();
    let len: u64 = a.rows.values().map(|(_, n)| n).sum();
    assert!(
        live as f64 >= 0.9 * (len - 8 * a.rows.len() as u64) as f64,
        "{:?}",
        a.rows
    );
    assert!(a.rows.len() <= 2, "{:?}", a.rows);
    assert!(store.verify().unwrap().is_clean());
    // One places file, which the clean stop rewrote as a snapshot: no
    // older one left beside it.
    let places: Vec<_> = std::fs::read_dir(store.inner.block_files.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".places"))
        .collect();
    assert_eq!(places.len(), 1, "{places:?}");
}

#[test]
fn retention_counts_dropped_blocks_dead() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = EmbeddedConfig::new(dir.path());
    cfg.retention.minute_days = Some(2);
    let store = EmbeddedStore::open(cfg).unwrap();
    let t0 = base();
    push(&store, (0..20).map(|s| counter(t0, 1.0, s)).collect());
    store.checkpoint().unwrap();
    let before = audit(&store);
    store.inner.apply_retention(t0 + 4 * 86_400).unwrap();
    let after = audit(&store);
    assert_consistent(&after);
    let named = |a: &Audit| a.named.values().sum::<u64>();
    assert!(named(&after) < named(&before));
    assert!(sums(&store, t0, t0 + 60).is_empty());
}

#[test]
fn files_no_commit_names_are_deleted_and_a_missing_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = base();
    {
        let store = EmbeddedStore::open(EmbeddedConfig::new(dir.path())).unwrap();
        push(&store, vec![counter(t0, 3.0, 0)]);
    }
    // A file written by a checkpoint that never committed (a crash).
    let stray = dir.path().join(block_files::DIR).join(file_name(999));
    std::fs::write(&stray, b"MNTBLKS1 half a checkpoint").unwrap();
    {
        let store = EmbeddedStore::open(EmbeddedConfig::new(dir.path())).unwrap();
        assert!(!stray.exists());
        assert_eq!(sums(&store, t0, t0 + 60), vec![(t0, 3.0)]);
        assert_consistent(&audit(&store));
        // A later file never reuses the stray's id.
        push(&store, vec![counter(t0 + 60, 1.0, 0)]);
        store.checkpoint().unwrap();
        assert!(audit(&store).rows.keys().all(|&id| id > 999));
    }
    // A file the database names, gone: the start says which and what to do.
    for e in std::fs::read_dir(dir.path().join(block_files::DIR)).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let err = EmbeddedStore::open(EmbeddedConfig::new(dir.path()))
        .err()
        .expect("opened without its blocks")
        .to_string();
    assert!(
        err.contains(".blk") && err.contains("missing") && err.contains("backup"),
        "{err}"
    );
}

#[test]
fn a_snapshot_reads_files_deleted_after_it_began() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = base();
    let store = EmbeddedStore::open(EmbeddedConfig::new(dir.path())).unwrap();
    push(&store, (0..10).map(|s| counter(t0, 2.0, s)).collect());
    store.checkpoint().unwrap();
    let inner = &store.inner;
    let files = {
        let _gate = inner.gate.read().unwrap();
        inner.block_files.snapshot()
    };
    let old: Vec<u64> = audit(&store).rows.keys().copied().collect();
    // Rewrite every block: the old file dies and is deleted.
    push(&store, (0..10).map(|s| counter(t0 + 60, 1.0, s)).collect());
    store.checkpoint().unwrap();
    let now = audit(&store);
    assert!(
        old.iter().all(|id| !now.rows.contains_key(id)),
        "{old:?} {:?}",
        now.rows
    );
    assert!(old
        .iter()
        .all(|&id| !inner.block_files.dir().join(file_name(id)).exists()));
    // The old snapshot still reads every block it names, bit for bit valid.
    let mut read = 0;
    for (key, place) in files.places().blocks() {
        assert!(old.contains(&place.file));
        let bytes = files.read(place).unwrap();
        blocks::decode(Path::new("x"), key, &bytes).unwrap();
        read += 1;
    }
    assert_eq!(read, 30, "minute, hour and day block of 10 series");
}

#[test]
fn a_directory_of_a_newer_format_is_refused_before_anything_is_read() {
    let dir = tempfile::tempdir().unwrap();
    drop(EmbeddedStore::open(EmbeddedConfig::new(dir.path())).unwrap());
    {
        let db = redb::Database::open(dir.path().join("minutely.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(tables::META)
            .unwrap()
            .insert("format_version", tables::FORMAT_VERSION + 1)
            .unwrap();
        txn.commit().unwrap();
    }
    match EmbeddedStore::open(EmbeddedConfig::new(dir.path())) {
        Err(StoreError::NewerFormat { found, supported }) => {
            assert_eq!((found, supported), (6, 5))
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn series_definitions_live_in_their_file_and_a_repeat_counts_once() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = base();
    let defs = {
        let store = EmbeddedStore::open(EmbeddedConfig::new(dir.path())).unwrap();
        push(&store, (0..3).map(|s| counter(t0, 1.0, s)).collect());
        store.checkpoint().unwrap();
        // Not in redb's table any more.
        let db = store.inner.db.get().unwrap();
        let txn = db.begin_read().unwrap();
        assert_eq!(
            redb::ReadableTableMetadata::len(&txn.open_table(tables::SERIES).unwrap()).unwrap(),
            0
        );
        let (_, defs) = series_file::SeriesFile::open(dir.path()).unwrap();
        defs
    };
    assert_eq!(defs.len(), 3);
    // A crash after the append and before the commit: the next checkpoint
    // appends the same definitions again.
    let (mut file, _) = series_file::SeriesFile::open(dir.path()).unwrap();
    file.append(&defs).unwrap();
    drop(file);
    let store = EmbeddedStore::open(EmbeddedConfig::new(dir.path())).unwrap();
    assert_eq!(store.series_of("shop", Some("prod"), "orders").len(), 3);
    assert_eq!(sums(&store, t0, t0 + 60), vec![(t0, 3.0)]);
    // New series get new ids.
    push(&store, vec![counter(t0, 1.0, 7)]);
    let ids: BTreeSet<u64> = store
        .series_of("shop", Some("prod"), "orders")
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids.len(), 4);
}

#[test]
fn the_store_size_counts_every_file_of_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(EmbeddedConfig::new(dir.path())).unwrap();
    push(&store, (0..5).map(|s| counter(base(), 1.0, s)).collect());
    store.checkpoint().unwrap();
    fn total(path: &Path) -> u64 {
        std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| match e.file_type().unwrap().is_dir() {
                true => total(&e.path()),
                false => e.metadata().unwrap().len(),
            })
            .sum()
    }
    let stats = store.stats();
    assert!(audit(&store).named.values().sum::<u64>() > 0);
    assert_eq!(stats.disk_bytes, total(dir.path()));
}
