//! OTLP metrics to minutely points.
//!
//! | OTLP | minutely |
//! |---|---|
//! | Sum, monotonic, delta | counter: the value |
//! | Sum, monotonic, cumulative | counter: the change since the stream's previous point |
//! | Sum, not monotonic, cumulative | gauge: the value |
//! | Sum, not monotonic, delta | counter: the change (it may be negative; AppSignal's `increment_counter` sends these) |
//! | Gauge | gauge |
//! | Histogram, ExponentialHistogram | distribution (see [`super::histogram`]); cumulative ones are differenced first |
//! | Summary | refused |
//!
//! Point attributes become tags; the resource attribute `service.name`
//! becomes the tag `service`. Attribute values that are not strings are
//! written out (`true`, `42`, `1.5`, JSON for arrays and maps).
//!
//! A cumulative stream is keyed by app, env, resource attributes, scope,
//! metric and point attributes. Its first point counts whole when the
//! stream started (its `start_time_unix_nano`) after this server did (less
//! a minute of grace); otherwise it only sets the baseline, since what it
//! counted before is not known to be new. A point whose value went down,
//! or whose start time moved forward, starts the stream again: it counts
//! whole. State lives in memory: a restart makes the next point of each
//! old stream a baseline.

use super::histogram::{self, Budget, Exponential, Refusal};
use super::proto::*;
use minutely_core::agg::DistAgg;
use minutely_core::validate::{validate_name, validate_tags, MAX_FUTURE_SECS};
use minutely_core::{Kind, Point, PointValue, Tags};
use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

/// Streams remembered; beyond it, streams unseen for the longest go first.
pub const MAX_STREAMS: usize = 500_000;
/// A stream not seen for this long is forgotten.
pub const STREAM_TTL_SECS: f64 = 6.0 * 3600.0;
/// A new cumulative stream that started this long before the server still
/// counts whole.
const START_GRACE_SECS: f64 = 60.0;

/// The resource attribute AppSignal's collector mode sends its push key in.
pub const KEY_ATTRIBUTE: &str = "appsignal.config.push_api_key";
/// Resource attributes naming the environment, by preference.
pub const ENV_ATTRIBUTES: [&str; 3] = [
    "deployment.environment.name",
    "deployment.environment",
    "appsignal.config.environment",
];

/// What a stream remembers of its previous point.
#[derive(Debug, Clone, PartialEq)]
enum Prev {
    Number(f64),
    Hist {
        count: u64,
        sum: f64,
        counts: Vec<u64>,
        bounds: Vec<f64>,
    },
    Exp {
        count: u64,
        sum: f64,
        scale: i32,
        zero: u64,
        pos: (i32, Vec<u64>),
        neg: (i32, Vec<u64>),
    },
}

#[derive(Debug, Clone)]
struct Stream {
    start: u64,
    time: u64,
    prev: Prev,
    seen: f64,
}

/// Cumulative-stream state shared by all OTLP requests.
pub struct Streams {
    started: f64,
    map: Mutex<HashMap<u64, Stream>>,
}

/// Undo log: the state of each touched stream before this request, so a
/// request whose points could not be stored leaves no trace (the sender
/// will retry it).
pub struct Undo(Vec<(u64, Option<Stream>)>);

impl Streams {
    pub fn new(started: f64) -> Self {
        Streams {
            started,
            map: Mutex::new(HashMap::new()),
        }
    }

    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn undo(&self, undo: Undo) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        for (k, old) in undo.0.into_iter().rev() {
            match old {
                Some(s) => map.insert(k, s),
                None => map.remove(&k),
            };
        }
    }

    fn sweep(map: &mut HashMap<u64, Stream>, now: f64) {
        map.retain(|_, s| now - s.seen < STREAM_TTL_SECS);
        if map.len() >= MAX_STREAMS {
            let mut seen: Vec<f64> = map.values().map(|s| s.seen).collect();
            seen.sort_by(f64::total_cmp);
            let cut = seen[seen.len() / 2];
            map.retain(|_, s| s.seen > cut);
        }
    }
}

