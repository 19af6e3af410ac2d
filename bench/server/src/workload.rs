//! The deterministic benchmark workload (fixed seed): S series of 10
//! metrics, the first half gauges (a 2-decimal random walk), the second half
//! counters (0-9 per minute), tagged with `host` and `region`; and
//! distribution series (request latencies in ms) for the sketch benchmarks.
//! The same samples are encoded for each system under test.

use std::fmt::Write as _;

pub const METRICS: usize = 10;
pub const REGIONS: [&str; 4] = ["eu-west", "eu-north", "us-east", "ap-south"];
/// Raw values per distribution series and minute.
pub const DIST_VALUES_PER_MINUTE: usize = 5;
pub const DIST_METRIC: &str = "bench_latency_ms";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
}

/// Series `i`: metric `i % METRICS`, tags from `i / METRICS`.
pub fn kind(i: usize) -> Kind {
    kind_in(i, METRICS)
}

/// Series `i` of a workload spread over `metrics` metrics (the first half
/// gauges, the second half counters).
pub fn kind_in(i: usize, metrics: usize) -> Kind {
    if i % metrics < metrics / 2 {
        Kind::Gauge
    } else {
        Kind::Counter
    }
}

pub fn metric_name(i: usize) -> String {
    metric_name_in(i, METRICS)
}

pub fn metric_name_in(i: usize, metrics: usize) -> String {
    let metric = i % metrics;
    match kind_in(i, metrics) {
        Kind::Gauge => format!("bench_gauge_{metric}"),
        Kind::Counter => format!("bench_counter_{metric}"),
    }
}

/// `(host, region)` of the n-th series of a metric.
pub fn tags(n: usize) -> (String, &'static str) {
    (
        format!("host-{:04}", n / REGIONS.len()),
        REGIONS[n % REGIONS.len()],
    )
}

/// One gauge or counter sample. For a counter, `value` is the minute's
/// increment; systems that keep cumulative counters add them up.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub series: usize,
    pub ts: i64,
    pub value: f64,
}

/// xorshift64: cheap, deterministic, good enough for a workload.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }
}

pub const SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// Generates the gauge/counter samples of `series` series, minute by minute
/// (all series of a minute before the next minute), timestamps at second 17
/// of each minute from `start`.
pub struct Generator {
    series: usize,
    metrics: usize,
    walk: Vec<f64>,
    rng: Rng,
}

impl Generator {
    pub fn new(series: usize) -> Generator {
        Generator::with_metrics(series, METRICS)
    }

    /// The series spread over `metrics` metrics instead of [`METRICS`].
    pub fn with_metrics(series: usize, metrics: usize) -> Generator {
        Generator {
            series,
            metrics,
            walk: vec![100.0; series],
            rng: Rng::new(SEED),
        }
    }

    /// The samples of minute `ts` (a timestamp), for series `0..n` (n <= series).
    pub fn minute(&mut self, ts: i64, n: usize, out: &mut Vec<Sample>) {
        for i in 0..n.min(self.series) {
            let r = self.rng.next_u64();
            let value = match kind_in(i, self.metrics) {
                Kind::Gauge => {
                    let step = (r % 2001) as f64 / 100.0 - 10.0;
                    self.walk[i] = ((self.walk[i] + step).abs() * 100.0).round() / 100.0;
                    self.walk[i]
                }
                Kind::Counter => (r % 10) as f64,
            };
            out.push(Sample {
                series: i,
                ts,
                value,
            });
        }
    }
}

/// All samples of `minutes` minutes from `start` (a whole minute), in order.
pub fn samples(series: usize, minutes: usize, start: i64) -> Vec<Sample> {
    let mut g = Generator::new(series);
    let mut out = Vec::with_capacity(series * minutes);
    for m in 0..minutes {
        g.minute(start + m as i64 * 60 + 17, series, &mut out);
    }
    out
}

