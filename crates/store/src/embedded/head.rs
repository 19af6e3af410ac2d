//! The head: minutes not yet written to redb, in memory. The log makes them
//! durable; a checkpoint freezes the active generation, writes it to redb
//! and drops it.

use super::record::{BatchEntry, Record, SeriesDef};
use crate::SeriesId;
use minutely_core::Agg;
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
/// cache miss where a tree walks several nodes.
#[derive(Default)]
pub struct Minutes(Vec<(i64, Agg)>);

impl Minutes {
    /// Merges `agg` into its minute; `true` when the minute is new.
    fn add(&mut self, minute: i64, agg: Agg) -> bool {
        match self.0.last_mut() {
            Some((last, _)) if *last < minute => {}
            None => {}
            Some((last, a)) if *last == minute => {
                a.merge(&agg);
                return false;
            }
            Some(_) => match self.0.binary_search_by_key(&minute, |(t, _)| *t) {
                Ok(i) => {
                    self.0[i].1.merge(&agg);
                    return false;
                }
                Err(i) => {
                    self.0.insert(i, (minute, agg));
                    return true;
                }
            },
        }
        self.0.push((minute, agg));
        true
    }

    /// The minutes in `[from, to)`.
    pub fn range(&self, from: i64, to: i64) -> impl Iterator<Item = (&i64, &Agg)> {
        let lo = self.0.partition_point(|(t, _)| *t < from);
        let hi = self.0.partition_point(|(t, _)| *t < to).max(lo);
        self.0[lo..hi].iter().map(|(t, a)| (t, a))
    }

    pub fn last_key_value(&self) -> Option<(&i64, &Agg)> {
        self.0.last().map(|(t, a)| (t, a))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&i64, &Agg)> {
        self.0.iter().map(|(t, a)| (t, a))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a Minutes {
    type Item = (&'a i64, &'a Agg);
    type IntoIter =
        std::iter::Map<std::slice::Iter<'a, (i64, Agg)>, fn(&'a (i64, Agg)) -> Self::Item>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(t, a)| (t, a))
    }
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
    pub fn apply(&mut self, record: Record) {
        for (sid, minute, agg) in record.points {
            if self.minutes.entry(sid).or_default().add(minute, agg) {
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
            out.extend(m.range(from, to).filter_map(|(t, a)| Some((*t, f(a)?))));
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        /// The sorted vector holds what the tree it replaced held, merged
        /// in the same order, bit for bit.
        #[test]
        fn minutes_agree_with_a_tree(adds in prop::collection::vec((0i64..40, -1e6f64..1e6), 0..200),
                                     from in 0i64..45, len in 0i64..45) {
            let (mut minutes, mut tree) = (Minutes::default(), BTreeMap::new());
            for &(m, v) in &adds {
                let new = minutes.add(m * 60, Agg::Counter(v));
                match tree.entry(m * 60) {
                    std::collections::btree_map::Entry::Occupied(mut e) => {
                        let a: &mut Agg = e.get_mut();
                        a.merge(&Agg::Counter(v));
                        prop_assert!(!new);
                    }
                    std::collections::btree_map::Entry::Vacant(e) => {
                        e.insert(Agg::Counter(v));
                        prop_assert!(new);
                    }
                }
            }
            let bits = |a: &Agg| match a {
                Agg::Counter(v) => v.to_bits(),
                _ => unreachable!("only counters are added"),
            };
            let got: Vec<(i64, u64)> = minutes.iter().map(|(t, a)| (*t, bits(a))).collect();
            let want: Vec<(i64, u64)> = tree.iter().map(|(t, a)| (*t, bits(a))).collect();
            prop_assert_eq!(got, want);
            let (from, to) = (from * 60, (from + len) * 60);
            let got: Vec<i64> = minutes.range(from, to).map(|(t, _)| *t).collect();
            let want: Vec<i64> = tree.range(from..to).map(|(t, _)| *t).collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(minutes.last_key_value().map(|(t, _)| *t), tree.last_key_value().map(|(t, _)| *t));
        }
    }
}
