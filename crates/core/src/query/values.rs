//! Values in their dense form: one series' field value per grid bucket,
//! and the values of many series combined per bucket with `across`. A
//! wide gauge query (or a counter's sum on the stored buckets' own grid)
//! folds each series to its values where it reads the series (on the
//! store's threads) and hands over 8 bytes a bucket, and the combining is
//! a plain loop over arrays.

use super::{merge_parts_into_grid, Across, Cursor, Grid};
use crate::field::Field;
use crate::part::{Part, Slim};

/// One series' field value per bucket of a grid; a bucket without data
/// has none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeriesValues {
    values: Vec<f64>,
    /// Bit `i % 64` of word `i / 64` is set when bucket `i` has a value.
    present: Vec<u64>,
}

impl SeriesValues {
    /// The values of `field` over one series' buckets of `part`, in any
    /// order: each grid bucket's parts merged in the order given, then
    /// the field read, as [`super::evaluate_parts`] reads a series.
    pub fn of_parts(grid: &Grid, part: Part, field: Field, buckets: &[(i64, Slim)]) -> Self {
        let mut values = SeriesValues::default();
        values.fill(grid, part, field, buckets, &mut Vec::new());
        values
    }

    /// [`SeriesValues::of_parts`] into this one's buffers; `scratch` is a
    /// grid of parts for buckets that come out of order.
    pub fn fill(
        &mut self,
        grid: &Grid,
        part: Part,
        field: Field,
        buckets: &[(i64, Slim)],
        scratch: &mut Vec<Option<Slim>>,
    ) {
        // Sorted (as stores give them): a grid bucket's parts are
        // neighbours, folded in one pass without a grid of parts.
        if buckets.windows(2).all(|w| w[0].0 <= w[1].0) {
            let mut fold = ValuesFold::new(self, grid, part, field);
            buckets.iter().for_each(|&(ts, slim)| fold.push(ts, slim));
            fold.finish();
            return;
        }
        self.reset(grid.n);
        scratch.clear();
        scratch.resize(grid.n, None);
        merge_parts_into_grid(grid, part, buckets, scratch);
        for (i, slim) in scratch.iter().enumerate() {
            if let Some(s) = slim {
                self.set(i, part.value(field, *s, grid.step));
            }
        }
    }

    /// `n` buckets, none with a value.
    pub fn reset(&mut self, n: usize) {
        self.values.clear();
        self.values.resize(n, 0.0);
        self.present.clear();
        self.present.resize(n.div_ceil(64), 0);
    }

    /// Gives bucket `i` the value `v`.
    #[inline(always)]
    pub fn set(&mut self, i: usize, v: f64) {
        self.values[i] = v;
        self.present[i / 64] |= 1 << (i % 64);
    }

    /// Gives buckets `first, first + 1, ...` the values `vs`, leaving out
    /// those outside the grid (`first` may be negative).
    pub fn set_run(&mut self, first: i64, vs: &[f64]) {
        let n = self.values.len() as i64;
        let lo = first.clamp(0, n);
        let hi = first.saturating_add(vs.len() as i64).clamp(lo, n);
        if hi == lo {
            return;
        }
        let skip = (lo - first) as usize;
        let (lo, hi) = (lo as usize, hi as usize);
        self.values[lo..hi].copy_from_slice(&vs[skip..skip + (hi - lo)]);
        // The bits of lo..hi, a word at a time.
        let mut i = lo;
        while i < hi {
            let (bit, len) = (i % 64, (64 - i % 64).min(hi - i));
            let mask = if len == 64 {
                u64::MAX
            } else {
                ((1 << len) - 1) << bit
            };
            self.present[i / 64] |= mask;
            i += len;
        }
    }

    /// Number of grid buckets.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The value of bucket `i`, if it has one.
    pub fn get(&self, i: usize) -> Option<f64> {
        let word = *self.present.get(i / 64)?;
        (word & (1 << (i % 64)) != 0).then(|| self.values[i])
    }
}

/// [`SeriesValues::of_parts`] of a series' buckets handed over one at a
/// time, as a store decodes them, without collecting them first. The
/// buckets must come sorted by time; [`ValuesFold::finish`] says whether
/// they did (if not, the values are wrong: read them with
/// [`SeriesValues::fill`]).
pub struct ValuesFold<'a> {
    out: &'a mut SeriesValues,
    grid: Grid,
    part: Part,
    field: Field,
    cursor: Cursor,
    /// The grid bucket being folded and its parts merged so far.
    cur: Option<(usize, Slim)>,
    last_ts: i64,
    sorted: bool,
}

impl<'a> ValuesFold<'a> {
    pub fn new(out: &'a mut SeriesValues, grid: &Grid, part: Part, field: Field) -> Self {
        out.reset(grid.n);
        ValuesFold {
            out,
            grid: *grid,
            part,
            field,
            cursor: Cursor::default(),
            cur: None,
            last_ts: i64::MIN,
            sorted: true,
        }
    }

