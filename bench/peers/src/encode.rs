//! Request bodies for each system, built from the same samples before the
//! clock starts: VictoriaMetrics' JSON-lines import, Prometheus remote write
//! (protobuf + snappy) and minutely's distribution summaries.

use minutely_bench::workload::{
    dist_values, kind, metric_name, tags, Kind, Sample, DIST_METRIC, METRICS,
};
use minutely_core::Sketch;
use std::fmt::Write as _;

/// Prometheus and VictoriaMetrics keep counters as running totals: the
/// per-minute increments of the workload are added up per series.
pub struct CounterTotals(Vec<f64>);

impl CounterTotals {
    pub fn new(series: usize) -> CounterTotals {
        CounterTotals(vec![0.0; series])
    }
    fn value(&mut self, s: &Sample) -> f64 {
        match kind(s.series) {
            Kind::Gauge => s.value,
            Kind::Counter => {
                self.0[s.series] += s.value;
                self.0[s.series]
            }
        }
    }
}

/// `/api/v1/import` bodies: one JSON line per sample, `batch` samples per body.
pub fn vm_import_bodies(
    samples: &[Sample],
    batch: usize,
    totals: &mut CounterTotals,
) -> Vec<Vec<u8>> {
    samples
        .chunks(batch)
        .map(|chunk| {
            let mut s = String::with_capacity(chunk.len() * 120);
            for p in chunk {
                let (host, region) = tags(p.series / METRICS);
                let _ = writeln!(
                    s,
                    r#"{{"metric":{{"__name__":"{}","host":"{host}","region":"{region}"}},"values":[{}],"timestamps":[{}]}}"#,
                    metric_name(p.series),
                    totals.value(p),
                    p.ts * 1000
                );
            }
            s.into_bytes()
        })
        .collect()
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<PromSample>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PromSample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// Remote-write bodies: one time series entry per sample (labels sorted by
/// name, as the protocol requires), snappy block-compressed.
pub fn prom_write_bodies(
    samples: &[Sample],
    batch: usize,
    totals: &mut CounterTotals,
) -> Vec<Vec<u8>> {
    use prost::Message as _;
    samples
        .chunks(batch)
        .map(|chunk| {
            let req = WriteRequest {
                timeseries: chunk
                    .iter()
                    .map(|p| {
                        let (host, region) = tags(p.series / METRICS);
                        TimeSeries {
                            labels: vec![
                                label("__name__", metric_name(p.series)),
                                label("host", host),
                                label("region", region.to_string()),
                            ],
                            samples: vec![PromSample {
                                value: totals.value(p),
                                timestamp: p.ts * 1000,
                            }],
                        }
                    })
                    .collect(),
            };
            snap::raw::Encoder::new()
                .compress_vec(&req.encode_to_vec())
                .unwrap_or_default()
        })
        .collect()
}

fn label(name: &str, value: String) -> Label {
    Label {
        name: name.to_string(),
        value,
    }
}

/// The distribution workload: `series` series x `minutes` minutes from `start`.
pub struct Dists {
    pub series: usize,
    pub minutes: usize,
    pub start: i64,
}

impl Dists {
    fn each(&self, mut f: impl FnMut(usize, i64, &[f64])) {
        let mut vals = Vec::new();
        for m in 0..self.minutes {
            let minute = self.start + m as i64 * 60;
            for n in 0..self.series {
                vals.clear();
                dist_values(n, minute, &mut vals);
                f(n, minute + 17, &vals);
            }
        }
    }

    /// The exact q-quantile of all raw values (rank `q * (count - 1)`,
    /// rounded down, as minutely defines it).
    pub fn exact_quantile(&self, q: f64) -> f64 {
        let mut all = Vec::with_capacity(self.series * self.minutes * 5);
        self.each(|_, _, v| all.extend_from_slice(v));
        all.sort_by(f64::total_cmp);
        all[(q * (all.len() - 1) as f64).floor() as usize]
    }

    /// minutely push bodies: one pre-aggregated minute (count, sum, min,
    /// max, sketch) per series and minute, as minutely's clients send them.
    pub fn minutely_bodies(&self, batch: usize) -> (Vec<Vec<u8>>, usize) {
        let mut bodies = Vec::new();
        let mut points = 0;
        let mut s = String::new();
        let mut in_batch = 0;
        let flush = |s: &mut String, in_batch: &mut usize, bodies: &mut Vec<Vec<u8>>| {
            s.push_str("]}");
            bodies.push(std::mem::take(s).into_bytes());
            *in_batch = 0;
        };
        self.each(|n, ts, vals| {
            if in_batch == 0 {
                s.push_str(r#"{"env":"bench","points":["#);
            } else {
                s.push(',');
            }
            let mut sketch = Sketch::new();
            vals.iter().for_each(|&v| sketch.add(v));
            let (host, region) = tags(n);
            let _ = write!(
                s,
                r#"{{"kind":"distribution","name":"{DIST_METRIC}","ts":{ts},"tags":{{"host":"{host}","region":"{region}"}},"summary":{{"count":{},"sum":{},"min":{},"max":{},"sketch":{}}}}}"#,
                vals.len(),
                vals.iter().sum::<f64>(),
                vals.iter().copied().fold(f64::INFINITY, f64::min),
                vals.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                serde_json::to_string(&sketch.to_json()).unwrap_or_default()
            );
            points += 1;
            in_batch += 1;
            if in_batch == batch {
                flush(&mut s, &mut in_batch, &mut bodies);
            }
        });
        if in_batch > 0 {
            flush(&mut s, &mut in_batch, &mut bodies);
        }
        (bodies, points)
    }

    /// VictoriaMetrics histogram buckets (its `vmrange` scheme: 18 log
    /// buckets per decade): per series and minute, the count of each
    /// non-empty bucket as one sample of `<name>_bucket{vmrange=...}`.
    /// Counts are per minute, so a range sums them with `sum_over_time`.
    pub fn vm_bodies(&self, batch: usize) -> (Vec<Vec<u8>>, usize) {
        let mut bodies = Vec::new();
        let mut s = String::new();
        let mut lines = 0;
        let mut samples = 0;
        self.each(|n, ts, vals| {
            let (host, region) = tags(n);
            let mut buckets: Vec<(i32, u32)> = Vec::new();
            for &v in vals {
                let idx = vmrange_index(v);
                match buckets.iter_mut().find(|b| b.0 == idx) {
                    Some(b) => b.1 += 1,
                    None => buckets.push((idx, 1)),
                }
            }
            for (idx, count) in buckets {
                let (lo, hi) = vmrange_bounds(idx);
                let _ = writeln!(
                    s,
                    r#"{{"metric":{{"__name__":"{DIST_METRIC}_bucket","host":"{host}","region":"{region}","vmrange":"{lo:.3e}...{hi:.3e}"}},"values":[{count}],"timestamps":[{}]}}"#,
                    ts * 1000
                );
                lines += 1;
                samples += 1;
                if lines == batch {
                    bodies.push(std::mem::take(&mut s).into_bytes());
                    lines = 0;
                }
            }
        });
        if lines > 0 {
            bodies.push(s.into_bytes());
        }
        (bodies, samples)
    }
}

const VM_E10_MIN: f64 = -9.0;
const VM_BUCKETS_PER_DECADE: f64 = 18.0;

/// The bucket of a positive value in VictoriaMetrics' histogram (upper bounds inclusive).
fn vmrange_index(v: f64) -> i32 {
    let x = (v.log10() - VM_E10_MIN) * VM_BUCKETS_PER_DECADE;
    let idx = x.floor();
    if idx == x && idx > 0.0 {
        idx as i32 - 1
    } else {
        idx as i32
    }
}

fn vmrange_bounds(idx: i32) -> (f64, f64) {
    let b = |i: i32| 10f64.powf(VM_E10_MIN + i as f64 / VM_BUCKETS_PER_DECADE);
    (b(idx), b(idx + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmrange_bucket_holds_its_value() {
        for v in [0.013, 1.0, 20.5, 99.9, 1234.5] {
            let (lo, hi) = vmrange_bounds(vmrange_index(v));
            assert!(lo < v && v <= hi * (1.0 + 1e-12), "{v} not in {lo}..{hi}");
        }
    }

    #[test]
    fn remote_write_body_round_trips() {
        use prost::Message as _;
        let samples = [
            Sample {
                series: 5,
                ts: 60,
                value: 3.0,
            },
            Sample {
                series: 5,
                ts: 120,
                value: 4.0,
            },
        ];
        let bodies = prom_write_bodies(&samples, 10, &mut CounterTotals::new(10));
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&bodies[0])
            .unwrap();
        let req = WriteRequest::decode(raw.as_slice()).unwrap();
        assert_eq!(req.timeseries.len(), 2);
        assert_eq!(req.timeseries[0].labels[0].value, "bench_counter_5");
        // Counters arrive as running totals.
        assert_eq!(req.timeseries[1].samples[0].value, 7.0);
        assert_eq!(req.timeseries[1].samples[0].timestamp, 120_000);
    }
}
