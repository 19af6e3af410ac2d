//! StatsD lines to minute aggregates: one [`Agg`] per (app, env, series,
//! minute), handed to the store as summary points at every flush.
//!
//! - `c`: the sum of `value / rate`.
//! - `g`: last, min, max, sum and count; `+N`/`-N` move the series' last
//!   value (kept across minutes and flushes; an unknown gauge starts at 0).
//! - `ms`, `h`, `d`: a distribution; each value weighs `1 / rate` in count,
//!   sum and sketch.
//! - `s`: the series keeps, per minute, the set of members seen; each new
//!   member adds 1 to a counter, so the minute's `sum` is the number of
//!   distinct members in that minute (hours and days add up the minutes).
//!
//! Points are stamped with the server's clock unless the line has `|T`.

use super::{Line, ParseError, Type, Value};
use minutely_core::agg::{Agg, DistAgg, GaugeAgg};
use minutely_core::time::{millis_of, minute_of};
use minutely_core::validate::{MAX_FUTURE_SECS, MAX_TAGS};
use minutely_core::{Kind, Point, PointValue, Tags};
use minutely_store::PushRequest;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};

/// Series one flush may hold (a flush is a second). Far above a busy
/// service's metric count; bounds memory against a sender that makes up
/// a new name per line.
pub const MAX_OPEN_SERIES: usize = 200_000;
/// Distinct members a set keeps per minute; more are counted as dropped.
pub const MAX_SET_MEMBERS: usize = 100_000;
/// Gauges whose last value is remembered for `+N`/`-N`.
pub const MAX_GAUGES: usize = 200_000;

/// FxHash (as in rustc): the series map is looked up once per line, and
/// SipHash's resistance to chosen keys is not needed for a map bounded by
/// [`MAX_OPEN_SERIES`] and emptied every second.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ b as u64).wrapping_mul(K);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type Fx = std::hash::BuildHasherDefault<FxHasher>;

/// Where StatsD points go.
#[derive(Debug, Clone)]
pub struct Routing {
    pub app: String,
    pub env: String,
    /// Tags `app:` and `env:` choose the app and env (and are not kept as tags).
    pub tags_choose: bool,
}

struct Slot {
    app: String,
    env: String,
    name: String,
    tags: Tags,
    ts: f64,
    agg: Agg,
}

/// Per-minute aggregation state of the StatsD listeners.
pub struct Aggregator {
    routing: Routing,
    late_secs: f64,
    /// minute -> series key -> slot; taken whole at each flush.
    open: HashMap<i64, HashMap<String, Slot, Fx>>,
    open_series: usize,
    /// series key -> last gauge value.
    gauges: HashMap<String, f64>,
    /// (minute, series key) -> hashes of the members seen.
    sets: HashMap<(i64, String), HashSet<u64>>,
    hasher: std::collections::hash_map::RandomState,
    key: String,
}

/// What happened to one line.
pub type Outcome = Result<usize, &'static str>;

impl Aggregator {
    pub fn new(routing: Routing, late_secs: f64) -> Self {
        Aggregator {
            routing,
            late_secs,
            open: HashMap::new(),
            open_series: 0,
            gauges: HashMap::new(),
            sets: HashMap::new(),
            hasher: Default::default(),
            key: String::new(),
        }
    }

