//! The pure core of minutely: what a metric is, what a minute keeps, how
//! minutes merge and how a query field is read from them. No I/O lives here.
//!
//! - A **point** is one value (or one client-aggregated minute) of one series.
//! - A **series** is (app, env, metric name, sorted tags).
//! - A **minute** keeps, per series, an [`Agg`]: a counter's sum; a gauge's
//!   last value (by timestamp), min, max, sum and count; a distribution's
//!   count, sum, min, max and a [`Sketch`] of its values.
//! - Hourly and daily rollups are the same [`Agg`] merged over more minutes;
//!   every merge is exact, so rollups equal what the minutes would give.

pub mod agg;
pub mod field;
pub mod fold;
pub mod kind;
pub mod part;
pub mod point;
pub mod query;
pub mod sketch;
pub mod tags;
pub mod time;
pub mod timeparse;
pub mod validate;

pub use agg::{Agg, DistAgg, GaugeAgg};
pub use field::Field;
pub use kind::Kind;
pub use part::{Part, Slim};
pub use point::{Point, PointValue};
pub use sketch::Sketch;
pub use tags::Tags;
