//! A validated point: one value, or one client-aggregated minute, of one series.

use crate::agg::{Agg, DistAgg, GaugeAgg};
use crate::kind::Kind;
use crate::tags::Tags;
use crate::time::{millis_of, minute_of};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq)]
pub enum PointValue {
    /// One observation (for a counter: the amount added).
    Single(f64),
    /// A gauge's minute as a client aggregated it.
    GaugeSummary(GaugeAgg),
    /// A distribution's minute as a client aggregated it.
    DistSummary(DistAgg),
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
            (PointValue::GaugeSummary(g), _) => Agg::Gauge(g.clone()),
            (PointValue::DistSummary(d), _) => Agg::Distribution(Box::new(d.clone())),
        }
    }
}