/// Where one resource's points go: (app, env), or why they cannot.
pub type Route = Result<(String, String), Refusal>;

/// The points of a request, per (app, env), and what was refused.
#[derive(Debug, Default)]
pub struct Converted {
    pub points: BTreeMap<(String, String), Vec<Point>>,
    /// (reason, message, data points).
    pub rejected: Vec<(&'static str, String, u64)>,
    /// Points that only set a cumulative baseline or carried no value.
    pub skipped: Vec<(&'static str, u64)>,
}

impl Converted {
    pub fn rejected_points(&self) -> u64 {
        self.rejected.iter().map(|r| r.2).sum()
    }
}

/// An attribute value as tag text.
pub fn any_text(v: &AnyValue) -> String {
    match &v.value {
        None => String::new(),
        Some(Any::String(s)) => s.clone(),
        Some(Any::Bool(b)) => b.to_string(),
        Some(Any::Int(i)) => i.to_string(),
        Some(Any::Double(d)) => d.to_string(),
        Some(Any::Bytes(b)) => b.iter().map(|x| format!("{x:02x}")).collect(),
        Some(Any::Array(a)) => {
            let items: Vec<String> = a
                .values
                .iter()
                .map(|x| serde_json::Value::String(any_text(x)).to_string())
                .collect();
            format!("[{}]", items.join(","))
        }
        Some(Any::KvList(l)) => {
            let items: Vec<String> = l
                .values
                .iter()
                .map(|kv| {
                    format!(
                        "{}:{}",
                        serde_json::Value::String(kv.key.clone()),
                        serde_json::Value::String(
                            kv.value.as_ref().map(any_text).unwrap_or_default()
                        )
                    )
                })
                .collect();
            format!("{{{}}}", items.join(","))
        }
    }
}

/// A resource attribute as text, if present.
pub fn attribute(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .map(any_text)
        .filter(|s| !s.is_empty())
}

struct Ctx<'a> {
    now: f64,
    late_secs: f64,
    stream_base: u64,
    service: Option<&'a str>,
    out: &'a mut Converted,
    route: &'a (String, String),
    budget: &'a mut Budget,
    map: &'a mut HashMap<u64, Stream>,
    undo: &'a mut Vec<(u64, Option<Stream>)>,
    started: f64,
}

impl Ctx<'_> {
    fn reject(&mut self, reason: &'static str, msg: String, n: u64) {
        match self.out.rejected.iter_mut().find(|r| r.0 == reason) {
            Some(r) => r.2 += n,
            None => self.out.rejected.push((reason, msg, n)),
        }
    }

    fn skip(&mut self, reason: &'static str) {
        match self.out.skipped.iter_mut().find(|r| r.0 == reason) {
            Some(r) => r.1 += 1,
            None => self.out.skipped.push((reason, 1)),
        }
    }

    fn tags(&self, attrs: &[KeyValue]) -> Result<Tags, Refusal> {
        let mut map = BTreeMap::new();
        if let Some(s) = self.service {
            map.insert("service".to_string(), s.to_string());
        }
        for kv in attrs {
            map.insert(
                kv.key.clone(),
                kv.value.as_ref().map(any_text).unwrap_or_default(),
            );
        }
        validate_tags(&map).map_err(|e| ("bad_tags", e.to_string()))?;
        Ok(Tags::from(map))
    }

    fn ts(&self, nanos: u64) -> Result<f64, Refusal> {
        let ts = if nanos == 0 {
            self.now
        } else {
            nanos as f64 / 1e9
        };
        if ts > self.now + MAX_FUTURE_SECS {
            return Err((
                "future",
                format!(
                    "timestamp {ts} is more than 5 minutes in the future (server time {})",
                    self.now
                ),
            ));
        }
        if ts < self.now - self.late_secs {
            return Err((
                "too_old",
                format!(
                    "timestamp {ts} is older than the late-point window of {} s",
                    self.late_secs
                ),
            ));
        }
        Ok(ts)
    }

    fn stream_key(&self, metric: &str, tags: &Tags) -> u64 {
        let mut h = DefaultHasher::new();
        (self.stream_base, metric, tags).hash(&mut h);
        h.finish()
    }

