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
        match (&self.value, self.kind) {
            (PointValue::Single(v), Kind::Counter) => Agg::Counter(*v),
            (PointValue::Single(v), Kind::Gauge) => {
                Agg::Gauge(GaugeAgg::single(*v, millis_of(self.ts)))
            }
            (PointValue::Single(v), Kind::Distribution) => {
                Agg::Distribution(Box::new(DistAgg::single(*v)))
            }
            (PointValue::GaugeSummary(g), _) => Agg::Gauge((**g).clone()),
            (PointValue::DistSummary(d), _) => Agg::Distribution(d.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
