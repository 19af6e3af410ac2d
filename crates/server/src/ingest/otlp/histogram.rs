//! OTLP histograms to distributions.
//!
//! An OTLP histogram knows how many values fell in each bucket, not where.
//! minutely spreads a bucket's `n` values evenly over the bucket's bounds
//! (the j-th at `lo + (j + 0.5) (hi - lo) / n`, the assumption Prometheus'
//! `histogram_quantile` makes) and adds them to the sketch. The outer
//! buckets are closed by the point's exact `min` and `max`, and every bound
//! is clipped to them. So:
//!
//! - `count`, `sum`, `min` and `max` are exact (when the sender gives
//!   `sum`, `min` and `max`; without `min`/`max` the outermost finite bounds
//!   stand in, without `sum` the placed values are summed);
//! - a percentile lies in the bucket that holds the true value, within 1%
//!   (the sketch) of the interpolated position: its error is at most the
//!   width of that bucket (clipped to min/max) plus 1%. Fine buckets give
//!   fine percentiles.
//!
//! Exponential histograms map the same way: bucket `i` at scale `s` is
//! `(2^(i 2^-s), 2^((i+1) 2^-s)]`; at scale 5 and above a bucket is narrower
//! than a sketch bucket, so a percentile is within 1% + the bucket's
//! relative width (`2^(2^-s) - 1`, 2.2% at scale 5, 0.27% at scale 8).
//!
//! Work is bounded: a bucket costs at most the smaller of its count and the
//! number of sketch keys its range spans, charged against a [`Budget`].

use minutely_core::agg::DistAgg;
use minutely_core::sketch::{key_of, value_of, Sketch, MIN_INDEXABLE};

/// Placement steps one request may spend: about half a second of CPU.
pub const REQUEST_BUDGET: u64 = 50_000_000;
/// Buckets one data point may have (OTLP SDKs default to 16 explicit or
/// 160 exponential buckets).
pub const MAX_BUCKETS: usize = 4_096;

/// Remaining placement work of one request.
pub struct Budget(pub u64);

