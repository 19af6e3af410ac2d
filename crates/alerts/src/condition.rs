//! Judging a condition for one minute of one series: a fixed threshold, the
//! change against the same minute a week earlier, or the distance from a
//! rolling mean in standard deviations.

use crate::model::{Condition, Op};

/// Fewest minutes with data a rolling window needs before it judges: with
/// fewer, mean and deviation say nothing and the condition does not hold.
pub const MIN_ROLLING_POINTS: usize = 2;

/// What a baseline compares a minute with.
#[derive(Debug, Clone, Copy, Default)]
pub struct History<'a> {
    /// The value of the same minute seven days earlier, if it had data.
    pub week_ago: Option<f64>,
    /// The values of the minutes with data in the window before the minute.
    pub window: &'a [f64],
}

/// Whether the condition holds for `value`. A baseline without the data it
/// compares with does not hold (no week-ago minute, too short a window).
pub fn judge(cond: &Condition, value: f64, h: &History) -> bool {
    match *cond {
        Condition::Threshold { op, threshold } => op.holds(value, threshold),
        Condition::WeekAgo { op, change_pct } => match h.week_ago {
            None => false,
            Some(ago) => op.holds(change_pct_of(value, ago), change_pct),
        },
        Condition::Rolling { op, deviations, .. } => {
            let n = h.window.len();
            if n < MIN_ROLLING_POINTS {
                return false;
            }
            let mean = h.window.iter().sum::<f64>() / n as f64;
            let var = h.window.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
            let band = deviations * var.sqrt();
            let line = match op {
                Op::Lt | Op::Le => mean - band,
                _ => mean + band,
            };
            op.holds(value, line)
        }
    }
}

/// Percent change from `ago` to `value`; from 0, any rise is +infinity.
pub fn change_pct_of(value: f64, ago: f64) -> f64 {
    if ago == 0.0 {
        if value == 0.0 {
            0.0
        } else {
            f64::INFINITY.copysign(value)
        }
    } else {
        (value - ago) / ago.abs() * 100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        let c = Condition::Threshold {
            op: Op::Ge,
            threshold: 40.0,
        };
        assert!(judge(&c, 40.0, &History::default()));
        assert!(!judge(&c, 39.9, &History::default()));
    }

    #[test]
    fn week_ago_drop() {
        let c = Condition::WeekAgo {
            op: Op::Lt,
            change_pct: -50.0,
        };
        let h = |ago| History {
            week_ago: ago,
            window: &[],
        };
        assert!(judge(&c, 40.0, &h(Some(100.0))));
        assert!(!judge(&c, 50.0, &h(Some(100.0))));
        assert!(!judge(&c, 40.0, &h(None)), "no week-ago data: no judgement");
        assert!(!judge(&c, 0.0, &h(Some(0.0))));
        let rise = Condition::WeekAgo {
            op: Op::Gt,
            change_pct: 100.0,
        };
        assert!(judge(&rise, 1.0, &h(Some(0.0))));
        assert!(judge(&rise, 201.0, &h(Some(100.0))));
    }

    #[test]
    fn rolling_deviations() {
        let window = [10.0, 12.0, 8.0, 10.0]; // mean 10, stddev sqrt(2)
        let h = History {
            week_ago: None,
            window: &window,
        };
        let above = Condition::Rolling {
            op: Op::Gt,
            window_minutes: 4,
            deviations: 3.0,
        };
        assert!(judge(&above, 14.3, &h));
        assert!(!judge(&above, 14.2, &h));
        let below = Condition::Rolling {
            op: Op::Lt,
            window_minutes: 4,
            deviations: 3.0,
        };
        assert!(judge(&below, 5.7, &h));
        assert!(!judge(&below, 5.8, &h));
        let short = History {
            week_ago: None,
            window: &[10.0],
        };
        assert!(!judge(&above, 1e9, &short));
    }
}
