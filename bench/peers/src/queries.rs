//! The four queries, written for each system, and their timing: repeated
//! runs alternating between the systems, so noise on the shared machine
//! falls on all of them alike.

use crate::systems::{explain, Running, Which};
use anyhow::{Context, Result};
use minutely_bench::process::ADMIN_KEY;
use minutely_bench::workload::DIST_METRIC;
use serde_json::Value;
use std::time::{Duration, Instant};

/// The time frame of the workload: its day and the 30 days before its end.
#[derive(Clone, Copy)]
pub struct Frame {
    pub day_start: i64,
    pub day_end: i64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Query {
    OneSeriesDay,
    OneSeriesMonth,
    GroupedSum,
    P95,
}

pub const ALL: [Query; 4] = [
    Query::OneSeriesDay,
    Query::OneSeriesMonth,
    Query::GroupedSum,
    Query::P95,
];

const ONE_SERIES: &str = r#"bench_gauge_0{host="host-0000",region="eu-west"}"#;
const MONTH: i64 = 30 * 86_400;

impl Query {
    pub fn label(self, per_metric: usize) -> String {
        match self {
            Query::OneSeriesDay => "one series, 24 h at 1 min".into(),
            Query::OneSeriesMonth => "one series, 30 days at 1 h (hourly mean)".into(),
            Query::GroupedSum => format!("sum of {per_metric} series by region, 24 h at 1 min"),
            Query::P95 => format!("p95 across {} distribution series, 24 h", per_metric),
        }
    }

    /// Repetitions (each system), capped by `budget` per system.
    pub fn reps(self) -> usize {
        match self {
            Query::OneSeriesDay | Query::OneSeriesMonth => 100,
            Query::GroupedSum | Query::P95 => 20,
        }
    }

    pub fn supported(self, which: Which) -> bool {
        // Prometheus' histogram_quantile reads `le` buckets only; the
        // distributions are fed to minutely and VictoriaMetrics.
        !(self == Query::P95 && which == Which::Prometheus)
    }

    /// The request: path and parameters.
    fn request(self, which: Which, f: Frame) -> (&'static str, Vec<(&'static str, String)>) {
        let (from, to) = (f.day_start, f.day_end);
        if which == Which::Minutely {
            let base = [("app", "default".to_string()), ("env", "bench".into())];
            let rest: Vec<(&str, String)> = match self {
                Query::OneSeriesDay => vec![
                    ("metric", "bench_gauge_0".into()),
                    ("field", "last".into()),
                    ("tag", "host:host-0000".into()),
                    ("tag", "region:eu-west".into()),
                    ("from", from.to_string()),
                    ("to", to.to_string()),
                    ("step", "60".into()),
                ],
                Query::OneSeriesMonth => vec![
                    ("metric", "bench_gauge_0".into()),
                    ("field", "mean".into()),
                    ("tag", "host:host-0000".into()),
                    ("tag", "region:eu-west".into()),
                    ("from", (to - MONTH).to_string()),
                    ("to", to.to_string()),
                    ("step", "3600".into()),
                ],
                Query::GroupedSum => vec![
                    ("metric", "bench_gauge_1".into()),
                    ("field", "last".into()),
                    ("group_by", "region".into()),
                    ("from", from.to_string()),
                    ("to", to.to_string()),
                    ("step", "60".into()),
                ],
                Query::P95 => vec![
                    ("metric", DIST_METRIC.into()),
                    ("field", "p95".into()),
                    ("from", from.to_string()),
                    ("to", to.to_string()),
                    ("step", (to - from).to_string()),
                ],
            };
            return ("/api/v1/query", base.into_iter().chain(rest).collect());
        }
        // PromQL (MetricsQL is a superset): windows end at each step, so the
        // first step is one step after `from`.
        let range = |q: String, start: i64, step: i64| {
            (
                "/api/v1/query_range",
                vec![
                    ("query", q),
                    ("start", start.to_string()),
                    ("end", to.to_string()),
                    ("step", step.to_string()),
                ],
            )
        };
        match self {
            Query::OneSeriesDay => range(ONE_SERIES.into(), from + 60, 60),
            Query::OneSeriesMonth => {
                range(format!("avg_over_time({ONE_SERIES}[1h])"), to - MONTH + 3600, 3600)
            }
            Query::GroupedSum => range("sum by (region) (bench_gauge_1)".into(), from + 60, 60),
            Query::P95 => (
                "/api/v1/query",
                vec![
                    (
                        "query",
                        format!("histogram_quantile(0.95, sum(sum_over_time({DIST_METRIC}_bucket[1d])) by (vmrange))"),
                    ),
                    ("time", to.to_string()),
                ],
            ),
        }
    }
}

