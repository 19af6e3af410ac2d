use super::*;
use proptest::prelude::*;

fn place(file: u64, offset: u64, len: u32) -> BlockRef {
    BlockRef { file, offset, len }
}

fn series(last_seen: Option<i64>, blocks: &[(u8, u32, u64, u64, u32)]) -> SeriesPlaces {
    SeriesPlaces {
        last_seen,
        blocks: blocks
            .iter()
            .map(|&(r, b, f, o, l)| (r, b, place(f, o, l)))
            .collect(),
    }
}

fn changes(list: Vec<(u64, SeriesPlaces)>) -> BTreeMap<u64, SeriesPlaces> {
    list.into_iter().collect()
}

fn state(p: &Places) -> Vec<(u64, SeriesPlaces)> {
    p.iter().map(|(sid, s)| (sid, s.to_owned())).collect()
}

fn new_log(dir: &Path) -> PlacesLog {
    let (mut log, created) = PlacesLog::create(dir, 1).unwrap();
    log.committed(created);
    log
}

#[test]
fn series_places_keep_order_and_answer_ranges() {
    let mut s = SeriesPlaces::default();
    assert_eq!(s.set(0, 20, place(1, 8, 5)), None);
    assert_eq!(s.set(0, 19, place(1, 13, 5)), None);
    assert_eq!(s.set(1, 0, place(1, 18, 5)), None);
    assert_eq!(s.set(0, 20, place(2, 8, 6)), Some(place(1, 8, 5)));
    let keys: Vec<(u8, u32)> = s.blocks.iter().map(|&(r, b, _)| (r, b)).collect();
    assert_eq!(keys, vec![(0, 19), (0, 20), (1, 0)]);
    assert_eq!(s.as_ref().range(0, 20, 30).len(), 1);
    assert_eq!(s.as_ref().range(0, 0, 19).len(), 1);
    assert_eq!(s.as_ref().range(0, 21, 30).len(), 0);
    assert_eq!(s.as_ref().range(1, 0, u32::MAX).len(), 1);
    assert_eq!(s.as_ref().get(0, 20), Some(place(2, 8, 6)));
    // Only blocks of the resolution, only those below the number.
    assert_eq!(s.remove_before(0, 20), vec![place(1, 13, 5)]);
    assert_eq!(s.remove_before(0, 0), vec![]);
    assert_eq!(s.blocks.len(), 2);
    s.note_seen(600);
    s.note_seen(540);
    assert_eq!(s.last_seen, Some(600));
}

#[test]
fn committed_appends_read_back_and_uncommitted_ones_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path());
    let mut places = Places::default();
    let first = changes(vec![
        (
            0,
            series(Some(60), &[(0, 1, 2, 8, 100), (1, 0, 2, 108, 50)]),
        ),
        (7, series(None, &[(0, 1, 2, 158, 90)])),
    ]);
    let done = log.prepare(&places, &first, false, || 99).unwrap();
    assert_eq!(done.id, 1);
    let len = done.len;
    log.committed(done);
    places.apply(first.clone());

    // A later write that never commits: the open at the committed length
    // does not see it, and cuts it off.
    let second = changes(vec![(7, series(Some(120), &[]))]);
    let lost = log.prepare(&places, &second, false, || 99).unwrap();
    assert!(lost.len > len);
    drop(lost);
    drop(log);
    let (mut log, back) = PlacesLog::open(dir.path(), 1, len).unwrap();
    assert_eq!(state(&back), state(&places));
    assert_eq!(
        std::fs::metadata(dir.path().join(file_name(1)))
            .unwrap()
            .len(),
        len
    );

    // The next append goes where the committed part ends.
    let done = log.prepare(&places, &second, false, || 99).unwrap();
    let len = done.len;
    log.committed(done);
    places.apply(second.clone());
    let (_, back) = PlacesLog::open(dir.path(), 1, len).unwrap();
    assert_eq!(state(&back), state(&places));
    assert_eq!(
        back.get(7).map(|s| s.to_owned()),
        Some(series(Some(120), &[]))
    );
}

#[test]
fn a_grown_log_is_rewritten_as_a_snapshot_in_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path());
    let mut places = Places::default();
    let mut next = 2;
    let mut files = std::collections::BTreeSet::new();
    // Many small commits: the file grows past its snapshot and 1 MiB,
    // and a commit then starts a new file.
    for round in 0..600u64 {
        let c = changes(
            (0..1_000)
                .map(|sid| {
                    (
                        sid,
                        series(
                            Some(round as i64 * 60),
                            &[(0, round as u32, round, sid * 1000, 900 + sid as u32)],
                        ),
                    )
                })
                .collect(),
        );
        let done = log
            .prepare(&places, &c, false, || {
                next += 1;
                next
            })
            .unwrap();
        files.insert(done.id);
        let (id, len) = (done.id, done.len);
        log.committed(done);
        places.apply(c.clone());
        // Only the file of the last commit is left.
        let on_disk: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(on_disk.len(), 1);
        if round % 100 == 0 || round == 599 {
            let (_, back) = PlacesLog::open(dir.path(), id, len).unwrap();
            assert_eq!(state(&back), state(&places));
        }
    }
    assert!(files.len() >= 2, "{files:?}");
    // A clean stop's rewrite leaves one snapshot, with what it holds.
    let done = log
        .prepare(&places, &BTreeMap::new(), true, || 1_000)
        .unwrap();
    assert_eq!(done.id, 1_000);
    let (id, len) = (done.id, done.len);
    log.committed(done);
    let (_, back) = PlacesLog::open(dir.path(), id, len).unwrap();
    assert_eq!(state(&back), state(&places));
    // Nothing changed since: another stop writes nothing new.
    let again = log
        .prepare(&places, &BTreeMap::new(), true, || 2_000)
        .unwrap();
    assert_eq!((again.id, again.len), (id, len));
}

