//! Turning stored buckets into query answers: merge a group's series per
//! output bucket, then read the field (DESIGN section 2).
//!
//! Counters add and distributions merge sketches across series, so their
//! fields are exact over any set of series. A gauge's field is read per
//! series first, then combined with `across` (sum by default: total active
//! shoppers over all hosts).

use crate::agg::Agg;
use crate::field::Field;
use crate::fold::{DistFold, DistRows};
use crate::kind::Kind;
use crate::part::{Part, Slim};

mod values;
pub use values::{AcrossSeries, SeriesValues, ValuesFold};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Across {
    #[default]
    Sum,
    Mean,
    Min,
    Max,
}

impl Across {
    pub fn parse(s: &str) -> Result<Across, String> {
        match s {
            "sum" => Ok(Across::Sum),
            "mean" => Ok(Across::Mean),
            "min" => Ok(Across::Min),
            "max" => Ok(Across::Max),
            _ => Err(format!(
                "unknown across {:?}: use sum, mean, min or max",
                crate::validate::clip(s)
            )),
        }
    }
}

/// Output buckets: `n` buckets of `step` seconds from `from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    pub from: i64,
    pub step: i64,
    pub n: usize,
}

impl Grid {
    /// Buckets starting at `from`, `step` long, covering up to `to` (exclusive).
    pub fn new(from: i64, to: i64, step: i64) -> Grid {
        let span = to.saturating_sub(from).max(0);
        let n = span / step + i64::from(span % step != 0);
        Grid {
            from,
            step,
            n: n as usize,
        }
    }

    /// Whether buckets of `secs` seconds (aligned to multiples of it, as
    /// stored buckets are) are this grid's own: each falls in a grid
    /// bucket of its own, so nothing of one series merges.
    pub fn is_one_to_one(&self, secs: i64) -> bool {
        self.step == secs && self.from.rem_euclid(secs) == 0
    }

    pub fn bucket_of(&self, ts: i64) -> Option<usize> {
        if ts < self.from {
            return None;
        }
        let i = ((ts - self.from) / self.step) as usize;
        (i < self.n).then_some(i)
    }

    pub fn start(&self, i: usize) -> i64 {
        self.from
            .saturating_add((i as i64).saturating_mul(self.step))
    }
}

/// Merges one series' stored buckets into the grid's buckets.
fn merge_into_grid(grid: &Grid, buckets: &[(i64, Agg)], out: &mut [Option<Agg>]) {
    for (ts, agg) in buckets {
        if let Some(i) = grid.bucket_of(*ts) {
            match &mut out[i] {
                Some(a) => a.merge(agg),
                slot => *slot = Some(agg.clone()),
            }
        }
    }
}

/// The field's value per grid bucket over a group of series; `None` where
/// no series had data.
pub fn evaluate(
    kind: Kind,
    field: Field,
    across: Across,
    grid: &Grid,
    series: &[&[(i64, Agg)]],
) -> Vec<Option<f64>> {
    let mut e = Evaluation::new(kind, field, across, *grid);
    for s in series {
        e.add(s);
    }
    e.finish()
}

/// [`evaluate`] a series at a time, so that a wide query need not hold
/// every series' buckets at once: the same numbers, bit for bit.
pub struct Evaluation {
    field: Field,
    grid: Grid,
    acc: Acc,
}

enum Acc {
    /// Counters: merged per bucket across series.
    Merged(Vec<Option<Agg>>),
    /// Distributions: folded per bucket across series (see [`DistFold`]).
    Folded(Vec<DistFold>),
    /// Gauges: each series' field, combined with `across`.
    Across {
        acc: AcrossSeries,
        per_series: Vec<Option<Agg>>,
    },
}

impl Evaluation {
    pub fn new(kind: Kind, field: Field, across: Across, grid: Grid) -> Evaluation {
        let acc = match kind {
            Kind::Counter => Acc::Merged(vec![None; grid.n]),
            Kind::Distribution => {
                // Only quantiles read the sketch.
                let fold = match field {
                    Field::Quantile(_) => DistFold::default(),
                    _ => DistFold::without_sketch(),
                };
                Acc::Folded(vec![fold; grid.n])
            }
            Kind::Gauge => Acc::Across {
                acc: AcrossSeries::new(across, grid.n),
                per_series: vec![None; grid.n],
            },
        };
        Evaluation { field, grid, acc }
    }

