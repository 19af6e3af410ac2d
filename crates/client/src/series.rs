//! One series' running aggregate between two drains, and how a drain turns
//! it into the push API's points: a counter's sum as `value`, a gauge's and
//! a distribution's window as a `summary` (built from the core's
//! [`GaugeAgg`] and [`DistAgg`], the distribution's sketch being the core's
//! [`minutely_core::Sketch`]).
//!
//! Counters are lock-free (an integer and a float accumulator). Gauges and
//! distributions keep several fields that must agree with each other (the
//! server checks `min <= last <= max` and that the sketch counts add up), so
//! they sit behind an uncontended mutex: two atomic operations per call.

use minutely_core::validate::{RawPoint, RawSummary};
use minutely_core::{DistAgg, GaugeAgg};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

/// Integers below this add exactly in an `i64` and convert exactly to `f64`.
const EXACT_INT: f64 = 9_007_199_254_740_992.0; // 2^53

/// A series: its validated name and tags, and its cell.
pub struct Series<C> {
    pub name: String,
    pub tags: BTreeMap<String, String>,
    pub cell: C,
}

impl<C> Series<C> {
    fn point(&self, kind: &str, ts: f64) -> RawPoint {
        RawPoint {
            kind: kind.to_string(),
            name: self.name.clone(),
            value: None,
            tags: self.tags.clone(),
            ts: Some(ts),
            summary: None,
        }
    }
}

/// Unix time in milliseconds from the coarse clock: it ticks every 1-4 ms
/// and reads in a few nanoseconds, where the precise clock costs 20-40 ns
/// on virtual machines; a gauge's timestamp needs no more than that.
#[cfg(target_os = "linux")]
#[inline]
pub fn now_ms() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the call only writes it.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) } == 0 {
        // `time_t` and `c_long` are 32 bits on some targets.
        #[allow(clippy::unnecessary_cast)]
        return ts.tv_sec as i64 * 1000 + ts.tv_nsec as i64 / 1_000_000;
    }
    precise_now_ms()
}

#[cfg(not(target_os = "linux"))]
pub fn now_ms() -> i64 {
    precise_now_ms()
}

/// Unix time in milliseconds.
pub fn precise_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[derive(Default)]
pub struct CounterCell {
    touched: AtomicBool,
    int: AtomicI64,
    /// `f64` bits of the non-integer part.
    float: AtomicU64,
    /// Last value given to `absolute` (the `metrics` facade's counter reset).
    last_absolute: AtomicU64,
}

impl CounterCell {
    #[inline]
    fn touch(&self) {
        if !self.touched.load(Relaxed) {
            self.touched.store(true, Relaxed);
        }
    }

    /// Adds a finite `v`: integers with one `fetch_add`, others by CAS.
    #[inline]
    pub fn add(&self, v: f64) {
        self.touch();
        if v.fract() == 0.0 && v.abs() < EXACT_INT {
            self.int.fetch_add(v as i64, Relaxed);
        } else {
            let _ = self.float.fetch_update(Relaxed, Relaxed, |bits| {
                Some((f64::from_bits(bits) + v).to_bits())
            });
        }
    }

    #[inline]
    pub fn add_int(&self, n: u64) {
        self.touch();
        self.int.fetch_add(n.min(i64::MAX as u64) as i64, Relaxed);
    }

    /// The facade's `absolute`: adds what the total grew by since last time
    /// (all of it after a reset to a smaller total).
    pub fn absolute(&self, total: u64) {
        let prev = self.last_absolute.swap(total, Relaxed);
        self.add_int(if total >= prev { total - prev } else { total });
    }

    /// The window's sum, `None` when nothing was added.
    pub fn take(&self) -> Option<f64> {
        let touched = self.touched.swap(false, Relaxed);
        let int = self.int.swap(0, Relaxed);
        let float = f64::from_bits(self.float.swap(0, Relaxed));
        // A value added while we swapped is kept for the next window, so a
        // non-zero remainder is never left behind.
        (touched || int != 0 || float != 0.0).then_some(int as f64 + float)
    }
}

