use super::*;
use minutely_core::{Point, PointValue, Tags};
use std::collections::BTreeMap;

pub(super) fn point(kind: Kind, name: &str, ts: f64, v: f64, tags: &[(&str, &str)]) -> Point {
    Point {
        kind,
        name: name.into(),
        tags: Tags::from_pairs(tags.iter().copied()),
        ts,
        value: PointValue::Single(v),
    }
}

pub(super) fn req(batch: Option<&str>, points: Vec<Point>) -> PushRequest {
    PushRequest {
        app: "shop".into(),
        env: "prod".into(),
        batch: batch.map(String::from),
        points: points.into_iter().enumerate().collect(),
    }
}

fn open(dir: &Path) -> EmbeddedStore {
    EmbeddedStore::open(EmbeddedConfig::new(dir)).unwrap()
}

/// A recent whole hour, so points are inside the late window.
pub(super) fn base() -> i64 {
    minutely_core::time::floor_to(now_secs() as i64 - 7_200, 3_600)
}

pub(super) fn counter_sums(
    store: &EmbeddedStore,
    res: Resolution,
    from: i64,
    to: i64,
) -> Vec<(i64, f64)> {
    let ids: Vec<_> = store
        .series_of("shop", Some("prod"), "orders")
        .iter()
        .map(|s| s.id)
        .collect();
    let mut out: BTreeMap<i64, f64> = BTreeMap::new();
    for series in store.read(&ids, res, from, to).unwrap() {
        for (ts, agg) in series {
            if let Agg::Counter(s) = agg {
                *out.entry(ts).or_default() += s;
            }
        }
    }
    out.into_iter().collect()
}

#[test]
fn reads_agree_before_and_after_checkpoint_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = base();
    let store = open(dir.path());
    let mut points = Vec::new();
    for m in 0..120 {
        points.push(point(
            Kind::Counter,
            "orders",
            (t0 + m * 60 + 5) as f64,
            1.0,
            &[("region", "eu")],
        ));
        points.push(point(
            Kind::Counter,
            "orders",
            (t0 + m * 60 + 50) as f64,
            2.0,
            &[("region", "us")],
        ));
    }
    let out = store.push(req(None, points)).unwrap();
    assert_eq!(out.accepted, 240);
    let before = counter_sums(&store, Resolution::Minute, t0, t0 + 7_200);
    assert_eq!(before.len(), 120);
    assert!(before.iter().all(|(_, s)| *s == 3.0));
    assert_eq!(
        counter_sums(&store, Resolution::Hour, t0, t0 + 7_200),
        vec![(t0, 180.0), (t0 + 3_600, 180.0)]
    );

    store.checkpoint().unwrap();
    assert_eq!(
        counter_sums(&store, Resolution::Minute, t0, t0 + 7_200),
        before
    );
    assert_eq!(
        counter_sums(&store, Resolution::Hour, t0, t0 + 7_200),
        vec![(t0, 180.0), (t0 + 3_600, 180.0)]
    );
    let day = minutely_core::time::floor_to(t0, 86_400);
    let day_total: f64 = counter_sums(&store, Resolution::Day, day, day + 2 * 86_400)
        .iter()
        .map(|p| p.1)
        .sum();
    assert_eq!(day_total, 360.0);

    // A late point merges into a checkpointed minute and its rollups.
    store
        .push(req(
            None,
            vec![point(
                Kind::Counter,
                "orders",
                (t0 + 10) as f64,
                10.0,
                &[("region", "eu")],
            )],
        ))
        .unwrap();
    store.checkpoint().unwrap();
    assert_eq!(
        counter_sums(&store, Resolution::Minute, t0, t0 + 60),
        vec![(t0, 13.0)]
    );
    assert_eq!(
        counter_sums(&store, Resolution::Hour, t0, t0 + 3_600),
        vec![(t0, 190.0)]
    );

    store.close().unwrap();
    drop(store);
    let store = open(dir.path());
    assert_eq!(
        counter_sums(&store, Resolution::Hour, t0, t0 + 7_200),
        vec![(t0, 190.0), (t0 + 3_600, 180.0)]
    );
    assert_eq!(store.series_of("shop", Some("prod"), "orders").len(), 2);
    assert_eq!(
        store.catalogue("shop", None)[0].last_seen,
        Some(t0 + 119 * 60)
    );
}

