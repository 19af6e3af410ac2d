//! Folding many distribution aggregates into one (a query over a thousand
//! series' minutes) with counts kept in arrays indexed by sketch key, not
//! sorted vectors merged again and again.
//!
//! The result is the very aggregate that [`DistAgg::merge`] gives when the
//! same aggregates are merged in the same order: the first one is taken as
//! it is, then every count, sum, min and max, and every sketch bucket, is
//! combined with the same operation in the same order.

use crate::agg::DistAgg;
use crate::sketch::Sketch;

/// Widest run of keys one array holds: every key a finite value maps to
/// (about -34,500..35,500) fits; keys beyond (only damaged data has them)
/// go to a sorted list.
const MAX_SPAN: usize = 1 << 17;

/// One store's buckets: `counts[i]` is key `lo + i` when `seen[i]`.
#[derive(Debug, Default, Clone)]
struct DenseStore {
    lo: i64,
    counts: Vec<f64>,
    seen: Vec<bool>,
    /// Keys outside `lo..lo + counts.len()`, sorted.
    far: Vec<(i32, f64)>,
}

impl DenseStore {
    fn add_bins(&mut self, bins: &[(i32, f64)]) {
        let (Some(first), Some(last)) = (bins.first(), bins.last()) else {
            return;
        };
        let (lo, hi) = (
            i64::from(first.0.min(last.0)),
            i64::from(first.0.max(last.0)),
        );
        if lo < self.lo || hi >= self.lo + self.counts.len() as i64 {
            self.grow(lo, hi);
        }
        for &(key, count) in bins {
            let i = i64::from(key) - self.lo;
            match (i >= 0).then_some(i as usize) {
                Some(i) if i < self.counts.len() => {
                    if self.seen[i] {
                        self.counts[i] += count;
                    } else {
                        self.counts[i] = count;
                        self.seen[i] = true;
                    }
                }
                _ => add_sorted(&mut self.far, key, count),
            }
        }
    }

    /// Widens the array to hold `lo..=hi` (with room to spare), when that
    /// stays within [`MAX_SPAN`]; far keys it then covers move into it.
    fn grow(&mut self, lo: i64, hi: i64) {
        let len = self.counts.len() as i64;
        let (old_lo, old_hi) = if len == 0 {
            (lo, hi + 1)
        } else {
            (self.lo, self.lo + len)
        };
        let (want_lo, want_hi) = (old_lo.min(lo), old_hi.max(hi + 1));
        // Doubling, so that a store widening key by key is not copied each time.
        let slack = (want_hi - want_lo).max(32);
        let grown = |lo_pad: i64, hi_pad: i64| (want_lo - lo_pad, want_hi + hi_pad);
        let (new_lo, new_hi) = match (lo < old_lo, hi >= old_hi) {
            (true, false) => grown(slack, 0),
            (false, true) => grown(0, slack),
            _ => grown(slack / 2, slack / 2),
        };
        let (new_lo, new_hi) = if new_hi - new_lo > MAX_SPAN as i64 {
            if want_hi - want_lo > MAX_SPAN as i64 {
                return;
            }
            (want_lo, want_hi)
        } else {
            (new_lo, new_hi)
        };
        let size = (new_hi - new_lo) as usize;
        let shift = (self.lo - new_lo).max(0) as usize;
        let mut counts = vec![0.0; size];
        let mut seen = vec![false; size];
        if len > 0 {
            counts[shift..shift + len as usize].copy_from_slice(&self.counts);
            seen[shift..shift + len as usize].copy_from_slice(&self.seen);
        }
        self.lo = new_lo;
        self.counts = counts;
        self.seen = seen;
        let lo = self.lo;
        self.far.retain(|&(key, count)| {
            let i = i64::from(key) - lo;
            if i < 0 || i >= size as i64 {
                return true;
            }
            self.counts[i as usize] = count;
            self.seen[i as usize] = true;
            false
        });
    }

    fn bins(&self) -> Vec<(i32, f64)> {
        let dense = self
            .seen
            .iter()
            .zip(&self.counts)
            .enumerate()
            .filter(|(_, (seen, _))| **seen)
            .map(|(i, (_, c))| ((self.lo + i as i64) as i32, *c));
        let mut out: Vec<(i32, f64)> = self.far.iter().copied().chain(dense).collect();
        if !self.far.is_empty() {
            // Far keys lie below or above the array, never in it.
            out.sort_by_key(|b| b.0);
        }
        out
    }
}

