//! What one series keeps for one bucket (a minute, an hour or a day), and
//! the exact merges that build minutes from points and rollups from minutes.

use crate::kind::Kind;
use crate::sketch::Sketch;

/// A gauge's bucket: the last value by timestamp, and min/max/sum/count.
#[derive(Debug, Clone, PartialEq)]
pub struct GaugeAgg {
    pub last: f64,
    /// Time of `last` in unix milliseconds: merges keep the latest.
    pub last_ms: i64,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub count: u64,
}

/// A distribution's bucket: count, sum, min, max and a quantile sketch.
#[derive(Debug, Clone, PartialEq)]
pub struct DistAgg {
    pub count: f64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub sketch: Sketch,
}

/// One series' aggregate over one bucket.
#[derive(Debug, Clone, PartialEq)]
pub enum Agg {
    Counter(f64),
    Gauge(GaugeAgg),
    /// Boxed: a sketch is large and rare beside counters and gauges, and
    /// the head holds millions of aggregates.
    Distribution(Box<DistAgg>),
}

impl GaugeAgg {
    pub fn single(value: f64, ts_ms: i64) -> Self {
        GaugeAgg {
            last: value,
            last_ms: ts_ms,
            min: value,
            max: value,
            sum: value,
            count: 1,
        }
    }

    /// The value and its time when this is exactly one value's aggregate,
    /// bit for bit (a -0.0 or a NaN payload included), so that
    /// [`GaugeAgg::single`] rebuilds it unchanged: most gauge minutes are
    /// one value, and those can be kept in a third of the room.
    pub fn as_single(&self) -> Option<(f64, i64)> {
        let bits = |g: &GaugeAgg| [g.last, g.min, g.max, g.sum].map(f64::to_bits);
        (self.count == 1 && bits(self) == bits(&GaugeAgg::single(self.last, self.last_ms)))
            .then_some((self.last, self.last_ms))
    }

    pub fn merge(&mut self, o: &GaugeAgg) {
        // On a tie the merged-in value wins: it arrived later.
        if o.last_ms >= self.last_ms {
            self.last = o.last;
            self.last_ms = o.last_ms;
        }
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.sum += o.sum;
        self.count += o.count;
    }
}

impl DistAgg {
    pub fn single(value: f64) -> Self {
        let mut sketch = Sketch::new();
        sketch.add(value);
        DistAgg {
            count: 1.0,
            sum: value,
            min: value,
            max: value,
            sketch,
        }
    }

    pub fn merge(&mut self, o: &DistAgg) {
        self.count += o.count;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.sketch.merge(&o.sketch);
    }

    /// Quantile from the sketch, clamped to the exact min and max so that
    /// p0 and p100 are exact and no estimate leaves the observed range.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        match q {
            q if q == 0.0 && self.count > 0.0 => Some(self.min),
            q if q == 1.0 && self.count > 0.0 => Some(self.max),
            // max/min rather than clamp: never panics, even on an inconsistent aggregate.
            q => self
                .sketch
                .quantile(q)
                .map(|v| v.max(self.min).min(self.max)),
        }
    }
}

impl Agg {
    pub fn kind(&self) -> Kind {
        match self {
            Agg::Counter(_) => Kind::Counter,
            Agg::Gauge(_) => Kind::Gauge,
            Agg::Distribution(_) => Kind::Distribution,
        }
    }

    /// Merges `other` into `self`. Aggregates of different kinds never meet
    /// (a name has one kind); if they did, `other` is ignored.
    pub fn merge(&mut self, other: &Agg) {
        match (self, other) {
            (Agg::Counter(a), Agg::Counter(b)) => *a += b,
            (Agg::Gauge(a), Agg::Gauge(b)) => a.merge(b),
            (Agg::Distribution(a), Agg::Distribution(b)) => a.merge(b),
            _ => debug_assert!(false, "merge of aggregates of different kinds"),
        }
    }