    /// The next bucket: its start and its part.
    #[inline]
    pub fn push(&mut self, ts: i64, slim: Slim) {
        self.sorted &= ts >= self.last_ts;
        self.last_ts = ts;
        let Some(i) = self.cursor.bucket_of(&self.grid, ts) else {
            return;
        };
        match &mut self.cur {
            Some((j, a)) if *j == i => self.part.merge(a, slim),
            _ => {
                if let Some((j, a)) = self.cur.replace((i, slim)) {
                    self.out
                        .set(j, self.part.value(self.field, a, self.grid.step));
                }
            }
        }
    }

    /// Writes the last grid bucket; `false` if the buckets came out of
    /// order.
    pub fn finish(self) -> bool {
        if let Some((j, a)) = self.cur {
            self.out
                .set(j, self.part.value(self.field, a, self.grid.step));
        }
        self.sorted
    }
}

/// Gauge values of several series combined per bucket with `across`, a
/// series at a time in the order they are added.
#[derive(Debug, Clone)]
pub struct AcrossSeries {
    across: Across,
    /// The combined value per bucket. Sums start at -0.0, the identity of
    /// float addition (`-0.0 + v` is `v` to the bit, `0.0 + -0.0` is not),
    /// so a bucket's first value needs no branch.
    combined: Vec<f64>,
    /// Series with a value per bucket.
    counts: Vec<u32>,
}

impl AcrossSeries {
    pub fn new(across: Across, n: usize) -> Self {
        let start = match across {
            Across::Sum | Across::Mean => -0.0,
            Across::Min | Across::Max => 0.0,
        };
        AcrossSeries {
            across,
            combined: vec![start; n],
            counts: vec![0; n],
        }
    }

    /// Adds one series' value of bucket `i`.
    #[inline]
    pub fn add(&mut self, i: usize, v: f64) {
        let (c, n) = (&mut self.combined[i], &mut self.counts[i]);
        *c = match self.across {
            Across::Sum | Across::Mean => *c + v,
            _ if *n == 0 => v,
            Across::Min => c.min(v),
            Across::Max => c.max(v),
        };
        *n += 1;
    }

    /// Adds one series' values (a grid of the same length; buckets past
    /// this one's end are left out).
    pub fn add_values(&mut self, s: &SeriesValues) {
        let n = s.len().min(self.combined.len());
        let words = s.present.iter().enumerate().take(n.div_ceil(64));
        let within = |i: &usize| *i < n;
        if !matches!(self.across, Across::Sum | Across::Mean) {
            for (w, &word) in words {
                for_each_bit(word, |b| {
                    if within(&(w * 64 + b)) {
                        self.add(w * 64 + b, s.values[w * 64 + b]);
                    }
                });
            }
            return;
        }
        for (w, &word) in words {
            let lo = w * 64;
            let hi = (lo + 64).min(n);
            if word == u64::MAX && hi - lo == 64 {
                // A full run of buckets, the common case: a loop the
                // compiler vectorises.
                let sums = self.combined[lo..hi].iter_mut().zip(&s.values[lo..hi]);
                sums.for_each(|(c, v)| *c += v);
                self.counts[lo..hi].iter_mut().for_each(|n| *n += 1);
            } else {
                for_each_bit(word, |b| {
                    if within(&(lo + b)) {
                        self.combined[lo + b] += s.values[lo + b];
                        self.counts[lo + b] += 1;
                    }
                });
            }
        }
    }

    /// Adds one series' values on a grid `k` times finer than this one
    /// (same start): each value goes into bucket `i / k`, in order, as
    /// merging the finer buckets into this grid adds them. With `k` of 1,
    /// [`AcrossSeries::add_values`].
    pub fn add_finer_values(&mut self, s: &SeriesValues, k: usize) {
        if k <= 1 {
            return self.add_values(s);
        }
        let n = self.combined.len();
        for (w, &word) in s.present.iter().enumerate() {
            for_each_bit(word, |b| {
                let i = w * 64 + b;
                if i / k < n {
                    self.add(i / k, s.values[i]);
                }
            });
        }
    }

    /// The combined value per bucket; `None` where no series had one.
    pub fn finish(self) -> Vec<Option<f64>> {
        let mean = self.across == Across::Mean;
        self.combined
            .into_iter()
            .zip(self.counts)
            .map(|(v, n)| match n {
                0 => None,
                n if mean => Some(v / f64::from(n)),
                _ => Some(v),
            })
            .collect()
    }
}