#[test]
fn batches_count_once_also_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let t = (base() + 30) as f64;
    let p = || vec![point(Kind::Counter, "orders", t, 5.0, &[])];
    {
        let store = open(dir.path());
        assert!(!store.push(req(Some("host:1"), p())).unwrap().duplicate);
        let again = store.push(req(Some("host:1"), p())).unwrap();
        assert!(again.duplicate);
        assert_eq!(again.accepted, 1);
    }
    let store = open(dir.path());
    assert!(store.push(req(Some("host:1"), p())).unwrap().duplicate);
    assert!(!store.push(req(Some("host:2"), p())).unwrap().duplicate);
    let m = minutely_core::time::minute_of(t);
    assert_eq!(
        counter_sums(&store, Resolution::Minute, m, m + 60),
        vec![(m, 10.0)]
    );
}

#[test]
fn kind_conflicts_and_series_limit_reject_only_the_bad_points() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = EmbeddedConfig::new(dir.path());
    cfg.max_series_per_app = 2;
    let store = EmbeddedStore::open(cfg).unwrap();
    let t = (base() + 1) as f64;
    let out = store
        .push(req(
            None,
            vec![
                point(Kind::Counter, "orders", t, 1.0, &[("r", "a")]),
                point(Kind::Gauge, "orders", t, 1.0, &[("r", "a")]),
                point(Kind::Counter, "orders", t, 1.0, &[("r", "b")]),
                point(Kind::Counter, "orders", t, 1.0, &[("r", "c")]),
            ],
        ))
        .unwrap();
    assert_eq!(out.accepted, 2);
    assert_eq!(out.rejected.len(), 2);
    assert_eq!(out.rejected[0].index, 1);
    assert!(
        out.rejected[0].message.contains("is a counter"),
        "{}",
        out.rejected[0].message
    );
    assert_eq!(out.rejected[1].index, 3);
    assert_eq!(out.rejected[1].reason, "series_limit");
    assert!(
        out.rejected[1].message.contains("limit of 2 series"),
        "{}",
        out.rejected[1].message
    );
}

#[test]
fn gauges_and_distributions_survive_checkpoint_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = base();
    let store = open(dir.path());
    let mut points = Vec::new();
    for i in 0..100 {
        points.push(point(
            Kind::Gauge,
            "shoppers",
            (t0 + i) as f64,
            i as f64 * 0.5,
            &[],
        ));
        points.push(point(
            Kind::Distribution,
            "items",
            (t0 + i) as f64,
            (i % 10) as f64 + 0.25,
            &[],
        ));
    }
    store.push(req(None, points)).unwrap();
    let read = |name: &str| {
        let ids: Vec<_> = store
            .series_of("shop", Some("prod"), name)
            .iter()
            .map(|s| s.id)
            .collect();
        store.read(&ids, Resolution::Minute, t0, t0 + 120).unwrap()
    };
    let (g1, d1) = (read("shoppers"), read("items"));
    store.checkpoint().unwrap();
    assert_eq!(read("shoppers"), g1);
    assert_eq!(read("items"), d1);
    match &g1[0][1].1 {
        Agg::Gauge(g) => assert_eq!((g.last, g.count, g.min), (49.5, 40, 30.0)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn retention_drops_old_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = EmbeddedConfig::new(dir.path());
    cfg.retention.minute_days = Some(2);
    let store = EmbeddedStore::open(cfg).unwrap();
    let t0 = base();
    store
        .push(req(
            None,
            vec![point(Kind::Counter, "orders", t0 as f64, 1.0, &[])],
        ))
        .unwrap();
    store.checkpoint().unwrap();
    store.inner.apply_retention(t0 + 86_400).unwrap();
    assert_eq!(
        counter_sums(&store, Resolution::Minute, t0, t0 + 60).len(),
        1
    );
    store.inner.apply_retention(t0 + 4 * 86_400).unwrap();
    assert!(counter_sums(&store, Resolution::Minute, t0, t0 + 60).is_empty());
    assert_eq!(
        counter_sums(&store, Resolution::Hour, t0, t0 + 3_600),
        vec![(t0, 1.0)]
    );
}

#[test]
fn crash_between_checkpoint_commit_and_log_deletion_counts_once() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = base();
    let saved = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store
            .push(req(
                Some("b"),
                vec![point(Kind::Counter, "orders", t0 as f64, 5.0, &[])],
            ))
            .unwrap();
        // Keep the log segment as it was before the checkpoint deletes it.
        for e in std::fs::read_dir(dir.path().join("wal")).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), saved.path().join(e.file_name())).unwrap();
        }
        store.checkpoint().unwrap();
        store.close().unwrap();
    }
    // As if the process died after the commit but before the deletion.
    for e in std::fs::read_dir(saved.path()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.path().join("wal").join(e.file_name())).unwrap();
    }
    let store = open(dir.path());
    assert_eq!(
        counter_sums(&store, Resolution::Minute, t0, t0 + 60),
        vec![(t0, 5.0)]
    );
}

