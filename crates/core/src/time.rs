//! UTC minute arithmetic. Every bucket in minutely starts on a whole UTC
//! minute; unix time has no leap seconds, so a minute is always 60 s.

pub const MINUTE: i64 = 60;
pub const HOUR: i64 = 3_600;
pub const DAY: i64 = 86_400;

/// Start of the UTC minute holding `ts` (unix seconds, may be fractional).
pub fn minute_of(ts: f64) -> i64 {
    floor_to(ts.floor() as i64, MINUTE)
}

/// Largest multiple of `step` at or below `t` (also for negative `t`).
pub fn floor_to(t: i64, step: i64) -> i64 {
    t.div_euclid(step) * step
}

/// Timestamp in whole milliseconds, used to order gauge values in a minute.
pub fn millis_of(ts: f64) -> i64 {
    (ts * 1000.0).round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minute_boundaries_are_utc_minutes() {
        assert_eq!(minute_of(1_764_100_000.5), 1_764_099_960);
        assert_eq!(minute_of(1_764_099_960.0), 1_764_099_960);
        assert_eq!(minute_of(1_764_100_019.999), 1_764_099_960);
        assert_eq!(minute_of(1_764_100_020.0), 1_764_100_020);
        assert_eq!(floor_to(-1, 60), -60);
    }
}
