//! Quantile sketch with the DDSketch logarithmic mapping.
//!
//! A positive value `v` falls in bucket `key = ceil(ln(v) / ln(gamma))` with
//! `gamma = (1 + a) / (1 - a)`, `a = 0.01`: bucket `k` holds `(gamma^(k-1),
//! gamma^k]` and is represented by `2 gamma^k / (1 + gamma)`, which is within
//! `a` (relative) of every value in it. Negative values use the same mapping
//! on `-v` in their own store; values too small to map (below
//! [`MIN_INDEXABLE`]) count as zero. Merging adds counts per key, so it is
//! exact, and a quantile of a merged sketch is as accurate as of one sketch.
//!
//! The key formula is part of the wire contract: clients compute the same
//! keys (see `testdata/sketch_vectors.json`), so it must not change.

use serde::{Deserialize, Serialize};

/// Relative accuracy of every quantile.
pub const ALPHA: f64 = 0.01;
/// Bins per store accepted from outside: 1% buckets cover 1e-9..1e12 in
/// about 2,400 keys, so 4,096 leaves room without letting a hostile client
/// make us hold megabytes per minute.
pub const MAX_BINS_PER_STORE: usize = 4096;
/// Smallest magnitude with its own bucket; below it a value counts as zero.
/// Chosen so that keys stay well inside `i32` and `gamma^key` never
/// underflows; metrics this small are zero for every practical purpose.
pub const MIN_INDEXABLE: f64 = 1e-300;

fn gamma() -> f64 {
    (1.0 + ALPHA) / (1.0 - ALPHA)
}

/// `1 / ln(gamma)`, computed as clients must compute it:
/// `1.0 / (2.0 * ALPHA / (1.0 - ALPHA)).ln_1p()`. A constant because the
/// call is not folded at compile time and `key_of` is on every recording's
/// path; a test checks the bits.
const MULTIPLIER: f64 = f64::from_bits(0x4048_ffc9_629d_2350);

fn multiplier() -> f64 {
    MULTIPLIER
}

/// Bucket key of a positive, indexable magnitude.
pub fn key_of(magnitude: f64) -> i32 {
    (magnitude.ln() * multiplier()).ceil() as i32
}

/// The value that represents bucket `key` (within `ALPHA` of all its values).
pub fn value_of(key: i32) -> f64 {
    let g = gamma();
    (key as f64 / multiplier()).exp() * (2.0 / (1.0 + g))
}

/// One store: bucket counts sorted by key.
#[derive(Debug, Clone, Default, PartialEq)]
struct Store {
    bins: Vec<(i32, f64)>,
}

impl Store {
    fn add(&mut self, key: i32, count: f64) {
        match self.bins.binary_search_by_key(&key, |b| b.0) {
            Ok(i) => self.bins[i].1 += count,
            Err(i) => self.bins.insert(i, (key, count)),
        }
    }

    fn merge(&mut self, other: &Store) {
        if other.bins.is_empty() {
            return;
        }
        if self.bins.is_empty() {
            self.bins.clone_from(&other.bins);
            return;
        }
        // A few buckets into many (a query folding minute sketches into one
        // total): add each in place instead of rebuilding the whole run.
        if other.bins.len() * 8 <= self.bins.len() {
            for &(key, count) in &other.bins {
                self.add(key, count);
            }
            return;
        }
        let (a, b) = (&self.bins, &other.bins);
        let mut out = Vec::with_capacity(a.len() + b.len());
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            if a[i].0 == b[j].0 {
                out.push((a[i].0, a[i].1 + b[j].1));
                i += 1;
                j += 1;
            } else if a[i].0 < b[j].0 {
                out.push(a[i]);
                i += 1;
            } else {
                out.push(b[j]);
                j += 1;
            }
        }
        out.extend_from_slice(&a[i..]);
        out.extend_from_slice(&b[j..]);
        self.bins = out;
    }

    fn total(&self) -> f64 {
        self.bins.iter().map(|b| b.1).sum()
    }
}

/// A mergeable quantile sketch with 1% relative accuracy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sketch {
    pos: Store,
    neg: Store,
    zero: f64,
}

/// The sketch as DESIGN's JSON: `{"alpha", "pos": [[key, count]], "neg", "zero"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SketchJson {
    pub alpha: f64,
    #[serde(default)]
    pub pos: Vec<(i32, f64)>,
    #[serde(default)]
    pub neg: Vec<(i32, f64)>,
    #[serde(default)]
    pub zero: f64,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SketchError {
    #[error("sketch alpha must be {ALPHA}, got {0}")]
    Alpha(f64),
    #[error("sketch bucket counts must be finite and positive")]
    BadCount,
    #[error("sketch has more than {MAX_BINS_PER_STORE} buckets in one store")]
    TooManyBins,
    #[error("sketch has bucket key {0} outside the mapping's range")]
    BadKey(i32),
}

/// Keys that `key_of` can produce for magnitudes in [MIN_INDEXABLE, f64::MAX].
fn key_in_range(key: i32) -> bool {
    (key_of(MIN_INDEXABLE)..=key_of(f64::MAX)).contains(&key)
}