/// A refusal: a reason for the counters and a message for the sender.
pub type Refusal = (&'static str, String);

fn refuse<T>(reason: &'static str, msg: impl Into<String>) -> Result<T, Refusal> {
    Err((reason, msg.into()))
}

/// How many of `n` values spread evenly over `[lo, hi]` are `<= x`.
fn below(lo: f64, hi: f64, n: u64, x: f64) -> u64 {
    let t = (x - lo) / (hi - lo) * n as f64;
    if t.is_nan() || t < 0.5 {
        0
    } else {
        ((t - 0.5).floor() as u64 + 1).min(n)
    }
}

/// Places `n` values spread evenly over `[lo, hi]`, `0 <= lo <= hi`.
fn place_pos(s: &mut Sketch, lo: f64, hi: f64, n: u64, budget: &mut Budget) -> Result<(), Refusal> {
    if n == 0 {
        return Ok(());
    }
    if hi <= lo || hi < MIN_INDEXABLE {
        s.add_weighted(hi, n as f64);
        return Ok(());
    }
    let first = key_of(lo.max(MIN_INDEXABLE));
    let last = key_of(hi);
    let span = (last - first) as u64 + 1;
    let cost = span.min(n);
    if budget.0 < cost {
        return refuse(
            "too_complex",
            "the request's histograms are too detailed to place; send fewer or narrower buckets",
        );
    }
    budget.0 -= cost;
    if n <= span {
        for j in 0..n {
            s.add(lo + (j as f64 + 0.5) * (hi - lo) / n as f64);
        }
        return Ok(());
    }
    let mut placed = below(lo, hi, n, MIN_INDEXABLE * (1.0 - 1e-9));
    if placed > 0 {
        s.add_weighted(0.0, placed as f64);
    }
    let gamma_ln =
        ((1.0 + minutely_core::sketch::ALPHA) / (1.0 - minutely_core::sketch::ALPHA)).ln();
    for k in first..=last {
        let upper = if k == last {
            hi
        } else {
            (k as f64 * gamma_ln).exp().min(hi)
        };
        let upto = if k == last {
            n
        } else {
            below(lo, hi, n, upper)
        };
        if upto > placed {
            s.add_weighted(value_of(k), (upto - placed) as f64);
            placed = upto;
        }
    }
    Ok(())
}

/// Places `n` values spread evenly over `[lo, hi]` (any signs).
pub fn place(s: &mut Sketch, lo: f64, hi: f64, n: u64, budget: &mut Budget) -> Result<(), Refusal> {
    if !(lo.is_finite() && hi.is_finite()) || lo > hi {
        return refuse(
            "bad_histogram",
            format!("bucket bounds [{lo}, {hi}] are not usable"),
        );
    }
    if lo >= 0.0 {
        return place_pos(s, lo, hi, n, budget);
    }
    let neg_n = if hi <= 0.0 {
        n
    } else {
        below(lo, hi, n, -MIN_INDEXABLE)
    };
    let mut mirror = Sketch::new();
    place_pos(&mut mirror, (-hi).max(0.0), -lo, neg_n, budget)?;
    s.merge(&Sketch::from_parts(
        Vec::new(),
        mirror.pos_bins().to_vec(),
        mirror.zero_count(),
    ));
    if hi > 0.0 {
        place_pos(s, 0.0, hi, n - neg_n, budget)?;
    }
    Ok(())
}

fn finish(
    sketch: Sketch,
    count: u64,
    sum: Option<f64>,
    min: f64,
    max: f64,
) -> Result<DistAgg, Refusal> {
    let sum = match sum {
        Some(s) if s.is_finite() => s,
        Some(_) => return refuse("bad_value", "histogram sum must be finite"),
        None => sketch
            .pos_bins()
            .iter()
            .map(|(k, c)| value_of(*k) * c)
            .chain(sketch.neg_bins().iter().map(|(k, c)| -value_of(*k) * c))
            .sum(),
    };
    Ok(DistAgg {
        count: count as f64,
        sum,
        min,
        max,
        sketch,
    })
}

fn check_min_max(min: Option<f64>, max: Option<f64>) -> Result<(), Refusal> {
    for v in [min, max].into_iter().flatten() {
        if !v.is_finite() {
            return refuse("bad_value", "histogram min and max must be finite");
        }
    }
    if let (Some(a), Some(b)) = (min, max) {
        if a > b {
            return refuse("bad_histogram", "histogram min is above its max");
        }
    }
    Ok(())
}

/// An explicit-bounds histogram (one interval's counts) as a distribution;
/// `None` when it holds no values.
pub fn explicit(
    count: u64,
    sum: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    counts: &[u64],
    bounds: &[f64],
    budget: &mut Budget,
) -> Result<Option<DistAgg>, Refusal> {
    check_min_max(min, max)?;
    if counts.len() > MAX_BUCKETS {
        return refuse(
            "bad_histogram",
            format!("histogram has more than {MAX_BUCKETS} buckets"),
        );
    }
    if !bounds.iter().all(|b| b.is_finite()) || bounds.windows(2).any(|w| w[0] >= w[1]) {
        return refuse(
            "bad_histogram",
            "explicit bounds must be finite and increasing",
        );
    }
    if count == 0 {
        return Ok(None);
    }
    if counts.is_empty() {
        // Count and sum only: all values at the mean.
        let mean = sum.unwrap_or(0.0) / count as f64;
        // Given extremes win; a missing one is the mean, kept in order.
        let lo = min.unwrap_or(mean.min(max.unwrap_or(mean)));
        let hi = max.unwrap_or(mean).max(lo);
        let mut s = Sketch::new();
        s.add_weighted(mean.clamp(lo, hi), count as f64);
        return finish(s, count, sum, lo, hi).map(Some);
    }
    if counts.len() != bounds.len() + 1 {
        return refuse(
            "bad_histogram",
            "a histogram needs one more bucket count than bounds",
        );
    }
    let total = counts.iter().try_fold(0u64, |a, c| a.checked_add(*c));
    if total != Some(count) {
        return refuse(
            "bad_histogram",
            "histogram bucket counts do not add up to its count",
        );
    }
    let first = counts.iter().position(|c| *c > 0).unwrap_or(0);
    let last = counts.iter().rposition(|c| *c > 0).unwrap_or(0);
    // Without min/max the outermost finite bounds of the occupied buckets stand in.
    let lower = |i: usize| if i == 0 { None } else { Some(bounds[i - 1]) };
    let upper = |i: usize| bounds.get(i).copied();
    let min = min
        .or(lower(first))
        .or(upper(first))
        .unwrap_or(sum.unwrap_or(0.0) / count as f64);
    let max = max.or(upper(last)).or(lower(last)).unwrap_or(min).max(min);
    let mut s = Sketch::new();
    for (i, &c) in counts.iter().enumerate().filter(|(_, c)| **c > 0) {
        let lo = lower(i).map_or(min, |b| b.max(min)).min(max);
        let hi = upper(i).map_or(max, |b| b.min(max)).max(lo);
        place(&mut s, lo, hi, c, budget)?;
    }
    finish(s, count, sum, min, max).map(Some)
}

/// The parts of an exponential histogram point.
pub struct Exponential<'a> {
    pub count: u64,
    pub sum: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub scale: i32,
    pub zero_count: u64,
    pub positive: (i32, &'a [u64]),
    pub negative: (i32, &'a [u64]),
}

/// Lower bound of exponential bucket `index` at `scale`.
fn exp_bound(scale: i32, index: i64) -> f64 {
    (index as f64 * (-(scale as f64)).exp2()).exp2()
}

/// An exponential histogram (one interval's counts) as a distribution.
pub fn exponential(h: Exponential, budget: &mut Budget) -> Result<Option<DistAgg>, Refusal> {
    check_min_max(h.min, h.max)?;
    if !(-10..=20).contains(&h.scale) {
        return refuse(
            "bad_histogram",
            format!("exponential histogram scale {} is outside -10..20", h.scale),
        );
    }
    if h.positive.1.len() + h.negative.1.len() > MAX_BUCKETS {
        return refuse(
            "bad_histogram",
            format!("histogram has more than {MAX_BUCKETS} buckets"),
        );
    }
    let total = h
        .positive
        .1
        .iter()
        .chain(h.negative.1)
        .try_fold(h.zero_count, |a, c| a.checked_add(*c));
    if total != Some(h.count) {
        return refuse(
            "bad_histogram",
            "histogram bucket counts do not add up to its count",
        );
    }
    if h.count == 0 {
        return Ok(None);
    }
    let mut s = Sketch::new();
    s.add_weighted(0.0, h.zero_count as f64);
    let (mut lo_seen, mut hi_seen) = (f64::INFINITY, f64::NEG_INFINITY);
    if h.zero_count > 0 {
        (lo_seen, hi_seen) = (0.0, 0.0);
    }
    for (sign, (offset, counts)) in [(1.0, h.positive), (-1.0, h.negative)] {
        let mut part = Sketch::new();
        for (i, &c) in counts.iter().enumerate().filter(|(_, c)| **c > 0) {
            let index = offset as i64 + i as i64;
            let (mut lo, mut hi) = (
                exp_bound(h.scale, index),
                exp_bound(h.scale, index + 1).min(f64::MAX),
            );
            if !(lo.is_finite() && hi.is_finite() && lo > 0.0) {
                return refuse(
                    "bad_histogram",
                    "exponential bucket outside the range of numbers",
                );
            }
            // Clip to the exact extremes (on the magnitude side they bound).
            let (mmin, mmax) = if sign > 0.0 {
                (h.min, h.max)
            } else {
                (h.max.map(|v| -v), h.min.map(|v| -v))
            };
            if let Some(m) = mmin.filter(|m| *m > 0.0) {
                lo = lo.max(m).min(hi);
            }
            if let Some(m) = mmax.filter(|m| *m > 0.0) {
                hi = hi.min(m).max(lo);
            }
            lo_seen = lo_seen.min(sign * if sign > 0.0 { lo } else { hi });
            hi_seen = hi_seen.max(sign * if sign > 0.0 { hi } else { lo });
            place_pos(&mut part, lo, hi, c, budget)?;
        }
        if sign > 0.0 {
            s.merge(&part);
        } else {
            s.merge(&Sketch::from_parts(
                Vec::new(),
                part.pos_bins().to_vec(),
                part.zero_count(),
            ));
        }
    }
    let min = h.min.unwrap_or(lo_seen);
    let max = h.max.unwrap_or(hi_seen).max(min);
    finish(s, h.count, h.sum, min, max).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget() -> Budget {
        Budget(REQUEST_BUDGET)
    }

    #[test]
    fn even_spread_inside_bounds() {
        for (lo, hi, n) in [
            (1.0, 2.0, 10),
            (10.0, 1000.0, 100_000),
            (0.0, 5.0, 7),
            (-5.0, 5.0, 1001),
            (-8.0, -2.0, 50_000),
        ] {
            let mut s = Sketch::new();
            place(&mut s, lo, hi, n, &mut budget()).unwrap();
            assert_eq!(s.count(), n as f64, "{lo} {hi} {n}");
            for q in [0.0, 0.1, 0.5, 0.9, 1.0] {
                let est = s.quantile(q).unwrap();
                let ideal = lo + ((q * (n - 1) as f64).floor() + 0.5) * (hi - lo) / n as f64;
                assert!(
                    est >= lo - 0.011 * lo.abs() && est <= hi + 0.011 * hi.abs(),
                    "{est} outside [{lo}, {hi}]"
                );
                assert!(
                    (est - ideal).abs() <= 0.0101 * ideal.abs() + (hi - lo) / n as f64,
                    "q{q}: {est} vs {ideal}"
                );
            }
        }
    }

    #[test]
    fn explicit_histograms() {
        let d = explicit(
            6,
            Some(33.0),
            Some(0.5),
            Some(20.0),
            &[1, 0, 3, 2],
            &[1.0, 5.0, 10.0],
            &mut budget(),
        )
        .unwrap()
        .unwrap();
        assert_eq!((d.count, d.sum, d.min, d.max), (6.0, 33.0, 0.5, 20.0));
        assert_eq!(d.sketch.count(), 6.0);
        let p50 = d.quantile(0.5).unwrap();
        assert!((5.0 * 0.99..=10.0 * 1.01).contains(&p50), "{p50}");
        assert!(
            explicit(0, Some(0.0), None, None, &[0, 0], &[1.0], &mut budget())
                .unwrap()
                .is_none()
        );
        let bad = |counts: &[u64], bounds: &[f64], count| {
            explicit(count, None, None, None, counts, bounds, &mut budget())
                .unwrap_err()
                .0
        };
        assert_eq!(bad(&[1, 1], &[1.0], 3), "bad_histogram");
        assert_eq!(bad(&[1, 1, 1], &[1.0], 3), "bad_histogram");
        assert_eq!(bad(&[1, 1, 1], &[2.0, 1.0], 3), "bad_histogram");
        assert_eq!(bad(&[1, 1], &[f64::NAN], 2), "bad_histogram");
        assert_eq!(bad(&[u64::MAX, 2], &[1.0], 1), "bad_histogram");
        // Without min/max, the outer finite bounds stand in.
        let d = explicit(
            2,
            Some(3.0),
            None,
            None,
            &[1, 0, 1],
            &[1.0, 2.0],
            &mut budget(),
        )
        .unwrap()
        .unwrap();
        assert_eq!((d.min, d.max), (1.0, 2.0));
        // Regression (found by the property test): only a max, below the
        // mean, must not make min > max (a panic in clamp).
        let d = explicit(7, Some(1.0), None, Some(-0.0), &[], &[], &mut budget())
            .unwrap()
            .unwrap();
        assert!(d.min <= d.max && d.max == 0.0);
        // Only count and sum.
        let d = explicit(4, Some(10.0), None, None, &[], &[], &mut budget())
            .unwrap()
            .unwrap();
        assert_eq!((d.count, d.sum, d.min, d.max), (4.0, 10.0, 2.5, 2.5));
    }

    #[test]
    fn exponential_histograms() {
        // Scale 3: base 2^(1/8). Buckets 8..=15 cover (2, 4].
        let counts = [1u64, 2, 3, 4, 5, 6, 7, 8];
        let d = exponential(
            Exponential {
                count: 38,
                sum: Some(100.0),
                min: Some(2.1),
                max: Some(3.9),
                scale: 3,
                zero_count: 2,
                positive: (8, &counts),
                negative: (0, &[]),
            },
            &mut budget(),
        )
        .unwrap()
        .unwrap();
        assert_eq!((d.count, d.sum, d.min, d.max), (38.0, 100.0, 2.1, 3.9));
        assert_eq!(d.sketch.zero_count(), 2.0);
        let p90 = d.quantile(0.9).unwrap();
        assert!(p90 > 3.3 && p90 <= 3.9, "{p90}");
        let neg = exponential(
            Exponential {
                count: 3,
                sum: None,
                min: None,
                max: None,
                scale: 0,
                zero_count: 0,
                positive: (0, &[]),
                negative: (1, &[3]),
            },
            &mut budget(),
        )
        .unwrap()
        .unwrap();
        assert_eq!((neg.min, neg.max), (-4.0, -2.0));
        assert!(neg.sum < -5.9 && neg.sum > -12.1);
        let e = |scale, offset| {
            exponential(
                Exponential {
                    count: 1,
                    sum: None,
                    min: None,
                    max: None,
                    scale,
                    zero_count: 0,
                    positive: (offset, &[1]),
                    negative: (0, &[]),
                },
                &mut budget(),
            )
        };
        assert_eq!(e(21, 0).unwrap_err().0, "bad_histogram");
        assert_eq!(e(0, 5_000).unwrap_err().0, "bad_histogram");
        assert!(e(-10, 0).is_ok());
    }

    #[test]
    fn budget_bounds_work() {
        let mut b = Budget(1_000);
        assert!(place(&mut Sketch::new(), 1e-300, 1e300, u64::MAX / 2, &mut b).is_err());
        let mut b = Budget(1_000_000);
        let mut s = Sketch::new();
        place(&mut s, 1e-300, 1e300, u64::MAX / 2, &mut b).unwrap();
        assert!(s.count() > 0.0);
    }
}