#[test]
fn dashboards_are_kept_per_app_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let record = |app: &str, id: &str, body: &str| DashboardRecord {
        app: app.into(),
        id: id.into(),
        created: 1,
        updated: 2,
        body: body.into(),
    };
    {
        let store = open(dir.path());
        assert!(store.dashboards("shop").unwrap().is_empty());
        store.put_dashboard(record("shop", "b", "{}")).unwrap();
        store.put_dashboard(record("shop", "a", "{}")).unwrap();
        store.put_dashboard(record("shop2", "a", "{}")).unwrap();
        store.put_dashboard(record("sho", "z", "{}")).unwrap();
        // A put replaces.
        store
            .put_dashboard(record("shop", "b", r#"{"title":"x"}"#))
            .unwrap();
        store.close().unwrap();
    }
    let store = open(dir.path());
    let ids = |app: &str| -> Vec<String> {
        store
            .dashboards(app)
            .unwrap()
            .into_iter()
            .map(|d| d.id)
            .collect()
    };
    assert_eq!(ids("shop"), ["a", "b"]);
    assert_eq!(ids("shop2"), ["a"]);
    assert_eq!(ids("sho"), ["z"]);
    assert_eq!(
        store.dashboards("shop").unwrap()[1].body,
        r#"{"title":"x"}"#
    );
    assert!(store.delete_dashboard("shop", "a").unwrap());
    assert!(!store.delete_dashboard("shop", "a").unwrap());
    assert_eq!(ids("shop"), ["b"]);
    assert_eq!(ids("shop2"), ["a"]);
}

/// `read_part` gives what `read` gives reduced to the part, bit for bit:
/// from the head alone, from blocks with head minutes merged in (late
/// points into stored minutes), and from blocks alone after a restart.
#[test]
fn parts_read_like_whole_aggregates() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = base();
    let store = open(dir.path());
    let push = |store: &EmbeddedStore, shift: i64| {
        let mut points = Vec::new();
        for m in 0..90 {
            for (k, sec) in [5, 17, 41].into_iter().enumerate() {
                let ts = (t0 + m * 60 + sec + shift) as f64;
                let v = (m * 7 + k as i64 * 3 + shift) as f64 / 4.0;
                points.push(point(Kind::Gauge, "cpu", ts, v, &[("host", "a")]));
                points.push(point(Kind::Gauge, "cpu", ts, -v, &[("host", "b")]));
                points.push(point(Kind::Counter, "orders", ts, v, &[("host", "a")]));
            }
        }
        assert_eq!(store.push(req(None, points)).unwrap().accepted, 810);
    };
    let check = |store: &EmbeddedStore| {
        let ids = |name| -> Vec<SeriesId> {
            store
                .series_of("shop", Some("prod"), name)
                .iter()
                .map(|s| s.id)
                .collect()
        };
        let cases = [
            (ids("cpu"), Part::Last, true),
            (ids("cpu"), Part::Mean, true),
            (ids("cpu"), Part::Min, true),
            (ids("cpu"), Part::Max, true),
            (ids("orders"), Part::Sum, true),
            // Another kind's part: nothing.
            (ids("orders"), Part::Last, false),
        ];
        for (ids, part, has_data) in cases {
            for res in Resolution::ALL {
                for (from, to) in [(t0 - 86_400, t0 + 86_400), (t0 + 630, t0 + 4_000)] {
                    let whole: Vec<Vec<(i64, u64, i64)>> = store
                        .read(&ids, res, from, to)
                        .unwrap()
                        .iter()
                        .map(|s| {
                            s.iter()
                                .filter_map(|(t, a)| part.of(a).map(|p| (*t, p.v.to_bits(), p.w)))
                                .collect()
                        })
                        .collect();
                    let parts: Vec<Vec<(i64, u64, i64)>> = store
                        .read_part(&ids, res, from, to, part)
                        .unwrap()
                        .iter()
                        .map(|s| s.iter().map(|(t, p)| (*t, p.v.to_bits(), p.w)).collect())
                        .collect();
                    assert_eq!(parts, whole, "{part:?} {res:?} {from}..{to}");
                    // (The narrow range holds no whole day.)
                    if from < t0 {
                        assert!(
                            parts.iter().all(|s| s.is_empty() != has_data),
                            "{part:?} {res:?}"
                        );
                    }
                }
            }
        }
    };
    push(&store, 0);
    check(&store);
    store.checkpoint().unwrap();
    push(&store, 1);
    check(&store);
    store.close().unwrap();
    drop(store);
    let store = open(dir.path());
    check(&store);
}

