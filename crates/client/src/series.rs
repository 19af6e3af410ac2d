//! One series' running aggregate between two drains, and how a drain turns
//! it into the push API's points: a counter's sum as `value`, a gauge's and
//! a distribution's window as a `summary` (built from the core's
//! [`GaugeAgg`] and [`DistAgg`], the distribution's sketch being the core's
//! [`minutely_core::Sketch`]).
//!
//! Counters are lock-free (an integer and a float accumulator). The helpers'
//! gauges and the distributions keep several fields that must agree with
//! each other (the server checks `min <= last <= max` and that the sketch
//! counts add up), so they sit behind an uncontended mutex: two atomic
//! operations per call. The `metrics` facade's gauges are "current value"
//! gauges, as its exporters treat them: a set is a plain store (and, for a
//! new extreme, one compare-and-swap); each drain samples the value, so
//! their `last`, `min` and `max` are exact and their mean and count are
//! those of the 10-second samples (a time-weighted mean).

use minutely_core::sketch::{key_of, MIN_INDEXABLE};
use minutely_core::validate::{RawPoint, RawSummary};
use minutely_core::{DistAgg, GaugeAgg, Sketch};
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
    /// The last value, repeated by a sticky gauge.
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
    facade: FacadeGauge,
}

/// The lock-free part of a gauge, written by the `metrics` facade.
struct FacadeGauge {
    /// `f64` bits of the current value (0 until set, as in Prometheus).
    current: AtomicU64,
    /// `f64` bits of the window's lowest and highest value.
    lo: AtomicU64,
    hi: AtomicU64,
    /// Set since the last drain.
    dirty: AtomicBool,
}

impl Default for FacadeGauge {
    fn default() -> Self {
        FacadeGauge {
            current: AtomicU64::new(0f64.to_bits()),
            lo: AtomicU64::new(f64::INFINITY.to_bits()),
            hi: AtomicU64::new(f64::NEG_INFINITY.to_bits()),
            dirty: AtomicBool::new(false),
        }
    }
}

impl FacadeGauge {
    #[inline]
    fn widen(&self, v: f64) {
        // Loads only, unless `v` is a new extreme of the window.
        if v < f64::from_bits(self.lo.load(Relaxed)) {
            let _ = self.lo.fetch_update(Relaxed, Relaxed, |b| {
                (v < f64::from_bits(b)).then_some(v.to_bits())
            });
        }
        if v > f64::from_bits(self.hi.load(Relaxed)) {
            let _ = self.hi.fetch_update(Relaxed, Relaxed, |b| {
                (v > f64::from_bits(b)).then_some(v.to_bits())
            });
        }
        if !self.dirty.load(Relaxed) {
            self.dirty.store(true, Relaxed);
        }
    }

    #[inline]
    fn set(&self, v: f64) {
        self.current.store(v.to_bits(), Relaxed);
        self.widen(v);
    }

    fn add(&self, delta: f64) {
        let mut now = 0.0;
        let updated = self.current.fetch_update(Relaxed, Relaxed, |b| {
            now = f64::from_bits(b) + delta;
            now.is_finite().then_some(now.to_bits())
        });
        if updated.is_ok() {
            self.widen(now);
        }
    }

    /// The sample of this drain, when the gauge was set since the last.
    fn sample(&self, now_ms: i64) -> Option<GaugeAgg> {
        if !self.dirty.swap(false, Relaxed) {
            return None;
        }
        let v = f64::from_bits(self.current.load(Relaxed));
        // A value set while we read lands in the next window's extremes.
        let lo = f64::from_bits(self.lo.swap(v.to_bits(), Relaxed));
        let hi = f64::from_bits(self.hi.swap(v.to_bits(), Relaxed));
        Some(GaugeAgg {
            min: lo.min(v),
            max: hi.max(v),
            ..GaugeAgg::single(v, now_ms)
        })
    }
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

    /// The facade's set: lock-free, sampled at each drain.
    #[inline]
    pub fn facade_set(&self, v: f64) {
        self.facade.set(v);
    }