    /// Adds one parsed line at server time `now`: the number of values
    /// taken, or the reason the line was dropped.
    pub fn add(&mut self, line: &Line, now: f64) -> Outcome {
        let ts = line.ts.unwrap_or(now);
        if ts > now + MAX_FUTURE_SECS {
            return Err("future");
        }
        if ts < now - self.late_secs {
            return Err("too_old");
        }
        let (mut app, mut env) = (self.routing.app.as_str(), self.routing.env.as_str());
        let mut tags: Vec<(&str, &str)> = Vec::with_capacity(4);
        for (k, v) in line.tags() {
            match k {
                "app" if self.routing.tags_choose => app = v,
                "env" if self.routing.tags_choose => env = v,
                _ => tags.push((k, v)),
            }
        }
        if tags.len() > MAX_TAGS {
            return Err("bad_tags");
        }
        if !valid_app(app) || !valid_env(env) {
            return Err("bad_route");
        }
        tags.sort_unstable();
        tags.dedup_by(|a, b| a.0 == b.0);
        let kind = match line.ty {
            Type::Counter | Type::Set => Kind::Counter,
            Type::Gauge => Kind::Gauge,
            _ => Kind::Distribution,
        };
        // The series key: app, env, kind, name and sorted tags.
        let key = &mut self.key;
        key.clear();
        for part in [app, env, kind.as_str(), line.name] {
            key.push_str(part);
            key.push('\0');
        }
        for (k, v) in &tags {
            key.push_str(k);
            key.push('=');
            key.push_str(v);
            key.push('\0');
        }
        let minute = minute_of(ts);
        let mut taken = 0;
        for value in line.values() {
            let key = self.key.as_str();
            let agg = match value {
                Value::Number(v) => match line.ty {
                    Type::Counter => Agg::Counter(v / line.rate),
                    Type::Gauge => {
                        remember(&mut self.gauges, key, v);
                        Agg::Gauge(GaugeAgg::single(v, millis_of(ts)))
                    }
                    _ => {
                        let w = 1.0 / line.rate;
                        let mut d = DistAgg::single(v);
                        if w != 1.0 {
                            d.count = w;
                            d.sum = v * w;
                            d.sketch = Default::default();
                            d.sketch.add_weighted(v, w);
                        }
                        Agg::Distribution(Box::new(d))
                    }
                },
                Value::Delta(d) => {
                    let v = self.gauges.get(key).copied().unwrap_or(0.0) + d;
                    if !v.is_finite() {
                        return Err("bad_value");
                    }
                    remember(&mut self.gauges, key, v);
                    Agg::Gauge(GaugeAgg::single(v, millis_of(ts)))
                }
                Value::Member(m) => {
                    let h = self.hasher.hash_one(m);
                    let set = match self.sets.entry((minute, key.to_string())) {
                        Entry::Occupied(e) => e.into_mut(),
                        Entry::Vacant(e) => e.insert(HashSet::new()),
                    };
                    if set.len() >= MAX_SET_MEMBERS {
                        return Err("set_full");
                    }
                    if !set.insert(h) {
                        taken += 1;
                        continue;
                    }
                    Agg::Counter(1.0)
                }
            };
            let slot = SlotRef {
                minute,
                app,
                env,
                name: line.name,
                tags: &tags,
                ts,
            };
            merge(&mut self.open, &mut self.open_series, &self.key, slot, agg)?;
            taken += 1;
        }
        Ok(taken)
    }

    /// Takes everything aggregated since the last flush as one push per
    /// (app, env), and forgets set members of minutes before `now`'s.
    pub fn flush(&mut self, now: f64) -> Vec<PushRequest> {
        let current = minute_of(now);
        self.sets.retain(|(m, _), _| *m >= current - 60);
        self.open_series = 0;
        let mut by_route: HashMap<(String, String), Vec<(usize, Point)>> = HashMap::new();
        for (_, series) in self.open.drain() {
            for (_, s) in series {
                let value = match s.agg {
                    Agg::Counter(v) => PointValue::Single(v),
                    Agg::Gauge(g) => PointValue::GaugeSummary(Box::new(g)),
                    Agg::Distribution(d) => PointValue::DistSummary(d),
                };
                let ts = match &value {
                    PointValue::GaugeSummary(g) => g.last_ms as f64 / 1000.0,
                    _ => s.ts,
                };
                let points = by_route.entry((s.app, s.env)).or_default();
                let point = Point {
                    kind: match value {
                        PointValue::Single(_) => Kind::Counter,
                        PointValue::GaugeSummary(_) => Kind::Gauge,
                        PointValue::DistSummary(_) => Kind::Distribution,
                    },
                    name: s.name.into(),
                    tags: s.tags,
                    ts,
                    value,
                };
                points.push((points.len(), point));
            }
        }
        by_route
            .into_iter()
            .map(|((app, env), points)| PushRequest {
                app,
                env,
                batch: None,
                points,
            })
            .collect()
    }
}

/// Where a value goes.
struct SlotRef<'a> {
    minute: i64,
    app: &'a str,
    env: &'a str,
    name: &'a str,
    tags: &'a [(&'a str, &'a str)],
    ts: f64,
}

