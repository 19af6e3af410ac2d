//! The head: minutes not yet written to redb, in memory. The log makes them
//! durable; a checkpoint freezes the active generation, writes it to redb
//! and drops it.

use super::record::{BatchEntry, Record, SeriesDef};
use crate::SeriesId;
use minutely_core::agg::GaugeAgg;
use minutely_core::Agg;
use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// Hashes a series id, which the store hands out densely from 0: the low
/// bits stay the id, so series pushed together sit together in the table,
/// and the top bits are mixed so the table's per-slot tags differ. No
/// client chooses an id, so there is nothing to flood.
#[derive(Default)]
pub struct SidHasher(u64);

impl Hasher for SidHasher {
    fn finish(&self) -> u64 {
        self.0 ^ (self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) & 0xFE00_0000_0000_0000)
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only ids are hashed, through `write_u64`; any other key still works.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A map keyed by series id.
pub type SidMap<V> = HashMap<SeriesId, V, BuildHasherDefault<SidHasher>>;

/// One series' open minutes, sorted, each once. Pushes mostly add the
/// newest minute, which is an append; a sorted vector keeps that to one
/// cache miss where a tree walks several nodes. The head holds millions of
/// minutes and a push writes one for every point, so the usual minutes are
/// kept small: a counter's as its bare sum (16 bytes a minute instead of
/// the 64 of an aggregate), a gauge's of one value as that value and its
/// time (24 bytes). A minute that is neither turns the series' minutes into
/// aggregates. Smaller minutes let the head hold more of a backfill before
/// a checkpoint must rewrite the day blocks.
pub enum Minutes {
    Counters(Vec<(i64, f64)>),
    /// One value each: the value and its time in unix milliseconds.
    Gauges(Vec<(i64, (f64, i64))>),
    Aggs(Vec<(i64, Agg)>),
}

impl Default for Minutes {
    fn default() -> Self {
        Minutes::Counters(Vec::new())
    }
}

/// Merges `value` into its minute of the sorted `minutes`; `true` when
/// the minute is new.
fn add_sorted<T>(
    minutes: &mut Vec<(i64, T)>,
    minute: i64,
    value: T,
    merge: impl FnOnce(&mut T, T),
) -> bool {
    match minutes.last_mut() {
        Some((last, _)) if *last < minute => {}
        None => {}
        Some((last, a)) if *last == minute => {
            merge(a, value);
            return false;
        }
        Some(_) => match minutes.binary_search_by_key(&minute, |(t, _)| *t) {
            Ok(i) => {
                merge(&mut minutes[i].1, value);
                return false;
            }
            Err(i) => {
                minutes.insert(i, (minute, value));
                return true;
            }
        },
    }
    minutes.push((minute, value));
    true
}

/// Where `minute` goes in the sorted `minutes` when it is not there yet.
fn new_slot<T>(minutes: &[(i64, T)], minute: i64) -> Option<usize> {
    match minutes.last() {
        Some((last, _)) if *last >= minute => {
            minutes.binary_search_by_key(&minute, |(t, _)| *t).err()
        }
        _ => Some(minutes.len()),
    }
}

impl Minutes {
    /// Empty, with room for `n` minutes of `agg`'s kind.
    fn with_room(n: usize, agg: &Agg) -> Minutes {
        match agg {
            Agg::Counter(_) => Minutes::Counters(Vec::with_capacity(n)),
            Agg::Gauge(g) if g.as_single().is_some() => Minutes::Gauges(Vec::with_capacity(n)),
            _ => Minutes::Aggs(Vec::with_capacity(n)),
        }
    }

    /// Merges `agg` into its minute; `true` when the minute is new.
    fn add(&mut self, minute: i64, agg: Agg) -> bool {
        match (&mut *self, agg) {
            (Minutes::Counters(m), Agg::Counter(v)) => add_sorted(m, minute, v, |a, b| *a += b),
            (Minutes::Aggs(m), agg) => add_sorted(m, minute, agg, |a, b| a.merge(&b)),
            (Minutes::Gauges(m), Agg::Gauge(g)) => match (g.as_single(), new_slot(m, minute)) {
                (Some(single), Some(i)) => {
                    m.insert(i, (minute, single));
                    true
                }
                // Two values in a minute, or one that is already an aggregate.
                _ => self.make_aggs().add(minute, Agg::Gauge(g)),
            },
            (Minutes::Counters(m), Agg::Gauge(g)) if m.is_empty() && g.as_single().is_some() => {
                *self = Minutes::Gauges(Vec::new());
                self.add(minute, Agg::Gauge(g))
            }
            // Another kind of aggregate (the first, or one a kind conflict
            // let through): every minute becomes an aggregate.
            (_, agg) => self.make_aggs().add(minute, agg),
        }
    }