/// Adds as the sketch's own store adds: in place, or inserted in order.
fn add_sorted(bins: &mut Vec<(i32, f64)>, key: i32, count: f64) {
    match bins.binary_search_by_key(&key, |b| b.0) {
        Ok(i) => bins[i].1 += count,
        Err(i) => bins.insert(i, (key, count)),
    }
}

/// Distribution aggregates folded in order; [`DistFold::finish`] gives
/// what merging them one after the other gives.
#[derive(Debug, Default, Clone)]
pub struct DistFold {
    /// Count, sum, min, max and zero count; `None` until the first.
    scalars: Option<[f64; 5]>,
    /// Leaves the sketch empty (for fields that do not read it).
    no_sketch: bool,
    pos: DenseStore,
    neg: DenseStore,
}

impl DistFold {
    /// A fold whose result has an empty sketch: its count, sum, min and
    /// max are those of [`DistFold::default`], at a fraction of the work.
    pub fn without_sketch() -> DistFold {
        DistFold {
            no_sketch: true,
            ..DistFold::default()
        }
    }

    pub fn add(&mut self, d: &DistAgg) {
        self.add_parts(
            [d.count, d.sum, d.min, d.max, d.sketch.zero_count()],
            d.sketch.pos_bins(),
            d.sketch.neg_bins(),
        );
    }

    /// [`DistFold::add`] of an aggregate given as its count, sum, min, max
    /// and zero count, and its sketch's positive and negative bins.
    pub fn add_parts(&mut self, scalars: [f64; 5], pos: &[(i32, f64)], neg: &[(i32, f64)]) {
        let [d_count, d_sum, d_min, d_max, zero] = scalars;
        match &mut self.scalars {
            None => self.scalars = Some(scalars),
            Some([count, sum, min, max, z]) => {
                *count += d_count;
                *sum += d_sum;
                *min = min.min(d_min);
                *max = max.max(d_max);
                *z += zero;
            }
        }
        if !self.no_sketch {
            self.pos.add_bins(pos);
            self.neg.add_bins(neg);
        }
    }

    /// The merged aggregate; `None` when nothing was added.
    pub fn finish(&self) -> Option<DistAgg> {
        let [count, sum, min, max, zero] = self.scalars?;
        Some(DistAgg {
            count,
            sum,
            min,
            max,
            sketch: Sketch::from_parts(self.pos.bins(), self.neg.bins(), zero),
        })
    }
}

/// One series' distribution buckets as flat columns: a bucket costs no
/// allocation of its own, which is most of a wide quantile query's time
/// when every minute is an [`crate::Agg`] with a boxed aggregate.
#[derive(Debug, Default, Clone)]
pub struct DistRows {
    rows: Vec<Row>,
    /// Every bucket's positive bins, then its negative bins, in order.
    bins: Vec<(i32, f64)>,
}

/// One bucket of [`DistRows`]: start, count, sum, min, max and zero
/// count, positive bins, negative bins.
pub type DistRow<'a> = (i64, [f64; 5], &'a [(i32, f64)], &'a [(i32, f64)]);

impl crate::DistAgg {
    /// The aggregate of one row's numbers: count, sum, min, max and zero
    /// count, positive bins, negative bins.
    pub fn from_row(scalars: [f64; 5], pos: &[(i32, f64)], neg: &[(i32, f64)]) -> Self {
        let [count, sum, min, max, zero] = scalars;
        crate::DistAgg {
            count,
            sum,
            min,
            max,
            sketch: crate::Sketch::from_parts(pos.to_vec(), neg.to_vec(), zero),
        }
    }
}

#[derive(Debug, Clone)]
struct Row {
    ts: i64,
    /// Count, sum, min, max and zero count.
    scalars: [f64; 5],
    /// Ends of this bucket's positive and negative bins in `bins`.
    pos_end: usize,
    neg_end: usize,
}

impl DistRows {
    /// The distribution buckets of `buckets` (those of another kind left
    /// out, as a query of a distribution leaves them). Without `sketches`,
    /// each bucket's sketch is left empty (no bins, zero count 0): all
    /// that fields other than quantiles need.
    pub fn from_buckets(buckets: &[(i64, crate::Agg)], sketches: bool) -> DistRows {
        let mut rows = DistRows::default();
        for (ts, agg) in buckets {
            if let crate::Agg::Distribution(d) = agg {
                let s = &d.sketch;
                let (zero, pos, neg) = match sketches {
                    true => (s.zero_count(), s.pos_bins(), s.neg_bins()),
                    false => (0.0, &[][..], &[][..]),
                };
                rows.push(*ts, [d.count, d.sum, d.min, d.max, zero], pos, neg);
            }
        }
        rows
    }