/// `series_where` gives what `series_of` gives, filtered, in the same order.
#[test]
fn series_where_filters_like_series_of() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = (base() + 5) as f64;
    let points = ["eu", "us", "eu", "ap"]
        .iter()
        .enumerate()
        .map(|(i, region)| {
            let host = format!("h{i}");
            point(
                Kind::Counter,
                "orders",
                t,
                1.0,
                &[("region", region), ("host", &host)],
            )
        })
        .collect();
    store.push(req(None, points)).unwrap();
    let keep = |tags: &Tags| tags.get("region") == Some("eu");
    for env in [Some("prod"), None, Some("nope")] {
        let all: Vec<SeriesInfo> = store
            .series_of("shop", env, "orders")
            .into_iter()
            .filter(|s| keep(&s.tags))
            .collect();
        assert_eq!(store.series_where("shop", env, "orders", &keep), all);
        assert_eq!(all.len(), if env == Some("nope") { 0 } else { 2 });
    }
}

/// Reads go through a cache of inflated blocks: a block rewritten by a
/// checkpoint must be read anew, also while other threads keep reading.
#[test]
fn reads_after_a_checkpoint_see_the_rewritten_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = base();
    let store = open(dir.path());
    let push = |store: &EmbeddedStore| {
        let points = (0..60)
            .map(|m| point(Kind::Counter, "orders", (t0 + m * 60 + 7) as f64, 1.0, &[]))
            .collect();
        assert_eq!(store.push(req(None, points)).unwrap().accepted, 60);
    };
    let sums = |store: &EmbeddedStore| -> (Vec<f64>, Vec<f64>) {
        let ids: Vec<SeriesId> = store
            .series_of("shop", Some("prod"), "orders")
            .iter()
            .map(|s| s.id)
            .collect();
        let parts = store
            .read_part(&ids, Resolution::Minute, t0, t0 + 3_600, Part::Sum)
            .unwrap();
        let whole = store
            .read(&ids, Resolution::Minute, t0, t0 + 3_600)
            .unwrap();
        let whole = whole[0]
            .iter()
            .map(|(_, a)| match a {
                Agg::Counter(s) => *s,
                _ => f64::NAN,
            })
            .collect();
        (parts[0].iter().map(|(_, p)| p.v).collect(), whole)
    };
    push(&store);
    store.checkpoint().unwrap();
    assert_eq!(sums(&store), (vec![1.0; 60], vec![1.0; 60]));
    let rounds = 6;
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let (parts, whole) = sums(&store);
                // Each read sees some whole number of pushes in every minute.
                for v in parts.iter().chain(&whole) {
                    assert!(*v >= 1.0 && *v <= (rounds + 1) as f64 && v.fract() == 0.0);
                }
            }
        });
        for _ in 0..rounds {
            push(&store);
            store.checkpoint().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        reader.join().unwrap();
    });
    let all = vec![(rounds + 1) as f64; 60];
    assert_eq!(sums(&store), (all.clone(), all));
}