    /// Turns every minute into an aggregate, in place.
    fn make_aggs(&mut self) -> &mut Minutes {
        let aggs = match self {
            Minutes::Counters(m) => m.iter().map(|&(t, v)| (t, Agg::Counter(v))).collect(),
            Minutes::Gauges(m) => m.iter().map(|&(t, g)| (t, single_gauge(g))).collect(),
            Minutes::Aggs(_) => return self,
        };
        *self = Minutes::Aggs(aggs);
        self
    }

    /// The minutes in `[from, to)`.
    pub fn range(&self, from: i64, to: i64) -> impl Iterator<Item = (i64, Cow<'_, Agg>)> {
        fn bounds<T>(m: &[(i64, T)], from: i64, to: i64) -> &[(i64, T)] {
            let lo = m.partition_point(|(t, _)| *t < from);
            &m[lo..m.partition_point(|(t, _)| *t < to).max(lo)]
        }
        let (counters, gauges, aggs) = match self {
            Minutes::Counters(m) => (bounds(m, from, to), &[][..], &[][..]),
            Minutes::Gauges(m) => (&[][..], bounds(m, from, to), &[][..]),
            Minutes::Aggs(m) => (&[][..], &[][..], bounds(m, from, to)),
        };
        let counters = counters
            .iter()
            .map(|&(t, v)| (t, Cow::Owned(Agg::Counter(v))));
        let gauges = gauges
            .iter()
            .map(|&(t, g)| (t, Cow::Owned(single_gauge(g))));
        counters
            .chain(gauges)
            .chain(aggs.iter().map(|(t, a)| (*t, Cow::Borrowed(a))))
    }

    /// Every minute, in order.
    pub fn iter(&self) -> impl Iterator<Item = (i64, Cow<'_, Agg>)> {
        self.range(i64::MIN, i64::MAX)
    }

    /// Asks the processor to load the newest minute and the slot after it
    /// (where the next minute goes) without waiting for them.
    fn prefetch_newest(&self) {
        fn ends<T>(m: &[(i64, T)]) -> [*const u8; 2] {
            let last = m.as_ptr().wrapping_add(m.len().saturating_sub(1));
            [last.cast(), last.wrapping_add(1).cast()]
        }
        let lines = match self {
            Minutes::Counters(m) => ends(m),
            Minutes::Gauges(m) => ends(m),
            Minutes::Aggs(m) => ends(m),
        };
        lines.into_iter().for_each(prefetch);
    }

    /// The newest minute.
    pub fn newest(&self) -> Option<i64> {
        match self {
            Minutes::Counters(m) => m.last().map(|(t, _)| *t),
            Minutes::Gauges(m) => m.last().map(|(t, _)| *t),
            Minutes::Aggs(m) => m.last().map(|(t, _)| *t),
        }
    }

    fn len(&self) -> usize {
        match self {
            Minutes::Counters(m) => m.len(),
            Minutes::Gauges(m) => m.len(),
            Minutes::Aggs(m) => m.len(),
        }
    }
}

/// A gauge minute of one value as the aggregate it stands for.
fn single_gauge((value, ms): (f64, i64)) -> Agg {
    Agg::Gauge(GaugeAgg::single(value, ms))
}

/// A hint to load the cache line at `p`; never faults, whatever `p` is.
#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch only hints the cache; it reads nothing the
    // program sees and does not fault on any address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// What the log segments since the last checkpoint added.
#[derive(Default)]
pub struct Generation {
    pub minutes: SidMap<Minutes>,
    pub series: Vec<SeriesDef>,
    pub batches: Vec<BatchEntry>,
    /// Series-minutes held, kept as a count so checking it is cheap.
    pub minute_count: usize,
}

impl Generation {
    /// Adds a record's points. A series new to this generation gets room
    /// for as many minutes as it had in `previous`: during a backfill a
    /// series gets hundreds of minutes between checkpoints, and growing its
    /// vector by doubling copied each minute once more and took fresh pages
    /// from the kernel (7% of the push's time at 10,000 series).
    pub fn apply(&mut self, record: Record, previous: Option<&Generation>) {
        // A push names up to thousands of series whose newest minutes were
        // last touched a minute ago and are out of the processor's caches:
        // asking for all of them first lets those loads overlap, where the
        // adds below would wait for each in turn.
        for (sid, _, _) in &record.points {
            if let Some(m) = self.minutes.get(sid) {
                m.prefetch_newest();
            }
        }
        for (sid, minute, agg) in record.points {
            let minutes = self.minutes.entry(sid).or_insert_with(|| {
                let had = previous.and_then(|p| p.minutes.get(&sid));
                Minutes::with_room(had.map_or(0, Minutes::len), &agg)
            });
            if minutes.add(minute, agg) {
                self.minute_count += 1;
            }
        }
        self.series.extend(record.series);
        self.batches.extend(record.batch);
    }

