//! The ClickHouse store against one real ClickHouse server, compared with
//! the embedded store fed the same pushes.

#[path = "support/launcher.rs"]
mod launcher;

use minutely_core::{Agg, Kind, Point, PointValue, Tags};
use minutely_store::embedded::{EmbeddedConfig, EmbeddedStore};
use minutely_store::*;
use minutely_store_clickhouse::{ClickHouseConfig, ClickHouseStore};
use std::time::Duration;

fn point(kind: Kind, name: &str, ts: f64, v: f64, tags: &[(&str, &str)]) -> Point {
    Point {
        kind,
        name: name.into(),
        tags: Tags::from_pairs(tags.iter().copied()),
        ts,
        value: PointValue::Single(v),
    }
}

fn req(batch: Option<&str>, points: Vec<Point>) -> PushRequest {
    PushRequest {
        app: "shop".into(),
        env: "prod".into(),
        batch: batch.map(String::from),
        points: points.into_iter().enumerate().collect(),
    }
}

fn open(url: &str) -> ClickHouseStore {
    let mut cfg = ClickHouseConfig::new(url.parse().unwrap());
    // Everything older than two hours counts as closed, so the test can
    // roll up the hours it wrote.
    cfg.late_window_secs = 3_600;
    cfg.maintenance_interval = Duration::from_secs(3_600);
    ClickHouseStore::open(cfg).unwrap()
}

const HOSTILE: &str = r#"it's "quoted" \ back\\slash'); DROP TABLE points; -- SELECT * FROM x"#;

/// Three days of points, with the same series and minutes from two writers.
fn workload(t0: i64) -> Vec<Vec<Point>> {
    let mut batches = Vec::new();
    for part in 0..4 {
        let mut pts = Vec::new();
        for m in (0..3 * 24 * 60).step_by(7) {
            let ts = (t0 + m * 60) as f64 + part as f64 * 7.0 + 1.0;
            let region = ["eu", "us", HOSTILE][(m as usize + part) % 3];
            pts.push(point(
                Kind::Counter,
                "orders",
                ts,
                (m % 5 + 1) as f64,
                &[("region", region)],
            ));
            pts.push(point(
                Kind::Gauge,
                "queue",
                ts,
                ((m * 3 + part as i64) % 17) as f64 * 0.25,
                &[("host", "a")],
            ));
            pts.push(point(
                Kind::Distribution,
                "latency",
                ts,
                1.0 + ((m * 13 + part as i64) % 400) as f64 * 0.5,
                &[("region", region)],
            ));
        }
        batches.push(pts);
    }
    batches
}

fn read_all(
    store: &dyn Store,
    name: &str,
    res: Resolution,
    from: i64,
    to: i64,
) -> Vec<(Tags, Vec<(i64, Agg)>)> {
    let mut series = store.series_of("shop", Some("prod"), name);
    series.sort_by(|a, b| a.tags.cmp(&b.tags));
    let ids: Vec<_> = series.iter().map(|s| s.id).collect();
    let data = store.read(&ids, res, from, to).unwrap();
    series.into_iter().map(|s| s.tags).zip(data).collect()
}

fn assert_same(a: &dyn Store, b: &dyn Store, from: i64, to: i64) {
    for name in ["orders", "queue", "latency"] {
        for res in Resolution::ALL {
            let (x, y) = (
                read_all(a, name, res, from, to),
                read_all(b, name, res, from, to),
            );
            assert!(
                !x.is_empty() && x.iter().all(|(_, d)| !d.is_empty()),
                "{name} {res:?} empty"
            );
            assert_eq!(x, y, "{name} at {res:?}");
        }
        assert_eq!(a.metric_kind("shop", name), b.metric_kind("shop", name));
    }
    let (ca, cb) = (a.catalogue("shop", None), b.catalogue("shop", Some("prod")));
    assert_eq!(ca.len(), 3);
    for (x, y) in ca.iter().zip(&cb) {
        assert_eq!(
            (&x.name, x.kind, &x.tags, x.series, x.last_seen),
            (&y.name, y.kind, &y.tags, y.series, y.last_seen)
        );
    }
}