#[test]
fn an_abandoned_rewrite_leaves_the_committed_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path());
    let places = Places::default();
    let c = changes(vec![(3, series(Some(60), &[(0, 1, 5, 8, 10)]))]);
    let done = log.prepare(&places, &c, false, || 0).unwrap();
    let len = done.len;
    log.committed(done);
    let mut after = places.clone();
    after.apply(c.clone());
    let rewrite = log.prepare(&after, &BTreeMap::new(), true, || 9).unwrap();
    assert!(dir.path().join(file_name(9)).exists());
    log.abandoned(rewrite);
    assert!(!dir.path().join(file_name(9)).exists());
    let (_, back) = PlacesLog::open(dir.path(), 1, len).unwrap();
    assert_eq!(state(&back), state(&after));
}

#[test]
fn damage_in_the_committed_part_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path());
    let c = changes(vec![(3, series(Some(60), &[(0, 1, 5, 8, 10)]))]);
    let done = log.prepare(&Places::default(), &c, false, || 0).unwrap();
    let len = done.len;
    log.committed(done);
    drop(log);
    let path = dir.path().join(file_name(1));
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();
    let err = PlacesLog::open(dir.path(), 1, len)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains(".places") && err.contains("backup"), "{err}");
    // Shorter than the commit says: also named, not read as less.
    std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    let err = PlacesLog::open(dir.path(), 1, len)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("committed"), "{err}");
    // Missing.
    std::fs::remove_file(&path).unwrap();
    let err = PlacesLog::open(dir.path(), 1, len)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("missing"), "{err}");
}

fn any_series() -> impl Strategy<Value = SeriesPlaces> {
    (
        proptest::option::of(any::<i64>()),
        proptest::collection::btree_map(
            (0u8..3, any::<u32>()),
            (any::<u64>(), any::<u64>(), any::<u32>()),
            0..20,
        ),
    )
        .prop_map(|(last_seen, blocks)| SeriesPlaces {
            last_seen,
            blocks: blocks
                .into_iter()
                .map(|((r, b), (f, o, l))| (r, b, place(f, o, l)))
                .collect(),
        })
}

proptest! {
    #[test]
    fn frames_round_trip(
        list in proptest::collection::btree_map(any::<u64>(), any_series(), 0..30),
        snapshot: bool,
    ) {
        let kind = if snapshot { KIND_SNAPSHOT } else { KIND_CHANGES };
        let payload = encode(kind, list.iter().map(|(&k, v)| (k, v.as_ref())));
        let (k, back) = decode(&payload).unwrap();
        prop_assert_eq!(k, kind);
        prop_assert_eq!(back, list.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn damaged_frames_decode_without_panic(bytes: Vec<u8>, flip in any::<usize>()) {
        let _ = decode(&bytes);
        let list = changes(vec![(1, series(Some(5), &[(0, 1, 2, 3, 4)]))]);
        let mut payload = encode(KIND_CHANGES, list.iter().map(|(&k, v)| (k, v.as_ref())));
        let at = flip % payload.len();
        payload[at] ^= 0xA5;
        let _ = decode(&payload);
    }
}

proptest! {
    /// Chunked places answer as a plain map of series would, through any
    /// run of commits (series across chunks, added, changed, emptied).
    #[test]
    fn places_apply_like_a_map(
        commits in proptest::collection::vec(
            proptest::collection::btree_map(0u64..300, proptest::option::of(any_series()), 0..40),
            1..8,
        ),
    ) {
        let mut places = Places::default();
        let mut model: BTreeMap<u64, SeriesPlaces> = BTreeMap::new();
        for commit in commits {
            let changes: BTreeMap<u64, SeriesPlaces> = commit
                .into_iter()
                .map(|(sid, s)| (sid, s.unwrap_or_default()))
                .collect();
            // A reader's copy keeps what it saw.
            let before = places.clone();
            let seen = state(&before);
            for (&sid, s) in &changes {
                if s.last_seen.is_none() && s.blocks.is_empty() {
                    model.remove(&sid);
                } else {
                    model.insert(sid, s.clone());
                }
            }
            places.apply(changes);
            prop_assert_eq!(state(&before), seen);
            prop_assert_eq!(state(&places), model.clone().into_iter().collect::<Vec<_>>());
            for sid in 0..300 {
                prop_assert_eq!(places.get(sid).map(|s| s.to_owned()), model.get(&sid).cloned());
            }
        }
    }
}