impl Sketch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `value` once. Non-finite values are the caller's to reject.
    pub fn add(&mut self, value: f64) {
        self.add_weighted(value, 1.0);
    }

    /// Adds `value` with a weight (a sampled StatsD value counts 1/rate times).
    pub fn add_weighted(&mut self, value: f64, weight: f64) {
        if value >= MIN_INDEXABLE {
            self.pos.add(key_of(value), weight);
        } else if value <= -MIN_INDEXABLE {
            self.neg.add(key_of(-value), weight);
        } else {
            self.zero += weight;
        }
    }

    /// Exact merge: counts add per key.
    pub fn merge(&mut self, other: &Sketch) {
        self.pos.merge(&other.pos);
        self.neg.merge(&other.neg);
        self.zero += other.zero;
    }

    pub fn count(&self) -> f64 {
        self.pos.total() + self.neg.total() + self.zero
    }

    pub fn is_empty(&self) -> bool {
        self.pos.bins.is_empty() && self.neg.bins.is_empty() && self.zero == 0.0
    }

    pub fn pos_bins(&self) -> &[(i32, f64)] {
        &self.pos.bins
    }

    pub fn neg_bins(&self) -> &[(i32, f64)] {
        &self.neg.bins
    }

    pub fn zero_count(&self) -> f64 {
        self.zero
    }

    /// Builds a sketch from stored parts; bins must be sorted by key.
    pub fn from_parts(pos: Vec<(i32, f64)>, neg: Vec<(i32, f64)>, zero: f64) -> Self {
        Sketch {
            pos: Store { bins: pos },
            neg: Store { bins: neg },
            zero,
        }
    }

    /// The value at rank `q * (count - 1)` (0-based, rounded down), within 1%.
    /// `None` for an empty sketch or a `q` outside 0..=1.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if !(0.0..=1.0).contains(&q) {
            return None;
        }
        let count = self.count();
        if count <= 0.0 {
            return None;
        }
        let rank = (q * (count - 1.0)).floor();
        let mut seen = 0.0;
        // Most negative values first: the neg store's highest keys.
        for &(key, c) in self.neg.bins.iter().rev() {
            seen += c;
            if seen > rank {
                return Some(-value_of(key));
            }
        }
        seen += self.zero;
        if seen > rank {
            return Some(0.0);
        }
        for &(key, c) in &self.pos.bins {
            seen += c;
            if seen > rank {
                return Some(value_of(key));
            }
        }
        // Rounding in the sums: the answer is the largest value.
        self.pos
            .bins
            .last()
            .map(|b| value_of(b.0))
            .or_else(|| (self.zero > 0.0).then_some(0.0))
            .or_else(|| self.neg.bins.first().map(|b| -value_of(b.0)))
    }

    pub fn to_json(&self) -> SketchJson {
        SketchJson {
            alpha: ALPHA,
            pos: self.pos.bins.clone(),
            neg: self.neg.bins.clone(),
            zero: self.zero,
        }
    }

    /// Validates and normalises a client's sketch (bins may come unsorted or
    /// repeated; they are summed per key).
    pub fn from_json(json: &SketchJson) -> Result<Sketch, SketchError> {
        if (json.alpha - ALPHA).abs() > 1e-12 {
            return Err(SketchError::Alpha(json.alpha));
        }
        if json.pos.len() > MAX_BINS_PER_STORE || json.neg.len() > MAX_BINS_PER_STORE {
            return Err(SketchError::TooManyBins);
        }
        if !(json.zero.is_finite() && json.zero >= 0.0) {
            return Err(SketchError::BadCount);
        }
        let mut sketch = Sketch {
            zero: json.zero,
            ..Sketch::default()
        };
        for (bins, store) in [(&json.pos, &mut sketch.pos), (&json.neg, &mut sketch.neg)] {
            for &(key, count) in bins {
                if !key_in_range(key) {
                    return Err(SketchError::BadKey(key));
                }
                if !(count.is_finite() && count > 0.0) {
                    return Err(SketchError::BadCount);
                }
                store.add(key, count);
            }
        }
        Ok(sketch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiplier_is_one_over_ln_gamma_as_clients_compute_it() {
        assert_eq!(
            MULTIPLIER.to_bits(),
            (1.0 / (2.0 * ALPHA / (1.0 - ALPHA)).ln_1p()).to_bits()
        );
    }

    use proptest::prelude::*;

    fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
    }

    fn within_alpha(estimate: f64, exact: f64) -> bool {
        (estimate - exact).abs() <= ALPHA * exact.abs() * (1.0 + 1e-9) + 1e-300
    }

    const QS: [f64; 9] = [0.0, 0.01, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0];

    #[test]
    fn bucket_holds_its_range() {
        let g = gamma();
        for key in [-500, -1, 0, 1, 2, 100, 1000] {
            let upper = g.powi(key);
            assert_eq!(key_of(upper * (1.0 - 1e-12)), key);
            assert!(within_alpha(value_of(key), upper));
            assert!(within_alpha(value_of(key), g.powi(key - 1) * (1.0 + 1e-12)));
        }
        assert_eq!(key_of(1.0), 0);
    }

    #[test]
    fn zero_and_negatives() {
        let mut s = Sketch::new();
        for v in [-10.0, -1.0, 0.0, 0.0, 5.0] {
            s.add(v);
        }
        assert_eq!(s.count(), 5.0);
        assert!(within_alpha(s.quantile(0.0).unwrap(), -10.0));
        assert!(within_alpha(s.quantile(0.25).unwrap(), -1.0));
        assert_eq!(s.quantile(0.5), Some(0.0));
        assert!(within_alpha(s.quantile(1.0).unwrap(), 5.0));
        assert_eq!(Sketch::new().quantile(0.5), None);
    }

    #[test]
    fn json_round_trip_and_validation() {
        let mut s = Sketch::new();
        for v in [1.0, 2.0, 2.0, -3.0, 0.0] {
            s.add(v);
        }
        let json = serde_json::to_string(&s.to_json()).unwrap();
        let back: SketchJson = serde_json::from_str(&json).unwrap();
        assert_eq!(Sketch::from_json(&back).unwrap(), s);

        let bad_alpha = SketchJson {
            alpha: 0.02,
            pos: vec![],
            neg: vec![],
            zero: 0.0,
        };
        assert_eq!(Sketch::from_json(&bad_alpha), Err(SketchError::Alpha(0.02)));
        let bad_count = SketchJson {
            alpha: ALPHA,
            pos: vec![(1, -1.0)],
            neg: vec![],
            zero: 0.0,
        };
        assert_eq!(Sketch::from_json(&bad_count), Err(SketchError::BadCount));
        let bad_key = SketchJson {
            alpha: ALPHA,
            pos: vec![(i32::MAX, 1.0)],
            neg: vec![],
            zero: 0.0,
        };
        assert!(matches!(
            Sketch::from_json(&bad_key),
            Err(SketchError::BadKey(_))
        ));
        let unsorted = SketchJson {
            alpha: ALPHA,
            pos: vec![(5, 1.0), (2, 1.0), (5, 2.0)],
            neg: vec![],
            zero: 0.0,
        };
        assert_eq!(
            Sketch::from_json(&unsorted).unwrap().pos_bins(),
            &[(2, 1.0), (5, 3.0)]
        );
    }

    fn values() -> impl Strategy<Value = Vec<f64>> {
        prop::collection::vec(
            prop_oneof![
                -1e9f64..1e9,
                0.001f64..10.0,
                (-100i32..100).prop_map(|i| i as f64),
                Just(0.0),
            ],
            1..400,
        )
    }

    /// Folding many small sketches into one (the in-place path) gives the
    /// same buckets as adding every value to one sketch.
    #[test]
    fn small_merges_into_a_large_sketch_equal_adding_everything() {
        let (mut total, mut direct) = (Sketch::new(), Sketch::new());
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for minute in 0..2_000 {
            let mut small = Sketch::new();
            for _ in 0..5 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let v = 10f64.powf((x >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 1.0);
                let v = if minute % 50 == 0 { -v } else { v };
                small.add(v);
                direct.add(v);
            }
            total.merge(&small);
        }
        assert!(
            total.pos_bins().len() > 40,
            "the in-place path was not reached"
        );
        assert_eq!(total, direct);
    }

    proptest! {
        #[test]
        fn every_quantile_within_alpha(vals in values()) {
            let mut s = Sketch::new();
            for &v in &vals { s.add(v); }
            let mut sorted = vals.clone();
            sorted.sort_by(f64::total_cmp);
            for q in QS {
                let est = s.quantile(q).unwrap();
                let exact = exact_quantile(&sorted, q);
                prop_assert!(within_alpha(est, exact), "q={q} est={est} exact={exact}");
            }
        }

        #[test]
        fn merged_quantiles_within_alpha(a in values(), b in values(), c in values()) {
            let mut merged = Sketch::new();
            for part in [&a, &b, &c] {
                let mut s = Sketch::new();
                for &v in part.iter() { s.add(v); }
                merged.merge(&s);
            }
            let mut all: Vec<f64> = a.iter().chain(&b).chain(&c).copied().collect();
            all.sort_by(f64::total_cmp);
            prop_assert_eq!(merged.count(), all.len() as f64);
            for q in QS {
                let est = merged.quantile(q).unwrap();
                let exact = exact_quantile(&all, q);
                prop_assert!(within_alpha(est, exact), "q={q} est={est} exact={exact}");
            }
        }

        #[test]
        fn merge_equals_adding_everything(a in values(), b in values()) {
            let (mut sa, mut sb, mut both) = (Sketch::new(), Sketch::new(), Sketch::new());
            for &v in &a { sa.add(v); both.add(v); }
            for &v in &b { sb.add(v); both.add(v); }
            sa.merge(&sb);
            prop_assert_eq!(sa, both);
        }
    }
}