    /// Adds `delta` to the facade's current value (increment/decrement).
    pub fn facade_add(&self, delta: f64) {
        self.facade.add(delta);
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
        let sample = self.cell.facade.sample((now * 1000.0) as i64);
        let agg = {
            let mut s = self.cell.lock();
            if let Some(f) = sample {
                s.current = f.last;
                s.has_value = true;
                match &mut s.window {
                    Some(g) => g.merge(&f),
                    None => s.window = Some(f),
                }
            }
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

/// Most buckets a distribution's window keeps in one dense run per sign
/// (8 bytes each); a value whose bucket falls outside the run goes to a
/// sparse sketch instead, so one wild value cannot cost megabytes.
const MAX_DENSE_SPAN: usize = 4096;

/// Sketch buckets of one sign, dense by key: recording is an index, not a
/// search through sorted buckets.
#[derive(Default)]
struct DenseBins {
    offset: i32,
    counts: Vec<f64>,
}

impl DenseBins {
    /// Adds `n` at `key`; `false` when the key is too far from the run.
    #[inline]
    fn add(&mut self, key: i32, n: f64) -> bool {
        if self.counts.is_empty() {
            self.offset = key;
            self.counts.push(n);
            return true;
        }
        let (lo, len) = (self.offset as i64, self.counts.len() as i64);
        let k = key as i64;
        if k >= lo && k < lo + len {
            self.counts[(k - lo) as usize] += n;
            return true;
        }
        let (new_lo, new_hi) = (lo.min(k), (lo + len - 1).max(k));
        if (new_hi - new_lo + 1) as usize > MAX_DENSE_SPAN {
            return false;
        }
        if k < lo {
            let grow = (lo - k) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0.0, grow));
            self.offset = key;
        } else {
            self.counts.resize((k - lo + 1) as usize, 0.0);
        }
        self.counts[(k - self.offset as i64) as usize] += n;
        true
    }

    fn bins(&self) -> Vec<(i32, f64)> {
        (self.offset..)
            .zip(&self.counts)
            .filter(|(_, &c)| c != 0.0)
            .map(|(k, &c)| (k, c))
            .collect()
    }
}

/// Where a value goes in the sketch, worked out before taking the lock.
#[derive(Clone, Copy)]
enum Bucket {
    Pos(i32),
    Neg(i32),
    Zero,
}

impl Bucket {
    #[inline]
    fn of(v: f64) -> Bucket {
        if v >= MIN_INDEXABLE {
            Bucket::Pos(key_of(v))
        } else if v <= -MIN_INDEXABLE {
            Bucket::Neg(key_of(-v))
        } else {
            Bucket::Zero
        }
    }
}

/// A distribution's window: the core's [`DistAgg`] fields with the sketch
/// kept dense until the drain turns it into the core's [`Sketch`].
struct DistWindow {
    count: f64,
    sum: f64,
    min: f64,
    max: f64,
    pos: DenseBins,
    neg: DenseBins,
    zero: f64,
    /// Values whose buckets fell outside the dense runs.
    spill: Sketch,
}

impl DistWindow {
    fn new(v: f64) -> DistWindow {
        DistWindow {
            count: 0.0,
            sum: 0.0,
            min: v,
            max: v,
            pos: DenseBins::default(),
            neg: DenseBins::default(),
            zero: 0.0,
            spill: Sketch::new(),
        }
    }

    #[inline]
    fn add(&mut self, v: f64, bucket: Bucket, n: f64) {
        self.count += n;
        self.sum += v * n;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        let kept = match bucket {
            Bucket::Pos(k) => self.pos.add(k, n),
            Bucket::Neg(k) => self.neg.add(k, n),
            Bucket::Zero => {
                self.zero += n;
                true
            }
        };
        if !kept {
            self.spill.add_weighted(v, n);
        }
    }

