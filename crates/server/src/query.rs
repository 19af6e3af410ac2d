//! `GET|POST /api/v1/query`: parse a query, pick the stored resolution,
//! read, group and evaluate (DESIGN section 2 and 3).

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::{blocking, Shared};
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::Json;
use minutely_core::query::{auto_step, evaluate, Across, Evaluation, Grid, PartsEvaluation};
use minutely_core::tags::TagFilter;
use minutely_core::time::floor_to;
use minutely_core::timeparse::parse_time;
use minutely_core::{Field, Kind, Part, Tags};
use minutely_store::{Buckets, Resolution, Scope, SeriesId, SeriesInfo, Store};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Instant;

/// Points per series that `step=auto` aims for at most.
const AUTO_POINTS: i64 = 1_500;
/// Buckets per series a query may ask for: a year of minutes is plenty and
/// bounds the answer's size.
const MAX_BUCKETS: i64 = 527_040;

/// Series read at once when a query needs whole aggregates: enough to keep
/// the read threads busy, few enough that their sketches stay small.
const READ_CHUNK: usize = 128;

/// Bytes of dense values (8 a bucket) a chunk of series may hold: a day
/// of minutes keeps [`READ_CHUNK`] series a chunk, a year of minutes
/// about 16.
const VALUES_PER_CHUNK_BYTES: usize = 64 << 20;

/// Series read at once as values on a grid of `cells` buckets.
fn values_chunk(cells: usize) -> usize {
    (VALUES_PER_CHUNK_BYTES / (cells.max(1) * 8)).clamp(1, READ_CHUNK)
}

/// 9999-12-31T23:59:59Z: keeps time arithmetic far from overflow.
const MAX_TIME: f64 = 253_402_300_799.0;

/// A query's keys, as URL parameters or as one entry of a POST body.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryInput {
    pub app: Option<String>,
    pub env: Option<String>,
    pub metric: Option<String>,
    pub field: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub from: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub to: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub step: Option<String>,
    #[serde(default, deserialize_with = "list")]
    pub tag: Vec<String>,
    #[serde(default, deserialize_with = "list")]
    pub group_by: Vec<String>,
    pub across: Option<String>,
}

/// Accepts a JSON number or string as text.
fn text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        other => {
            return Err(serde::de::Error::custom(format!(
                "expected a number or string, got {other}"
            )))
        }
    })
}

/// Accepts `"a,b"`, `"a"` or `["a", "b"]`.
fn list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => Vec::new(),
        serde_json::Value::String(s) => vec![s],
        serde_json::Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => Ok(s),
                other => Err(serde::de::Error::custom(format!(
                    "expected strings, got {other}"
                ))),
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(serde::de::Error::custom(format!(
                "expected a string or a list, got {other}"
            )))
        }
    })
}