/// The raw latency values (ms) of distribution series `n` in one minute:
/// log-normal around a per-host median, deterministic in (n, minute).
pub fn dist_values(n: usize, minute: i64, out: &mut Vec<f64>) {
    let mut rng =
        Rng::new(SEED ^ ((n as u64) << 32) ^ (minute as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
    rng.next_u64();
    let median = 20.0 + (n % 7) as f64 * 5.0;
    for _ in 0..DIST_VALUES_PER_MINUTE {
        // Box-Muller: one standard normal per pair of uniforms.
        let z = (-2.0 * rng.unit().ln()).sqrt() * (std::f64::consts::TAU * rng.unit()).cos();
        out.push((median * (0.6 * z).exp() * 100.0).round() / 100.0);
    }
}

/// Writes a JSON string of ASCII letters, digits, '-', '_' (all the workload uses).
fn push_tags_json(out: &mut String, n: usize) {
    let (host, region) = tags(n);
    let _ = write!(out, r#""tags":{{"host":"{host}","region":"{region}"}}"#);
}

/// minutely's push bodies: `{"env": "bench", "points": [...]}` of `batch` samples each.
pub fn minutely_bodies(samples: &[Sample], batch: usize) -> Vec<Vec<u8>> {
    minutely_bodies_in(samples, batch, METRICS)
}

/// [`minutely_bodies`] of a workload spread over `metrics` metrics.
pub fn minutely_bodies_in(samples: &[Sample], batch: usize, metrics: usize) -> Vec<Vec<u8>> {
    samples
        .chunks(batch)
        .map(|chunk| {
            let mut s = String::with_capacity(chunk.len() * 110 + 32);
            s.push_str(r#"{"env":"bench","points":["#);
            for (k, p) in chunk.iter().enumerate() {
                if k > 0 {
                    s.push(',');
                }
                let kind = match kind_in(p.series, metrics) {
                    Kind::Gauge => "gauge",
                    Kind::Counter => "counter",
                };
                let _ = write!(
                    s,
                    r#"{{"kind":"{kind}","name":"{}","value":{},"ts":{},"#,
                    metric_name_in(p.series, metrics),
                    p.value,
                    p.ts
                );
                push_tags_json(&mut s, p.series / metrics);
                s.push('}');
            }
            s.push_str("]}");
            s.into_bytes()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workload_is_the_same_every_time() {
        let a = samples(20, 3, 600);
        let b = samples(20, 3, 600);
        assert_eq!(a.len(), 60);
        assert!(a
            .iter()
            .zip(&b)
            .all(|(x, y)| x.series == y.series && x.ts == y.ts && x.value == y.value));
        let (mut v1, mut v2) = (Vec::new(), Vec::new());
        dist_values(7, 600, &mut v1);
        dist_values(7, 600, &mut v2);
        assert_eq!(v1, v2);
        assert_eq!(v1.len(), DIST_VALUES_PER_MINUTE);
    }

    #[test]
    fn samples_go_minute_by_minute_with_valid_values() {
        let s = samples(20, 3, 600);
        assert!(s.windows(2).all(|w| w[0].ts <= w[1].ts));
        assert_eq!(s[0].ts, 617);
        for p in &s {
            match kind(p.series) {
                Kind::Gauge => {
                    assert!(
                        p.value >= 0.0
                            && ((p.value * 100.0).round() - p.value * 100.0).abs() < 1e-6
                    )
                }
                Kind::Counter => assert!((0.0..10.0).contains(&p.value)),
            }
        }
        let mut v = Vec::new();
        dist_values(3, 600, &mut v);
        assert!(v.iter().all(|x| x.is_finite() && *x > 0.0));
    }

    #[test]
    fn push_bodies_are_json_with_every_point() {
        let s = samples(20, 3, 600);
        let bodies = minutely_bodies(&s, 25);
        assert_eq!(bodies.len(), 3);
        let n: usize = bodies
            .iter()
            .map(|b| {
                let v: serde_json::Value = serde_json::from_slice(b).unwrap();
                assert_eq!(v["env"], "bench");
                v["points"].as_array().unwrap().len()
            })
            .sum();
        assert_eq!(n, 60);
    }
}