/// Calls `f` with the index of each set bit of `word`, lowest first.
#[inline]
fn for_each_bit(mut word: u64, mut f: impl FnMut(usize)) {
    while word != 0 {
        f(word.trailing_zeros() as usize);
        word &= word - 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_keep_negative_zero_and_the_first_value_bits() {
        let grid = Grid::new(0, 180, 60);
        let one = SeriesValues::of_parts(
            &grid,
            Part::Min,
            Field::Min,
            &[(0, Slim { v: -0.0, w: 0 }), (120, Slim { v: 0.1, w: 0 })],
        );
        assert_eq!(one.get(0).map(f64::to_bits), Some((-0.0f64).to_bits()));
        assert_eq!(one.get(1), None);
        let mut sum = AcrossSeries::new(Across::Sum, grid.n);
        sum.add_values(&one);
        let got = sum.finish();
        assert_eq!(got[0].map(f64::to_bits), Some((-0.0f64).to_bits()));
        assert_eq!(got[1], None);
        assert_eq!(got[2], Some(0.1));
    }

    #[test]
    fn finer_values_add_into_their_bucket_in_order() {
        // Minutes 0..10 of two series into buckets of 3 minutes; the same
        // additions, in the same order, as merging the minutes' parts.
        let fine = Grid::new(0, 600, 60);
        let coarse = Grid::new(0, 600, 180);
        let a: Vec<(i64, Slim)> = (0..10)
            .map(|m| {
                (
                    m * 60,
                    Slim {
                        v: 0.1 * m as f64,
                        w: 0,
                    },
                )
            })
            .collect();
        let b: Vec<(i64, Slim)> = (0..10)
            .filter(|m| m % 2 == 0)
            .map(|m| {
                (
                    m * 60,
                    Slim {
                        v: 1e16 + m as f64,
                        w: 0,
                    },
                )
            })
            .collect();
        let mut got = AcrossSeries::new(Across::Sum, coarse.n);
        let mut merged = vec![None; coarse.n];
        for s in [&a, &b] {
            got.add_finer_values(&SeriesValues::of_parts(&fine, Part::Sum, Field::Sum, s), 3);
            merge_parts_into_grid(&coarse, Part::Sum, s, &mut merged);
        }
        let want: Vec<Option<u64>> = merged.iter().map(|m| m.map(|s| s.v.to_bits())).collect();
        let got: Vec<Option<u64>> = got.finish().iter().map(|v| v.map(f64::to_bits)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn values_of_another_length_add_what_fits() {
        let grid = Grid::new(0, 200 * 60, 60);
        let long: Vec<(i64, Slim)> = (0..200).map(|i| (i * 60, Slim { v: 1.0, w: 0 })).collect();
        let long = SeriesValues::of_parts(&grid, Part::Sum, Field::Sum, &long);
        for across in [Across::Sum, Across::Max] {
            let mut short = AcrossSeries::new(across, 70);
            short.add_values(&long);
            assert_eq!(short.finish(), vec![Some(1.0); 70]);
            let mut wide = AcrossSeries::new(across, 300);
            wide.add_values(&long);
            let got = wide.finish();
            assert!(got[..200].iter().all(|v| *v == Some(1.0)));
            assert!(got[200..].iter().all(Option::is_none));
        }
    }

    #[test]
    fn runs_are_clipped_to_the_grid() {
        let vs: Vec<f64> = (0..150).map(f64::from).collect();
        for (first, len, n) in [
            (-12i64, 10, 7),
            (-3, 10, 7),
            (0, 10, 7),
            (2, 10, 7),
            (5, 10, 7),
            (9, 10, 7),
            (0, 150, 140),
            (-70, 150, 140),
            (63, 2, 130),
            (1, 64, 130),
            (64, 64, 130),
        ] {
            let vs = &vs[..len];
            let mut run = SeriesValues::default();
            run.reset(n);
            run.set_run(first, vs);
            let mut one = SeriesValues::default();
            one.reset(n);
            for (k, v) in vs.iter().enumerate() {
                if let Some(i) = usize::try_from(first + k as i64).ok().filter(|&i| i < n) {
                    one.set(i, *v);
                }
            }
            assert_eq!(run, one, "run from {first}");
        }
    }

    #[test]
    fn full_and_partial_words_count_each_series() {
        // 130 buckets: two full words and two buckets of a third.
        let grid = Grid::new(0, 130 * 60, 60);
        let all: Vec<(i64, Slim)> = (0..130)
            .map(|i| (i * 60, Slim { v: i as f64, w: 1 }))
            .collect();
        let odd: Vec<(i64, Slim)> = all.iter().copied().filter(|(t, _)| t % 120 != 0).collect();
        let (a, b) = (
            SeriesValues::of_parts(&grid, Part::Mean, Field::Mean, &all),
            SeriesValues::of_parts(&grid, Part::Mean, Field::Mean, &odd),
        );
        for across in [Across::Sum, Across::Mean, Across::Min, Across::Max] {
            let mut dense = AcrossSeries::new(across, grid.n);
            let mut one_by_one = AcrossSeries::new(across, grid.n);
            for s in [&a, &b] {
                dense.add_values(s);
                (0..grid.n).for_each(|i| s.get(i).into_iter().for_each(|v| one_by_one.add(i, v)));
            }
            let got = dense.finish();
            assert_eq!(got, one_by_one.finish());
            let want = |i: usize| match (across, i % 2) {
                (Across::Sum, 1) => 2.0 * i as f64,
                _ => i as f64,
            };
            assert!(
                (0..130).all(|i| got[i] == Some(want(i))),
                "{across:?}: {got:?}"
            );
        }
    }
}