    pub fn open_minutes(&self) -> usize {
        self.minute_count
    }

    fn collect<T>(
        &self,
        sid: SeriesId,
        from: i64,
        to: i64,
        f: &impl Fn(&Agg) -> Option<T>,
        out: &mut Vec<(i64, T)>,
    ) {
        if let Some(m) = self.minutes.get(&sid) {
            out.extend(m.range(from, to).filter_map(|(t, a)| Some((t, f(&a)?))));
        }
    }
}

#[derive(Default)]
pub struct Head {
    pub active: Generation,
    /// The generation a checkpoint is writing, still read by queries until
    /// redb has it.
    pub frozen: Option<Arc<Generation>>,
}

impl Head {
    /// Minutes of one series in `[from, to)` from both generations, as
    /// `f` sees them (a minute may appear twice; callers merge).
    pub fn collect<T>(
        &self,
        sid: SeriesId,
        from: i64,
        to: i64,
        f: &impl Fn(&Agg) -> Option<T>,
    ) -> Vec<(i64, T)> {
        let mut out = Vec::new();
        if let Some(g) = &self.frozen {
            g.collect(sid, from, to, f, &mut out);
        }
        self.active.collect(sid, from, to, f, &mut out);
        out
    }

    pub fn open_minutes(&self) -> usize {
        self.active.open_minutes() + self.frozen.as_ref().map_or(0, |f| f.open_minutes())
    }

    /// The newest minute of `sid` in either generation.
    pub fn newest(&self, sid: SeriesId) -> Option<i64> {
        let newest = |g: &Generation| g.minutes.get(&sid).and_then(Minutes::newest);
        let frozen = self.frozen.as_deref().and_then(newest);
        newest(&self.active).max(frozen)
    }