    /// Adds one series' stored buckets (sorted by time).
    pub fn add(&mut self, buckets: &[(i64, Agg)]) {
        let grid = &self.grid;
        match &mut self.acc {
            Acc::Merged(merged) => merge_into_grid(grid, buckets, merged),
            Acc::Folded(folds) => {
                for (ts, agg) in buckets {
                    if let (Some(i), Agg::Distribution(d)) = (grid.bucket_of(*ts), agg) {
                        folds[i].add(d);
                    }
                }
            }
            Acc::Across { acc, per_series } => {
                per_series.iter_mut().for_each(|a| *a = None);
                merge_into_grid(grid, buckets, per_series);
                for (i, agg) in per_series.iter().enumerate() {
                    if let Some(v) = agg.as_ref().and_then(|a| self.field.value(a, grid.step)) {
                        acc.add(i, v);
                    }
                }
            }
        }
    }

    /// [`Evaluation::add`] of one series' distribution buckets given as
    /// rows: the same numbers, without an aggregate per bucket.
    pub fn add_dists(&mut self, rows: &DistRows) {
        let grid = &self.grid;
        match &mut self.acc {
            Acc::Folded(folds) => {
                for (ts, scalars, pos, neg) in rows.iter() {
                    if let Some(i) = grid.bucket_of(ts) {
                        folds[i].add_parts(scalars, pos, neg);
                    }
                }
            }
            // Not a distribution's evaluation: the buckets as aggregates.
            _ => {
                self.add(&rows.to_buckets());
            }
        }
    }

    pub fn finish(self) -> Vec<Option<f64>> {
        let (field, step) = (self.field, self.grid.step);
        match self.acc {
            Acc::Merged(merged) => merged
                .iter()
                .map(|a| a.as_ref().and_then(|a| field.value(a, step)))
                .collect(),
            Acc::Folded(folds) => folds
                .iter()
                .map(|f| {
                    let d = f.finish()?;
                    field.value(&Agg::Distribution(Box::new(d)), step)
                })
                .collect(),
            Acc::Across { acc, .. } => acc.finish(),
        }
    }
}

/// Merges one series' parts into the grid's buckets.
fn merge_parts_into_grid(
    grid: &Grid,
    part: Part,
    buckets: &[(i64, Slim)],
    out: &mut [Option<Slim>],
) {
    // One loop per part, so the merge inlines without a branch on the part.
    match part {
        Part::Sum => merge_slims(grid, buckets, out, |a, o| Part::Sum.merge(a, o)),
        Part::Last => merge_slims(grid, buckets, out, |a, o| Part::Last.merge(a, o)),
        Part::Mean => merge_slims(grid, buckets, out, |a, o| Part::Mean.merge(a, o)),
        Part::Min => merge_slims(grid, buckets, out, |a, o| Part::Min.merge(a, o)),
        Part::Max => merge_slims(grid, buckets, out, |a, o| Part::Max.merge(a, o)),
    }
}

/// The grid bucket of each of a run of times. Times come sorted, so a
/// time's bucket is most often the previous time's or the next: found
/// without a division.
#[derive(Default)]
struct Cursor {
    /// `[lo, hi)` is the span of grid bucket `i` (empty before the first).
    i: usize,
    lo: i64,
    hi: i64,
}

impl Cursor {
    /// [`Grid::bucket_of`]`(ts)`: `None` outside the grid.
    #[inline(always)]
    fn bucket_of(&mut self, grid: &Grid, ts: i64) -> Option<usize> {
        if ts < self.lo || ts >= self.hi {
            match self.hi.checked_add(grid.step) {
                Some(end) if self.hi > self.lo && ts >= self.hi && ts < end => {
                    self.i += 1;
                    (self.lo, self.hi) = (self.hi, end);
                }
                _ => {
                    let j = grid.bucket_of(ts)?;
                    self.i = j;
                    self.lo = grid.start(j);
                    // Past i64 (a grid at the end of time): no span kept.
                    self.hi = self.lo.checked_add(grid.step).unwrap_or(self.lo);
                }
            }
        }
        (self.i < grid.n).then_some(self.i)
    }
}

#[inline(always)]
fn merge_slims(
    grid: &Grid,
    buckets: &[(i64, Slim)],
    out: &mut [Option<Slim>],
    merge: impl Fn(&mut Slim, Slim),
) {
    let mut cursor = Cursor::default();
    for &(ts, slim) in buckets {
        let Some(slot) = cursor.bucket_of(grid, ts).and_then(|i| out.get_mut(i)) else {
            continue;
        };
        match slot {
            Some(a) => merge(a, slim),
            None => *slot = Some(slim),
        }
    }
}

/// [`evaluate`] for a field that reads a [`Part`] of each aggregate, from
/// buckets reduced to that part (stored buckets of `bucket_secs`): the
/// same numbers, bit for bit, without whole aggregates.
pub fn evaluate_parts(
    kind: Kind,
    field: Field,
    part: Part,
    across: Across,
    (grid, bucket_secs): (&Grid, i64),
    series: &[&[(i64, Slim)]],
) -> Vec<Option<f64>> {
    let mut e = PartsEvaluation::new(kind, field, part, across, *grid, bucket_secs);
    for s in series {
        e.add(s);
    }
    e.finish()
}

