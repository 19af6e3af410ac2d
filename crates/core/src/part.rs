//! The part of an aggregate that a query field reads, so a wide query can
//! carry one or two numbers per bucket instead of a whole [`Agg`].
//!
//! Merging parts gives the same bits as merging the aggregates and then
//! reading the field: each part keeps exactly the columns its field reads
//! and merges them with the same operations in the same order.

use crate::agg::Agg;
use crate::field::Field;
use crate::kind::Kind;

/// Which columns a field reads. Distribution fields (sketches) have none:
/// they need the whole aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// A counter's sum.
    Sum,
    /// A gauge's last value and its time.
    Last,
    /// A gauge's sum and count.
    Mean,
    /// A gauge's min.
    Min,
    /// A gauge's max.
    Max,
}

/// One bucket's part: `v` is the number the part names; `w` is the time of
/// `last` in unix milliseconds (for `Last`) or the count (for `Mean`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slim {
    pub v: f64,
    pub w: i64,
}

impl Part {
    /// The part `field` reads from aggregates of `kind`, if it is not the
    /// whole aggregate.
    pub fn for_field(kind: Kind, field: Field) -> Option<Part> {
        match (kind, field) {
            (Kind::Counter, Field::Sum | Field::Rate) => Some(Part::Sum),
            (Kind::Gauge, Field::Last) => Some(Part::Last),
            (Kind::Gauge, Field::Mean) => Some(Part::Mean),
            (Kind::Gauge, Field::Min) => Some(Part::Min),
            (Kind::Gauge, Field::Max) => Some(Part::Max),
            _ => None,
        }
    }

    /// The part of one aggregate; `None` for an aggregate of another kind.
    pub fn of(self, agg: &Agg) -> Option<Slim> {
        let slim = |v, w| Some(Slim { v, w });
        match (self, agg) {
            (Part::Sum, Agg::Counter(s)) => slim(*s, 0),
            (Part::Last, Agg::Gauge(g)) => slim(g.last, g.last_ms),
            // Counts above i64::MAX cannot come from real points.
            (Part::Mean, Agg::Gauge(g)) => slim(g.sum, g.count as i64),
            (Part::Min, Agg::Gauge(g)) => slim(g.min, 0),
            (Part::Max, Agg::Gauge(g)) => slim(g.max, 0),
            _ => None,
        }
    }

    /// Merges `o` into `a` as [`Agg::merge`] merges the columns.
    #[inline]
    pub fn merge(self, a: &mut Slim, o: Slim) {
        match self {
            Part::Sum => a.v += o.v,
            Part::Last => {
                // On a tie the merged-in value wins, as in `GaugeAgg::merge`.
                if o.w >= a.w {
                    *a = o;
                }
            }
            Part::Mean => {
                a.v += o.v;
                a.w = a.w.wrapping_add(o.w);
            }
            Part::Min => a.v = a.v.min(o.v),
            Part::Max => a.v = a.v.max(o.v),
        }
    }

    /// Whether [`Part::value`] is the part's `v` itself (a last, a min, a
    /// max, a sum), so that values can be copied without reading them.
    pub fn value_is_v(self, field: Field) -> bool {
        !matches!((self, field), (Part::Sum, Field::Rate) | (Part::Mean, _))
    }

    /// The field's value of a merged part, as [`Field::value`] reads it.
    #[inline]
    pub fn value(self, field: Field, s: Slim, bucket_secs: i64) -> f64 {
        match (self, field) {
            (Part::Sum, Field::Rate) => s.v / bucket_secs as f64,
            (Part::Mean, _) => s.v / (s.w as u64) as f64,
            _ => s.v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agg::GaugeAgg;
    use proptest::prelude::*;

    proptest! {
        /// Merging parts and reading the value gives the same bits as
        /// merging whole aggregates and reading the field.
        #[test]
        fn parts_merge_like_aggregates(
            vals in prop::collection::vec((-1e6f64..1e6, 0i64..1_000, 1u64..5), 1..30),
            field in prop_oneof![Just(Field::Last), Just(Field::Mean), Just(Field::Min), Just(Field::Max)],
        ) {
            let aggs: Vec<Agg> = vals.iter().map(|(v, ms, n)| {
                let mut g = GaugeAgg::single(*v, *ms);
                g.count = *n;
                g.sum = v * *n as f64;
                Agg::Gauge(g)
            }).collect();
            let part = Part::for_field(Kind::Gauge, field).unwrap();
            let whole = Agg::merge_all(aggs.iter()).unwrap();
            let mut slim = part.of(&aggs[0]).unwrap();
            for a in &aggs[1..] {
                part.merge(&mut slim, part.of(a).unwrap());
            }
            let expected = field.value(&whole, 60).unwrap();
            prop_assert_eq!(part.value(field, slim, 60).to_bits(), expected.to_bits());
            if part.value_is_v(field) {
                prop_assert_eq!(part.value(field, slim, 60).to_bits(), slim.v.to_bits());
            }

            let counters: Vec<Agg> = vals.iter().map(|(v, _, _)| Agg::Counter(*v)).collect();
            let whole = Agg::merge_all(counters.iter()).unwrap();
            let mut slim = Part::Sum.of(&counters[0]).unwrap();
            for a in &counters[1..] {
                Part::Sum.merge(&mut slim, Part::Sum.of(a).unwrap());
            }
            for f in [Field::Sum, Field::Rate] {
                let expected = f.value(&whole, 120).unwrap();
                prop_assert_eq!(Part::Sum.value(f, slim, 120).to_bits(), expected.to_bits());
                if Part::Sum.value_is_v(f) {
                    prop_assert_eq!(expected.to_bits(), slim.v.to_bits());
                }
            }
        }
    }

    #[test]
    fn distributions_and_mismatches_have_no_part() {
        assert_eq!(Part::for_field(Kind::Distribution, Field::Sum), None);
        assert_eq!(Part::for_field(Kind::Counter, Field::Last), None);
        assert_eq!(Part::Sum.of(&Agg::Gauge(GaugeAgg::single(1.0, 0))), None);
    }
}