impl QueryInput {
    /// From URL parameters; `tag` may repeat.
    pub fn from_pairs<'a>(
        pairs: impl Iterator<Item = (std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)>,
    ) -> ApiResult<QueryInput> {
        let mut q = QueryInput::default();
        for (k, v) in pairs {
            let v = v.into_owned();
            match k.as_ref() {
                "app" => q.app = Some(v),
                "env" => q.env = Some(v),
                "metric" => q.metric = Some(v),
                "field" => q.field = Some(v),
                "from" => q.from = Some(v),
                "to" => q.to = Some(v),
                "step" => q.step = Some(v),
                "tag" => q.tag.push(v),
                "group_by" => q.group_by.push(v),
                "across" => q.across = Some(v),
                other => {
                    return Err(ApiError::bad_request(format!(
                        "unknown query parameter {other:?}"
                    )))
                }
            }
        }
        Ok(q)
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SeriesAnswer {
    pub tags: Tags,
    pub points: Vec<(i64, Option<f64>)>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct QueryAnswer {
    pub metric: String,
    pub field: String,
    pub step: i64,
    pub series: Vec<SeriesAnswer>,
}

/// A query checked and resolved to absolute times.
struct Plan {
    app: String,
    env: Option<String>,
    metric: String,
    field_name: String,
    field: Option<Field>,
    grid: Grid,
    /// End of the data to read (exclusive).
    to: i64,
    filters: Vec<TagFilter>,
    group_by: Vec<String>,
    across: Across,
}

fn plan(input: QueryInput, caller: &Caller, now: f64) -> ApiResult<Plan> {
    let app = caller.act_on(input.app, Scope::Read)?;
    let metric = input
        .metric
        .ok_or_else(|| ApiError::bad_request("metric is required"))?;
    let field = input
        .field
        .as_deref()
        .map(Field::parse)
        .transpose()
        .map_err(ApiError::bad_request)?;
    let from =
        parse_time(input.from.as_deref().unwrap_or("-1h"), now).map_err(ApiError::bad_request)?;
    let to =
        parse_time(input.to.as_deref().unwrap_or("now"), now).map_err(ApiError::bad_request)?;
    for t in [from, to] {
        if !(0.0..=MAX_TIME).contains(&t) {
            return Err(ApiError::bad_request(format!(
                "time {t} is outside 1970..9999"
            )));
        }
    }
    let from = floor_to(from.floor() as i64, 60);
    let to = to.ceil() as i64;
    if to <= from {
        return Err(ApiError::bad_request(format!(
            "to ({to}) must be after from ({from})"
        )));
    }
    let step = match input.step.as_deref().unwrap_or("auto") {
        "auto" => auto_step(to - from, AUTO_POINTS),
        s => {
            let step: i64 = s.parse().map_err(|_| {
                ApiError::bad_request(format!(
                    "step {:?} must be seconds (a multiple of 60) or auto",
                    minutely_core::validate::clip(s)
                ))
            })?;
            if step <= 0 || step % 60 != 0 {
                return Err(ApiError::bad_request(format!(
                    "step {step} must be a positive multiple of 60 seconds"
                )));
            }
            step
        }
    };
    if (to - from) / step > MAX_BUCKETS {
        return Err(ApiError::bad_request(format!(
            "the range holds more than {MAX_BUCKETS} steps of {step} s; use a larger step or step=auto"
        )));
    }
    let filters = input
        .tag
        .iter()
        .map(|t| TagFilter::parse(t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::bad_request)?;
    let group_by: Vec<String> = input
        .group_by
        .iter()
        .flat_map(|g| g.split(','))
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(String::from)
        .collect();
    let across = input
        .across
        .as_deref()
        .map(Across::parse)
        .transpose()
        .map_err(ApiError::bad_request)?
        .unwrap_or_default();
    Ok(Plan {
        app,
        env: input.env,
        metric,
        field_name: input.field.unwrap_or_default(),
        field,
        grid: Grid::new(from, to, step),
        to,
        filters,
        group_by,
        across,
    })
}

/// Checks a query as `run` does before it reads: the caller's scope, times,
/// step, tag filters, grouping and `across`. Pure, so it can be fuzzed.
pub fn check_query(input: QueryInput, caller: &Caller, now: f64) -> ApiResult<()> {
    plan(input, caller, now).map(|_| ())
}

/// The coarsest stored resolution that fits the grid: buckets must be whole
/// multiples of it and start on its boundaries. When the range starts before
/// the finer resolution's retention, a coarser one that divides the step is
/// used even if not aligned (each stored bucket then counts in the output
/// bucket where it starts).
fn resolution_for(grid: &Grid, store: &dyn Store, now: i64) -> Resolution {
    let retention = store.retention();
    let fits = |r: Resolution| grid.step % r.secs() == 0;
    let aligned = |r: Resolution| fits(r) && grid.from % r.secs() == 0;
    let kept = |r: Resolution| retention.cutoff(r, now).is_none_or(|c| grid.from >= c);
    let mut best = Resolution::Minute;
    for r in [Resolution::Hour, Resolution::Day] {
        if aligned(r) || (fits(r) && !kept(best)) {
            best = r;
        }
    }
    best
}

fn default_field(kind: Kind) -> (Field, &'static str) {
    match kind {
        Kind::Counter => (Field::Sum, "sum"),
        Kind::Gauge => (Field::Last, "last"),
        Kind::Distribution => (Field::Mean, "mean"),
    }
}

/// Runs one query against the store (blocking).
pub fn run(
    store: &dyn Store,
    caller: &Caller,
    input: QueryInput,
    now: f64,
) -> ApiResult<QueryAnswer> {
    let p = plan(input, caller, now)?;
    let Some(kind) = store.metric_kind(&p.app, &p.metric) else {
        // A metric that has not arrived yet is an empty chart, not an error.
        return Ok(QueryAnswer {
            metric: p.metric,
            field: p.field_name,
            step: p.grid.step,
            series: Vec::new(),
        });
    };
    let (field, field_name) = match p.field {
        Some(f) => (f, p.field_name),
        None => {
            let (f, n) = default_field(kind);
            (f, n.to_string())
        }
    };
    if !field.applies_to(kind) {
        return Err(ApiError::bad_request(format!(
            "field {field_name:?} does not apply to {:?}, a {kind}: use {}",
            p.metric,
            Field::names_for(kind)
        )));
    }
    // Filters without `*` name exact values: a store may look those up.
    let pairs: Vec<(&str, &str)> = p
        .filters
        .iter()
        .filter(|f| !f.pattern.contains('*'))
        .map(|f| (f.key.as_str(), f.pattern.as_str()))
        .collect();
    let series = store.series_with(&p.app, p.env.as_deref(), &p.metric, &pairs, &|tags| {
        p.filters.iter().all(|f| f.matches(tags))
    });
    let res = resolution_for(&p.grid, store, now as i64);
    // Data up to `to` (exclusive): a last bucket cut by `to` holds only what came before it.
    let to = p.to;
    let ids: Vec<_> = series.iter().map(|s| s.id).collect();
    // Counters and distributions merge across series before their field is
    // read, so a store that merges groups itself returns just the grid's
    // buckets (a gauge's field is read per series first: never).
    let merged = match kind {
        Kind::Gauge => None,
        _ => merged_groups(store, &series, &p.group_by, &p.grid, res, to)?,
    };
    // Fields that read a part of each aggregate (all but distributions')
    // are read as that part only: far less to decode, copy and merge.
    let evaluated: Vec<(Tags, Vec<Option<f64>>)> = match (merged, Part::for_field(kind, field)) {
        (Some(groups), _) => groups
            .into_iter()
            .map(|(tags, buckets)| {
                let values = evaluate(kind, field, p.across, &p.grid, &[&buckets]);
                (tags, values)
            })
            .collect(),
        (None, Some(part)) => {
            // Each series comes as its values, folded by the store's
            // reading threads on the grid the evaluation asks for; here
            // they are only added up. A chunk of series at a time, so
            // memory stays bounded.
            let new = || PartsEvaluation::new(kind, field, part, p.across, p.grid, res.secs());
            let probe = new();
            let (read_grid, read_field) = (probe.read_grid(to), probe.read_field());
            let mut groups: BTreeMap<Tags, PartsEvaluation> = BTreeMap::new();
            let chunk = values_chunk(read_grid.n);
            for (infos, ids) in series.chunks(chunk).zip(ids.chunks(chunk)) {
                let data = store.read_values(ids, res, &read_grid, to, part, read_field)?;
                for (s, values) in infos.iter().zip(&data) {
                    evaluation(&mut groups, s, &p.group_by, new).add_values(values);
                }
            }
            groups
                .into_iter()
                .map(|(tags, e)| (tags, e.finish()))
                .collect()
        }
        (None, None) => {
            // Whole aggregates (sketches) are large: read a chunk of series
            // at a time and fold it in, rather than hold them all.
            let mut groups: BTreeMap<Tags, Evaluation> = BTreeMap::new();
            for (infos, ids) in series.chunks(READ_CHUNK).zip(ids.chunks(READ_CHUNK)) {
                if kind == Kind::Distribution {
                    // As rows: no aggregate built per bucket, and no
                    // sketch read but for a quantile.
                    let sketches = matches!(field, Field::Quantile(_));
                    let data = store.read_dists(ids, res, p.grid.from, to, sketches)?;
                    for (s, rows) in infos.iter().zip(&data) {
                        evaluation(&mut groups, s, &p.group_by, || {
                            Evaluation::new(kind, field, p.across, p.grid)
                        })
                        .add_dists(rows);
                    }
                } else {
                    let data = store.read(ids, res, p.grid.from, to)?;
                    for (s, buckets) in infos.iter().zip(&data) {
                        evaluation(&mut groups, s, &p.group_by, || {
                            Evaluation::new(kind, field, p.across, p.grid)
                        })
                        .add(buckets);
                    }
                }
            }
            groups
                .into_iter()
                .map(|(tags, e)| (tags, e.finish()))
                .collect()
        }
    };
    let out = evaluated
        .into_iter()
        .map(|(tags, values)| {
            let points = values
                .into_iter()
                .enumerate()
                .map(|(i, v)| (p.grid.start(i), v))
                .collect();
            SeriesAnswer { tags, points }
        })
        .collect();
    Ok(QueryAnswer {
        metric: p.metric,
        field: field_name,
        step: p.grid.step,
        series: out,
    })
}

/// The evaluation of the group a series belongs to, new if need be.
fn evaluation<'a, E>(
    groups: &'a mut BTreeMap<Tags, E>,
    s: &SeriesInfo,
    group_by: &[String],
    new: impl FnOnce() -> E,
) -> &'a mut E {
    groups.entry(s.tags.project(group_by)).or_insert_with(new)
}

/// Each group's buckets on the grid, merged across its series by the store,
/// when the store does that (see [`Store::read_grouped`]).
fn merged_groups(
    store: &dyn Store,
    series: &[SeriesInfo],
    group_by: &[String],
    grid: &Grid,
    res: Resolution,
    to: i64,
) -> ApiResult<Option<Vec<(Tags, Buckets)>>> {
    let mut groups: BTreeMap<Tags, Vec<SeriesId>> = BTreeMap::new();
    for s in series {
        groups
            .entry(s.tags.project(group_by))
            .or_default()
            .push(s.id);
    }
    let ids: Vec<Vec<SeriesId>> = groups.values().cloned().collect();
    Ok(store
        .read_grouped(&ids, res, grid.from, to, grid.step)?
        .map(|data| groups.into_keys().zip(data).collect()))
}

pub async fn get_query(
    State(st): State<Shared>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<QueryAnswer>> {
    let started = Instant::now();
    let caller = st.keys.authenticate(&headers)?;
    let input = QueryInput::from_pairs(form_urlencoded::parse(q.unwrap_or_default().as_bytes()))?;
    let (store, now) = (st.store.clone(), st.now());
    let answer = blocking(move || run(store.as_ref(), &caller, input, now)).await;
    st.metrics.observe_query(started.elapsed());
    answer.map(Json)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryBatch {
    queries: Vec<QueryInput>,
}

/// Several queries at once (a whole dashboard). Each answers on its own: a
/// bad one gets `{"error"}` in its place and the others still run.
pub async fn post_query(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> ApiResult<Json<serde_json::Value>> {
    let started = Instant::now();
    let caller = st.keys.authenticate(&headers)?;
    // A push key never reads: refused whole, as on GET, not per query.
    if caller.scope == Scope::Push {
        return Err(ApiError::forbidden(
            "this push key cannot read metrics (use a read or admin key)",
        ));
    }
    let raw = crate::push::read_body(body, st.cfg.max_body_bytes).await?;
    let batch: QueryBatch = serde_json::from_slice(&raw)
        .map_err(|e| ApiError::bad_request(format!("body must be {{\"queries\": [...]}}: {e}")))?;
    if batch.queries.len() > 200 {
        return Err(ApiError::bad_request("at most 200 queries per request"));
    }
    let (store, now) = (st.store.clone(), st.now());
    let results = blocking(move || {
        Ok(batch
            .queries
            .into_iter()
            .map(|q| match run(store.as_ref(), &caller, q, now) {
                Ok(a) => serde_json::to_value(a).unwrap_or_default(),
                Err(e) => serde_json::json!({"error": e.message}),
            })
            .collect::<Vec<_>>())
    })
    .await?;
    st.metrics.observe_query(started.elapsed());
    Ok(Json(serde_json::json!({ "results": results })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use minutely_store::Scope;
    use proptest::prelude::*;

    #[test]
    fn long_grids_read_fewer_series_at_once() {
        assert_eq!(values_chunk(1_440), READ_CHUNK);
        assert_eq!(values_chunk(0), READ_CHUNK);
        let year = values_chunk(527_040);
        assert!((1..READ_CHUNK).contains(&year), "{year}");
        assert!(year * 527_040 * 8 <= VALUES_PER_CHUNK_BYTES);
        assert_eq!(values_chunk(usize::MAX / 16), 1);
    }

    fn admin() -> Caller {
        Caller {
            app: crate::auth::ALL_APPS.into(),
            scope: Scope::Admin,
        }
    }

    #[test]
    fn plans() {
        let q = |pairs: &[(&str, &str)]| {
            let input =
                QueryInput::from_pairs(pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())))
                    .unwrap();
            plan(input, &admin(), 1_764_100_000.0)
        };
        let p = q(&[
            ("metric", "m"),
            ("from", "1764000030"),
            ("to", "1764003600"),
            ("step", "600"),
        ])
        .unwrap();
        assert_eq!(
            (p.grid.from, p.grid.step, p.grid.n),
            (1_764_000_000, 600, 6)
        );
        assert!(q(&[("metric", "m"), ("from", "-1e300")]).is_err());
        assert!(q(&[("metric", "m"), ("step", "61")]).is_err());
        assert!(q(&[
            ("metric", "m"),
            ("from", "0"),
            ("to", "253402300799"),
            ("step", "60")
        ])
        .is_err());
        assert!(q(&[("from", "-1h")]).is_err());
        let huge = (i64::MAX / 60 * 60).to_string();
        assert_eq!(
            q(&[("metric", "m"), ("from", "-1h"), ("step", &huge)])
                .unwrap()
                .grid
                .n,
            1
        );
    }

    proptest! {
        #[test]
        fn planning_never_panics(
            from in prop_oneof![".{0,12}", any::<f64>().prop_map(|f| f.to_string()), (-1i64 << 40..1i64 << 40).prop_map(|i| i.to_string())],
            to in prop_oneof![".{0,12}", any::<f64>().prop_map(|f| f.to_string()), Just("now".to_string())],
            step in prop_oneof![".{0,8}", any::<i64>().prop_map(|i| i.to_string()), Just("auto".to_string())],
            tag in ".{0,10}",
            group in ".{0,10}",
        ) {
            let input = QueryInput {
                metric: Some("m".into()),
                from: Some(from),
                to: Some(to),
                step: Some(step),
                tag: vec![tag],
                group_by: vec![group],
                ..Default::default()
            };
            let _ = plan(input, &admin(), 1_764_100_000.0);
        }
    }
}

#[cfg(test)]
mod wide_tests;