fn merge(
    open: &mut HashMap<i64, HashMap<String, Slot, Fx>>,
    open_series: &mut usize,
    key: &str,
    at: SlotRef,
    agg: Agg,
) -> Result<(), &'static str> {
    let series = open.entry(at.minute).or_default();
    if let Some(slot) = series.get_mut(key) {
        slot.agg.merge(&agg);
        slot.ts = slot.ts.max(at.ts);
        return Ok(());
    }
    if *open_series >= MAX_OPEN_SERIES {
        return Err("too_many_series");
    }
    *open_series += 1;
    series.insert(
        key.to_string(),
        Slot {
            app: at.app.to_string(),
            env: at.env.to_string(),
            name: at.name.to_string(),
            tags: Tags::from_pairs(at.tags.iter().copied()),
            ts: at.ts,
            agg,
        },
    );
    Ok(())
}

fn remember(gauges: &mut HashMap<String, f64>, key: &str, v: f64) {
    if let Some(last) = gauges.get_mut(key) {
        *last = v;
        return;
    }
    // A sender inventing gauges without end must not grow memory without
    // end: forgetting all makes the next delta start at 0 again.
    if gauges.len() >= MAX_GAUGES {
        gauges.clear();
    }
    gauges.insert(key.to_string(), v);
}

/// App names as the push API allows them (metric-name rules).
fn valid_app(s: &str) -> bool {
    minutely_core::validate::validate_name(s).is_ok()
}