    /// The buckets as aggregates again: [`from_buckets`](Self::from_buckets)
    /// undone.
    pub fn to_buckets(&self) -> Vec<(i64, crate::Agg)> {
        self.iter()
            .map(|(ts, scalars, pos, neg)| {
                let d = crate::DistAgg::from_row(scalars, pos, neg);
                (ts, crate::Agg::Distribution(Box::new(d)))
            })
            .collect()
    }

    /// Appends a bucket (after the others: buckets are kept by time).
    pub fn push(&mut self, ts: i64, scalars: [f64; 5], pos: &[(i32, f64)], neg: &[(i32, f64)]) {
        self.bins.extend_from_slice(pos);
        let pos_end = self.bins.len();
        self.bins.extend_from_slice(neg);
        self.rows.push(Row {
            ts,
            scalars,
            pos_end,
            neg_end: self.bins.len(),
        });
    }

    /// Room for `rows` more buckets holding `bins` more bins in all.
    pub fn reserve(&mut self, rows: usize, bins: usize) {
        self.rows.reserve(rows);
        self.bins.reserve(bins);
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Each bucket as (start, scalars as [`DistRows::push`] took them,
    /// positive bins, negative bins), by time.
    pub fn iter(&self) -> impl Iterator<Item = DistRow<'_>> {
        let mut start = 0;
        self.rows.iter().map(move |r| {
            let pos = &self.bins[start..r.pos_end];
            let neg = &self.bins[r.pos_end..r.neg_end];
            start = r.neg_end;
            (r.ts, r.scalars, pos, neg)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dist(values: &[f64], weight: f64) -> DistAgg {
        let mut sketch = Sketch::new();
        values.iter().for_each(|&v| sketch.add_weighted(v, weight));
        DistAgg {
            count: values.len() as f64 * weight,
            sum: values.iter().sum::<f64>() * weight,
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            sketch,
        }
    }

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            0.001f64..1e4,
            -1e4f64..-0.001,
            Just(0.0),
            1e-300f64..1e-290,
            1e290f64..1e300,
            (-2_000i32..2_000).prop_map(|i| 1.01f64.powi(i)),
        ]
    }

    proptest! {
        /// Folding gives the bits that merging one by one gives, whatever
        /// the keys' spread, order and weights (fractional counts included).
        #[test]
        fn folds_like_merging_in_order(
            aggs in prop::collection::vec(
                (prop::collection::vec(value(), 1..12), prop_oneof![Just(1.0), 0.001f64..3.0]),
                1..40,
            ),
        ) {
            let aggs: Vec<DistAgg> = aggs.iter().map(|(v, w)| dist(v, *w)).collect();
            let mut merged = aggs[0].clone();
            aggs[1..].iter().for_each(|a| merged.merge(a));
            let mut fold = DistFold::default();
            aggs.iter().for_each(|a| fold.add(a));
            let folded = fold.finish().unwrap();
            let bits = |d: &DistAgg| {
                let store = |b: &[(i32, f64)]| b.iter().map(|(k, c)| (*k, c.to_bits())).collect::<Vec<_>>();
                (
                    [d.count, d.sum, d.min, d.max, d.sketch.zero_count()].map(f64::to_bits),
                    store(d.sketch.pos_bins()),
                    store(d.sketch.neg_bins()),
                )
            };
            prop_assert_eq!(bits(&folded), bits(&merged));
        }
    }

    #[test]
    fn keys_too_far_apart_for_one_array_still_fold_exactly() {
        let key_only = |pos: Vec<(i32, f64)>| DistAgg {
            count: pos.iter().map(|b| b.1).sum(),
            sum: 0.0,
            min: 0.0,
            max: 0.0,
            sketch: Sketch::from_parts(pos, Vec::new(), 0.0),
        };
        let aggs = [
            key_only(vec![(0, 1.0), (5, 2.0)]),
            key_only(vec![(-200_000, 1.0), (3, 1.0)]),
            key_only(vec![(200_000, 4.0)]),
            key_only(vec![(i32::MIN, 1.0), (5, 0.5), (i32::MAX, 2.0)]),
            key_only(vec![(-200_000, 1.5), (-100, 1.0), (200_000, 1.0)]),
        ];
        let mut merged = aggs[0].clone();
        aggs[1..].iter().for_each(|a| merged.merge(a));
        let mut fold = DistFold::default();
        aggs.iter().for_each(|a| fold.add(a));
        assert_eq!(fold.finish().unwrap(), merged);
        assert_eq!(DistFold::default().finish(), None);
    }
}