    /// Swaps in the new state of a stream and returns the old one (if it is
    /// the same stream and still usable as a baseline).
    fn advance(&mut self, key: u64, start: u64, time: u64, prev: Prev) -> Result<Option<Prev>, ()> {
        let old = self.map.get(&key).cloned();
        if let Some(o) = &old {
            // A repeated or older point (a retry after a timeout): nothing new.
            if time <= o.time && start <= o.start {
                return Err(());
            }
        }
        self.undo.push((key, old.clone()));
        self.map.insert(
            key,
            Stream {
                start,
                time,
                prev,
                seen: self.now,
            },
        );
        Ok(match old {
            Some(o) if start <= o.start || start == 0 => Some(o.prev),
            // A later start: the stream began again.
            Some(_) => None,
            None => {
                let fresh = start != 0 && start as f64 / 1e9 >= self.started - START_GRACE_SECS;
                if fresh {
                    None
                } else {
                    return Ok(Some(Prev::Number(f64::NAN)));
                }
            }
        })
    }

    fn push(&mut self, kind: Kind, name: &str, tags: Tags, ts: f64, value: PointValue) {
        self.out
            .points
            .entry(self.route.clone())
            .or_default()
            .push(Point {
                kind,
                name: name.into(),
                tags,
                ts,
                value,
            });
    }
}

/// Is this previous state the "baseline only" marker?
fn is_baseline(p: &Option<Prev>) -> bool {
    matches!(p, Some(Prev::Number(x)) if x.is_nan())
}

/// Converts a request. `routes[i]` says where `resource_metrics[i]` goes.
pub fn convert(
    req: &ExportMetricsServiceRequest,
    routes: &[Route],
    streams: &Streams,
    now: f64,
    late_secs: f64,
) -> (Converted, Undo) {
    let mut out = Converted::default();
    let mut undo = Vec::new();
    let mut budget = Budget(histogram::REQUEST_BUDGET);
    let mut map = streams.map.lock().unwrap_or_else(|p| p.into_inner());
    if map.len() >= MAX_STREAMS {
        Streams::sweep(&mut map, now);
    }
    for (rm, route) in req.resource_metrics.iter().zip(routes) {
        let n_points: u64 = rm
            .scope_metrics
            .iter()
            .flat_map(|s| &s.metrics)
            .map(point_count)
            .sum();
        let route = match route {
            Ok(r) => r,
            Err((reason, msg)) => {
                out.rejected.push((reason, msg.clone(), n_points));
                continue;
            }
        };
        let attrs = rm
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or_default();
        let service = attribute(attrs, "service.name");
        let mut h = DefaultHasher::new();
        route.hash(&mut h);
        for kv in attrs.iter().filter(|kv| kv.key != KEY_ATTRIBUTE) {
            (&kv.key, kv.value.as_ref().map(any_text)).hash(&mut h);
        }
        let resource_hash = h.finish();
        for sm in &rm.scope_metrics {
            let mut h = DefaultHasher::new();
            resource_hash.hash(&mut h);
            if let Some(s) = &sm.scope {
                (&s.name, &s.version).hash(&mut h);
            }
            let mut ctx = Ctx {
                now,
                late_secs,
                stream_base: h.finish(),
                service: service.as_deref(),
                out: &mut out,
                route,
                budget: &mut budget,
                map: &mut map,
                undo: &mut undo,
                started: streams.started,
            };
            for m in &sm.metrics {
                metric(&mut ctx, m);
            }
        }
    }
    (out, Undo(undo))
}

/// Data points of a metric, of any type.
pub fn point_count(m: &Metric) -> u64 {
    (match &m.data {
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
        None => 0,
    }) as u64
}

