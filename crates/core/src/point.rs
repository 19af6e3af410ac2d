//! A validated point: one value, or one client-aggregated minute, of one series.

use crate::agg::{Agg, DistAgg, GaugeAgg};
use crate::kind::Kind;
use crate::tags::Tags;
use crate::time::{millis_of, minute_of};
use std::sync::Arc;

/// Summaries are boxed: most points are single values, and a push holds
/// its points in one vector (16 bytes a value instead of 96, a `Point` 80
/// bytes instead of 160).
#[derive(Debug, Clone, PartialEq)]
pub enum PointValue {
    /// One observation (for a counter: the amount added).
    Single(f64),
    /// A gauge's minute as a client aggregated it.
    GaugeSummary(Box<GaugeAgg>),
    /// A distribution's minute as a client aggregated it.
    DistSummary(Box<DistAgg>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub kind: Kind,
    /// Shared: a push names a few metrics over and over, and a count of
    /// references costs less than a copy per point.
    pub name: Arc<str>,
    pub tags: Tags,
    /// Unix seconds.
    pub ts: f64,
    pub value: PointValue,
}

impl Point {
    /// Start of the UTC minute the point belongs to.
    pub fn minute(&self) -> i64 {
        minute_of(self.ts)
    }

    /// The point as a one-minute aggregate.
    pub fn to_agg(&self) -> Agg {
        match &self.value {
            PointValue::Single(v) => self.single_agg(*v),
            PointValue::GaugeSummary(g) => Agg::Gauge((**g).clone()),
            PointValue::DistSummary(d) => Agg::Distribution(d.clone()),
        }
    }

    /// [`to_agg`](Self::to_agg), taking the point: a summary moves into
    /// the aggregate instead of being copied (a distribution's sketch is
    /// two vectors).
    pub fn into_agg(self) -> Agg {
        match self.value {
            PointValue::Single(v) => self.single_agg(v),
            PointValue::GaugeSummary(g) => Agg::Gauge(*g),
            PointValue::DistSummary(d) => Agg::Distribution(d),
        }
    }

    fn single_agg(&self, v: f64) -> Agg {
        match self.kind {
            Kind::Counter => Agg::Counter(v),
            Kind::Gauge => Agg::Gauge(GaugeAgg::single(v, millis_of(self.ts))),
            Kind::Distribution => Agg::Distribution(Box::new(DistAgg::single(v))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Taken or lent, a point gives the same aggregate.
    #[test]
    fn into_agg_is_to_agg() {
        let mut sketch = crate::Sketch::new();
        sketch.add(2.5);
        let values = [
            (Kind::Counter, PointValue::Single(3.0)),
            (Kind::Gauge, PointValue::Single(-1.5)),
            (Kind::Distribution, PointValue::Single(7.0)),
            (
                Kind::Gauge,
                PointValue::GaugeSummary(Box::new(GaugeAgg::single(4.0, 1_000))),
            ),
            (
                Kind::Distribution,
                PointValue::DistSummary(Box::new(DistAgg {
                    count: 1.0,
                    sum: 2.5,
                    min: 2.5,
                    max: 2.5,
                    sketch,
                })),
            ),
        ];
        for (kind, value) in values {
            let p = Point {
                kind,
                name: "m".into(),
                tags: Tags::new(),
                ts: 1_764_100_017.25,
                value,
            };
            assert_eq!(p.to_agg(), p.clone().into_agg(), "{p:?}");
        }
    }

    /// A push holds every point of its body at once: keep them small.
    #[test]
    fn a_point_stays_small() {
        assert_eq!(std::mem::size_of::<PointValue>(), 16);
        assert!(
            std::mem::size_of::<Point>() <= 80,
            "{}",
            std::mem::size_of::<Point>()
        );
    }
}