impl Series<CounterCell> {
    pub fn drain(&self, window_start: f64) -> Option<RawPoint> {
        let sum = self.cell.take()?;
        sum.is_finite().then(|| RawPoint {
            value: Some(sum),
            ..self.point("counter", window_start)
        })
    }
}

#[derive(Default)]
struct GaugeState {
    window: Option<GaugeAgg>,
    /// Current value, for the facade's increment and decrement.
    current: f64,
    /// Facade gauges hold their value like Prometheus gauges: repeated once
    /// a minute while nothing sets them.
    sticky: bool,
    has_value: bool,
    last_minute: i64,
}

#[derive(Default)]
pub struct GaugeCell {
    state: Mutex<GaugeState>,
}

impl GaugeCell {
    fn lock(&self) -> std::sync::MutexGuard<'_, GaugeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn make_sticky(&self) {
        self.lock().sticky = true;
    }

    #[inline]
    pub fn set(&self, v: f64) {
        let ts = now_ms();
        set_locked(&mut self.lock(), v, ts);
    }

    /// Adds `delta` to the current value (the facade's increment/decrement).
    pub fn add(&self, delta: f64) {
        let ts = now_ms();
        let mut s = self.lock();
        let v = s.current + delta;
        if v.is_finite() {
            set_locked(&mut s, v, ts);
        }
    }
}

#[inline]
fn set_locked(s: &mut GaugeState, v: f64, ts: i64) {
    s.current = v;
    s.has_value = true;
    match &mut s.window {
        Some(g) => {
            g.last = v;
            g.last_ms = g.last_ms.max(ts);
            g.min = g.min.min(v);
            g.max = g.max.max(v);
            g.sum += v;
            g.count += 1;
        }
        None => s.window = Some(GaugeAgg::single(v, ts)),
    }
}

impl Series<GaugeCell> {
    /// The window as a summary at the time of its last value; a sticky gauge
    /// nobody set this minute repeats its value once, at `now`.
    pub fn drain(&self, now: f64) -> Option<RawPoint> {
        let minute = (now / 60.0).floor() as i64;
        let agg = {
            let mut s = self.cell.lock();
            match s.window.take() {
                Some(g) => {
                    s.last_minute = g.last_ms.div_euclid(60_000);
                    g
                }
                None if s.sticky && s.has_value && s.last_minute < minute => {
                    s.last_minute = minute;
                    GaugeAgg::single(s.current, (now * 1000.0) as i64)
                }
                None => return None,
            }
        };
        (agg.sum.is_finite()).then(|| RawPoint {
            summary: Some(RawSummary {
                last: Some(agg.last),
                min: Some(agg.min),
                max: Some(agg.max),
                sum: Some(agg.sum),
                count: Some(agg.count as f64),
                ..RawSummary::default()
            }),
            ..self.point("gauge", agg.last_ms as f64 / 1000.0)
        })
    }
}

#[derive(Default)]
pub struct DistCell {
    window: Mutex<Option<DistAgg>>,
}

impl DistCell {
    #[inline]
    pub fn record(&self, v: f64) {
        self.record_many(v, 1);
    }

    pub fn record_many(&self, v: f64, n: usize) {
        if n == 0 {
            return;
        }
        let n = n as f64;
        let mut w = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *w {
            Some(d) => {
                d.count += n;
                d.sum += v * n;
                d.min = d.min.min(v);
                d.max = d.max.max(v);
                d.sketch.add_weighted(v, n);
            }
            None => {
                let mut d = DistAgg::single(v);
                if n != 1.0 {
                    d = DistAgg {
                        count: n,
                        sum: v * n,
                        ..d
                    };
                    d.sketch = minutely_core::Sketch::new();
                    d.sketch.add_weighted(v, n);
                }
                *w = Some(d);
            }
        }
    }
}