/// The catalogue's last-seen minute comes from the head before a
/// checkpoint and from the index after it; an older point never moves it
/// back, and a series of another metric never moves it at all.
#[test]
fn last_seen_follows_the_head_and_the_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = base();
    let store = open(dir.path());
    let seen = |store: &EmbeddedStore, name: &str| {
        store
            .catalogue("shop", None)
            .into_iter()
            .find(|m| m.name == name)
            .and_then(|m| m.last_seen)
    };
    let at = |minute: i64, name: &str, host: &str| {
        point(
            Kind::Gauge,
            name,
            (t0 + minute * 60 + 5) as f64,
            1.0,
            &[("host", host)],
        )
    };
    store
        .push(req(None, vec![at(3, "load", "a"), at(1, "load", "b")]))
        .unwrap();
    store.push(req(None, vec![at(9, "other", "a")])).unwrap();
    assert_eq!(seen(&store, "load"), Some(t0 + 180));
    store.checkpoint().unwrap();
    assert_eq!(seen(&store, "load"), Some(t0 + 180));
    store
        .push(req(None, vec![at(2, "load", "a"), at(5, "load", "b")]))
        .unwrap();
    assert_eq!(seen(&store, "load"), Some(t0 + 300));
    store.push(req(None, vec![at(4, "load", "a")])).unwrap();
    store.checkpoint().unwrap();
    assert_eq!(seen(&store, "load"), Some(t0 + 300));
    assert_eq!(seen(&store, "other"), Some(t0 + 540));
}

/// A store whose early checkpoints come at 10 open minutes, and a push of
/// 30 minutes of one counter (three times that).
fn small_head_store(dir: &std::path::Path) -> (EmbeddedStore, Vec<Point>, i64) {
    let mut cfg = EmbeddedConfig::new(dir);
    cfg.max_open_minutes = 10;
    let store = EmbeddedStore::open(cfg).unwrap();
    let t0 = base();
    let points = (0..30)
        .map(|m| point(Kind::Counter, "orders", (t0 + m * 60) as f64, 1.0, &[]))
        .collect();
    (store, points, t0)
}

/// As if a checkpoint were writing: the background checkpoint a push asks
/// for stops at the writer lock (held until the guard drops), and a frozen
/// head stands for the one being written.
fn checkpoint_writing(
    store: &EmbeddedStore,
) -> std::sync::MutexGuard<'_, Option<(u64, Arc<Generation>)>> {
    let pending = store.inner.writer_lock();
    store.inner.head.write().unwrap().frozen = Some(Arc::new(Generation::default()));
    pending
}

/// A push that leaves the head holding more than twice the early
/// checkpoint's size, while a checkpoint is writing, is answered only once
/// that checkpoint is done: pushes cannot outrun checkpoints for ever.
#[test]
fn a_push_past_twice_the_head_size_waits_for_the_running_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (store, points, t0) = small_head_store(dir.path());
    let pending = checkpoint_writing(&store);
    std::thread::scope(|s| {
        let push = s.spawn(|| store.push(req(None, points)));
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(!push.is_finished(), "the push waits for the checkpoint");
        store.inner.head.write().unwrap().frozen = None;
        drop(pending);
        assert_eq!(push.join().unwrap().unwrap().accepted, 30);
    });
    assert_eq!(
        counter_sums(&store, Resolution::Hour, t0, t0 + 7_200)
            .iter()
            .map(|(_, v)| v)
            .sum::<f64>(),
        30.0
    );
}

/// After a failed checkpoint (a full disk) the frozen head waits for a
/// retry that can be minutes away: pushes then do not wait for it.
#[test]
fn a_push_does_not_wait_on_a_checkpoint_that_failed() {
    let dir = tempfile::tempdir().unwrap();
    let (store, points, _) = small_head_store(dir.path());
    let pending = checkpoint_writing(&store);
    store.inner.checkpoints_tried.0.lock().unwrap().last_failed = true;
    std::thread::scope(|s| {
        let push = s.spawn(|| store.push(req(None, points)));
        // Waiting would hold it for the whole bound (10 s).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !push.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(push.is_finished(), "the push did not wait");
        store.inner.head.write().unwrap().frozen = None;
        drop(pending);
        assert_eq!(push.join().unwrap().unwrap().accepted, 30);
    });
}