    /// Merges a sequence into one, `None` when it is empty.
    pub fn merge_all<'a>(mut aggs: impl Iterator<Item = &'a Agg>) -> Option<Agg> {
        let mut out = aggs.next()?.clone();
        for a in aggs {
            out.merge(a);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_value_is_recognised_bit_for_bit() {
        for v in [1.5, -0.0, 0.0, f64::NAN, -f64::INFINITY] {
            let (value, ms) = GaugeAgg::single(v, 42).as_single().unwrap();
            assert_eq!((value.to_bits(), ms), (v.to_bits(), 42));
        }
        let mut two = GaugeAgg::single(1.0, 1);
        two.merge(&GaugeAgg::single(1.0, 2));
        assert_eq!(two.as_single(), None);
        // One value's count with another's sum: not one value.
        let odd = GaugeAgg {
            sum: 2.0,
            ..GaugeAgg::single(1.0, 1)
        };
        assert_eq!(odd.as_single(), None);
    }

    #[test]
    fn gauge_keeps_last_by_timestamp_not_arrival() {
        let mut a = GaugeAgg::single(5.0, 2_000);
        a.merge(&GaugeAgg::single(7.0, 1_000));
        assert_eq!(a.last, 5.0);
        a.merge(&GaugeAgg::single(1.0, 3_000));
        assert_eq!(
            (a.last, a.min, a.max, a.sum, a.count),
            (1.0, 1.0, 7.0, 13.0, 3)
        );
    }

    #[test]
    fn counters_add_exactly() {
        let mut a = Agg::Counter(0.1);
        for _ in 0..9 {
            a.merge(&Agg::Counter(0.1));
        }
        assert!(matches!(a, Agg::Counter(s) if (s - 1.0).abs() < 1e-12));
        let mut b = Agg::Counter(3.0);
        b.merge(&Agg::Counter(-1.0));
        assert_eq!(b, Agg::Counter(2.0));
    }

    #[test]
    fn distribution_merge_and_clamped_quantiles() {
        let mut d = DistAgg::single(10.0);
        for v in [20.0, 30.0, 40.0] {
            d.merge(&DistAgg::single(v));
        }
        assert_eq!((d.count, d.sum, d.min, d.max), (4.0, 100.0, 10.0, 40.0));
        assert_eq!(d.quantile(0.0), Some(10.0));
        assert_eq!(d.quantile(1.0), Some(40.0));
        let p50 = d.quantile(0.5).unwrap();
        assert!((p50 - 20.0).abs() <= 0.2, "{p50}");
    }

    use proptest::prelude::*;

    proptest! {
        /// Minutes merge to the same aggregate in any order (what makes
        /// rollups and merges across servers exact): integer counters add
        /// exactly, gauges keep the value with the latest timestamp.
        #[test]
        fn merge_order_does_not_matter(
            vals in prop::collection::vec((-1_000_000i64..1_000_000, 0i64..1_000_000), 1..60),
            seed in any::<u64>(),
        ) {
            // Distinct timestamps: ties have no defined winner.
            let vals: Vec<(i64, i64)> = vals.iter().enumerate().map(|(i, (x, t))| (*x, t * 1_000 + i as i64)).collect();
            let mut shuffled = vals.clone();
            let mut s = seed | 1;
            for i in (1..shuffled.len()).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                shuffled.swap(i, (s % (i as u64 + 1)) as usize);
            }
            let gauges = |v: &[(i64, i64)]| {
                let aggs: Vec<Agg> = v.iter().map(|(x, t)| Agg::Gauge(GaugeAgg::single(*x as f64, *t))).collect();
                Agg::merge_all(aggs.iter())
            };
            let counters = |v: &[(i64, i64)]| {
                let aggs: Vec<Agg> = v.iter().map(|(x, _)| Agg::Counter(*x as f64)).collect();
                Agg::merge_all(aggs.iter())
            };
            let dists = |v: &[(i64, i64)]| {
                let aggs: Vec<Agg> = v.iter().map(|(x, _)| Agg::Distribution(Box::new(DistAgg::single(*x as f64 / 8.0)))).collect();
                Agg::merge_all(aggs.iter())
            };
            prop_assert_eq!(counters(&vals), Some(Agg::Counter(vals.iter().map(|v| v.0).sum::<i64>() as f64)));
            prop_assert_eq!(counters(&vals), counters(&shuffled));
            prop_assert_eq!(dists(&vals), dists(&shuffled));
            let latest = vals.iter().max_by_key(|v| v.1).map(|v| v.0 as f64);
            let merged = gauges(&vals);
            prop_assert_eq!(&merged, &gauges(&shuffled));
            prop_assert!(matches!(merged, Some(Agg::Gauge(ref g)) if Some(g.last) == latest));
        }
    }
}