    fn into_agg(self) -> DistAgg {
        let mut sketch = Sketch::from_parts(self.pos.bins(), self.neg.bins(), self.zero);
        sketch.merge(&self.spill);
        DistAgg {
            count: self.count,
            sum: self.sum,
            min: self.min,
            max: self.max,
            sketch,
        }
    }
}

#[derive(Default)]
pub struct DistCell {
    window: Mutex<Option<DistWindow>>,
}

impl DistCell {
    #[inline]
    pub fn record(&self, v: f64) {
        let bucket = Bucket::of(v);
        let mut w = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        w.get_or_insert_with(|| DistWindow::new(v))
            .add(v, bucket, 1.0);
    }

    pub fn record_many(&self, v: f64, n: usize) {
        if n == 0 {
            return;
        }
        let bucket = Bucket::of(v);
        let mut w = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        w.get_or_insert_with(|| DistWindow::new(v))
            .add(v, bucket, n as f64);
    }
}

impl Series<DistCell> {
    pub fn drain(&self, window_start: f64) -> Option<RawPoint> {
        let d = self
            .cell
            .window
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?
            .into_agg();
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
        let p = g.drain(now()).unwrap();
        let s = p.summary.clone().unwrap();
        assert_eq!(
            (s.last, s.min, s.max, s.sum, s.count),
            (Some(4.0), Some(1.0), Some(9.0), Some(19.0), Some(4.0))
        );
        let v = validate_point(p, now(), DEFAULT_LATE_SECS).unwrap();
        assert!(matches!(v.value, PointValue::GaugeSummary(ref a) if a.last == 4.0));
        assert!(g.drain(now()).is_none(), "helper gauges do not repeat");
    }

    #[test]
    fn facade_gauge_keeps_exact_extremes_and_samples_the_mean() {
        let g: Series<GaugeCell> = series("g");
        for v in [5.0, 1.0, 9.0, 4.0] {
            g.cell.facade_set(v);
        }
        g.cell.facade_add(2.0);
        g.cell.facade_add(-0.5);
        let t = now();
        let s = g.drain(t).unwrap().summary.unwrap();
        assert_eq!(
            (s.last, s.min, s.max, s.sum, s.count),
            (Some(5.5), Some(1.0), Some(9.0), Some(5.5), Some(1.0))
        );
        // The next window starts at the current value.
        g.cell.facade_add(1.0);
        g.cell.set(2.0); // a helper's set of the same series merges in
        let s = g.drain(t + 1.0).unwrap().summary.unwrap();
        assert_eq!((s.min, s.max, s.count), (Some(2.0), Some(6.5), Some(2.0)));
        assert_eq!(
            s.last,
            Some(6.5),
            "the sample is taken at the drain, after the set"
        );
        assert!(
            g.drain(t + 2.0).is_none(),
            "not sticky: nothing new, nothing sent"
        );
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
        // The same through the facade's lock-free set.
        let f: Series<GaugeCell> = series("f");
        f.cell.make_sticky();
        f.cell.facade_set(7.0);
        assert!(f.drain(t + 1.0).is_some());
        assert!(f.drain(t + 11.0).is_none());
        let p = f.drain(t + 61.0).unwrap();
        assert_eq!(p.summary.unwrap().last, Some(7.0));
        assert!(f.drain(t + 71.0).is_none());
    }

    /// The dense window gives exactly the core sketch's buckets, also for
    /// values far apart (spilled to the sparse sketch), negatives and zeros.
    #[test]
    fn dense_buckets_equal_the_core_sketch() {
        let d: Series<DistCell> = series("d");
        let mut reference = Sketch::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = (x >> 11) as f64 / (1u64 << 53) as f64;
            let v = match i % 10 {
                0 => 0.0,
                1 => -10f64.powf(u * 6.0 - 3.0),
                2 if i % 1000 == 2 => 10f64.powf(u * 600.0 - 300.0),
                _ => 10f64.powf(u * 10.0 - 5.0),
            };
            if i % 7 == 0 {
                d.cell.record_many(v, 3);
                reference.add_weighted(v, 3.0);
            } else {
                d.cell.record(v);
                reference.add(v);
            }
        }
        let got = d.cell.window.lock().unwrap().take().unwrap().into_agg();
        assert_eq!(got.sketch, reference);
        assert!(!got.sketch.pos_bins().is_empty() && !got.sketch.neg_bins().is_empty());
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