/// The longest grid of stored buckets a counter is read on per series
/// (a year of minutes, the longest output grid a query may ask for).
const MAX_FINE_CELLS: usize = 527_040;

/// [`evaluate_parts`] a series at a time, so that a wide query need not
/// hold every series' buckets at once: the same numbers, bit for bit.
///
/// Each series is added as its values ([`SeriesValues`]), which a store
/// can fold where it reads ([`PartsEvaluation::read_grid`] and
/// [`PartsEvaluation::read_field`] say how). A gauge's values are its
/// field per output bucket, combined across series with `across`. A
/// counter's are its sum per stored bucket (on a grid of the stored
/// buckets' width, where each holds one), each added into its output
/// bucket series after series and in time order: the very additions that
/// merging the parts makes. Its field is read from the sum at the end (a
/// rate divides it), as from merged parts.
pub struct PartsEvaluation {
    kind: Kind,
    field: Field,
    part: Part,
    grid: Grid,
    /// Counters: stored buckets per output bucket (1 for gauges).
    k: usize,
    acc: AcrossSeries,
    /// Buffers of [`PartsEvaluation::add`].
    values: SeriesValues,
    scratch: Vec<Option<Slim>>,
}

impl PartsEvaluation {
    /// For stored buckets of `bucket_secs` (the output step a multiple of
    /// it, as a query picks its resolution).
    pub fn new(
        kind: Kind,
        field: Field,
        part: Part,
        across: Across,
        grid: Grid,
        bucket_secs: i64,
    ) -> Self {
        // Counters add across series whatever `across` says. A step that is
        // not whole buckets (no query asks for one), or a grid of buckets
        // too long to hold densely per series, folds each series on the
        // output grid: the same sums, added in another order.
        let k = match bucket_secs {
            1.. if grid.step % bucket_secs == 0 => (grid.step / bucket_secs) as usize,
            _ => 1,
        };
        let (k, across) = match kind {
            Kind::Counter if grid.n.saturating_mul(k) <= MAX_FINE_CELLS => (k, Across::Sum),
            Kind::Counter => (1, Across::Sum),
            _ => (1, across),
        };
        PartsEvaluation {
            kind,
            field,
            part,
            grid,
            k,
            acc: AcrossSeries::new(across, grid.n),
            values: SeriesValues::default(),
            scratch: Vec::new(),
        }
    }

    /// The grid each series' values are read on, for data up to `to`:
    /// the output grid, or for counters the stored buckets' own.
    pub fn read_grid(&self, to: i64) -> Grid {
        match self.kind {
            Kind::Counter => Grid::new(self.grid.from, to, self.grid.step / self.k as i64),
            _ => self.grid,
        }
    }

    /// The field each series' values are read as: a counter's sum.
    pub fn read_field(&self) -> Field {
        match self.kind {
            Kind::Counter => Field::Sum,
            _ => self.field,
        }
    }

    /// Adds one series' values, read on [`PartsEvaluation::read_grid`] as
    /// [`PartsEvaluation::read_field`].
    pub fn add_values(&mut self, values: &SeriesValues) {
        self.acc.add_finer_values(values, self.k);
    }

    /// Adds one series' buckets.
    pub fn add(&mut self, s: &[(i64, Slim)]) {
        let end = self.grid.start(self.grid.n);
        let (grid, field) = (self.read_grid(end), self.read_field());
        let mut values = std::mem::take(&mut self.values);
        values.fill(&grid, self.part, field, s, &mut self.scratch);
        self.add_values(&values);
        self.values = values;
    }

    pub fn finish(self) -> Vec<Option<f64>> {
        let (kind, field, part, step) = (self.kind, self.field, self.part, self.grid.step);
        let read = |v: f64| match kind {
            Kind::Counter => part.value(field, Slim { v, w: 0 }, step),
            _ => v,
        };
        self.acc.finish().into_iter().map(|v| v.map(read)).collect()
    }
}

/// A step giving at most `max_points` buckets over `span` seconds, rounded
/// up to a step people read easily (1, 2, 5, 10, 15, 30 min, 1, 2, 3, 6,
/// 12 h, whole days).
pub fn auto_step(span: i64, max_points: i64) -> i64 {
    const NICE: [i64; 12] = [
        60, 120, 300, 600, 900, 1_800, 3_600, 7_200, 10_800, 21_600, 43_200, 86_400,
    ];
    let min = (span + max_points - 1) / max_points.max(1);
    NICE.iter()
        .copied()
        .find(|&s| s >= min)
        .unwrap_or_else(|| ((min + 86_399) / 86_400) * 86_400)
}

#[cfg(test)]
mod tests;
