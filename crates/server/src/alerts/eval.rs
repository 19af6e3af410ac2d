//! Evaluating one alert over a run of minutes against the store: read the
//! watched field per series (plus what a baseline compares with), judge
//! each minute and feed the per-series state machines. The evaluator loop
//! and `POST /api/v1/alerts/preview` share this code; preview starts from
//! an empty state and keeps nothing.

use minutely_alerts::{AlertDef, AlertState, Condition, Event, History, Input};
use minutely_core::query::{evaluate, Across, Grid};
use minutely_core::{Field, Kind, Tags};
use minutely_store::{Resolution, Store, StoreError};
use std::collections::BTreeMap;

/// How far before its first evaluated minute a new alert looks for series
/// that have data, so a metric that already stopped is still watched.
pub const SEED_MINUTES: i64 = 60;
/// A closed series without data for this long is forgotten (its state is
/// dropped); it comes back when data does.
pub const FORGET_SECS: i64 = 86_400;
const WEEK: i64 = 7 * 86_400;

/// The field an alert reads: its own, else the kind's default (as queries).
pub fn field_of(def: &AlertDef, kind: Kind) -> Result<Field, String> {
    let field = match &def.field {
        Some(f) => Field::parse(f)?,
        None => match kind {
            Kind::Counter => Field::Sum,
            Kind::Gauge => Field::Last,
            Kind::Distribution => Field::Mean,
        },
    };
    if !field.applies_to(kind) {
        return Err(format!(
            "field {:?} does not apply to {:?}, a {kind}: use {}",
            def.field.as_deref().unwrap_or(""),
            def.metric,
            Field::names_for(kind)
        ));
    }
    Ok(field)
}

/// The key of a series in the alert's state: env and tags as JSON.
pub fn series_key(env: &str, tags: &Tags) -> String {
    serde_json::to_string(&(env, tags)).unwrap_or_default()
}

pub fn parse_series_key(key: &str) -> (String, Tags) {
    serde_json::from_str(key).unwrap_or_default()
}

/// An event of one series.
#[derive(Debug, Clone)]
pub struct SeriesEvent {
    pub env: String,
    pub tags: Tags,
    pub event: Event,
}

/// Field values of each matching series per minute of `[from, to)`.
fn values(
    store: &dyn Store,
    app: &str,
    def: &AlertDef,
    kind: Kind,
    field: Field,
    from: i64,
    to: i64,
) -> Result<BTreeMap<String, Vec<Option<f64>>>, StoreError> {
    let filters = def.filters();
    let series: Vec<_> = store
        .series_of(app, def.env.as_deref(), &def.metric)
        .into_iter()
        .filter(|s| filters.iter().all(|f| f.matches(&s.tags)))
        .collect();
    let ids: Vec<_> = series.iter().map(|s| s.id).collect();
    let data = store.read(&ids, Resolution::Minute, from, to)?;
    let grid = Grid::new(from, to, 60);
    let mut out: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
    for (s, buckets) in series.iter().zip(&data) {
        let v = evaluate(kind, field, Across::Sum, &grid, &[buckets.as_slice()]);
        out.insert(series_key(&s.env, &s.tags), v);
    }
    Ok(out)
}

/// Evaluates the minutes starting in `[first, last]` (whole minutes, in
/// order), moving `state` on and returning the events. `alert_id` names
/// new incidents.
pub fn run_minutes(
    store: &dyn Store,
    app: &str,
    alert_id: &str,
    def: &AlertDef,
    state: &mut AlertState,
    first: i64,
    last: i64,
) -> Result<Vec<SeriesEvent>, String> {
    let mut events = Vec::new();
    if last < first {
        return Ok(events);
    }
    let Some(kind) = store.metric_kind(app, &def.metric) else {
        // The metric never arrived: no series to watch yet.
        state.cursor = Some(last);
        return Ok(events);
    };
    let field = field_of(def, kind)?;
    let lookback = def.condition.lookback_minutes() as i64;
    let seed = if state.cursor.is_none() {
        SEED_MINUTES
    } else {
        0
    };
    let read_from = first - lookback.max(seed) * 60;
    let to = last + 60;
    let now_vals =
        values(store, app, def, kind, field, read_from, to).map_err(|e| e.to_string())?;
    let week_vals = if matches!(def.condition, Condition::WeekAgo { .. }) {
        values(store, app, def, kind, field, first - WEEK, to - WEEK).map_err(|e| e.to_string())?
    } else {
        BTreeMap::new()
    };
    let idx = |m: i64| ((m - read_from) / 60) as usize;
    // Series with data in the range, and those the state already follows.
    let mut keys: Vec<String> = now_vals
        .iter()
        .filter(|(_, v)| v.iter().any(Option::is_some))
        .map(|(k, _)| k.clone())
        .collect();
    for k in state.series.keys() {
        if !now_vals
            .get(k)
            .is_some_and(|v| v.iter().any(Option::is_some))
        {
            keys.push(k.clone());
        }
    }
    let empty = Vec::new();
    let AlertState {
        series, incidents, ..
    } = state;
    for key in keys {
        let vals = now_vals.get(&key).unwrap_or(&empty);
        let week = week_vals.get(&key);
        let known = series.contains_key(&key);
        let st = series.entry(key.clone()).or_default();
        let (env, tags) = parse_series_key(&key);
        let mut window = Vec::with_capacity(lookback as usize);
        let mut m = first;
        if !known {
            // A series the alert does not follow yet is watched from its
            // first minute with data (from `first` if it had data before):
            // the minutes before it existed are not missing data.
            if let Some(i) = vals.iter().position(Option::is_some) {
                m = m.max(read_from + i as i64 * 60);
            }
        }
        while m <= last {
            let value = vals.get(idx(m)).copied().flatten();
            window.clear();
            if lookback > 0 {
                window.extend(
                    (idx(m - lookback * 60)..idx(m)).filter_map(|i| vals.get(i).copied().flatten()),
                );
            }
            let h = History {
                week_ago: week.and_then(|w| w.get(((m - first) / 60) as usize).copied().flatten()),
                window: &window,
            };
            let input = Input::judge(def, value, &h);
            if let Some(event) = st.step(def, m, input, || {
                AlertState::next_incident_id(incidents, alert_id)
            }) {
                events.push(SeriesEvent {
                    env: env.clone(),
                    tags: tags.clone(),
                    event,
                });
            }
            m += 60;
        }
    }
    series.retain(|_, s| !(s.is_idle() && s.last_data.is_none_or(|d| d < last - FORGET_SECS)));
    state.cursor = Some(last);
    Ok(events)
}