    /// Adds a record to the active generation.
    pub fn apply(&mut self, record: Record) {
        let Head { active, frozen } = self;
        active.apply(record, frozen.as_deref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// A counter's or a gauge's aggregate of `v` at minute `m`.
    fn agg(gauge: bool, m: i64, v: f64) -> Agg {
        if gauge {
            Agg::Gauge(minutely_core::agg::GaugeAgg::single(
                v,
                m * 60_000 + (v as i64 % 1000),
            ))
        } else {
            Agg::Counter(v)
        }
    }

    /// Bit for bit, every field.
    fn text(a: &Agg) -> String {
        format!("{a:?}")
    }

    proptest! {
        /// The sorted vectors hold what the tree they replaced held, merged
        /// in the same order, bit for bit, for counters (kept as bare sums)
        /// and for gauges (kept as aggregates).
        #[test]
        fn minutes_agree_with_a_tree(adds in prop::collection::vec((0i64..40, -1e6f64..1e6), 0..200),
                                     gauge in any::<bool>(),
                                     from in 0i64..45, len in 0i64..45) {
            let (mut minutes, mut tree) = (Minutes::default(), BTreeMap::new());
            for &(m, v) in &adds {
                let new = minutes.add(m * 60, agg(gauge, m, v));
                match tree.entry(m * 60) {
                    std::collections::btree_map::Entry::Occupied(mut e) => {
                        let a: &mut Agg = e.get_mut();
                        a.merge(&agg(gauge, m, v));
                        prop_assert!(!new);
                    }
                    std::collections::btree_map::Entry::Vacant(e) => {
                        e.insert(agg(gauge, m, v));
                        prop_assert!(new);
                    }
                }
            }
            prop_assert_eq!(minutes.len(), tree.len());
            let got: Vec<(i64, String)> = minutes.iter().map(|(t, a)| (t, text(&a))).collect();
            let want: Vec<(i64, String)> = tree.iter().map(|(t, a)| (*t, text(a))).collect();
            prop_assert_eq!(got, want);
            let (from, to) = (from * 60, (from + len) * 60);
            let got: Vec<(i64, String)> = minutes.range(from, to).map(|(t, a)| (t, text(&a))).collect();
            let want: Vec<(i64, String)> = tree.range(from..to).map(|(t, a)| (*t, text(a))).collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(minutes.newest(), tree.last_key_value().map(|(t, _)| *t));
        }
    }

    #[test]
    fn a_series_gets_room_for_the_minutes_it_had_before() {
        let record = |sid: u64, minutes: std::ops::Range<i64>, gauge: bool| Record {
            points: minutes.map(|m| (sid, m * 60, agg(gauge, m, 1.0))).collect(),
            ..Default::default()
        };
        let mut head = Head::default();
        head.apply(record(1, 0..300, false));
        head.apply(record(2, 0..40, true));
        head.frozen = Some(Arc::new(std::mem::take(&mut head.active)));
        head.apply(record(1, 300..301, false));
        head.apply(record(2, 40..41, true));
        head.apply(record(3, 0..1, false));
        let room = |sid: u64| match &head.active.minutes[&sid] {
            Minutes::Counters(m) => m.capacity(),
            Minutes::Gauges(m) => m.capacity(),
            Minutes::Aggs(m) => m.capacity(),
        };
        assert!(room(1) >= 300 && room(2) >= 40, "{} {}", room(1), room(2));
        assert!(room(3) < 40);
        assert_eq!(head.open_minutes(), 300 + 40 + 3);
    }

    #[test]
    fn one_value_gauge_minutes_stay_small_until_a_minute_has_two() {
        let mut minutes = Minutes::default();
        for m in [2, 0, 1] {
            assert!(minutes.add(m * 60, agg(true, m, m as f64)));
        }
        assert!(matches!(&minutes, Minutes::Gauges(g) if g.len() == 3));
        // A second value in minute 1: every minute becomes an aggregate,
        // the merged one holding both values.
        assert!(!minutes.add(60, Agg::Gauge(GaugeAgg::single(-4.0, 60_999))));
        assert!(matches!(minutes, Minutes::Aggs(_)));
        let mut both = GaugeAgg::single(1.0, 60_001);
        both.merge(&GaugeAgg::single(-4.0, 60_999));
        let got: Vec<(i64, String)> = minutes.iter().map(|(t, a)| (t, text(&a))).collect();
        let want = vec![
            (0, text(&agg(true, 0, 0.0))),
            (60, text(&Agg::Gauge(both))),
            (120, text(&agg(true, 2, 2.0))),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn a_gauge_aggregate_of_many_values_is_kept_whole() {
        let mut many = GaugeAgg::single(3.0, 5);
        many.merge(&GaugeAgg::single(1.0, 7));
        let mut minutes = Minutes::default();
        assert!(minutes.add(0, Agg::Gauge(GaugeAgg::single(2.0, 1))));
        assert!(minutes.add(60, Agg::Gauge(many.clone())));
        assert!(matches!(minutes, Minutes::Aggs(_)));
        let got: Vec<String> = minutes.iter().map(|(_, a)| text(&a)).collect();
        assert_eq!(got[1], text(&Agg::Gauge(many)));
        assert_eq!(got[0], text(&Agg::Gauge(GaugeAgg::single(2.0, 1))));
    }

    #[test]
    fn counters_then_another_kind_keep_every_minute() {
        let mut minutes = Minutes::default();
        assert!(minutes.add(60, Agg::Counter(1.5)));
        assert!(!minutes.add(60, Agg::Counter(2.0)));
        assert!(minutes.add(0, Agg::Counter(4.0)));
        assert!(matches!(minutes, Minutes::Counters(_)));
        assert!(minutes.add(120, agg(true, 2, 7.0)));
        assert!(matches!(minutes, Minutes::Aggs(_)));
        let got: Vec<(i64, String)> = minutes.iter().map(|(t, a)| (t, text(&a))).collect();
        let want = vec![
            (0, text(&Agg::Counter(4.0))),
            (60, text(&Agg::Counter(3.5))),
            (120, text(&agg(true, 2, 7.0))),
        ];
        assert_eq!(got, want);
    }
}