/// The generic path of a grouped read: each series read, then merged per
/// group and output bucket as a query merges them.
fn grouped_generic(
    store: &dyn Store,
    groups: &[Vec<SeriesId>],
    res: Resolution,
    from: i64,
    to: i64,
    step: i64,
) -> Vec<Vec<(i64, Agg)>> {
    groups
        .iter()
        .map(|ids| {
            let mut merged: std::collections::BTreeMap<i64, Agg> = Default::default();
            for buckets in store.read(ids, res, from, to).unwrap() {
                for (ts, agg) in buckets {
                    let start = from + (ts - from) / step * step;
                    match merged.get_mut(&start) {
                        Some(m) => m.merge(&agg),
                        None => {
                            merged.insert(start, agg);
                        }
                    }
                }
            }
            merged.into_iter().collect()
        })
        .collect()
}

/// Grouped reads equal the generic path for several groupings, steps and
/// resolutions, aligned or not (values are exact in binary, so sums in
/// another order are still equal).
fn assert_grouped_same(store: &dyn Store, from: i64, to: i64) {
    for name in ["orders", "latency"] {
        let series = store.series_of("shop", Some("prod"), name);
        let ids: Vec<SeriesId> = series.iter().map(|s| s.id).collect();
        let mut by_region: std::collections::BTreeMap<Option<&str>, Vec<SeriesId>> =
            Default::default();
        for s in &series {
            by_region
                .entry(s.tags.get("region"))
                .or_default()
                .push(s.id);
        }
        let groupings = [
            vec![ids.clone()],
            by_region.into_values().collect(),
            ids.iter().map(|id| vec![*id]).collect(),
            // A series with no data and an empty group.
            vec![vec![12_345, ids[0]], Vec::new(), ids[1..].to_vec()],
        ];
        let cases = [
            (Resolution::Minute, from, 60),
            (Resolution::Minute, from + 7 * 60, 300),
            (Resolution::Minute, from, 3_600),
            (Resolution::Hour, from, 3_600),
            (Resolution::Hour, from + 60, 7_200),
            (Resolution::Day, from, 86_400),
        ];
        for groups in &groupings {
            for (res, from, step) in cases {
                let fast = store
                    .read_grouped(groups, res, from, to, step)
                    .unwrap()
                    .expect("the ClickHouse store merges groups itself");
                let generic = grouped_generic(store, groups, res, from, to, step);
                assert!(generic.iter().any(|g| !g.is_empty()), "{name} {res:?}");
                assert_eq!(fast, generic, "{name} {res:?} from {from} step {step}");
            }
        }
    }
}

