//! Data directories written by each format version (testdata/datadir-v1:
//! blocks inside redb; testdata/datadir-v2: blocks in block files;
//! testdata/datadir-v3: series definitions in series.defs;
//! testdata/datadir-v4: block places and newest minutes in a places file
//! beside the block files; testdata/datadir-v5: log records with compact
//! point lists) must
//! open in every later version with the same numbers: some in blocks,
//! some only in the write-ahead log, and a remembered batch key.
//! `MINUTELY_WRITE_DATADIR=1` writes the fixture of the current version
//! (only when the format changes on purpose, with a new version number and
//! a new fixture beside the old ones).

use minutely_core::{Agg, Kind, Point, PointValue, Tags};
use minutely_store::embedded::{EmbeddedConfig, EmbeddedStore};
use minutely_store::{PushRequest, Resolution, Store};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Fixed times inside the fixture (2026-11-25 UTC); the store is opened
/// with a retention long enough that nothing expires.
const T0: i64 = 1_795_600_800;

/// The format version this build writes.
const CURRENT: u64 = 5;

fn fixture(version: u64) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../testdata/datadir-v{version}"))
}

fn config(dir: &Path) -> EmbeddedConfig {
    let mut cfg = EmbeddedConfig::new(dir);
    cfg.retention.minute_days = None;
    cfg.retention.hour_days = None;
    cfg
}

fn point(kind: Kind, name: &str, ts: i64, v: f64) -> Point {
    Point {
        kind,
        name: name.into(),
        tags: Tags::from_pairs([("region", "eu")]),
        ts: ts as f64,
        value: PointValue::Single(v),
    }
}

fn push(store: &EmbeddedStore, batch: Option<&str>, points: Vec<Point>) {
    let req = PushRequest {
        app: "shop".into(),
        env: "production".into(),
        batch: batch.map(String::from),
        points: points.into_iter().enumerate().collect(),
    };
    store.push(req).unwrap();
}

/// Unpacks the fixture (`minutely.redb.gz`, `wal/`, from version 2
/// `blocks/`, from version 3 `series.defs`) into `to`.
fn unpack(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("wal")).unwrap();
    copy_dir(&from.join("blocks"), &to.join("blocks"));
    if from.join("series.defs").exists() {
        std::fs::copy(from.join("series.defs"), to.join("series.defs")).unwrap();
    }
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(from.join("minutely.redb.gz")).unwrap())
        .read_to_end(&mut raw)
        .unwrap();
    std::fs::write(to.join("minutely.redb"), raw).unwrap();
    copy_dir(&from.join("wal"), &to.join("wal"));
}

/// Copies the files of `from`, if it exists, into `to`.
fn copy_dir(from: &Path, to: &Path) {
    let Ok(entries) = std::fs::read_dir(from) else {
        return;
    };
    std::fs::create_dir_all(to).unwrap();
    for e in entries {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn write_fixture() {
    let tmp = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(config(tmp.path())).unwrap();
    // In redb after a checkpoint: an hour of each kind.
    let mut pts = Vec::new();
    for m in 0..60 {
        pts.push(point(
            Kind::Counter,
            "order_count",
            T0 + m * 60,
            (m % 5) as f64,
        ));
        pts.push(point(
            Kind::Gauge,
            "active_shoppers",
            T0 + m * 60 + 30,
            100.0 + m as f64 * 0.25,
        ));
        pts.push(point(
            Kind::Distribution,
            "order_item_count",
            T0 + m * 60 + 5,
            (m % 9 + 1) as f64,
        ));
    }
    push(&store, Some("fixture-batch-1"), pts);
    store.checkpoint().unwrap();
    // Only in the log: a late counter point and a new series.
    push(
        &store,
        None,
        vec![
            point(Kind::Counter, "order_count", T0 + 10, 100.0),
            point(Kind::Counter, "refund_count", T0 + 3_000, 2.0),
        ],
    );
    let out = fixture(CURRENT);
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(out.join("wal")).unwrap();
    copy_dir(&tmp.path().join("blocks"), &out.join("blocks"));
    std::fs::copy(tmp.path().join("series.defs"), out.join("series.defs")).unwrap();
    // Gzipped: a fresh redb file is mostly zeros.
    let raw = std::fs::read(tmp.path().join("minutely.redb")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&raw).unwrap();
    std::fs::write(out.join("minutely.redb.gz"), gz.finish().unwrap()).unwrap();
    copy_dir(&tmp.path().join("wal"), &out.join("wal"));
    drop(store);
}

#[test]
fn version_1_data_directory_opens_with_the_same_numbers() {
    opens_with_the_same_numbers(1);
}

#[test]
fn version_2_data_directory_opens_with_the_same_numbers() {
    opens_with_the_same_numbers(2);
}

#[test]
fn version_3_data_directory_opens_with_the_same_numbers() {
    opens_with_the_same_numbers(3);
}

#[test]
fn version_4_data_directory_opens_with_the_same_numbers() {
    opens_with_the_same_numbers(4);
}

#[test]
fn version_5_data_directory_opens_with_the_same_numbers() {
    if std::env::var_os("MINUTELY_WRITE_DATADIR").is_some() {
        write_fixture();
    }
    opens_with_the_same_numbers(5);
}

fn opens_with_the_same_numbers(version: u64) {
    let tmp = tempfile::tempdir().unwrap();
    unpack(&fixture(version), tmp.path());
    let store = EmbeddedStore::open(config(tmp.path())).unwrap();
    let read = |name: &str, res: Resolution| {
        let ids: Vec<_> = store
            .series_of("shop", Some("production"), name)
            .iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(ids.len(), 1, "{name}");
        store.read(&ids, res, T0, T0 + 3_600).unwrap().remove(0)
    };
    let hour = read("order_count", Resolution::Hour);
    assert_eq!(
        hour,
        vec![(
            T0,
            Agg::Counter((0..60).map(|m| (m % 5) as f64).sum::<f64>() + 100.0)
        )]
    );
    assert_eq!(
        read("refund_count", Resolution::Minute),
        vec![(T0 + 3_000, Agg::Counter(2.0))]
    );
    match &read("active_shoppers", Resolution::Minute)[59].1 {
        Agg::Gauge(g) => assert_eq!((g.last, g.count), (100.0 + 59.0 * 0.25, 1)),
        other => panic!("{other:?}"),
    }
    match &read("order_item_count", Resolution::Hour)[0].1 {
        Agg::Distribution(d) => {
            assert_eq!((d.count, d.min, d.max), (60.0, 1.0, 9.0));
            assert!((d.quantile(0.5).unwrap() - 5.0).abs() <= 0.05);
        }
        other => panic!("{other:?}"),
    }
    // The batch key from the old log and blocks is still remembered.
    let again = PushRequest {
        app: "shop".into(),
        env: "production".into(),
        batch: Some("fixture-batch-1".into()),
        points: vec![(0, point(Kind::Counter, "order_count", T0, 1.0))],
    };
    assert!(store.push(again).unwrap().duplicate);
    drop(store);
    // What is written from now on an older build cannot read: the
    // directory says the current version.
    let db = redb::Database::open(tmp.path().join("minutely.redb")).unwrap();
    let txn = db.begin_read().unwrap();
    let meta: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
    let version = txn.open_table(meta).unwrap().get("format_version").unwrap();
    assert_eq!(version.map(|v| v.value()), Some(CURRENT));
}
