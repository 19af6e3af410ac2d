//! Alerts of minutely (DESIGN section 5), the pure part: what an alert is
//! ([`model`]), how its condition is judged for one minute of one series
//! ([`condition`]) and the per-series state machine that turns those
//! judgements into incidents and notifications ([`machine`]).
//!
//! Nothing here reads a clock or the store: the evaluator in the server
//! feeds minutes in order, so tests script any sequence of minutes.
//!
//! States of one series of one alert:
//!
//! ```text
//!  closed --holds--> warming up --holds for warm-up--> open
//!    ^                  |                               |  ^
//!    |            false (interrupted)                 false holds
//!    |                  v                               v  |
//!    +---------------- closed        closed <--false for cool-down-- cooling down
//! ```

pub mod condition;
pub mod machine;
pub mod model;

pub use condition::{judge, History};
pub use machine::{AlertState, Event, EventKind, Incident, Input, Phase, SeriesState};
pub use model::{AlertDef, Channel, Condition, NoData, Op};