#[test]
fn two_writers_match_the_embedded_store_at_every_resolution() {
    let Some(ch) = launcher::single() else { return };
    let url = format!("clickhouse://{}/minutely", ch.host());
    let (one, two) = (open(&url), open(&url));
    let dir = tempfile::tempdir().unwrap();
    let embedded = EmbeddedStore::open(EmbeddedConfig::new(dir.path())).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let t0 = (now / 86_400 - 4) * 86_400;
    for (i, pts) in workload(t0).into_iter().enumerate() {
        let key = format!("batch-{i}");
        let first = if i % 2 == 0 { &one } else { &two };
        let other = if i % 2 == 0 { &two } else { &one };
        let out = first.push(req(Some(&key), pts.clone())).unwrap();
        assert_eq!((out.accepted, out.duplicate), (pts.len(), false));
        // The client did not see the answer and retries through the other server.
        let again = other.push(req(Some(&key), pts.clone())).unwrap();
        assert_eq!((again.accepted, again.duplicate), (pts.len(), true));
        embedded.push(req(Some(&key), pts)).unwrap();
    }
    // A retry racing the first write: the second server does not see the
    // batch row yet (dropped here to force it) and writes the same rows
    // again; they still count once.
    let late = vec![point(
        Kind::Counter,
        "orders",
        (t0 + 60) as f64,
        1000.0,
        &[("region", "eu")],
    )];
    let raced = req(Some("race"), late);
    one.push(raced.clone()).unwrap();
    ch.sql("TRUNCATE TABLE minutely.batches");
    assert!(!two.push(raced.clone()).unwrap().duplicate);
    embedded.push(raced).unwrap();
    let (from, to) = (t0, t0 + 3 * 86_400);
    assert_same(&embedded, &one, from, to);
    assert_same(&embedded, &two, from, to);
    assert_grouped_same(&two, from, to);
    // A series in two groups would count in one only: the generic path.
    assert_eq!(
        two.read_grouped(&[vec![7], vec![7]], Resolution::Minute, from, to, 60)
            .unwrap(),
        None
    );
    assert_eq!(
        embedded
            .read_grouped(&[vec![1]], Resolution::Minute, from, to, 60)
            .unwrap(),
        None
    );
    let tags: Vec<Tags> = two
        .series_of("shop", None, "orders")
        .into_iter()
        .map(|s| s.tags)
        .collect();
    assert!(
        tags.iter().any(|t| t.get("region") == Some(HOSTILE)),
        "{tags:?}"
    );

    // Rollups of the closed hours and days, written twice (two servers).
    one.maintain().unwrap();
    two.maintain().unwrap();
    let rolled: u64 = ch
        .sql("SELECT count() FROM minutely.rollups")
        .trim()
        .parse()
        .unwrap();
    assert!(rolled > 100, "{rolled} rollup rows");
    assert_same(&embedded, &one, from, to);
    assert_grouped_same(&one, from, to);

    // A kind conflict is refused, as in the embedded store.
    let bad = two
        .push(req(
            None,
            vec![point(Kind::Gauge, "orders", (t0 + 60) as f64, 1.0, &[])],
        ))
        .unwrap();
    assert_eq!((bad.accepted, bad.rejected[0].reason), (0, "kind_conflict"));
}