fn metric(ctx: &mut Ctx, m: &Metric) {
    let n = point_count(m);
    if let Err(e) = validate_name(&m.name) {
        return ctx.reject("bad_name", e.to_string(), n);
    }
    let result = |ctx: &mut Ctx, r: Result<(), Refusal>| {
        if let Err((reason, msg)) = r {
            ctx.reject(reason, format!("{}: {msg}", m.name), 1);
        }
    };
    match &m.data {
        None => {}
        Some(Data::Summary(_)) => ctx.reject(
            "summary",
            format!("{}: Summary metrics are not supported (their quantiles cannot be merged); record a histogram instead", m.name),
            n,
        ),
        Some(Data::Gauge(g)) => {
            for p in &g.data_points {
                let r = number(ctx, &m.name, p, Mode::Gauge);
                result(ctx, r);
            }
        }
        Some(Data::Sum(s)) => {
            let mode = match (s.is_monotonic, s.aggregation_temporality) {
                (true, DELTA) => Mode::Counter,
                (true, CUMULATIVE) => Mode::CumulativeCounter,
                (false, DELTA) => Mode::Counter,
                (false, CUMULATIVE) => Mode::Gauge,
                _ => return ctx.reject("bad_temporality", format!("{}: a sum needs delta or cumulative temporality", m.name), n),
            };
            for p in &s.data_points {
                let r = number(ctx, &m.name, p, mode);
                result(ctx, r);
            }
        }
        Some(Data::Histogram(h)) => {
            let cumulative = match h.aggregation_temporality {
                DELTA => false,
                CUMULATIVE => true,
                _ => return ctx.reject("bad_temporality", format!("{}: a histogram needs delta or cumulative temporality", m.name), n),
            };
            for p in &h.data_points {
                let r = explicit(ctx, &m.name, p, cumulative);
                result(ctx, r);
            }
        }
        Some(Data::ExponentialHistogram(h)) => {
            let cumulative = match h.aggregation_temporality {
                DELTA => false,
                CUMULATIVE => true,
                _ => return ctx.reject("bad_temporality", format!("{}: a histogram needs delta or cumulative temporality", m.name), n),
            };
            for p in &h.data_points {
                let r = exponential(ctx, &m.name, p, cumulative);
                result(ctx, r);
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Mode {
    Gauge,
    Counter,
    CumulativeCounter,
}

fn number(ctx: &mut Ctx, name: &str, p: &NumberDataPoint, mode: Mode) -> Result<(), Refusal> {
    if p.flags & FLAG_NO_RECORDED_VALUE != 0 {
        ctx.skip("no_recorded_value");
        return Ok(());
    }
    let v = match p.value {
        Some(NumberValue::AsDouble(d)) => d,
        Some(NumberValue::AsInt(i)) => i as f64,
        None => return Err(("bad_value", "data point has no value".into())),
    };
    if !v.is_finite() {
        return Err((
            "bad_value",
            "value must be a finite number (NaN and infinities are rejected)".into(),
        ));
    }
    let tags = ctx.tags(&p.attributes)?;
    let ts = ctx.ts(p.time_unix_nano)?;
    match mode {
        Mode::Gauge => ctx.push(Kind::Gauge, name, tags, ts, PointValue::Single(v)),
        Mode::Counter => ctx.push(Kind::Counter, name, tags, ts, PointValue::Single(v)),
        Mode::CumulativeCounter => {
            let key = ctx.stream_key(name, &tags);
            let Ok(prev) = ctx.advance(
                key,
                p.start_time_unix_nano,
                p.time_unix_nano,
                Prev::Number(v),
            ) else {
                ctx.skip("repeated");
                return Ok(());
            };
            if is_baseline(&prev) {
                ctx.skip("baseline");
                return Ok(());
            }
            let delta = match prev {
                Some(Prev::Number(old)) if v >= old => v - old,
                _ => v, // new or reset
            };
            ctx.push(Kind::Counter, name, tags, ts, PointValue::Single(delta));
        }
    }
    Ok(())
}

fn dist(ctx: &mut Ctx, name: &str, tags: Tags, ts: f64, d: Option<DistAgg>) {
    if let Some(d) = d {
        ctx.push(
            Kind::Distribution,
            name,
            tags,
            ts,
            PointValue::DistSummary(Box::new(d)),
        );
    }
}

fn explicit(
    ctx: &mut Ctx,
    name: &str,
    p: &HistogramDataPoint,
    cumulative: bool,
) -> Result<(), Refusal> {
    if p.flags & FLAG_NO_RECORDED_VALUE != 0 {
        ctx.skip("no_recorded_value");
        return Ok(());
    }
    let tags = ctx.tags(&p.attributes)?;
    let ts = ctx.ts(p.time_unix_nano)?;
    if !cumulative {
        let d = histogram::explicit(
            p.count,
            p.sum,
            p.min,
            p.max,
            &p.bucket_counts,
            &p.explicit_bounds,
            ctx.budget,
        )?;
        dist(ctx, name, tags, ts, d);
        return Ok(());
    }
    // Check the point on its own before it becomes a stream's state.
    histogram::explicit(
        p.count,
        p.sum,
        None,
        None,
        &p.bucket_counts,
        &p.explicit_bounds,
        &mut Budget(0),
    )
    .or_else(|e| {
        if e.0 == "too_complex" {
            Ok(None)
        } else {
            Err(e)
        }
    })?;
    let key = ctx.stream_key(name, &tags);
    let now = Prev::Hist {
        count: p.count,
        sum: p.sum.unwrap_or(0.0),
        counts: p.bucket_counts.clone(),
        bounds: p.explicit_bounds.clone(),
    };
    let Ok(prev) = ctx.advance(key, p.start_time_unix_nano, p.time_unix_nano, now) else {
        ctx.skip("repeated");
        return Ok(());
    };
    if is_baseline(&prev) {
        ctx.skip("baseline");
        return Ok(());
    }
    let mut counts = p.bucket_counts.clone();
    let (mut count, mut sum) = (p.count, p.sum);
    if let Some(Prev::Hist {
        count: c0,
        sum: s0,
        counts: k0,
        bounds: b0,
    }) = prev
    {
        let same = b0 == p.explicit_bounds
            && k0.len() == counts.len()
            && c0 <= count
            && k0.iter().zip(&counts).all(|(a, b)| a <= b);
        if same {
            for (c, old) in counts.iter_mut().zip(&k0) {
                *c -= old;
            }
            count -= c0;
            sum = sum.map(|s| s - s0);
        }
    }
    // A cumulative point's min/max cover the whole stream: they bound this
    // interval's values but are not its extremes, so the buckets decide.
    let (min, max) = (p.min, p.max);
    let d = histogram::explicit(
        count,
        sum,
        None,
        None,
        &counts,
        &p.explicit_bounds,
        ctx.budget,
    )?
    .map(|mut d| {
        if let Some(m) = min {
            d.min = d.min.max(m).min(d.max);
        }
        if let Some(m) = max {
            d.max = d.max.min(m).max(d.min);
        }
        d
    });
    dist(ctx, name, tags, ts, d);
    Ok(())
}

/// Re-buckets exponential counts from `from` scale to the coarser `to`.
fn downscale(offset: i32, counts: &[u64], from: i32, to: i32) -> BTreeMap<i64, u64> {
    let shift = (from - to).clamp(0, 63);
    let mut out = BTreeMap::new();
    for (i, c) in counts.iter().enumerate() {
        *out.entry((offset as i64 + i as i64) >> shift).or_insert(0) += c;
    }
    out
}

fn dense(map: &BTreeMap<i64, u64>) -> (i32, Vec<u64>) {
    let Some((&first, _)) = map.iter().next() else {
        return (0, Vec::new());
    };
    let last = *map.keys().next_back().unwrap_or(&first);
    let mut v = vec![0; (last - first + 1).min(histogram::MAX_BUCKETS as i64 + 1) as usize];
    for (k, c) in map {
        if let Some(slot) = v.get_mut((k - first) as usize) {
            *slot = *c;
        }
    }
    (first as i32, v)
}

#[allow(clippy::too_many_arguments)]
fn parts<'a>(
    count: u64,
    sum: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    scale: i32,
    zero_count: u64,
    positive: (i32, &'a [u64]),
    negative: (i32, &'a [u64]),
) -> Exponential<'a> {
    Exponential {
        count,
        sum,
        min,
        max,
        scale,
        zero_count,
        positive,
        negative,
    }
}

fn exponential(
    ctx: &mut Ctx,
    name: &str,
    p: &ExponentialHistogramDataPoint,
    cumulative: bool,
) -> Result<(), Refusal> {
    if p.flags & FLAG_NO_RECORDED_VALUE != 0 {
        ctx.skip("no_recorded_value");
        return Ok(());
    }
    let tags = ctx.tags(&p.attributes)?;
    let ts = ctx.ts(p.time_unix_nano)?;
    let empty = Buckets::default();
    let pos = p.positive.as_ref().unwrap_or(&empty);
    let neg = p.negative.as_ref().unwrap_or(&empty);
    let whole = parts(
        p.count,
        p.sum,
        p.min,
        p.max,
        p.scale,
        p.zero_count,
        (pos.offset, &pos.bucket_counts),
        (neg.offset, &neg.bucket_counts),
    );
    if !cumulative {
        let d = histogram::exponential(whole, ctx.budget)?;
        dist(ctx, name, tags, ts, d);
        return Ok(());
    }
    histogram::exponential(whole, &mut Budget(u64::MAX))
        .map(|_| ())
        .or_else(|e| if e.0 == "too_complex" { Ok(()) } else { Err(e) })?;
    let key = ctx.stream_key(name, &tags);
    let state = Prev::Exp {
        count: p.count,
        sum: p.sum.unwrap_or(0.0),
        scale: p.scale,
        zero: p.zero_count,
        pos: (pos.offset, pos.bucket_counts.clone()),
        neg: (neg.offset, neg.bucket_counts.clone()),
    };
    let Ok(prev) = ctx.advance(key, p.start_time_unix_nano, p.time_unix_nano, state) else {
        ctx.skip("repeated");
        return Ok(());
    };
    if is_baseline(&prev) {
        ctx.skip("baseline");
        return Ok(());
    }
    // Difference at the coarser of the two scales.
    let (mut scale, mut count, mut sum, mut zero) = (p.scale, p.count, p.sum, p.zero_count);
    let mut pos_map = downscale(pos.offset, &pos.bucket_counts, p.scale, p.scale);
    let mut neg_map = downscale(neg.offset, &neg.bucket_counts, p.scale, p.scale);
    if let Some(Prev::Exp {
        count: c0,
        sum: s0,
        scale: sc0,
        zero: z0,
        pos: p0,
        neg: n0,
    }) = prev
    {
        let to = sc0.min(p.scale);
        let (pn, nn) = (
            downscale(pos.offset, &pos.bucket_counts, p.scale, to),
            downscale(neg.offset, &neg.bucket_counts, p.scale, to),
        );
        let (po, no) = (
            downscale(p0.0, &p0.1, sc0, to),
            downscale(n0.0, &n0.1, sc0, to),
        );
        let sub =
            |new: &BTreeMap<i64, u64>, old: &BTreeMap<i64, u64>| -> Option<BTreeMap<i64, u64>> {
                let mut out = new.clone();
                for (k, c) in old {
                    let slot = out.get_mut(k)?;
                    *slot = slot.checked_sub(*c)?;
                }
                Some(out)
            };
        if let (Some(pd), Some(nd), true, true) =
            (sub(&pn, &po), sub(&nn, &no), c0 <= count, z0 <= zero)
        {
            (scale, count, zero, pos_map, neg_map) = (to, count - c0, zero - z0, pd, nd);
            sum = sum.map(|s| s - s0);
        }
    }
    let (pos_d, neg_d) = (dense(&pos_map), dense(&neg_map));
    let d = histogram::exponential(
        parts(
            count,
            sum,
            None,
            None,
            scale,
            zero,
            (pos_d.0, &pos_d.1),
            (neg_d.0, &neg_d.1),
        ),
        ctx.budget,
    )?
    .map(|mut d| {
        if let Some(m) = p.min {
            d.min = d.min.max(m).min(d.max);
        }
        if let Some(m) = p.max {
            d.max = d.max.min(m).max(d.min);
        }
        d
    });
    dist(ctx, name, tags, ts, d);
    Ok(())
}

#[cfg(test)]
mod tests;