/// What one answer held: how many series, points, and the first value.
#[derive(Clone, Debug, Default)]
pub struct Shape {
    pub series: usize,
    pub points: usize,
    pub first: Option<f64>,
}

fn shape(which: Which, v: &Value) -> Shape {
    let num = |x: &Value| {
        x.as_f64()
            .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
    };
    if which == Which::Minutely {
        let series = v["series"].as_array().cloned().unwrap_or_default();
        Shape {
            series: series.len(),
            points: series
                .iter()
                .map(|s| {
                    s["points"]
                        .as_array()
                        .map_or(0, |p| p.iter().filter(|p| !p[1].is_null()).count())
                })
                .sum(),
            first: series.first().and_then(|s| num(&s["points"][0][1])),
        }
    } else {
        let result = v["data"]["result"].as_array().cloned().unwrap_or_default();
        Shape {
            series: result.len(),
            points: result
                .iter()
                .map(|r| r["values"].as_array().map_or(1, Vec::len))
                .sum(),
            first: result
                .first()
                .and_then(|r| num(&r["value"][1]).or_else(|| num(&r["values"][0][1]))),
        }
    }
}

fn run_once(agent: &ureq::Agent, sys: &Running, q: Query, f: Frame) -> Result<(Duration, Shape)> {
    let (path, params) = q.request(sys.which, f);
    let mut req = agent
        .get(&format!("{}{path}", sys.url))
        .set("Authorization", &format!("Bearer {ADMIN_KEY}"));
    for (k, v) in &params {
        req = req.query(k, v);
    }
    let t = Instant::now();
    let body: Value = req.call().map_err(explain)?.into_json()?;
    let took = t.elapsed();
    Ok((took, shape(sys.which, &body)))
}

pub struct Timing {
    pub median_ms: f64,
    pub p99_ms: f64,
    pub runs: usize,
    pub shape: Shape,
}

/// Times `q` on every system that supports it: 2 warm-up runs each, then
/// rounds of one run per system (the order rotating each round) until
/// `q.reps()` rounds or `budget` of wall time.
pub fn time_all(
    systems: &[Running],
    q: Query,
    f: Frame,
    budget: Duration,
) -> Result<Vec<Option<Timing>>> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(120))
        .build();
    let active: Vec<usize> = (0..systems.len())
        .filter(|&i| q.supported(systems[i].which))
        .collect();
    let mut shapes = vec![Shape::default(); systems.len()];
    for &i in &active {
        for _ in 0..2 {
            shapes[i] = run_once(&agent, &systems[i], q, f)
                .with_context(|| format!("{} on {}", q.label(0), systems[i].which.name()))?
                .1;
        }
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); systems.len()];
    let started = Instant::now();
    for round in 0..q.reps() {
        for k in 0..active.len() {
            let i = active[(round + k) % active.len()];
            let (took, _) = run_once(&agent, &systems[i], q, f)?;
            times[i].push(took.as_secs_f64() * 1e3);
        }
        if started.elapsed() > budget * active.len() as u32 {
            break;
        }
    }
    Ok((0..systems.len())
        .map(|i| {
            let mut t = std::mem::take(&mut times[i]);
            if t.is_empty() {
                return None;
            }
            t.sort_by(f64::total_cmp);
            Some(Timing {
                median_ms: t[t.len() / 2],
                p99_ms: t[(t.len() * 99 / 100).min(t.len() - 1)],
                runs: t.len(),
                shape: shapes[i].clone(),
            })
        })
        .collect())
}