#[test]
fn metadata_round_trips_between_servers() {
    let Some(ch) = launcher::single() else { return };
    // A dead host first: requests fail over to the live one. The user has a
    // password with a space.
    let url = format!(
        "clickhouse://writer:s3cret%20pass@127.0.0.1:1,{}/meta_db",
        ch.host()
    );
    let (a, b) = (open(&url), open(&url));
    a.create_app(AppRecord {
        name: HOSTILE.into(),
        created: 1,
    })
    .unwrap();
    assert!(matches!(
        b.create_app(AppRecord {
            name: HOSTILE.into(),
            created: 2
        }),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        b.apps().unwrap(),
        vec![AppRecord {
            name: HOSTILE.into(),
            created: 1
        }]
    );
    let key = KeyRecord {
        id: "k1".into(),
        hash: "h1".into(),
        app: HOSTILE.into(),
        scope: Scope::Read,
        name: "n".into(),
        created: 3,
    };
    a.put_key(key.clone()).unwrap();
    assert_eq!(b.keys().unwrap(), vec![key]);
    assert!(b.revoke_key("k1").unwrap());
    assert!(!a.revoke_key("k1").unwrap());
    assert!(a.keys().unwrap().is_empty());

    let dash = DashboardRecord {
        app: "shop".into(),
        id: "d1".into(),
        created: 1,
        updated: 2,
        body: "{\"title\":\"x'\\\\\"}".into(),
    };
    a.put_dashboard(dash.clone()).unwrap();
    assert_eq!(b.dashboards("shop").unwrap(), vec![dash]);
    assert!(b.delete_dashboard("shop", "d1").unwrap());
    assert!(!a.delete_dashboard("shop", "d1").unwrap());

    let alert = AlertRecord {
        app: "shop".into(),
        id: "slow".into(),
        created: 1,
        updated: 1,
        body: "{}".into(),
    };
    a.put_alert(alert.clone()).unwrap();
    assert_eq!(b.alerts(None).unwrap(), vec![alert]);
    let incident = IncidentRecord {
        app: "shop".into(),
        id: "slow-1".into(),
        alert_id: "slow".into(),
        opened_at: 10,
        closed_at: Some(20),
        body: "{}".into(),
    };
    let ids = a
        .commit_alert_pass(AlertPass {
            app: "shop".into(),
            alert_id: "slow".into(),
            state: "{\"s\":1}".into(),
            incidents: vec![incident.clone()],
            notifications: vec!["n1".into(), "n2".into()],
            now: 100,
        })
        .unwrap();
    assert_eq!(ids.len(), 2);
    assert!(ids[0] < (1u64 << 53));
    assert_eq!(
        b.alert_state("shop", "slow").unwrap().as_deref(),
        Some("{\"s\":1}")
    );
    assert_eq!(b.incidents("shop").unwrap(), vec![incident]);
    let outbox = b.outbox().unwrap();
    assert_eq!(
        outbox.iter().map(|e| e.body.as_str()).collect::<Vec<_>>(),
        ["n1", "n2"]
    );
    let mut failed = outbox[0].clone();
    failed.attempts = 1;
    failed.last_error = Some("refused".into());
    a.update_outbox(failed.clone()).unwrap();
    b.remove_outbox(outbox[1].id).unwrap();
    a.update_outbox(outbox[1].clone()).unwrap(); // removed stays removed
    assert_eq!(b.outbox().unwrap(), vec![failed]);
    assert_eq!(a.prune_incidents(21).unwrap(), 1);
    assert!(b.incidents("shop").unwrap().is_empty());
    assert!(a.delete_alert("shop", "slow").unwrap());
    assert_eq!(b.alert_state("shop", "slow").unwrap(), None);
    assert!(b.alerts(Some("shop")).unwrap().is_empty());
}

fn counter_total(store: &dyn Store, res: Resolution, from: i64, to: i64) -> f64 {
    read_all(store, "orders", res, from, to)
        .iter()
        .flat_map(|(_, d)| d)
        .map(|(_, a)| match a {
            Agg::Counter(v) => *v,
            o => panic!("{o:?}"),
        })
        .sum()
}

#[test]
fn retention_drops_partitions_only_after_rollups_hold_them() {
    let Some(ch) = launcher::single() else { return };
    let mut cfg =
        ClickHouseConfig::new(format!("clickhouse://{}/kept", ch.host()).parse().unwrap());
    cfg.late_window_secs = 3_600;
    cfg.maintenance_interval = Duration::from_secs(3_600);
    cfg.retention = Retention {
        minute_days: Some(2),
        hour_days: Some(30),
        day_days: None,
    };
    let store = ClickHouseStore::open(cfg).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let old = (now / 86_400 - 70) * 86_400;
    let recent = (now / 86_400 - 4) * 86_400;
    for t in [old, recent] {
        let pts = (0..48)
            .map(|h| point(Kind::Counter, "orders", (t + h * 1_800) as f64, 2.0, &[]))
            .collect();
        assert_eq!(store.push(req(None, pts)).unwrap().accepted, 48);
    }
    let day = |t: i64| (t, t + 86_400);
    assert_eq!(
        counter_total(&store, Resolution::Minute, day(old).0, day(old).1),
        96.0
    );
    // Seven days per pass: ten passes catch up with seventy days.
    for _ in 0..11 {
        store.maintain().unwrap();
    }
    for (t, res, want) in [
        (old, Resolution::Minute, 0.0),
        (old, Resolution::Hour, 0.0),
        (old, Resolution::Day, 96.0),
        (recent, Resolution::Minute, 0.0),
        (recent, Resolution::Hour, 96.0),
        (recent, Resolution::Day, 96.0),
    ] {
        assert_eq!(
            counter_total(&store, res, day(t).0, day(t).1),
            want,
            "{res:?} at {t}"
        );
    }
}