impl Series<DistCell> {
    pub fn drain(&self, window_start: f64) -> Option<RawPoint> {
        let d = self
            .cell
            .window
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        d.sum.is_finite().then(|| RawPoint {
            summary: Some(RawSummary {
                count: Some(d.count),
                sum: Some(d.sum),
                min: Some(d.min),
                max: Some(d.max),
                sketch: Some(d.sketch.to_json()),
                ..RawSummary::default()
            }),
            ..self.point("distribution", window_start)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minutely_core::validate::{validate_point, DEFAULT_LATE_SECS};
    use minutely_core::PointValue;

    fn series<C: Default>(name: &str) -> Series<C> {
        Series {
            name: name.into(),
            tags: BTreeMap::from([("region".to_string(), "eu".to_string())]),
            cell: C::default(),
        }
    }

    fn now() -> f64 {
        now_ms() as f64 / 1000.0
    }

    #[test]
    fn counter_sums_exactly_and_skips_idle_windows() {
        let c: Series<CounterCell> = series("c");
        for _ in 0..10 {
            c.cell.add(1.0);
            c.cell.add(0.25);
        }
        c.cell.add_int(5);
        c.cell.absolute(10);
        c.cell.absolute(12);
        c.cell.absolute(3);
        let p = c.drain(now()).unwrap();
        assert_eq!(p.value, Some(10.0 + 2.5 + 5.0 + 12.0 + 3.0));
        assert!(validate_point(p, now(), DEFAULT_LATE_SECS).is_ok());
        assert!(c.drain(now()).is_none());
        c.cell.add(0.0);
        assert_eq!(c.drain(now()).unwrap().value, Some(0.0));
    }

    #[test]
    fn gauge_window_is_a_valid_summary() {
        let g: Series<GaugeCell> = series("g");
        for v in [5.0, 1.0, 9.0, 4.0] {
            g.cell.set(v);
        }
        g.cell.add(2.0);
        let p = g.drain(now()).unwrap();
        let s = p.summary.clone().unwrap();
        assert_eq!(
            (s.last, s.min, s.max, s.sum, s.count),
            (Some(6.0), Some(1.0), Some(9.0), Some(25.0), Some(5.0))
        );
        let v = validate_point(p, now(), DEFAULT_LATE_SECS).unwrap();
        assert!(matches!(v.value, PointValue::GaugeSummary(ref a) if a.last == 6.0));
        assert!(g.drain(now()).is_none(), "helper gauges do not repeat");
    }

    #[test]
    fn sticky_gauge_repeats_once_a_minute() {
        let g: Series<GaugeCell> = series("g");
        g.cell.make_sticky();
        g.cell.set(3.0);
        let t = (now() / 60.0).floor() * 60.0;
        assert!(g.drain(t + 1.0).is_some());
        assert!(g.drain(t + 61.0).is_some());
        assert!(g.drain(t + 71.0).is_none());
        let p = g.drain(t + 121.0).unwrap();
        assert_eq!(p.summary.unwrap().last, Some(3.0));
    }

    #[test]
    fn distribution_window_is_a_valid_summary() {
        let d: Series<DistCell> = series("d");
        for v in 1..=100 {
            d.cell.record(v as f64);
        }
        d.cell.record_many(-2.0, 3);
        let p = d.drain(now()).unwrap();
        let s = p.summary.clone().unwrap();
        assert_eq!(
            (s.count, s.sum, s.min, s.max),
            (Some(103.0), Some(5044.0), Some(-2.0), Some(100.0))
        );
        let v = validate_point(p, now(), DEFAULT_LATE_SECS).unwrap();
        let PointValue::DistSummary(agg) = v.value else {
            panic!("not a distribution summary")
        };
        let p50 = agg.quantile(0.5).unwrap();
        assert!((p50 - 49.0).abs() <= 0.49 + 1e-9, "{p50}");
        assert!(d.drain(now()).is_none());
    }
}