/// Env names as the push API allows them.
fn valid_env(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Checks a configured app and env, naming the rule that fails.
pub fn check_route(app: &str, env: &str) -> Result<(), String> {
    if !valid_app(app) {
        return Err(format!("app name {app:?} is invalid: use 1-200 characters of A-Z a-z 0-9 _ . : - starting with a letter or _"));
    }
    if !valid_env(env) {
        return Err(format!(
            "env {env:?} is invalid: use 1-64 characters of A-Z a-z 0-9 _ . -"
        ));
    }
    Ok(())
}

/// Parses a packet into the aggregator, calling `count` with each line's
/// outcome: `Ok(values)` or `Err(reason)`.
pub fn add_packet(agg: &mut Aggregator, packet: &[u8], now: f64, mut count: impl FnMut(Outcome)) {
    super::parse_packet(packet, |r| {
        count(
            r.map_err(|e: ParseError| e.reason())
                .and_then(|l| agg.add(&l, now)),
        )
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: f64 = 1_764_100_000.0;

    fn agg(tags_choose: bool) -> Aggregator {
        Aggregator::new(
            Routing {
                app: "default".into(),
                env: "production".into(),
                tags_choose,
            },
            86_400.0,
        )
    }

    fn feed(a: &mut Aggregator, packet: &str, now: f64) -> Vec<Outcome> {
        let mut out = Vec::new();
        add_packet(a, packet.as_bytes(), now, |o| out.push(o));
        out
    }

    fn points(reqs: &[PushRequest]) -> Vec<(String, String, Point)> {
        let mut v: Vec<_> = reqs
            .iter()
            .flat_map(|r| {
                r.points
                    .iter()
                    .map(|(_, p)| (r.app.clone(), r.env.clone(), p.clone()))
            })
            .collect();
        v.sort_by(|a, b| (&a.2.name, &a.2.tags).cmp(&(&b.2.name, &b.2.tags)));
        v
    }

    #[test]
    fn counters_gauges_distributions_and_sets() {
        let mut a = agg(false);
        let outcomes = feed(
            &mut a,
            "c:1|c\nc:2|c|@0.5\ng:5|g\ng:+3|g\ng:-10|g\nd:1:2|d|@0.5\nt:7|ms\nu:x|s\nu:y|s\nu:x|s\nbad\n",
            NOW,
        );
        assert_eq!(
            outcomes,
            vec![
                Ok(1),
                Ok(1),
                Ok(1),
                Ok(1),
                Ok(1),
                Ok(2),
                Ok(1),
                Ok(1),
                Ok(1),
                Ok(1),
                Err("malformed")
            ]
        );
        let p = points(&a.flush(NOW));
        let by = |n: &str| &p.iter().find(|x| *x.2.name == *n).unwrap().2;
        assert_eq!(by("c").value, PointValue::Single(5.0));
        match &by("g").value {
            PointValue::GaugeSummary(g) => {
                assert_eq!(
                    (g.last, g.min, g.max, g.sum, g.count),
                    (-2.0, -2.0, 8.0, 11.0, 3)
                )
            }
            v => panic!("{v:?}"),
        }
        match &by("d").value {
            PointValue::DistSummary(d) => {
                assert_eq!((d.count, d.sum, d.min, d.max), (4.0, 6.0, 1.0, 2.0));
                assert_eq!(d.sketch.count(), 4.0);
            }
            v => panic!("{v:?}"),
        }
        assert_eq!(by("t").kind, Kind::Distribution);
        assert_eq!(by("u").value, PointValue::Single(2.0));
        assert!(p.iter().all(|x| x.0 == "default" && x.1 == "production"));

        // The next flush holds only what came after; set members and gauge
        // values carry over within the minute.
        feed(&mut a, "u:x|s\nu:z|s\ng:+1|g", NOW + 1.0);
        let p = points(&a.flush(NOW + 1.0));
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].2.value, PointValue::Single(1.0));
        assert!(matches!(&p[0].2.value, PointValue::GaugeSummary(g) if g.last == -1.0));
        // A new minute starts a new set.
        feed(&mut a, "u:x|s", NOW + 60.0);
        assert_eq!(
            points(&a.flush(NOW + 60.0))[0].2.value,
            PointValue::Single(1.0)
        );
    }

    #[test]
    fn routing_by_tags_only_when_allowed() {
        let mut a = agg(true);
        feed(
            &mut a,
            "c:1|c|#app:shop,env:staging,region:eu\nc:1|c|#app:bad app",
            NOW,
        );
        let p = points(&a.flush(NOW));
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].0.as_str(), p[0].1.as_str()), ("shop", "staging"));
        assert_eq!(p[0].2.tags, Tags::from_pairs([("region", "eu")]));

        let mut a = agg(false);
        feed(&mut a, "c:1|c|#app:shop,env:staging", NOW);
        let p = points(&a.flush(NOW));
        assert_eq!(p[0].0, "default");
        assert_eq!(p[0].2.tags.len(), 2);
    }

    #[test]
    fn limits_and_times() {
        let mut a = agg(true);
        let tags: Vec<String> = (0..17).map(|i| format!("k{i}:v")).collect();
        let out = feed(&mut a, &format!("c:1|c|#{}", tags.join(",")), NOW);
        assert_eq!(out, vec![Err("bad_tags")]);
        // app and env do not count against the 16 when they route.
        let out = feed(
            &mut a,
            &format!("c:1|c|#app:x,{}", tags[..16].join(",")),
            NOW,
        );
        assert_eq!(out, vec![Ok(1)]);
        let out = feed(
            &mut a,
            "c:1|c|T1764200000\nc:1|c|T1664100000\nc:1|c|T1764099000",
            NOW,
        );
        assert_eq!(out, vec![Err("future"), Err("too_old"), Ok(1)]);
        let p = points(&a.flush(NOW));
        assert!(p.iter().any(|x| x.2.minute() == minute_of(1_764_099_000.0)));
        let out = feed(&mut a, "g:1e308|g\ng:-1e308|g\ng:+1e308|g\ng:+1e308|g", NOW);
        assert_eq!(out, vec![Ok(1), Ok(1), Ok(1), Err("bad_value")]);
    }

    #[test]
    fn open_series_are_bounded() {
        let mut a = agg(false);
        let mut packet = String::new();
        for i in 0..MAX_OPEN_SERIES + 5 {
            packet.push_str(&format!("m{i}:1|c\n"));
        }
        let out = feed(&mut a, &packet, NOW);
        assert_eq!(out.iter().filter(|o| o.is_err()).count(), 5);
        assert_eq!(points(&a.flush(NOW)).len(), MAX_OPEN_SERIES);
        assert_eq!(feed(&mut a, "m0:1|c", NOW), vec![Ok(1)]);
    }
}
